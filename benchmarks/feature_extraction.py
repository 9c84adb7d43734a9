"""Audio feature extraction throughput: TriBertFeatureExtractor (torch STFT + one sparse-matrix warp, batched)
against a librosa/numpy reference of the same STFT + log-frequency warp, clip by clip, in one run.

    python benchmarks/feature_extraction.py [--clips 64] [--repeats 5] [--output benchmarks/results/feature_extraction.json]

Writes JSON and prints a one-line summary: clips/s of each (median over --repeats), their ratio, and the max
absolute difference between the two outputs.
"""

import argparse
import json
import os
import platform
import statistics
import time

import librosa
import numpy as np
import torch

from tribert_hf import TriBertFeatureExtractor


def reference_features(waveform: np.ndarray, n_fft=1022, hop=256, num_log_bins=256) -> np.ndarray:
    """librosa STFT magnitude + Sound-of-Pixels' log-frequency warp by linear interpolation along frequency."""
    magnitude = np.abs(librosa.stft(waveform, n_fft=n_fft, hop_length=hop, window="hann", center=True, pad_mode="reflect"))
    bins = magnitude.shape[0]
    y = np.linspace(-1.0, 1.0, num_log_bins)
    position = ((np.power(21.0, (y + 1.0) / 2.0) - 11.0) / 10.0 + 1.0) / 2.0 * (bins - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, bins - 1)
    frac = (position - low)[:, None]
    return (magnitude[low] * (1.0 - frac) + magnitude[high] * frac)[None].astype(np.float32)


def timed(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "feature_extraction.json"))
    args = parser.parse_args()

    fe = TriBertFeatureExtractor()
    rng = np.random.default_rng(0)
    clips = (rng.standard_normal((args.clips, fe.num_samples)) * 0.1).astype(np.float32)

    ours_s, ours_times = timed(lambda: fe(clips, sampling_rate=fe.sampling_rate, return_tensors="pt"), args.repeats)
    ref_s, ref_times = timed(lambda: np.stack([reference_features(c) for c in clips]), args.repeats)
    ours = fe(clips, sampling_rate=fe.sampling_rate, return_tensors="np")["audio_spectrogram"]
    reference = np.stack([reference_features(c) for c in clips])
    max_abs_diff = float(np.abs(ours - reference).max())
    result = {
        "benchmark": "feature_extraction",
        "clips": args.clips,
        "clip_samples": fe.num_samples,
        "repeats": args.repeats,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "librosa": librosa.__version__,
        "ours_clips_per_s": args.clips / ours_s,
        "reference_clips_per_s": args.clips / ref_s,
        "speedup": ref_s / ours_s,
        "ours_times_s": ours_times,
        "reference_times_s": ref_times,
        "max_abs_diff": max_abs_diff,
        "reference_max_value": float(reference.max()),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(
        f"feature_extraction: ours {result['ours_clips_per_s']:.0f} clips/s vs librosa/numpy reference "
        f"{result['reference_clips_per_s']:.0f} clips/s ({result['speedup']:.1f}x, median of {args.repeats}, "
        f"{args.clips} clips of {fe.num_samples} samples, {torch.get_num_threads()} threads); max abs diff "
        f"{max_abs_diff:.2e} (values up to {result['reference_max_value']:.1f}) -> {args.output}"
    )


if __name__ == "__main__":
    main()

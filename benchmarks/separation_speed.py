"""Separation inference time of the paper-size TriBertForSourceSeparation on this machine: one 6-s mixture of two
videos through `separate()` (STFT, TriBERT per video, attention U-Net, inverse STFT).

    python benchmarks/separation_speed.py [--repeats 3] [--device cpu] [--seconds 5.944]

Writes JSON and prints a one-line summary with the median time and the real-time factor (seconds of audio
separated per second).
"""

import argparse
import json
import os
import platform
import statistics
import time

import torch

from common import example_inputs  # benchmarks/common.py: a script's own folder is importable

from tribert_hf import TriBertConfig, TriBertFeatureExtractor, TriBertForSourceSeparation, separate


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=65535 / 11025)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "separation_speed.json"))
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    config = TriBertConfig()
    model = TriBertForSourceSeparation(config).to(device).eval()
    fe = TriBertFeatureExtractor()
    clips = example_inputs(config, batch_size=2)
    videos = {k: clips[k].to(device) for k in ("pixel_values", "pose_keypoints", "pose_mask")}
    waveform = torch.randn(int(args.seconds * fe.sampling_rate), generator=torch.Generator().manual_seed(0)) * 0.1

    def run():
        estimates = separate(model, waveform.to(device), fe, videos["pixel_values"], videos["pose_keypoints"], pose_mask=videos["pose_mask"])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return estimates

    run()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = {
        "benchmark": "separation_speed",
        "config": "TriBertConfig() (paper size)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "unet_parameters": sum(p.numel() for p in model.separation.parameters()),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "audio_seconds": args.seconds,
        "videos": 2,
        "median_s": median,
        "times_s": times,
        "real_time_factor": args.seconds / median,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(
        f"separation_speed: paper-size model ({result['parameters'] / 1e6:.1f} M parameters, U-Net "
        f"{result['unet_parameters'] / 1e6:.1f} M), {args.seconds:.2f}-s mixture of 2 videos on {result['device']} "
        f"({result['threads']} threads): median {median:.2f} s over {args.repeats} runs, "
        f"{result['real_time_factor']:.2f}x real time -> {args.output}"
    )


if __name__ == "__main__":
    main()

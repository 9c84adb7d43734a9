"""BSS Eval v3 (SDR/SIR/SAR) speed and agreement: mir_eval (one call per mixture, as the Sound-of-Pixels protocol
does) against tribert_hf.metrics.bss_eval_sources_torch (all mixtures in one batched call, on CPU).

    python benchmarks/bss_eval.py [--num-mixtures 20] [--seconds 6] [--sample-rate 11025] [--repeats 3]
                                  [--threads 0] [--output benchmarks/results/bss_eval.json]

Mixtures are realistic 2-source cases: harmonic "instrument" sources (vibrato, amplitude envelope, a noise floor),
and estimates containing leaked interference from the other source, a short random FIR distortion and additive
noise. Reports the median per-mixture time of each implementation (the fast one: batch time / number of
mixtures, median over --repeats runs after a warm-up run), the speedup and the max |difference| in dB over all
SDR/SIR/SAR values. Writes a JSON file and prints a one-line summary.
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from tribert_hf.metrics import bss_eval_sources_torch, separation_metrics_mir_eval


def harmonic_source(rng: np.random.Generator, samples: int, sample_rate: int) -> np.ndarray:
    t = np.arange(samples) / sample_rate
    f0 = rng.uniform(110.0, 660.0)
    phase = 2 * np.pi * f0 * (t + 0.002 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))  # vibrato
    x = sum(rng.uniform(0.3, 1.0) * 0.7**k * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 10))
    notes = np.abs(np.sin(np.pi * rng.uniform(1.0, 3.0) * t + rng.uniform(0, np.pi))) ** 0.5  # note envelopes
    return x * notes + 0.01 * rng.standard_normal(samples)


def make_mixtures(num: int, samples: int, sample_rate: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    refs = np.stack([[harmonic_source(rng, samples, sample_rate) for _ in range(2)] for _ in range(num)])
    ests = np.empty_like(refs)
    for b in range(num):
        for j in range(2):
            fir = np.zeros(32)
            fir[0] = 1.0
            fir[1:] = 0.05 * rng.standard_normal(31)
            leak = rng.uniform(0.05, 0.3) * refs[b, 1 - j]
            noise = rng.uniform(0.01, 0.1) * refs[b, j].std() * rng.standard_normal(samples)
            ests[b, j] = np.convolve(refs[b, j], fir)[:samples] + leak + noise
    return refs, ests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-mixtures", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--sample-rate", type=int, default=11025)
    parser.add_argument("--samples", type=int, default=65535, help="overrides --seconds when > 0")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "bss_eval.json"))
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    samples = args.samples if args.samples > 0 else int(round(args.seconds * args.sample_rate))

    refs, ests = make_mixtures(args.num_mixtures, samples, args.sample_rate)

    mir_times, mir_vals = [], []
    for b in range(args.num_mixtures):
        start = time.perf_counter()
        res = separation_metrics_mir_eval(refs[b], ests[b])
        mir_times.append(time.perf_counter() - start)
        mir_vals.append(np.stack([res["sdr"], res["sir"], res["sar"]]))
    mir_vals = np.stack(mir_vals)  # (N, 3, S)

    refs_t, ests_t = torch.from_numpy(refs), torch.from_numpy(ests)
    bss_eval_sources_torch(refs_t[:2], ests_t[:2])  # warm-up
    fast_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = bss_eval_sources_torch(refs_t, ests_t)
        fast_times.append((time.perf_counter() - start) / args.num_mixtures)
    fast_vals = torch.stack(out, 1).numpy()  # (N, 3, S)

    mir_median, fast_median = statistics.median(mir_times), statistics.median(fast_times)
    max_diff = {k: float(np.abs(fast_vals[:, i] - mir_vals[:, i]).max()) for i, k in enumerate(("sdr", "sir", "sar"))}
    result = {
        "num_mixtures": args.num_mixtures,
        "num_sources": 2,
        "samples": samples,
        "sample_rate": args.sample_rate,
        "filter_length": 512,
        "mir_eval_median_s_per_mixture": mir_median,
        "fast_median_s_per_mixture": fast_median,
        "fast_batch_times_s": [t * args.num_mixtures for t in fast_times],
        "speedup": mir_median / fast_median,
        "max_abs_diff_db": max(max_diff.values()),
        "max_abs_diff_db_per_metric": max_diff,
        "mean_sdr_db": float(mir_vals[:, 0].mean()),
        "mean_sir_db": float(mir_vals[:, 1].mean()),
        "mean_sar_db": float(mir_vals[:, 2].mean()),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(
        f"bss_eval: {args.num_mixtures} x 2-source mixtures of {samples} samples: mir_eval {mir_median * 1e3:.1f} "
        f"ms/mixture, fast (torch, CPU, batched, {torch.get_num_threads()} threads) {fast_median * 1e3:.1f} "
        f"ms/mixture, speedup {result['speedup']:.1f}x, max |diff| {result['max_abs_diff_db']:.2e} dB"
    )


if __name__ == "__main__":
    main()

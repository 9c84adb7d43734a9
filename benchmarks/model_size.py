"""Parameter count per component of the paper-size TriBERT, and its forward (and forward+backward) time and peak
memory for one sample on this machine's CPU (or a GPU with --device cuda).

    python benchmarks/model_size.py [--repeats 5] [--device cpu] [--output benchmarks/results/model_size.json]

Writes a JSON file and prints a one-line summary. Times are medians over --repeats runs after one warm-up run.
Peak memory on CPU is the process's resident set size sampled every 2 ms during the runs (psutil), minus the
resident size before them; on CUDA it is torch.cuda.max_memory_allocated.
"""

import argparse
import json
import os
import platform
import statistics
import threading
import time

import psutil
import torch

from common import example_inputs  # benchmarks/common.py: a script's own folder is importable

from tribert_hf import TriBertConfig, TriBertModel


class PeakRSS:
    """Samples this process's resident set size in a thread; `peak` is the largest value seen, in bytes."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.process, self.peak = interval, psutil.Process(), 0
        self._stop = threading.Event()

    def __enter__(self):
        self.start = self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def measure(fn, repeats, device):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    with PeakRSS() as rss:
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = rss.peak - rss.start
    return {"median_s": statistics.median(times), "times_s": times, "peak_memory_mb": peak / 2**20}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "model_size.json"))
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    config = TriBertConfig()
    model = TriBertModel(config).to(device).eval()
    inputs = {k: v.to(device) for k, v in example_inputs(config, batch_size=1).items()}
    model_memory_mb = psutil.Process().memory_info().rss / 2**20

    def forward():
        with torch.inference_mode():
            model(**inputs)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        out = model(**inputs)
        (out.vision_pooler_output.sum() + out.pose_pooler_output.sum() + out.audio_pooler_output.sum()).backward()

    result = {
        "benchmark": "model_size",
        "config": "TriBertConfig() (paper size)",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "attn_implementation": config._attn_implementation,
        "batch_size": 1,
        "repeats": args.repeats,
        "parameters": model.parameter_counts(),
        "process_rss_after_build_mb": model_memory_mb,
        "forward": measure(forward, args.repeats, device),
    }
    model.train()
    result["forward_backward_train_mode"] = measure(forward_backward, max(1, args.repeats // 2), device)

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    p = result["parameters"]
    print(
        f"model_size: {p['total'] / 1e6:.1f} M parameters (backbone {p['vision_backbone'] / 1e6:.1f} M, "
        f"co-attention {p['co_attention_layers'] / 1e6:.1f} M); forward 1 sample on {result['device']} "
        f"({result['cpu_threads']} threads): median {result['forward']['median_s']:.2f} s, peak +"
        f"{result['forward']['peak_memory_mb']:.0f} MiB; forward+backward median "
        f"{result['forward_backward_train_mode']['median_s']:.2f} s, peak +"
        f"{result['forward_backward_train_mode']['peak_memory_mb']:.0f} MiB -> {args.output}"
    )


if __name__ == "__main__":
    main()

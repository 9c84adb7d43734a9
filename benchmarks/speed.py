"""The speed suite: the one speed entry point. Every figure is a ratio of two things measured in the same run on this
machine, and every peer package is measured beside ours in that run.

    python benchmarks/speed.py [--suite all | SUITE[,SUITE...]] [--quick] [--device cpu|cuda] [--bf16] [--profile]
                               [--threads N] [--repeats N] [--train-mixtures N] [--matmul-size N]
                               [--gradient-checkpointing] [--synthetic-cache-dir DIR] [--output PATH.json]
    python benchmarks/speed.py --convert benchmarks/results/speed.json   # rewrite a result in this layout; measures nothing

Suites (`--suite`, a comma list; `all`, the default, is every suite but retrieval; each prints a one-line summary, a
final line counts the targets met):

- features: the audio features (TriBertFeatureExtractor: STFT + log-frequency warp of a batch of clips) against a
  librosa/NumPy reference of the same features clip by clip (`common.reference_features`), the FFT alone (ours,
  SciPy; the reference's, numpy.fft), the peer row librosa.stft beside our STFT (time, max |difference| of the
  magnitude), and the whole featurizer of a prepared dataset (audio, video frames, keypoints:
  `PreparedClipFeaturizer`) through `datasets.map` with num_proc=1 and 2 (rows/s and the scaling). Always on CPU
  (it is the data pipeline).
- bss_eval: SDR/SIR/SAR of 2-source mixtures (`common.make_mixtures`): mir_eval (one call per mixture, the
  reference), ours (`bss_eval_sources_torch`, all mixtures in one batched call, on --device), and the peer rows
  `fast_bss_eval` (its torch backend; its NumPy backend fails under NumPy 2) and torchmetrics'
  `signal_distortion_ratio` (SDR only), batched on --device: time per mixture, speedup over mir_eval and the max
  |difference| from mir_eval in dB.
- train_step: this machine's dense matmul FLOP/s (n x n @ n x n, median of repeats; fp32, and bf16 with --bf16:
  the MFU's denominator); forward + backward of `TriBertForPreTraining` (joint loss) of the paper-size config on
  random batches of the recipe's shapes (`common.random_batch`), FLOPs counted with
  `torch.utils.flop_counter.FlopCounterMode` (matmul, convolution and attention FLOPs; CPU's fused attention kernels
  added, see `FLOP_FORMULAS`): achieved FLOP/s = FLOPs / median step time, MFU = achieved / matmul peak of the
  training dtype, the peak measured again right after the timed steps and the higher of the two taken (a peak
  measured in a busy moment of a shared machine would flatter the MFU); and one optimizer step (forward, backward,
  AdamW) of the demo (small, 4 mixtures) and paper-size configs: time and peak memory.
- separation: real-time factor (seconds of audio separated per second) of `tribert_hf.separate` (segment-wise separation)
  with random weights (speed does not depend on training), 2 videos, for the small (demo) and paper-size configs,
  on a 6-s mixture (one crop) and a 3-minute one (overlapping segments, batched 8 at a time).
- model_size: parameters per component of the paper-size `TriBertModel`, its forward (and forward + backward) time
  and peak memory for one sample.
- retrieval (opt-in, not in `all`): clips embedded per second by `TriBertForContrastiveRetrieval` (small config,
  one embedding per modality) and queries per second over a 10,000-clip index (exact NumPy; FAISS if installed).
- step_breakdown (opt-in, not in `all`): one training step of the separation recipe (`settings["breakdown"]`: the
  small config with quality.py's `maps_softmax` options, 4 mixtures of 2 videos: the `cpu30` budget's step) taken
  apart: the collator (mixing, STFTs, targets), the whole step (forward, backward, fused AdamW), and each part of
  the model (vision, pose, audio embeddings, the transformer, the separation U-Net) forward and forward + backward
  alone on the inputs it received in a real forward pass; the rest (heads, losses) is the whole minus the parts;
  and the whole step of the Sound-of-Pixels and audio-only baselines with the same options. Where a fixed
  wall-clock budget's steps go.
- profile (--profile): torch.profiler over one paper-size training step (forward, backward, AdamW) and one small
  separation of the 6-s mixture; the top-15 ops by self CPU time (where time goes when a target is missed).

A peer whose package is missing (`pip install 'tribert_hf[bench]'`) has its row skipped, with the reason in the JSON
and the summary line. --quick runs every suite with tiny configs, few repeats and short audio (seconds; the tests use
it): its figures are not measurements of the real configs. Writes the JSON (atomically; default
benchmarks/results/speed.json for `all`, speed-<suites>.json otherwise) with every measurement, the machine and the
targets with pass/fail, and a Markdown table next to it (same name, .md) generated from the JSON.
"""

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

# benchmarks/common.py (a script's own folder is importable)
from common import (
    PeakRSS,
    example_inputs,
    import_peer,
    machine,
    make_mixtures,
    measure,
    peer_version,
    random_batch,
    reference_features,
    sync,
    timed_runs,
    write_atomic,
)

from tribert_hf import TriBertFeatureExtractor, TriBertForPreTraining, TriBertForSourceSeparation, TriBertModel, separate
from tribert_hf.training import model_config


HERE = os.path.dirname(os.path.abspath(__file__))
LAYOUT = 2  # 1: sections preprocessing, matmul_peak, training (before the suites); see `upgrade_layout`
SUITES = ("features", "bss_eval", "train_step", "separation", "model_size", "retrieval", "step_breakdown")
# `all`: retrieval (its figures live in docs/retrieval.md) and step_breakdown (the separation recipe's step) are opt-in
DEFAULT_SUITES = SUITES[:-2]

aten = torch.ops.aten

# ----------------------------------------------------------------------------------------------------------------
# FLOP counting
# ----------------------------------------------------------------------------------------------------------------


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


# torch's FlopCounterMode knows the CUDA attention kernels but not CPU's fused one, which `scaled_dot_product_attention`
# uses whenever attention dropout is off (eval, or p=0): without these its two matmuls (4 * B * H * Lq * Lk * d FLOPs
# forward, twice that backward) would silently count as zero.
FLOP_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
}
# Ops that do matmul-like work: any of these that the counter has no formula for is reported as `uncounted_ops`.
_MATMUL_LIKE = re.compile(r"^aten\.(\w*mm\w*|\w*conv\w*|\w*attention\w*|einsum|linear|matmul|mv|dot|vdot)$")


class _OpNames(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func._overloadpacket)
        return func(*args, **(kwargs or {}))


def flop_counter() -> FlopCounterMode:
    """The FLOP counter every figure of this suite uses (torch's, plus `FLOP_FORMULAS`)."""
    return FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS)


def count_flops(fn) -> dict:
    """Run `fn()` under `flop_counter()`: total FLOPs, FLOPs per module (fully qualified names, forward and backward
    together) and per op, and the matmul-like ops seen that have no FLOP formula (should be empty)."""
    counter = flop_counter()
    with counter, _OpNames() as seen:
        fn()
    counts = counter.get_flop_counts()
    known = counter.flop_registry
    return {
        "total": counter.get_total_flops(),
        "per_op": {str(op): n for op, n in counts.get("Global", {}).items()},
        "per_module": {name: sum(ops.values()) for name, ops in counts.items() if name != "Global"},
        "uncounted_ops": sorted(str(op) for op in seen.names if op not in known and _MATMUL_LIKE.search(str(op))),
    }



# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _short(name: str, width: int = 60) -> str:
    """A kernel's name cut to `width` characters (CUDA kernels carry their whole template signature)."""
    return name if len(name) <= width else name[: width - 3] + "..."


def top_ops(prof, count: int = 15, key: str = "self_cpu_time_total") -> list[dict]:
    """The `count` ops with the most self CPU time (or, `key="self_device_time_total"`, self GPU time) of a
    torch.profiler run (times in ms, shares in % of all ops' self time of that kind)."""
    events = prof.key_averages()
    cpu_total = sum(e.self_cpu_time_total for e in events) or 1.0
    device_total = sum(getattr(e, "self_device_time_total", 0) or 0 for e in events) or 1.0
    rows = []
    for e in sorted((e for e in events if (getattr(e, key, 0) or 0) > 0), key=lambda e: getattr(e, key), reverse=True)[:count]:
        row = {
            "name": e.key,
            "calls": e.count,
            "self_cpu_ms": e.self_cpu_time_total / 1e3,
            "self_cpu_percent": 100.0 * e.self_cpu_time_total / cpu_total,
            "cpu_total_ms": e.cpu_time_total / 1e3,
        }
        device_time = getattr(e, "self_device_time_total", 0) or 0
        if device_time:
            row["self_device_ms"] = device_time / 1e3
            row["self_device_percent"] = 100.0 * device_time / device_total
        rows.append(row)
    return rows


def profiled(fn, device: torch.device) -> dict:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    wall = time.perf_counter() - start
    out = {"wall_s_profiled": wall, "top_ops_by_self_cpu": top_ops(prof)}
    if device.type == "cuda":  # where the GPU's time goes (CPU time there is mostly kernel launches)
        out["top_ops_by_self_device"] = top_ops(prof, key="self_device_time_total")
    return out




# ----------------------------------------------------------------------------------------------------------------
# Suites
# ----------------------------------------------------------------------------------------------------------------


def audio_features(clips: np.ndarray, repeats: int) -> dict:
    """Our audio features of `clips` (a `(clips, samples)` float32 batch) against the librosa/NumPy reference clip by
    clip, the FFT alone of each, and the peer row: librosa.stft beside our STFT (time and the magnitude's max
    |difference|). Without librosa: our figures only, and `skipped` says why."""
    import scipy.fft

    fe = TriBertFeatureExtractor()
    ours = timed_runs(lambda: fe(clips, sampling_rate=fe.sampling_rate, return_tensors="pt"), repeats)
    # Where the time goes: the FFT alone, ours (SciPy, torch's thread count) and the reference's (numpy.fft, what
    # librosa.stft calls), on the same windowed frames. Neither implementation can beat its FFT.
    half = fe.n_fft // 2
    framed = torch.nn.functional.pad(torch.from_numpy(clips)[:, None], (half, half), mode="reflect")[:, 0]
    framed = (framed.unfold(-1, fe.n_fft, fe.hop_length) * torch.hann_window(fe.n_fft)).numpy()
    workers = torch.get_num_threads()
    fft = timed_runs(lambda: scipy.fft.rfft(framed, axis=-1, workers=workers), repeats)
    ref_fft = timed_runs(lambda: np.fft.rfft(framed, axis=-1), repeats)
    result = {
        "clips": len(clips),
        "clip_samples": clips.shape[-1],
        "ours_median_s": ours["median_s"],
        "ours_times_s": ours["times_s"],
        "ours_clips_per_s": len(clips) / ours["median_s"],
        "fft_only_median_s": fft["median_s"],
        "reference_fft_only_median_s": ref_fft["median_s"],
        "fft_share_of_ours": fft["median_s"] / ours["median_s"],
    }
    librosa, skipped = import_peer("librosa")
    if librosa is None:
        result["skipped"] = {"librosa": skipped}
        return result
    ref = timed_runs(lambda: np.stack([reference_features(c) for c in clips]), repeats)
    features = fe(clips, sampling_rate=fe.sampling_rate, return_tensors="np")["audio_spectrogram"]
    reference = np.stack([reference_features(c) for c in clips])
    result.update({
        "librosa_version": librosa.__version__,
        "reference_median_s": ref["median_s"],
        "reference_times_s": ref["times_s"],
        "reference_clips_per_s": len(clips) / ref["median_s"],
        "speedup": ref["median_s"] / ours["median_s"],
        "fft_share_of_reference": ref_fft["median_s"] / ref["median_s"],
        # the most any implementation with our FFT could reach: the reference's time over our FFT's alone
        "speedup_bound_fft_only": ref["median_s"] / fft["median_s"],
        "max_abs_diff": float(np.abs(features - reference).max()),
        "reference_max_value": float(reference.max()),
    })  # fmt: skip

    # The peer row: the STFT magnitude alone, the whole batch in one call each (librosa takes (..., samples)).
    waveforms = torch.from_numpy(clips)

    def librosa_magnitude():
        stft = librosa.stft(clips, n_fft=fe.n_fft, hop_length=fe.hop_length, window="hann", center=True, pad_mode="reflect")
        return np.abs(stft)

    ours_stft = timed_runs(lambda: fe.magnitude(fe.stft(waveforms)), repeats)
    peer_stft = timed_runs(librosa_magnitude, repeats)
    mine, theirs = fe.magnitude(fe.stft(waveforms)).numpy(), librosa_magnitude()
    result["stft_magnitude"] = {
        "shape": list(mine.shape),
        "ours_median_s": ours_stft["median_s"],
        "ours_times_s": ours_stft["times_s"],
        "librosa_median_s": peer_stft["median_s"],
        "librosa_times_s": peer_stft["times_s"],
        "speedup_over_librosa": peer_stft["median_s"] / ours_stft["median_s"],
        "max_abs_diff": float(np.abs(mine - theirs).max()) if mine.shape == theirs.shape else None,
        "max_value": float(theirs.max()),
    }
    return result


def datasets_map(settings, cache_dir) -> dict:
    """The whole featurizer (audio crop + features, video frames, keypoints) of a prepared dataset through
    datasets.map, num_proc 1 and 2: rows/s and the scaling."""
    import datasets
    from datasets import concatenate_datasets

    from tribert_hf import TriBertProcessor, TriBertVideoProcessor
    from tribert_hf.data import PreparedClipFeaturizer, load_synthetic_music

    root, dataset = load_synthetic_music(settings["synthetic"], cache_dir=cache_dir, progress=False)
    split = dataset[settings["split"]]
    if settings["copies"] > 1:
        split = concatenate_datasets([split] * settings["copies"])
    processor = TriBertProcessor(TriBertFeatureExtractor(), TriBertVideoProcessor())
    featurizer = PreparedClipFeaturizer(root, processor, crop="random", seed=0, return_waveform=True)
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    scaling = {"synthetic": settings["synthetic"], "rows": len(split), "batch_size": 8, "crop": "random"}
    try:
        for num_proc in (1, 2):
            times = []
            for _ in range(settings["map_repeats"]):
                with tempfile.TemporaryDirectory() as tmp:
                    start = time.perf_counter()
                    split.map(
                        featurizer, batched=True, batch_size=8, with_indices=True,
                        num_proc=num_proc if num_proc > 1 else None, remove_columns=split.column_names,
                        features=featurizer.features, load_from_cache_file=False,
                        cache_file_name=os.path.join(tmp, "features.arrow"),
                    )  # fmt: skip
                    times.append(time.perf_counter() - start)
            median = statistics.median(times)
            scaling[f"num_proc_{num_proc}"] = {"median_s": median, "times_s": times, "rows_per_s": len(split) / median}
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
    scaling["scaling_2_over_1"] = scaling["num_proc_2"]["rows_per_s"] / scaling["num_proc_1"]["rows_per_s"]
    return scaling


def suite_features(args, settings, device, profiles) -> dict:
    rng = np.random.default_rng(0)
    clips = (rng.standard_normal((settings["clips"], TriBertFeatureExtractor().num_samples)) * 0.1).astype(np.float32)
    audio = audio_features(clips, args.repeats)
    return {"device": "cpu", "audio_features": audio, "datasets_map": datasets_map(settings, args.synthetic_cache_dir)}


def batched_row(fn, refs, ests, mir_vals, mir_median, repeats, device, metrics) -> dict:
    """A batched BSS Eval implementation beside mir_eval: `fn(refs, ests)` returns the `metrics` (each `(N, 2)`)
    in that order. Warmed up on the first two mixtures (a different batch size), then timed on all of them."""
    num = refs.shape[0]
    out = None

    def run():
        nonlocal out
        out = fn(refs, ests)

    fn(refs[:2], ests[:2])
    sync(device)
    stats = timed_runs(run, repeats, device, warmup=False)
    values = torch.stack([torch.as_tensor(v) for v in out[: len(metrics)]], 1).double().cpu().numpy()  # (N, M, S)
    index = {"sdr": 0, "sir": 1, "sar": 2}
    per_metric = {k: float(np.abs(values[:, i] - mir_vals[:, index[k]]).max()) for i, k in enumerate(metrics)}
    per_mixture = stats["median_s"] / num
    return {
        "metrics": list(metrics),
        "median_s_per_mixture": per_mixture,
        "batch_times_s": stats["times_s"],
        "speedup_over_mir_eval": mir_median / per_mixture,
        "max_abs_diff_db": max(per_metric.values()),
        "max_abs_diff_db_per_metric": per_metric,
    }


def bss_eval_rows(refs: np.ndarray, ests: np.ndarray, repeats: int, device: torch.device) -> dict:
    """mir_eval (per mixture), ours (batched) and the peers (batched) on the same `(N, 2, samples)` mixtures, every
    value compared with mir_eval's: estimate j scored against reference j (no permutation search), 512-tap filter."""
    from tribert_hf.metrics import bss_eval_sources_torch, separation_metrics_mir_eval

    num, samples = refs.shape[0], refs.shape[-1]
    mir_times, mir_vals = [], []
    for b in range(num):
        start = time.perf_counter()
        res = separation_metrics_mir_eval(refs[b], ests[b])
        mir_times.append(time.perf_counter() - start)
        mir_vals.append(np.stack([res["sdr"], res["sir"], res["sar"]]))
    mir_vals = np.stack(mir_vals)  # (N, 3, S)
    mir_median = statistics.median(mir_times)
    refs_t, ests_t = torch.from_numpy(refs).to(device), torch.from_numpy(ests).to(device)
    ours = batched_row(bss_eval_sources_torch, refs_t, ests_t, mir_vals, mir_median, repeats, device, ("sdr", "sir", "sar"))
    result = {
        "device": str(device),
        "mixtures": num,
        "sources": refs.shape[1],
        "samples": samples,
        "mir_eval_median_s_per_mixture": mir_median,
        "mir_eval_times_s": mir_times,
        "fast_median_s_per_mixture": ours["median_s_per_mixture"],
        "fast_batch_times_s": ours["batch_times_s"],
        "speedup": ours["speedup_over_mir_eval"],
        "max_abs_diff_db": ours["max_abs_diff_db"],
        "max_abs_diff_db_per_metric": ours["max_abs_diff_db_per_metric"],
        "mean_sdr_db": float(mir_vals[:, 0].mean()),
        "peers": {},
    }
    fast_bss_eval, skipped = import_peer("fast_bss_eval")
    if fast_bss_eval is None:
        result["peers"]["fast_bss_eval"] = {"skipped": skipped}
    else:
        # torch tensors select its torch backend (its NumPy backend fails under NumPy 2)
        fbe = lambda r, e: fast_bss_eval.bss_eval_sources(r, e, filter_length=512, compute_permutation=False)  # noqa: E731
        row = batched_row(fbe, refs_t, ests_t, mir_vals, mir_median, repeats, device, ("sdr", "sir", "sar"))
        result["peers"]["fast_bss_eval"] = {"version": peer_version("fast_bss_eval"), "backend": "torch", **row}
    torchmetrics, skipped = import_peer("torchmetrics")
    if torchmetrics is None:
        result["peers"]["torchmetrics"] = {"skipped": skipped}
    else:
        from torchmetrics.functional.audio import signal_distortion_ratio

        tm = lambda r, e: (signal_distortion_ratio(e, r, filter_length=512),)  # noqa: E731
        row = batched_row(tm, refs_t, ests_t, mir_vals, mir_median, repeats, device, ("sdr",))
        result["peers"]["torchmetrics"] = {"version": torchmetrics.__version__, "function": "signal_distortion_ratio", **row}
    return result


def suite_bss_eval(args, settings, device, profiles) -> dict:
    refs, ests = make_mixtures(settings["mixtures"], settings["samples"], 11025)
    return {"sample_rate": 11025, **bss_eval_rows(refs, ests, args.repeats, device)}


def matmul_peak(n: int, dtype: torch.dtype, repeats: int, device: torch.device) -> dict:
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    run = timed_runs(lambda: torch.mm(a, b), repeats, device)
    flops = 2 * n**3
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "flops": flops, **run, "flop_per_s": flops / run["median_s"]}


def suite_train_step(args, settings, device, profiles) -> dict:
    """The matmul peak, the MFU of forward + backward (`settings["train_config"]`), then one optimizer step of each
    of `settings["step_configs"]` (time and peak memory)."""
    dtype = "bf16" if args.bf16 else "fp32"
    peak = {"device": str(device), "fp32": matmul_peak(settings["matmul_n"], torch.float32, settings["matmul_repeats"], device)}
    if args.bf16:
        peak["bf16"] = matmul_peak(settings["matmul_n"], torch.bfloat16, settings["matmul_repeats"], device)
    size = settings["train_config"]
    torch.manual_seed(0)
    config, _ = model_config(size)
    model = TriBertForPreTraining(config).to(device).train()
    mixtures = settings["train_mixtures"]
    batch = {k: v.to(device) for k, v in random_batch(config, mixtures).items()}

    def forward():
        with autocast(device, args.bf16):
            return model(**batch).loss

    def forward_backward():
        model.zero_grad(set_to_none=True)
        forward().backward()

    forward_flops = count_flops(forward)
    step_flops = count_flops(forward_backward)
    stats = measure(forward_backward, args.repeats, device)
    achieved = step_flops["total"] / stats["median_s"]
    # The peak again, right after the timed steps: on a shared machine one measurement can land in a slow moment.
    # The MFU divides by the higher of the two (it can only come out lower for it).
    peak_after = matmul_peak(settings["matmul_n"], getattr(torch, "bfloat16" if args.bf16 else "float32"), settings["matmul_repeats"], device)
    peak_flop_per_s = max(peak[dtype]["flop_per_s"], peak_after["flop_per_s"])
    result = {
        "config": size,
        "device": str(device),
        "dtype": dtype,
        "parameters": sum(p.numel() for p in model.parameters()),
        "mixtures_per_step": mixtures,
        "videos_per_step": 2 * mixtures,
        "forward_flops": forward_flops["total"],
        "forward_backward_flops": step_flops["total"],
        "backward_over_forward": (step_flops["total"] - forward_flops["total"]) / max(forward_flops["total"], 1),
        "flops_per_op": step_flops["per_op"],
        # per module from the forward pass only: torch's module tracker does not attribute backward FLOPs reliably
        "forward_flops_per_module": {
            k: v for k, v in sorted(forward_flops["per_module"].items(), key=lambda kv: -kv[1]) if k.count(".") <= 2
        },
        "uncounted_ops": sorted(set(forward_flops["uncounted_ops"]) | set(step_flops["uncounted_ops"])),
        **stats,
        "achieved_flop_per_s": achieved,
        "peak_flop_per_s_before": peak[dtype]["flop_per_s"],
        "peak_flop_per_s_after": peak_after["flop_per_s"],
        "peak_flop_per_s": peak_flop_per_s,
        "mfu": achieved / peak_flop_per_s,
        "matmul_peak": peak,
    }
    if args.profile:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

        def step():
            forward_backward()
            optimizer.step()

        profiles["training_step"] = {"config": size, "what": "forward + backward + AdamW step", **profiled(step, device)}
        del optimizer
    del model
    result["steps"] = {name: optimizer_step(name, n, args, device) for name, n in settings["step_configs"].items()}
    return result


def training_step(model, batch: dict, device: torch.device, bf16: bool):
    """A function doing one optimizer step of `model` on `batch` (forward, backward, fused AdamW as the recipe)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

    def step():
        with autocast(device, bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def optimizer_step(size: str, mixtures: int, args, device) -> dict:
    """One optimizer step of `TriBertForPreTraining` (joint loss; forward, backward, fused AdamW) of the `size`
    config on `mixtures` random mixtures of 2 videos: median time and peak memory (`common.measure`)."""
    torch.manual_seed(0)
    config, _ = model_config(size)
    model = TriBertForPreTraining(config).to(device).train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    step = training_step(model, {k: v.to(device) for k, v in random_batch(config, mixtures).items()}, device, args.bf16)
    stats = measure(step, args.repeats, device)
    parameters = sum(p.numel() for p in model.parameters())
    del model, step
    return {
        **stats, "mixtures_per_step": mixtures, "videos_per_step": 2 * mixtures, "parameters": parameters,
        "seconds_per_mixture": stats["median_s"] / mixtures, "gradient_checkpointing": args.gradient_checkpointing,
    }  # fmt: skip


def suite_separation(args, settings, device, profiles) -> dict:
    fe = TriBertFeatureExtractor()
    result = {"device": str(device), "dtype": "bf16" if args.bf16 else "fp32", "videos": 2, "segment_batch_size": 8}
    for role, size in settings["separation_configs"].items():
        torch.manual_seed(0)
        config, _ = model_config(size)
        model = TriBertForSourceSeparation(config).to(device).eval()
        clips = example_inputs(config, batch_size=2)  # two videos of one mixture
        videos = {k: clips[k].to(device) for k in ("pixel_values", "pose_keypoints", "pose_mask")}
        entry = {
            "config": size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "unet_parameters": sum(p.numel() for p in model.separation.parameters()),
        }
        for length, seconds in settings["audio_seconds"].items():
            samples = int(round(seconds * fe.sampling_rate))
            waveform = (torch.randn(samples, generator=torch.Generator().manual_seed(0)) * 0.1).to(device)

            def run():
                with autocast(device, args.bf16):
                    separate(model, waveform, fe, videos["pixel_values"], videos["pose_keypoints"], pose_mask=videos["pose_mask"])

            short = length == "short"
            repeats = args.repeats if short else settings["long_repeats"]
            with PeakRSS() as rss:
                # the short mixture warms the model up; the long one runs after it on the same warm model
                stats = timed_runs(run, repeats, device, warmup=short)
            hop = int(round(fe.num_samples * 0.75))
            segments = 1 if samples <= fe.num_samples else len(range(0, samples - fe.num_samples, hop)) + 1
            entry[length] = {
                "audio_seconds": samples / fe.sampling_rate,
                "samples": samples,
                "segments": segments,
                **stats,
                "real_time_factor": samples / fe.sampling_rate / stats["median_s"],
                "peak_rss_increase_mb": (rss.peak - rss.start) / 2**20,
            }
            if short and args.profile and role == "small":
                profiles["separation"] = {"config": size, "what": f"separate() of a {seconds:.2f}-s mixture, 2 videos", **profiled(run, device)}
        result[role] = entry
        del model
    return result


def suite_model_size(args, settings, device, profiles) -> dict:
    """Parameters per component of `TriBertModel` (`settings["model_size_config"]`), and its forward (inference
    mode) and forward + backward (train mode) time and peak memory for one sample."""
    import psutil

    size = settings["model_size_config"]
    torch.manual_seed(0)
    config, _ = model_config(size)
    model = TriBertModel(config).to(device).eval()
    inputs = {k: v.to(device) for k, v in example_inputs(config, batch_size=1).items()}
    rss_after_build = psutil.Process().memory_info().rss / 2**20

    def forward():
        with torch.inference_mode(), autocast(device, args.bf16):
            model(**inputs)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        with autocast(device, args.bf16):
            out = model(**inputs)
        (out.vision_pooler_output.sum() + out.pose_pooler_output.sum() + out.audio_pooler_output.sum()).backward()

    result = {
        "config": size,
        "device": str(device),
        "dtype": "bf16" if args.bf16 else "fp32",
        "attn_implementation": config._attn_implementation,
        "batch_size": 1,
        "parameters": model.parameter_counts(),
        "process_rss_after_build_mb": rss_after_build,
        "forward": measure(forward, args.repeats, device),
    }
    model.train()
    result["forward_backward_train_mode"] = measure(forward_backward, max(1, args.repeats // 2), device)
    del model
    return result


def suite_retrieval(args, settings, device, profiles) -> dict:
    """Embedding retrieval (opt-in: `--suite retrieval`): clips embedded per second (vision, pose and audio of
    each clip, `TriBertForContrastiveRetrieval` of the small config, random weights) and queries per second over an
    index of 10,000 clips (random normalised embeddings: search speed does not depend on their values), exact NumPy
    one query at a time and 100 at once, and FAISS (exact inner product) when installed."""
    from tribert_hf import TriBertForContrastiveRetrieval
    from tribert_hf.retrieval_index import embed_clips, exact_top_k, faiss_available

    size, clips, dim = ("tiny", 8, 64) if args.quick else ("small", 32, 256)
    pool, k = (1000 if args.quick else 10000), 10
    config, _ = model_config(size)
    config.retrieval_hidden_size = dim
    torch.manual_seed(0)
    model = TriBertForContrastiveRetrieval(config).to(device).eval()
    inputs = {key: value.to(device) for key, value in example_inputs(config, batch_size=clips).items()}
    embedding = timed_runs(lambda: embed_clips(model, inputs, batch_size=clips), args.repeats, device)
    per_modality = {}
    for modality in ("vision", "pose", "audio"):
        stats = timed_runs(lambda: embed_clips(model, inputs, batch_size=clips, modalities=(modality,)), args.repeats, device)
        per_modality[modality] = clips / stats["median_s"]
    # the joint encoder (TriBertForRetrieval, audio -> vision) scores one (query, candidate) pair per forward pass
    from tribert_hf import TriBertForRetrieval

    torch.manual_seed(0)
    joint = TriBertForRetrieval(config).to(device).eval()
    query = {key: value[0] for key, value in inputs.items()}
    pairs = timed_runs(lambda: joint.score_pool(query, inputs, batch_size=clips), args.repeats, device)
    del joint
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((pool, dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    queries = matrix[rng.choice(pool, 100, replace=False)] + 0.01 * rng.standard_normal((100, dim)).astype(np.float32)
    single = timed_runs(lambda: [exact_top_k(matrix, q[None], k) for q in queries], args.repeats, torch.device("cpu"))
    batched = timed_runs(lambda: exact_top_k(matrix, queries, k), args.repeats, torch.device("cpu"))
    result = {
        "config": size, "embedding_dim": dim, "clips_per_batch": clips, "device": str(device), "torch_threads": torch.get_num_threads(),
        "clips_per_s": clips / embedding["median_s"], "clips_per_s_by_modality": per_modality, "embedding": embedding,
        "index_clips": pool, "k": k,
        "numpy_queries_per_s_one_at_a_time": 100 / single["median_s"], "numpy_ms_per_query": 1e3 * single["median_s"] / 100,
        "numpy_queries_per_s_batched_100": 100 / batched["median_s"],
        "joint_pairs_per_s": clips / pairs["median_s"], "joint_seconds_per_query_over_index": pool * pairs["median_s"] / clips,
    }  # fmt: skip
    if faiss_available():
        import faiss

        index = faiss.IndexFlatIP(dim)
        index.add(matrix)
        faiss_single = timed_runs(lambda: [index.search(q[None], k) for q in queries], args.repeats, torch.device("cpu"))
        result["faiss_queries_per_s_one_at_a_time"] = 100 / faiss_single["median_s"]
        result["faiss_ms_per_query"] = 1e3 * faiss_single["median_s"] / 100
        result["faiss_agrees_with_numpy"] = bool((index.search(queries, k)[1] == exact_top_k(matrix, queries, k)[1]).all())
    return result



# ----------------------------------------------------------------------------------------------------------------
# Where a separation training step's time goes
# ----------------------------------------------------------------------------------------------------------------

# TriBertForPreTraining's parts, each timed alone on the inputs it got in a real forward pass
BREAKDOWN_COMPONENTS = {
    "tribert.vision_embeddings": "vision: frame backbone + tokens",
    "tribert.pose_embeddings": "pose: ST-GCN + tokens",
    "tribert.audio_embeddings": "audio: VGGish-style CNN + tokens",
    "tribert.encoder": "transformer (self + co-attention layers)",
    "separation": "separation U-Net (encoder once per mixture, decoder once per video)",
}


def _tensors(value) -> list[torch.Tensor]:
    """Every tensor in a (nested) output: tensors, tuples, lists, dicts, ModelOutputs."""
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    return []


def _detached(value):
    """A copy of a module's input cut from the graph it came from; a tensor that needed a gradient still needs one
    (so that the backward pass computes what it computes inside the whole model)."""
    if torch.is_tensor(value):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    return value


def capture_inputs(model: torch.nn.Module, names, run) -> dict:
    """`{name: (args, kwargs)}`: what each named submodule received the first time `run()` called it."""
    captured, handles = {}, []
    for name in names:
        def hook(module, args, kwargs, name=name):
            if name not in captured:
                captured[name] = (_detached(args), _detached(kwargs))

        handles.append(model.get_submodule(name).register_forward_pre_hook(hook, with_kwargs=True))
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return captured


def breakdown_batch(config, mixtures: int, mask_type: str, seed: int = 0):
    """The collator's input (`mixtures x 2` featurized clips of random audio and the recipe's shapes) and the
    collator: what a training step's data costs besides reading the rows."""
    from tribert_hf.data import MixAndSeparateCollator

    g = torch.Generator().manual_seed(seed)
    random = random_batch(config, mixtures, seed=seed)
    examples = []
    for m in range(mixtures):
        for v in range(2):
            examples.append({
                "waveform": 0.1 * torch.randn(1, 65535, generator=g),
                "pixel_values": random["pixel_values"][m, v], "pose_keypoints": random["pose_keypoints"][m, v],
                "pose_mask": random["pose_mask"][m, v], "class_labels": random["class_labels"][m, v],
            })  # fmt: skip
    collate = MixAndSeparateCollator(TriBertFeatureExtractor(num_frequency_bins=config.audio_config.num_frequency_bins),
                                     mask_type=mask_type, gain_range=(0.5, 1.5), seed=seed)  # fmt: skip
    return examples, collate


def suite_step_breakdown(args, settings, device, profiles) -> dict:
    """One training step of the separation recipe (`settings["breakdown"]`: the model size, mixtures of 2 videos,
    the recipe's mask options) taken apart: the collator (mixing, STFTs, mask targets), the whole optimizer step
    (forward, backward, fused AdamW), and each part of the model (`BREAKDOWN_COMPONENTS`) forward and forward +
    backward on the inputs it received in a real forward pass (what is left of the step: the classification heads,
    the losses, the glue); then the whole step of the two baselines of the same recipe (same U-Net budget)."""
    from tribert_hf.training.presets import build_config, model_class

    b = settings["breakdown"]
    options = {k: b[k] for k in ("mask_type", "mask_activation", "separation_condition_maps")}
    torch.manual_seed(0)
    config, _ = model_config(b["config"])
    for key, value in options.items():
        setattr(config, key, value)
    model = TriBertForPreTraining(config).to(device).train()
    examples, collate = breakdown_batch(config, b["mixtures"], b["mask_type"])
    collator = measure(lambda: collate(examples), args.repeats, torch.device("cpu"))
    batch = collate(examples)
    inputs = {k: batch[k].to(device) for k in ("pixel_values", "pose_keypoints", "pose_mask", "audio_spectrogram", "class_labels", "labels", "loss_weight")}

    def forward_backward():
        with autocast(device, args.bf16):
            loss = model(**inputs).loss
        loss.backward()

    step = training_step(model, inputs, device, args.bf16)
    whole = measure(step, args.repeats, device)
    # the same step with the convolutions' weights in channels-last layout (run_separation.py --channels_last),
    # timed alternately with the default layout so that both see the same load
    fast = TriBertForPreTraining(config).to(device).train()
    fast.load_state_dict(model.state_dict())
    fast_step = training_step(fast.to(memory_format=torch.channels_last), inputs, device, args.bf16)
    layouts = alternately({"contiguous": step, "channels_last": fast_step}, args.repeats, device)
    layouts["speedup"] = layouts["contiguous"]["median_s"] / layouts["channels_last"]["median_s"]
    del fast, fast_step
    model.zero_grad(set_to_none=True)
    forward_backward_whole = measure(lambda: (forward_backward(), model.zero_grad(set_to_none=True)), args.repeats, device)
    captured = capture_inputs(model, BREAKDOWN_COMPONENTS, lambda: model(**inputs))
    components = {}
    for name, what in BREAKDOWN_COMPONENTS.items():
        module = model.get_submodule(name)
        call_args, call_kwargs = captured[name]

        def forward(module=module, call_args=call_args, call_kwargs=call_kwargs):
            with autocast(device, args.bf16):
                return module(*call_args, **call_kwargs)

        def forward_and_backward(forward=forward):
            outputs = [t for t in _tensors(forward()) if t.requires_grad and t.is_floating_point()]
            torch.stack([t.float().sum() for t in outputs]).sum().backward()
            model.zero_grad(set_to_none=True)

        components[name] = {
            "what": what,
            "parameters": sum(p.numel() for p in module.parameters()),
            "forward": measure(forward, args.repeats, device),
            "forward_backward": measure(forward_and_backward, args.repeats, device),
        }
    parts = sum(c["forward_backward"]["median_s"] for c in components.values())
    for c in components.values():
        c["share_of_forward_backward"] = c["forward_backward"]["median_s"] / forward_backward_whole["median_s"]
    result = {
        "config": b["config"], "device": str(device), "dtype": "bf16" if args.bf16 else "fp32",
        "recipe_options": options, "mixtures_per_step": b["mixtures"], "videos_per_step": 2 * b["mixtures"],
        "torch_threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in model.parameters()),
        "step": whole, "forward_backward": forward_backward_whole, "collator": collator, "components": components,
        "memory_format": layouts,
        "rest_forward_backward_s": forward_backward_whole["median_s"] - parts,
        "optimizer_s": whole["median_s"] - forward_backward_whole["median_s"],
    }  # fmt: skip
    del model, step
    baselines = {}
    for name in ("sop", "audio_only"):
        torch.manual_seed(0)
        base_config, _ = build_config(name, b["config"])
        for key in ("mask_type", "mask_activation"):
            setattr(base_config, key, options[key])
        base = model_class(name)(base_config).to(device).train()
        stats = measure(training_step(base, inputs, device, args.bf16), args.repeats, device)
        baselines[name] = {**stats, "parameters": sum(p.numel() for p in base.parameters()), "over_tribert": stats["median_s"] / whole["median_s"]}
        del base
    result["baselines"] = baselines
    result["output_stride"] = output_stride_steps(b, options, inputs, args, device)
    return result


def alternately(steps: dict, repeats: int, device: torch.device) -> dict:
    """Each of `steps` (name -> function) timed `repeats` times, taking turns (one warm-up call each first), so that
    all see the same load: name -> {"median_s", "times_s"}."""
    times = {name: [] for name in steps}
    for fn in steps.values():
        fn()
    for _ in range(repeats):
        for name, fn in steps.items():
            started = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - started)
    return {name: {"median_s": statistics.median(t), "times_s": t} for name, t in times.items()}


def output_stride_steps(b: dict, options: dict, inputs: dict, args, device) -> dict:
    """The whole step of TriBERT (`TriBertForPreTraining`) and of both baselines with the U-Net's last layer at full
    resolution (`separation_output_stride` 1) and at half (2), the same weights, timed alternately per method: what
    the half-resolution output saves each method's step (and so how many more steps fit a fixed budget)."""
    from tribert_hf.training.presets import build_config, model_class

    out = {}
    for name in ("tribert", "sop", "audio_only"):
        torch.manual_seed(0)
        config, _ = build_config(name, b["config"])
        for key, value in options.items():
            if hasattr(config, key):
                setattr(config, key, value)
        full = model_class(name)(config).to(device).train()
        config.separation_output_stride = 2
        half = model_class(name)(config).to(device).train()
        half.load_state_dict(full.state_dict())
        steps = {f"stride_{k}": training_step(m, inputs, device, args.bf16) for k, m in ((1, full), (2, half))}
        timed = alternately(steps, args.repeats, device)
        out[name] = {**timed, "speedup": timed["stride_1"]["median_s"] / timed["stride_2"]["median_s"]}
        del full, half, steps
    return out


SUITE_FUNCTIONS = {
    "features": suite_features,
    "bss_eval": suite_bss_eval,
    "train_step": suite_train_step,
    "separation": suite_separation,
    "model_size": suite_model_size,
    "retrieval": suite_retrieval,
    "step_breakdown": suite_step_breakdown,
}


# ----------------------------------------------------------------------------------------------------------------
# Layout, targets, report
# ----------------------------------------------------------------------------------------------------------------


def upgrade_layout(result: dict) -> dict:
    """A result of an older layout in this one, losslessly (same values, moved): layout 1 (before the suites) had
    the sections `preprocessing` (now the `features` suite) and `matmul_peak` + `training` (now `train_step`: the
    training figures at its top level, the peak under `matmul_peak`, with its own `wall_s`; the suite's `wall_s` is
    the sum of the two)."""
    if result.get("layout", 1) >= LAYOUT:
        return result
    sections = {}
    for name, sec in result["sections"].items():
        if name == "preprocessing":
            sections["features"] = sec
        elif name in ("matmul_peak", "training"):
            step = sections.setdefault("train_step", {})
            if name == "matmul_peak":
                step["matmul_peak"] = sec
            else:
                step.update({k: v for k, v in sec.items() if k != "wall_s"})
                step["training_wall_s"] = sec.get("wall_s")
        else:
            sections[name] = sec
    step = sections.get("train_step")
    if step is not None:
        parts = [step.pop("training_wall_s", None), step.get("matmul_peak", {}).get("wall_s")]
        step["wall_s"] = sum(p for p in parts if p is not None)
        if "matmul_peak" in step:  # the peak first, as a run of this layout writes it
            sections["train_step"] = {"matmul_peak": step.pop("matmul_peak"), **step}
    return {**result, "layout": LAYOUT, "upgraded_from_layout": result.get("layout", 1), "sections": sections}


def targets(result: dict) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met (None: not measured)."""
    s = result["sections"]

    def get(*path):
        value = s
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    device = result["machine"]["device"]
    rows = [
        ("training MFU (forward+backward FLOP/s / matmul peak)", get("train_step", "mfu"), ">=", 0.5, "ratio"),
        ("separation real-time factor, small config, 6-s mixture", get("separation", "small", "short", "real_time_factor"), ">=", 20.0, "x"),
        ("separation real-time factor, small config, 3-min mixture", get("separation", "small", "long", "real_time_factor"), ">=", 20.0, "x"),
        ("bss_eval speedup over mir_eval", get("bss_eval", "speedup"), ">=", 20.0, "x"),
        ("bss_eval max abs difference vs mir_eval (SDR/SIR/SAR)", get("bss_eval", "max_abs_diff_db"), "<=", 0.01, "dB"),
        ("audio features speedup over librosa/numpy", get("features", "audio_features", "speedup"), ">=", 5.0, "x"),
    ]
    out = []
    for name, measured, op, target, unit in rows:
        met = None if measured is None else bool(measured >= target if op == ">=" else measured <= target)
        out.append({"name": name, "measured": measured, "comparison": op, "target": target, "unit": unit, "met": met, "device": device})
    return out


def _fmt(value, unit) -> str:
    if value is None:
        return "not measured"
    if unit == "ratio":
        return f"{100 * value:.1f} %"
    if unit == "dB":
        return f"{value:.2e} dB"
    return f"{value:.2f}{unit}"


def _loads(values) -> str:
    return "n/a" if values is None else ", ".join(f"{v:.2f}" for v in values)


def _busy(m: dict) -> bool:
    """Other work on the machine: a load of 1 before the run, or at its end more than this run's own threads + 1."""
    start, end = m.get("load_average_at_start"), m.get("load_average_at_end")
    return (start is not None and start[0] >= 1.0) or (end is not None and end[0] >= m["torch_threads"] + 1.0)


def _cell(text) -> str:
    return str(text).replace("|", "\\|")


def _ok(s: dict, name: str) -> bool:
    return name in s and "error" not in s[name]


def markdown(result: dict) -> str:
    """The Markdown report, generated from the JSON result alone: every target (figure, measured, target, met?),
    the other headline figures, the peer rows, and the profiles."""
    m, s = result["machine"], result["sections"]
    lines = [
        "# Speed suite" + (" (--quick: tiny configs, not real measurements)" if result["quick"] else ""),
        "",
        f"Generated from `{os.path.basename(result['output'])}` by `benchmarks/speed.py` on {result['finished']}: "
        f"{m['device_name']} ({m['device']}), {m['cpu_count']} CPU cores, {m['torch_threads']} torch threads, torch "
        f"{m['torch']}, {result['dtype']}; load average (1, 5, 15 min) at start {_loads(m.get('load_average_at_start'))}, "
        f"at the end {_loads(m.get('load_average_at_end'))}"
        + (" (**other work competed for the CPU: timings are not clean**)." if _busy(m) else "."),
        "",
        "| figure | measured | target | met? |",
        "|---|---|---|---|",
    ]
    for t in result["targets"]:
        goal = f"{t['comparison']} {_fmt(t['target'], t['unit'])}"
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {_cell(t['name'])} | {_fmt(t['measured'], t['unit'])} | {goal} | {met} |")

    def row(name, value):
        lines.append(f"| {_cell(name)} | {_cell(value)} | - | - |")

    if _ok(s, "train_step"):
        t = s["train_step"]
        row(f"training [{t['config']}] forward+backward FLOPs per step", f"{t['forward_backward_flops'] / 1e9:.1f} GFLOP")
        row("training step time (median)", f"{t['median_s']:.3f} s")
        row("training achieved FLOP/s", f"{t['achieved_flop_per_s'] / 1e9:.1f} GFLOP/s")
        if "peak_flop_per_s_after" in t:
            row("MFU denominator: matmul peak before / after the training steps (the higher counts)",
                f"{t['peak_flop_per_s_before'] / 1e9:.1f} / {t['peak_flop_per_s_after'] / 1e9:.1f} GFLOP/s")  # fmt: skip
        for dtype in ("fp32", "bf16"):
            if dtype in t.get("matmul_peak", {}):
                p = t["matmul_peak"][dtype]
                row(f"matmul peak {dtype} (n={p['n']})", f"{p['flop_per_s'] / 1e9:.1f} GFLOP/s")
        for name, e in t.get("steps", {}).items():
            row(f"optimizer step [{name}], {e['mixtures_per_step']} mixture(s) of 2 videos ({e['parameters'] / 1e6:.1f} M parameters): time, peak memory",
                f"{e['median_s']:.2f} s ({e['seconds_per_mixture']:.2f} s / mixture), +{e['peak_memory_mb']:.0f} MiB")  # fmt: skip
    if _ok(s, "separation"):
        for role in ("small", "paper"):
            for length in ("short", "long"):
                e = s["separation"].get(role, {}).get(length)
                if e:
                    row(f"separation RTF, {role} role [{s['separation'][role]['config']}], {e['audio_seconds']:.1f}-s mixture",
                        f"{e['real_time_factor']:.2f}x ({e['median_s']:.2f} s)")  # fmt: skip
    if _ok(s, "bss_eval"):
        b = s["bss_eval"]
        for name, p in b.get("peers", {}).items():
            if "skipped" in p:
                row(f"bss_eval peer {name}", p["skipped"])
            else:
                what = f"{p['backend']} backend" if "backend" in p else f"{p['function']}, SDR only"
                row(f"bss_eval peer {name} {p['version']} ({what}): ms / mixture (speedup over mir_eval), max |diff| vs mir_eval",
                    f"{p['median_s_per_mixture'] * 1e3:.2f} ms ({p['speedup_over_mir_eval']:.1f}x; ours {b['speedup']:.1f}x), {p['max_abs_diff_db']:.1e} dB")  # fmt: skip
    if _ok(s, "features"):
        a, d = s["features"]["audio_features"], s["features"]["datasets_map"]
        if "reference_median_s" in a:
            row(f"audio features: ours / librosa reference, {a['clips']} clips", f"{a['ours_median_s'] * 1e3:.1f} ms / {a['reference_median_s'] * 1e3:.1f} ms")
        if "fft_share_of_reference" in a:
            row("the FFT alone: ours (SciPy) / the reference's (numpy.fft)",
                f"{a['fft_only_median_s'] * 1e3:.1f} ms ({a['fft_share_of_ours']:.0%} of ours) / {a['reference_fft_only_median_s'] * 1e3:.1f} ms ({a['fft_share_of_reference']:.0%} of the reference)")  # fmt: skip
        if "speedup_bound_fft_only" in a:
            row("audio features: speedup bound (reference time / our FFT alone)", f"{a['speedup_bound_fft_only']:.2f}x")
        if "stft_magnitude" in a:
            p = a["stft_magnitude"]
            row(f"STFT magnitude peer: ours / librosa.stft {a.get('librosa_version', '')}, {a['clips']} clips (max |diff|, values up to)",
                f"{p['ours_median_s'] * 1e3:.1f} ms / {p['librosa_median_s'] * 1e3:.1f} ms ({p['max_abs_diff']:.1e}, {p['max_value']:.1f})")  # fmt: skip
        for name, why in a.get("skipped", {}).items():
            row(f"audio features peer {name}", why)
        row(f"featurizer datasets.map num_proc=1 ({d['rows']} rows)", f"{d['num_proc_1']['rows_per_s']:.1f} rows/s")
        row("featurizer datasets.map num_proc=2", f"{d['num_proc_2']['rows_per_s']:.1f} rows/s")
        row("datasets.map scaling num_proc 2 / 1", f"{d['scaling_2_over_1']:.2f}x")
    if _ok(s, "model_size"):
        z = s["model_size"]
        p = z["parameters"]
        row(f"model size [{z['config']}]: parameters (vision backbone, co-attention)",
            f"{p['total'] / 1e6:.1f} M ({p.get('vision_backbone', 0) / 1e6:.1f} M, {p.get('co_attention_layers', 0) / 1e6:.1f} M)")  # fmt: skip
        row(f"model size [{z['config']}]: forward / forward+backward of 1 sample (median, peak memory)",
            f"{z['forward']['median_s']:.2f} s (+{z['forward']['peak_memory_mb']:.0f} MiB) / "
            f"{z['forward_backward_train_mode']['median_s']:.2f} s (+{z['forward_backward_train_mode']['peak_memory_mb']:.0f} MiB)")  # fmt: skip
    if _ok(s, "retrieval"):
        r = s["retrieval"]
        row(f"retrieval [{r['config']}]: clips embedded per second (vision + pose + audio)", f"{r['clips_per_s']:.1f}")
        row(f"retrieval: queries per second, {r['index_clips']}-clip index, exact NumPy (one at a time / 100 at once)",
            f"{r['numpy_queries_per_s_one_at_a_time']:.0f} / {r['numpy_queries_per_s_batched_100']:.0f}")  # fmt: skip
        if "faiss_queries_per_s_one_at_a_time" in r:
            row("retrieval: queries per second, FAISS IndexFlatIP (one at a time)", f"{r['faiss_queries_per_s_one_at_a_time']:.0f}")
        row("retrieval: joint encoder pairs per second (seconds per query over the index)", f"{r['joint_pairs_per_s']:.1f} ({r['joint_seconds_per_query_over_index']:.0f} s)")
    if _ok(s, "step_breakdown"):
        t = s["step_breakdown"]
        options = ", ".join(f"{k}={v}" for k, v in t["recipe_options"].items())
        lines += ["", f"## A separation training step taken apart [{t['config']}], {t['mixtures_per_step']} mixtures of 2 videos, "
                  f"{t['torch_threads']} thread(s), {options}", "",
                  "| part | parameters | forward (median) | forward + backward (median) | share of forward + backward |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        whole = t["forward_backward"]["median_s"]
        for name, c in t["components"].items():
            lines.append(f"| `{name}` ({_cell(c['what'])}) | {c['parameters'] / 1e6:.2f} M | {c['forward']['median_s'] * 1e3:.0f} ms "
                         f"| {c['forward_backward']['median_s'] * 1e3:.0f} ms | {c['share_of_forward_backward']:.0%} |")  # fmt: skip
        lines.append(f"| the rest (heads, losses, glue: whole minus parts) | | | {t['rest_forward_backward_s'] * 1e3:.0f} ms | {t['rest_forward_backward_s'] / whole:.0%} |")
        lines.append(f"| **whole model** | {t['parameters'] / 1e6:.2f} M | | **{whole * 1e3:.0f} ms** | 100% |")
        lines += ["", f"Optimizer step (fused AdamW): {t['optimizer_s'] * 1e3:.0f} ms; the whole step (forward, backward, AdamW) "
                  f"{t['step']['median_s'] * 1e3:.0f} ms; the collator (mixing, STFTs, targets of {t['videos_per_step']} clips) "
                  f"{t['collator']['median_s'] * 1e3:.0f} ms. The baselines' whole step with the same options: "
                  + ", ".join(f"{name} {e['median_s'] * 1e3:.0f} ms ({e['over_tribert']:.2f}x TriBERT's)" for name, e in t["baselines"].items())
                  + "."]  # fmt: skip
        if "memory_format" in t:
            f = t["memory_format"]
            lines += ["", f"The whole step with the convolutions' weights in channels-last layout (`run_separation.py "
                      f"--channels_last`), timed alternately with the default layout: {f['channels_last']['median_s'] * 1e3:.0f} ms "
                      f"against {f['contiguous']['median_s'] * 1e3:.0f} ms, **{f['speedup']:.2f}x**."]  # fmt: skip
        if "output_stride" in t:
            lines += ["", "The whole step with the U-Net's last layer at half resolution (`--separation_output_stride 2`), "
                      "timed alternately with full resolution, the same weights: "
                      + "; ".join(f"{name} {o['stride_2']['median_s'] * 1e3:.0f} ms against {o['stride_1']['median_s'] * 1e3:.0f} ms, "
                                  f"**{o['speedup']:.2f}x**" for name, o in t["output_stride"].items()) + "."]  # fmt: skip
    errors = [name for name, sec in s.items() if isinstance(sec, dict) and "error" in sec]
    if errors:
        lines += ["", "Suites that failed: " + ", ".join(errors) + " (see the JSON)."]
    for name, p in result.get("profile", {}).items():
        lines += ["", f"## Profile: {name} [{p['config']}], {p['what']}: top ops by self CPU time", "",
                  "| op | calls | self CPU ms | self CPU % |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| `{_cell(o['name'])}` | {o['calls']} | {o['self_cpu_ms']:.1f} | {o['self_cpu_percent']:.1f} |" for o in p["top_ops_by_self_cpu"]]
        if p.get("top_ops_by_self_device"):
            lines += ["", f"## Profile: {name} [{p['config']}], {p['what']}: top ops by self GPU time", "",
                      "| op | calls | self GPU ms | self GPU % |", "|---|---|---|---|"]  # fmt: skip
            lines += [f"| `{_cell(_short(o['name'], 90))}` | {o['calls']} | {o['self_device_ms']:.1f} | {o['self_device_percent']:.1f} |" for o in p["top_ops_by_self_device"]]
    return "\n".join(lines) + "\n"


def _peers_summary(peers: dict, fmt) -> str:
    parts = [f"{name} {p['skipped']}" if "skipped" in p else fmt(name, p) for name, p in peers.items()]
    return "; peers: " + "; ".join(parts) if parts else ""


def summary_line(name: str, sec: dict) -> str:
    if "error" in sec:
        return f"{name}: FAILED: {sec['error'].strip().splitlines()[-1]}"
    if name == "features":
        a, d = sec["audio_features"], sec["datasets_map"]
        if "speedup" in a:
            p = a["stft_magnitude"]
            audio = (
                f"audio features {a['ours_clips_per_s']:.0f} clips/s vs librosa/numpy {a['reference_clips_per_s']:.0f} "
                f"clips/s ({a['speedup']:.2f}x, max |diff| {a['max_abs_diff']:.1e}; the FFT alone is "
                f"{a['fft_share_of_ours']:.0%} of ours, numpy's FFT {a['fft_share_of_reference']:.0%} of the reference: "
                f"no implementation with our FFT can pass {a['speedup_bound_fft_only']:.1f}x); STFT magnitude: ours "
                f"{p['ours_median_s'] * 1e3:.1f} ms vs librosa.stft {p['librosa_median_s'] * 1e3:.1f} ms "
                f"({p['speedup_over_librosa']:.2f}x, max |diff| {p['max_abs_diff']:.1e} of values up to {p['max_value']:.1f})"
            )
        else:
            audio = f"audio features {a['ours_clips_per_s']:.0f} clips/s; librosa rows " + a["skipped"]["librosa"]
        return (
            f"features: {audio}; featurizer via datasets.map ({d['rows']} rows) num_proc=1 "
            f"{d['num_proc_1']['rows_per_s']:.1f} rows/s, num_proc=2 {d['num_proc_2']['rows_per_s']:.1f} rows/s "
            f"({d['scaling_2_over_1']:.2f}x)"
        )
    if name == "bss_eval":
        peers = _peers_summary(sec.get("peers", {}), lambda n, p: (
            f"{n} {p['median_s_per_mixture'] * 1e3:.2f} ms/mixture ({p['speedup_over_mir_eval']:.1f}x, "
            f"{'/'.join(p['metrics']).upper()}), max |diff| {p['max_abs_diff_db']:.1e} dB"
        ))  # fmt: skip
        return (
            f"bss_eval: {sec['mixtures']} x 2-source mixtures of {sec['samples']} samples: mir_eval "
            f"{sec['mir_eval_median_s_per_mixture'] * 1e3:.1f} ms/mixture, ours ({sec['device']}, batched) "
            f"{sec['fast_median_s_per_mixture'] * 1e3:.2f} ms/mixture: {sec['speedup']:.1f}x, max |diff| "
            f"{sec['max_abs_diff_db']:.1e} dB" + peers
        )
    if name == "train_step":
        steps = "; ".join(
            f"optimizer step [{n}] {e['mixtures_per_step']} mixture(s): {e['median_s']:.2f} s, +{e['peak_memory_mb']:.0f} MiB"
            for n, e in sec.get("steps", {}).items()
        )
        peak = ", ".join(f"{k} {v['flop_per_s'] / 1e9:.1f}" for k, v in sec["matmul_peak"].items() if isinstance(v, dict))
        return (
            f"train_step: matmul peak {peak} GFLOP/s (n={sec['matmul_peak']['fp32']['n']}); {sec['config']} config, "
            f"{sec['dtype']}, {sec['mixtures_per_step']} mixture(s) of 2 videos: {sec['forward_backward_flops'] / 1e9:.1f} "
            f"GFLOP forward+backward (backward {sec['backward_over_forward']:.2f}x forward), median {sec['median_s']:.3f} s "
            f"-> {sec['achieved_flop_per_s'] / 1e9:.1f} GFLOP/s = MFU {100 * sec['mfu']:.1f} % of the {sec['dtype']} matmul "
            f"peak ({sec['peak_flop_per_s'] / 1e9:.1f} GFLOP/s, the higher of before / after the steps)"
            + (f"; uncounted ops: {sec['uncounted_ops']}" if sec["uncounted_ops"] else "")
            + (f"; {steps}" if steps else "")
        )
    if name == "separation":
        parts = []
        for role in ("small", "paper"):
            e = sec.get(role)
            if e:
                parts.append(
                    f"{role} [{e['config']}] " + ", ".join(
                        f"{e[k]['audio_seconds']:.1f} s: {e[k]['real_time_factor']:.2f}x RT ({e[k]['median_s']:.2f} s)"
                        for k in ("short", "long") if k in e
                    )
                )  # fmt: skip
        return f"separation: {sec['device']}, {sec['dtype']}, 2 videos: " + "; ".join(parts)
    if name == "model_size":
        p = sec["parameters"]
        return (
            f"model_size: {sec['config']} config, {p['total'] / 1e6:.1f} M parameters (vision backbone "
            f"{p.get('vision_backbone', 0) / 1e6:.1f} M, co-attention {p.get('co_attention_layers', 0) / 1e6:.1f} M); "
            f"forward of 1 sample on {sec['device']}: median {sec['forward']['median_s']:.3f} s, peak "
            f"+{sec['forward']['peak_memory_mb']:.0f} MiB; forward+backward median "
            f"{sec['forward_backward_train_mode']['median_s']:.3f} s, peak +{sec['forward_backward_train_mode']['peak_memory_mb']:.0f} MiB"
        )
    if name == "retrieval":
        faiss = f", FAISS {sec['faiss_queries_per_s_one_at_a_time']:.0f} queries/s" if "faiss_queries_per_s_one_at_a_time" in sec else ""
        return (
            f"retrieval: {sec['config']} config, {sec['torch_threads']} thread(s): {sec['clips_per_s']:.1f} clips/s embedded "
            f"(vision + pose + audio); {sec['index_clips']}-clip index ({sec['embedding_dim']}-d), top-{sec['k']}: exact NumPy "
            f"{sec['numpy_queries_per_s_one_at_a_time']:.0f} queries/s one at a time ({sec['numpy_ms_per_query']:.2f} ms each), "
            f"{sec['numpy_queries_per_s_batched_100']:.0f} queries/s in batches of 100{faiss}; the joint encoder scores "
            f"{sec['joint_pairs_per_s']:.1f} pairs/s: {sec['joint_seconds_per_query_over_index']:.0f} s per query over the same index"
        )
    if name == "step_breakdown":
        whole = sec["forward_backward"]["median_s"]
        parts = ", ".join(f"{n.split('.')[-1]} {c['forward_backward']['median_s']:.3f} s ({c['share_of_forward_backward']:.0%})"
                          for n, c in sorted(sec["components"].items(), key=lambda kv: -kv[1]["forward_backward"]["median_s"]))  # fmt: skip
        bases = ", ".join(f"{n} {e['median_s']:.3f} s ({e['over_tribert']:.2f}x)" for n, e in sec["baselines"].items())
        return (
            f"step_breakdown: {sec['config']} config, {sec['mixtures_per_step']} mixtures, {sec['torch_threads']} thread(s), "
            f"{sec['recipe_options']}: step {sec['step']['median_s']:.3f} s (forward+backward {whole:.3f} s, AdamW "
            f"{sec['optimizer_s']:.3f} s); forward+backward by part: {parts}, rest {sec['rest_forward_backward_s']:.3f} s; "
            f"collator {sec['collator']['median_s']:.3f} s; baselines' step: {bases}"
            + (f"; channels-last step {sec['memory_format']['channels_last']['median_s']:.3f} s vs "
               f"{sec['memory_format']['contiguous']['median_s']:.3f} s ({sec['memory_format']['speedup']:.2f}x)" if "memory_format" in sec else "")
            + ("; half-resolution U-Net output (stride 2 vs 1): " + ", ".join(f"{n} {o['speedup']:.2f}x" for n, o in sec["output_stride"].items())
               if "output_stride" in sec else "")
        )  # fmt: skip
    return name


def parse_suites(text: str) -> list[str]:
    """`all` (every suite but retrieval) or a comma list of suite names, in the order given, each once."""
    names = []
    for name in (n.strip() for n in text.split(",")):
        for n in DEFAULT_SUITES if name == "all" else [name] if name else []:
            if n not in SUITES:
                raise ValueError(f"unknown suite {n!r}: use all or a comma list of {', '.join(SUITES)}")
            if n not in names:
                names.append(n)
    if not names:
        raise ValueError("no suite given")
    return names


def settings_for(args, on_cuda: bool) -> dict:
    quick = args.quick
    train_mixtures = args.train_mixtures or (1 if quick or not on_cuda else 12)
    return {
        "train_config": "tiny" if quick else "paper",
        "train_mixtures": train_mixtures,
        "step_configs": {"tiny": 2} if quick else {"small": 4, "paper": train_mixtures},
        "separation_configs": {"small": "tiny", "paper": "tiny"} if quick else {"small": "small", "paper": "paper"},
        "model_size_config": "tiny" if quick else "paper",
        # step_breakdown: the recommended separation recipe's step (quality.py's maps_softmax: binary masks, softmax
        # across the sources, 16 condition maps) at the size and batch of the cpu30 budget
        "breakdown": {"config": "tiny" if quick else "small", "mixtures": 2 if quick else 4, "mask_type": "binary",
                      "mask_activation": "softmax", "separation_condition_maps": 16},
        "audio_seconds": {"short": 65535 / 11025, "long": 15.0 if quick else 180.0},
        "long_repeats": 1,
        "matmul_n": args.matmul_size or (512 if quick else (8192 if on_cuda else 4096)),
        "matmul_repeats": 3 if quick else (20 if on_cuda else 5),
        "mixtures": 3 if quick else 20,
        "samples": 11025 if quick else 65535,
        "clips": 8 if quick else 64,
        "synthetic": "tiny" if quick else "small",
        "split": "val" if quick else "train",
        "copies": 2,
        "map_repeats": 1 if quick else 2,
    }


def write_report(result: dict, path: str) -> str:
    """Write the JSON result to `path` and its Markdown report next to it (same name, .md); returns the latter."""
    markdown_path = os.path.splitext(path)[0] + ".md"
    result["markdown"] = markdown_path
    write_atomic(path, json.dumps(result, indent=2))
    write_atomic(markdown_path, markdown(result))
    return markdown_path


def convert(path: str) -> int:
    """`--convert PATH`: rewrite a result JSON in this layout (`upgrade_layout`) and its Markdown report."""
    with open(path) as f:
        result = json.load(f)
    layout = result.get("layout", 1)
    result = upgrade_layout(result)
    markdown_path = os.path.splitext(path)[0] + ".md"
    # keep the paths the run recorded (the Markdown names the JSON by its base name only)
    write_atomic(path, json.dumps({**result, "markdown": result.get("markdown", markdown_path)}, indent=2))
    write_atomic(markdown_path, markdown(result))
    print(f"speed: {path} layout {layout} -> {LAYOUT}; wrote it and {markdown_path}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="all", help=f"all (every suite but retrieval) or a comma list of: {', '.join(SUITES)}")
    parser.add_argument("--quick", action="store_true", help="tiny configs, few repeats, short audio (seconds)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for training, separation and model_size; MFU against the bf16 matmul peak")
    parser.add_argument("--profile", action="store_true", help="torch.profiler top-15 ops of a training step and a separation")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 3; --quick 2)")
    parser.add_argument("--train-mixtures", type=int, default=None, help="mixtures (of 2 videos) per training step (default 1 on CPU, 12 on CUDA)")
    parser.add_argument("--matmul-size", type=int, default=None, help="n of the n x n peak matmul (default 4096 CPU, 8192 CUDA; --quick 512)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="train_step's optimizer steps with gradient checkpointing")
    parser.add_argument("--synthetic-cache-dir", default=None, help="where the synthetic dataset is (generated if absent)")
    parser.add_argument("--output", default=None, help="the JSON (default benchmarks/results/speed.json for all, speed-<suites>.json otherwise)")
    parser.add_argument("--convert", metavar="JSON", default=None, help="rewrite this result JSON in the current layout and its .md; measures nothing")
    args = parser.parse_args(argv)
    if args.convert:
        return convert(args.convert)
    try:
        wanted = parse_suites(args.suite)
    except ValueError as error:
        parser.error(str(error))
    if args.output is None:
        name = "speed" if wanted == list(DEFAULT_SUITES) else "speed-" + "-".join(wanted)
        args.output = os.path.join(HERE, "results", name + ".json")

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device} was asked for but torch sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    settings = settings_for(args, device.type == "cuda")
    result = {
        "benchmark": "speed",
        "layout": LAYOUT,
        "command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
        "quick": args.quick,
        "suites": wanted,
        "dtype": "bf16" if args.bf16 else "fp32",
        "repeats": args.repeats,
        "settings": settings,
        "output": args.output,
        "machine": machine(device),
        "sections": {},
    }
    profiles = {}
    started = time.perf_counter()
    for name in wanted:
        suite_start = time.perf_counter()
        try:
            sec = SUITE_FUNCTIONS[name](args, settings, device, profiles)
        except Exception:
            sec = {"error": traceback.format_exc()}
        sec["wall_s"] = time.perf_counter() - suite_start
        result["sections"][name] = sec
        print(summary_line(name, sec), flush=True)
    if args.profile:
        result["profile"] = profiles
        for key, p in profiles.items():
            ops = ", ".join(f"{o['name']} {o['self_cpu_percent']:.0f}%" for o in p["top_ops_by_self_cpu"][:5])
            print(f"profile: {key} [{p['config']}] top self-CPU ops: {ops}", flush=True)
            if p.get("top_ops_by_self_device"):
                ops = ", ".join(f"{_short(o['name'])} {o['self_device_percent']:.0f}%" for o in p["top_ops_by_self_device"][:8])
                print(f"profile: {key} [{p['config']}] top self-GPU ops: {ops}", flush=True)
    result["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["wall_s"] = time.perf_counter() - started
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    result["targets"] = targets(result)
    markdown_path = write_report(result, args.output)
    measured = [t for t in result["targets"] if t["met"] is not None]
    busy = _busy(result["machine"])
    failed = [name for name, sec in result["sections"].items() if "error" in sec]
    print(
        f"speed: {sum(t['met'] for t in measured)}/{len(measured)} targets met"
        + (" (--quick: tiny configs, not the real figures)" if args.quick else "")
        + (f", FAILED suites: {', '.join(failed)}" if failed else "")
        + (f"; other work competed for the CPU (load average {_loads(result['machine']['load_average_at_start'])} at the "
           f"start, {_loads(result['machine']['load_average_at_end'])} at the end): timings are not clean" if busy else "")
        + f"; {result['wall_s']:.1f} s on {result['machine']['device_name']} ({result['machine']['torch_threads']} threads)"
        f" -> {args.output}, {markdown_path}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The speed suite: one command, every figure a ratio of two things measured in the same run on this machine.

    python benchmarks/speed.py [--quick] [--device cpu|cuda] [--bf16] [--profile] [--threads N]
                               [--output benchmarks/results/speed.json]

Sections (each prints a one-line summary; a final line counts the targets met):

- preprocessing: the audio features (TriBertFeatureExtractor: STFT + log-frequency warp of a batch of clips) against
  a librosa/numpy reference of the same features clip by clip (`feature_extraction.reference_features`), and the
  whole featurizer of a prepared dataset (audio, video frames, keypoints: `PreparedClipFeaturizer`) through
  `datasets.map` with num_proc=1 and 2 (rows/s and the scaling). Always on CPU (it is the data pipeline).
- bss_eval: `bss_eval_sources_torch` (all mixtures in one batched call, on --device) against mir_eval (one call per
  mixture) on the same 2-source mixtures (`bss_eval.make_mixtures`): speed ratio and the max |difference| in dB.
- matmul_peak: this machine's dense matmul FLOP/s (an n x n @ n x n product, median of repeats) in fp32, and in
  bf16 with --bf16: the denominator of the MFU.
- training: forward + backward of `TriBertForPreTraining` (joint loss) of the paper-size config on random batches
  of the recipe's shapes (`train_step.random_batch`); FLOPs counted with `torch.utils.flop_counter.FlopCounterMode`
  (matmul, convolution and attention FLOPs; CPU's fused attention kernels added, see `FLOP_FORMULAS`); achieved
  FLOP/s = FLOPs / median step time, MFU = achieved / matmul peak of the training dtype (bf16 autocast with --bf16),
  the peak measured again right after the timed steps and the higher of the two taken (a peak measured in a busy
  moment of a shared machine would flatter the MFU).
- separation: real-time factor (seconds of audio separated per second) of `TriBertForSourceSeparation.separate`
  with random weights (speed does not depend on training), 2 videos, for the small (demo) and paper-size configs,
  on a 6-s mixture (one crop) and a 3-minute one (overlapping segments, batched 8 at a time).
- retrieval (opt-in, `--sections retrieval`): clips embedded per second by `TriBertForContrastiveRetrieval` (small
  config, one embedding per modality) and queries per second over a 10,000-clip index (exact NumPy; FAISS if
  installed).
- profile (--profile): torch.profiler over one paper-size training step (forward, backward, AdamW) and one small
  separation of the 6-s mixture; the top-15 ops by self CPU time (where time goes when a target is missed).

--quick runs every section with tiny configs, few repeats and short audio (seconds; the test uses it): its figures
are not measurements of the real configs. Writes the JSON (atomically) with every measurement, the machine and
the targets with pass/fail, and a Markdown table next to it (same name, .md) generated from the JSON.
"""

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

# the other benchmark scripts (a script's own folder is importable)
from bss_eval import make_mixtures
from common import example_inputs
from feature_extraction import reference_features, timed
from model_size import PeakRSS, measure
from train_step import random_batch

from tribert_hf import TriBertFeatureExtractor, TriBertForPreTraining, TriBertForSourceSeparation, separate
from tribert_hf.training import model_config


HERE = os.path.dirname(os.path.abspath(__file__))

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


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["allow_tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_runs(fn, repeats: int, device: torch.device, warmup: bool = True) -> dict:
    """Median wall time of `fn()` over `repeats` runs (after one warm-up run if `warmup`), device synchronised."""
    if warmup:
        fn()
        sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "times_s": times}


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def top_ops(prof, count: int = 15) -> list[dict]:
    """The `count` ops with the most self CPU time of a torch.profiler run (times in ms)."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = []
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:count]:
        row = {
            "name": e.key,
            "calls": e.count,
            "self_cpu_ms": e.self_cpu_time_total / 1e3,
            "self_cpu_percent": 100.0 * e.self_cpu_time_total / total,
            "cpu_total_ms": e.cpu_time_total / 1e3,
        }
        device_time = getattr(e, "self_device_time_total", 0) or 0
        if device_time:
            row["self_device_ms"] = device_time / 1e3
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
    return {"wall_s_profiled": wall, "top_ops_by_self_cpu": top_ops(prof)}


# ----------------------------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------------------------


def section_preprocessing(args, settings) -> dict:
    import datasets
    from datasets import concatenate_datasets

    from tribert_hf import TriBertProcessor, TriBertVideoProcessor
    from tribert_hf.data import PreparedClipFeaturizer, load_synthetic_music

    fe = TriBertFeatureExtractor()
    rng = np.random.default_rng(0)
    clips = (rng.standard_normal((settings["clips"], fe.num_samples)) * 0.1).astype(np.float32)
    ours_s, ours_times = timed(lambda: fe(clips, sampling_rate=fe.sampling_rate, return_tensors="pt"), args.repeats)
    ref_s, ref_times = timed(lambda: np.stack([reference_features(c) for c in clips]), args.repeats)
    # Where the time goes: the FFT alone, ours (SciPy, torch's thread count) and the reference's (numpy.fft, what
    # librosa.stft calls), on the same windowed frames. Neither implementation can beat its FFT.
    import scipy.fft

    half = fe.n_fft // 2
    framed = torch.nn.functional.pad(torch.from_numpy(clips)[:, None], (half, half), mode="reflect")[:, 0]
    framed = (framed.unfold(-1, fe.n_fft, fe.hop_length) * torch.hann_window(fe.n_fft)).numpy()
    workers = torch.get_num_threads()
    fft_s, _ = timed(lambda: scipy.fft.rfft(framed, axis=-1, workers=workers), args.repeats)
    ref_fft_s, _ = timed(lambda: np.fft.rfft(framed, axis=-1), args.repeats)
    ours = fe(clips, sampling_rate=fe.sampling_rate, return_tensors="np")["audio_spectrogram"]
    reference = np.stack([reference_features(c) for c in clips])
    audio = {
        "clips": len(clips),
        "clip_samples": fe.num_samples,
        "ours_median_s": ours_s,
        "ours_times_s": ours_times,
        "reference_median_s": ref_s,
        "reference_times_s": ref_times,
        "ours_clips_per_s": len(clips) / ours_s,
        "reference_clips_per_s": len(clips) / ref_s,
        "speedup": ref_s / ours_s,
        "fft_only_median_s": fft_s,
        "reference_fft_only_median_s": ref_fft_s,
        "fft_share_of_ours": fft_s / ours_s,
        "fft_share_of_reference": ref_fft_s / ref_s,
        # the most any implementation with our FFT could reach: the reference's time over our FFT's alone
        "speedup_bound_fft_only": ref_s / fft_s,
        "max_abs_diff": float(np.abs(ours - reference).max()),
        "reference_max_value": float(reference.max()),
    }

    # The whole featurizer (audio crop + features, video frames, keypoints) of a prepared dataset through datasets.map.
    root, dataset = load_synthetic_music(settings["synthetic"], cache_dir=args.synthetic_cache_dir, progress=False)
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
    return {"device": "cpu", "audio_features": audio, "datasets_map": scaling}


def section_bss_eval(args, settings, device) -> dict:
    from tribert_hf.metrics import bss_eval_sources_torch, separation_metrics_mir_eval

    num, samples, rate = settings["mixtures"], settings["samples"], 11025
    refs, ests = make_mixtures(num, samples, rate)
    mir_times, mir_vals = [], []
    for b in range(num):
        start = time.perf_counter()
        res = separation_metrics_mir_eval(refs[b], ests[b])
        mir_times.append(time.perf_counter() - start)
        mir_vals.append(np.stack([res["sdr"], res["sir"], res["sar"]]))
    mir_vals = np.stack(mir_vals)  # (N, 3, S)
    refs_t, ests_t = torch.from_numpy(refs).to(device), torch.from_numpy(ests).to(device)
    out = None

    def fast():
        nonlocal out
        out = bss_eval_sources_torch(refs_t, ests_t)

    bss_eval_sources_torch(refs_t[:2], ests_t[:2])  # warm-up on a different batch size, as bss_eval.py
    fast_run = timed_runs(fast, args.repeats, device, warmup=False)
    fast_vals = torch.stack(out, 1).cpu().numpy()
    mir_median = statistics.median(mir_times)
    fast_per_mixture = fast_run["median_s"] / num
    per_metric = {k: float(np.abs(fast_vals[:, i] - mir_vals[:, i]).max()) for i, k in enumerate(("sdr", "sir", "sar"))}
    return {
        "device": str(device),
        "mixtures": num,
        "sources": 2,
        "samples": samples,
        "sample_rate": rate,
        "mir_eval_median_s_per_mixture": mir_median,
        "mir_eval_times_s": mir_times,
        "fast_median_s_per_mixture": fast_per_mixture,
        "fast_batch_times_s": fast_run["times_s"],
        "speedup": mir_median / fast_per_mixture,
        "max_abs_diff_db": max(per_metric.values()),
        "max_abs_diff_db_per_metric": per_metric,
        "mean_sdr_db": float(mir_vals[:, 0].mean()),
    }


def matmul_peak(n: int, dtype: torch.dtype, repeats: int, device: torch.device) -> dict:
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    run = timed_runs(lambda: torch.mm(a, b), repeats, device)
    flops = 2 * n**3
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "flops": flops, **run, "flop_per_s": flops / run["median_s"]}


def section_matmul(args, settings, device) -> dict:
    result = {"device": str(device), "fp32": matmul_peak(settings["matmul_n"], torch.float32, settings["matmul_repeats"], device)}
    if args.bf16:
        result["bf16"] = matmul_peak(settings["matmul_n"], torch.bfloat16, settings["matmul_repeats"], device)
    return result


def section_training(args, settings, device, peak: dict, profiles: dict) -> dict:
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
    dtype = "bf16" if args.bf16 else "fp32"
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
    }
    if args.profile:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

        def step():
            forward_backward()
            optimizer.step()

        profiles["training_step"] = {"config": size, "what": "forward + backward + AdamW step", **profiled(step, device)}
        del optimizer
    del model
    return result


def section_separation(args, settings, device, profiles: dict) -> dict:
    fe = TriBertFeatureExtractor()
    result = {"device": str(device), "dtype": "bf16" if args.bf16 else "fp32", "videos": 2, "segment_batch_size": 8}
    for role, size in settings["separation_configs"].items():
        torch.manual_seed(0)
        config, _ = model_config(size)
        model = TriBertForSourceSeparation(config).to(device).eval()
        clips = example_inputs(config, batch_size=2)  # two videos of one mixture
        videos = {k: clips[k].to(device) for k in ("pixel_values", "pose_keypoints", "pose_mask")}
        entry = {"config": size, "parameters": sum(p.numel() for p in model.parameters())}
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


def section_retrieval(args, settings, device) -> dict:
    """Embedding retrieval (opt-in: `--sections retrieval`): clips embedded per second (vision, pose and audio of
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
# Targets, report
# ----------------------------------------------------------------------------------------------------------------


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
        ("training MFU (forward+backward FLOP/s / matmul peak)", get("training", "mfu"), ">=", 0.5, "ratio"),
        ("separation real-time factor, small config, 6-s mixture", get("separation", "small", "short", "real_time_factor"), ">=", 20.0, "x"),
        ("separation real-time factor, small config, 3-min mixture", get("separation", "small", "long", "real_time_factor"), ">=", 20.0, "x"),
        ("bss_eval speedup over mir_eval", get("bss_eval", "speedup"), ">=", 20.0, "x"),
        ("bss_eval max abs difference vs mir_eval (SDR/SIR/SAR)", get("bss_eval", "max_abs_diff_db"), "<=", 0.01, "dB"),
        ("audio features speedup over librosa/numpy", get("preprocessing", "audio_features", "speedup"), ">=", 5.0, "x"),
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


def markdown(result: dict) -> str:
    """The Markdown report, generated from the JSON result alone: every target (figure, measured, target, met?),
    the other headline figures, and the profiles."""
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

    if "training" in s and "error" not in s["training"]:
        t = s["training"]
        row(f"training [{t['config']}] forward+backward FLOPs per step", f"{t['forward_backward_flops'] / 1e9:.1f} GFLOP")
        row("training step time (median)", f"{t['median_s']:.3f} s")
        row("training achieved FLOP/s", f"{t['achieved_flop_per_s'] / 1e9:.1f} GFLOP/s")
        if "peak_flop_per_s_after" in t:
            row("MFU denominator: matmul peak before / after the training steps (the higher counts)",
                f"{t['peak_flop_per_s_before'] / 1e9:.1f} / {t['peak_flop_per_s_after'] / 1e9:.1f} GFLOP/s")  # fmt: skip
    if "matmul_peak" in s and "error" not in s["matmul_peak"]:
        for dtype in ("fp32", "bf16"):
            if dtype in s["matmul_peak"]:
                p = s["matmul_peak"][dtype]
                row(f"matmul peak {dtype} (n={p['n']})", f"{p['flop_per_s'] / 1e9:.1f} GFLOP/s")
    if "separation" in s and "error" not in s["separation"]:
        for role in ("small", "paper"):
            for length in ("short", "long"):
                e = s["separation"].get(role, {}).get(length)
                if e:
                    row(f"separation RTF, {role} role [{s['separation'][role]['config']}], {e['audio_seconds']:.1f}-s mixture",
                        f"{e['real_time_factor']:.2f}x ({e['median_s']:.2f} s)")  # fmt: skip
    if "preprocessing" in s and "error" not in s["preprocessing"]:
        a, d = s["preprocessing"]["audio_features"], s["preprocessing"]["datasets_map"]
        if "fft_only_median_s" in a:
            row(f"audio features: ours / librosa reference, {a['clips']} clips", f"{a['ours_median_s'] * 1e3:.1f} ms / {a['reference_median_s'] * 1e3:.1f} ms")
            row("the FFT alone: ours (SciPy) / the reference's (numpy.fft)",
                f"{a['fft_only_median_s'] * 1e3:.1f} ms ({a['fft_share_of_ours']:.0%} of ours) / {a['reference_fft_only_median_s'] * 1e3:.1f} ms ({a['fft_share_of_reference']:.0%} of the reference)")  # fmt: skip
        if "speedup_bound_fft_only" in a:
            row("audio features: speedup bound (reference time / our FFT alone)", f"{a['speedup_bound_fft_only']:.2f}x")
        row(f"featurizer datasets.map num_proc=1 ({d['rows']} rows)", f"{d['num_proc_1']['rows_per_s']:.1f} rows/s")
        row("featurizer datasets.map num_proc=2", f"{d['num_proc_2']['rows_per_s']:.1f} rows/s")
        row("datasets.map scaling num_proc 2 / 1", f"{d['scaling_2_over_1']:.2f}x")
    if "retrieval" in s and "error" not in s["retrieval"]:
        r = s["retrieval"]
        row(f"retrieval [{r['config']}]: clips embedded per second (vision + pose + audio)", f"{r['clips_per_s']:.1f}")
        row(f"retrieval: queries per second, {r['index_clips']}-clip index, exact NumPy (one at a time / 100 at once)",
            f"{r['numpy_queries_per_s_one_at_a_time']:.0f} / {r['numpy_queries_per_s_batched_100']:.0f}")  # fmt: skip
        if "faiss_queries_per_s_one_at_a_time" in r:
            row("retrieval: queries per second, FAISS IndexFlatIP (one at a time)", f"{r['faiss_queries_per_s_one_at_a_time']:.0f}")
        row("retrieval: joint encoder pairs per second (seconds per query over the index)", f"{r['joint_pairs_per_s']:.1f} ({r['joint_seconds_per_query_over_index']:.0f} s)")
    errors = [name for name, sec in s.items() if isinstance(sec, dict) and "error" in sec]
    if errors:
        lines += ["", "Sections that failed: " + ", ".join(errors) + " (see the JSON)."]
    for name, p in result.get("profile", {}).items():
        lines += ["", f"## Profile: {name} [{p['config']}], {p['what']}: top ops by self CPU time", "",
                  "| op | calls | self CPU ms | self CPU % |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| `{_cell(o['name'])}` | {o['calls']} | {o['self_cpu_ms']:.1f} | {o['self_cpu_percent']:.1f} |" for o in p["top_ops_by_self_cpu"]]
    return "\n".join(lines) + "\n"


def write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def summary_line(name: str, sec: dict) -> str:
    if "error" in sec:
        return f"{name}: FAILED: {sec['error'].strip().splitlines()[-1]}"
    if name == "preprocessing":
        a, d = sec["audio_features"], sec["datasets_map"]
        return (
            f"preprocessing: audio features {a['ours_clips_per_s']:.0f} clips/s vs librosa/numpy "
            f"{a['reference_clips_per_s']:.0f} clips/s ({a['speedup']:.2f}x, max |diff| {a['max_abs_diff']:.1e}; "
            f"the FFT alone is {a['fft_share_of_ours']:.0%} of ours, numpy's FFT {a['fft_share_of_reference']:.0%} of the reference: "
            f"no implementation with our FFT can pass {a['speedup_bound_fft_only']:.1f}x); "
            f"featurizer via datasets.map ({d['rows']} rows) num_proc=1 {d['num_proc_1']['rows_per_s']:.1f} rows/s, "
            f"num_proc=2 {d['num_proc_2']['rows_per_s']:.1f} rows/s ({d['scaling_2_over_1']:.2f}x)"
        )
    if name == "bss_eval":
        return (
            f"bss_eval: {sec['mixtures']} x 2-source mixtures of {sec['samples']} samples: mir_eval "
            f"{sec['mir_eval_median_s_per_mixture'] * 1e3:.1f} ms/mixture, fast ({sec['device']}, batched) "
            f"{sec['fast_median_s_per_mixture'] * 1e3:.2f} ms/mixture: {sec['speedup']:.1f}x, max |diff| "
            f"{sec['max_abs_diff_db']:.1e} dB"
        )
    if name == "matmul_peak":
        return "matmul_peak: " + ", ".join(
            f"{k} n={v['n']} {v['flop_per_s'] / 1e9:.1f} GFLOP/s" for k, v in sec.items() if isinstance(v, dict)
        )
    if name == "training":
        return (
            f"training: {sec['config']} config, {sec['dtype']}, {sec['mixtures_per_step']} mixture(s) of 2 videos: "
            f"{sec['forward_backward_flops'] / 1e9:.1f} GFLOP forward+backward (backward {sec['backward_over_forward']:.2f}x "
            f"forward), median {sec['median_s']:.3f} s -> {sec['achieved_flop_per_s'] / 1e9:.1f} GFLOP/s = MFU "
            f"{100 * sec['mfu']:.1f} % of the {sec['dtype']} matmul peak ({sec['peak_flop_per_s'] / 1e9:.1f} GFLOP/s, the "
            f"higher of before / after the steps)"
            + (f"; uncounted ops: {sec['uncounted_ops']}" if sec["uncounted_ops"] else "")
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
    if name == "retrieval":
        faiss = f", FAISS {sec['faiss_queries_per_s_one_at_a_time']:.0f} queries/s" if "faiss_queries_per_s_one_at_a_time" in sec else ""
        return (
            f"retrieval: {sec['config']} config, {sec['torch_threads']} thread(s): {sec['clips_per_s']:.1f} clips/s embedded "
            f"(vision + pose + audio); {sec['index_clips']}-clip index ({sec['embedding_dim']}-d), top-{sec['k']}: exact NumPy "
            f"{sec['numpy_queries_per_s_one_at_a_time']:.0f} queries/s one at a time ({sec['numpy_ms_per_query']:.2f} ms each), "
            f"{sec['numpy_queries_per_s_batched_100']:.0f} queries/s in batches of 100{faiss}; the joint encoder scores "
            f"{sec['joint_pairs_per_s']:.1f} pairs/s: {sec['joint_seconds_per_query_over_index']:.0f} s per query over the same index"
        )
    return name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny configs, few repeats, short audio (seconds)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for training and separation; MFU against the bf16 matmul peak")
    parser.add_argument("--profile", action="store_true", help="torch.profiler top-15 ops of a training step and a separation")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 3; --quick 2)")
    parser.add_argument("--train-mixtures", type=int, default=None, help="mixtures (of 2 videos) per training step (default 1 on CPU, 12 on CUDA)")
    parser.add_argument("--matmul-size", type=int, default=None, help="n of the n x n peak matmul (default 4096 CPU, 8192 CUDA; --quick 512)")
    parser.add_argument("--sections", default="preprocessing,bss_eval,matmul_peak,training,separation", help="comma list (matmul_peak is needed by training; retrieval, opt-in: embedding and index search speed)")
    parser.add_argument("--synthetic-cache-dir", default=None, help="where the synthetic dataset is (generated if absent)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "speed.json"))
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device} was asked for but torch sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    on_cuda = device.type == "cuda"
    settings = {
        "train_config": "tiny" if args.quick else "paper",
        "train_mixtures": args.train_mixtures or (1 if args.quick or not on_cuda else 12),
        "separation_configs": {"small": "tiny", "paper": "tiny"} if args.quick else {"small": "small", "paper": "paper"},
        "audio_seconds": {"short": 65535 / 11025, "long": 15.0 if args.quick else 180.0},
        "long_repeats": 1,
        "matmul_n": args.matmul_size or (512 if args.quick else (8192 if on_cuda else 4096)),
        "matmul_repeats": 3 if args.quick else (20 if on_cuda else 5),
        "mixtures": 3 if args.quick else 20,
        "samples": 11025 if args.quick else 65535,
        "clips": 8 if args.quick else 64,
        "synthetic": "tiny" if args.quick else "small",
        "split": "val" if args.quick else "train",
        "copies": 2,
        "map_repeats": 1 if args.quick else 2,
    }
    wanted = [name.strip() for name in args.sections.split(",") if name.strip()]
    if "training" in wanted and "matmul_peak" not in wanted:
        wanted.insert(wanted.index("training"), "matmul_peak")
    result = {
        "benchmark": "speed",
        "command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
        "quick": args.quick,
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
        section_start = time.perf_counter()
        try:
            if name == "preprocessing":
                sec = section_preprocessing(args, settings)
            elif name == "bss_eval":
                sec = section_bss_eval(args, settings, device)
            elif name == "matmul_peak":
                sec = section_matmul(args, settings, device)
            elif name == "training":
                peak = result["sections"].get("matmul_peak", {})
                if "error" in peak:
                    raise RuntimeError("no matmul peak (its section failed)")
                sec = section_training(args, settings, device, peak, profiles)
            elif name == "separation":
                sec = section_separation(args, settings, device, profiles)
            elif name == "retrieval":
                sec = section_retrieval(args, settings, device)
            else:
                raise ValueError(f"unknown section {name!r}")
        except Exception:
            sec = {"error": traceback.format_exc()}
        sec["wall_s"] = time.perf_counter() - section_start
        result["sections"][name] = sec
        print(summary_line(name, sec), flush=True)
    if args.profile:
        result["profile"] = profiles
        for key, p in profiles.items():
            ops = ", ".join(f"{o['name']} {o['self_cpu_percent']:.0f}%" for o in p["top_ops_by_self_cpu"][:5])
            print(f"profile: {key} [{p['config']}] top self-CPU ops: {ops}", flush=True)
    result["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["wall_s"] = time.perf_counter() - started
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    result["targets"] = targets(result)
    markdown_path = os.path.splitext(args.output)[0] + ".md"
    result["markdown"] = markdown_path
    write_atomic(args.output, json.dumps(result, indent=2))
    write_atomic(markdown_path, markdown(result))
    measured = [t for t in result["targets"] if t["met"] is not None]
    busy = _busy(result["machine"])
    failed = [name for name, sec in result["sections"].items() if "error" in sec]
    print(
        f"speed: {sum(t['met'] for t in measured)}/{len(measured)} targets met"
        + (" (--quick: tiny configs, not the real figures)" if args.quick else "")
        + (f", FAILED sections: {', '.join(failed)}" if failed else "")
        + (f"; other work competed for the CPU (load average {_loads(result['machine']['load_average_at_start'])} at the "
           f"start, {_loads(result['machine']['load_average_at_end'])} at the end): timings are not clean" if busy else "")
        + f"; {result['wall_s']:.1f} s on {result['machine']['device_name']} ({result['machine']['torch_threads']} threads)"
        f" -> {args.output}, {markdown_path}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

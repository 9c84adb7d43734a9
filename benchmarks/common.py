"""Shared pieces of the benchmarks (`speed.py`): seeded inputs, timing, memory, the machine, peers.

Imports the library's public names only; a script's own folder is importable, so `speed.py` says `from common import
...` (no `sys.path` edits).
"""

import importlib
import os
import platform
import statistics
import tempfile
import threading
import time

import numpy as np
import psutil
import torch


# ----------------------------------------------------------------------------------------------------------------
# Seeded inputs
# ----------------------------------------------------------------------------------------------------------------


def example_inputs(config, batch_size: int = 1, seed: int = 0) -> dict:
    """Seeded random inputs of a TriBERT config's shapes (a solo: one player present)."""
    generator = torch.Generator().manual_seed(seed)
    vc, pc, ac = config.vision_config, config.pose_config, config.audio_config
    return {
        "pixel_values": torch.randn(batch_size, vc.num_frames, vc.num_channels, vc.image_size, vc.image_size, generator=generator),
        "pose_keypoints": torch.rand(batch_size, pc.num_persons, pc.num_pose_frames, pc.num_joints, pc.in_channels, generator=generator),
        "audio_spectrogram": torch.rand(batch_size, 1, ac.num_frequency_bins, 256, generator=generator),
        "pose_mask": torch.tensor([[1] + [0] * (pc.num_persons - 1)] * batch_size),
    }  # fmt: skip


def random_batch(config, mixtures: int, num_mix: int = 2, seed: int = 0) -> dict:
    """Seeded random inputs and targets of the training recipe's shapes: `mixtures` mixtures of `num_mix` videos
    (solos), as `TriBertForPreTraining` takes them (joint loss)."""
    g = torch.Generator().manual_seed(seed)
    vc, pc, ac = config.vision_config, config.pose_config, config.audio_config
    frames, bins = 256, ac.num_frequency_bins  # 65535 samples, hop 256 -> 256 STFT frames
    pose_mask = torch.zeros(mixtures, num_mix, pc.num_persons, dtype=torch.long)
    pose_mask[..., 0] = 1
    return {
        "pixel_values": torch.randn(mixtures, num_mix, vc.num_frames, 3, vc.image_size, vc.image_size, generator=g),
        "pose_keypoints": torch.rand(mixtures, num_mix, pc.num_persons, pc.num_pose_frames, pc.num_joints, 3, generator=g),
        "pose_mask": pose_mask,
        "audio_spectrogram": torch.rand(mixtures, 1, bins, frames, generator=g) * 4,
        "class_labels": torch.nn.functional.one_hot(torch.randint(0, config.num_labels, (mixtures, num_mix), generator=g), config.num_labels).float(),
        "labels": torch.randint(0, 2, (mixtures, num_mix, bins, frames), generator=g).float(),
    }  # fmt: skip


def harmonic_source(rng: np.random.Generator, samples: int, sample_rate: int) -> np.ndarray:
    """An "instrument": 9 harmonics of a random f0 with vibrato, note envelopes and a noise floor."""
    t = np.arange(samples) / sample_rate
    f0 = rng.uniform(110.0, 660.0)
    phase = 2 * np.pi * f0 * (t + 0.002 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))  # vibrato
    x = sum(rng.uniform(0.3, 1.0) * 0.7**k * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 10))
    notes = np.abs(np.sin(np.pi * rng.uniform(1.0, 3.0) * t + rng.uniform(0, np.pi))) ** 0.5  # note envelopes
    return x * notes + 0.01 * rng.standard_normal(samples)


def make_mixtures(num: int, samples: int, sample_rate: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`num` realistic 2-source cases, `(num, 2, samples)` references and estimates (float64): each estimate is its
    reference through a short random FIR distortion, plus leaked interference from the other source and noise."""
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


def reference_features(waveform: np.ndarray, n_fft=1022, hop=256, num_log_bins=256) -> np.ndarray:
    """The audio features written independently of ours: librosa's STFT magnitude, then Sound-of-Pixels'
    log-frequency warp by linear interpolation along frequency (NumPy), one clip -> `(1, num_log_bins, frames)`."""
    import librosa

    magnitude = np.abs(librosa.stft(waveform, n_fft=n_fft, hop_length=hop, window="hann", center=True, pad_mode="reflect"))
    bins = magnitude.shape[0]
    y = np.linspace(-1.0, 1.0, num_log_bins)
    position = ((np.power(21.0, (y + 1.0) / 2.0) - 11.0) / 10.0 + 1.0) / 2.0 * (bins - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, bins - 1)
    frac = (position - low)[:, None]
    return (magnitude[low] * (1.0 - frac) + magnitude[high] * frac)[None].astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Peers (packages of the `bench` extra): a missing one skips its row, with this message
# ----------------------------------------------------------------------------------------------------------------

PEER_PACKAGES = {"fast_bss_eval": "fast-bss-eval", "torchmetrics": "torchmetrics", "librosa": "librosa"}


def import_peer(module: str):
    """`(module, None)` if the peer package imports, else `(None, message)`: why its row is skipped and how to get it."""
    try:
        return importlib.import_module(module), None
    except ImportError as error:
        package = PEER_PACKAGES.get(module, module)
        return None, (
            f"skipped: {module} is not installed ({error}); pip install 'tribert_hf[bench]' (or pip install {package})"
        )


def peer_version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PEER_PACKAGES.get(module, module))
    except PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------------------------------------------
# Timing and memory
# ----------------------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_runs(fn, repeats: int, device: torch.device = torch.device("cpu"), warmup: bool = True) -> dict:
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


def measure(fn, repeats: int, device: torch.device) -> dict:
    """Median time of `fn()` over `repeats` runs after one warm-up run, and the peak memory over the timed runs: on
    CPU the process's resident set size sampled every 2 ms minus the size before them (what the warm-up allocated
    for good, e.g. optimizer state, is in that baseline); on CUDA `torch.cuda.max_memory_allocated` (everything)."""
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    with PeakRSS() as rss:
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else rss.peak - rss.start
    return {"median_s": statistics.median(times), "times_s": times, "peak_memory_mb": peak / 2**20}


# ----------------------------------------------------------------------------------------------------------------
# The machine, the output
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

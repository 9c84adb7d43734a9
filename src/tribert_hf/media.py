"""Decoding real media with torchcodec (FFmpeg): audio at 11025 Hz mono, frames at a fixed rate.

torchcodec's PyPI wheel needs a system FFmpeg (Debian: `apt-get install ffmpeg`) and, on some machines, the CUDA
NPP libraries of the `nvidia-npp` wheel on the loader path even on a CPU. `load_torchcodec()` sets that up
(preloading the libraries from `site-packages/nvidia/cu13/lib` when a first import fails) or says exactly what is
missing.
"""

import ctypes
import glob
import os
import sys
from collections.abc import Iterator

import numpy as np
import torch


class MediaError(ValueError):
    """A media file that cannot be used: unreadable, corrupt, without an audio track, silent or too short."""


_TORCHCODEC = None


def _nvidia_library_dirs() -> list[str]:
    dirs = []
    for base in sys.path:
        dirs += glob.glob(os.path.join(base, "nvidia", "cu*", "lib")) + glob.glob(os.path.join(base, "nvidia", "npp", "lib"))
    return [d for d in dirs if os.path.isdir(d)]


def load_torchcodec():
    """Import `torchcodec.decoders`, preloading the NPP libraries if needed; raise an actionable error otherwise."""
    global _TORCHCODEC
    if _TORCHCODEC is not None:
        return _TORCHCODEC
    first_error = None
    for attempt in range(2):
        try:
            import torchcodec.decoders as decoders

            _TORCHCODEC = decoders
            return decoders
        except (ImportError, OSError, RuntimeError) as error:  # the wheel raises RuntimeError when FFmpeg is missing
            first_error = first_error or error
            if attempt == 0:
                for lib_dir in _nvidia_library_dirs():
                    for lib in sorted(glob.glob(os.path.join(lib_dir, "libnpp*.so*"))):
                        try:
                            ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
                        except OSError:
                            pass
                for name in [m for m in sys.modules if m.startswith("torchcodec")]:
                    del sys.modules[name]
    raise ImportError(
        "Video/audio decoding needs torchcodec with a system FFmpeg: install FFmpeg (Debian/Ubuntu: "
        "`apt-get install ffmpeg`) and the Python extras (`pip install 'tribert_hf[video]'`, which brings "
        f"torchcodec 0.11 and nvidia-npp). The import failed with: {first_error}"
    ) from first_error


def media_info(path: str) -> dict:
    """Duration (s), frame rate, frame count and size of a video file, and whether it has an audio track."""
    decoders = load_torchcodec()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such media file: {path!r}")
    try:
        video = decoders.VideoDecoder(path).metadata
    except Exception as error:  # noqa: BLE001 - torchcodec raises several types for corrupt files
        raise MediaError(f"Cannot decode the video stream of {path!r}: {error}") from error
    try:
        decoders.AudioDecoder(path)
        has_audio = True
    except Exception:  # noqa: BLE001
        has_audio = False
    return {
        "duration": float(video.duration_seconds or 0.0),
        "fps": float(video.average_fps or 0.0),
        "num_frames": int(video.num_frames or 0),
        "width": int(video.width),
        "height": int(video.height),
        "has_audio": has_audio,
    }


def decode_audio(path: str, sampling_rate: int = 11025) -> np.ndarray:
    """The audio track of `path` as mono float32 at `sampling_rate` Hz (FFmpeg resamples and mixes down)."""
    decoders = load_torchcodec()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such media file: {path!r}")
    try:
        decoder = decoders.AudioDecoder(path, sample_rate=sampling_rate, num_channels=1)
    except Exception as error:  # noqa: BLE001
        raise MediaError(f"{path!r} has no readable audio track: {error}") from error
    try:
        samples = decoder.get_all_samples().data
    except Exception as error:  # noqa: BLE001
        raise MediaError(f"Cannot decode the audio of {path!r}: {error}") from error
    waveform = samples.mean(dim=0).numpy().astype(np.float32, copy=False)
    if waveform.size == 0:
        raise MediaError(f"The audio track of {path!r} is empty.")
    if not np.isfinite(waveform).all():
        raise MediaError(f"The audio of {path!r} decodes to NaN or infinite samples.")
    return waveform


def iter_frames(path: str, fps: float = 8.0, short_side: int | None = 256, chunk: int = 32) -> Iterator[np.ndarray]:
    """Yield the frames shown at `0, 1/fps, 2/fps, ...` seconds as `(H, W, 3)` uint8 RGB, the shorter side resized to
    `short_side` pixels (None keeps the size). Decodes `chunk` frames at a time, so long videos stay in bounded memory."""
    decoders = load_torchcodec()
    try:
        decoder = decoders.VideoDecoder(path, dimension_order="NCHW")
        metadata = decoder.metadata
        begin = float(metadata.begin_stream_seconds or 0.0)
        end = float(metadata.end_stream_seconds or metadata.duration_seconds or 0.0)
    except Exception as error:  # noqa: BLE001
        raise MediaError(f"Cannot decode the video stream of {path!r}: {error}") from error
    times = begin + np.arange(0.0, max(end - begin, 0.0), 1.0 / fps)
    times = times[times < end]
    if len(times) == 0:
        raise MediaError(f"The video stream of {path!r} has no frames.")
    for offset in range(0, len(times), chunk):
        try:
            batch = decoder.get_frames_played_at(seconds=times[offset : offset + chunk].tolist()).data
        except Exception as error:  # noqa: BLE001
            raise MediaError(f"Cannot decode frames of {path!r} near {times[offset]:.2f} s: {error}") from error
        if short_side is not None:
            height, width = batch.shape[-2:]
            scale = short_side / min(height, width)
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            batch = torch.nn.functional.interpolate(
                batch.float(), size=size, mode="bilinear", antialias=True, align_corners=False
            ).round_().clamp_(0, 255).to(torch.uint8)
        yield from batch.permute(0, 2, 3, 1).numpy()


__all__ = ["MediaError", "decode_audio", "iter_frames", "load_torchcodec", "media_info"]

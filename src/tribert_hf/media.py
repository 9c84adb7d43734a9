"""Reading and writing media: the library's one audio/video decoder (torchcodec, FFmpeg) and WAV reader/writer.

* `load_audio`: any file's sound (a WAV, an audio file, a video's audio track) as mono float32 at 11025 Hz, checked
  (what `tribert separate` and `tribert index search` read); `decode_audio`: the torchcodec decoding under it (what
  `tribert prepare` reads); `read_wav` / `write_wav`: float32 WAV files (the prepared datasets' audio, separated
  sources); `resample`.
* `VisualClip`: a video's (or a still image's) frames, decoded on demand at given times; `iter_frames`: a video's
  frames at a fixed rate, a chunk at a time; `media_info`: duration, frame rate, size, audio or not.

torchcodec's PyPI wheel needs a system FFmpeg (Debian: `apt-get install ffmpeg`) and, on some machines, the CUDA
NPP libraries of the `nvidia-npp` wheel on the loader path even on a CPU. `load_torchcodec()` sets that up
(preloading the libraries from `site-packages/nvidia/cu13/lib` when a first import fails) or says exactly what is
missing.
"""

import ctypes
import glob
import math
import os
import re
import sys
import uuid
import warnings
from collections.abc import Iterator

import numpy as np
import torch

from .feature_extraction_tribert import SAMPLING_RATE
from .video_processing_tribert import FRAME_RATE


SILENCE_THRESHOLD = 1e-4  # peak amplitude below which audio counts as silent (as `tribert prepare`)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class MediaError(ValueError):
    """A media file that cannot be used: unreadable, corrupt, without an audio track, silent or too short."""


def short_error(error: Exception) -> str:
    """The useful part of a decoder's error message (torchcodec prefixes C++ file:line and appends boilerplate)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^\w+, \S+:\d+, ", "", text)[:200]


def require_file(path, what: str) -> str:
    """`path` as a string; `FileNotFoundError` when it does not exist, `MediaError` when it is a folder."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such {what}: {path!r}")
    if os.path.isdir(path):
        raise MediaError(f"{path!r} is a folder, not a {what}.")
    return path


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


def decode_audio(path: str, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """The audio track of a media file as mono float32 at `sampling_rate` Hz (FFmpeg resamples and mixes down).

    Raises `FileNotFoundError`, or `MediaError` for a file that is no readable media, one without an audio track,
    an audio track whose packets do not decode, and empty or non-finite audio.
    """
    decoders = load_torchcodec()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such media file: {path!r}")
    try:
        decoder = decoders.AudioDecoder(path, sample_rate=sampling_rate, num_channels=1)
    except Exception as error:  # noqa: BLE001 - torchcodec raises several types
        try:
            decoders.VideoDecoder(path)
        except Exception:  # noqa: BLE001
            raise MediaError(f"Cannot decode {path!r}: not a readable media file (corrupt or unsupported): {short_error(error)}") from error
        raise MediaError(f"{path!r} has no audio track: there is nothing to separate.") from error
    try:
        waveform = decoder.get_all_samples().data.mean(dim=0).numpy().astype(np.float32, copy=False)
    except Exception as error:  # noqa: BLE001 - the stream opened but its packets do not decode
        raise MediaError(
            f"The audio track of {path!r} is corrupt (damaged packets; a broken download or copy?): "
            f"{short_error(error)}. Repair or re-encode the file (e.g. `ffmpeg -err_detect ignore_err -i in.mp4 out.mp4`)."
        ) from error
    _check_samples(waveform, path)
    return waveform


def _check_samples(waveform: np.ndarray, path: str) -> None:
    if waveform.size == 0:
        raise MediaError(f"The audio of {path!r} is empty.")
    if not np.isfinite(waveform).all():
        raise MediaError(f"The audio of {path!r} contains NaN or infinite samples.")


def resample(waveform: np.ndarray, rate: int, target: int) -> np.ndarray:
    """A mono float32 waveform from `rate` to `target` Hz (torchaudio's windowed-sinc resampling)."""
    if rate == target:
        return waveform
    import torchaudio

    return torchaudio.functional.resample(torch.from_numpy(waveform), rate, target).numpy()


def write_wav(path: str, waveform: np.ndarray, sampling_rate: int) -> None:
    """Mono float32 WAV, written to a temporary name and renamed (never half-written)."""
    from scipy.io import wavfile

    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"write_wav expects a mono waveform (samples,), got shape {waveform.shape}.")
    tmp = f"{path}.tmp-{uuid.uuid4().hex}.wav"
    wavfile.write(tmp, sampling_rate, waveform)
    os.replace(tmp, path)


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 in [-1, 1]; stereo files are returned as (samples, channels)."""
    from scipy.io import wavfile

    try:
        sampling_rate, data = wavfile.read(path)
    except (ValueError, OSError, UnboundLocalError, EOFError) as error:  # scipy: UnboundLocalError when truncated
        raise ValueError(f"Cannot read the WAV file {path!r}: {error or type(error).__name__}") from error
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    elif data.dtype.kind == "u":
        data = (data.astype(np.float32) - 128.0) / 128.0
    return data.astype(np.float32, copy=False), int(sampling_rate)


def load_audio(path, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """A file's audio (a WAV, an audio file or a video's audio track) as mono float32 at `sampling_rate` Hz.

    Raises `FileNotFoundError`, or `MediaError` for an unreadable / corrupt file (a truncated WAV, an audio track
    whose packets do not decode), a video without an audio track, empty or non-finite audio, or silence (peak
    below `SILENCE_THRESHOLD`).
    """
    path = require_file(path, "audio or video file")
    if path.lower().endswith(".wav"):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                waveform, rate = read_wav(path)
        except Exception as error:  # noqa: BLE001 - scipy raises ValueError, OSError, even UnboundLocalError
            cause = error.__cause__ if isinstance(error, ValueError) and error.__cause__ else error
            raise MediaError(f"Cannot read the WAV file {path!r} (unreadable or corrupt): {short_error(cause)}") from error
        for warning in caught:
            if "EOF prematurely" in str(warning.message):  # scipy's WavFileWarning for a file cut short
                raise MediaError(
                    f"The WAV file {path!r} is truncated ({warning.message}): an interrupted copy or download? Copy "
                    "it again; to use the part that is there, rewrite it first (e.g. `ffmpeg -i in.wav out.wav`)."
                )
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if waveform.ndim == 2:
            waveform = waveform.mean(axis=1)
        waveform = resample(np.ascontiguousarray(waveform, dtype=np.float32), rate, sampling_rate)
        _check_samples(waveform, path)
    else:
        waveform = decode_audio(path, sampling_rate)
    peak = float(np.abs(waveform).max())
    if peak < SILENCE_THRESHOLD:
        raise MediaError(f"The audio of {path!r} is silent (peak amplitude {peak:.2g} < {SILENCE_THRESHOLD:g}): nothing to separate.")
    return waveform


class VisualClip:
    """The frames of a video file (decoded on demand, a few at a time) or a still image.

    `frames_at(times)` returns the frames shown at those times (seconds, clamped to the clip) as `(n, H, W, 3)`
    uint8; `fps` and `num_frames` are the video's own (keypoint files count its frames).
    """

    def __init__(self, path):
        self.path = require_file(path, "video or image file")
        self.is_image = self.path.lower().endswith(IMAGE_EXTENSIONS)
        if self.is_image:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(self.path) as image:
                    self._image = np.asarray(image.convert("RGB"))
            except (UnidentifiedImageError, OSError) as error:
                raise MediaError(f"Cannot read the image {self.path!r} (unreadable or corrupt): {short_error(error)}") from error
            self.height, self.width = self._image.shape[:2]
            self.fps, self.num_frames, self.begin, self.end = 0.0, 1, 0.0, math.inf
            return
        decoders = load_torchcodec()
        try:
            self._decoder = decoders.VideoDecoder(self.path, dimension_order="NHWC")
            metadata = self._decoder.metadata
        except ValueError as error:  # torchcodec: "The best video stream is unknown"
            raise MediaError(f"{self.path!r} has no video stream: a clip must be a video (or an image).") from error
        except Exception as error:  # noqa: BLE001
            raise MediaError(f"Cannot decode {self.path!r}: not a readable video (corrupt or unsupported): {short_error(error)}") from error
        self.width, self.height = int(metadata.width), int(metadata.height)
        self.begin = float(metadata.begin_stream_seconds or 0.0)
        self.end = float(metadata.end_stream_seconds or metadata.duration_seconds or 0.0)
        self.fps = float(metadata.average_fps or 0.0)
        self.num_frames = int(metadata.num_frames or round((self.end - self.begin) * self.fps))
        if self.end <= self.begin or self.num_frames <= 0:
            raise MediaError(f"The video stream of {self.path!r} has no frames.")

    @property
    def duration(self) -> float:
        return math.inf if self.is_image else self.end - self.begin

    def frames_at(self, times) -> np.ndarray:
        times = np.asarray(times, dtype=np.float64)
        if self.is_image:
            return np.repeat(self._image[None], len(times), axis=0)
        last = self.end - min(0.5 / max(self.fps, 1.0), 1e-3)
        clamped = np.clip(self.begin + times, self.begin, max(self.begin, last))
        try:
            return self._decoder.get_frames_played_at(seconds=clamped.tolist()).data.numpy()
        except Exception as error:  # noqa: BLE001
            raise MediaError(f"Cannot decode frames of {self.path!r} near {clamped[0]:.2f} s: {short_error(error)}") from error


def iter_frames(path: str, fps: float = FRAME_RATE, short_side: int | None = 256, chunk: int = 32) -> Iterator[np.ndarray]:
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


__all__ = [
    "IMAGE_EXTENSIONS",
    "SILENCE_THRESHOLD",
    "MediaError",
    "VisualClip",
    "decode_audio",
    "iter_frames",
    "load_audio",
    "load_torchcodec",
    "media_info",
    "read_wav",
    "require_file",
    "resample",
    "short_error",
    "write_wav",
]

"""Inference with a trained TriBERT checkpoint: separate a video or a mixture, and evaluate on a prepared split.

The library behind `tribert separate` and `tribert evaluate` (see `docs/separation_cli.md`)::

    from tribert_hf.inference import evaluate_checkpoint, load_checkpoint, separate_mixture, separate_video

    checkpoint = load_checkpoint("outputs/separation")                 # model + processor, checked
    summary = separate_mixture(checkpoint, "mix.wav", ["a.mp4", "b.mp4"], output_dir="out/")
    summary = separate_video(checkpoint, "duet.mp4", keypoints="duet.json", output_dir="out/")
    metrics = evaluate_checkpoint(checkpoint, "synthetic:tiny", split="val", output_dir="eval/")

TriBERT predicts one mask per *conditioning video*: each source is described by frames (and keypoints) and the
model returns the part of the mixture that belongs to it. So the sources are

* `separate_mixture`: one per clip (the mix-and-separate setting the model is trained in);
* `separate_video`: one per tracked person of the keypoint file (frames cropped to that person, `pose_mask`
  selecting only them) when it holds two or more players; otherwise one source for the whole video.

Audio of any length is separated segment by segment (`tribert_hf.separation.apply.separate` with overlapping,
cross-faded segments of the feature extractor's crop length), and every segment is conditioned on the frames and
keypoints of its own time window. `residual.wav` (mixture minus the sum of the estimates) keeps what no source
claimed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .media import MediaError
from .separation.apply import separate


SILENCE_THRESHOLD = 1e-4  # peak amplitude below which a mixture counts as silent (as `tribert prepare`)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
LABEL_WINDOWS = 8  # time windows whose frames decide a source's predicted class
MAX_FIGURE_SECONDS = 60.0


class CheckpointError(ValueError):
    """A checkpoint folder that is not a usable TriBERT separation model."""


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A loaded checkpoint: the separation model (eval mode, on its device), its processor and where it came from."""

    model: object
    processor: object
    path: str
    warnings: list[str] = field(default_factory=list)

    @property
    def feature_extractor(self):
        return self.processor.feature_extractor

    @property
    def device(self) -> torch.device:
        return self.model.device


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> torch.device:
    """`device` (None: cuda if available, else cpu) as a torch.device; ValueError for an unusable one."""
    try:
        resolved = torch.device(device or default_device())
    except (RuntimeError, ValueError, TypeError) as error:
        raise ValueError(f"Unknown device {device!r}: use cpu, cuda or cuda:N.") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {device!r} asked for, but CUDA is not available here: use --device cpu.")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"Device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s).")
    return resolved


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load report and progress bar (a pre-training checkpoint has extra heads we ignore)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_checkpoint(path, device: str | None = None) -> Checkpoint:
    """Load a TriBERT checkpoint folder (`save_pretrained` of `TriBertForPreTraining` or
    `TriBertForSourceSeparation`, plus the processor) as a `TriBertForSourceSeparation` in eval mode.

    Raises `FileNotFoundError` for a missing folder and `CheckpointError` (a `ValueError`) for a folder that is not
    a TriBERT separation model: no `config.json`, another model's config, no weights, or weights without the
    separation head.
    """
    from . import TriBertFeatureExtractor, TriBertForSourceSeparation, TriBertProcessor, TriBertVideoProcessor

    path = os.fspath(path)
    device = resolve_device(device)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Checkpoint folder not found: {path!r}")
    if not os.path.isdir(path):
        raise CheckpointError(f"{path!r} is a file, not a checkpoint folder (the folder written by save_pretrained).")
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise CheckpointError(
            f"{path!r} is not a TriBERT checkpoint: it has no config.json. Give the folder written by "
            "`save_pretrained` (e.g. the --output_dir of examples/run_separation.py, or its best/ folder)."
        )
    try:
        with open(config_file, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_file!r} is not valid JSON: {error}") from error
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if model_type != "tribert":
        architectures = data.get("architectures") if isinstance(data, dict) else None
        what = f"a {model_type!r} model" if model_type else "no model_type"
        raise CheckpointError(
            f"{path!r} is not a TriBERT checkpoint: its config.json describes {what}"
            + (f" ({', '.join(map(str, architectures))})" if architectures else "")
            + ", not model_type 'tribert'."
        )
    if not any(os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES):
        raise CheckpointError(f"{path!r} has a TriBERT config but no weights ({WEIGHT_FILES[0]} is missing).")
    try:
        with _quiet_transformers():
            model, info = TriBertForSourceSeparation.from_pretrained(path, output_loading_info=True)
    except Exception as error:  # noqa: BLE001 - safetensors, pickle and torch raise their own types
        raise CheckpointError(_weights_error(path, error)) from error
    missing = sorted(info.get("missing_keys") or [])
    mismatched = info.get("mismatched_keys") or []
    if missing or mismatched:
        head = [key for key in model.state_dict() if key.startswith("separation.")]
        if head and all(key in missing for key in head):
            reason = (
                "it has no separation head (a TriBertModel or retrieval checkpoint); use a TriBertForPreTraining or "
                "TriBertForSourceSeparation checkpoint"
            )
        else:
            reason = "its weights do not match this version of the model (saved by an older tribert_hf?)"
        example = (missing or [str(m[0]) if isinstance(m, (list, tuple)) else str(m) for m in mismatched])[0]
        raise CheckpointError(
            f"{path!r} cannot separate: {reason} ({len(missing) + len(mismatched)} weights missing or mismatched, "
            f"e.g. {example})."
        )

    warnings = []
    config = model.config
    if os.path.isfile(os.path.join(path, "processor_config.json")):
        try:
            processor = TriBertProcessor.from_pretrained(path)
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise CheckpointError(f"Cannot load the processor of {path!r}: {error}") from error
    else:
        image = config.vision_config.image_size
        processor = TriBertProcessor(
            TriBertFeatureExtractor(num_frequency_bins=config.audio_config.num_frequency_bins),
            TriBertVideoProcessor(size={"shortest_edge": image}, crop_size={"height": image, "width": image}),
            num_pose_frames=config.pose_config.num_pose_frames,
            num_persons=config.pose_config.num_persons,
        )  # fmt: skip
        warnings.append(f"{path!r} has no processor_config.json: using the default processor for its config.")
    fe = processor.feature_extractor
    if fe.num_frequency_bins != config.audio_config.num_frequency_bins:
        raise CheckpointError(
            f"{path!r}: the processor makes {fe.num_frequency_bins} frequency bins but the model expects "
            f"{config.audio_config.num_frequency_bins}."
        )
    if processor.num_persons != config.pose_config.num_persons:
        raise CheckpointError(
            f"{path!r}: the processor has {processor.num_persons} person slots but the model {config.pose_config.num_persons}."
        )
    model.to(device).eval()
    return Checkpoint(model=model, processor=processor, path=path, warnings=warnings)


def _weights_error(path: str, error: Exception) -> str:
    """One line saying why a checkpoint's weights did not load, and what to do."""
    import pickle

    kind = type(error).__name__
    if isinstance(error, pickle.UnpicklingError) or "weights only load failed" in str(error).lower():
        return (
            f"Cannot load the TriBERT checkpoint {path!r}: its pytorch_model.bin is not a plain tensor file (pickled "
            "objects, which could run code, are refused; or the file is corrupt). Use a checkpoint saved with "
            "safetensors (model.safetensors), or convert this one where you trust its origin."
        )
    if "safetensor" in kind.lower() or "safetensor" in str(error).lower() or "deserializ" in str(error).lower():
        return (
            f"Cannot load the TriBERT checkpoint {path!r}: model.safetensors is truncated or corrupt ({_short(error)}). "
            "Copy or download it again."
        )
    return f"Cannot load the TriBERT checkpoint {path!r}: {kind}: {_short(error)}"


def _as_checkpoint(checkpoint, device) -> Checkpoint:
    if isinstance(checkpoint, Checkpoint):
        if device is not None and resolve_device(device) != checkpoint.device:
            checkpoint.model.to(resolve_device(device))
        return checkpoint
    return load_checkpoint(checkpoint, device)


# ----------------------------------------------------------------------------------------------------------------
# Media
# ----------------------------------------------------------------------------------------------------------------


def _short(error: Exception) -> str:
    """The useful part of a decoder's error message (torchcodec prefixes C++ file:line and appends boilerplate)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^\w+, \S+:\d+, ", "", text)[:200]


def _require_file(path, what: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such {what}: {path!r}")
    if os.path.isdir(path):
        raise MediaError(f"{path!r} is a folder, not a {what}.")
    return path


def _resample(waveform: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return waveform
    import torchaudio

    return torchaudio.functional.resample(torch.from_numpy(waveform), rate, target).numpy()


def load_audio(path, sampling_rate: int = 11025) -> np.ndarray:
    """A file's audio (a WAV, an audio file or a video's audio track) as mono float32 at `sampling_rate` Hz.

    Raises `FileNotFoundError`, or `MediaError` for an unreadable / corrupt file (a truncated WAV, an audio track
    whose packets do not decode), a video without an audio track, empty or non-finite audio, or silence (peak
    below 1e-4).
    """
    path = _require_file(path, "audio or video file")
    if path.lower().endswith(".wav"):
        from .data.prepared import read_wav

        import warnings

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                waveform, rate = read_wav(path)
        except Exception as error:  # noqa: BLE001 - scipy raises ValueError, OSError, even UnboundLocalError
            cause = error.__cause__ if isinstance(error, ValueError) and error.__cause__ else error
            raise MediaError(f"Cannot read the WAV file {path!r} (unreadable or corrupt): {_short(cause)}") from error
        for warning in caught:
            if "EOF prematurely" in str(warning.message):  # scipy's WavFileWarning for a file cut short
                raise MediaError(
                    f"The WAV file {path!r} is truncated ({warning.message}): an interrupted copy or download? Copy "
                    "it again; to use the part that is there, rewrite it first (e.g. `ffmpeg -i in.wav out.wav`)."
                )
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if waveform.ndim == 2:
            waveform = waveform.mean(axis=1)
        waveform = _resample(np.ascontiguousarray(waveform, dtype=np.float32), rate, sampling_rate)
    else:
        from .media import load_torchcodec

        decoders = load_torchcodec()
        try:
            decoder = decoders.AudioDecoder(path, sample_rate=sampling_rate, num_channels=1)
        except Exception as error:  # noqa: BLE001 - torchcodec raises several types
            try:
                decoders.VideoDecoder(path)
            except Exception:  # noqa: BLE001
                raise MediaError(f"Cannot decode {path!r}: not a readable media file (corrupt or unsupported): {_short(error)}") from error
            raise MediaError(f"{path!r} has no audio track: there is nothing to separate.") from error
        try:
            waveform = decoder.get_all_samples().data.mean(dim=0).numpy().astype(np.float32, copy=False)
        except Exception as error:  # noqa: BLE001 - the stream opened but its packets do not decode
            raise MediaError(
                f"The audio track of {path!r} is corrupt (damaged packets; a broken download or copy?): "
                f"{_short(error)}. Repair or re-encode the file (e.g. `ffmpeg -err_detect ignore_err -i in.mp4 out.mp4`)."
            ) from error
    if waveform.size == 0:
        raise MediaError(f"The audio of {path!r} is empty.")
    if not np.isfinite(waveform).all():
        raise MediaError(f"The audio of {path!r} contains NaN or infinite samples.")
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
        self.path = _require_file(path, "video or image file")
        self.is_image = self.path.lower().endswith(IMAGE_EXTENSIONS)
        if self.is_image:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(self.path) as image:
                    self._image = np.asarray(image.convert("RGB"))
            except (UnidentifiedImageError, OSError) as error:
                raise MediaError(f"Cannot read the image {self.path!r} (unreadable or corrupt): {_short(error)}") from error
            self.height, self.width = self._image.shape[:2]
            self.fps, self.num_frames, self.begin, self.end = 0.0, 1, 0.0, math.inf
            return
        from .media import load_torchcodec

        decoders = load_torchcodec()
        try:
            self._decoder = decoders.VideoDecoder(self.path, dimension_order="NHWC")
            metadata = self._decoder.metadata
        except ValueError as error:  # torchcodec: "The best video stream is unknown"
            raise MediaError(f"{self.path!r} has no video stream: a clip must be a video (or an image).") from error
        except Exception as error:  # noqa: BLE001
            raise MediaError(f"Cannot decode {self.path!r}: not a readable video (corrupt or unsupported): {_short(error)}") from error
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
            raise MediaError(f"Cannot decode frames of {self.path!r} near {clamped[0]:.2f} s: {_short(error)}") from error


def load_clip_keypoints(
    path, clip: VisualClip, max_persons: int = 2, min_score: float = 0.05, notes: list | None = None
) -> np.ndarray | None:
    """A clip's AlphaPose / COCO-WholeBody JSON as `(max_persons, clip frames, 68, 3)` (see `load_keypoints`), after
    checking that it belongs to the clip; None when the file holds no person detection. Doubts that are not errors
    (no detection at all, detections covering less than half of the video) are appended to `notes`.

    Raises `FileNotFoundError`, or `ValueError` when the file is unusable or does not match the clip: detections
    beyond the video's last frame, or keypoints outside its frame (another video or another resolution).
    """
    from .pose.keypoints import _parse, _read_json, load_keypoints

    path = _require_file(path, "keypoint file")
    if clip.is_image:
        raise ValueError(f"Keypoint file {path!r} does not match {clip.path!r}: keypoints need a video, not a still image.")
    if not clip.fps > 0:
        raise ValueError(f"The frame rate of {clip.path!r} is unknown: its keypoints ({path!r}) cannot be placed in time.")
    keypoints, _, frames, _, _ = _parse(_read_json(path), path, 0, min_score)
    notes = notes if notes is not None else []
    if frames.size == 0:
        notes.append(f"{path} holds no person detection: {clip.path} is conditioned on its frames alone.")
        return None
    last = int(frames.max())
    if last >= clip.num_frames + max(2, 0.05 * clip.num_frames):
        raise ValueError(
            f"Keypoint file {path!r} does not match {clip.path!r}: it has detections up to frame {last} but the video "
            f"has {clip.num_frames} frames (keypoints of another video, or computed at another frame rate?)."
        )
    confident = keypoints[..., 2] > 0.1
    if confident.any():
        x, y = keypoints[..., 0][confident], keypoints[..., 1][confident]
        outside = (x < -0.1 * clip.width) | (x > 1.1 * clip.width) | (y < -0.1 * clip.height) | (y > 1.1 * clip.height)
        if outside.mean() > 0.25:
            raise ValueError(
                f"Keypoint file {path!r} does not match {clip.path!r}: {100 * outside.mean():.0f}% of its keypoints lie "
                f"outside the {clip.width}x{clip.height} frame (keypoints of another video or resolution?)."
            )
    pose = load_keypoints(path, frame_size=(clip.width, clip.height), num_frames=clip.num_frames, max_persons=max_persons, min_score=min_score)
    if not (pose[..., 2] > 0).any():
        raise ValueError(f"Keypoint file {path!r} does not match {clip.path!r}: none of its detections falls inside the video.")
    first = int(frames.min())
    if (last - first + 1) < 0.5 * clip.num_frames:
        notes.append(
            f"{path} has detections in frames {first}-{last} only, of the {clip.num_frames} frames of {clip.path}: "
            "is it the keypoint file of this video?"
        )
    return pose


# ----------------------------------------------------------------------------------------------------------------
# Sources and their per-segment conditioning
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class SourceSpec:
    """What conditions one output source: a clip's frames, its keypoints (`(persons, frames, 68, 3)` at `pose_fps`,
    or None) and, in the per-person split, the person kept (the frames are cropped to them)."""

    clip: VisualClip
    pose: np.ndarray | None = None
    pose_fps: float = 0.0
    person: int | None = None
    keypoints_path: str | None = None

    def person_box(self) -> np.ndarray | None:
        """Whole-video bounding box `(x0, y0, x1, y1)` (normalised) of the kept person's confident joints."""
        if self.person is None or self.pose is None:
            return None
        return _joint_box(self.pose[self.person])


def _joint_box(pose: np.ndarray, min_confidence: float = 0.1) -> np.ndarray | None:
    confident = pose[..., 2] > min_confidence
    if not confident.any():
        return None
    x, y = pose[..., 0][confident], pose[..., 1][confident]
    return np.array([np.percentile(x, 1), np.percentile(y, 1), np.percentile(x, 99), np.percentile(y, 99)])


def _crop_box(box: np.ndarray, width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """A normalised joint box -> a square pixel box around it (plus `margin` of its size per side), inside the frame."""
    x0, y0, x1, y1 = box * np.array([width, height, width, height])
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    side = int(round(min(max(side, 16.0), width, height)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, left + side, top + side


class SegmentConditioner:
    """The per-segment `conditioning` of `separation.apply.separate`: for the segment starting at sample
    `start`, each source's frames (around the window's centre, `fps` apart as in training) and keypoints (cut to
    the window and resampled) -> `pixel_values` `(sources, F, 3, H, W)`, `pose_keypoints` `(sources, P, T, 68, 3)`,
    `pose_mask` `(sources, P)`. In the per-person split, frames are cropped to the person's box in that window (with
    `crop_margin`), their keypoints re-normalised to the crop and put in slot 0, the other slots masked: a solo clip,
    as in training. `starts` records the segments asked for.
    """

    def __init__(self, sources: Sequence[SourceSpec], processor, fps: float = 8.0, crop_margin: float = 0.15):
        self.sources = list(sources)
        self.processor = processor
        self.sampling_rate = processor.feature_extractor.sampling_rate
        self.fps = fps
        self.crop_margin = crop_margin
        self.starts: list[int] = []
        self.boxes: dict[int, list] = {}
        self._video_boxes = [source.person_box() for source in self.sources]

    def frame_times(self, start: int, num_samples: int) -> np.ndarray:
        """Times (s) of the frames conditioning the window `[start, start + num_samples)` samples."""
        vp = self.processor.video_processor
        centre = (start + num_samples / 2) / self.sampling_rate
        span = (vp.num_frames - 1) * vp.frame_stride + 1
        first = int(round(centre * self.fps)) - span // 2
        return np.maximum(first + vp.frame_stride * np.arange(vp.num_frames), 0) / self.fps

    def window(self, index: int, start: int, num_samples: int):
        """Inputs of source `index` for one window: pixel_values `(F, 3, H, W)`, pose `(P, T, 68, 3)`, mask `(P,)`,
        and the crop box (pixels) or None."""
        from .pose.keypoints import resample_keypoints

        source, p = self.sources[index], self.processor
        t0, duration = start / self.sampling_rate, num_samples / self.sampling_rate
        frames = source.clip.frames_at(self.frame_times(start, num_samples))
        pose = np.zeros((p.num_persons, p.num_pose_frames, 68, 3), dtype=np.float32)
        mask = np.zeros(p.num_persons, dtype=np.int64)
        box = None
        if source.pose is not None and source.person is None:
            window, present = resample_keypoints(
                source.pose, source.pose_fps, t0, duration, num_output_frames=p.num_pose_frames, min_presence=p.min_person_presence
            )
            count = min(len(window), p.num_persons)
            pose[:count], mask[:count] = window[:count], present[:count]
        elif source.pose is not None:
            window, present = resample_keypoints(
                source.pose[[source.person]], source.pose_fps, t0, duration, num_output_frames=p.num_pose_frames,
                min_presence=p.min_person_presence,
            )  # fmt: skip
            normalised_box = _joint_box(window[0]) if present[0] else None
            if normalised_box is None:
                normalised_box = self._video_boxes[index]
            if normalised_box is not None:
                width, height = source.clip.width, source.clip.height
                box = _crop_box(normalised_box, width, height, self.crop_margin)
                left, top, right, bottom = box
                frames = frames[:, top:bottom, left:right]
                keypoints = window[0].copy()
                confident = keypoints[..., 2] > 0
                keypoints[..., 0] = (keypoints[..., 0] * width - left) / (right - left)
                keypoints[..., 1] = (keypoints[..., 1] * height - top) / (bottom - top)
                keypoints[..., :2] = np.clip(keypoints[..., :2], 0.0, 1.0) * confident[..., None]
                pose[0], mask[0] = keypoints, present[0]
        pixel_values = p.video_processor([np.ascontiguousarray(frames)], do_sample_frames=False, return_tensors="pt")["pixel_values"][0]
        return pixel_values, torch.from_numpy(pose), torch.from_numpy(mask), box

    def inputs(self, start: int, num_samples: int) -> dict:
        parts = [self.window(i, start, num_samples) for i in range(len(self.sources))]
        self.boxes[start] = [part[3] for part in parts]
        return {
            "pixel_values": torch.stack([part[0] for part in parts]),
            "pose_keypoints": torch.stack([part[1] for part in parts]),
            "pose_mask": torch.stack([part[2] for part in parts]),
        }

    def __call__(self, start: int, num_samples: int) -> dict:
        self.starts.append(int(start))
        return self.inputs(start, num_samples)


def segment_starts(length: int, segment: int, overlap: float = 0.25) -> list[int]:
    """First samples of the segments `separate()` cuts `length` samples into (the same rule)."""
    hop = max(1, int(round(segment * (1.0 - overlap))))
    return [0] if length <= segment else list(range(0, length - segment, hop)) + [length - segment]


@dataclass
class SeparationResult:
    """What `separate_sources` returns: `estimates` `(sources, samples)` and `residual` `(samples,)` at
    `sampling_rate`, the predicted class per source, and the segments used."""

    mixture: np.ndarray
    estimates: np.ndarray
    residual: np.ndarray
    sampling_rate: int
    labels: list[str]
    label_scores: list[dict[str, float]]
    segment_samples: int
    segment_starts: list[int]
    crop_boxes: list
    seconds: float


@torch.no_grad()
def predict_labels(model, conditioner: SegmentConditioner, starts: Sequence[int], num_samples: int, top_k: int = 3):
    """Each source's visual class: the segmentation attention's per-frame class scores (`vision_class_scores`, from
    the frames alone), averaged over up to `LABEL_WINDOWS` windows spread over the input. Returns the top labels and
    the `top_k` (label -> score) per source."""
    picks = sorted({starts[int(round(i))] for i in np.linspace(0, len(starts) - 1, min(len(starts), LABEL_WINDOWS))})
    scores = None
    for start in picks:
        pixel_values = conditioner.inputs(start, num_samples)["pixel_values"].to(model.device)
        class_scores = model.tribert.vision_embeddings(pixel_values)[2].float().mean(dim=1)  # (sources, labels)
        scores = class_scores if scores is None else scores + class_scores
    scores = (scores / len(picks)).cpu()
    id2label = model.config.id2label
    labels, tops = [], []
    for row in scores:
        values, indices = row.topk(min(top_k, row.numel()))
        names = [str(id2label.get(int(i), f"LABEL_{int(i)}")) for i in indices]
        labels.append(names[0])
        tops.append({name: round(float(v), 4) for name, v in zip(names, values)})
    return labels, tops


def separate_sources(
    checkpoint: Checkpoint,
    waveform: np.ndarray,
    sources: Sequence[SourceSpec],
    *,
    overlap: float = 0.25,
    batch_size: int = 4,
    fps: float = 8.0,
    crop_margin: float = 0.15,
    mask_threshold: float | None = None,
    progress: bool = False,
) -> SeparationResult:
    """Separate a mono mixture (at the feature extractor's rate) into one estimate per source, segment by segment,
    each segment conditioned on its own time window of every source's clip."""
    if not sources:
        raise ValueError("Nothing to condition on: give at least one clip.")
    started = time.perf_counter()
    model, fe = checkpoint.model, checkpoint.feature_extractor
    conditioner = SegmentConditioner(sources, checkpoint.processor, fps=fps, crop_margin=crop_margin)
    mixture = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    try:
        estimates = separate(
            model, mixture.to(model.device), fe, overlap=overlap, batch_size=batch_size,
            mask_threshold=mask_threshold, conditioning=conditioner, progress=progress,
        ).float().cpu().numpy()  # fmt: skip
        starts = segment_starts(len(mixture), fe.num_samples, overlap)
        labels, tops = predict_labels(model, conditioner, starts, fe.num_samples)
    except torch.OutOfMemoryError as error:
        raise MemoryError(f"Out of memory on {model.device}: try a smaller --batch-size or --device cpu.") from error
    residual = waveform - estimates.sum(axis=0)
    return SeparationResult(
        mixture=np.asarray(waveform, dtype=np.float32), estimates=estimates, residual=residual.astype(np.float32),
        sampling_rate=fe.sampling_rate, labels=labels, label_scores=tops, segment_samples=fe.num_samples,
        segment_starts=list(conditioner.starts),
        crop_boxes=[[conditioner.boxes[s][i] for s in conditioner.starts] for i in range(len(sources))],
        seconds=time.perf_counter() - started,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------


def _file_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "source"


def _json_ready(value):
    """NaN / inf -> None, numpy scalars -> Python numbers (the JSON stays strict)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    return value


def _write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_json_ready(data), f, indent=2, allow_nan=False)


def _effective_masks(fe, mixture: np.ndarray, estimates: np.ndarray):
    """Mixture log-frequency magnitude `(bins, frames)` and each estimate's magnitude over it, clipped to [0, 1]
    (the masks the segment-wise separation amounts to), for the figure."""
    mix = fe.warp(fe.magnitude(fe.stft(torch.from_numpy(mixture)[None])))[0]
    est = fe.warp(fe.magnitude(fe.stft(torch.from_numpy(np.ascontiguousarray(estimates)))))
    masks = (est / mix.clamp_min(1e-8)).clamp(0.0, 1.0)
    return mix.numpy(), masks.numpy()


def write_separation(
    output_dir, result: SeparationResult, fe, sources: Sequence[SourceSpec], info: dict, figure: bool = True
) -> dict:
    """Write `source-<i>-<label>.wav` per source, `residual.wav`, `separation.png` and `separation.json` into
    `output_dir`; return the summary (the JSON's content)."""
    from .data.prepared import write_wav

    output_dir = os.fspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    rate = result.sampling_rate
    duration = len(result.mixture) / rate
    entries = []
    for i, (source, label) in enumerate(zip(sources, result.labels), start=1):
        name = f"source-{i}-{_file_label(label)}.wav"
        write_wav(os.path.join(output_dir, name), result.estimates[i - 1], rate)
        boxes = [b for b in result.crop_boxes[i - 1] if b is not None]
        entries.append({
            "index": i, "file": name, "label": label, "label_scores": result.label_scores[i - 1],
            "clip": source.clip.path, "keypoints": source.keypoints_path, "person": source.person,
            "crop_box": list(boxes[len(boxes) // 2]) if boxes else None,
            "duration": len(result.estimates[i - 1]) / rate,
            "rms": float(np.sqrt(np.mean(np.square(result.estimates[i - 1], dtype=np.float64)))),
        })  # fmt: skip
    write_wav(os.path.join(output_dir, "residual.wav"), result.residual, rate)
    figure_name = None
    if figure:
        from .visualization import plot_separation

        shown = min(len(result.mixture), int(MAX_FIGURE_SECONDS * rate))
        mixture_magnitude, masks = _effective_masks(fe, result.mixture[:shown], result.estimates[:, :shown])
        figure_name = "separation.png"
        title = os.path.basename(info.get("video") or info.get("mixture") or "mixture")
        if shown < len(result.mixture):
            title += f" (first {MAX_FIGURE_SECONDS:g} s)"
        plot_separation(
            os.path.join(output_dir, figure_name), mixture_magnitude, masks,
            labels=[f"{e['index']}: {e['label']}" for e in entries], sampling_rate=rate, hop_length=fe.hop_length,
            title=title,
        )  # fmt: skip
    summary = {
        **info,
        "sampling_rate": rate,
        "num_samples": len(result.mixture),
        "duration": duration,
        "segment_samples": result.segment_samples,
        "segment_seconds": result.segment_samples / rate,
        "num_segments": len(result.segment_starts),
        "sources": entries,
        "predicted_labels": list(result.labels),
        "residual": {
            "file": "residual.wav",
            "rms": float(np.sqrt(np.mean(np.square(result.residual, dtype=np.float64)))),
            "note": "mixture minus the sum of the estimates",
        },
        "figure": figure_name,
        "seconds": round(result.seconds, 3),
    }
    _write_json(os.path.join(output_dir, "separation.json"), summary)
    return summary


# ----------------------------------------------------------------------------------------------------------------
# The two separation settings
# ----------------------------------------------------------------------------------------------------------------


def _common_info(checkpoint: Checkpoint, overlap: float) -> dict:
    return {"checkpoint": checkpoint.path, "device": str(checkpoint.device), "overlap": overlap}


def separate_mixture(
    checkpoint,
    mixture,
    clips: Sequence,
    keypoints: Sequence | None = None,
    output_dir=None,
    *,
    device: str | None = None,
    overlap: float = 0.25,
    batch_size: int = 4,
    fps: float = 8.0,
    mask_threshold: float | None = None,
    figure: bool = True,
    progress: bool = False,
):
    """Mix-and-separate: the audio of `mixture` (WAV, audio or video file) -> one estimate per clip in `clips`
    (videos or still images), each conditioned on that clip's frames and keypoints (`keypoints`: one AlphaPose
    JSON per clip, None / "-" / "none" for a clip without).

    With `output_dir`, writes the outputs (see `write_separation`) and returns the summary; without, returns the
    `SeparationResult`.
    """
    checkpoint = _as_checkpoint(checkpoint, device)
    if not clips:
        raise ValueError("Give at least one clip (video or image) per source to separate.")
    keypoints = list(keypoints) if keypoints else [None] * len(clips)
    if len(keypoints) != len(clips):
        raise ValueError(
            f"Got {len(keypoints)} keypoint files for {len(clips)} clips: give one per clip, in the same order "
            "('-' for a clip without keypoints)."
        )
    keypoints = [None if k in (None, "", "-", "none") else os.fspath(k) for k in keypoints]
    rate = checkpoint.feature_extractor.sampling_rate
    waveform = load_audio(mixture, rate)
    specs, notes = [], []
    for clip_path, keypoint_path in zip(clips, keypoints):
        clip = VisualClip(clip_path)
        pose = None
        if keypoint_path is not None:
            pose = load_clip_keypoints(keypoint_path, clip, max_persons=checkpoint.processor.num_persons, notes=notes)
        specs.append(SourceSpec(clip, pose, clip.fps, None, keypoint_path))
    result = separate_sources(
        checkpoint, waveform, specs, overlap=overlap, batch_size=batch_size, fps=fps, mask_threshold=mask_threshold,
        progress=progress,
    )  # fmt: skip
    if output_dir is None:
        return result
    info = {
        "mode": "mix-and-separate", "mixture": os.fspath(mixture), "clips": [s.clip.path for s in specs],
        **_common_info(checkpoint, overlap),
    }  # fmt: skip
    short = [s.clip.path for s in specs if s.clip.duration < len(waveform) / rate - 0.5]
    notes += [f"{p} is shorter than the mixture: its last frame conditions the rest." for p in short]
    if notes:
        info["warnings"] = notes
    return write_separation(output_dir, result, checkpoint.feature_extractor, specs, info, figure=figure)


def separate_video(
    checkpoint,
    video,
    keypoints=None,
    output_dir=None,
    *,
    person_split: bool = True,
    max_persons: int = 4,
    device: str | None = None,
    overlap: float = 0.25,
    batch_size: int = 4,
    fps: float = 8.0,
    crop_margin: float = 0.15,
    mask_threshold: float | None = None,
    figure: bool = True,
    progress: bool = False,
):
    """Separate a video's own audio track.

    With a keypoint file holding two or more players (each seen in at least the processor's
    `min_person_presence` of the frames) and `person_split`, every player is one source: frames cropped to their
    box (plus `crop_margin`), keypoints of that person only. Otherwise the whole video is one source (and
    `residual.wav` keeps the rest of the mixture).
    """
    checkpoint = _as_checkpoint(checkpoint, device)
    processor = checkpoint.processor
    clip = VisualClip(video)
    if clip.is_image:
        raise MediaError(f"{clip.path!r} is an image: --video needs a video with an audio track.")
    waveform = load_audio(clip.path, checkpoint.feature_extractor.sampling_rate)
    keypoint_path = None if keypoints in (None, "", "-", "none") else os.fspath(keypoints)
    pose, notes = None, []
    if keypoint_path is not None:
        pose = load_clip_keypoints(keypoint_path, clip, max_persons=max(max_persons, processor.num_persons), notes=notes)
    persons = []
    if pose is not None:
        presence = (pose[..., 2] > 0).any(axis=-1).mean(axis=-1)  # (persons,) fraction of frames seen
        persons = [p for p in range(len(pose)) if presence[p] >= processor.min_person_presence and presence[p] > 0]
    if person_split and len(persons) >= 2:
        specs = [SourceSpec(clip, pose, clip.fps, p, keypoint_path) for p in persons]
        mode = "per-person"
    else:
        if pose is not None and len(pose) > processor.num_persons:  # keep the most present players, left to right
            presence = (pose[..., 2] > 0).any(axis=-1).mean(axis=-1)
            keep = sorted(np.argsort(-presence, kind="stable")[: processor.num_persons])
            pose = pose[keep]
        specs = [SourceSpec(clip, pose, clip.fps, None, keypoint_path)]
        mode = "single-source"
    result = separate_sources(
        checkpoint, waveform, specs, overlap=overlap, batch_size=batch_size, fps=fps, crop_margin=crop_margin,
        mask_threshold=mask_threshold, progress=progress,
    )  # fmt: skip
    if output_dir is None:
        return result
    info = {
        "mode": mode, "video": clip.path, "keypoints": keypoint_path, "persons_detected": len(persons),
        **_common_info(checkpoint, overlap),
    }  # fmt: skip
    if mode == "single-source" and len(persons) >= 2:
        notes.append("The keypoints show several players but person_split is off: one source for the whole video.")
    elif mode == "single-source" and keypoint_path is None:
        notes.append("No keypoint file: the whole video is one source (give AlphaPose keypoints to split a duet per player).")
    if notes:
        info["warnings"] = notes
    return write_separation(output_dir, result, checkpoint.feature_extractor, specs, info, figure=figure)


# ----------------------------------------------------------------------------------------------------------------
# Evaluation on a prepared split
# ----------------------------------------------------------------------------------------------------------------


def load_dataset(dataset: str, cache_dir: str | None = None, progress: bool = False):
    """`synthetic:<preset>` or a prepared folder -> (root, DatasetDict)."""
    from .data import SYNTHETIC_PRESETS, load_prepared, load_synthetic_music

    if dataset.startswith("synthetic:"):
        preset = dataset.split(":", 1)[1]
        if preset not in SYNTHETIC_PRESETS:
            raise ValueError(f"Unknown synthetic preset {preset!r}; use one of {', '.join(f'synthetic:{p}' for p in SYNTHETIC_PRESETS)}.")
        return load_synthetic_music(preset, cache_dir=cache_dir, progress=progress)
    if not os.path.isdir(dataset):
        raise FileNotFoundError(f"Dataset folder not found: {dataset!r} (give a `tribert prepare` folder or synthetic:tiny / synthetic:small).")
    return dataset, load_prepared(dataset)


def metrics_table(summary: dict) -> str:
    """The Markdown table of `evaluate_checkpoint`'s summary: model vs the mixture floor."""

    def cell(value):
        return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.2f}"

    model, floor, gain = summary["model"], summary["mixture"], summary["improvement"]
    lines = [
        f"# TriBERT separation: {summary['dataset']}, split {summary['split']}",
        "",
        f"{summary['num_mixtures']} mixtures of {summary['num_mix']} clips (centre crops of {summary['segment_seconds']:.2f} s), "
        f"{summary['num_skipped']} skipped (silent source); BSS Eval v3 ({summary['backend']} backend), checkpoint "
        f"`{summary['checkpoint']}`.",
        "",
        "| | SDR (dB) | SIR (dB) | SAR (dB) |",
        "|---|---:|---:|---:|",
        f"| model | {cell(model['sdr'])} | {cell(model['sir'])} | {cell(model['sar'])} |",
        f"| mixture (floor) | {cell(floor['sdr'])} | {cell(floor['sir'])} | {cell(floor['sar'])} |",
        f"| model - mixture | {cell(gain['sdr'])} | {cell(gain['sir'])} | - |",
    ]
    rows = {"threshold": "model, masks > 0.5 (SoP protocol, as the paper)", "ideal_binary_mask": "ideal binary mask (ceiling)", "ideal_ratio_mask": "ideal ratio mask (ceiling)"}  # fmt: skip
    lines += [f"| {name} | {cell(summary[key]['sdr'])} | {cell(summary[key]['sir'])} | {cell(summary[key]['sar'])} |" for key, name in rows.items() if key in summary]
    lines += [
        "",
        "Masks > 0.5: the predicted masks thresholded, the Sound-of-Pixels protocol of the paper's Table 1. The ideal "
        "masks, computed from the true sources, go through the same chain (log-frequency mask, mixture phase, inverse "
        "STFT): the ceiling of mask-based separation on these mixtures.",
        "The mixture floor scores the mixture itself as every source's estimate. Its SAR is not a floor: the mixture "
        "has no artifacts, so its SAR only reflects numerical precision (no SAR difference is given).",
    ]
    return "\n".join(lines) + "\n"


@torch.no_grad()
def evaluate_checkpoint(
    checkpoint,
    dataset: str = "synthetic:tiny",
    split: str = "val",
    num_mix: int = 2,
    backend: str = "fast",
    max_mixtures: int | None = None,
    output_dir=None,
    *,
    batch_size: int = 4,
    device: str | None = None,
    cache_dir: str | None = None,
    figure: bool = True,
    progress: bool = False,
) -> dict:
    """SDR / SIR / SAR of a checkpoint on a split: consecutive groups of `num_mix` clips (centre crops, in the
    split's order, so deterministic) are mixed and separated; metrics as Sound-of-Pixels (mean over sources per
    mixture, then over mixtures) next to the mixture floor (the mixture as every estimate).

    With `output_dir`, writes `metrics.json`, `metrics.md` and `example.png` (the first scored mixture). Returns
    the summary (the JSON's content).
    """
    from tqdm.auto import tqdm

    from .data import MixAndSeparateCollator, PreparedClipFeaturizer
    from .evaluation import IDEAL_SCORINGS, scoring_masks
    from .metrics import SeparationMetrics
    from .visualization import plot_separation

    if backend not in ("fast", "mir_eval"):
        raise ValueError(f"backend must be 'fast' or 'mir_eval', got {backend!r}.")
    if num_mix < 1:
        raise ValueError(f"num_mix must be at least 1, got {num_mix}.")
    if max_mixtures is not None and max_mixtures < 1:
        raise ValueError(f"max_mixtures must be at least 1, got {max_mixtures}.")
    started = time.perf_counter()
    checkpoint = _as_checkpoint(checkpoint, device)
    model, processor, fe = checkpoint.model, checkpoint.processor, checkpoint.feature_extractor
    root, data = load_dataset(dataset, cache_dir, progress)
    if split not in data:
        raise ValueError(f"{dataset!r} has no split {split!r}; its splits: {', '.join(data)}.")
    rows = data[split]
    count = len(rows) // num_mix
    if max_mixtures is not None:
        count = min(count, max_mixtures)
    if count == 0:
        raise ValueError(f"Split {split!r} of {dataset!r} has {len(rows)} clips: not enough for one mixture of {num_mix}.")

    label2id = dict(model.config.label2id)  # class_labels are not scored here: unknown names just get new ids
    for labels in rows["labels"]:
        for name in labels:
            label2id.setdefault(name, len(label2id))
    featurizer = PreparedClipFeaturizer(root, processor, crop="center", return_waveform=True, label2id=label2id)
    collate = MixAndSeparateCollator(fe, num_mix=num_mix, mask_type=model.config.mask_type)
    metrics = SeparationMetrics(backend=backend)
    extra = {name: SeparationMetrics(backend=backend) for name in ("threshold", *IDEAL_SCORINGS)}
    per_mixture, example = [], None
    bar = tqdm(total=count, desc="evaluate", unit="mixture", disable=not progress)
    for first in range(0, count, batch_size):
        mixtures = range(first, min(count, first + batch_size))
        clip_rows = [rows[m * num_mix + k] for m in mixtures for k in range(num_mix)]
        batch = collate([featurizer.example(row) for row in clip_rows])
        inputs = {k: batch[k].to(model.device) for k in ("pixel_values", "pose_keypoints", "pose_mask", "audio_spectrogram")}
        masks = model(**inputs, return_dict=True).masks.float().cpu()
        estimates = fe.masks_to_waveforms(masks, batch["mixture_stft"], batch["mixture_waveform"].shape[-1])
        result = metrics.update(batch["source_waveforms"], estimates, batch["mixture_waveform"])
        for name, tracker in extra.items():  # the same mixtures, thresholded and ideal masks
            chosen = scoring_masks(name, batch, fe, masks, mask_type=model.config.mask_type)
            other = fe.masks_to_waveforms(chosen, batch["mixture_stft"], estimates.shape[-1])
            tracker.update(batch["source_waveforms"], other, batch["mixture_waveform"])
        for j, m in enumerate(mixtures):
            group = clip_rows[j * num_mix : (j + 1) * num_mix]
            per_mixture.append({
                "index": m, "videos": [r["video_id"] for r in group], "labels": [list(r["labels"]) for r in group],
                "valid": bool(result["valid"][j]),
                **{k: float(result[k][j]) for k in ("sdr", "sir", "sar", "sdr_mixture", "sir_mixture", "sar_mixture")},
            })  # fmt: skip
            if example is None and result["valid"][j]:
                truth = fe.warp(fe.magnitude(fe.stft(batch["source_waveforms"][j])))
                example = {
                    "index": m, "mixture": batch["audio_spectrogram"][j, 0], "masks": masks[j], "true_masks": batch["labels"][j],
                    "true_magnitudes": truth, "names": [f"{r['video_id']} ({' + '.join(r['labels'])})" for r in group],
                }  # fmt: skip
        bar.update(len(mixtures))
    bar.close()
    scores = metrics.compute()
    summary = {
        "checkpoint": checkpoint.path, "dataset": dataset, "split": split, "num_mix": num_mix, "backend": backend,
        "num_mixtures": scores["num_mixtures"], "num_skipped": scores["num_skipped"],
        "segment_samples": fe.num_samples, "segment_seconds": fe.num_samples / fe.sampling_rate,
        "sampling_rate": fe.sampling_rate, "device": str(model.device),
        "model": {k: scores[k] for k in ("sdr", "sir", "sar")},
        "mixture": {k: scores[f"{k}_mixture"] for k in ("sdr", "sir", "sar")},
        "improvement": {k: scores[k] - scores[f"{k}_mixture"] for k in ("sdr", "sir", "sar")},
        **{
            "threshold" if name == "threshold" else f"{name}_mask": {k: computed[k] for k in ("sdr", "sir", "sar")}
            for name, computed in ((name, tracker.compute()) for name, tracker in extra.items())
        },
        "mixtures": per_mixture,
    }  # fmt: skip
    summary = _json_ready(summary)
    if output_dir is not None:
        output_dir = os.fspath(output_dir)
        os.makedirs(output_dir, exist_ok=True)
        summary["figure"] = None
        if figure and example is not None:
            summary["figure"] = "example.png"
            plot_separation(
                os.path.join(output_dir, "example.png"), example["mixture"], example["masks"],
                true_masks=example["true_masks"], true_magnitudes=example["true_magnitudes"], labels=example["names"],
                sampling_rate=fe.sampling_rate, hop_length=fe.hop_length,
                title=f"{dataset}, split {split}: mixture {example['index']} (model)",
            )  # fmt: skip
        summary["seconds"] = round(time.perf_counter() - started, 3)
        _write_json(os.path.join(output_dir, "metrics.json"), summary)
        with open(os.path.join(output_dir, "metrics.md"), "w", encoding="utf-8") as f:
            f.write(metrics_table(summary))
    else:
        summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "SegmentConditioner",
    "SeparationResult",
    "SourceSpec",
    "VisualClip",
    "default_device",
    "resolve_device",
    "evaluate_checkpoint",
    "load_audio",
    "load_checkpoint",
    "load_clip_keypoints",
    "load_dataset",
    "metrics_table",
    "predict_labels",
    "segment_starts",
    "separate_mixture",
    "separate_sources",
    "separate_video",
    "write_separation",
]

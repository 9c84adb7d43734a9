"""What conditions each separated source, segment by segment: a clip's frames and keypoints cut to the segment's
time window, in the per-person split cropped to one player (`SegmentConditioner`), and the checks that a keypoint
file belongs to its video (`load_clip_keypoints`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..media import VisualClip, require_file
from ..processing_tribert import frame_window
from ..video_processing_tribert import FRAME_RATE


def load_clip_keypoints(
    path, clip: VisualClip, max_persons: int = 2, min_score: float = 0.05, notes: list | None = None
) -> np.ndarray | None:
    """A clip's AlphaPose / COCO-WholeBody JSON as `(max_persons, clip frames, 68, 3)` (see `load_keypoints`), after
    checking that it belongs to the clip; None when the file holds no person detection. Doubts that are not errors
    (no detection at all, detections covering less than half of the video) are appended to `notes`.

    Raises `FileNotFoundError`, or `ValueError` when the file is unusable or does not match the clip: detections
    beyond the video's last frame, or keypoints outside its frame (another video or another resolution).
    """
    from ..pose.keypoints import load_keypoints, read_detections

    path = require_file(path, "keypoint file")
    if clip.is_image:
        raise ValueError(f"Keypoint file {path!r} does not match {clip.path!r}: keypoints need a video, not a still image.")
    if not clip.fps > 0:
        raise ValueError(f"The frame rate of {clip.path!r} is unknown: its keypoints ({path!r}) cannot be placed in time.")
    keypoints, frames = read_detections(path, min_score)
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


def training_frame_rate(processor) -> float:
    """The rate of the frames the checkpoint was trained on: its video processor's `frame_rate` (saved with the
    processor), `FRAME_RATE` for a processor without one."""
    return float(getattr(processor.video_processor, "frame_rate", None) or FRAME_RATE)


class SegmentConditioner:
    """The per-segment `conditioning` of `tribert_hf.separation.apply.separate`: for the segment starting at sample
    `start`, each source's frames (around the window's centre, `1 / fps` s apart as in training; `fps` None: the
    processor's training frame rate) and keypoints (cut to the window and resampled) -> `pixel_values`
    `(sources, F, 3, H, W)`, `pose_keypoints` `(sources, P, T, 68, 3)`, `pose_mask` `(sources, P)`. In the
    per-person split, frames are cropped to the person's box in that window (with `crop_margin`), their keypoints
    re-normalised to the crop and put in slot 0, the other slots masked: a solo clip, as in training. `starts`
    records the segments asked for.
    """

    def __init__(self, sources: Sequence[SourceSpec], processor, fps: float | None = None, crop_margin: float = 0.15):
        self.sources = list(sources)
        self.processor = processor
        self.sampling_rate = processor.feature_extractor.sampling_rate
        self.fps = training_frame_rate(processor) if fps is None else fps
        self.crop_margin = crop_margin
        self.starts: list[int] = []
        self.boxes: dict[int, list] = {}
        self._video_boxes = [source.person_box() for source in self.sources]

    def frame_times(self, start: int, num_samples: int, duration: float = math.inf) -> np.ndarray:
        """Times (s) of the frames conditioning the window `[start, start + num_samples)` samples of a clip of
        `duration` seconds: frames `1 / fps` apart around the window's centre, the window shifted inside the clip
        near its edges (`frame_window`, the rule of training crops)."""
        vp = self.processor.video_processor
        centre = (start + num_samples / 2) / self.sampling_rate
        # the frames at 0, 1/fps, ... before the clip's end: what `tribert prepare` (`media.iter_frames`) keeps
        available = None if math.isinf(duration) else max(math.ceil(duration * self.fps - 1e-9), 1)
        return frame_window(int(round(centre * self.fps)), vp.num_frames, vp.frame_stride, available) / self.fps

    def window(self, index: int, start: int, num_samples: int):
        """Inputs of source `index` for one window: pixel_values `(F, 3, H, W)`, pose `(P, T, 68, 3)`, mask `(P,)`,
        and the crop box (pixels) or None."""
        from ..pose.keypoints import resample_keypoints

        source, p = self.sources[index], self.processor
        t0, duration = start / self.sampling_rate, num_samples / self.sampling_rate
        frames = source.clip.frames_at(self.frame_times(start, num_samples, source.clip.duration))
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


__all__ = ["SegmentConditioner", "SourceSpec", "load_clip_keypoints", "training_frame_rate"]

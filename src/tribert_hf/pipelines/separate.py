"""Separating with a checkpoint: a mixture into one source per clip (`separate_mixture`), a video's own audio into
one source per player (`separate_video`), segment by segment for audio of any length; and writing the result
(one WAV per source, `residual.wav`, `separation.png`, `separation.json`)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..media import MediaError, VisualClip, load_audio, write_wav
from ..separation.apply import segment_starts, separate
from .checkpoint import Checkpoint, as_checkpoint
from .conditioning import SegmentConditioner, SourceSpec, load_clip_keypoints, training_frame_rate
from .outputs import write_json


LABEL_WINDOWS = 8  # time windows whose frames decide a source's predicted class
MAX_FIGURE_SECONDS = 60.0


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
    fps: float | None = None,
    crop_margin: float = 0.15,
    mask_threshold: float | None = None,
    progress: bool = False,
) -> SeparationResult:
    """Separate a mono mixture (at the feature extractor's rate) into one estimate per source, segment by segment,
    each segment conditioned on its own time window of every source's clip (frames `1 / fps` s apart; `fps` None:
    the checkpoint's training frame rate)."""
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


def _file_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "source"


def _effective_masks(fe, mixture: np.ndarray, estimates: np.ndarray):
    """Mixture log-frequency magnitude `(bins, frames)` and each estimate's magnitude over it, clipped to [0, 1]
    (the masks the segment-wise separation amounts to), for the figure."""
    mix = fe.log_frequency_magnitude(torch.from_numpy(mixture)[None])[0]
    est = fe.log_frequency_magnitude(torch.from_numpy(np.ascontiguousarray(estimates)))
    masks = (est / mix.clamp_min(1e-8)).clamp(0.0, 1.0)
    return mix.numpy(), masks.numpy()


def write_separation(
    output_dir, result: SeparationResult, fe, sources: Sequence[SourceSpec], info: dict, figure: bool = True
) -> dict:
    """Write `source-<i>-<label>.wav` per source, `residual.wav`, `separation.png` and `separation.json` into
    `output_dir`; return the summary (the JSON's content)."""
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
        from ..visualization import plot_separation

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
    write_json(os.path.join(output_dir, "separation.json"), summary)
    return summary


def _common_info(checkpoint: Checkpoint, overlap: float, fps: float | None) -> dict:
    rate = training_frame_rate(checkpoint.processor) if fps is None else fps
    # how the checkpoint's U-Net is conditioned (its config says; each segment gets its own keypoints either way)
    conditioning = getattr(checkpoint.model.config, "separation_conditioning", "pooled")
    return {
        "checkpoint": checkpoint.path, "device": str(checkpoint.device), "overlap": overlap, "fps": rate,
        "separation_conditioning": conditioning,
    }  # fmt: skip


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
    fps: float | None = None,
    mask_threshold: float | None = None,
    figure: bool = True,
    progress: bool = False,
):
    """Mix-and-separate: the audio of `mixture` (WAV, audio or video file) -> one estimate per clip in `clips`
    (videos or still images), each conditioned on that clip's frames and keypoints (`keypoints`: one AlphaPose
    JSON per clip, None / "-" / "none" for a clip without). The conditioning frames are `1 / fps` s apart (`fps`
    None: the rate the checkpoint was trained at, saved with its processor).

    With `output_dir`, writes the outputs (see `write_separation`) and returns the summary; without, returns the
    `SeparationResult`.
    """
    checkpoint = as_checkpoint(checkpoint, device)
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
        **_common_info(checkpoint, overlap, fps),
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
    fps: float | None = None,
    crop_margin: float = 0.15,
    mask_threshold: float | None = None,
    figure: bool = True,
    progress: bool = False,
):
    """Separate a video's own audio track.

    With a keypoint file holding two or more players (each seen in at least the processor's
    `min_person_presence` of the frames) and `person_split`, every player is one source: frames cropped to their
    box (plus `crop_margin`), keypoints of that person only. Otherwise the whole video is one source (and
    `residual.wav` keeps the rest of the mixture). The conditioning frames are `1 / fps` s apart (`fps` None: the
    rate the checkpoint was trained at, saved with its processor).
    """
    checkpoint = as_checkpoint(checkpoint, device)
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
        if getattr(checkpoint.model.config, "mask_activation", "sigmoid") == "softmax":
            raise ValueError(
                f"{clip.path!r} is separated as one source ({len(persons)} player(s) found"
                f"{'' if keypoint_path else ', no keypoint file'}{'' if person_split else ', person_split off'}), but "
                "this checkpoint's masks share the mixture out among its sources (mask_activation='softmax'): one "
                "source would get the whole mixture. Give a keypoint file with two or more players, one clip per "
                "player (`tribert separate --mixture M --clips A B`), or a checkpoint with mask_activation='sigmoid'."
            )
    result = separate_sources(
        checkpoint, waveform, specs, overlap=overlap, batch_size=batch_size, fps=fps, crop_margin=crop_margin,
        mask_threshold=mask_threshold, progress=progress,
    )  # fmt: skip
    if output_dir is None:
        return result
    info = {
        "mode": mode, "video": clip.path, "keypoints": keypoint_path, "persons_detected": len(persons),
        **_common_info(checkpoint, overlap, fps),
    }  # fmt: skip
    if mode == "single-source" and len(persons) >= 2:
        notes.append("The keypoints show several players but person_split is off: one source for the whole video.")
    elif mode == "single-source" and keypoint_path is None:
        notes.append("No keypoint file: the whole video is one source (give AlphaPose keypoints to split a duet per player).")
    if notes:
        info["warnings"] = notes
    return write_separation(output_dir, result, checkpoint.feature_extractor, specs, info, figure=figure)


__all__ = [
    "LABEL_WINDOWS",
    "SeparationResult",
    "predict_labels",
    "segment_starts",
    "separate_mixture",
    "separate_sources",
    "separate_video",
    "write_separation",
]

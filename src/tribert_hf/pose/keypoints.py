"""Read 2D pose-estimator output (AlphaPose, COCO-WholeBody) into the prepared `pose.npy` format.

`load_keypoints` turns a pose estimator's JSON into a float32 array of shape
`(max_persons, num_frames, 68, 3)`: for each person slot and video frame, the 68 joints of
`tribert_hf.pose.graph` (26 Halpe body joints, 21 left-hand, 21 right-hand joints) as
`(x / width, y / height, confidence)`, coordinates clipped to `[0, 1]`, confidences to `[0, 1]`;
an absent person, frame or joint is all zeros. That is what a prepared video stores as `pose.npy`
(see `tribert_hf.data.prepared`). `resample_keypoints` cuts a time window out of such an array
and resamples it to the pose stream's number of frames (256).

Input JSON
----------
AlphaPose's result file (`alphapose-results.json`, also COCO's keypoint *result* format): a list of
detections ::

    {"image_id": "17.jpg" (or 17), "category_id": 1, "keypoints": [x0, y0, score0, x1, ...],
     "score": 2.87, "box": [x, y, w, h], "idx": 3 (or [3]; only with pose tracking)}

Pixels, origin top-left. The frame index is the integer in `image_id` after stripping the folder
and the file extension (`"000017.jpg"` -> 17; like AlphaPose's own evaluation code, a trailing
`_<digits>` is also accepted: `"frame_17.jpg"` -> 17), minus `frame_index_base` (use 1 for frames
numbered from 1, like the prepared dataset's `000001.jpg`). Detections whose `category_id` is
present and not 1 (person) are skipped. A COCO-WholeBody *annotation* is accepted as a detection
too (`keypoints` with the 17 body joints plus `foot_kpts`, `face_kpts`, `lefthand_kpts`,
`righthand_kpts`, concatenated into the 133-point order), and so is a whole COCO-WholeBody
annotation file (a dict with `"annotations"`, frame index taken from the `"images"` file names).

Keypoint layouts (chosen from the number of keypoints K with `format="auto"`, or by name)
------------------------------------------------------------------------------------------
=================  ===  ==========================================================================
name               K    layout, and how it maps to our 68 joints
=================  ===  ==========================================================================
``halpe136``       136  0-25 Halpe-26 body -> 0-25; 26-93 face (dropped); 94-114 left hand -> 26-46;
                        115-135 right hand -> 47-67 (AlphaPose ``halpe_136`` models)
``halpe68``        68   AlphaPose ``halpe_68_noface``: identical to ours
``halpe26``        26   Halpe-26 body -> 0-25; both hands zero (confidence 0)
``coco_wholebody`` 133  0-16 COCO-17 body; 17-22 feet (left big toe, left small toe, left heel,
                        right big toe, right small toe, right heel); 23-90 face (dropped);
                        91-111 left hand -> 26-46; 112-132 right hand -> 47-67
``coco17``         17   COCO-17 body only; feet and hands zero
=================  ===  ==========================================================================

COCO body to Halpe-26 (both COCO layouts):

* joints 0-16 (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles) are the same;
* 17 head (top of the head): no COCO equivalent -> zeros;
* 18 neck = midpoint of the shoulders (5, 6), confidence = min of the two;
* 19 hip (centre) = midpoint of the hips (11, 12), confidence = min of the two;
* feet (``coco_wholebody`` only): 20 left big toe <- 17, 21 right big toe <- 20,
  22 left small toe <- 18, 23 right small toe <- 21, 24 left heel <- 19, 25 right heel <- 22.

The mapping is stored as two index tables per layout (`LAYOUTS[name].source_a / source_b`, shape
`(68,)`): output joint `j` is the midpoint of input joints `source_a[j]` and `source_b[j]` with the
smaller of their confidences (`source_a[j] == source_b[j]` for a plain copy, `-1` for "no source":
zeros), applied to all detections at once.

Persons
-------
Up to `max_persons` persons are kept, each in a fixed slot over the whole video:

* with track ids (`"idx"` on every kept detection, no id twice in one frame; AlphaPose writes
  `idx` 0 for everyone when run without tracking, which then falls back to the next rule): the
  `max_persons` tracks with the largest summed detection score;
* otherwise detections are linked frame to frame by position: the centre of a detection (mean
  normalised x, y of its body joints with confidence >= 0.1) is matched to each slot's last centre
  by optimal assignment (`scipy.optimize.linear_sum_assignment`), accepting matches closer than
  `max_link_distance` (in frame widths / heights). Unmatched detections, best score first, then
  take a slot never used so far, then any slot left unmatched in this frame (the nearest); whatever
  remains is dropped (more than `max_persons` persons in a frame: those matching existing slots
  best are kept, then the highest scores). A slot whose person is absent stays zero meanwhile.

In both cases the slots are finally ordered by the person's mean x over the video, slot 0 being
the leftmost person. Detections with `score < min_score` are ignored.
"""

from __future__ import annotations

import json
import os
import re
from typing import NamedTuple

import numpy as np

from .graph import LEFT_HAND_OFFSET, NUM_BODY_JOINTS, NUM_HAND_JOINTS, RIGHT_HAND_OFFSET


NUM_JOINTS = 68
#: without `num_frames`, `load_keypoints` infers the length from the last detection only up to this many frames
#: (2 h at 60 fps, 1.3 GiB for 2 persons): a larger frame index is more likely a numbering error than a video
MAX_INFERRED_FRAMES = 432_000
#: minimum confidence of a body joint to count for a detection's centre (position linking, slot order)
CENTER_MIN_CONFIDENCE = 0.1


class KeypointLayout(NamedTuple):
    """A pose estimator's keypoint layout and its map to our 68 joints (see the module docstring)."""

    name: str
    num_keypoints: int
    source_a: np.ndarray  # (68,) int64: input joint (or -1) of each output joint
    source_b: np.ndarray  # (68,) int64: second input joint of a midpoint (== source_a for a copy)


def _layout(name: str, num_keypoints: int, copies: dict, midpoints: dict | None = None) -> KeypointLayout:
    source_a = np.full(NUM_JOINTS, -1, dtype=np.int64)
    for out_joint, in_joint in copies.items():
        source_a[out_joint] = in_joint
    source_b = source_a.copy()
    for out_joint, (first, second) in (midpoints or {}).items():
        source_a[out_joint], source_b[out_joint] = first, second
    return KeypointLayout(name, num_keypoints, source_a, source_b)


def _hands(left_start: int, right_start: int) -> dict:
    return {
        **{LEFT_HAND_OFFSET + i: left_start + i for i in range(NUM_HAND_JOINTS)},
        **{RIGHT_HAND_OFFSET + i: right_start + i for i in range(NUM_HAND_JOINTS)},
    }


_HALPE_BODY = {i: i for i in range(NUM_BODY_JOINTS)}
_COCO_BODY = {i: i for i in range(17)}
_COCO_MIDPOINTS = {18: (5, 6), 19: (11, 12)}  # neck = mid-shoulders, hip = mid-hips; head (17): none
# Halpe-26 feet <- COCO-WholeBody 17-22
# (left big toe, left small toe, left heel, right big toe, right small toe, right heel)
_COCO_WHOLEBODY_FEET = {20: 17, 21: 20, 22: 18, 23: 21, 24: 19, 25: 22}

LAYOUTS = {
    layout.name: layout
    for layout in (
        _layout("halpe136", 136, {**_HALPE_BODY, **_hands(94, 115)}),
        _layout("halpe68", 68, {i: i for i in range(NUM_JOINTS)}),
        _layout("halpe26", 26, _HALPE_BODY),
        _layout("coco_wholebody", 133, {**_COCO_BODY, **_COCO_WHOLEBODY_FEET, **_hands(91, 112)}, _COCO_MIDPOINTS),
        _layout("coco17", 17, _COCO_BODY, _COCO_MIDPOINTS),
    )
}
_LAYOUT_BY_K = {layout.num_keypoints: layout for layout in LAYOUTS.values()}

# COCO-WholeBody annotation fields, in the order of the 133-point layout.
_WHOLEBODY_PARTS = (
    ("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21),
)  # fmt: skip
_IMAGE_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]*$")
_TRAILING_NUMBER = re.compile(r"(?:.*_)?([0-9]+)")


def map_to_halpe68(keypoints: np.ndarray, layout: str | KeypointLayout) -> np.ndarray:
    """Map keypoints of a known layout to our 68 joints.

    `keypoints`: `(..., K, 3)` (x, y, confidence) in any unit; returns `(..., 68, 3)` float32 in the
    same unit. Midpoint joints take the smaller confidence of their two sources; joints without a
    source are zeros.
    """
    layout = LAYOUTS[layout] if isinstance(layout, str) else layout
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.shape[-2:] != (layout.num_keypoints, 3):
        raise ValueError(
            f"Layout {layout.name!r} expects (..., {layout.num_keypoints}, 3) keypoints, got {keypoints.shape}."
        )
    padded = np.concatenate([keypoints, np.zeros(keypoints.shape[:-2] + (1, 3), np.float32)], axis=-2)
    missing = layout.num_keypoints  # index of the zero joint appended above
    first = padded[..., np.where(layout.source_a < 0, missing, layout.source_a), :]
    second = padded[..., np.where(layout.source_b < 0, missing, layout.source_b), :]
    out = np.empty_like(first)
    out[..., :2] = 0.5 * (first[..., :2] + second[..., :2])
    out[..., 2] = np.minimum(first[..., 2], second[..., 2])
    return out


def _frame_index(image_id, base: int) -> int:
    """Frame index of an `image_id` (int, or a file name such as "17.jpg"); ValueError when there is none."""
    index = None
    if isinstance(image_id, (int, np.integer)) and not isinstance(image_id, bool):
        index = int(image_id)
    elif isinstance(image_id, float) and image_id.is_integer():
        index = int(image_id)
    elif isinstance(image_id, str):
        stem = _IMAGE_EXTENSION.sub("", os.path.basename(image_id.strip().replace("\\", "/")))
        match = _TRAILING_NUMBER.fullmatch(stem)
        if match:
            index = int(match.group(1))
    if index is None:
        raise ValueError(f"image_id {image_id!r} holds no integer frame index")
    if index >= 2**40:
        raise ValueError(f"image_id {image_id!r} gives frame {index}: not a frame index of a video")
    if index - base < 0:
        raise ValueError(f"image_id {image_id!r} gives frame {index - base} < 0 (frame_index_base={base})")
    return index - base


def _track_id(value):
    """A hashable track id from AlphaPose's `idx` (int, float or a list of them); None if unusable."""
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        value = value[0]
        if isinstance(value, (list, tuple)):
            return _track_id(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    if not np.isfinite(value):
        return None
    return int(round(float(value)))


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot parse the keypoint file {path}: not valid JSON ({error}).") from error
    except RecursionError as error:  # json's parser recurses once per nesting level
        raise ValueError(
            f"Cannot parse the keypoint file {path}: its JSON is nested too deeply (malformed; AlphaPose writes a "
            "flat list of detections)."
        ) from error


def _detections_from(data, path: str) -> list:
    """The list of detection dicts of a JSON document, with `_frame_name` set for COCO annotation files."""
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        names = {}
        for image in data.get("images") or []:
            if isinstance(image, dict) and "id" in image:
                names[image["id"]] = image.get("file_name", image["id"])
        detections = []
        for item in data["annotations"]:
            if isinstance(item, dict) and item.get("image_id") in names:
                item = {**item, "image_id": names[item["image_id"]]}
            detections.append(item)
        data = detections
    if not isinstance(data, list):
        raise ValueError(
            f"Keypoint file {path} is not a list of detections (got a JSON {type(data).__name__}); expected "
            "AlphaPose's result format [{\"image_id\": ..., \"keypoints\": [x, y, score, ...], \"score\": ...}, ...]."
        )
    return data


def _wholebody_values(item: dict) -> list:
    """The 133 x 3 keypoint values of a COCO-WholeBody annotation (missing parts are zeros)."""
    values = []
    for field, count in _WHOLEBODY_PARTS:
        part = item.get(field)
        values.extend(part if isinstance(part, list) else [0.0] * (3 * count))
    return values


def _parse(data, path: str, base: int, min_score: float):
    """Flatten detections into arrays: keypoints (M, K, 3) pixels, K (None without detections), frames (M,),
    scores (M,), track ids (list of int or None).

    Every detection is validated; those of another category or with `score < min_score` are then dropped.
    """
    keypoints, frames, scores, tracks, lengths = [], [], [], [], set()
    for number, item in enumerate(_detections_from(data, path)):
        if not isinstance(item, dict) or "keypoints" not in item or "image_id" not in item:
            raise ValueError(
                f"Keypoint file {path}: detection {number} is not a dict with 'image_id' and 'keypoints' "
                f"(got {str(item)[:80]})."
            )
        values = _wholebody_values(item) if "lefthand_kpts" in item else item["keypoints"]
        if not isinstance(values, list) or len(values) % 3 != 0:
            length = len(values) if isinstance(values, list) else type(values).__name__
            raise ValueError(
                f"Keypoint file {path}: detection {number} has a keypoint list of length {length}, "
                "not a multiple of 3 (x, y, score per keypoint)."
            )
        try:
            frame = _frame_index(item["image_id"], base)
        except ValueError as error:
            raise ValueError(f"Keypoint file {path}: detection {number}: {error}.") from error
        lengths.add(len(values) // 3)
        score = item.get("score", 1.0)
        if isinstance(score, list) and len(score) == 1:
            score = score[0]
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ValueError(f"Keypoint file {path}: detection {number} has a non-numeric score {score!r}.")
        if item.get("category_id", 1) != 1 or not score >= min_score:  # `not >=` also drops NaN scores
            continue
        keypoints.append(values)
        frames.append(frame)
        scores.append(float(score))
        tracks.append(_track_id(item["idx"]) if "idx" in item else None)
    if len(lengths) > 1:
        raise ValueError(f"Keypoint file {path} mixes keypoint counts {sorted(lengths)} in one file.")
    num_keypoints = lengths.pop() if lengths else None
    try:
        array = np.asarray(keypoints, dtype=np.float32).reshape(len(keypoints), num_keypoints or 0, 3)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Keypoint file {path}: keypoints are not all numbers ({error}).") from error
    return array, num_keypoints, np.asarray(frames, dtype=np.int64), np.asarray(scores, dtype=np.float64), tracks


def _resolve_layout(format: str, num_keypoints: int, path: str) -> KeypointLayout:
    if format == "auto":
        if num_keypoints not in _LAYOUT_BY_K:
            raise ValueError(
                f"Keypoint file {path}: unsupported number of keypoints K={num_keypoints}; supported: "
                + ", ".join(f"{layout.num_keypoints} ({name})" for name, layout in LAYOUTS.items())
                + "."
            )
        return _LAYOUT_BY_K[num_keypoints]
    if format not in LAYOUTS:
        raise ValueError(f"Unknown keypoint format {format!r}; use 'auto' or one of {sorted(LAYOUTS)}.")
    layout = LAYOUTS[format]
    if num_keypoints != layout.num_keypoints:
        raise ValueError(
            f"Keypoint file {path}: format {format!r} has {layout.num_keypoints} keypoints, "
            f"the file has K={num_keypoints}."
        )
    return layout


def _centers(pose68: np.ndarray) -> np.ndarray:
    """Centre `(M, 2)` of each detection: mean x, y of its body joints with confidence >= CENTER_MIN_CONFIDENCE
    (of all body joints with confidence > 0 when none is that confident); NaN without any."""
    body = pose68[:, :NUM_BODY_JOINTS]
    confident = body[..., 2] >= CENTER_MIN_CONFIDENCE
    weak = ~confident.any(axis=1)
    confident[weak] = body[weak, :, 2] > 0
    count = confident.sum(axis=1, keepdims=True)
    total = (body[..., :2] * confident[..., None]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _slots_from_tracks(track_ids: np.ndarray, scores: np.ndarray, max_persons: int) -> np.ndarray:
    """Slot (or -1) of each detection: the `max_persons` tracks with the largest summed score."""
    unique, inverse = np.unique(track_ids, return_inverse=True)
    totals = np.bincount(inverse, weights=scores, minlength=len(unique))
    kept = np.argsort(-totals, kind="stable")[:max_persons]
    slot_of_track = np.full(len(unique), -1, dtype=np.int64)
    slot_of_track[kept] = np.arange(len(kept))
    return slot_of_track[inverse]


def _slots_from_positions(frames, centers, scores, max_persons: int, max_link_distance: float) -> np.ndarray:
    """Slot (or -1) of each detection by frame-to-frame position continuity (see the module docstring)."""
    from scipy.optimize import linear_sum_assignment

    slots = np.full(len(frames), -1, dtype=np.int64)
    last = np.full((max_persons, 2), np.nan)  # last centre of each slot; NaN = never used
    order = np.lexsort((-scores, frames))  # by frame, best score first
    boundaries = np.flatnonzero(np.diff(frames[order])) + 1
    for group in np.split(order, boundaries):
        if group.size == 0:
            continue
        taken = np.zeros(max_persons, dtype=bool)
        open_dets = np.ones(len(group), dtype=bool)
        used = np.flatnonzero(~np.isnan(last[:, 0]))
        distance = np.linalg.norm(centers[group][:, None, :] - last[None, used, :], axis=-1) if used.size else None
        if used.size:  # 1. continue existing slots (optimal assignment, gated)
            rows, cols = linear_sum_assignment(distance)
            for row, col in zip(rows, cols):
                if distance[row, col] <= max_link_distance:
                    slots[group[row]], taken[used[col]], open_dets[row] = used[col], True, False
        for row in np.flatnonzero(open_dets):  # 2. new persons take never-used slots, best score first
            fresh = np.flatnonzero(np.isnan(last[:, 0]) & ~taken)
            if fresh.size:
                slots[group[row]], taken[fresh[0]], open_dets[row] = fresh[0], True, False
        rows_left = np.flatnonzero(open_dets)
        cols_left = np.flatnonzero(~taken[used])  # used slots not matched in this frame
        if len(rows_left) and len(cols_left):  # 3. remaining persons take slots left free in this frame
            sub = distance[np.ix_(rows_left, cols_left)]
            rows, cols = linear_sum_assignment(sub)
            for row, col in zip(rows, cols):
                slots[group[rows_left[row]]], taken[used[cols_left[col]]] = used[cols_left[col]], True
        assigned = slots[group] >= 0
        last[slots[group][assigned]] = centers[group][assigned]
    return slots


def load_keypoints(
    path,
    frame_size,
    num_frames: int | None = None,
    format: str = "auto",
    max_persons: int = 2,
    *,
    min_score: float = 0.05,
    allow_missing: bool = False,
    frame_index_base: int = 0,
    max_link_distance: float = 0.25,
) -> np.ndarray:
    """Read a pose estimator's JSON (AlphaPose / COCO-WholeBody, see the module docstring) as `pose.npy` data.

    Args:
        path: the JSON file.
        frame_size: `(width, height)` of the video in pixels; x is divided by the width, y by the height,
            both clipped to `[0, 1]`.
        num_frames: number of frames of the video (default: largest frame index + 1, refused beyond
            `MAX_INFERRED_FRAMES`). Frames without a detection are zeros; detections at frame indices
            `>= num_frames` are ignored.
        format: "auto" (from the number of keypoints K) or a name of `LAYOUTS`: "halpe136", "halpe68",
            "halpe26", "coco_wholebody", "coco17".
        max_persons: number of person slots.
        min_score: detections with a lower detection `score` are ignored.
        allow_missing: return zeros for a missing file (then `num_frames` is required) instead of raising.
        frame_index_base: subtracted from the number in `image_id` (1 for frames numbered from 1).
        max_link_distance: largest move of a person's centre between two of its detections, in frame
            widths / heights, that position linking accepts as the same person (without track ids).

    Returns:
        `(max_persons, num_frames, 68, 3)` float32: x / width, y / height, confidence in `[0, 1]`, joints in
        the Halpe-68 order of `tribert_hf.pose.graph`; slot 0 is the leftmost person; absent = 0.

    Raises:
        FileNotFoundError: `path` does not exist (unless `allow_missing`).
        ValueError: unparsable or too deeply nested JSON, not a list of detections, keypoint lists whose length
            is not a multiple of 3 or an unsupported K, an `image_id` without an integer frame index (or one of
            2 ** 40 or more), a last frame beyond `MAX_INFERRED_FRAMES` without `num_frames`, bad arguments.
            A joint with a NaN / inf coordinate or score is read as missing (zeros).
    """
    path = os.fspath(path)
    width, height = _check_frame_size(frame_size)
    if max_persons < 1:
        raise ValueError(f"max_persons must be >= 1, got {max_persons}.")
    if num_frames is not None and num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}.")
    if format != "auto" and format not in LAYOUTS:
        raise ValueError(f"Unknown keypoint format {format!r}; use 'auto' or one of {sorted(LAYOUTS)}.")
    if not os.path.exists(path):
        if not allow_missing:
            raise FileNotFoundError(f"Keypoint file {path} does not exist.")
        if num_frames is None:
            raise ValueError(f"Keypoint file {path} is missing and allow_missing=True needs num_frames.")
        return np.zeros((max_persons, int(num_frames), NUM_JOINTS, 3), dtype=np.float32)

    keypoints, num_keypoints, frames, scores, tracks = _parse(_read_json(path), path, frame_index_base, min_score)
    layout = _resolve_layout(format, num_keypoints, path) if num_keypoints is not None else None
    if num_frames is None and frames.size and int(frames.max()) >= MAX_INFERRED_FRAMES:
        raise ValueError(
            f"Keypoint file {path}: a detection at frame {int(frames.max())} would make the output "
            f"{int(frames.max()) + 1} frames long ({(int(frames.max()) + 1) * max_persons * NUM_JOINTS * 12 / 2**30:.1f} "
            f"GiB). Pass `num_frames=` (the video's frame count; later detections are ignored), or check the "
            "image_id numbering."
        )
    total_frames = int(num_frames) if num_frames is not None else (int(frames.max()) + 1 if frames.size else 0)
    out = np.zeros((max_persons, total_frames, NUM_JOINTS, 3), dtype=np.float32)
    if not frames.size:
        return out

    # Normalise, clean and map all detections at once: (M, K, 3) pixels -> (M, 68, 3) normalised.
    keypoints[~np.isfinite(keypoints).all(axis=-1)] = 0.0  # a NaN / inf x, y or score: a missing joint
    keypoints[..., 0] /= width
    keypoints[..., 1] /= height
    pose = map_to_halpe68(keypoints, layout)
    pose[..., :2] = np.clip(pose[..., :2], 0.0, 1.0)
    pose[..., 2] = np.clip(pose[..., 2], 0.0, 1.0)
    pose[..., :2] *= (pose[..., 2:] > 0)  # a joint without confidence is all zeros

    centers = _centers(pose)
    keep = (frames < total_frames) & ~np.isnan(centers[:, 0])  # in range, with at least one body joint
    tracks = [track for track, k in zip(tracks, keep) if k]
    pose, frames, scores, centers = pose[keep], frames[keep], scores[keep], centers[keep]
    if not frames.size:
        return out

    track_ids = np.asarray([-1 if t is None else t for t in tracks], dtype=np.int64)
    has_tracks = all(t is not None for t in tracks) and (
        len(np.unique(np.stack([frames, track_ids], axis=1), axis=0)) == len(frames)  # no id twice in a frame
    )
    if has_tracks:
        slots = _slots_from_tracks(track_ids, scores, max_persons)
    else:
        slots = _slots_from_positions(frames, centers, scores, max_persons, max_link_distance)

    # Order the slots by mean x (slot 0 = leftmost); slots never filled go last.
    assigned = slots >= 0
    counts = np.bincount(slots[assigned], minlength=max_persons)
    sum_x = np.bincount(slots[assigned], weights=centers[assigned, 0], minlength=max_persons)
    mean_x = np.where(counts > 0, sum_x / np.maximum(counts, 1), np.inf)
    rank = np.empty(max_persons, dtype=np.int64)
    rank[np.argsort(mean_x, kind="stable")] = np.arange(max_persons)

    out[rank[slots[assigned]], frames[assigned]] = pose[assigned]
    return out


def _check_frame_size(frame_size) -> tuple[float, float]:
    try:
        width, height = (float(v) for v in frame_size)
    except (TypeError, ValueError) as error:
        raise ValueError(f"frame_size must be (width, height) in pixels, got {frame_size!r}.") from error
    if not (width > 0 and height > 0 and np.isfinite(width) and np.isfinite(height)):
        raise ValueError(f"frame_size must be positive (width, height) in pixels, got {frame_size!r}.")
    return width, height


def resample_keypoints(
    pose: np.ndarray,
    pose_fps: float,
    start: float,
    duration: float,
    num_output_frames: int = 256,
    min_presence: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the window `[start, start + duration)` seconds out of a video's keypoints and resample it.

    Args:
        pose: `(P, N, J, 3)` keypoints of the whole video (the prepared `pose.npy`: `(2, N, 68, 3)`),
            frame `k` taken at time `k / pose_fps` seconds.
        pose_fps: keypoint frames per second (> 0).
        start, duration: the window in seconds (`start` may be negative or run past the end: frames
            outside the video are zeros).
        num_output_frames: frames of the result; output frame `i` is sampled at time
            `start + i * duration / num_output_frames`.
        min_presence: fraction of the output frames in which a person must have a joint with
            confidence > 0 to be kept.

    Sampling: at source position `s = time * pose_fps`, a joint whose two neighbouring frames
    `floor(s)` and `floor(s) + 1` both have confidence > 0 is linearly interpolated (x, y and
    confidence); any other joint takes the nearest frame `round(s)` (zeros if outside the video).

    Returns:
        `(keypoints, person_mask)`: `(P, num_output_frames, J, 3)` float32 and `(P,)` int64, where
        `person_mask[p] = 1` when person `p` is present (see `min_presence`, and in at least one frame)
        and 0 otherwise; a masked person's keypoints are zeros.
    """
    pose = np.asarray(pose, dtype=np.float32)
    if pose.ndim != 4 or pose.shape[-1] != 3:
        raise ValueError(f"pose must have shape (persons, frames, joints, 3), got {pose.shape}.")
    if not (np.isfinite(pose_fps) and pose_fps > 0):
        raise ValueError(f"pose_fps must be > 0, got {pose_fps}.")
    if not (np.isfinite(duration) and duration > 0) or not np.isfinite(start):
        raise ValueError(
            f"The window must have a finite start and a duration > 0, got start={start}, duration={duration}."
        )
    if int(num_output_frames) != num_output_frames or num_output_frames < 1:
        raise ValueError(f"num_output_frames must be a positive integer, got {num_output_frames}.")
    if not 0.0 <= min_presence <= 1.0:
        raise ValueError(f"min_presence must be in [0, 1], got {min_presence}.")
    num_output_frames = int(num_output_frames)
    persons, num_frames = pose.shape[:2]
    out = np.zeros((persons, num_output_frames) + pose.shape[2:], dtype=np.float32)

    position = (start + np.arange(num_output_frames) * (duration / num_output_frames)) * pose_fps
    nearest = np.floor(position + 0.5).astype(np.int64)
    inside = (nearest >= 0) & (nearest < num_frames)
    out[:, inside] = pose[:, nearest[inside]]

    below = np.floor(position).astype(np.int64)
    weight = (position - below).astype(np.float32)
    between = (below >= 0) & (below + 1 < num_frames) & (weight > 0)
    if between.any():
        first, second = pose[:, below[between]], pose[:, below[between] + 1]
        both = (first[..., 2] > 0) & (second[..., 2] > 0)
        blended = first + (second - first) * weight[between][None, :, None, None]
        out[:, between] = np.where(both[..., None], blended, out[:, between])

    present = (out[..., 2] > 0).any(axis=-1)  # (P, num_output_frames)
    mask = (present.mean(axis=1) >= min_presence) & present.any(axis=1)
    out[~mask] = 0.0
    return out, mask.astype(np.int64)


def read_detections(path, min_score: float = 0.05, frame_index_base: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A keypoint file's detections as they are, before `load_keypoints` maps, normalises and tracks them:
    keypoints `(M, K, 3)` (x, y in pixels, score) and frame indices `(M,)`, of the detections of persons with a
    `score >= min_score` (empty arrays when there is none). For checks such as: does the file fit this video?
    Raises `ValueError` as `load_keypoints` does for an unusable file."""
    keypoints, _, frames, _, _ = _parse(_read_json(os.fspath(path)), os.fspath(path), frame_index_base, min_score)
    return keypoints, frames


__all__ = [
    "CENTER_MIN_CONFIDENCE",
    "MAX_INFERRED_FRAMES",
    "LAYOUTS",
    "KeypointLayout",
    "load_keypoints",
    "map_to_halpe68",
    "read_detections",
    "resample_keypoints",
]

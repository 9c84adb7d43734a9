"""The prepared-dataset format: what `tribert prepare` writes and the built-in synthetic dataset imitates.

A prepared dataset is a folder::

    ROOT/
      dataset/                       datasets.DatasetDict.save_to_disk, splits "train", "val", "test"
      media/<video_id>/audio.wav     mono float32 WAV at 11025 Hz
      media/<video_id>/frames/       000001.jpg, 000002.jpg, ... RGB frames at `fps` (8 by default)
      media/<video_id>/pose.npy      float32 (2 persons, pose frames, 68 joints, 3): x / width, y / height,
                                     confidence (Halpe-68 order, see tribert_hf.pose.graph); absent = 0
      report.json                    (prepare only) what was skipped and why

Columns (`PREPARED_FEATURES`); paths are relative to ROOT:

    video_id (str)       YouTube id or generated id
    labels (list[str])   instrument classes playing (MUSIC21 names: "acoustic_guitar", "violin", ...)
    kind (str)           "solo" or "duet"
    audio_path (str)     "media/<video_id>/audio.wav"
    sampling_rate (int)  11025
    duration (float)     seconds of audio
    frames_dir (str)     "media/<video_id>/frames"
    num_frames (int)     number of frame files
    fps (float)          frame rate of the frame files
    pose_path (str)      "media/<video_id>/pose.npy", or "" when the video has no keypoints
    pose_fps (float)     frame rate of the keypoint frames (0 when there are none)

Everything a user needs to build such a folder by other means is above; `load_prepared` checks it.
"""

import json
import os
import shutil
import uuid

import numpy as np
from datasets import DatasetDict, Features, List, Value, load_from_disk

from ..media import read_wav, write_wav  # the WAV reader and writer live with the decoders (re-exported here)


SPLITS = ("train", "val", "test")
PREPARED_FEATURES = Features(
    {
        "video_id": Value("string"),
        "labels": List(Value("string")),
        "kind": Value("string"),
        "audio_path": Value("string"),
        "sampling_rate": Value("int32"),
        "duration": Value("float32"),
        "frames_dir": Value("string"),
        "num_frames": Value("int32"),
        "fps": Value("float32"),
        "pose_path": Value("string"),
        "pose_fps": Value("float32"),
    }
)
NUM_POSE_PERSONS = 2
NUM_POSE_JOINTS = 68


def _atomic_replace_dir(tmp_dir: str, final_dir: str) -> None:
    if os.path.isdir(final_dir):
        shutil.rmtree(final_dir)
    os.replace(tmp_dir, final_dir)


def write_media(
    root: str,
    video_id: str,
    labels: list[str],
    waveform: np.ndarray,
    sampling_rate: int,
    frames,
    fps: float,
    pose: np.ndarray | None = None,
    pose_fps: float = 0.0,
    kind: str | None = None,
) -> dict:
    """Write one video's media under `ROOT/media/<video_id>/` atomically and return its dataset row.

    `frames`: an iterable of `(H, W, 3)` uint8 RGB arrays (or PIL images). `pose`: `(2, N, 68, 3)` float32 or None.
    The folder appears under its final name only once complete, so an interrupted run leaves no partial entry.
    """
    from PIL import Image

    media_root = os.path.join(root, "media")
    os.makedirs(media_root, exist_ok=True)
    final_dir = os.path.join(media_root, video_id)
    tmp_dir = os.path.join(media_root, f".tmp-{video_id}-{uuid.uuid4().hex[:8]}")
    os.makedirs(os.path.join(tmp_dir, "frames"))
    try:
        write_wav(os.path.join(tmp_dir, "audio.wav"), waveform, sampling_rate)
        num_frames = 0
        for num_frames, frame in enumerate(frames, start=1):
            image = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
            image.convert("RGB").save(os.path.join(tmp_dir, "frames", f"{num_frames:06d}.jpg"), quality=90)
        if num_frames == 0:
            raise ValueError(f"Video {video_id!r} has no frames.")
        pose_path = ""
        if pose is not None:
            pose = np.asarray(pose, dtype=np.float32)
            if pose.ndim != 4 or pose.shape[0] != NUM_POSE_PERSONS or pose.shape[2:] != (NUM_POSE_JOINTS, 3):
                raise ValueError(
                    f"pose of {video_id!r} must have shape (2, frames, 68, 3), got {pose.shape}."
                )
            np.save(os.path.join(tmp_dir, "pose.npy"), pose)
            pose_path = f"media/{video_id}/pose.npy"
        _atomic_replace_dir(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return {
        "video_id": video_id,
        "labels": list(labels),
        "kind": kind or ("solo" if len(labels) == 1 else "duet"),
        "audio_path": f"media/{video_id}/audio.wav",
        "sampling_rate": int(sampling_rate),
        "duration": float(len(waveform) / sampling_rate),
        "frames_dir": f"media/{video_id}/frames",
        "num_frames": int(num_frames),
        "fps": float(fps),
        "pose_path": pose_path,
        "pose_fps": float(pose_fps if pose is not None else 0.0),
    }


def save_prepared(root: str, rows_by_split: dict[str, list[dict]]) -> DatasetDict:
    """Write `ROOT/dataset` from rows (as returned by `write_media`), atomically; empty splits are left out."""
    unknown = set(rows_by_split) - set(SPLITS)
    if unknown:
        raise ValueError(f"Unknown split(s) {sorted(unknown)}; use {SPLITS}.")
    # Empty splits are left out (datasets cannot reload a 0-shard split).
    dataset = DatasetDict({split: _rows_to_dataset(rows) for split, rows in rows_by_split.items() if rows})
    if not dataset:
        raise ValueError("Nothing to save: every split is empty.")
    tmp = os.path.join(root, f".tmp-dataset-{uuid.uuid4().hex[:8]}")
    dataset.save_to_disk(tmp)
    _atomic_replace_dir(tmp, os.path.join(root, "dataset"))
    return load_prepared(root)


def _rows_to_dataset(rows):
    from datasets import Dataset

    columns = {name: [row[name] for row in rows] for name in PREPARED_FEATURES}
    return Dataset.from_dict(columns, features=PREPARED_FEATURES)


def load_prepared(root: str) -> DatasetDict:
    """Load a prepared dataset folder (see the module docstring) as a `DatasetDict` with its splits."""
    path = os.path.join(root, "dataset")
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"{root!r} is not a prepared TriBERT dataset: {path!r} is missing. Build one with `tribert prepare` or "
            "`tribert_hf.data.generate_synthetic_music`."
        )
    dataset = load_from_disk(path)
    for split, part in dataset.items():
        missing = set(PREPARED_FEATURES) - set(part.column_names)
        if missing:
            raise ValueError(f"Split {split!r} of {root!r} lacks the columns {sorted(missing)}.")
    return dataset


def read_audio(root: str, row: dict) -> tuple[np.ndarray, int]:
    """The row's waveform (mono float32) and sampling rate."""
    return read_wav(os.path.join(root, row["audio_path"]))


def frame_paths(root: str, row: dict) -> list[str]:
    return [os.path.join(root, row["frames_dir"], f"{i:06d}.jpg") for i in range(1, row["num_frames"] + 1)]


class LazyFrames:
    """The frames of a prepared video as a sequence that reads only the frames it is indexed with.

    `len(frames)` is the frame count; `frames[[3, 4, 5]]` (or a slice, or an int) decodes those JPEG files to
    `(n, H, W, 3)` uint8. Pass it where frames are expected (e.g. `TriBertProcessor(videos=...)`) to avoid reading a
    whole 3-minute video for 3 frames.
    """

    def __init__(self, paths: list[str]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        from PIL import Image

        if isinstance(index, slice):
            index = range(*index.indices(len(self.paths)))
        single = np.ndim(index) == 0
        out = []
        for i in np.atleast_1d(np.asarray(index)):
            with Image.open(self.paths[int(i)]) as image:
                out.append(np.asarray(image.convert("RGB")))
        return out[0] if single else np.stack(out)

    @property
    def ndim(self) -> int:
        return 4


def lazy_frames(root: str, row: dict) -> LazyFrames:
    return LazyFrames(frame_paths(root, row))


def read_frames(root: str, row: dict, indices) -> np.ndarray:
    """Frames `indices` (0-based) of the row as `(len(indices), H, W, 3)` uint8."""
    from PIL import Image

    paths = frame_paths(root, row)
    out = []
    for index in indices:
        if not 0 <= index < len(paths):
            raise IndexError(f"Frame {index} out of range for {row['video_id']!r} ({len(paths)} frames).")
        with Image.open(paths[index]) as image:
            out.append(np.asarray(image.convert("RGB")))
    return np.stack(out)


def read_pose(root: str, row: dict) -> np.ndarray | None:
    """The row's keypoints `(2, N, 68, 3)` float32, or None when it has none."""
    if not row["pose_path"]:
        return None
    return np.load(os.path.join(root, row["pose_path"]))


def write_report(root: str, report: dict) -> None:
    tmp = os.path.join(root, f".report-{uuid.uuid4().hex[:8]}.json")
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, os.path.join(root, "report.json"))


__all__ = [
    "PREPARED_FEATURES",
    "SPLITS",
    "LazyFrames",
    "lazy_frames",
    "frame_paths",
    "load_prepared",
    "read_audio",
    "read_frames",
    "read_pose",
    "read_wav",
    "save_prepared",
    "write_media",
    "write_report",
    "write_wav",
]

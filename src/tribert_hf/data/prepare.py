"""`tribert prepare`: downloaded MUSIC21 / MUSIC videos (+ optional AlphaPose keypoints) -> a prepared dataset.

Input layout (as the dataset's JSON lists name the videos)::

    VIDEO_DIR/<class>/<youtube_id>.<mp4|mkv|webm|mov|avi>        solos, e.g. violin/0LEjHiLOP2A.mp4
    VIDEO_DIR/<class> <class>/<youtube_id>.<ext>                 duets, e.g. "acoustic_guitar violin/vEOyhF8KLPE.mp4"
    KEYPOINTS_DIR/<youtube_id>.json                              AlphaPose results of that video (optional)

Every video becomes `media/<id>/` (11025 Hz mono WAV, frames at 8 fps with the shorter side at 256 px, keypoints)
and a row of the dataset (see `tribert_hf.data.prepared`). Unusable videos (unreadable, corrupt, no audio track,
silent, shorter than one 6-s crop, unreadable keypoints) are skipped and listed with the reason in `report.json`.

Resumable: each finished video is appended to `progress.jsonl` (flushed and fsynced) after its media folder was
renamed into place, so a re-run skips finished videos and redoes only the one that was interrupted; half-written
media folders never carry a final name (`.tmp-*` leftovers are removed on the next run, never the media folder of a
finished video, even one whose id starts with `.tmp-`). A skipped video is retried on the next run when its file or
its keypoint file changed (size or modification time), so a repaired video is not left out. One unreadable video
or keypoint file (even one that crashes a parser) is skipped with its reason; it never stops the run.

Split rule (written to `report.json`): `"hash"` (default) puts a video in test when
`sha256(f"{seed}:{video_id}") mod 100 < 100 * test_fraction`, else in val when below
`100 * (test_fraction + val_fraction)`, else train: stable when videos are added or removed. `"authors"` uses the
original TriBERT split: ids of `music21_train.csv` -> train, of `music21_val.csv` -> val, any other -> test.
"""

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from importlib import resources

import numpy as np

from ..configuration_tribert import MUSIC21_LABELS
from ..feature_extraction_tribert import SAMPLING_RATE
from ..media import SILENCE_THRESHOLD
from ..video_processing_tribert import FRAME_RATE
from .prepared import save_prepared, write_media, write_report


VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi")


@dataclass
class PrepareOptions:
    """Settings of a `prepare_dataset` run (stored in report.json)."""

    fps: float = FRAME_RATE
    sampling_rate: int = SAMPLING_RATE
    frame_short_side: int = 256
    min_duration: float = 65535 / SAMPLING_RATE  # one crop of the feature extractor
    silence_threshold: float = SILENCE_THRESHOLD
    split_rule: str = "hash"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    require_keypoints: bool = False
    classes: list[str] = field(default_factory=lambda: list(MUSIC21_LABELS))


def data_list(name: str) -> str:
    """Path of a data list shipped with the package (`MUSIC21_solo_videos.json`, `music21_train.csv`, ...)."""
    return str(resources.files("tribert_hf.data").joinpath("lists", name))


def authors_split() -> dict[str, str]:
    split = {}
    for name, part in (("music21_train.csv", "train"), ("music21_val.csv", "val")):
        with open(data_list(name)) as f:
            split.update({line.strip(): part for line in f if line.strip()})
    return split


def assign_split(video_id: str, options: PrepareOptions, authors: dict | None = None) -> str:
    if options.split_rule == "authors":
        return (authors or authors_split()).get(video_id, "test")
    if options.split_rule != "hash":
        raise ValueError(f"split_rule must be 'hash' or 'authors', got {options.split_rule!r}.")
    bucket = int(hashlib.sha256(f"{options.seed}:{video_id}".encode()).hexdigest(), 16) % 100
    if bucket < 100 * options.test_fraction:
        return "test"
    if bucket < 100 * (options.test_fraction + options.val_fraction):
        return "val"
    return "train"


def find_videos(video_dir: str, classes) -> list[dict]:
    """Videos laid out as `<class>[ <class>]/<id>.<ext>`; class names must be known (MUSIC21 by default)."""
    if not os.path.isdir(video_dir):
        raise FileNotFoundError(f"Video folder not found: {video_dir!r}")
    known, found = set(classes), []
    for folder in sorted(os.listdir(video_dir)):
        path = os.path.join(video_dir, folder)
        if not os.path.isdir(path):
            continue
        labels = folder.split()
        unknown = [c for c in labels if c not in known]
        if unknown:
            raise ValueError(
                f"Folder {path!r} names unknown class(es) {unknown}; expected '<class>' or '<class> <class>' with "
                f"classes among {sorted(known)}."
            )
        for name in sorted(os.listdir(path)):
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS:
                found.append({"video_id": stem, "labels": labels, "path": os.path.join(path, name)})
    ids = [v["video_id"] for v in found]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"Video ids appear more than once under {video_dir!r}: {duplicates[:10]}")
    return found


def _process_video(video: dict, output_dir: str, keypoints_dir: str | None, options: PrepareOptions) -> dict:
    """Decode one video into `media/<id>` and return its dataset row; raise MediaError/ValueError to skip it."""
    from ..media import MediaError, decode_audio, iter_frames, media_info

    info = media_info(video["path"])
    if not info["has_audio"]:
        raise MediaError("no audio track")
    waveform = decode_audio(video["path"], options.sampling_rate)
    duration = len(waveform) / options.sampling_rate
    if duration < options.min_duration:
        raise MediaError(f"too short: {duration:.2f} s of audio, at least {options.min_duration:.2f} s needed")
    if float(np.abs(waveform).max()) < options.silence_threshold:
        raise MediaError(f"silent audio (peak below {options.silence_threshold})")

    pose, pose_fps = None, 0.0
    keypoint_file = os.path.join(keypoints_dir, f"{video['video_id']}.json") if keypoints_dir else None
    if keypoint_file and os.path.isfile(keypoint_file):
        from ..pose.keypoints import load_keypoints

        pose = load_keypoints(
            keypoint_file, frame_size=(info["width"], info["height"]), num_frames=max(info["num_frames"], 1)
        )
        pose_fps = info["fps"]
    elif options.require_keypoints:
        raise MediaError(f"no keypoint file {keypoint_file!r}")

    frames = iter_frames(video["path"], fps=options.fps, short_side=options.frame_short_side)
    return write_media(
        output_dir, video["video_id"], video["labels"], waveform, options.sampling_rate, frames, options.fps,
        pose=pose, pose_fps=pose_fps,
    )  # fmt: skip


def _signature(path: str | None) -> list[int] | None:
    """`[size, mtime_ns]` of a file, None when there is none: a skipped video is retried when this changes."""
    try:
        stat = os.stat(path) if path else None
    except OSError:
        return None
    return None if stat is None else [stat.st_size, stat.st_mtime_ns]


def _sources(video: dict, keypoints_dir: str | None) -> dict:
    keypoint_file = os.path.join(keypoints_dir, f"{video['video_id']}.json") if keypoints_dir else None
    return {"video": _signature(video["path"]), "keypoints": _signature(keypoint_file)}


def _worker(args):
    video, output_dir, keypoints_dir, options = args
    from ..media import MediaError

    sources = _sources(video, keypoints_dir)
    try:
        return {"video_id": video["video_id"], "row": _process_video(video, output_dir, keypoints_dir, options)}
    except (MediaError, ValueError, FileNotFoundError) as error:
        reason = str(error)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # noqa: BLE001 - one bad file must not stop (and re-stop) the whole run
        reason = f"unexpected {type(error).__name__} while reading it: {error}"
    return {"video_id": video["video_id"], "skipped": reason, "path": video["path"], "sources": sources}


def _ignore_interrupts():
    """Pool workers leave Ctrl-C to the parent, which stops the pool (no traceback per worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _read_progress(path: str) -> dict[str, dict]:
    done = {}
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by an interruption: that video is redone
                done[entry["video_id"]] = entry
    return done


def prepare_dataset(
    video_dir: str,
    output_dir: str,
    keypoints_dir: str | None = None,
    options: PrepareOptions | None = None,
    num_workers: int = 1,
    limit: int | None = None,
    progress: bool = True,
):
    """Prepare every video under `video_dir` into `output_dir` (see the module docstring).

    `limit` stops after that many newly processed videos (the run can be resumed; the dataset is written only when
    every video is done). Returns the `DatasetDict`, or None when stopped early by `limit`.
    """
    from tqdm.auto import tqdm

    options = options or PrepareOptions()
    os.makedirs(output_dir, exist_ok=True)
    videos = find_videos(video_dir, options.classes)
    progress_path = os.path.join(output_dir, "progress.jsonl")
    done = _read_progress(progress_path)
    finished = {video_id for video_id, entry in done.items() if "row" in entry}
    media_dir = os.path.join(output_dir, "media")
    for leftover in os.listdir(media_dir) if os.path.isdir(media_dir) else []:
        if leftover.startswith(".tmp-") and leftover not in finished:  # a video may be named .tmp-x itself
            shutil.rmtree(os.path.join(media_dir, leftover), ignore_errors=True)
    for video in videos:  # retry skipped videos whose file (or keypoint file) changed since
        entry = done.get(video["video_id"])
        if entry is not None and "skipped" in entry and entry.get("sources") != _sources(video, keypoints_dir):
            del done[video["video_id"]]
    todo = [v for v in videos if v["video_id"] not in done]
    if limit is not None:
        todo = todo[:limit]
    jobs = [(v, output_dir, keypoints_dir, options) for v in todo]
    started = time.time()
    with open(progress_path, "a") as log, tqdm(total=len(videos), initial=len(done), disable=not progress, desc="prepare", unit="video") as bar:
        if num_workers > 1 and jobs:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(num_workers, initializer=_ignore_interrupts) as pool:
                results = pool.imap_unordered(_worker, jobs)
                for result in results:
                    _log(log, result, done, bar)
        else:
            for job in jobs:
                _log(log, _worker(job), done, bar)

    if any(v["video_id"] not in done for v in videos):
        return None
    authors = authors_split() if options.split_rule == "authors" else None
    rows = {"train": [], "val": [], "test": []}
    for video in videos:
        entry = done[video["video_id"]]
        if "row" in entry:
            rows[assign_split(video["video_id"], options, authors)].append(entry["row"])
    skipped = [{"video_id": e["video_id"], "path": e.get("path"), "reason": e["skipped"]} for e in done.values() if "skipped" in e]
    write_report(
        output_dir,
        {
            "videos_found": len(videos),
            "videos_prepared": sum(len(r) for r in rows.values()),
            "split_sizes": {k: len(v) for k, v in rows.items()},
            "skipped": skipped,
            "options": asdict(options),
            "split_rule": __doc__.split("Split rule")[1].strip(),
            "seconds_this_run": round(time.time() - started, 1),
        },
    )
    if not any(rows.values()):
        raise ValueError(f"No usable video under {video_dir!r}; see {os.path.join(output_dir, 'report.json')}.")
    return save_prepared(output_dir, rows)


def _log(log, result, done, bar):
    log.write(json.dumps(result) + "\n")
    log.flush()
    os.fsync(log.fileno())
    done[result["video_id"]] = result
    bar.update(1)
    if "skipped" in result:
        bar.write(f"skipped {result['video_id']}: {result['skipped']}")


__all__ = ["PrepareOptions", "assign_split", "authors_split", "data_list", "find_videos", "prepare_dataset"]

"""Synthetic videos and the dataset: one video in memory (`make_synthetic_video`), a dataset written in the prepared
format with its separate sources (`generate_synthetic_music`, `read_sources`), and the cached presets
(`load_synthetic_music`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from datasets import DatasetDict

from ...configuration_tribert import MUSIC21_LABELS
from ...feature_extraction_tribert import SAMPLING_RATE
from ...video_processing_tribert import FRAME_RATE
from ...media import read_wav, write_wav
from ..prepared import SPLITS, load_prepared, save_prepared, write_media
from .animation import _animate_player, _pose_array
from .audio import TIMBRES, random_melody, synthesize
from .render import _draw_frames
from .sounds import SoundBank, _clip_source, index_sounds


DEFAULT_SYNTHETIC_CLASSES = (
    "accordion", "acoustic_guitar", "cello", "drum", "flute", "trumpet", "violin", "xylophone",
)  # fmt: skip
DEFAULT_NUM_VIDEOS = {"train": 64, "val": 16, "test": 16}
# The generation parameters' defaults, stated once: those of `make_synthetic_video` and `generate_synthetic_music`,
# and the base of every preset (`load_synthetic_music`; part of a preset's cache key).
GENERATION_DEFAULTS = {
    "duet_fraction": 0.25,  # share of two-player videos
    "duration": 6.5,  # s per video
    "sampling_rate": SAMPLING_RATE,  # Hz of the mono audio
    "fps": FRAME_RATE,  # frames per second
    "frame_size": 96,  # pixels: square RGB frames
    "pose_fps": 24.0,  # keypoint frames per second
    "seed": 0,
}
# Opt-in generation parameters: left out of a preset's parameters (and so of its cache key) unless the preset sets
# them, so that the presets without them keep their content and their cache folders.
OPTIONAL_GENERATION_DEFAULTS = {
    "same_class_duet_fraction": 0.0,  # share of the duets whose two players play the same class (e.g. two violins)
}
SYNTHETIC_PRESETS: dict[str, dict] = {  # on top of GENERATION_DEFAULTS
    "tiny": {"num_videos": {"train": 16, "val": 4, "test": 4}},  # tests
    "small": {"num_videos": dict(DEFAULT_NUM_VIDEOS)},  # demos
    # the realistic benchmark set: with --sounds-dir of `tribert render-solos` (21 classes); 48 test videos give
    # 1128 test pairs, about 60 of them sharing a class (docs/data.md)
    "realistic": {"num_videos": {"train": 192, "val": 32, "test": 48}},
}
# bump when the generated content changes: it is part of the cache folder's name. 2: the class cycle no longer keeps
# two of the 8 default classes out of the solos (`_cycle_hides_solos`)
GENERATOR_VERSION = 2
MARKER_FILE = "synthetic.json"  # written last: the parameters of a complete generation
MIXTURE_MAX_PEAK = 0.9


@dataclass(frozen=True)
class SyntheticVideo:
    """One generated video, in memory.

    labels: the classes playing, each once (a same-class duet has one label); waveform: float32 (samples,), the
    sum of `sources`; sources: player -> float32 (samples,), a player named by its class (`<class>-2` for the
    second player of a same-class duet, see `player_names`), in the order of the players (left to right); onsets:
    player -> note start times (s); frames: uint8 (frames, size, size, 3) RGB; pose: float32 (2, pose frames, 68,
    3); clips: player -> {"path": clip relative to the sounds folder, "start": s into the clip, "looped": bool}
    when the sounds come from a `sounds_dir` (the onsets are then those detected in the clip), else empty.
    """

    video_id: str
    labels: list[str]
    waveform: np.ndarray
    sources: dict[str, np.ndarray]
    onsets: dict[str, np.ndarray]
    frames: np.ndarray
    pose: np.ndarray
    clips: dict[str, dict] = field(default_factory=dict)


def _check_classes(classes: Sequence[str] | None) -> tuple[str, ...]:
    classes = tuple(DEFAULT_SYNTHETIC_CLASSES if classes is None else classes)
    unknown = [name for name in classes if name not in MUSIC21_LABELS]
    if unknown:
        raise ValueError(f"Unknown instrument class(es) {unknown}; use names from MUSIC21_LABELS: {MUSIC21_LABELS}.")
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be a non-empty list without repetitions, got {list(classes)}.")
    return classes


def _resolve_sounds(
    classes: Sequence[str] | None, sounds_dir: str | os.PathLike | SoundBank | None
) -> tuple[tuple[str, ...], SoundBank | None]:
    """(checked classes, the sound bank or None): with a sounds folder, the classes default to its sub-folders."""
    if sounds_dir is None:
        return _check_classes(classes), None
    bank = sounds_dir if isinstance(sounds_dir, SoundBank) else index_sounds(sounds_dir)
    classes = _check_classes(bank.classes if classes is None else classes)
    missing = [name for name in classes if name not in bank.clips]
    if missing:
        raise ValueError(
            f"The sounds folder {bank.root!r} has no clips of {missing}; its classes are {list(bank.classes)}."
        )
    return classes, bank


def _is_duet(index: int, duet_fraction: float) -> bool:
    """Spreads the duets evenly: the first n videos hold floor(n * duet_fraction) of them."""
    return int((index + 1) * duet_fraction) > int(index * duet_fraction)


def _cycle_hides_solos(num_classes: int, duet_fraction: float, cycles: int = 8) -> bool:
    """Whether cycling through the classes (video i's first player: class i mod n) would make some class a duet's
    first player in every one of the first `cycles` cycles, never a solo: the duets' spacing and the class count
    share a factor (8 classes with every 4th video a duet: two classes only ever in duets, in every split). Then each
    cycle is shifted by one, and every class plays solo; otherwise (e.g. 21 classes) the plain cycle stays."""
    if duet_fraction >= 1.0 or num_classes < 2:
        return False
    return any(all(_is_duet(i, duet_fraction) for i in range(c, c + cycles * num_classes, num_classes)) for c in range(num_classes))


def player_names(players: Sequence[str]) -> list[str]:
    """Names of a video's players (their classes, in order): the class, or `<class>-2` for the second player of a
    class (a same-class duet), e.g. ["violin", "violin-2"]. The names of the per-player source files."""
    names = []
    for index, label in enumerate(players):
        count = list(players[:index]).count(label)
        names.append(label if count == 0 else f"{label}-{count + 1}")
    return names


def _draw_players(
    classes: Sequence[str], split_id: int, index: int, duet_fraction: float, same_class_duet_fraction: float,
    seed: int, rng: np.random.Generator,
) -> list[str]:  # fmt: skip
    """The classes of video `index`'s players (1 or 2), drawing from `rng` as the video's generation does."""
    order = np.random.default_rng([seed, split_id]).permutation(len(classes))
    position = index % len(classes)
    if _cycle_hides_solos(len(classes), duet_fraction):  # shift each cycle through the classes by one
        position = (index + index // len(classes)) % len(classes)
    players = [classes[order[position]]]
    if _is_duet(index, duet_fraction):
        # The k-th duet (k from 0) is a same-class duet when `_is_duet(k, same_class_duet_fraction)`: spread evenly
        # over the duets, and no random draw (a fraction of 0 leaves every video as it was).
        duet_number = int((index + 1) * duet_fraction) - 1
        if _is_duet(duet_number, same_class_duet_fraction):
            players.append(players[0])
        else:
            others = [name for name in classes if name != players[0]]
            players.append(others[rng.integers(len(others))])
    return players


def video_players(
    split: str,
    index: int,
    classes: Sequence[str] | None = None,
    duet_fraction: float = GENERATION_DEFAULTS["duet_fraction"],
    seed: int = GENERATION_DEFAULTS["seed"],
    same_class_duet_fraction: float = OPTIONAL_GENERATION_DEFAULTS["same_class_duet_fraction"],
) -> list[str]:
    """The classes of the players of video `index` of `split` (what `make_synthetic_video` draws), without
    generating it: e.g. to count the test pairs that share a class."""
    classes = _check_classes(classes)
    return _draw_players(
        classes, SPLITS.index(split), index, duet_fraction, same_class_duet_fraction, seed,
        np.random.default_rng([seed, SPLITS.index(split), index]),
    )  # fmt: skip


def make_synthetic_video(
    split: str,
    index: int,
    classes: Sequence[str] | None = None,
    duet_fraction: float = GENERATION_DEFAULTS["duet_fraction"],
    duration: float = GENERATION_DEFAULTS["duration"],
    sampling_rate: int = GENERATION_DEFAULTS["sampling_rate"],
    fps: float = GENERATION_DEFAULTS["fps"],
    frame_size: int = GENERATION_DEFAULTS["frame_size"],
    pose_fps: float = GENERATION_DEFAULTS["pose_fps"],
    seed: int = GENERATION_DEFAULTS["seed"],
    sounds_dir: str | os.PathLike | SoundBank | None = None,
    same_class_duet_fraction: float = OPTIONAL_GENERATION_DEFAULTS["same_class_duet_fraction"],
) -> SyntheticVideo:
    """Generate video `index` of `split` in memory (what `generate_synthetic_music` writes).

    Depends only on its arguments (and, with `sounds_dir`, the clips): `duration` s of audio
    (round(duration * sampling_rate) samples), round(duration * fps) frames of frame_size x frame_size pixels,
    round(duration * pose_fps) keypoint frames. Solo players take the classes in a per-split shuffled cycle; a
    duet adds a different random class, or, in `same_class_duet_fraction` of the duets (spread evenly; default
    none), a second player of the same class with a melody (or clip) of its own: two violins that differ only in
    when each plays.

    sounds_dir: a folder of solo clips `<class>/<name>.wav` (or its `index_sounds`), whose sub-folders are the
    classes when `classes` is None. Each player then plays a clip of its class instead of a synthesised melody:
    one of the split's clips (`clip_split`) picked with the seeded generator, read with `read_wav`, averaged to
    mono, resampled to `sampling_rate` (`scipy.signal.resample_poly`), a random `duration`-s segment of it (a
    clip shorter than that is looped, not zero-padded), normalised to the peak of a synthesised source. Its note
    onsets, found by `detect_onsets`, drive the gestures and the instrument's brightening as a melody's do.
    A silent clip (peak below `SILENCE_PEAK`) raises a ValueError naming the file.
    """
    classes, bank = _resolve_sounds(classes, sounds_dir)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use {SPLITS}.")
    if not 0.0 <= same_class_duet_fraction <= 1.0:
        raise ValueError(f"same_class_duet_fraction must be within [0, 1], got {same_class_duet_fraction}.")
    duet = _is_duet(index, duet_fraction)
    if duet and len(classes) < 2 and same_class_duet_fraction < 1.0:
        raise ValueError("Duets need at least two classes (or use duet_fraction=0).")
    split_id = SPLITS.index(split)
    rng = np.random.default_rng([seed, split_id, index])
    players = _draw_players(classes, split_id, index, duet_fraction, same_class_duet_fraction, seed, rng)
    names = player_names(players)

    num_samples = round(duration * sampling_rate)
    clips = {}
    if bank is None:
        melodies = {name: random_melody(TIMBRES[label], rng, duration) for name, label in zip(names, players)}
        sources = {
            name: synthesize(TIMBRES[label], melodies[name], num_samples, sampling_rate, rng)
            for name, label in zip(names, players)
        }
    else:
        melodies, sources = {}, {}
        for name, label in zip(names, players):
            melodies[name], sources[name], clips[name] = _clip_source(
                bank, label, split, seed, num_samples, sampling_rate, rng
            )
    peak = float(np.abs(sum(sources.values())).max())
    if peak > MIXTURE_MAX_PEAK:  # scale the sources so that their sum, the stored mixture, stays below the limit
        sources = {label: (wave * (MIXTURE_MAX_PEAK / peak)).astype(np.float32) for label, wave in sources.items()}
    waveform = np.sum(list(sources.values()), axis=0, dtype=np.float32)

    times = np.arange(round(duration * pose_fps)) / pose_fps
    if duet:  # the two players side by side, in the order of `labels`
        spots = [(rng.uniform(0.22, 0.32), rng.uniform(0.5, 0.58)), (rng.uniform(0.68, 0.78), rng.uniform(0.5, 0.58))]
    else:
        spots = [(rng.uniform(0.35, 0.65), rng.uniform(0.62, 0.75))]
    animated = []
    for name, label, (x, height) in zip(names, players, spots):
        hip = np.array([x, 0.93 - 0.5 * height + rng.uniform(-0.03, 0.03)])
        animated.append(_animate_player(label, melodies[name], hip, height, times, rng))
    pose = _pose_array(animated, rng)
    frames = _draw_frames(animated, pose, round(duration * fps), fps, pose_fps, frame_size, rng)
    return SyntheticVideo(
        video_id=f"synth-{split}-{index:04d}",
        labels=list(dict.fromkeys(players)),
        waveform=waveform,
        sources=sources,
        onsets={name: melodies[name].onsets for name in names},
        frames=frames,
        pose=pose,
        clips=clips,
    )


def _write_sources(root: str, video_id: str, sources: Mapping[str, np.ndarray], sampling_rate: int) -> None:
    """Write `media/<video_id>/sources/<class>.wav` as one folder that appears complete or not at all."""
    video_dir = os.path.join(root, "media", video_id)
    tmp = os.path.join(video_dir, f".tmp-sources-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    try:
        for label, wave in sources.items():
            write_wav(os.path.join(tmp, f"{label}.wav"), wave, sampling_rate)
        final = os.path.join(video_dir, "sources")
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_sources(root: str, row: Mapping) -> dict[str, np.ndarray]:
    """The separate sources of a synthetic video: player -> float32 waveform (samples,), in `row["labels"]` order,
    a player named by its class (and `<class>-2` for the second player of a same-class duet: `player_names`).

    Their sum is the row's audio (to float32 precision).
    """
    sources = {}
    folder = os.path.join(root, "media", row["video_id"], "sources")
    for label in row["labels"]:
        path = os.path.join(folder, f"{label}.wav")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path!r} is missing: per-source audio exists only for synthetic videos.")
        sources[label] = read_wav(path)[0]
        if row.get("kind") == "duet" and len(row["labels"]) == 1:  # a same-class duet: the second player
            second = f"{label}-2"
            sources[second] = read_wav(os.path.join(folder, f"{second}.wav"))[0]
    return sources


def generate_synthetic_music(
    root: str,
    num_videos: Mapping[str, int] | None = None,
    classes: Sequence[str] | None = None,
    duet_fraction: float = GENERATION_DEFAULTS["duet_fraction"],
    duration: float = GENERATION_DEFAULTS["duration"],
    sampling_rate: int = GENERATION_DEFAULTS["sampling_rate"],
    fps: float = GENERATION_DEFAULTS["fps"],
    frame_size: int = GENERATION_DEFAULTS["frame_size"],
    pose_fps: float = GENERATION_DEFAULTS["pose_fps"],
    seed: int = GENERATION_DEFAULTS["seed"],
    progress: bool = True,
    sounds_dir: str | os.PathLike | SoundBank | None = None,
    same_class_duet_fraction: float = OPTIONAL_GENERATION_DEFAULTS["same_class_duet_fraction"],
) -> DatasetDict:
    """Write the synthetic music dataset into the prepared-dataset folder `root` and return its `DatasetDict`.

    num_videos: split -> number of videos (default train 64, val 16, test 16); classes: MUSIC21 names (default
    `DEFAULT_SYNTHETIC_CLASSES`, or with `sounds_dir` its class sub-folders); duet_fraction: share of two-player
    videos; duration: seconds per video; sampling_rate: Hz of the mono audio; fps: frames per second of the
    frame_size x frame_size RGB frames; pose_fps: keypoint frames per second; same_class_duet_fraction: share of
    the duets whose two players play the same class (default 0: every duet has two classes). Videos are
    `synth-<split>-<index:04d>` (see `make_synthetic_video`); besides the prepared format, each has its sources
    in `media/<video_id>/sources/<class>.wav` (`read_sources`). `ROOT/synthetic.json`, the parameters, is
    written last: it marks a complete generation.

    sounds_dir: a folder of solo clips `<class>/<name>.wav` (sub-folders named after MUSIC21 classes) whose
    sounds replace the synthesiser: each player plays a random segment of a clip of its class, and the frames
    and skeleton move with the onsets detected in it (see `make_synthetic_video`, `detect_onsets`). Train, val
    and test draw from disjoint clips of a class when it has 3 clips or more (`clip_split`).
    `synthetic.json` then also records the folder, its fingerprint and which clip segment each video plays.
    """
    from tqdm.auto import tqdm

    num_videos = dict(DEFAULT_NUM_VIDEOS if num_videos is None else num_videos)
    classes, bank = _resolve_sounds(classes, sounds_dir)
    unknown = set(num_videos) - set(SPLITS)
    if unknown:
        raise ValueError(f"Unknown split(s) {sorted(unknown)}; use {SPLITS}.")
    if not 0.0 <= duet_fraction <= 1.0:
        raise ValueError(f"duet_fraction must be within [0, 1], got {duet_fraction}.")
    if not 0.0 <= same_class_duet_fraction <= 1.0:
        raise ValueError(f"same_class_duet_fraction must be within [0, 1], got {same_class_duet_fraction}.")
    parameters = {
        "num_videos": num_videos, "classes": list(classes), "duet_fraction": duet_fraction, "duration": duration,
        "sampling_rate": sampling_rate, "fps": fps, "frame_size": frame_size, "pose_fps": pose_fps, "seed": seed,
    }  # fmt: skip
    if same_class_duet_fraction:  # recorded only when used: the record of a dataset without it is unchanged
        parameters["same_class_duet_fraction"] = same_class_duet_fraction
    if bank is not None:
        parameters.update(sounds_dir=os.path.abspath(bank.root), sounds_fingerprint=bank.fingerprint)
    clips = {}
    os.makedirs(root, exist_ok=True)
    marker = os.path.join(root, MARKER_FILE)
    if os.path.exists(marker):
        os.remove(marker)  # the folder is being rewritten: not complete until the end
    rows_by_split = {}
    with tqdm(total=sum(num_videos.values()), desc="synthetic music", unit="video", disable=not progress) as bar:
        for split, count in num_videos.items():
            rows = []
            for index in range(count):
                video = make_synthetic_video(
                    split, index, classes, duet_fraction, duration, sampling_rate, fps, frame_size, pose_fps, seed,
                    sounds_dir=bank, same_class_duet_fraction=same_class_duet_fraction,
                )  # fmt: skip
                if video.clips:
                    clips[video.video_id] = video.clips
                rows.append(
                    write_media(
                        root, video.video_id, video.labels, video.waveform, sampling_rate, video.frames, fps,
                        pose=video.pose, pose_fps=pose_fps, kind="duet" if len(video.sources) > 1 else "solo",
                    )  # fmt: skip
                )
                _write_sources(root, video.video_id, video.sources, sampling_rate)
                bar.update()
            rows_by_split[split] = rows
    dataset = save_prepared(root, rows_by_split)
    tmp = os.path.join(root, f".{MARKER_FILE}-{uuid.uuid4().hex[:8]}")
    with open(tmp, "w") as f:
        record = {"generator_version": GENERATOR_VERSION, **parameters, **({"clips": clips} if bank else {})}
        json.dump(record, f, indent=2)
    os.replace(tmp, marker)
    return dataset


def load_synthetic_music(
    name: str = "tiny",
    cache_dir: str | None = None,
    sounds_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[str, DatasetDict]:
    """A preset of the synthetic dataset (`SYNTHETIC_PRESETS`: "tiny" for tests, "small" for demos): (root, dataset).

    Generated once into `cache_dir` (default `$XDG_CACHE_HOME/tribert_hf/synthetic`, or `~/.cache/tribert_hf/synthetic`
    without XDG_CACHE_HOME) under `<name>-<hash of the parameters>`, and reused while complete (its `synthetic.json` marker exists); an interrupted generation is
    redone on the next call. With `sounds_dir` (solo clips `<class>/<name>.wav`, see `generate_synthetic_music`)
    the classes are the folder's and the folder is `<name>-sounds-<hash>`, the hash covering the folder's
    fingerprint (every clip's relative path, size and modification time): changing a clip regenerates.
    """
    if name not in SYNTHETIC_PRESETS:
        raise ValueError(f"Unknown synthetic preset {name!r}; use one of {sorted(SYNTHETIC_PRESETS)}.")
    parameters = {
        "num_videos": None, "classes": list(DEFAULT_SYNTHETIC_CLASSES), **GENERATION_DEFAULTS, **SYNTHETIC_PRESETS[name]
    }  # fmt: skip
    key = {"generator_version": GENERATOR_VERSION, **parameters}
    bank = None
    if sounds_dir is not None:
        bank = index_sounds(sounds_dir)
        parameters["classes"] = list(bank.classes)
        key.update(classes=list(bank.classes), sounds_fingerprint=bank.fingerprint)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    if cache_dir is None:
        cache_root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        cache_dir = os.path.join(cache_root, "tribert_hf", "synthetic")
    root = os.path.join(cache_dir, f"{name}-{digest}" if bank is None else f"{name}-sounds-{digest}")
    if os.path.isfile(os.path.join(root, MARKER_FILE)):
        return root, load_prepared(root)
    if bank is None:
        return root, generate_synthetic_music(root, **parameters, progress=progress)
    return root, generate_synthetic_music(root, **parameters, progress=progress, sounds_dir=bank)

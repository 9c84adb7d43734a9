"""Sounds from a folder of solo clips (`sounds_dir`): the sound bank (`index_sounds`), the clips of each split
(`clip_split`), reading a clip and cutting a segment of it, and a player's source with its detected notes."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...configuration_tribert import MUSIC21_LABELS
from ...media import read_wav
from ..prepared import SPLITS
from .audio import SOURCE_PEAK, TIMBRES, Melody
from .onsets import detect_onsets


SILENCE_PEAK = 1e-4  # a clip whose peak |amplitude| (mixed to mono) is below this is rejected as silent
CLIP_VAL_FRACTION = 0.1  # share of a class's clips kept for val (at least 1 when the class has 3 clips or more)
CLIP_TEST_FRACTION = 0.1  # the same for test
SEGMENT_TRIES = 8  # random segments tried before falling back to the clip's loudest part
ONSET_CONTEXT = 0.1  # s of the clip on each side of a segment that the onset detector sees (no false onsets
# where the segment cuts into a sound)


@dataclass(frozen=True)
class SoundBank:
    """The solo clips of a sounds folder `root/<class>/<name>.wav` (see `index_sounds`).

    clips: class -> paths relative to `root` ("<class>/<name>.wav"), sorted, classes in sorted order;
    fingerprint: hash of every clip's relative path, size and modification time (part of the cache key).
    """

    root: str
    clips: dict[str, tuple[str, ...]]
    fingerprint: str

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.clips)


def index_sounds(sounds_dir: str | os.PathLike) -> SoundBank:
    """List the clips of a sounds folder laid out as `<class>/<name>.wav`, one sub-folder per MUSIC21 class.

    Every sub-folder (hidden ones aside) must be named after a MUSIC21 class and hold at least one `.wav` file
    (`ValueError` otherwise); files directly in `sounds_dir` and sub-sub-folders are ignored. Warns about classes
    with fewer than 3 clips, whose splits cannot all be disjoint (see `clip_split`). Reads no audio: a silent or
    unreadable clip is reported when a video draws it.
    """
    root = os.fspath(sounds_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"The sounds folder {root!r} does not exist (expected <class>/<name>.wav clips).")
    folders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not folders:
        raise ValueError(
            f"The sounds folder {root!r} has no class sub-folders; lay the clips out as <class>/<name>.wav with "
            f"MUSIC21 class names: {', '.join(MUSIC21_LABELS)}."
        )
    unknown = [name for name in folders if name not in MUSIC21_LABELS]
    if unknown:
        raise ValueError(
            f"The sub-folder(s) {unknown} of the sounds folder {root!r} are not instrument classes; name each "
            f"sub-folder after a MUSIC21 class: {', '.join(MUSIC21_LABELS)}."
        )
    clips, stats = {}, []
    for label in folders:
        names = sorted(
            entry.name
            for entry in os.scandir(os.path.join(root, label))
            if entry.is_file() and entry.name.lower().endswith(".wav") and not entry.name.startswith(".")
        )
        if not names:
            raise ValueError(
                f"The class folder {os.path.join(root, label)!r} holds no .wav clips; add solo clips of "
                f"{label!r} or remove the folder."
            )
        clips[label] = tuple(f"{label}/{name}" for name in names)
        for path in clips[label]:
            stat = os.stat(os.path.join(root, path))
            stats.append([path, stat.st_size, stat.st_mtime_ns])
        if len(names) < 3:
            shared = "train, val and test all use it" if len(names) == 1 else "val and test share one of them"
            warnings.warn(
                f"Class {label!r} has {len(names)} clip(s) in {root!r}: {shared}; give it 3 or more clips for "
                "disjoint train/val/test sounds.",
                stacklevel=2,
            )
    fingerprint = hashlib.sha256(json.dumps(stats).encode()).hexdigest()
    return SoundBank(root=root, clips=clips, fingerprint=fingerprint)


def clip_split(clips: Sequence[str], split: str, seed: int = 0) -> tuple[str, ...]:
    """The clips (sorted) that videos of `split` draw from, out of one class's `clips`.

    The clips are ranked by `sha256(f"{seed}:{path}")`; the first max(1, round(0.1 n)) go to test, the next
    max(1, round(0.1 n)) to val, the rest to train, so the splits are disjoint when the class has 3 clips or more.
    With 2 clips, train takes one and val and test share the other; a single clip is used by every split.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use {SPLITS}.")
    ranked = sorted(clips, key=lambda path: hashlib.sha256(f"{seed}:{path}".encode()).hexdigest())
    if len(ranked) <= 1:
        return tuple(ranked)
    if len(ranked) == 2:
        return tuple(ranked[:1] if split == "train" else ranked[1:])
    num_test = max(1, round(CLIP_TEST_FRACTION * len(ranked)))
    num_val = max(1, round(CLIP_VAL_FRACTION * len(ranked)))
    bounds = {"test": (0, num_test), "val": (num_test, num_test + num_val), "train": (num_test + num_val, len(ranked))}
    first, end = bounds[split]
    return tuple(sorted(ranked[first:end]))


def _read_clip(path: str, sampling_rate: int) -> np.ndarray:
    """A clip as mono float64 at `sampling_rate` (channels averaged, `resample_poly`); errors name the file."""
    from math import gcd

    from scipy.signal import resample_poly

    wave, rate = read_wav(path)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    wave = wave.astype(np.float64)
    if not np.isfinite(wave).all():
        raise ValueError(f"The clip {path!r} has non-finite samples (NaN or inf).")
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak < SILENCE_PEAK:
        raise ValueError(f"The clip {path!r} is silent (peak {peak:.2g} < {SILENCE_PEAK}); remove or replace it.")
    if rate != sampling_rate:
        common = gcd(rate, sampling_rate)
        wave = resample_poly(wave, sampling_rate // common, rate // common)
    return wave


def _clip_segment(clip: np.ndarray, num_samples: int, context: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(the segment of `num_samples` with `context` samples of the clip on each side, its start in the clip).

    A clip at least `num_samples` long gives a random segment within it: up to SEGMENT_TRIES random starts, the
    first whose RMS reaches a quarter of the clip's (else the loudest try; a silent one falls back to the
    segment around the clip's loudest sample). A shorter clip is looped: the segment starts at a random sample
    and wraps around. Context beyond the clip's ends is zeros (looped: the clip's other end).
    """
    length = len(clip)
    if length < num_samples:
        start = int(rng.integers(length))
        return np.take(clip, np.arange(start - context, start + num_samples + context), mode="wrap"), start
    target = 0.25 * np.sqrt(np.mean(clip**2))
    best, best_rms = 0, -1.0
    for _ in range(SEGMENT_TRIES):
        start = int(rng.integers(length - num_samples + 1))
        rms = float(np.sqrt(np.mean(clip[start : start + num_samples] ** 2)))
        if rms > best_rms:
            best, best_rms = start, rms
        if rms >= target:
            break
    if best_rms <= 0.0:
        best = int(np.clip(np.argmax(np.abs(clip)) - num_samples // 2, 0, length - num_samples))
    before = clip[max(best - context, 0) : best]
    segment = clip[best : best + num_samples + context]
    pads = (np.zeros(context - len(before)), np.zeros(num_samples + context - len(segment)))
    return np.concatenate([pads[0], before, segment, pads[1]]), best



def _note_pitches(wave: np.ndarray, sampling_rate: int, onsets: np.ndarray, pitch_range: tuple[int, int]) -> np.ndarray:
    """A rough pitch (MIDI) per onset, for the hand positions: (onsets,).

    The strongest spectral peak (30 Hz .. 0.45 x rate) of the note's first 0.2 s (Hann, 4096-point FFT), clipped
    to the class's `pitch_range` (`Timbre.pitch`).
    """
    low, high = pitch_range
    size = int(0.2 * sampling_rate)
    frequencies = np.fft.rfftfreq(4096, 1.0 / sampling_rate)
    band = (frequencies >= 30.0) & (frequencies <= 0.45 * sampling_rate)
    pitches = []
    bounds = np.round(np.append(onsets, len(wave) / sampling_rate) * sampling_rate).astype(int)
    for start, end in zip(bounds[:-1], bounds[1:]):
        note = wave[start : min(start + size, end)]
        if len(note) < 32:
            pitches.append((low + high) / 2)
            continue
        spectrum = np.abs(np.fft.rfft(note * np.hanning(len(note)), n=max(4096, len(note))))[: len(frequencies)]
        frequency = frequencies[band][np.argmax(spectrum[band])]
        pitches.append(float(np.clip(69.0 + 12.0 * np.log2(frequency / 440.0), low, high)))
    return np.array(pitches, dtype=np.float64)


def _clip_source(
    bank: SoundBank,
    label: str,
    split: str,
    seed: int,
    num_samples: int,
    sampling_rate: int,
    rng: np.random.Generator,
) -> tuple[Melody, np.ndarray, dict]:
    """One player's (melody of the detected onsets, source float32 (num_samples,) of peak SOURCE_PEAK, clip info)."""
    choices = clip_split(bank.clips[label], split, seed)
    path = choices[int(rng.integers(len(choices)))]
    clip = _read_clip(os.path.join(bank.root, *path.split("/")), sampling_rate)
    context = int(round(ONSET_CONTEXT * sampling_rate))
    extended, start = _clip_segment(clip, num_samples, context, rng)
    inner = slice(context, context + num_samples)
    extended *= SOURCE_PEAK / np.abs(extended[inner]).max()
    source = extended[inner].astype(np.float32)
    times, strengths = detect_onsets(extended, sampling_rate)
    times -= context / sampling_rate
    inside = (times >= 0.0) & (times < num_samples / sampling_rate)
    onsets, strengths = times[inside], strengths[inside]
    melody = Melody(
        starts=onsets,
        lengths=np.diff(onsets, append=num_samples / sampling_rate),
        pitches=_note_pitches(source, sampling_rate, onsets, TIMBRES[label].pitch),
        sounding=np.ones(len(onsets), dtype=bool),
        velocities=0.7 + 0.3 * strengths / max(float(strengths.max(initial=0.0)), 1e-12),
    )
    info = {"path": path, "start": start / sampling_rate, "looped": len(clip) < num_samples}
    return melody, source, info

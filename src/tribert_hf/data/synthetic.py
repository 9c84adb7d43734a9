"""The built-in synthetic music dataset: seeded, deterministic "music videos" in the prepared format.

Every video has one player (solo) or two (duet), each playing one instrument class of MUSIC21:

* audio: a random melody per player, synthesised with a class-specific timbre (`TIMBRES`: partials, envelope,
  vibrato, pitch range, note lengths); each source is normalised to a peak of 0.5 and the stored mixture is
  their sum (sources and mixture scaled down together when its peak would exceed 0.9);
* frames: a plain, slightly noisy background, a stick-figure player per instrument and the instrument as a
  coloured shape (`LOOKS`) that brightens when a note starts;
* pose: Halpe-68 keypoints of the players, whose hands strike, strum, bow or press (`GESTURES`) at the
  note onsets of their instrument while the body sways.

With `sounds_dir`, a folder of solo clips `<class>/<name>.wav`, the audio comes from the clips instead of the
synthesiser: each player plays a random segment of a clip of its class, and the onsets that drive its gestures
and flashes are detected in that segment (`detect_onsets`); train, val and test use disjoint clips
(`clip_split`).

A video depends only on `(seed, split, index)` and the generation parameters, so regenerating it gives the same
audio and pose bytes. Besides the prepared-format files (see `tribert_hf.data.prepared`), each video also has its
separate sources, the ground truth of separation: `media/<video_id>/sources/<class>.wav` (`read_sources`).

Units: times in seconds, audio as mono float32 at `sampling_rate` Hz, pitches as MIDI note numbers
(69 = A4 = 440 Hz), sizes of players and instruments in body heights ("H", head top to ankle, about
the player's height), keypoint coordinates as x / width and y / height of the frame.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from datasets import DatasetDict

from ..configuration_tribert import MUSIC21_LABELS
from ..pose_graph import HALPE26_EDGES, HAND21_EDGES, LEFT_HAND_OFFSET, NUM_HAND_JOINTS, RIGHT_HAND_OFFSET
from .prepared import SPLITS, load_prepared, read_wav, save_prepared, write_media, write_wav


# ----------------------------------------------------------------------------------------------------------------
# Sound of each class
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timbre:
    """How an instrument class sounds (times in seconds, pitches in MIDI note numbers)."""

    pitch: tuple[int, int]  # lowest and highest note of the melody
    partials: tuple[float, ...]  # frequencies of the partials, as multiples of the fundamental
    rolloff: float  # amplitude of a partial = ratio ** -rolloff
    adsr: tuple[float, float, float, float]  # attack (s), decay time constant (s), sustain level (0-1), release (s)
    damping: float = 0.0  # decay time of a partial = decay / ratio ** damping: struck/plucked highs die first
    vibrato: tuple[float, float] = (0.0, 0.0)  # rate (Hz), depth (semitones)
    notes: tuple[float, ...] = (0.25, 0.5)  # note lengths (s) the melody picks from
    noise: float = 0.0  # enveloped noise, relative to the partials (breath, drum skin)
    noise_cutoff: float = 4000.0  # Hz: the noise is low-passed (two poles) at this frequency


def _harmonics(count: int) -> tuple[float, ...]:
    return tuple(float(k) for k in range(1, count + 1))


def _odd_harmonics(count: int) -> tuple[float, ...]:
    return tuple(float(k) for k in range(1, 2 * count, 2))


BAR_MODES = (1.0, 2.76, 5.40, 8.93)  # free vibrating bar (xylophone): inharmonic
MEMBRANE_MODES = (1.0, 1.59, 2.14, 2.30, 2.65, 2.92)  # circular membrane (drums): inharmonic

# fmt: off
TIMBRES: dict[str, Timbre] = {
    #                  pitch     partials              rolloff  attack decay sustain release  (plucked: sustain 0)
    "accordion":       Timbre((55, 79), _harmonics(12),     0.7, (0.04, 0.20, 0.80, 0.08), vibrato=(5.5, 0.05), notes=(0.5, 0.75, 1.0), noise=0.01),
    "acoustic_guitar": Timbre((40, 71), _harmonics(10),     1.2, (0.003, 0.60, 0.0, 0.05), damping=0.8),
    "bagpipe":         Timbre((67, 81), _harmonics(14),     0.5, (0.03, 0.10, 0.95, 0.05), notes=(0.25, 0.5, 1.0), noise=0.02),
    "banjo":           Timbre((55, 79), _harmonics(12),     0.9, (0.002, 0.25, 0.0, 0.03), damping=1.0, notes=(0.125, 0.25)),
    "bassoon":         Timbre((34, 60), _harmonics(10),     1.0, (0.05, 0.20, 0.80, 0.10), vibrato=(5.0, 0.08), notes=(0.5, 1.0)),
    "cello":           Timbre((36, 60), _harmonics(10),     1.0, (0.08, 0.30, 0.85, 0.15), vibrato=(5.5, 0.20), notes=(0.75, 1.0, 1.5)),
    "clarinet":        Timbre((50, 77), _odd_harmonics(9),  1.0, (0.04, 0.10, 0.90, 0.08), notes=(0.5, 0.75)),
    "congas":          Timbre((45, 57), MEMBRANE_MODES,     0.8, (0.001, 0.12, 0.0, 0.02), damping=1.0, notes=(0.125, 0.25, 0.375), noise=0.3, noise_cutoff=1500.0),
    "drum":            Timbre((40, 50), MEMBRANE_MODES,     0.6, (0.001, 0.20, 0.0, 0.02), damping=1.0, notes=(0.25, 0.5), noise=1.5, noise_cutoff=2500.0),
    "electric_bass":   Timbre((28, 52), _harmonics(6),      1.5, (0.005, 0.80, 0.2, 0.05), damping=0.5),
    "erhu":            Timbre((62, 86), _harmonics(8),      0.8, (0.06, 0.20, 0.90, 0.10), vibrato=(6.0, 0.35), notes=(0.5, 0.75, 1.0)),
    "flute":           Timbre((72, 96), _harmonics(4),      2.0, (0.06, 0.10, 0.90, 0.10), vibrato=(5.0, 0.10), notes=(0.25, 0.5, 0.75), noise=0.04),
    "guzheng":         Timbre((50, 86), _harmonics(8),      1.1, (0.002, 0.90, 0.0, 0.05), damping=0.6, vibrato=(4.0, 0.15)),
    "piano":           Timbre((40, 84), _harmonics(10),     1.3, (0.002, 1.00, 0.0, 0.10), damping=0.6),
    "pipa":            Timbre((55, 84), _harmonics(9),      0.9, (0.002, 0.15, 0.0, 0.03), damping=1.0, notes=(0.125, 0.25)),
    "saxophone":       Timbre((49, 80), _harmonics(12),     0.8, (0.04, 0.15, 0.85, 0.08), vibrato=(5.0, 0.12), notes=(0.25, 0.5, 0.75), noise=0.02),
    "trumpet":         Timbre((55, 82), _harmonics(14),     0.6, (0.03, 0.10, 0.85, 0.06), vibrato=(5.5, 0.08)),
    "tuba":            Timbre((29, 53), _harmonics(8),      1.4, (0.06, 0.20, 0.80, 0.10), notes=(0.5, 1.0)),
    "ukulele":         Timbre((60, 81), _harmonics(7),      1.3, (0.002, 0.30, 0.0, 0.03), damping=1.0, notes=(0.125, 0.25)),
    "violin":          Timbre((55, 91), _harmonics(12),     0.8, (0.06, 0.20, 0.85, 0.10), vibrato=(6.0, 0.25), notes=(0.5, 0.75)),
    "xylophone":       Timbre((65, 96), BAR_MODES,          1.0, (0.001, 0.18, 0.0, 0.02), damping=1.5, notes=(0.125, 0.25, 0.375)),
}
# fmt: on


# ----------------------------------------------------------------------------------------------------------------
# Look of each class, and how its player moves
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """How an instrument class is drawn and held (sizes and positions in body heights H)."""

    colour: tuple[int, int, int]  # RGB fill
    shape: str  # a key of _SHAPES
    size: tuple[float, float]  # extent along its long axis, extent across it (H)
    anchor: tuple[float, float]  # centre relative to the player's hip centre (H; x right, y down)
    angle: float  # direction of the long axis, degrees clockwise from image-right (-90 = upright)
    gesture: str  # a key of GESTURES


# fmt: off
LOOKS: dict[str, Look] = {
    #                  colour            shape        size          anchor          angle  gesture
    "accordion":       Look((200, 30, 30),   "rect",      (0.30, 0.22), (0.00, -0.20),    0, "squeeze"),
    "acoustic_guitar": Look((205, 140, 70),  "ellipse",   (0.42, 0.17), (-0.04, -0.12), -20, "pluck"),
    "bagpipe":         Look((120, 40, 140),  "diamond",   (0.24, 0.16), (0.10, -0.28),  -30, "blow"),
    "banjo":           Look((240, 230, 140), "hexagon",   (0.36, 0.20), (-0.04, -0.12), -20, "pluck"),
    "bassoon":         Look((110, 60, 20),   "rect",      (0.55, 0.05), (0.05, -0.15), -100, "blow"),
    "cello":           Look((120, 50, 10),   "ellipse",   (0.55, 0.22), (0.00, 0.05),   -90, "bow"),
    "clarinet":        Look((25, 25, 25),    "rect",      (0.34, 0.04), (0.00, -0.24),   90, "blow"),
    "congas":          Look((230, 120, 30),  "trapezoid", (0.22, 0.30), (0.00, 0.02),     0, "strike"),
    "drum":            Look((30, 90, 210),   "hexagon",   (0.34, 0.20), (0.00, 0.00),     0, "strike"),
    "electric_bass":   Look((40, 160, 60),   "rect",      (0.50, 0.12), (-0.04, -0.12), -25, "pluck"),
    "erhu":            Look((180, 20, 90),   "rect",      (0.40, 0.04), (-0.02, -0.05), -90, "bow"),
    "flute":           Look((200, 200, 215), "rect",      (0.36, 0.03), (-0.17, -0.41), 180, "blow"),
    "guzheng":         Look((160, 110, 60),  "trapezoid", (0.50, 0.12), (0.00, -0.02),    0, "strike"),
    "piano":           Look((245, 245, 245), "rect",      (0.60, 0.12), (0.00, -0.05),    0, "strike"),
    "pipa":            Look((200, 160, 90),  "triangle",  (0.36, 0.16), (0.02, -0.12),  -70, "pluck"),
    "saxophone":       Look((230, 190, 30),  "trapezoid", (0.38, 0.10), (0.04, -0.22),   80, "blow"),
    "trumpet":         Look((250, 220, 0),   "triangle",  (0.28, 0.10), (0.15, -0.40),   10, "blow"),
    "tuba":            Look((180, 150, 40),  "triangle",  (0.35, 0.30), (0.00, -0.20),  -90, "blow"),
    "ukulele":         Look((250, 150, 180), "ellipse",   (0.24, 0.10), (-0.04, -0.15), -20, "pluck"),
    "violin":          Look((235, 110, 20),  "ellipse",   (0.26, 0.11), (0.16, -0.33),  -15, "bow"),
    "xylophone":       Look((30, 180, 180),  "trapezoid", (0.55, 0.14), (0.00, 0.00),     0, "strike"),
}
# fmt: on


@dataclass(frozen=True)
class Hand:
    """Where one hand rests on the instrument and how it moves with the notes.

    `rest` is in half-extents of the instrument along / across its long axis; the motions are in body heights
    along / across the long axis: `pitch` scaled by the note's place in the pitch range (-0.5 .. 0.5, e.g. along
    a neck), `strike` a quick out-and-back pulse at each onset, `stroke` a move between alternating ends (bow,
    bellows).
    """

    rest: tuple[float, float]
    pitch: tuple[float, float] = (0.0, 0.0)
    strike: tuple[float, float] = (0.0, 0.0)
    stroke: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Gesture:
    left: Hand  # the player's left hand (on the image's right: players face the camera)
    right: Hand
    alternate: bool = False  # strikes alternate between the hands (right hand first) instead of both hands at once


GESTURES: dict[str, Gesture] = {
    "strike": Gesture(  # hands above the instrument, hitting it; move along it with the pitch
        left=Hand(rest=(0.5, -1.6), pitch=(0.12, 0.0), strike=(0.0, 0.07)),
        right=Hand(rest=(-0.5, -1.6), pitch=(0.12, 0.0), strike=(0.0, 0.07)),
        alternate=True,
    ),
    "pluck": Gesture(  # right hand strums over the body, left hand slides along the neck
        left=Hand(rest=(0.85, 0.0), pitch=(-0.10, 0.0)),
        right=Hand(rest=(-0.2, 0.0), strike=(0.0, 0.06)),
    ),
    "bow": Gesture(  # right hand draws the bow across the strings, left hand stops them along the neck
        left=Hand(rest=(0.7, 0.0), pitch=(-0.10, 0.0)),
        right=Hand(rest=(-0.3, -2.0), stroke=(0.0, 0.10)),
    ),
    "blow": Gesture(  # both hands on the tube, fingers pressing at each note
        left=Hand(rest=(-0.35, 0.0), pitch=(0.03, 0.0), strike=(0.0, 0.03)),
        right=Hand(rest=(0.35, 0.0), pitch=(0.03, 0.0), strike=(0.0, 0.03)),
    ),
    "squeeze": Gesture(  # left hand works the bellows, right hand plays the keys
        left=Hand(rest=(1.0, 0.0), stroke=(0.06, 0.0)),
        right=Hand(rest=(-1.0, 0.0), pitch=(0.0, 0.08), strike=(0.015, 0.0)),
    ),
}

DEFAULT_SYNTHETIC_CLASSES = (
    "accordion", "acoustic_guitar", "cello", "drum", "flute", "trumpet", "violin", "xylophone",
)  # fmt: skip
DEFAULT_NUM_VIDEOS = {"train": 64, "val": 16, "test": 16}
SYNTHETIC_PRESETS: dict[str, dict] = {
    "tiny": {"num_videos": {"train": 16, "val": 4, "test": 4}, "duration": 6.5},  # tests
    "small": {"num_videos": dict(DEFAULT_NUM_VIDEOS), "duration": 6.5},  # demos
    # the realistic benchmark set: with --sounds-dir of `tribert render-solos` (21 classes); 48 test videos give
    # 1128 test pairs, about 60 of them sharing a class (docs/data.md)
    "realistic": {"num_videos": {"train": 192, "val": 32, "test": 48}, "duration": 6.5},
}
GENERATOR_VERSION = 1  # bump when the generated content changes: it is part of the cache folder's name
MARKER_FILE = "synthetic.json"  # written last: the parameters of a complete generation

SOURCE_PEAK = 0.5
MIXTURE_MAX_PEAK = 0.9
REST_PROBABILITY = 0.15  # chance that a note (after the first) is a rest
STRIKE_TIME = 0.05  # s: a strike pulse peaks this long after the onset
GLIDE_TIME = 0.06  # s: time constant of a hand moving to the next note's place
STROKE_TIME = 0.12  # s: time constant of a bow / bellows stroke
FLASH_TIME = 0.15  # s: decay time of an instrument's brightening after an onset

# Body joints of a player facing the camera (Halpe-26 order), in H relative to the hip centre (x right, y down);
# the player's left is on the image's right. Elbows and wrists (7-10) are placed by inverse kinematics.
# fmt: off
_BODY = np.array([
    (0.0, -0.445), (0.022, -0.46), (-0.022, -0.46), (0.045, -0.45), (-0.045, -0.45),  # nose, eyes, ears
    (0.115, -0.35), (-0.115, -0.35),  # shoulders
    (0.14, -0.17), (-0.14, -0.17), (0.15, 0.0), (-0.15, 0.0),  # elbows, wrists (replaced)
    (0.07, 0.0), (-0.07, 0.0), (0.075, 0.245), (-0.075, 0.245), (0.075, 0.47), (-0.075, 0.47),  # hips, knees, ankles
    (0.0, -0.53), (0.0, -0.36), (0.0, 0.0),  # head top, neck, hip centre
    (0.06, 0.5), (-0.06, 0.5), (0.1, 0.495), (-0.1, 0.495), (0.08, 0.485), (-0.08, 0.485),  # toes, heels
])
# The 21 hand joints of a right hand (wrist at 0), in H: x along the forearm, y towards the thumb.
_HAND = np.array([
    (0.0, 0.0),
    (0.012, 0.014), (0.025, 0.026), (0.036, 0.033), (0.046, 0.038),  # thumb
    (0.045, 0.014), (0.062, 0.016), (0.072, 0.017), (0.081, 0.018),  # index
    (0.047, 0.003), (0.066, 0.003), (0.077, 0.003), (0.087, 0.003),  # middle
    (0.045, -0.008), (0.062, -0.009), (0.072, -0.010), (0.080, -0.011),  # ring
    (0.041, -0.018), (0.054, -0.021), (0.062, -0.023), (0.069, -0.025),  # little
])
# fmt: on
_CURL_CENTRES = np.array([0] + [1 + 4 * ((joint - 1) // 4) for joint in range(1, NUM_HAND_JOINTS)])  # finger bases
_UPPER_ARM, _FOREARM = 0.165, 0.15  # H
_HEAD_RADIUS = 0.065  # H
_SKIN = (225, 185, 150)
_ARM_EDGES = {(5, 7), (7, 9), (6, 8), (8, 10)}
_FACE_EDGES = {(0, 1), (0, 2), (1, 3), (2, 4)}  # covered by the drawn head
_BODY_EDGES = [edge for edge in HALPE26_EDGES if edge not in _ARM_EDGES | _FACE_EDGES]
_SHAPES = {  # unit outlines in (along, across) the long axis, within [-1, 1]
    "rect": [(-1, -1), (1, -1), (1, 1), (-1, 1)],
    "ellipse": [(np.cos(a), np.sin(a)) for a in np.linspace(0, 2 * np.pi, 24, endpoint=False)],
    "triangle": [(-1, 0), (1, -1), (1, 1)],  # widens towards the bell
    "trapezoid": [(-1, -1), (1, -0.5), (1, 0.5), (-1, 1)],
    "diamond": [(-1, 0), (0, -1), (1, 0), (0, 1)],
    "hexagon": [(np.cos(a), np.sin(a)) for a in np.linspace(0, 2 * np.pi, 6, endpoint=False)],
}


# ----------------------------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Melody:
    """A monophonic note sequence: arrays of shape (notes,); times in seconds, pitches as MIDI numbers."""

    starts: np.ndarray
    lengths: np.ndarray
    pitches: np.ndarray
    sounding: np.ndarray  # bool: False for a rest
    velocities: np.ndarray  # 0.7-1.0

    @property
    def onsets(self) -> np.ndarray:
        """Start times (s) of the sounding notes, shape (onsets,)."""
        return self.starts[self.sounding]


def _random_melody(timbre: Timbre, rng: np.random.Generator, duration: float) -> Melody:
    """A random walk over the class's pitch range (steps of up to 4 semitones), starting in the first 0.25 s."""
    low, high = timbre.pitch
    starts, lengths, pitches, sounding = [], [], [], []
    time = float(rng.uniform(0.0, 0.25))
    pitch = int(rng.integers(low, high + 1))
    while time < duration:
        starts.append(time)
        lengths.append(float(rng.choice(timbre.notes)))
        pitches.append(pitch)
        sounding.append(len(starts) == 1 or bool(rng.random() >= REST_PROBABILITY))
        time += lengths[-1]
        pitch += int(rng.integers(-4, 5))
        if pitch > high:  # reflect at the ends of the range
            pitch = 2 * high - pitch
        elif pitch < low:
            pitch = 2 * low - pitch
        pitch = min(max(pitch, low), high)
    return Melody(
        starts=np.array(starts),
        lengths=np.array(lengths),
        pitches=np.array(pitches, dtype=np.float64),
        sounding=np.array(sounding),
        velocities=rng.uniform(0.7, 1.0, len(starts)),
    )


def _synthesize(
    timbre: Timbre, melody: Melody, num_samples: int, sampling_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """The melody played with the timbre: float32 (num_samples,), peak `SOURCE_PEAK`."""
    from scipy.signal import lfilter

    time = np.arange(num_samples) / sampling_rate
    note = np.maximum(np.searchsorted(melody.starts, time, side="right") - 1, 0)
    age = time - melody.starts[note]  # s since the note started (negative before the first note)
    gain = np.where(age >= 0, melody.sounding[note] * melody.velocities[note], 0.0)
    age = np.maximum(age, 0.0)
    f0 = 440.0 * 2.0 ** ((melody.pitches[note] - 69.0) / 12.0)
    rate, depth = timbre.vibrato
    vibrato = depth * np.minimum(age / 0.3, 1.0) * np.sin(2 * np.pi * rate * time + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0 * 2.0 ** (vibrato / 12.0)) / sampling_rate

    ratios = np.array(timbre.partials)[:, None]  # (partials, 1)
    attack, decay, sustain, release = timbre.adsr
    rise = np.clip(age / attack, 0.0, 1.0)
    fall = np.clip((melody.lengths[note] - age) / release, 0.0, 1.0)
    decay_times = decay / ratios**timbre.damping
    envelope = rise * fall * (sustain + (1 - sustain) * np.exp(-np.maximum(age - attack, 0.0) / decay_times))
    amplitude = ratios**-timbre.rolloff * (ratios * f0 < 0.45 * sampling_rate)  # no partials above Nyquist
    start_phase = rng.uniform(0, 2 * np.pi, (len(ratios), 1))
    wave = (amplitude * envelope * np.sin(ratios * phase + start_phase)).sum(axis=0)
    pole = np.exp(-2 * np.pi * timbre.noise_cutoff / sampling_rate)
    noise = lfilter([(1.0 - pole) ** 2], [1.0, -2.0 * pole, pole**2], rng.standard_normal(num_samples))
    wave += timbre.noise * envelope[0] * noise / noise.std()
    wave *= gain
    return (wave * (SOURCE_PEAK / np.abs(wave).max())).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Sounds from a folder of solo clips (`sounds_dir`)
# ----------------------------------------------------------------------------------------------------------------

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


def detect_onsets(
    wave: np.ndarray,
    sampling_rate: int,
    window: float = 0.04,
    hop: float = 0.01,
    compression: float = 10.0,
    delta: float = 0.15,
    min_gap: float = 0.08,
    spread: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Note onsets of a mono waveform by spectral flux: (onset times (s), strengths in (0, 1]), ascending.

    1. STFT: Hann frames of `window` s (rounded to a power of two of samples) every `hop` s, each frame's time
       its centre; the waveform is preceded by a frame of zeros (a sound at its very start is an onset at 0 s).
       Magnitudes are in amplitude units of the waveform scaled to peak 1, compressed as
       log(1 + compression * magnitude).
    2. Spectral flux: the half-wave rectified increase of each bin over the previous frame, summed over
       frequency; the previous frame is first maximum-filtered over +-`spread` bins so that vibrato (a partial
       moving to a neighbouring bin) does not count as a new note.
    3. Peak picking: a frame is an onset when its flux is the largest within +-`min_gap` s and exceeds the mean
       flux within +-0.1 s by `delta` times the largest flux of the waveform. Frames reaching past the end of
       the waveform are left out (the cut would look like an onset), so onsets in its last `window` / 2 are
       not reported.

    Strength: the onset's flux relative to the largest. A silent waveform has no onsets. Measured on the notes
    of the built-in synthesiser (4 melodies of 6.5 s per class), 99 % of the true onsets are found within 30 ms
    and 99 % of the onsets found are true (95 % with noise 26 dB below the music); slow bowed or blown attacks
    are found 10-15 ms late, struck and plucked ones 0-6 ms early.
    """
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    wave = np.asarray(wave, dtype=np.float64)
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak == 0.0:
        return np.zeros(0), np.zeros(0)
    n_fft = 2 ** max(int(round(np.log2(window * sampling_rate))), 4)
    step = max(int(round(hop * sampling_rate)), 1)
    taper = np.hanning(n_fft)
    padded = np.concatenate([np.zeros(n_fft), wave / peak, np.zeros(n_fft // 2)])
    frames = sliding_window_view(padded, n_fft)[::step] * taper
    centres = np.arange(len(frames)) * step - n_fft // 2  # samples of the waveform
    magnitude = np.log1p(compression * np.abs(np.fft.rfft(frames, axis=-1)) * (2.0 / taper.sum()))
    previous = maximum_filter1d(magnitude[:-1], size=2 * spread + 1, axis=1, mode="nearest")
    flux = np.concatenate([[0.0], np.maximum(magnitude[1:] - previous, 0.0).sum(axis=1)])
    flux[centres > len(wave) - n_fft // 2] = 0.0
    top = float(flux.max())
    if top <= 0.0:
        return np.zeros(0), np.zeros(0)
    gap = max(int(round(min_gap * sampling_rate / step)), 1)
    local_mean = uniform_filter1d(flux, size=2 * max(int(round(0.1 * sampling_rate / step)), 1) + 1, mode="constant")
    peaks = (flux == maximum_filter1d(flux, size=2 * gap + 1, mode="constant")) & (flux > local_mean + delta * top)
    frames_at = np.flatnonzero(peaks)
    keep = np.ones(len(frames_at), dtype=bool)  # plateaus: keep the first frame of equal maxima closer than the gap
    keep[1:] = np.diff(frames_at) > gap
    frames_at = frames_at[keep]
    return np.maximum(centres[frames_at], 0) / sampling_rate, flux[frames_at] / top


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


# ----------------------------------------------------------------------------------------------------------------
# Pose
# ----------------------------------------------------------------------------------------------------------------


def _strike(times: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """Sum of pulses `u / T * exp(1 - u / T)` (peak 1 at u = T = STRIKE_TIME) after the onsets: (times,)."""
    age = np.maximum(times[:, None] - onsets[None, :], 0.0) / STRIKE_TIME
    return (age * np.exp(1.0 - age)).sum(axis=1)


def _glide(times: np.ndarray, onsets: np.ndarray, targets: np.ndarray, time_constant: float) -> np.ndarray:
    """Position (times,) moving exponentially from 0 to `targets[k]` from `onsets[k]` on (fastest at onsets)."""
    steps = np.diff(targets, prepend=0.0)
    age = np.maximum(times[:, None] - onsets[None, :], 0.0)
    return ((1.0 - np.exp(-age / time_constant)) * steps).sum(axis=1)


def _axes(angle_degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along and across a long axis at `angle_degrees` clockwise from image-right (y down)."""
    angle = np.deg2rad(angle_degrees)
    return np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])


def _elbows(shoulder: np.ndarray, wrist: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-bone inverse kinematics on (frames, 2) arrays in H: (elbow, wrist moved within reach).

    The elbow bends outwards (`side`: +1 towards image-right, -1 towards image-left).
    """
    offset = wrist - shoulder
    distance = np.linalg.norm(offset, axis=-1, keepdims=True)
    direction = offset / np.maximum(distance, 1e-6)
    distance = np.clip(distance, abs(_UPPER_ARM - _FOREARM) + 1e-3, _UPPER_ARM + _FOREARM - 1e-3)
    wrist = shoulder + direction * distance
    along = (_UPPER_ARM**2 - _FOREARM**2 + distance**2) / (2 * distance)
    height = np.sqrt(np.maximum(_UPPER_ARM**2 - along**2, 0.0))
    normal = np.stack([-direction[:, 1], direction[:, 0]], axis=-1)
    normal *= np.where(normal[:, :1] * side >= 0, 1.0, -1.0)
    return shoulder + direction * along + normal * height, wrist


def _hand_joints(elbow: np.ndarray, wrist: np.ndarray, curl: np.ndarray, mirror: bool) -> np.ndarray:
    """The 21 hand joints (frames, 21, 2) in H, along the forearm; fingers shorten by up to half when `curl` = 1."""
    template = _HAND * np.array([1.0, -1.0 if mirror else 1.0])
    base = template[_CURL_CENTRES]  # each finger shortens towards its first joint
    local = base + (template - base) * (1.0 - 0.5 * curl[:, None, None])
    forearm = wrist - elbow
    angle = np.arctan2(forearm[:, 1], forearm[:, 0])[:, None]
    cos, sin = np.cos(angle), np.sin(angle)
    x, y = local[..., 0], local[..., 1]
    return wrist[:, None, :] + np.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)


@dataclass(frozen=True)
class _Player:
    """One player's animation: joints (pose frames, 68, 2) and instrument centres (pose frames, 2), frame units."""

    label: str
    joints: np.ndarray
    instrument: np.ndarray
    height: float  # body height H as a fraction of the frame height
    onsets: np.ndarray
    clothes: tuple[int, int, int]


def _animate_player(
    label: str, melody: Melody, hip: np.ndarray, height: float, times: np.ndarray, rng: np.random.Generator
) -> _Player:
    """Place and animate a player of `label` standing with its hip centre at `hip` (frame units) over `times` (s)."""
    timbre, look, gesture = TIMBRES[label], LOOKS[label], GESTURES[LOOKS[label].gesture]
    frames = len(times)
    sway_rate = rng.uniform(0.25, 0.5)
    sway = 0.02 * np.sin(2 * np.pi * sway_rate * times + rng.uniform(0, 2 * np.pi))  # H
    bob = 0.008 * np.sin(4 * np.pi * sway_rate * times + rng.uniform(0, 2 * np.pi))
    weight = np.clip(-_BODY[:, 1] / 0.35, 0.0, 1.5)  # the upper body sways, the feet stay put
    body = np.repeat(_BODY[None], frames, axis=0)
    body[..., 0] += weight * sway[:, None]
    body[..., 1] += weight * bob[:, None]

    along, across = _axes(look.angle)
    centre = np.array(look.anchor) + np.stack([sway, bob], axis=-1)  # (frames, 2) in H
    onsets = melody.onsets
    low, high = timbre.pitch
    place = (melody.pitches[melody.sounding] - low) / max(high - low, 1) - 0.5  # -0.5 .. 0.5
    strokes = np.where(np.arange(len(onsets)) % 2 == 0, 1.0, -1.0)
    hands, curls = [], []
    for index, hand in enumerate((gesture.left, gesture.right)):
        hits = onsets[(1 - index) :: 2] if gesture.alternate else onsets  # right hand (index 1) strikes first
        strike = _strike(times, hits)
        motion = (
            np.outer(_glide(times, onsets, place, GLIDE_TIME), hand.pitch)
            + np.outer(strike, hand.strike)
            + np.outer(_glide(times, onsets, strokes, STROKE_TIME), hand.stroke)
        )
        rest = hand.rest[0] * look.size[0] / 2 * along + hand.rest[1] * look.size[1] / 2 * across
        hands.append(centre + rest + motion[:, :1] * along + motion[:, 1:] * across)
        curls.append(np.minimum(strike, 1.0) if any(hand.strike) else np.zeros(frames))

    body[:, 7], body[:, 9] = _elbows(body[:, 5], hands[0], side=1.0)  # left arm, on the image's right
    body[:, 8], body[:, 10] = _elbows(body[:, 6], hands[1], side=-1.0)
    joints = np.concatenate(
        [
            body,
            _hand_joints(body[:, 7], body[:, 9], curls[0], mirror=True),
            _hand_joints(body[:, 8], body[:, 10], curls[1], mirror=False),
        ],
        axis=1,
    )
    return _Player(
        label=label,
        joints=hip + height * joints,
        instrument=hip + height * centre,
        height=height,
        onsets=onsets,
        clothes=tuple(int(c) for c in rng.integers(20, 90, 3)),
    )


def _pose_array(players: list[_Player], rng: np.random.Generator) -> np.ndarray:
    """Keypoints (2, frames, 68, 3) float32: x, y in [0, 1] with 0.001 jitter, confidence in (0, 1]; absent = 0."""
    frames = players[0].joints.shape[0]
    pose = np.zeros((2, frames, 68, 3), dtype=np.float32)
    for slot, player in enumerate(players):
        base = np.concatenate([rng.uniform(0.75, 0.98, 26), rng.uniform(0.45, 0.9, 42)])
        confidence = np.clip(base + rng.normal(0.0, 0.03, (frames, 68)), 0.05, 1.0)
        xy = np.clip(player.joints + rng.normal(0.0, 0.001, player.joints.shape), 0.0, 1.0)
        pose[slot] = np.concatenate([xy, confidence[..., None]], axis=-1)
    return pose


# ----------------------------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------------------------


def _flash(time: float, onsets: np.ndarray) -> float:
    """Brightening (0-1) of an instrument at `time` s: 1 at an onset, decaying with FLASH_TIME."""
    age = time - onsets[onsets <= time]
    return float(min(np.exp(-age / FLASH_TIME).sum(), 1.0))


def _draw_frames(
    players: list[_Player],
    pose: np.ndarray,
    num_frames: int,
    fps: float,
    pose_fps: float,
    size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """RGB frames (num_frames, size, size, 3) uint8 drawn from the keypoints `pose` (2, pose frames, 68, 3)."""
    from PIL import Image, ImageDraw

    background = tuple(int(c) for c in rng.uniform(170, 220) + rng.uniform(-15, 15, 3))
    width = max(1, round(size / 48))
    out = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for index in range(num_frames):
        time = index / fps
        step = min(round(time * pose_fps), pose.shape[1] - 1)
        image = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(image)
        for slot, player in enumerate(players):
            points = [tuple(p) for p in pose[slot, step, :, :2] * size]
            look = LOOKS[player.label]
            for a, b in _BODY_EDGES:
                draw.line([points[a], points[b]], fill=player.clothes, width=width)
            draw.polygon([points[5], points[6], points[12], points[11]], fill=player.clothes)
            head = (np.array(points[0]) + np.array(points[17])) / 2
            radius = _HEAD_RADIUS * player.height * size
            draw.ellipse([*(head - radius), *(head + radius)], fill=_SKIN)

            flash = _flash(time, player.onsets)
            along, across = _axes(look.angle)
            half = np.array(look.size) / 2 * player.height * size * (1.0 + 0.08 * flash)
            outline = np.array(_SHAPES[look.shape], dtype=np.float64) * half
            corners = player.instrument[step] * size + outline[:, :1] * along + outline[:, 1:] * across
            colour = np.array(look.colour, dtype=np.float64)
            fill = tuple(int(c) for c in colour + (255.0 - colour) * 0.5 * flash)
            draw.polygon([tuple(c) for c in corners], fill=fill, outline=tuple(int(c) for c in colour * 0.5))

            for a, b in _ARM_EDGES:
                draw.line([points[a], points[b]], fill=player.clothes, width=width)
            for offset in (LEFT_HAND_OFFSET, RIGHT_HAND_OFFSET):
                for a, b in HAND21_EDGES:
                    draw.line([points[offset + a], points[offset + b]], fill=_SKIN, width=1)
        out[index] = np.clip(np.asarray(image) + rng.normal(0.0, 4.0, (size, size, 3)), 0, 255)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Videos and the dataset
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticVideo:
    """One generated video, in memory.

    waveform: float32 (samples,), the sum of `sources`; sources: class -> float32 (samples,); onsets: class ->
    note start times (s); frames: uint8 (frames, size, size, 3) RGB; pose: float32 (2, pose frames, 68, 3);
    clips: class -> {"path": clip relative to the sounds folder, "start": s into the clip, "looped": bool} when
    the sounds come from a `sounds_dir` (the onsets are then those detected in the clip), else empty.
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


def make_synthetic_video(
    split: str,
    index: int,
    classes: Sequence[str] | None = None,
    duet_fraction: float = 0.25,
    duration: float = 6.5,
    sampling_rate: int = 11025,
    fps: float = 8.0,
    frame_size: int = 96,
    pose_fps: float = 24.0,
    seed: int = 0,
    sounds_dir: str | os.PathLike | SoundBank | None = None,
) -> SyntheticVideo:
    """Generate video `index` of `split` in memory (what `generate_synthetic_music` writes).

    Depends only on its arguments (and, with `sounds_dir`, the clips): `duration` s of audio
    (round(duration * sampling_rate) samples), round(duration * fps) frames of frame_size x frame_size pixels,
    round(duration * pose_fps) keypoint frames. Solo players take the classes in a per-split shuffled cycle; a
    duet adds a different random class.

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
    duet = _is_duet(index, duet_fraction)
    if duet and len(classes) < 2:
        raise ValueError("Duets need at least two classes (or use duet_fraction=0).")
    split_id = SPLITS.index(split)
    order = np.random.default_rng([seed, split_id]).permutation(len(classes))
    rng = np.random.default_rng([seed, split_id, index])
    labels = [classes[order[index % len(classes)]]]
    if duet:
        others = [name for name in classes if name != labels[0]]
        labels.append(others[rng.integers(len(others))])

    num_samples = round(duration * sampling_rate)
    clips = {}
    if bank is None:
        melodies = {label: _random_melody(TIMBRES[label], rng, duration) for label in labels}
        sources = {
            label: _synthesize(TIMBRES[label], melodies[label], num_samples, sampling_rate, rng) for label in labels
        }
    else:
        melodies, sources = {}, {}
        for label in labels:
            melodies[label], sources[label], clips[label] = _clip_source(
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
    players = []
    for label, (x, height) in zip(labels, spots):
        hip = np.array([x, 0.93 - 0.5 * height + rng.uniform(-0.03, 0.03)])
        players.append(_animate_player(label, melodies[label], hip, height, times, rng))
    pose = _pose_array(players, rng)
    frames = _draw_frames(players, pose, round(duration * fps), fps, pose_fps, frame_size, rng)
    return SyntheticVideo(
        video_id=f"synth-{split}-{index:04d}",
        labels=labels,
        waveform=waveform,
        sources=sources,
        onsets={label: melodies[label].onsets for label in labels},
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
    """The separate sources of a synthetic video: class -> float32 waveform (samples,), in `row["labels"]` order.

    Their sum is the row's audio (to float32 precision).
    """
    sources = {}
    for label in row["labels"]:
        path = os.path.join(root, "media", row["video_id"], "sources", f"{label}.wav")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path!r} is missing: per-source audio exists only for synthetic videos.")
        sources[label] = read_wav(path)[0]
    return sources


def generate_synthetic_music(
    root: str,
    num_videos: Mapping[str, int] | None = None,
    classes: Sequence[str] | None = None,
    duet_fraction: float = 0.25,
    duration: float = 6.5,
    sampling_rate: int = 11025,
    fps: float = 8.0,
    frame_size: int = 96,
    pose_fps: float = 24.0,
    seed: int = 0,
    progress: bool = True,
    sounds_dir: str | os.PathLike | SoundBank | None = None,
) -> DatasetDict:
    """Write the synthetic music dataset into the prepared-dataset folder `root` and return its `DatasetDict`.

    num_videos: split -> number of videos (default train 64, val 16, test 16); classes: MUSIC21 names (default
    `DEFAULT_SYNTHETIC_CLASSES`, or with `sounds_dir` its class sub-folders); duet_fraction: share of two-player
    videos; duration: seconds per video; sampling_rate: Hz of the mono audio; fps: frames per second of the
    frame_size x frame_size RGB frames; pose_fps: keypoint frames per second. Videos are
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
    parameters = {
        "num_videos": num_videos, "classes": list(classes), "duet_fraction": duet_fraction, "duration": duration,
        "sampling_rate": sampling_rate, "fps": fps, "frame_size": frame_size, "pose_fps": pose_fps, "seed": seed,
    }  # fmt: skip
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
                    sounds_dir=bank,
                )  # fmt: skip
                if video.clips:
                    clips[video.video_id] = video.clips
                rows.append(
                    write_media(
                        root, video.video_id, video.labels, video.waveform, sampling_rate, video.frames, fps,
                        pose=video.pose, pose_fps=pose_fps,
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
        "num_videos": None, "classes": list(DEFAULT_SYNTHETIC_CLASSES), "duet_fraction": 0.25, "duration": 6.5,
        "sampling_rate": 11025, "fps": 8.0, "frame_size": 96, "pose_fps": 24.0, "seed": 0,
        **SYNTHETIC_PRESETS[name],
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


__all__ = [
    "DEFAULT_SYNTHETIC_CLASSES",
    "GESTURES",
    "LOOKS",
    "SYNTHETIC_PRESETS",
    "TIMBRES",
    "Gesture",
    "Hand",
    "Look",
    "SoundBank",
    "SyntheticVideo",
    "Timbre",
    "clip_split",
    "detect_onsets",
    "generate_synthetic_music",
    "index_sounds",
    "load_synthetic_music",
    "make_synthetic_video",
    "read_sources",
]

"""How each class looks and is held (`LOOKS`), how its player's hands move with the notes (`GESTURES`), and the
players' animated Halpe-68 keypoints.

Sizes of players and instruments in body heights ("H", head top to ankle, about the player's height); keypoint
coordinates as x / width and y / height of the frame; times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...pose.graph import NUM_HAND_JOINTS
from .audio import TIMBRES, Melody


STRIKE_TIME = 0.05  # s: a strike pulse peaks this long after the onset
GLIDE_TIME = 0.06  # s: time constant of a hand moving to the next note's place
STROKE_TIME = 0.12  # s: time constant of a bow / bellows stroke


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

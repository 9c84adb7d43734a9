"""The frames: the players drawn from their keypoints, holding their instruments (which brighten at each note),
on a plain, slightly noisy background."""

from __future__ import annotations

import numpy as np

from ...pose.graph import HALPE26_EDGES, HAND21_EDGES, LEFT_HAND_OFFSET, RIGHT_HAND_OFFSET
from .animation import LOOKS, _axes, _Player


FLASH_TIME = 0.15  # s: decay time of an instrument's brightening after an onset
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

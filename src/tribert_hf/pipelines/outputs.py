"""Strict JSON for the pipelines' summaries (`separation.json`, `metrics.json`)."""

from __future__ import annotations

import json
import math

import numpy as np


def json_ready(value):
    """NaN / inf -> None, numpy scalars -> Python numbers (the JSON stays strict)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    return value


def write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(json_ready(data), f, indent=2, allow_nan=False)


__all__ = ["json_ready", "write_json"]

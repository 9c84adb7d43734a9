"""Training: the recipes' presets (model configs by size, methods, data and features) and checkpoint helpers."""

from .checkpoints import atomic_save_state, latest_checkpoint
from .presets import MODELS, build_config, featurize, load_data, model_class, model_config


__all__ = ["MODELS", "atomic_save_state", "build_config", "featurize", "latest_checkpoint", "load_data", "model_class", "model_config"]

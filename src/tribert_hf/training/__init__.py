"""Training: the separation training loop (`examples/run_separation.py` is a thin script over it), the recipes'
presets (model configs by size, methods, data and features) and checkpoint helpers."""

from .checkpoints import atomic_save_state, latest_checkpoint
from .presets import MODELS, build_config, featurize, load_data, model_class, model_config
from .separation import RunArgumentsError, SeparationTrainingArguments, train_separation


__all__ = [
    "MODELS",
    "RunArgumentsError",
    "SeparationTrainingArguments",
    "atomic_save_state",
    "build_config",
    "featurize",
    "latest_checkpoint",
    "load_data",
    "model_class",
    "model_config",
    "train_separation",
]

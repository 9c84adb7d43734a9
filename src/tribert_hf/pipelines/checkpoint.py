"""A trained TriBERT checkpoint, loaded for separation: the model (eval mode, on its device) and its processor,
checked against each other, with an error that says what to do when the folder is not usable."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field

import torch

from ..media import short_error


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


class CheckpointError(ValueError):
    """A checkpoint folder that is not a usable TriBERT separation model."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the separation model (eval mode, on its device), its processor and where it came from."""

    model: object
    processor: object
    path: str
    warnings: list[str] = field(default_factory=list)

    @property
    def feature_extractor(self):
        return self.processor.feature_extractor

    @property
    def device(self) -> torch.device:
        return self.model.device


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> torch.device:
    """`device` (None: cuda if available, else cpu) as a torch.device; ValueError for an unusable one."""
    try:
        resolved = torch.device(device or default_device())
    except (RuntimeError, ValueError, TypeError) as error:
        raise ValueError(f"Unknown device {device!r}: use cpu, cuda or cuda:N.") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {device!r} asked for, but CUDA is not available here: use --device cpu.")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"Device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s).")
    return resolved


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load report and progress bar (a pre-training checkpoint has extra heads we ignore)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_checkpoint(path, device: str | None = None) -> Checkpoint:
    """Load a TriBERT checkpoint folder (`save_pretrained` of `TriBertForPreTraining` or
    `TriBertForSourceSeparation`, plus the processor) as a `TriBertForSourceSeparation` in eval mode.

    Raises `FileNotFoundError` for a missing folder and `CheckpointError` (a `ValueError`) for a folder that is not
    a TriBERT separation model: no `config.json`, another model's config, no weights, or weights without the
    separation head.
    """
    from .. import TriBertFeatureExtractor, TriBertForSourceSeparation, TriBertProcessor, TriBertVideoProcessor

    path = os.fspath(path)
    device = resolve_device(device)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Checkpoint folder not found: {path!r}")
    if not os.path.isdir(path):
        raise CheckpointError(f"{path!r} is a file, not a checkpoint folder (the folder written by save_pretrained).")
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise CheckpointError(
            f"{path!r} is not a TriBERT checkpoint: it has no config.json. Give the folder written by "
            "`save_pretrained` (e.g. the --output_dir of examples/run_separation.py, or its best/ folder)."
        )
    try:
        with open(config_file, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_file!r} is not valid JSON: {error}") from error
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if model_type != "tribert":
        architectures = data.get("architectures") if isinstance(data, dict) else None
        what = f"a {model_type!r} model" if model_type else "no model_type"
        raise CheckpointError(
            f"{path!r} is not a TriBERT checkpoint: its config.json describes {what}"
            + (f" ({', '.join(map(str, architectures))})" if architectures else "")
            + ", not model_type 'tribert'."
        )
    if not any(os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES):
        raise CheckpointError(f"{path!r} has a TriBERT config but no weights ({WEIGHT_FILES[0]} is missing).")
    try:
        with quiet_transformers():
            model, info = TriBertForSourceSeparation.from_pretrained(path, output_loading_info=True)
    except Exception as error:  # noqa: BLE001 - safetensors, pickle and torch raise their own types
        raise CheckpointError(_weights_error(path, error)) from error
    missing = sorted(info.get("missing_keys") or [])
    mismatched = info.get("mismatched_keys") or []
    if missing or mismatched:
        head = [key for key in model.state_dict() if key.startswith("separation.")]
        if head and all(key in missing for key in head):
            reason = (
                "it has no separation head (a TriBertModel or retrieval checkpoint); use a TriBertForPreTraining or "
                "TriBertForSourceSeparation checkpoint"
            )
        else:
            reason = "its weights do not match this version of the model (saved by an older tribert_hf?)"
        example = (missing or [str(m[0]) if isinstance(m, (list, tuple)) else str(m) for m in mismatched])[0]
        raise CheckpointError(
            f"{path!r} cannot separate: {reason} ({len(missing) + len(mismatched)} weights missing or mismatched, "
            f"e.g. {example})."
        )

    warnings = []
    config = model.config
    if os.path.isfile(os.path.join(path, "processor_config.json")):
        try:
            processor = TriBertProcessor.from_pretrained(path)
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise CheckpointError(f"Cannot load the processor of {path!r}: {error}") from error
    else:
        image = config.vision_config.image_size
        processor = TriBertProcessor(
            TriBertFeatureExtractor(num_frequency_bins=config.audio_config.num_frequency_bins),
            TriBertVideoProcessor(size={"shortest_edge": image}, crop_size={"height": image, "width": image}),
            num_pose_frames=config.pose_config.num_pose_frames,
            num_persons=config.pose_config.num_persons,
        )  # fmt: skip
        warnings.append(f"{path!r} has no processor_config.json: using the default processor for its config.")
    fe = processor.feature_extractor
    if fe.num_frequency_bins != config.audio_config.num_frequency_bins:
        raise CheckpointError(
            f"{path!r}: the processor makes {fe.num_frequency_bins} frequency bins but the model expects "
            f"{config.audio_config.num_frequency_bins}."
        )
    if processor.num_persons != config.pose_config.num_persons:
        raise CheckpointError(
            f"{path!r}: the processor has {processor.num_persons} person slots but the model {config.pose_config.num_persons}."
        )
    model.to(device).eval()
    return Checkpoint(model=model, processor=processor, path=path, warnings=warnings)


def _weights_error(path: str, error: Exception) -> str:
    """One line saying why a checkpoint's weights did not load, and what to do."""
    import pickle

    kind = type(error).__name__
    if isinstance(error, pickle.UnpicklingError) or "weights only load failed" in str(error).lower():
        return (
            f"Cannot load the TriBERT checkpoint {path!r}: its pytorch_model.bin is not a plain tensor file (pickled "
            "objects, which could run code, are refused; or the file is corrupt). Use a checkpoint saved with "
            "safetensors (model.safetensors), or convert this one where you trust its origin."
        )
    if "safetensor" in kind.lower() or "safetensor" in str(error).lower() or "deserializ" in str(error).lower():
        return (
            f"Cannot load the TriBERT checkpoint {path!r}: model.safetensors is truncated or corrupt ({short_error(error)}). "
            "Copy or download it again."
        )
    return f"Cannot load the TriBERT checkpoint {path!r}: {kind}: {short_error(error)}"


def as_checkpoint(checkpoint, device=None) -> Checkpoint:
    """A `Checkpoint` as it is (moved to `device` when one is given), or a checkpoint folder loaded."""
    if isinstance(checkpoint, Checkpoint):
        if device is not None and resolve_device(device) != checkpoint.device:
            checkpoint.model.to(resolve_device(device))
        return checkpoint
    return load_checkpoint(checkpoint, device)


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "as_checkpoint",
    "default_device",
    "load_checkpoint",
    "quiet_transformers",
    "resolve_device",
]

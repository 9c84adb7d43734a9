"""Shared fixtures: tiny TriBERT configs and inputs (CPU, seconds)."""

import importlib.util
import os
import sys

import pytest
import torch


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(path: str):
    """A script of examples/ or benchmarks/ (`path` relative to the repository root), loaded by path as the module
    named after its file, e.g. `run_separation`, and registered under that name: a script loaded later that imports
    it by name (as it does when run, its own folder being importable) gets this one. Load a script's siblings
    first. Loaded once per path."""
    file = os.path.realpath(os.path.join(ROOT, path))
    name = os.path.splitext(os.path.basename(file))[0]
    module = sys.modules.get(name)
    if module is not None and os.path.realpath(getattr(module, "__file__", "") or "") == file:
        return module
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def tiny_config_kwargs(**overrides):
    """Keyword arguments of a tiny TriBertConfig (hidden 32/16, 2 layers, 4 heads, 32x32 frames)."""
    from transformers import ResNetConfig

    backbone = ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
        out_features=["stage2"],
    )  # fmt: skip
    kwargs = {
        "vision_config": {
            "backbone_config": backbone,
            "image_size": 32,
            "feature_size": 16,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "co_attention_ids": [0, 1],
        },
        "pose_config": {
            "num_pose_frames": 16,
            "gcn_channels": [8, 8, 16],
            "gcn_strides": [1, 2, 1],
            "temporal_kernel_size": 3,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "co_attention_ids": [0, 1],
        },
        "audio_config": {
            "num_frequency_bins": 32,
            "cnn_layers": [8, "M", 16, "M"],
            "feature_size": 24,
            "hidden_size": 16,
            "num_hidden_layers": 1,  # a different plan from the other streams: co, self, co
            "num_attention_heads": 4,
            "intermediate_size": 20,
            "co_attention_ids": [0, 1],
        },
        "co_attention_hidden_size": 16,
        "co_attention_num_heads": 4,
        "co_attention_intermediate_size": 24,
        "num_labels": 5,
    }
    for key, value in overrides.items():
        if key in ("vision_config", "pose_config", "audio_config"):
            kwargs[key] = {**kwargs[key], **value}
        else:
            kwargs[key] = value
    return kwargs


def make_tiny_config(**overrides):
    from tribert_hf import TriBertConfig

    return TriBertConfig(**tiny_config_kwargs(**overrides))


def make_inputs(config, batch_size=2, seed=0, time_frames=24):
    generator = torch.Generator().manual_seed(seed)
    vc, pc, ac = config.vision_config, config.pose_config, config.audio_config
    return {
        "pixel_values": torch.randn(batch_size, vc.num_frames, 3, vc.image_size, vc.image_size, generator=generator),
        "pose_keypoints": torch.rand(
            batch_size, pc.num_persons, pc.num_pose_frames, pc.num_joints, 3, generator=generator
        ),
        "audio_spectrogram": torch.rand(batch_size, 1, ac.num_frequency_bins, time_frames, generator=generator),
        "pose_mask": torch.tensor([[1, 1]] + [[1, 0]] * (batch_size - 1)),
    }


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.slow` tests run only with RUN_SLOW=1 (transformers' convention)."""
    if os.environ.get("RUN_SLOW", "").lower() in ("1", "true", "yes"):
        return
    skip = pytest.mark.skip(reason="slow: set RUN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tiny_config():
    return make_tiny_config()


@pytest.fixture
def tiny_inputs(tiny_config):
    return make_inputs(tiny_config)

"""The training recipes' presets: model configs by size (`tiny` for tests, `small` for the CPU demo, `paper`), the
methods compared (TriBERT, its ablations, the baselines), and the data and features they train on.

Used by `examples/run_separation.py`, `examples/run_retrieval.py` and the benchmarks.
"""

import os

from transformers import ResNetConfig

from ..configuration_tribert import TriBertConfig
from ..data import PreparedClipFeaturizer, load_prepared, load_synthetic_music
from ..modeling_tribert import TriBertForPreTraining


def model_config(size: str) -> tuple[TriBertConfig, dict]:
    """A TriBERT config and the matching processor settings for `size`."""
    if size == "paper":
        return TriBertConfig(), {}
    tiny = size == "tiny"
    width = 32 if tiny else 64
    stream = {"hidden_size": width, "num_hidden_layers": 1 if tiny else 2, "num_attention_heads": 4, "intermediate_size": 2 * width, "co_attention_ids": [0] if tiny else [0, 1]}
    backbone = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32] if tiny else [32, 64, 128], depths=[1, 1] if tiny else [1, 1, 1], layer_type="basic", out_features=["stage2" if tiny else "stage3"])
    config = TriBertConfig(
        vision_config={**stream, "backbone_config": backbone, "image_size": 64 if tiny else 112, "feature_size": width},
        pose_config={**stream, "num_pose_frames": 32, "gcn_channels": [16, 32] if tiny else [32, 32, 64, 64], "gcn_strides": [1, 2] if tiny else [1, 2, 1, 2], "temporal_kernel_size": 3},
        audio_config={**stream, "hidden_size": width // 2 if tiny else width, "cnn_layers": [16, "M", 32, "M"] if tiny else [32, "M", 64, "M", 128, "M"], "feature_size": width * 2},
        co_attention_hidden_size=width // 2 if tiny else width, co_attention_num_heads=4, co_attention_intermediate_size=2 * width,
        separation_base_channels=8 if tiny else 16, separation_num_downs=5 if tiny else 7, separation_fusion_heads=4, separation_film=not tiny,
    )  # fmt: skip
    image = config.vision_config.image_size
    processor = {"video": {"size": {"shortest_edge": image}, "crop_size": {"height": image, "width": image}}, "num_pose_frames": config.pose_config.num_pose_frames}
    return config, processor


MODELS = ("tribert", "tribert_no_pose", "tribert_self_attention", "tribert_temporal", "tribert_temporal_maps", "tribert_temporal_spectrum", "audio_only", "sop")


def build_config(model: str, size: str):
    """The config of `model` (one of `MODELS`: see `--model` in examples/run_separation.py) at `size`, and the
    processor settings. Baselines share the TriBERT config's U-Net (and frame size), so that every method separates
    with the same U-Net budget."""
    from tribert_hf import AudioOnlySeparationConfig, SoundOfPixelsConfig

    if model not in MODELS:
        raise ValueError(f"Unknown --model {model!r}; use one of {', '.join(MODELS)}.")
    config, processor = model_config(size)
    unet = {k: getattr(config, k) for k in ("separation_base_channels", "separation_num_downs", "mask_type", "mask_activation")}
    if model == "tribert_no_pose":
        config.use_pose_input = False
    elif model == "tribert_temporal":  # ours: the U-Net also sees the pose timeline, frame by frame
        config.separation_conditioning = "temporal"
    elif model in ("tribert_temporal_maps", "tribert_temporal_spectrum"):  # ours: ... and the timeline (with the
        config.separation_conditioning = "temporal"  # joints' positions) weights the maps (and adds a spectrum)
        config.separation_condition_maps = config.separation_condition_maps or 16
        config.separation_timeline_maps = True
        config.separation_timeline_spectrum = model == "tribert_temporal_spectrum"
    elif model == "tribert_self_attention":
        streams = {}
        for name in ("vision_config", "pose_config", "audio_config"):
            sub = getattr(config, name).to_dict()
            sub["num_hidden_layers"] += len(sub["co_attention_ids"])  # same depth: every co layer becomes a self layer
            sub["co_attention_ids"] = []
            streams[name] = sub
        config = TriBertConfig(**{**config.to_dict(), **streams})
    elif model == "audio_only":
        config = AudioOnlySeparationConfig(**unet, separation_film=config.separation_film, separation_fusion_heads=config.separation_fusion_heads)
    elif model == "sop":
        encoder = None
        if size != "paper":  # a ResNet-18 layout scaled like the TriBERT config's backbone
            widths = [16, 32, 64, 128] if size == "tiny" else [32, 64, 128, 256]
            encoder = {"model_type": "resnet", "embedding_size": widths[0], "hidden_sizes": widths, "depths": [1, 1, 1, 1] if size == "tiny" else [2, 2, 2, 2], "layer_type": "basic"}
        config = SoundOfPixelsConfig(**unet, frame_encoder_config=encoder, num_feature_channels=8 if size == "tiny" else 32)
    return config, processor


def model_class(model: str):
    from tribert_hf import AudioOnlyForSourceSeparation, SoundOfPixelsForSourceSeparation

    return {"audio_only": AudioOnlyForSourceSeparation, "sop": SoundOfPixelsForSourceSeparation}.get(model, TriBertForPreTraining)


def load_data(args):
    if args.dataset.startswith("synthetic:"):
        return load_synthetic_music(args.dataset.split(":", 1)[1], cache_dir=getattr(args, "cache_dir", None))
    return args.dataset, load_prepared(args.dataset)


def featurize(
    root, split, processor, crop, seed, repeats, num_proc, label2id, return_waveform=True, columns=None, cache_file_name=None, keep_in_memory=False
):  # fmt: skip
    """Model inputs of every clip (`repeats` random crops each: row r is clip r % len(split)), torch-formatted.

    datasets would cache them beside the dataset under a fingerprint that differs from run to run (the featurizer
    does not hash the same twice), a file per call that nothing reuses: pass `cache_file_name` (a path of the run's
    own, loaded again when it exists: a resumed run skips the work) or `keep_in_memory` (small splits)."""
    featurizer = PreparedClipFeaturizer(root, processor, crop=crop, seed=seed, return_waveform=return_waveform, label2id=label2id)
    if repeats > 1:
        from datasets import concatenate_datasets

        split = concatenate_datasets([split] * repeats)  # crop i of a clip uses seed + its row index: all differ
    features = split.map(
        featurizer, batched=True, batch_size=8, with_indices=True, num_proc=num_proc if num_proc > 1 else None,
        remove_columns=split.column_names, features=featurizer.features, desc=f"features ({crop} crops)",
        cache_file_name=cache_file_name, keep_in_memory=keep_in_memory,
    )  # fmt: skip
    features.set_format("torch", columns=columns)
    return features


def remove_cache_files(features) -> list[str]:
    """Deletes the cache files datasets wrote for `features` (the output of `featurize`: `cache-*.arrow` beside the
    dataset), never the dataset's own files; returns the paths removed. An in-memory dataset has none."""
    removed = []
    for entry in features.cache_files:
        path = entry["filename"]
        if os.path.basename(path).startswith("cache-") and os.path.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed

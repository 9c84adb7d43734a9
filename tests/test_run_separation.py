"""The training recipe: one process and two (accelerate launch --cpu), evaluation, checkpoints and exact resume."""

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "run_separation.py")
COMMON = [
    "--dataset", "synthetic:tiny", "--model_size", "tiny", "--max_steps", "4", "--save_steps", "2",
    "--report_to", "none", "--crops_per_clip", "2", "--mixtures_per_batch", "2", "--learning_rate", "1e-3",
]  # fmt: skip


def run(args, cache, launcher=None, timeout=600, env=None):
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "HF_DATASETS_CACHE": str(cache / "datasets"), **(env or {})}
    command = (launcher or [sys.executable]) + [SCRIPT] + args
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


VAL_MIXTURES = 2  # synthetic:tiny's 4 val clips: 2 consecutive pairs, one evaluation batch


def recompute_validation(folder, cache, model_class):
    """The validation metrics of the model saved in `folder`, recomputed through the public API as the recipe
    computes them: the val clips in order, centre crops, consecutive pairs mixed, 2 mixtures a batch."""
    import math

    from tribert_hf import TriBertConfig, TriBertProcessor
    from tribert_hf.data import MixAndSeparateCollator, PreparedClipFeaturizer, load_synthetic_music
    from tribert_hf.evaluation import evaluate_separation_model

    model = model_class.from_pretrained(folder)
    processor = TriBertProcessor.from_pretrained(folder)
    root, data = load_synthetic_music("tiny", cache_dir=str(cache / "tribert_hf" / "synthetic"))
    rows = data["val"]
    label2id = model.config.label2id if isinstance(model.config, TriBertConfig) else TriBertConfig().label2id
    featurizer = PreparedClipFeaturizer(root, processor, crop="center", return_waveform=True, label2id=label2id)
    collate = MixAndSeparateCollator(processor.feature_extractor, num_mix=2, mask_type=model.config.mask_type)
    batches = [collate([featurizer.example(rows[i]) for i in range(first, first + 4)]) for first in range(0, len(rows) - 3, 4)]
    result = evaluate_separation_model(model, batches, processor.feature_extractor, max_mixtures=32)
    assert all(math.isfinite(result[k]) for k in ("sdr", "sir", "sar", "sdr_mixture", "sir_mixture"))
    return result


def assert_recorded(recorded, recomputed):
    """A history row holds the model's metrics on the validation mixtures: finite, for every mixture, with the
    mixture floor, and equal to their recomputation from the saved model."""
    assert recorded["num_mixtures"] == recomputed["num_mixtures"] == VAL_MIXTURES and recorded["num_skipped"] == 0
    for key in ("sdr", "sir", "sar", "sdr_mixture", "sir_mixture"):
        assert recorded[key] == pytest.approx(recomputed[key], abs=1e-3), key
    assert recorded["sdr"] != recorded["sdr_mixture"]  # the model's estimates, not the mixture


@pytest.mark.slow
def test_training_evaluates_checkpoints_and_saves(tmp_path, cache):
    out = tmp_path / "run"
    log = run(COMMON + ["--eval_steps", "2", "--output_dir", str(out)], cache)
    assert "step 2: SDR" in log and "step 4: SDR" in log
    history = json.load(open(out / "eval_history.json"))
    assert [h["step"] for h in history] == [2, 4]
    assert sorted(os.listdir(out / "checkpoints")) == ["step-2", "step-4"]
    for name in ("config.json", "model.safetensors", "processor_config.json"):
        assert (out / name).is_file() and (out / "best" / name).is_file()
    from tribert_hf import TriBertForPreTraining, TriBertProcessor

    # the same mixtures at every evaluation: the floor does not move; the final model is step 4's, best/ the best's
    assert history[0]["sdr_mixture"] == history[1]["sdr_mixture"]
    assert_recorded(history[1], recompute_validation(out, cache, TriBertForPreTraining))
    best = json.load(open(out / "best_metrics.json"))
    assert best in history and best["sdr"] == max(h["sdr"] for h in history)
    assert_recorded(best, recompute_validation(out / "best", cache, TriBertForPreTraining))
    assert TriBertProcessor.from_pretrained(out).video_processor.frame_rate == 8.0  # synthetic:tiny's frames
    assert json.load(open(out / "processor_config.json"))["video_processor"]["frame_rate"] == 8.0
    card = open(out / "README.md").read()
    assert "| 4 |" in card and "synthetic:tiny" in card


def train_feature_caches(cache) -> set:
    """The datasets cache files beside synthetic:tiny's training split (where the recipe's crops are cached)."""
    from tribert_hf.data import load_synthetic_music

    _, data = load_synthetic_music("tiny", cache_dir=str(cache / "tribert_hf" / "synthetic"), progress=False)
    folder = os.path.dirname(data["train"].cache_files[0]["filename"])
    return {name for name in os.listdir(folder) if name.startswith("cache-")}


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, cache):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    before = train_feature_caches(cache)
    log = run(COMMON + ["--eval_steps", "100", "--output_dir", str(straight)], cache)
    # the crops' features live in the run's folder while it runs, never beside the dataset (a file per run piled up
    # there), and a finished run removes them
    assert "Removed the training crops' features" in log and not (straight / "feature_cache").exists()
    assert train_feature_caches(cache) == before
    log = run(COMMON + ["--eval_steps", "100", "--output_dir", str(interrupted), "--stop_at_step", "2"], cache)
    assert "Stopping at step 2" in log and not (interrupted / "model.safetensors").exists()
    assert (interrupted / "feature_cache" / "train.arrow").is_file()  # a stopped run keeps them: --resume loads them
    log = run(COMMON + ["--eval_steps", "100", "--output_dir", str(interrupted), "--resume"], cache)
    assert "Resumed from" in log and "step-2" in log and "features (random crops)" not in log
    assert not (interrupted / "feature_cache").exists() and train_feature_caches(cache) == before
    assert (interrupted / "README.md").is_file()
    a, b = load_file(straight / "model.safetensors"), load_file(interrupted / "model.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-6


@pytest.mark.slow
def test_two_processes_with_accelerate_launch(tmp_path, cache):
    out = tmp_path / "ddp"
    # accelerate 1.15's `launch --cpu --num_processes 2` starts one process (its multi-CPU mode goes through MPI);
    # `--multi_gpu` with ACCELERATE_USE_CPU=1 starts two torchrun processes that train with gloo on the CPU.
    launcher = [os.path.join(os.path.dirname(sys.executable), "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    run(COMMON + ["--max_steps", "3", "--eval_steps", "3", "--save_steps", "3", "--output_dir", str(out)], cache, launcher=launcher, env={"ACCELERATE_USE_CPU": "1"})
    records = [json.load(open(out / "processes" / name)) for name in sorted(os.listdir(out / "processes"))]
    assert [r["process_index"] for r in records] == [0, 1] and all(r["num_processes"] == 2 for r in records)
    assert all(r["step"] == 3 and r["last_loss"] is not None and r["last_loss"] == r["last_loss"] for r in records)
    from tribert_hf import TriBertForPreTraining

    TriBertForPreTraining.from_pretrained(out)
    assert (out / "checkpoints" / "step-3").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tribert_no_pose", "tribert_self_attention", "audio_only", "sop"])
def test_every_method_trains_evaluates_and_loads(tmp_path, cache, model):
    """The ablations and baselines go through the same recipe (`--model`), evaluation and `from_pretrained`."""
    out = tmp_path / model
    run(COMMON + ["--model", model, "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--output_dir", str(out), "--logging_steps", "1"], cache)
    history = json.load(open(out / "eval_history.json"))
    assert [h["step"] for h in history] == [2]
    log = [json.loads(line) for line in open(out / "train_log.jsonl")]
    assert [row["step"] for row in log] == [1, 2] and all(row["loss"] == row["loss"] for row in log)
    from transformers import AutoConfig

    import tribert_hf

    config = AutoConfig.from_pretrained(out)
    expected = {"audio_only": "tribert_audio_only", "sop": "tribert_sop"}.get(model, "tribert")
    assert config.model_type == expected
    if model == "tribert_no_pose":
        assert config.use_pose_input is False
    if model == "tribert_self_attention":
        assert all(sub.co_attention_ids == [] and sub.num_hidden_layers == 2 for sub in config.streams.values())
    cls = {"audio_only": tribert_hf.AudioOnlyForSourceSeparation, "sop": tribert_hf.SoundOfPixelsForSourceSeparation}.get(model, tribert_hf.TriBertForPreTraining)
    assert_recorded(history[0], recompute_validation(out, cache, cls))


def test_the_training_frame_rate_is_the_datasets():
    """The processor saved with a trained model records the rate of the training split's frames (the most common
    one when clips differ); the script is a thin wrapper over the library's loop."""
    from datasets import Dataset

    from tribert_hf.training.separation import SeparationTrainingArguments, dataset_frame_rate, parse_args

    assert dataset_frame_rate(Dataset.from_dict({"fps": [12.5, 12.5, 25.0]})) == 12.5
    assert dataset_frame_rate(Dataset.from_dict({"fps": [8.0]})) == 8.0
    args = parse_args(["--dataset", "synthetic:tiny", "--max_steps", "7"])
    assert isinstance(args, SeparationTrainingArguments) and args.max_steps == 7 and args.model == "tribert"
    source = open(SCRIPT).read()
    assert "from tribert_hf.training.separation import RunArgumentsError, main" in source and "def " not in source


def test_the_separation_unet_gets_its_own_learning_rate():
    """--separation_learning_rate: the U-Net's parameters in a group of their own, every other one in the first."""
    import torch

    from tribert_hf import AudioOnlyForSourceSeparation, TriBertForPreTraining
    from tribert_hf.training import build_config
    from tribert_hf.training.separation import parameter_groups

    config, _ = build_config("tribert", "tiny")
    model = TriBertForPreTraining(config)
    (group,) = parameter_groups(model, 1e-3)
    assert group["lr"] == 1e-3 and len(group["params"]) == len(list(model.parameters()))
    encoder, head = parameter_groups(model, 1e-3, 5e-3)
    assert (encoder["lr"], head["lr"]) == (1e-3, 5e-3)
    assert {id(p) for p in head["params"]} == {id(p) for p in model.separation.parameters()}
    assert len(encoder["params"]) + len(head["params"]) == len(list(model.parameters()))
    # with OneCycleLR each group peaks at its own rate
    optimizer = torch.optim.AdamW([encoder, head])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[1e-3, 5e-3], total_steps=10, pct_start=0.3)
    peaks = [0.0, 0.0]
    for _ in range(9):
        optimizer.step()
        scheduler.step()
        lrs = scheduler.get_last_lr()
        assert lrs[1] == pytest.approx(5 * lrs[0])
        peaks = [max(peak, lr) for peak, lr in zip(peaks, lrs)]
    assert peaks == pytest.approx([1e-3, 5e-3], rel=0.1)
    audio_config, _ = build_config("audio_only", "tiny")
    _, audio_head = parameter_groups(AudioOnlyForSourceSeparation(audio_config), 1e-3, 5e-3)
    assert len(audio_head["params"]) > 0
    with pytest.raises(ValueError, match="no separation module"):
        parameter_groups(torch.nn.Linear(2, 2), 1e-3, 5e-3)


@pytest.mark.slow
def test_same_class_mixtures_resume_to_the_same_weights(tmp_path, cache):
    """--same_class_mixtures (MixtureBatchSampler): every mixture shares a class at 1.0, and an interrupted run
    resumes to the weights of a straight one (the sampler's draws depend on the seed and the epoch only)."""
    args = COMMON + ["--eval_steps", "100", "--same_class_mixtures", "1.0"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    run(args + ["--output_dir", str(straight)], cache)
    run(args + ["--output_dir", str(interrupted), "--stop_at_step", "2"], cache)
    assert "Resumed from" in run(args + ["--output_dir", str(interrupted), "--resume"], cache)
    a, b = load_file(straight / "model.safetensors"), load_file(interrupted / "model.safetensors")
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-6
    plain = tmp_path / "plain"
    run(COMMON + ["--eval_steps", "100", "--output_dir", str(plain)], cache)
    c = load_file(plain / "model.safetensors")
    assert max(float((a[k].float() - c[k].float()).abs().max()) for k in a) > 1e-4  # other mixtures were drawn


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tribert", "audio_only"])
def test_the_waveform_loss_joins_the_models_loss(tmp_path, cache, model):
    """--waveform_loss_weight: the negative SDR of the masked waveforms (`waveform_sdr_loss`; the PIT baseline's in
    its best permutation) is logged and added to the model's loss."""
    out = tmp_path / model
    run(COMMON + ["--model", model, "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--output_dir", str(out),
                  "--logging_steps", "1", "--waveform_loss_weight", "0.5"], cache)  # fmt: skip
    log = [json.loads(line) for line in open(out / "train_log.jsonl")]
    assert [row["step"] for row in log] == [1, 2]
    for row in log:
        assert -30 <= row["waveform_loss"] <= 30 and row["waveform_loss"] != 0  # an SDR in dB, soft-capped at 30
        assert row["loss"] == pytest.approx(row["model_loss"] + 0.5 * row["waveform_loss"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tribert", "sop"])
def test_softmax_masks_train_save_and_evaluate_as_recorded(tmp_path, cache, model):
    """--mask_activation softmax (and --separation_output_stride 2): the saved config carries it, and the recorded
    validation is what the saved model scores through the public API (its masks normalised across the mixture's
    videos, the U-Net's last layer at half resolution)."""
    out = tmp_path / model
    run(COMMON + ["--model", model, "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--output_dir", str(out),
                  "--mask_type", "ratio", "--mask_activation", "softmax", "--separation_output_stride", "2"], cache)  # fmt: skip
    from transformers import AutoConfig

    import tribert_hf

    config = AutoConfig.from_pretrained(out)
    assert config.mask_activation == "softmax" and config.mask_type == "ratio" and config.separation_output_stride == 2
    cls = {"sop": tribert_hf.SoundOfPixelsForSourceSeparation}.get(model, tribert_hf.TriBertForPreTraining)
    recorded, recomputed = json.load(open(out / "eval_history.json"))[0], recompute_validation(out, cache, cls)
    assert recorded["num_mixtures"] == recomputed["num_mixtures"] == VAL_MIXTURES and recorded["num_skipped"] == 0
    for key in ("sdr", "sir", "sdr_mixture", "sir_mixture"):
        assert recorded[key] == pytest.approx(recomputed[key], abs=1e-3), key
    # an untrained model's softmax masks can give nearly all of a mixture to one video: its estimate is then the
    # mixture, whose SAR (~70 dB) is ill-conditioned: relative agreement
    assert recorded["sar"] == pytest.approx(recomputed["sar"], rel=1e-4)


def save_resnet_checkpoint(folder, seed=7):
    """A local stand-in for an ImageNet ResNet (e.g. microsoft/resnet-18): an image classifier, saved the way the
    hub's are, with an architecture of its own (widths 12 / 24, not the tiny config's 16 / 32)."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[12, 24], depths=[1, 1], layer_type="basic", num_labels=5)
    model = ResNetForImageClassification(config).eval()
    for module in model.modules():  # statistics of their own, so that keeping them is visible
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    model.save_pretrained(folder)
    return {k.removeprefix("resnet."): v for k, v in model.state_dict().items() if k.startswith("resnet.")}


@pytest.mark.parametrize("model", ["tribert", pytest.param("sop", marks=pytest.mark.slow)])
def test_a_pretrained_frozen_vision_backbone_is_loaded_and_kept(tmp_path, cache, model):
    """--vision_backbone DIR --freeze_vision_backbone: the frame backbone takes the checkpoint's architecture and
    weights, and after training they (batch-norm statistics included) are still the checkpoint's, while the rest
    of the model trained."""
    reference = save_resnet_checkpoint(tmp_path / "resnet")
    out = tmp_path / model
    run(COMMON + ["--model", model, "--max_steps", "2", "--eval_steps", "2", "--save_steps", "1", "--output_dir", str(out),
                  "--vision_backbone", str(tmp_path / "resnet"), "--freeze_vision_backbone"], cache)  # fmt: skip
    saved = load_file(out / "model.safetensors")
    prefix = "tribert.vision_embeddings.backbone." if model == "tribert" else "frame_encoder."
    backbone = {k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)}
    shared = [k for k in backbone if k in reference]
    assert len(shared) >= 20 and any(k.endswith("running_var") for k in shared)
    for key in shared:
        assert backbone[key].shape == reference[key].shape, key
        assert (backbone[key].float() - reference[key].float()).abs().max() < 1e-6, key
    config = json.load(open(out / "config.json"))
    resnet = config["vision_config"]["backbone_config"] if model == "tribert" else config["frame_encoder_config"]
    assert resnet["hidden_sizes"] == [12, 24]
    if model == "tribert":
        assert config["vision_config"]["use_pretrained_backbone"] is False  # the checkpoint holds the weights now
    # the rest trained: from step 1 to step 2 everything else moved, the backbone did not
    step1 = load_file(out / "checkpoints" / "step-1" / "model.safetensors")
    moved = {k for k in saved if k in step1 and not (saved[k].float() == step1[k].float()).all()}
    assert moved and not any(k.startswith(prefix) for k in moved)
    assert any(k.startswith("separation." if model == "tribert" else "audio_unet.") for k in moved)


def test_vision_backbone_arguments_are_checked(tmp_path):
    from types import SimpleNamespace

    from transformers import BertConfig

    from tribert_hf.training.presets import build_config
    from tribert_hf.training.separation import use_vision_backbone

    def args(**kw):
        return SimpleNamespace(**{"model": "tribert", "vision_backbone": None, "freeze_vision_backbone": False, "model_name_or_path": None, **kw})

    config, _ = build_config("audio_only", "tiny")
    with pytest.raises(ValueError, match="audio_only has no frames"):
        use_vision_backbone(args(model="audio_only", vision_backbone="x"), config)
    with pytest.raises(ValueError, match="audio_only has no frames"):
        use_vision_backbone(args(model="audio_only", freeze_vision_backbone=True), config)
    config, _ = build_config("tribert", "tiny")
    with pytest.raises(ValueError, match="no transformers model config there"):
        use_vision_backbone(args(vision_backbone=str(tmp_path / "missing")), config)
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match="holds a 'bert' model; use a ResNet"):
        use_vision_backbone(args(vision_backbone=str(tmp_path / "bert")), config)
    with pytest.raises(ValueError, match="already holds its frame backbone"):
        use_vision_backbone(args(vision_backbone=str(tmp_path / "bert"), model_name_or_path="run"), config)
    use_vision_backbone(args(), config)  # nothing asked: nothing changes
    assert config.vision_config.use_pretrained_backbone is False


def test_channels_last_computes_the_same_model():
    """--channels_last changes the memory layout of the convolutions' weights only: the same weights give the same
    outputs (to float rounding). (Training runs differ a little more: the random draws of dropout follow the memory layout.)"""
    import torch

    from tribert_hf import TriBertForPreTraining
    from tribert_hf.training.presets import model_config

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from common import random_batch

    torch.manual_seed(0)
    config, _ = model_config("tiny")
    plain = TriBertForPreTraining(config).eval()
    fast = TriBertForPreTraining(config).eval()
    fast.load_state_dict(plain.state_dict())
    fast = fast.to(memory_format=torch.channels_last)
    assert any(p.dim() == 4 and not p.is_contiguous() for p in fast.parameters())
    batch = random_batch(config, 2)
    with torch.no_grad():
        a, b = plain(**batch), fast(**batch)
    for key in ("mask_logits", "vision_scores", "pose_scores", "audio_logits", "loss"):
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-4, msg=key)


@pytest.mark.slow
def test_a_channels_last_run_saves_loadable_weights_and_resumes(tmp_path, cache):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(COMMON + ["--eval_steps", "100", "--output_dir", str(straight), "--channels_last"], cache)
    run(COMMON + ["--eval_steps", "100", "--output_dir", str(resumed), "--channels_last", "--stop_at_step", "2"], cache)
    run(COMMON + ["--eval_steps", "100", "--output_dir", str(resumed), "--channels_last", "--resume"], cache)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-6
    from tribert_hf import TriBertForPreTraining

    model = TriBertForPreTraining.from_pretrained(straight)
    assert all(p.is_contiguous() for p in model.parameters())


@pytest.mark.slow
def test_a_bf16_run_on_the_cpu_trains_the_same_model_in_float32_weights(tmp_path, cache):
    """`--mixed_precision bf16` on the CPU (autocast: the convolutions and matrix products in bfloat16, a faster step
    on CPUs with AVX512-BF16): the same losses as float32 to bf16's precision, float32 weights saved, which load."""
    logs = {}
    for precision in ("no", "bf16"):
        out = tmp_path / precision
        run(COMMON + ["--eval_steps", "4", "--logging_steps", "1", "--mixed_precision", precision, "--output_dir", str(out)], cache)
        logs[precision] = [json.loads(line) for line in open(out / "train_log.jsonl")]
    first = logs["no"][0]["loss"], logs["bf16"][0]["loss"]
    assert first[1] != first[0] and first[1] == pytest.approx(first[0], rel=2e-2)  # autocast ran, and bf16 is close
    assert all(row["loss"] == row["loss"] for row in logs["bf16"])  # finite
    weights = load_file(tmp_path / "bf16" / "model.safetensors")
    assert {str(w.dtype) for w in weights.values()} <= {"torch.float32", "torch.int64"}
    import torch

    from tribert_hf import TriBertForPreTraining

    assert TriBertForPreTraining.from_pretrained(tmp_path / "bf16").dtype == torch.float32

"""Training a separation model with accelerate: TriBERT with the paper's joint objective (classification +
mix-and-separate), its ablations and the baselines (`--model`). The library behind `examples/run_separation.py`::

    accelerate launch examples/run_separation.py --dataset synthetic:small --model_size small --output_dir out/

    from tribert_hf.training.separation import main, parse_args, train_separation
    history = main(["--dataset", "synthetic:tiny", "--model_size", "tiny", "--output_dir", "out/"])

`--dataset` is `synthetic:tiny`, `synthetic:small` (the built-in synthetic music dataset) or a folder written by
`tribert prepare`. Every `--eval_steps` the model separates the validation mixtures (pairs of clips, centre crops)
and SDR/SIR/SAR are measured with the fast BSS Eval (the library's one evaluation loop,
`tribert_hf.evaluation.evaluate_separation_model`), next to the mixture floor; the best model by SDR is kept in
`output_dir/best`. The processor is saved with the model, with the frame rate of the training frames
(`video_processor.frame_rate`, which `tribert separate` conditions at). Checkpoints (`accelerator.save_state`) are
written to a temporary folder and renamed into `output_dir/checkpoints/step-N`; `--resume` continues from the
latest one with the same data order.

A run writes its arguments to `output_dir/run_args.json`. A non-empty `--output_dir` is refused unless `--resume`
(continue the run there: refused when its arguments differ, apart from the operational ones in `OPERATIONAL_ARGS`,
or when its latest checkpoint lies past `--max_steps`) or `--overwrite_output_dir` (start over: the old run's
checkpoints, best model, logs and run_args.json are deleted first; other files are left alone).
"""

import json
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import torch
from transformers import HfArgumentParser, get_scheduler

from .. import TriBertConfig, TriBertFeatureExtractor, TriBertProcessor, TriBertVideoProcessor
from ..configuration_tribert import SEPARATION_CONDITIONINGS
from ..data import MixAndSeparateCollator, MixtureBatchSampler
from ..evaluation import MODEL_INPUTS, evaluate_separation_model, predicted_masks
from ..hub import push_folder, resolve_hub_model_id, write_model_card
from ..separation.losses import waveform_sdr_loss
from ..video_processing_tribert import FRAME_RATE
from .checkpoints import atomic_save_state, latest_checkpoint
from .presets import build_config, featurize, load_data, model_class


@dataclass
class SeparationTrainingArguments:
    """The arguments of a training run (`examples/run_separation.py --help`). To add a recipe option, add a field
    here (with a `help`); list it in `OPERATIONAL_ARGS` when a resumed run may change it."""

    dataset: str = field(default="synthetic:small", metadata={"help": "synthetic:tiny, synthetic:small or a prepared folder"})
    output_dir: str = field(default="outputs/separation", metadata={"help": "checkpoints, logs, the final model"})
    model_size: str = field(default="small", metadata={"help": "tiny (tests), small (CPU demo) or paper"})
    model: str = field(default="tribert", metadata={"help": "tribert (the paper's joint objective); ablations: tribert_no_pose (the pose stream sees no keypoints), tribert_self_attention (co-attention layers replaced by per-stream self-attention layers); ours: tribert_temporal (the U-Net also conditioned per time frame on the pose timeline, separation_conditioning=temporal), tribert_temporal_maps (tribert_temporal whose timeline also carries the joints' positions and weights the U-Net's condition maps frame by frame: separation_timeline_maps, 16 maps unless --separation_condition_maps says otherwise), tribert_temporal_spectrum (tribert_temporal_maps whose timeline and condition also add a spectrum to the mask logits at every frame: separation_timeline_spectrum); baselines: audio_only (the same U-Net, no conditioning, permutation-invariant loss, scored with the best permutation), sop (Sound-of-Pixels: ResNet frame vector weights K U-Net channels)"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "start from this checkpoint (fine-tuning)"})
    vision_backbone: str | None = field(default=None, metadata={"help": "hub id or local folder of a pretrained transformers ResNet (e.g. a local copy of microsoft/resnet-18 or microsoft/resnet-50; the paper's frame backbone is an ImageNet ResNet-50, Sound of Pixels' an ImageNet ResNet-18): TriBERT models and sop take their frame backbone's architecture and weights from it instead of training one from scratch. Not with --model_name_or_path (its checkpoint holds its own backbone)"})
    freeze_vision_backbone: bool = field(default=False, metadata={"help": "TriBERT models and sop: keep the frame backbone fixed (no gradients; batch-norm statistics kept), e.g. with --vision_backbone; what follows it still trains"})
    num_mix: int = field(default=2, metadata={"help": "videos mixed per training example (N)"})
    crops_per_clip: int = field(default=4, metadata={"help": "random training crops featurized per clip"})
    mixtures_per_batch: int = field(default=4, metadata={"help": "mixtures per step per process (paper: 12)"})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate (paper: 1e-5; 1e-7 to fine-tune)"})
    separation_learning_rate: float | None = field(default=None, metadata={"help": "learning rate of the separation U-Net (the model's `separation` / `audio_unet` module), e.g. higher than the encoder's; default: --learning_rate"})
    weight_decay: float = field(default=1e-4)
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of the steps spent warming up (onecycle: rising to the peak)"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "cosine (linear warm-up, cosine decay), onecycle (torch's OneCycleLR: cosine rise to --learning_rate over warmup_ratio, cosine decay) or any transformers scheduler name"})
    mask_type: str | None = field(default=None, metadata={"help": "binary (sigmoid masks, weighted BCE: the paper) or ratio (masks in [0, 2], weighted L1); default: the config's"})
    mask_activation: str | None = field(default=None, metadata={"help": "sigmoid (each source's mask on its own: the paper) or softmax (a mixture's masks normalised across its sources, summing to 1 per bin; not in the paper); default: the config's", "choices": ["sigmoid", "softmax"]})
    separation_class_conditioning: bool = field(default=False, metadata={"help": "TriBERT models: also condition the U-Net on the frames' class scores of the segmentation attention (not in the paper; ignored by the baselines)"})
    class_teacher_forcing: float = field(default=0.0, metadata={"help": "TriBERT models with --separation_class_conditioning: over the first R x max_steps steps, each video's class scores in the U-Net's condition are replaced by its labels with a probability falling linearly from 1 to 0 (a curriculum: the U-Net learns to use the class from the first step, as a U-Net told the class does, while the segmentation attention learns to tell it; validation and inference always use the model's own scores). 0: off (not in the paper)"})
    separation_condition_maps: int = field(default=0, metadata={"help": "TriBERT models: K > 0 ends the U-Net in K maps weighted by the condition (not in the paper); 0 keeps the config's"})
    separation_output_stride: int | None = field(default=None, metadata={"help": "every model's U-Net: 1 (the paper: its last up-convolution at the spectrogram's full resolution) or 2 (at half resolution, the finished mask logits upsampled x2: a faster step, measured as good per step; not in the paper); default: the config's (1). With --model_name_or_path it may change (the same parameters)", "choices": [1, 2]})
    separation_conditioning: str | None = field(default=None, metadata={"help": "TriBERT models: pooled (the paper: each video's pooled <SOS> outputs) or temporal (also per time frame, by the video's pose timeline; not in the paper); default: the config's (--model tribert_temporal: temporal). With --model_name_or_path, a pooled checkpoint becomes temporal (zero-initialised: it starts where it was). Ignored by the baselines", "choices": list(SEPARATION_CONDITIONINGS)})
    separation_timeline_maps: bool = field(default=False, metadata={"help": "TriBERT models with --separation_conditioning temporal (or --model tribert_temporal) and --separation_condition_maps K: the timeline also carries the joints' positions, and weights the K maps frame by frame (separation_timeline_maps; not in the paper)"})
    num_pose_frames: int | None = field(default=None, metadata={"help": "TriBERT models, from scratch: keypoint frames per training crop (pose_config.num_pose_frames; the processor resamples each crop's keypoints to them). The small preset's 32 over a 5.9 s crop is 5.4 frames a second, coarser than the notes: the pose timeline of --separation_conditioning temporal sees a hand's strokes and places only as finely as this (not in the paper). Default: the preset's; with --model_name_or_path, the checkpoint's"})
    gcn_frame_stride: int | None = field(default=None, metadata={"help": "TriBERT models, from scratch: the ST-GCN (the pose tokens) sees every k-th keypoint frame, the pose timeline all of them (pose_config.gcn_frame_stride), e.g. --num_pose_frames 128 --gcn_frame_stride 4: the small preset's tokens at its cost, a timeline 4x finer (not in the paper). Default: the preset's (1)"})
    same_class_mixtures: float = field(default=0.0, metadata={"help": "share of training mixtures whose clips share an instrument class (MixtureBatchSampler; random pairs share one about 1 time in 21 with MUSIC21); 0: plain shuffled pairs. Two players of one instrument are what separation_conditioning=temporal learns from"})
    waveform_loss_weight: float = field(default=0.0, metadata={"help": "add this weight x the negative plain SDR (dB) of the masked waveforms (`waveform_sdr_loss`: masks -> mixture phase -> inverse STFT; the evaluation's BSS Eval SDR also forgives a short distortion filter) to the model's loss (not in the paper); 0: the model's loss alone"})
    gain_range: str | None = field(default=None, metadata={"help": "LOW,HIGH: scale every training clip by a random gain in [LOW, HIGH] before mixing (the authors' code: 0.5,1.5)"})
    max_steps: int = field(default=200, metadata={"help": "optimizer steps"})
    gradient_accumulation_steps: int = field(default=1)
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16"})
    gradient_checkpointing: bool = field(default=False)
    channels_last: bool = field(default=False, metadata={"help": "keep the convolutions' weights (ResNet, VGGish, ST-GCN, U-Net) in channels-last memory layout: the same model (outputs equal to float rounding), faster CPU convolution kernels; dropout's random masks follow the layout, so a run is not bit-identical to a contiguous one (docs/training.md)"})
    eval_steps: int = field(default=50, metadata={"help": "evaluate every this many steps"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every this many steps"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept"})
    max_eval_mixtures: int = field(default=32)
    logging_steps: int = field(default=10, metadata={"help": "append the mean training losses (and seconds a step) to output_dir/train_log.jsonl every this many steps"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in output_dir (same arguments)"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "start over in a non-empty output_dir: delete the old run's checkpoints, best model and logs first"})
    stop_at_step: int | None = field(default=None, metadata={"help": "exit after this step, as an interruption would (tests resume)"})
    report_to: str = field(default="tensorboard", metadata={"help": "an accelerate tracker name, or none"})
    seed: int = field(default=0)
    num_proc: int = field(default=1, metadata={"help": "processes for feature extraction (datasets.map)"})
    cache_dir: str | None = field(default=None, metadata={"help": "where synthetic datasets are generated (default ~/.cache/tribert_hf/synthetic)"})
    keep_feature_cache: bool = field(default=False, metadata={"help": "keep the training crops' features (output_dir/feature_cache/, about 0.8 GB per 1000 crops of the small config) when the run finishes; a stopped run always keeps them, and --resume loads them"})
    push_to_hub: bool = field(default=False, metadata={"help": "upload output_dir (model, processor, card) at the end"})
    hub_model_id: str | None = field(default=None, metadata={"help": "hub repository id; default: output_dir's name"})
    hub_token: str | None = field(default=None, metadata={"help": "hub token (default: the logged-in one)"})
    hub_private_repo: bool = field(default=False)


RUN_ARGS_FILE = "run_args.json"
#: arguments that do not change what a run computes: a resumed run may change them
OPERATIONAL_ARGS = (
    "output_dir", "resume", "overwrite_output_dir", "stop_at_step", "report_to", "num_proc", "cache_dir", "keep_feature_cache",
    "push_to_hub", "hub_model_id", "hub_token", "hub_private_repo",
)  # fmt: skip
#: what a training run writes into output_dir besides the final model (deleted by --overwrite_output_dir)
FEATURE_CACHE = "feature_cache"  # the training crops' features, in the run's folder while it runs
RUN_FILES = (FEATURE_CACHE, "checkpoints", "best", "best_metrics.json", "eval_history.json", "train_log.jsonl", "processes", "logs", RUN_ARGS_FILE)


class RunArgumentsError(ValueError):
    """Arguments that would mix two runs in one output_dir (or lose one)."""


SEPARATION_MODULES = ("separation", "audio_unet")


def parameter_groups(model, learning_rate: float, separation_learning_rate: float | None = None) -> list[dict]:
    """The optimizer's parameter groups: the separation U-Net (a top-level module named in `SEPARATION_MODULES`)
    at `separation_learning_rate`, everything else at `learning_rate`; one group when the two are the same."""
    if separation_learning_rate is None or separation_learning_rate == learning_rate:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": learning_rate}]
    head, rest = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (head if name.split(".", 1)[0] in SEPARATION_MODULES else rest).append(parameter)
    if not head:
        raise ValueError(f"--separation_learning_rate: {type(model).__name__} has no separation module ({', '.join(SEPARATION_MODULES)}).")
    return [{"params": rest, "lr": learning_rate}, {"params": head, "lr": separation_learning_rate}]


def check_output_dir(args) -> None:
    """Refuse a non-empty `output_dir` without `--resume` / `--overwrite_output_dir`, and a `--resume` with other
    arguments than the run there or past `--max_steps` (see the module docstring). Writes nothing."""
    out = args.output_dir
    if args.resume and args.overwrite_output_dir:
        raise RunArgumentsError("--resume continues the run in --output_dir, --overwrite_output_dir deletes it: pass one.")
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunArgumentsError(f"--output_dir {out!r} is a file, not a folder.")
    existing = sorted(os.listdir(out)) if os.path.isdir(out) else []
    if not existing or args.overwrite_output_dir:
        return
    if not args.resume:
        shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
        raise RunArgumentsError(
            f"--output_dir {out!r} is not empty ({shown}): a new run there would mix with the old one (its checkpoints "
            "and best model). Pass --resume to continue that run, --overwrite_output_dir to start over (the old "
            "run's checkpoints, best model and logs are deleted), or choose another --output_dir."
        )
    saved_file = os.path.join(out, RUN_ARGS_FILE)
    if os.path.isfile(saved_file):
        with open(saved_file) as f:
            saved = json.load(f)
        current = asdict(args)
        # an argument added after the run started counts as its default then (the run computed it that way)
        saved = {**asdict(type(args)()), **saved}
        changed = [
            f"--{k} {saved[k]!r} -> {current[k]!r}" for k in current if k not in OPERATIONAL_ARGS and k in saved and saved[k] != current[k]
        ]
        if changed:
            raise RunArgumentsError(
                f"Cannot --resume the run in {out!r} with other arguments than it was started with ({'; '.join(changed)}): "
                "the result would match neither run. Resume with the same arguments, or start a new run with "
                "--overwrite_output_dir or another --output_dir."
            )
    _, step = latest_checkpoint(out)
    if step > args.max_steps:
        raise RunArgumentsError(
            f"Cannot --resume the run in {out!r}: its latest checkpoint is step {step}, past --max_steps {args.max_steps}. "
            f"Pass --max_steps {step} or more, or start a new run with --overwrite_output_dir or another --output_dir."
        )


def start_run(args) -> None:
    """Main process, after `check_output_dir`: with `--overwrite_output_dir`, delete the old run's files
    (`RUN_FILES`); record this run's arguments in `run_args.json` (without the hub token)."""
    if args.overwrite_output_dir:
        for name in RUN_FILES:
            path = os.path.join(args.output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, RUN_ARGS_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump({k: v for k, v in asdict(args).items() if k != "hub_token"}, f, indent=2)
    os.replace(path + ".tmp", path)


def parse_args(argv=None) -> SeparationTrainingArguments:
    """The arguments of `argv` (a list of strings; None: the command line)."""
    (args,) = HfArgumentParser(SeparationTrainingArguments).parse_args_into_dataclasses(args=argv)
    return args


def dataset_frame_rate(split) -> float:
    """The rate (frames per second) of a prepared split's frames, the most common one if its clips differ: what
    the model is trained on, saved with the processor (`video_processor.frame_rate`)."""
    rates = Counter(round(float(fps), 6) for fps in split["fps"])
    return rates.most_common(1)[0][0] if rates else FRAME_RATE


def main(argv=None) -> list[dict]:
    """`examples/run_separation.py`: parse `argv` and train (see `train_separation`)."""
    return train_separation(parse_args(argv))


def use_vision_backbone(args, config) -> None:
    """`--vision_backbone`, before the model is built: the config's frame backbone becomes the checkpoint's
    (TriBERT: `vision_config.backbone`, loaded when the model is built; Sound of Pixels: the ResNet's config, its
    weights loaded by `load_vision_backbone_weights` once the model exists)."""
    from .. import SoundOfPixelsConfig

    if args.vision_backbone is None:
        if args.freeze_vision_backbone and not isinstance(config, (TriBertConfig, SoundOfPixelsConfig)):
            raise ValueError(f"--freeze_vision_backbone: --model {args.model} has no frames (no vision backbone).")
        return
    if not isinstance(config, (TriBertConfig, SoundOfPixelsConfig)):
        raise ValueError(f"--vision_backbone: --model {args.model} has no frames (no vision backbone to load).")
    if args.model_name_or_path:
        raise ValueError(
            "--vision_backbone with --model_name_or_path: the checkpoint already holds its frame backbone; "
            "pass one or the other."
        )
    from transformers import AutoConfig

    try:
        backbone_config = AutoConfig.from_pretrained(args.vision_backbone)
    except (OSError, ValueError) as error:
        raise ValueError(f"--vision_backbone {args.vision_backbone!r}: no transformers model config there ({error}).") from None
    if backbone_config.model_type != "resnet":
        raise ValueError(
            f"--vision_backbone {args.vision_backbone!r} holds a {backbone_config.model_type!r} model; use a ResNet "
            "checkpoint (e.g. a local copy of microsoft/resnet-18 or microsoft/resnet-50)."
        )
    if isinstance(config, TriBertConfig):
        config.vision_config.backbone = args.vision_backbone
        config.vision_config.use_pretrained_backbone = True
    else:
        config.frame_encoder_config = backbone_config


def load_vision_backbone_weights(args, model) -> None:
    """Sound of Pixels' frame ResNet from `--vision_backbone` (TriBERT's backbone is loaded as the model is built)."""
    from transformers import ResNetModel

    from .. import SoundOfPixelsForSourceSeparation

    if args.vision_backbone is not None and isinstance(model, SoundOfPixelsForSourceSeparation):
        weights = ResNetModel.from_pretrained(args.vision_backbone).state_dict()
        model.frame_encoder.load_state_dict(weights)


def check_class_teacher_forcing(args, config) -> None:
    if not 0.0 <= args.class_teacher_forcing <= 1.0:
        raise ValueError(f"--class_teacher_forcing is a share of the steps, in [0, 1]; got {args.class_teacher_forcing}.")
    if args.class_teacher_forcing and not getattr(config, "separation_class_conditioning", False):
        raise ValueError(
            "--class_teacher_forcing replaces the class scores in the U-Net's condition: it needs a TriBERT model "
            "with --separation_class_conditioning."
        )


def class_teacher_forcing_at(step: int, args) -> float:
    """`--class_teacher_forcing R`: the probability that a video's class scores are replaced by its labels at the
    step after `step` completed ones: 1 at the first step, falling linearly to 0 at R x max_steps, 0 after."""
    if not args.class_teacher_forcing:
        return 0.0
    return max(0.0, 1.0 - step / (args.class_teacher_forcing * args.max_steps))


def apply_pose_frames(args, config, checkpoint: str | None = None) -> None:
    """`--num_pose_frames` / `--gcn_frame_stride` onto a TriBERT `config`: set on a new model's config; a checkpoint's
    (`checkpoint`) must already have them. The baselines see no keypoints: either option is an error there."""
    for name in ("num_pose_frames", "gcn_frame_stride"):
        value = getattr(args, name)
        if value is None:
            continue
        if not isinstance(config, TriBertConfig):
            raise ValueError(f"--{name} is an option of TriBERT models (they see keypoints), not of --model {args.model}.")
        if checkpoint is None:
            setattr(config.pose_config, name, value)
            config.pose_config._check_architecture()
        elif value != getattr(config.pose_config, name):
            raise ValueError(
                f"--{name} {value} differs from {checkpoint}'s pose_config.{name} "
                f"{getattr(config.pose_config, name)}: train from scratch to change it."
            )


def pose_frames(config, processor_settings: dict) -> int:
    """Keypoint frames per crop for the processor: a TriBERT config's own (`pose_config.num_pose_frames`: the
    preset's, `--num_pose_frames` or a checkpoint's), else the preset's processor setting (the baselines see none)."""
    if isinstance(config, TriBertConfig):
        return config.pose_config.num_pose_frames
    return processor_settings.get("num_pose_frames", TriBertConfig().pose_config.num_pose_frames)


def waveform_loss(model, outputs, batch: dict, fe) -> torch.Tensor:
    """`waveform_sdr_loss` of a training batch: the model's masks in the targets' order (`predicted_masks`: the PIT
    baseline's best permutation) applied to the mixture (its phase, inverse STFT) against the source waveforms."""
    masks = predicted_masks(model, outputs).float()
    estimates = fe.masks_to_waveforms(masks, batch["mixture_stft"], batch["mixture_waveform"].shape[-1])
    return waveform_sdr_loss(estimates, batch["source_waveforms"])


def train_separation(args: SeparationTrainingArguments) -> list[dict]:
    """Train, evaluate and save as the module docstring says; returns the validation history (one dict per
    evaluation: `step` and the metrics). Every process of an `accelerate launch` runs it."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    check_output_dir(args)  # every process, before any of them writes
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")),
        # the shuffle order of epoch e depends only on (seed, e): a resumed run sees the same batches
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(args.seed)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        start_run(args)
    accelerator.wait_for_everyone()
    repo_id = resolve_hub_model_id(args.output_dir, args.hub_model_id) if args.push_to_hub else None  # fail early

    config, processor_settings = build_config(args.model, args.model_size)
    use_vision_backbone(args, config)
    if args.model_name_or_path:
        overrides = {}
        if args.separation_conditioning is not None and isinstance(config, TriBertConfig):
            overrides["separation_conditioning"] = args.separation_conditioning
        if args.separation_output_stride is not None:
            overrides["separation_output_stride"] = args.separation_output_stride
        model = model_class(args.model).from_pretrained(args.model_name_or_path, **overrides)
        config = model.config
        apply_pose_frames(args, config, checkpoint=args.model_name_or_path)
        if args.separation_timeline_maps and not getattr(config, "separation_timeline_maps", False):
            raise ValueError(
                f"--separation_timeline_maps changes the pose timeline's inputs: {args.model_name_or_path} was trained "
                "without it; train from scratch (without --model_name_or_path) to use it."
            )
    else:
        if args.mask_type is not None:
            config.mask_type = args.mask_type
        if args.mask_activation is not None:
            config.mask_activation = args.mask_activation
        if args.separation_class_conditioning and isinstance(config, TriBertConfig):
            config.separation_class_conditioning = True
        if args.separation_condition_maps and isinstance(config, TriBertConfig):
            config.separation_condition_maps = args.separation_condition_maps
        if args.separation_conditioning is not None and isinstance(config, TriBertConfig):
            config.separation_conditioning = args.separation_conditioning
        if args.separation_output_stride is not None:
            config.separation_output_stride = args.separation_output_stride
            config._check_architecture()
        apply_pose_frames(args, config)
        if args.separation_timeline_maps:
            if not isinstance(config, TriBertConfig):
                raise ValueError(
                    f"--separation_timeline_maps is an option of TriBERT models, not of --model {args.model}."
                )
            config.separation_timeline_maps = True
            config._check_architecture()  # it needs the temporal conditioning and condition maps: say so now
        model = model_class(args.model)(config)
        load_vision_backbone_weights(args, model)
    if args.freeze_vision_backbone:
        model.freeze_vision_backbone()
    check_class_teacher_forcing(args, config)
    if args.mask_type is not None and config.mask_type != args.mask_type:
        raise ValueError(f"--mask_type {args.mask_type} differs from the checkpoint's mask_type {config.mask_type!r}.")
    if args.mask_activation is not None and config.mask_activation != args.mask_activation:
        raise ValueError(
            f"--mask_activation {args.mask_activation} differs from the checkpoint's mask_activation "
            f"{config.mask_activation!r}."
        )
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    num_bins = config.audio_config.num_frequency_bins if isinstance(config, TriBertConfig) else config.num_frequency_bins
    fe = TriBertFeatureExtractor(num_frequency_bins=num_bins)
    processor = TriBertProcessor(
        fe, TriBertVideoProcessor(**processor_settings.get("video", {})),
        num_pose_frames=pose_frames(config, processor_settings),
    )  # fmt: skip

    with accelerator.main_process_first():
        root, dataset = load_data(args)
        processor.video_processor.frame_rate = dataset_frame_rate(dataset["train"])  # saved with the model
        label2id = TriBertConfig().label2id if not isinstance(config, TriBertConfig) else config.label2id
        # the training crops in the run's folder (a resumed run loads them), the validation clips in memory
        cache = os.path.join(args.output_dir, FEATURE_CACHE, "train.arrow")
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        train = featurize(root, dataset["train"], processor, "random", args.seed, args.crops_per_clip, args.num_proc, label2id, cache_file_name=cache)
        val = featurize(root, dataset["val"], processor, "center", 0, 1, args.num_proc, label2id, keep_in_memory=True)

    gain_range = tuple(float(v) for v in args.gain_range.split(",")) if args.gain_range else None
    if gain_range is not None and len(gain_range) != 2:
        raise ValueError(f"--gain_range takes LOW,HIGH, got {args.gain_range!r}.")
    collate = MixAndSeparateCollator(fe, num_mix=args.num_mix, mask_type=config.mask_type, gain_range=gain_range, seed=args.seed)
    val_collate = MixAndSeparateCollator(fe, num_mix=args.num_mix, mask_type=config.mask_type)
    # a generator of the loader's own: without one, each new iterator draws its base seed from the global RNG, and
    # a resumed run (which restores that RNG, then makes a new iterator) would shift the dropout draws
    generator = torch.Generator().manual_seed(args.seed)
    if args.same_class_mixtures > 0:  # rows are clip r % len(split) (`featurize`)
        clips = len(dataset["train"])
        labels = [frozenset(row) for row in dataset["train"]["labels"]]
        sampler = MixtureBatchSampler(
            [labels[r % clips] for r in range(len(train))], args.mixtures_per_batch, args.num_mix,
            args.same_class_mixtures, args.seed, clip_ids=[r % clips for r in range(len(train))],
        )  # fmt: skip
        train_loader = torch.utils.data.DataLoader(train, batch_sampler=sampler, collate_fn=collate, generator=generator)
    else:
        train_loader = torch.utils.data.DataLoader(
            train, batch_size=args.mixtures_per_batch * args.num_mix, shuffle=True, drop_last=True,
            collate_fn=collate, generator=generator,
        )  # fmt: skip
    val_loader = torch.utils.data.DataLoader(val, batch_size=2 * args.num_mix, drop_last=True, collate_fn=val_collate)
    if len(train_loader) == 0:
        raise ValueError(f"Not enough training clips for one batch of {args.mixtures_per_batch * args.num_mix}.")

    # fused: one kernel for all parameters (5x faster than the per-parameter default on CPU, measured)
    groups = parameter_groups(model, args.learning_rate, args.separation_learning_rate)
    optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, weight_decay=args.weight_decay, fused=True)
    # accelerate steps a prepared scheduler once per process and optimizer step: count the steps of all processes
    total_steps = args.max_steps * accelerator.num_processes
    if args.lr_scheduler_type == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[group["lr"] for group in groups], total_steps=total_steps, pct_start=max(args.warmup_ratio, 1e-3)
        )
    else:
        scheduler = get_scheduler(
            args.lr_scheduler_type, optimizer, num_warmup_steps=int(args.warmup_ratio * total_steps), num_training_steps=total_steps
        )
    accelerator.register_for_checkpointing(collate)  # the gain generator: a resumed run draws the same gains
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, val_loader, scheduler)

    step = 0
    if args.resume:
        path, step = latest_checkpoint(args.output_dir)
        if path:
            accelerator.load_state(path)
            accelerator.print(f"Resumed from {path} (step {step}).")
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers("tribert_separation", config={k: v for k, v in asdict(args).items() if isinstance(v, (int, float, str, bool))})

    from tqdm.auto import tqdm

    progress = tqdm(total=args.max_steps, initial=step, disable=not accelerator.is_local_main_process, desc="train")
    best_sdr, history, logs = -math.inf, [], {}
    best_file = os.path.join(args.output_dir, "best_metrics.json")
    if os.path.isfile(best_file):
        best_sdr = json.load(open(best_file))["sdr"]
    history_file = os.path.join(args.output_dir, "eval_history.json")
    if args.resume and os.path.isfile(history_file):
        history = [row for row in json.load(open(history_file)) if row["step"] <= step]
    log_file = os.path.join(args.output_dir, "train_log.jsonl")
    if accelerator.is_main_process and args.resume and os.path.isfile(log_file):  # drop what the resumed run redoes
        rows = [line for line in open(log_file) if line.strip() and json.loads(line)["step"] <= step]
        with open(log_file, "w") as f:
            f.writelines(rows)
    window = []
    model.train()
    batches_per_epoch = len(train_loader)
    mark = time.perf_counter()  # a step's seconds: from the end of the step before (its validation and saving excluded)
    while step < args.max_steps:
        epoch, offset = divmod(step * args.gradient_accumulation_steps, batches_per_epoch)
        train_loader.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, offset) if offset else train_loader
        for batch in loader:
            if args.class_teacher_forcing:
                accelerator.unwrap_model(model).class_teacher_forcing = class_teacher_forcing_at(step, args)
            with accelerator.accumulate(model):
                out = model(**{k: batch[k] for k in MODEL_INPUTS})
                loss = out.loss
                if args.waveform_loss_weight:
                    out["waveform_loss"] = waveform_loss(accelerator.unwrap_model(model), out, batch, fe)
                    loss = loss + args.waveform_loss_weight * out["waveform_loss"]
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            step += 1
            progress.update(1)
            logs = {name: value.item() for name, value in out.items() if name.endswith("loss")}
            if args.waveform_loss_weight:
                logs["model_loss"], logs["loss"] = logs["loss"], loss.item()
            logs["lr"] = scheduler.get_last_lr()[0]
            logs["step_seconds"] = time.perf_counter() - mark  # data, collator, forward, backward, optimizer
            progress.set_postfix(loss=f"{logs['loss']:.3f}")
            if args.report_to != "none":
                accelerator.log(logs, step=step)
            window.append(logs)
            if step % args.logging_steps == 0 and accelerator.is_main_process:
                mean = {k: sum(row[k] for row in window) / len(window) for k in logs}
                with open(log_file, "a") as f:
                    f.write(json.dumps({"step": step, **mean}) + "\n")
                window = []
            if step % args.eval_steps == 0 or step == args.max_steps:
                metrics = evaluate_separation_model(model, val_loader, fe, accelerator, args.max_eval_mixtures)
                if accelerator.is_main_process:
                    history.append({"step": step, **metrics})
                    with open(history_file, "w") as f:
                        json.dump(history, f, indent=2)
                    accelerator.print(
                        f"step {step}: SDR {metrics['sdr']:.2f} dB (mixture {metrics['sdr_mixture']:.2f}), "
                        f"SIR {metrics['sir']:.2f}, SAR {metrics['sar']:.2f}"
                    )
                    if args.report_to != "none":
                        accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=step)
                    if metrics["sdr"] > best_sdr:
                        best_sdr = metrics["sdr"]
                        accelerator.unwrap_model(model).save_pretrained(os.path.join(args.output_dir, "best"))
                        processor.save_pretrained(os.path.join(args.output_dir, "best"))
                        with open(best_file, "w") as f:
                            json.dump({"step": step, **metrics}, f, indent=2)
            if step % args.save_steps == 0 or step == args.max_steps:
                atomic_save_state(accelerator, args.output_dir, step, args.save_total_limit)
            mark = time.perf_counter()
            if step >= args.max_steps:
                break
            if args.stop_at_step is not None and step >= args.stop_at_step:
                accelerator.print(f"Stopping at step {step} (--stop_at_step); resume with --resume.")
                accelerator.end_training()
                return history
    progress.close()
    # Each process leaves a short record (which processes ran, how far, their last loss).
    os.makedirs(os.path.join(args.output_dir, "processes"), exist_ok=True)
    with open(os.path.join(args.output_dir, "processes", f"process-{accelerator.process_index}.json"), "w") as f:
        json.dump({"process_index": accelerator.process_index, "num_processes": accelerator.num_processes, "step": step, "last_loss": logs.get("loss")}, f)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if not args.keep_feature_cache:  # about 0.8 GB per 1000 crops of the small config; never pushed with the model
            shutil.rmtree(os.path.join(args.output_dir, FEATURE_CACHE), ignore_errors=True)
            accelerator.print(f"Removed the training crops' features ({FEATURE_CACHE}/; --keep_feature_cache keeps them).")
        accelerator.unwrap_model(model).save_pretrained(args.output_dir)
        processor.save_pretrained(args.output_dir)
        best = json.load(open(best_file)) if os.path.isfile(best_file) else None
        write_model_card(args.output_dir, asdict(args) | {"hub_token": None}, args.dataset, {k: len(v) for k, v in dataset.items()}, best, history, repo_id=repo_id)
        accelerator.print(f"Saved the model, processor and model card to {args.output_dir}")
        if repo_id:
            url = push_folder(args.output_dir, repo_id, token=args.hub_token, private=args.hub_private_repo)
            accelerator.print(f"Pushed {args.output_dir} to {url}")
    accelerator.end_training()
    return history



__all__ = [
    "OPERATIONAL_ARGS",
    "RUN_ARGS_FILE",
    "RUN_FILES",
    "RunArgumentsError",
    "SeparationTrainingArguments",
    "check_class_teacher_forcing",
    "check_output_dir",
    "class_teacher_forcing_at",
    "dataset_frame_rate",
    "parameter_groups",
    "main",
    "parse_args",
    "start_run",
    "train_separation",
    "use_vision_backbone",
]

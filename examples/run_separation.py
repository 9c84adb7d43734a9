"""Train TriBERT with the paper's joint objective (classification + mix-and-separate) with accelerate.

    accelerate launch examples/run_separation.py --dataset synthetic:small --model_size small --output_dir out/
    python examples/run_separation.py --dataset /path/to/prepared --output_dir out/ --model_size paper

`--dataset` is `synthetic:tiny`, `synthetic:small` (the built-in synthetic music dataset) or a folder written by
`tribert prepare`. Every `--eval_steps` the model separates the validation mixtures (pairs of clips, centre crops)
and SDR/SIR/SAR are measured with the fast BSS Eval, next to the mixture floor; the best model by SDR is kept in
`output_dir/best`. Checkpoints (`accelerator.save_state`) are written to a temporary folder and renamed into
`output_dir/checkpoints/step-N`; `--resume` continues from the latest one with the same data order.
"""

import json
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field

import torch
from transformers import HfArgumentParser, ResNetConfig, get_scheduler

from tribert_hf import TriBertConfig, TriBertFeatureExtractor, TriBertForPreTraining, TriBertProcessor, TriBertVideoProcessor
from tribert_hf.data import MixAndSeparateCollator, PreparedClipFeaturizer, load_prepared, load_synthetic_music
from tribert_hf.hub import push_folder, resolve_hub_model_id, write_model_card
from tribert_hf.metrics import SeparationMetrics
from tribert_hf.modeling_tribert import _activate_masks


@dataclass
class Arguments:
    dataset: str = field(default="synthetic:small", metadata={"help": "synthetic:tiny, synthetic:small or a prepared folder"})
    output_dir: str = field(default="outputs/separation", metadata={"help": "checkpoints, logs, the final model"})
    model_size: str = field(default="small", metadata={"help": "tiny (tests), small (CPU demo) or paper"})
    model: str = field(default="tribert", metadata={"help": "tribert (the paper's joint objective); ablations: tribert_no_pose (the pose stream sees no keypoints), tribert_self_attention (co-attention layers replaced by per-stream self-attention layers); baselines: audio_only (the same U-Net, no conditioning, permutation-invariant loss, scored with the best permutation), sop (Sound-of-Pixels: ResNet frame vector weights K U-Net channels)"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "start from this checkpoint (fine-tuning)"})
    num_mix: int = field(default=2, metadata={"help": "videos mixed per training example (N)"})
    crops_per_clip: int = field(default=4, metadata={"help": "random training crops featurized per clip"})
    mixtures_per_batch: int = field(default=4, metadata={"help": "mixtures per step per process (paper: 12)"})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate (paper: 1e-5; 1e-7 to fine-tune)"})
    weight_decay: float = field(default=1e-4)
    warmup_ratio: float = field(default=0.05, metadata={"help": "linear warm-up, then cosine decay"})
    max_steps: int = field(default=200, metadata={"help": "optimizer steps"})
    gradient_accumulation_steps: int = field(default=1)
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16"})
    gradient_checkpointing: bool = field(default=False)
    eval_steps: int = field(default=50, metadata={"help": "evaluate every this many steps"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every this many steps"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept"})
    max_eval_mixtures: int = field(default=32)
    logging_steps: int = field(default=10, metadata={"help": "append the mean training losses to output_dir/train_log.jsonl every this many steps"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in output_dir"})
    stop_at_step: int | None = field(default=None, metadata={"help": "exit after this step, as an interruption would (tests resume)"})
    report_to: str = field(default="tensorboard", metadata={"help": "an accelerate tracker name, or none"})
    seed: int = field(default=0)
    num_proc: int = field(default=1, metadata={"help": "processes for feature extraction (datasets.map)"})
    cache_dir: str | None = field(default=None, metadata={"help": "where synthetic datasets are generated (default ~/.cache/tribert_hf/synthetic)"})
    push_to_hub: bool = field(default=False, metadata={"help": "upload output_dir (model, processor, card) at the end"})
    hub_model_id: str | None = field(default=None, metadata={"help": "hub repository id; default: output_dir's name"})
    hub_token: str | None = field(default=None, metadata={"help": "hub token (default: the logged-in one)"})
    hub_private_repo: bool = field(default=False)


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


MODELS = ("tribert", "tribert_no_pose", "tribert_self_attention", "audio_only", "sop")


def build_config(model: str, size: str):
    """The config of `model` (see `Arguments.model`) at `size`, and the processor settings. Baselines share the
    TriBERT config's U-Net (and frame size), so that every method separates with the same U-Net budget."""
    from tribert_hf import AudioOnlySeparationConfig, SoundOfPixelsConfig

    if model not in MODELS:
        raise ValueError(f"Unknown --model {model!r}; use one of {', '.join(MODELS)}.")
    config, processor = model_config(size)
    unet = {k: getattr(config, k) for k in ("separation_base_channels", "separation_num_downs", "mask_type")}
    if model == "tribert_no_pose":
        config.use_pose_input = False
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


def predicted_masks(model, outputs):
    """Masks in the targets' order: TriBERT's masks, or the PIT baseline's outputs in their best permutation."""
    from tribert_hf import reorder_sources

    masks = outputs["masks"] if outputs.get("masks") is not None else _activate_masks(model.config, outputs["mask_logits"])
    if outputs.get("permutation") is not None:
        masks = reorder_sources(masks, outputs["permutation"])
    return masks


def load_data(args):
    if args.dataset.startswith("synthetic:"):
        return load_synthetic_music(args.dataset.split(":", 1)[1], cache_dir=getattr(args, "cache_dir", None))
    return args.dataset, load_prepared(args.dataset)


def featurize(root, split, processor, crop, seed, repeats, num_proc, label2id, return_waveform=True, columns=None):
    """Model inputs of every clip (`repeats` random crops each: row r is clip r % len(split)), torch-formatted."""
    featurizer = PreparedClipFeaturizer(root, processor, crop=crop, seed=seed, return_waveform=return_waveform, label2id=label2id)
    if repeats > 1:
        from datasets import concatenate_datasets

        split = concatenate_datasets([split] * repeats)  # crop i of a clip uses seed + its row index: all differ
    features = split.map(
        featurizer, batched=True, batch_size=8, with_indices=True, num_proc=num_proc if num_proc > 1 else None,
        remove_columns=split.column_names, features=featurizer.features, desc=f"features ({crop} crops)",
    )  # fmt: skip
    features.set_format("torch", columns=columns)
    return features


def atomic_save_state(accelerator, output_dir, step, limit):
    checkpoints = os.path.join(output_dir, "checkpoints")
    final, tmp = os.path.join(checkpoints, f"step-{step}"), os.path.join(checkpoints, f".tmp-step-{step}")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)  # a checkpoint appears under its final name only once complete
        steps = sorted(int(n.split("-")[1]) for n in os.listdir(checkpoints) if n.startswith("step-"))
        for old in steps[:-limit]:
            shutil.rmtree(os.path.join(checkpoints, f"step-{old}"), ignore_errors=True)
    accelerator.wait_for_everyone()


def latest_checkpoint(output_dir):
    checkpoints = os.path.join(output_dir, "checkpoints")
    steps = sorted(int(n.split("-")[1]) for n in os.listdir(checkpoints) if n.startswith("step-")) if os.path.isdir(checkpoints) else []
    return (os.path.join(checkpoints, f"step-{steps[-1]}"), steps[-1]) if steps else (None, 0)


MODEL_INPUTS = ("pixel_values", "pose_keypoints", "pose_mask", "audio_spectrogram", "class_labels", "labels", "loss_weight")


@torch.no_grad()
def evaluate(model, loader, feature_extractor, accelerator, max_mixtures, per_mixture=None):
    """Mean SDR/SIR/SAR (and the mixture floor) over the loader's mixtures, at most about `max_mixtures`. With a
    list as `per_mixture`, each batch's per-mixture result (`evaluate_separation`'s dict) is appended to it."""
    model.eval()
    metrics = SeparationMetrics(backend="fast")
    seen = 0
    for batch in loader:
        outputs = model(**{k: batch[k] for k in MODEL_INPUTS})  # labels: the PIT baseline's best permutation
        masks = predicted_masks(accelerator.unwrap_model(model), outputs)
        estimates = feature_extractor.masks_to_waveforms(masks, batch["mixture_stft"], batch["mixture_waveform"].shape[-1])
        mixture = batch["mixture_waveform"][:, None].expand_as(estimates)
        estimates, references, mixture = accelerator.gather_for_metrics((estimates, batch["source_waveforms"], mixture))
        if accelerator.is_main_process:
            result = metrics.update(references.cpu(), estimates.cpu(), mixture[:, 0].cpu())
            if per_mixture is not None:
                per_mixture.append(result)
        seen += estimates.shape[0]
        if seen >= max_mixtures:
            break
    model.train()
    return metrics.compute() if accelerator.is_main_process else None


def main(argv=None):
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    (args,) = HfArgumentParser(Arguments).parse_args_into_dataclasses(args=argv)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")),
        # the shuffle order of epoch e depends only on (seed, e): a resumed run sees the same batches
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(args.seed)
    os.makedirs(args.output_dir, exist_ok=True)
    repo_id = resolve_hub_model_id(args.output_dir, args.hub_model_id) if args.push_to_hub else None  # fail early

    config, processor_settings = build_config(args.model, args.model_size)
    if args.model_name_or_path:
        model = model_class(args.model).from_pretrained(args.model_name_or_path)
        config = model.config
    else:
        model = model_class(args.model)(config)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    num_bins = config.audio_config.num_frequency_bins if isinstance(config, TriBertConfig) else config.num_frequency_bins
    fe = TriBertFeatureExtractor(num_frequency_bins=num_bins)
    processor = TriBertProcessor(
        fe, TriBertVideoProcessor(**processor_settings.get("video", {})),
        num_pose_frames=processor_settings.get("num_pose_frames", TriBertConfig().pose_config.num_pose_frames),
    )  # fmt: skip

    with accelerator.main_process_first():
        root, dataset = load_data(args)
        label2id = TriBertConfig().label2id if not isinstance(config, TriBertConfig) else config.label2id
        train = featurize(root, dataset["train"], processor, "random", args.seed, args.crops_per_clip, args.num_proc, label2id)
        val = featurize(root, dataset["val"], processor, "center", 0, 1, args.num_proc, label2id)

    collate = MixAndSeparateCollator(fe, num_mix=args.num_mix, mask_type=config.mask_type)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = torch.utils.data.DataLoader(
        train, batch_size=args.mixtures_per_batch * args.num_mix, shuffle=True, drop_last=True,
        collate_fn=collate, generator=generator,
    )  # fmt: skip
    val_loader = torch.utils.data.DataLoader(val, batch_size=2 * args.num_mix, drop_last=True, collate_fn=collate)
    if len(train_loader) == 0:
        raise ValueError(f"Not enough training clips for one batch of {args.mixtures_per_batch * args.num_mix}.")

    # fused: one kernel for all parameters (5x faster than the per-parameter default on CPU, measured)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay, fused=True)
    scheduler = get_scheduler(
        "cosine", optimizer, num_warmup_steps=int(args.warmup_ratio * args.max_steps), num_training_steps=args.max_steps
    )
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
    while step < args.max_steps:
        epoch, offset = divmod(step * args.gradient_accumulation_steps, batches_per_epoch)
        train_loader.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, offset) if offset else train_loader
        for batch in loader:
            with accelerator.accumulate(model):
                out = model(**{k: batch[k] for k in MODEL_INPUTS})
                accelerator.backward(out.loss)
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
            logs["lr"] = scheduler.get_last_lr()[0]
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
                metrics = evaluate(model, val_loader, fe, accelerator, args.max_eval_mixtures)
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


if __name__ == "__main__":
    main(sys.argv[1:])

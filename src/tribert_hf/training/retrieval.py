"""Cross-modal retrieval with TriBERT's representations (paper Sec. 4.2, Table 3), with accelerate: the library behind
`examples/run_retrieval.py` (`main(argv)`, `RetrievalTrainingArguments`; `--method embedding` is in
`tribert_hf.training.retrieval_embedding`).

    python examples/run_retrieval.py --dataset synthetic:small --model_name_or_path outputs/separation --output_dir out/
    accelerate launch examples/run_retrieval.py --dataset /path/to/prepared --model_name_or_path ckpt/ --variants all

For each retrieval variant (audio -> vision, vision -> audio, audio -> pose, pose -> audio, vision + audio -> pose)
and each kind of embedding (the transformer's hidden states, or the stream embeddings before the transformer: the
paper's baseline) a `TriBertForRetrieval` head is trained as n-way multiple choice on the train split: the query
streams of a clip against the candidate stream of the same clip (the positive) and of n - 1 other clips
(distractors). On the evaluation split every query is then ranked against the candidates of every clip of the
split, and top-1/5/10 accuracy (%) is reported in the layout of the paper's Table 3.

The encoder comes from `--model_name_or_path` (a `TriBertForPreTraining` folder written by `run_separation.py`, or
any TriBERT checkpoint) and is kept frozen by default; without a checkpoint a randomly initialised model of
`--model_size` is used (a smoke test: its numbers measure random features).

Writes `output_dir/retrieval_results.json`, `output_dir/retrieval_table.md` and one folder per trained model,
`output_dir/<variant>-<embeddings>/` (`save_pretrained` + the processor).

`--method embedding` trains instead one `TriBertForContrastiveRetrieval` per kind of embedding: an embedding per
clip and modality (the other streams blank), projected into a shared space and trained with InfoNCE over batches of
clips on the frozen encoder's cached features (plus, with `--hard_negative_weight`, the paper's n-way choice
against the nearest negatives of the batch). It reports both protocols for the five variants: full-collection
recall@1/5/10 and median rank, and n-way multiple choice (top-1/5/10, n = `--eval_num_choices`) with random and
with nearest-neighbour (hard) distractors. The model goes to `output_dir/embedding-<embeddings>/`, ready for
`tribert index build`.
"""
import copy
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field

import torch
from transformers import HfArgumentParser, PretrainedConfig, get_scheduler

from .. import TriBertFeatureExtractor, TriBertForRetrieval, TriBertProcessor, TriBertVideoProcessor, compose_retrieval_pairs, retrieval_top_k
from ..configuration_tribert import RETRIEVAL_VARIANTS
from .presets import featurize as featurize_clips, load_data, model_config, remove_cache_files  # the same data and model sizes as pre-training


EMBEDDINGS = ("transformer", "pre_transformer")
EMBEDDING_NAMES = {"transformer": "transformer", "pre_transformer": "pre-transformer"}
TOP_K = (1, 5, 10)
INPUTS = ("pixel_values", "pose_keypoints", "pose_mask", "audio_spectrogram")
STREAMS = ("vision", "pose", "audio")


@dataclass
class RetrievalTrainingArguments:
    """The arguments of a retrieval run (`examples/run_retrieval.py --help`)."""


    dataset: str = field(default="synthetic:small", metadata={"help": "synthetic:tiny, synthetic:small or a prepared folder"})
    output_dir: str = field(default="outputs/retrieval", metadata={"help": "results (JSON, Markdown) and the trained models"})
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "a pre-trained TriBERT checkpoint (e.g. run_separation.py's output_dir): its encoder weights are loaded, the retrieval head is new"},
    )
    model_size: str = field(default="small", metadata={"help": "without a checkpoint: a random tiny, small or paper model (smoke tests only)"})
    variants: str = field(
        default="all",
        metadata={"help": f"comma-separated retrieval variants ({', '.join(RETRIEVAL_VARIANTS)}; 'audio->vision' style also works) or all"},
    )
    embeddings: str = field(default="both", metadata={"help": "transformer (after the encoder), pre_transformer (its input embeddings: the paper's baseline) or both"})
    num_choices: int | None = field(
        default=None, metadata={"help": "n of the n-way multiple choice in training (1 positive, n - 1 distractors); default: the paper's n (4 for vision+audio -> pose, 3 otherwise)"}
    )
    freeze_encoder: bool = field(default=True, metadata={"help": "train only the retrieval head on the fixed pre-trained representations (as the paper); --freeze_encoder false fine-tunes the encoder too"})
    retrieval_hidden_size: int | None = field(default=None, metadata={"help": "projection size of query and candidate; default: the config's (1024)"})
    learning_rate: float = field(default=2e-5, metadata={"help": "Adam learning rate (paper: 2e-5)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (paper: Adam, i.e. 0)"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "linear warm-up fraction of max_steps"})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "a transformers scheduler name (constant, linear, cosine, ...)"})
    max_steps: int = field(default=200, metadata={"help": "optimizer steps per (variant, embeddings) (paper: 750 epochs)"})
    queries_per_batch: int = field(default=16, metadata={"help": "queries (each with n choices) per step per process (paper: 64)"})
    max_train_clips: int | None = field(default=None, metadata={"help": "use only the first N training clips (quick runs; with N = n and queries_per_batch = N every step sees the same pairs)"})
    crops_per_clip: int = field(default=1, metadata={"help": "random training crops featurized per clip (query and positive share the crop)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16"})
    eval_split: str = field(default="val", metadata={"help": "split whose clips are ranked (paper: the test split)"})
    max_eval_clips: int | None = field(default=None, metadata={"help": "use only the first N clips of the eval split (queries = candidates = N)"})
    eval_batch_size: int = field(default=32, metadata={"help": "(query, candidate) pairs per forward pass in evaluation"})
    report_to: str = field(default="none", metadata={"help": "an accelerate tracker name (tensorboard, wandb, ...) or none"})
    seed: int = field(default=0, metadata={"help": "seed of the heads' initialisation, the data order and the distractors"})
    num_proc: int = field(default=1, metadata={"help": "processes for feature extraction (datasets.map)"})
    keep_feature_cache: bool = field(default=False, metadata={"help": "keep the training crops' features that datasets caches next to the dataset (a file per seed and crop count); by default a finished run removes them"})
    method: str = field(
        default="joint",
        metadata={"help": "joint: TriBertForRetrieval, query and candidate encoded together (n-way heads, one per variant); embedding: TriBertForContrastiveRetrieval, one embedding per clip and modality (an index), trained with InfoNCE, queries_per_batch clips per step"},
    )
    hard_negative_weight: float = field(default=0.0, metadata={"help": "--method embedding: weight of the n-way multiple choice against the n - 1 nearest negatives of the batch (n = --num_choices or the paper's), added to InfoNCE"})
    eval_num_choices: int = field(default=10, metadata={"help": "--method embedding: n of the n-way multiple-choice evaluation (the right clip + n - 1 random or nearest-neighbour distractors)"})


# ---------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------


def variant_name(variant: str) -> str:
    """The paper's name of a variant: "Audio → Vision", "Vision + Audio → Pose"."""
    query, candidate, _ = RETRIEVAL_VARIANTS[variant]
    return " + ".join(s.capitalize() for s in query) + " → " + candidate.capitalize()


def parse_variants(text: str) -> list[str]:
    """`all`, or a comma-separated list of `RETRIEVAL_VARIANTS` keys ("audio->vision" and "vision+audio->pose" work
    too); in the paper's order."""
    if text.strip().lower() == "all":
        return list(RETRIEVAL_VARIANTS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    keys = [n.lower().replace(" ", "").replace("→", "_to_").replace("->", "_to_").replace("+", "_") for n in names]
    unknown = [n for n, k in zip(names, keys) if k not in RETRIEVAL_VARIANTS]
    if unknown or not names:
        raise ValueError(f"Unknown retrieval variant(s) {unknown or [text]}: use 'all' or a comma-separated list of {list(RETRIEVAL_VARIANTS)}.")
    return [v for v in RETRIEVAL_VARIANTS if v in keys]


def parse_embeddings(text: str) -> list[str]:
    key = text.strip().lower().replace("-", "_")
    if key == "both":
        return list(EMBEDDINGS)
    if key not in EMBEDDINGS:
        raise ValueError(f"--embeddings must be transformer, pre_transformer or both, got {text!r}.")
    return [key]


def check_arguments(args) -> tuple[list[str], list[str]]:
    variants, embeddings = parse_variants(args.variants), parse_embeddings(args.embeddings)
    if args.num_choices is not None and args.num_choices < 2:
        raise ValueError(f"--num_choices must be at least 2 (one positive, one distractor), got {args.num_choices}.")
    for name in ("max_steps", "queries_per_batch", "crops_per_clip", "eval_batch_size", "max_train_clips", "max_eval_clips"):
        if getattr(args, name) is None:
            continue
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}.")
    if args.method not in ("joint", "embedding"):
        raise ValueError(f"--method must be joint or embedding, got {args.method!r}.")
    if args.eval_num_choices < 2:
        raise ValueError(f"--eval_num_choices must be at least 2, got {args.eval_num_choices}.")
    if args.model_name_or_path is None and args.model_size not in ("tiny", "small", "paper"):
        raise ValueError(f"--model_size must be tiny, small or paper, got {args.model_size!r}.")
    return variants, embeddings


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------


def check_checkpoint(path: str) -> dict:
    """The config dict of a TriBERT checkpoint, or a clear error for anything else."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--model_name_or_path {path!r} is a file; give the folder written by save_pretrained.")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"--model_name_or_path {path!r} is not a model folder (it has no config.json).")
    try:
        config, _ = PretrainedConfig.get_config_dict(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read a model config from --model_name_or_path {path!r}: {error}") from error
    if config.get("model_type") != "tribert":
        raise ValueError(
            f"--model_name_or_path {path!r} is not a TriBERT checkpoint (model_type {config.get('model_type')!r}, "
            f"architectures {config.get('architectures')}); expected model_type 'tribert', e.g. run_separation.py's output."
        )
    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
    if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, name)) for name in weights):
        raise ValueError(f"--model_name_or_path {path!r} has a TriBERT config but no weights (none of {', '.join(weights)}).")
    return config


def load_retrieval_model(path: str, variant: str, embeddings: str, hidden_size: int | None = None, seed: int = 0, quiet: bool = True):
    """`TriBertForRetrieval` with the encoder (`tribert.*`) of a TriBERT checkpoint and a new, seeded head.

    `from_pretrained` matches the checkpoint's `tribert.*` weights (a `TriBertForPreTraining`,
    `TriBertForSourceSeparation` or `TriBertForRetrieval` folder; a bare `TriBertModel` folder has no prefix, which
    transformers adds) and initialises the missing head; the pre-training heads are ignored. A retrieval head in the
    checkpoint is replaced by a new one, so that every variant starts from the same point. Returns (model, report).
    """
    from transformers.utils import logging as hf_logging

    check_checkpoint(path)
    overrides = {"retrieval_variant": variant, "retrieval_embeddings": embeddings}
    if hidden_size is not None:
        overrides["retrieval_hidden_size"] = hidden_size
    verbosity = hf_logging.get_verbosity()
    if quiet:  # the load report lists every ignored pre-training head tensor; ours below is shorter
        hf_logging.set_verbosity_error()
    try:
        torch.manual_seed(seed)
        model, info = TriBertForRetrieval.from_pretrained(path, **overrides, output_loading_info=True, ignore_mismatched_sizes=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    encoder_keys = set(model.tribert.state_dict())
    not_loaded = set(info["missing_keys"]) | {k for k, *_ in info["mismatched_keys"]}
    missing = sorted(k for k in not_loaded if k.startswith("tribert.") or k in encoder_keys)
    if missing:
        raise ValueError(f"{path!r} lacks TriBERT encoder weights ({len(missing)} missing or of another shape, e.g. {missing[:3]}): is it a checkpoint of this config?")
    head = [k for k in model.state_dict() if not k.startswith("tribert.")]
    loaded_head = sorted(set(head) - not_loaded)
    if loaded_head:  # a retrieval checkpoint: start from a fresh head all the same
        encoder = model.tribert.state_dict()
        torch.manual_seed(seed)
        model = TriBertForRetrieval(model.config)
        model.tribert.load_state_dict(encoder)
    report = {"encoder_tensors": len(encoder_keys), "new_head_tensors": len(head), "ignored_tensors": len(info["unexpected_keys"]), "replaced_head": bool(loaded_head)}
    return model, report


def build_processor(config, path: str | None, settings: dict | None = None):
    """The checkpoint's processor when it has one; otherwise one matching the config (`model_config`'s settings)."""
    if path and os.path.isdir(path) and os.path.isfile(os.path.join(path, "processor_config.json")):
        return TriBertProcessor.from_pretrained(path)
    if settings is None:
        image = config.vision_config.image_size
        settings = {"video": {"size": {"shortest_edge": image}, "crop_size": {"height": image, "width": image}}}
    fe = TriBertFeatureExtractor(num_frequency_bins=config.audio_config.num_frequency_bins)
    video = TriBertVideoProcessor(**settings.get("video", {}))
    return TriBertProcessor(fe, video, num_pose_frames=settings.get("num_pose_frames", config.pose_config.num_pose_frames))


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


def featurize(root, split, processor, crop, seed, repeats, num_proc, label2id, keep_in_memory=False):
    """Model inputs of every clip (the separation recipe's featurization, without waveforms)."""
    return featurize_clips(
        root, split, processor, crop, seed, repeats, num_proc, label2id, return_waveform=False, columns=list(INPUTS), keep_in_memory=keep_in_memory
    )  # fmt: skip


class RetrievalPairCollator:
    """Query rows -> n-way multiple-choice batches: each query's streams against the candidate stream of its own
    crop (the positive, at a random position) and of n - 1 distinct other clips (a random crop of each)."""

    def __init__(self, features, num_clips: int, variant: str, num_choices: int, seed: int):
        self.features, self.num_clips, self.variant, self.n = features, num_clips, variant, num_choices
        self.crops = len(features) // num_clips
        self.generator = torch.Generator().manual_seed(seed)
        if num_choices > num_clips:
            raise ValueError(f"{num_choices}-way choice needs at least {num_choices} training clips, the split has {num_clips}.")

    def __call__(self, rows: list[int]) -> dict:
        g, n = self.generator, self.n
        choices, labels = [], []
        for row in rows:
            clip = row % self.num_clips
            others = torch.randperm(self.num_clips - 1, generator=g)[: n - 1]
            others = others + (others >= clip).long()  # skip the query's own clip
            negatives = (others + self.num_clips * torch.randint(self.crops, (n - 1,), generator=g)).tolist()
            label = int(torch.randint(n, (1,), generator=g))
            choices.append(negatives[:label] + [row] + negatives[label:])
            labels.append(label)
        needed = sorted({r for c in choices for r in c} | set(rows))
        data = self.features[needed]
        position = {r: i for i, r in enumerate(needed)}
        pairs = []
        for row, choice in zip(rows, choices):
            query = {k: data[k][position[row]] for k in INPUTS}
            candidates = {k: data[k][[position[r] for r in choice]] for k in INPUTS}
            pairs.append(compose_retrieval_pairs(self.variant, query, candidates))
        batch = {k: torch.stack([p[k] for p in pairs]) for k in INPUTS}
        batch["labels"] = torch.tensor(labels)
        return batch


# ---------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------


def top_k_accuracy(scores: torch.Tensor, targets: torch.Tensor, ks=TOP_K) -> dict[str, float]:
    """Top-k accuracy (%) of a `(queries, pool)` score matrix, ties broken at random in expectation
    (`tribert_hf.retrieval_top_k` x 100)."""
    return {k: 100 * v for k, v in retrieval_top_k(scores, targets, ks).items()}


def random_top_k(pool_size: int, ks=TOP_K) -> dict[str, float]:
    return {f"top{k}": 100.0 * min(k, pool_size) / pool_size for k in ks}


@torch.no_grad()
def score_matrix(model, pool: dict, accelerator, batch_size: int) -> torch.Tensor:
    """`(queries, candidates)` scores: every clip of the pool as a query against every clip as a candidate."""
    model.eval()
    size = pool["pixel_values"].shape[0]
    scores = torch.zeros(size, size, device=accelerator.device)
    with accelerator.autocast():
        for i in range(accelerator.process_index, size, accelerator.num_processes):  # each row on one process
            scores[i] = model.score_pool({k: v[i] for k, v in pool.items()}, pool, batch_size=batch_size).float()
    return accelerator.reduce(scores, reduction="sum").cpu()


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------


def new_model(args, config, variant, embeddings):
    """A retrieval model for one table cell: the checkpoint's encoder, or a random one (the same for every cell)."""
    if args.model_name_or_path:
        model, report = load_retrieval_model(args.model_name_or_path, variant, embeddings, args.retrieval_hidden_size, args.seed)
    else:
        config = copy.deepcopy(config)
        config.retrieval_variant, config.retrieval_embeddings = variant, embeddings
        if args.retrieval_hidden_size:
            config.retrieval_hidden_size = args.retrieval_hidden_size
        torch.manual_seed(args.seed)
        model = TriBertForRetrieval(config)
        report = None
    if args.freeze_encoder:
        model.freeze_encoder()
    return model, report


def set_train_mode(model, freeze):
    model.train()
    if freeze:  # fixed features: no dropout, no token masking, no BatchNorm statistics updates in the encoder
        model.tribert.eval()


def train_and_evaluate(args, accelerator, config, processor, variant, embeddings, train, num_clips, pool):
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    set_seed(args.seed)
    model, report = new_model(args, config, variant, embeddings)
    n = args.num_choices or RETRIEVAL_VARIANTS[variant][2]
    collate = RetrievalPairCollator(train, num_clips, variant, n, seed=args.seed + accelerator.process_index)
    loader = torch.utils.data.DataLoader(
        range(len(train)), batch_size=args.queries_per_batch, shuffle=True, drop_last=len(train) >= args.queries_per_batch,
        collate_fn=collate, generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=args.learning_rate, weight_decay=args.weight_decay, fused=True)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=int(args.warmup_ratio * args.max_steps), num_training_steps=args.max_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    unwrapped = accelerator.unwrap_model(model)

    tag = f"{variant}-{embeddings}"
    losses, step, epoch, start = [], 0, 0, time.perf_counter()
    progress = tqdm(total=args.max_steps, disable=not accelerator.is_local_main_process, desc=f"train {tag}")
    set_train_mode(unwrapped, args.freeze_encoder)
    while step < args.max_steps:
        loader.set_epoch(epoch)
        for batch in loader:
            with accelerator.autocast():
                loss = model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(parameters, args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            losses.append(accelerator.reduce(loss.detach(), reduction="mean").item())
            progress.update(1)
            progress.set_postfix(loss=f"{losses[-1]:.3f}")
            if args.report_to != "none":
                accelerator.log({f"{tag}/loss": losses[-1], f"{tag}/lr": scheduler.get_last_lr()[0]}, step=step)
            if step >= args.max_steps:
                break
        epoch += 1
    progress.close()
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    scores = score_matrix(unwrapped, pool, accelerator, args.eval_batch_size)
    accuracy = top_k_accuracy(scores, torch.arange(scores.shape[0]))
    eval_seconds = time.perf_counter() - start
    if args.report_to != "none":
        accelerator.log({f"{tag}/eval_{k}": v for k, v in accuracy.items()}, step=step)

    folder = os.path.join(args.output_dir, tag)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tmp = os.path.join(args.output_dir, f".tmp-{tag}")
        shutil.rmtree(tmp, ignore_errors=True)
        unwrapped.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)  # the folder appears under its name only once complete
    accelerator.wait_for_everyone()
    head = sum(p.numel() for name, p in unwrapped.named_parameters() if not name.startswith("tribert."))
    accelerator.print(
        f"{variant_name(variant)} ({EMBEDDING_NAMES[embeddings]}): "
        + ", ".join(f"top-{k} {accuracy[f'top{k}']:.2f}" for k in TOP_K)
        + f"  | training loss {losses[0]:.3f} (step 1) -> {losses[-1]:.3f} (step {step})"
    )
    return {
        "variant": variant, "name": variant_name(variant), "embeddings": embeddings, "num_choices": n, **accuracy,
        "num_steps": step, "train_losses": losses, "head_parameters": head, "checkpoint_load": report,
        "train_seconds": round(train_seconds, 2), "eval_seconds": round(eval_seconds, 2), "saved_to": folder,
        "scores": scores.tolist() if scores.shape[0] <= 64 else None,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------


def markdown_table(results: dict) -> str:
    """The paper's Table 3 layout: a row per variant, top-1/5/10 with transformer and pre-transformer embeddings."""
    pool, random = results["num_candidates"], results["random"]
    cells = {(r["variant"], r["embeddings"]): r for r in results["results"]}
    header = ["Retrieval variant"]
    for k in TOP_K:
        header += [f"Top-{k} transformer", f"Top-{k} pre-transformer"]
    lines = [
        "# Cross-modal retrieval (TriBERT, paper Table 3 layout)",
        "",
        f"Dataset `{results['dataset']}`, split `{results['eval_split']}`: {results['num_queries']} queries, each ranked "
        f"against **{pool} candidates** (every clip of the split; the right one is the query's own clip). Top-k "
        f"accuracy in %; with k >= {pool} it is 100 by definition. Encoder: {results['encoder']}. "
        f"Trained {results['max_steps']} steps of {results['queries_per_step']} queries per cell on "
        f"{results['num_train_clips']} training clips.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for variant in results["variants"]:
        row = [variant_name(variant)]
        for k in TOP_K:
            for embeddings in EMBEDDINGS:
                cell = cells.get((variant, embeddings))
                row.append(f"{cell[f'top{k}']:.2f}" if cell else "–")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("| Random selection | " + " | ".join(f"{random[f'top{k}']:.2f}" for k in TOP_K for _ in EMBEDDINGS) + " |")
    return "\n".join(lines) + "\n"


def atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None) -> dict:
    """`examples/run_retrieval.py`: parse `argv` (None: the command line), train and evaluate; returns the results
    (what `retrieval_results.json` holds)."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration, set_seed

    (args,) = HfArgumentParser(RetrievalTrainingArguments).parse_args_into_dataclasses(args=argv)
    variants, embeddings = check_arguments(args)  # fail before any work
    if args.model_name_or_path:
        check_checkpoint(args.model_name_or_path)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        # a fine-tuned encoder computes poolers (and the blank stream) that the retrieval loss does not use
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=not args.freeze_encoder)],
    )
    set_seed(args.seed)
    os.makedirs(args.output_dir, exist_ok=True)

    if args.model_name_or_path:
        config = TriBertForRetrieval.config_class.from_pretrained(args.model_name_or_path)
        processor = build_processor(config, args.model_name_or_path)
        encoder = f"`{args.model_name_or_path}` ({'frozen' if args.freeze_encoder else 'fine-tuned'})"
    else:
        config, settings = model_config(args.model_size)
        processor = build_processor(config, None, settings)
        encoder = f"randomly initialised `{args.model_size}` model ({'frozen' if args.freeze_encoder else 'trained'}; no pre-training)"

    with accelerator.main_process_first():
        root, dataset = load_data(args)
        if args.eval_split not in dataset:
            raise ValueError(f"--eval_split {args.eval_split!r} is not a split of {args.dataset} ({list(dataset)}).")
        train = dataset["train"]
        if args.max_train_clips:
            train = train.select(range(min(args.max_train_clips, len(train))))
        num_clips = len(train)
        train = featurize(root, train, processor, "random", args.seed, args.crops_per_clip, args.num_proc, config.label2id)
        evaluation = dataset[args.eval_split]
        if args.max_eval_clips:
            evaluation = evaluation.select(range(min(args.max_eval_clips, len(evaluation))))
        evaluation = featurize(root, evaluation, processor, "center", 0, 1, args.num_proc, config.label2id, keep_in_memory=True)
    pool = evaluation[:]
    if pool["pixel_values"].shape[0] < 2:
        raise ValueError(f"The {args.eval_split} split needs at least 2 clips to rank.")
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers("tribert_retrieval", config={k: v for k, v in asdict(args).items() if isinstance(v, (int, float, str, bool))})

    pool_size = pool["pixel_values"].shape[0]
    if args.method == "embedding":
        from .retrieval_embedding import run_embedding_method

        results = run_embedding_method(args, accelerator, config, processor, variants, embeddings, train, num_clips, pool, encoder)
        remove_feature_cache(args, accelerator, train)
        return results
    accelerator.print(f"{len(variants)} variant(s) x {len(embeddings)} embedding(s); {num_clips} training clips, {pool_size} {args.eval_split} clips to rank.")
    results = {
        "dataset": args.dataset, "eval_split": args.eval_split, "num_train_clips": num_clips, "num_queries": pool_size,
        "num_candidates": pool_size, "encoder": encoder, "max_steps": args.max_steps, "num_processes": accelerator.num_processes,
        "queries_per_step": args.queries_per_batch * accelerator.num_processes, "variants": variants,
        "embeddings": embeddings, "random": random_top_k(pool_size), "args": asdict(args), "results": [],
    }  # fmt: skip
    for variant in variants:
        for kind in embeddings:
            results["results"].append(train_and_evaluate(args, accelerator, config, processor, variant, kind, train, num_clips, pool))
            accelerator.free_memory()
    table = markdown_table(results)
    if accelerator.is_main_process:
        atomic_write(os.path.join(args.output_dir, "retrieval_results.json"), json.dumps(results, indent=2, ensure_ascii=False))
        atomic_write(os.path.join(args.output_dir, "retrieval_table.md"), table)
        accelerator.print("\n" + table)
        accelerator.print(f"Saved retrieval_results.json, retrieval_table.md and the models to {args.output_dir}")
    remove_feature_cache(args, accelerator, train)
    accelerator.end_training()
    return results


def remove_feature_cache(args, accelerator, train) -> None:
    """A finished run's training crops leave no cache file beside the dataset (each seed's crops are a new one)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and not args.keep_feature_cache and remove_cache_files(train):
        accelerator.print("Removed the training crops' feature cache (--keep_feature_cache keeps it).")



__all__ = [
    "EMBEDDINGS",
    "RetrievalPairCollator",
    "RetrievalTrainingArguments",
    "build_processor",
    "check_arguments",
    "check_checkpoint",
    "load_retrieval_model",
    "main",
    "markdown_table",
    "random_top_k",
    "top_k_accuracy",
    "train_and_evaluate",
    "variant_name",
]

"""`examples/run_retrieval.py --method embedding`: one `TriBertForContrastiveRetrieval` per kind of embedding (an
embedding per clip and modality, projected into a shared space, trained with InfoNCE on the frozen encoder's
cached features), scored with both protocols: full-collection recall@1/5/10 and median rank, and n-way multiple
choice with random and nearest-neighbour (hard) distractors."""

import copy
import json
import os
import shutil
import time
from dataclasses import asdict

import torch
from transformers import get_scheduler

from .. import TriBertForContrastiveRetrieval, contrastive_embedding_query
from ..configuration_tribert import RETRIEVAL_VARIANTS
from .retrieval import EMBEDDING_NAMES, INPUTS, STREAMS, TOP_K, atomic_write, variant_name


# ---------------------------------------------------------------------------------------------------------------
# --method embedding: one embedding per clip and modality, trained contrastively; both evaluation protocols
# ---------------------------------------------------------------------------------------------------------------


def new_contrastive_model(args, config, embeddings):
    """`TriBertForContrastiveRetrieval` with the checkpoint's encoder (or a random one) and new, seeded projections."""
    overrides = {"retrieval_embeddings": embeddings}
    if args.retrieval_hidden_size:
        overrides["retrieval_hidden_size"] = args.retrieval_hidden_size
    report = None
    if args.model_name_or_path:
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            torch.manual_seed(args.seed)
            model, info = TriBertForContrastiveRetrieval.from_pretrained(args.model_name_or_path, **overrides, output_loading_info=True, ignore_mismatched_sizes=True)
        finally:
            hf_logging.set_verbosity(verbosity)
        missing = sorted(k for k in set(info["missing_keys"]) | {k for k, *_ in info["mismatched_keys"]} if k.startswith("tribert."))
        if missing:
            raise ValueError(f"{args.model_name_or_path!r} lacks TriBERT encoder weights ({len(missing)}, e.g. {missing[:3]}): is it a checkpoint of this config?")
        head = [k for k in model.state_dict() if not k.startswith("tribert.")]
        if set(head) - set(info["missing_keys"]):  # a contrastive checkpoint: start from new projections all the same
            encoder = model.tribert.state_dict()
            torch.manual_seed(args.seed)
            model = TriBertForContrastiveRetrieval(model.config)
            model.tribert.load_state_dict(encoder)
        report = {"encoder_tensors": len(model.tribert.state_dict()), "ignored_tensors": len(info["unexpected_keys"])}
    else:
        config = copy.deepcopy(config)
        for key, value in overrides.items():
            setattr(config, key, value)
        torch.manual_seed(args.seed)
        model = TriBertForContrastiveRetrieval(config)
    model.freeze_encoder()  # the projections learn on fixed features (cached once below)
    return model, report


@torch.no_grad()
def encoder_features(model, features, batch_size: int, device) -> dict[str, torch.Tensor]:
    """The frozen encoder's flattened tokens of every row, per modality: `{stream: (rows, tokens * hidden)}`."""
    model.eval()
    size = len(features) if not isinstance(features, dict) else features["pixel_values"].shape[0]
    out = {s: [] for s in STREAMS}
    for start in range(0, size, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in features.items()} if isinstance(features, dict) else features[start : start + batch_size]
        batch = {k: batch[k].to(device) for k in INPUTS}
        for stream in STREAMS:
            out[stream].append(model.encode_modality(stream, **batch)[0].float().cpu())
    return {s: torch.cat(v) for s, v in out.items()}


def embedding_tables(pool_embeds: dict, variants, args) -> dict:
    """Both protocols for every variant from normalised pool embeddings: full-collection recall@1/5/10 and median
    rank, and n-way multiple choice (top-1/5/10) with random and with nearest-neighbour distractors."""
    from ..retrieval_index import choice_sets, collection_metrics, multiple_choice_metrics

    rows = {}
    size = next(iter(pool_embeds.values())).shape[0]
    n = min(args.eval_num_choices, size)
    for variant in variants:
        query = contrastive_embedding_query(variant, {k: v for k, v in pool_embeds.items()})
        target = pool_embeds[RETRIEVAL_VARIANTS[variant][1]]
        scores = query @ target.t()
        row = {"collection": collection_metrics(scores, TOP_K), "num_choices": n}
        for kind in ("random", "hard"):
            choices = choice_sets(target.numpy(), n, kind, seed=args.seed)
            row[f"choice_{kind}"] = multiple_choice_metrics(scores, choices, TOP_K)
        rows[variant] = row
    return rows


def train_contrastive(args, accelerator, config, embeddings, train, num_clips, pool):
    """Projections trained with InfoNCE over batches of `queries_per_batch` distinct clips (a random crop of each)
    on the frozen encoder's cached features; returns the model, its losses and the pool's normalised embeddings."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    set_seed(args.seed)
    device = accelerator.device
    model, report = new_contrastive_model(args, config, embeddings)
    model.to(device)
    start = time.perf_counter()
    cached = encoder_features(model, train, args.eval_batch_size, device)
    cache_seconds = time.perf_counter() - start
    crops = len(train) // num_clips
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=int(args.warmup_ratio * args.max_steps), num_training_steps=args.max_steps)
    batch = min(args.queries_per_batch, num_clips)
    if batch < 2:
        raise ValueError("Contrastive training needs at least 2 clips per batch (--queries_per_batch, training clips).")
    n = args.num_choices or 3
    generator = torch.Generator().manual_seed(args.seed)
    losses, order = [], torch.empty(0, dtype=torch.long)
    model.train()
    start = time.perf_counter()
    for step in tqdm(range(args.max_steps), disable=not accelerator.is_local_main_process, desc=f"train embedding-{embeddings}"):
        if len(order) < batch:  # an epoch: every clip once, in batches of distinct clips
            order = torch.randperm(num_clips, generator=generator)
        clips, order = order[:batch], order[batch:]
        rows = clips + num_clips * torch.randint(crops, (batch,), generator=generator)
        embeds = {s: model.projections[s](cached[s][rows].to(device)) for s in STREAMS}
        loss = model.contrastive_outputs(embeds, num_choices=n, hard_negative_weight=args.hard_negative_weight).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if args.report_to != "none":
            accelerator.log({f"embedding-{embeddings}/loss": losses[-1], f"embedding-{embeddings}/logit_scale": model.logit_scale.item()}, step=step + 1)
    train_seconds = time.perf_counter() - start
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        pool_features = encoder_features(model, pool, args.eval_batch_size, device)
        pool_embeds = {s: torch.nn.functional.normalize(model.projections[s](pool_features[s].to(device)), dim=-1).cpu() for s in STREAMS}
    embed_seconds = time.perf_counter() - start
    timings = {"cache_train_features_seconds": round(cache_seconds, 2), "train_seconds": round(train_seconds, 2), "embed_pool_seconds": round(embed_seconds, 2)}
    return model, report, losses, pool_embeds, timings


def embedding_markdown(results: dict) -> str:
    lines = [
        "# Cross-modal retrieval with one embedding per clip (TriBERT encoder + contrastive projections)",
        "",
        f"Dataset `{results['dataset']}`, split `{results['eval_split']}`: {results['num_queries']} queries. Encoder: "
        f"{results['encoder']}. Projections trained {results['max_steps']} steps of {results['clips_per_step']} clips "
        f"(InfoNCE{' + hard n-way choice' if results['args']['hard_negative_weight'] else ''}) on "
        f"{results['num_train_clips']} training clips. In %; median rank 1 is perfect.",
    ]
    for cell in results["results"]:
        n, pool = cell["num_choices"], results["num_queries"]
        lines += [
            "",
            f"## {EMBEDDING_NAMES[cell['embeddings']]} embeddings",
            "",
            f"Full collection: every query ranked against **{pool} candidates** (random recall@k = k / {pool}, "
            f"median rank {(pool + 1) / 2:g}). Multiple choice: the right clip + {n - 1} distractors, random ones or "
            f"the {n - 1} nearest neighbours of the right clip (hard); random top-k = k / {n}.",
            "",
            "| Retrieval variant | R@1 | R@5 | R@10 | Median rank | MC random top-1 | top-5 | top-10 | MC hard top-1 | top-5 | top-10 |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for variant, row in cell["variants"].items():
            c, r, h = row["collection"], row["choice_random"], row["choice_hard"]
            values = [c[f"recall@{k}"] for k in TOP_K] + [c["median_rank"]] + [r[f"top-{k}"] for k in TOP_K] + [h[f"top-{k}"] for k in TOP_K]
            lines.append(f"| {variant_name(variant)} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
        random = [100 * min(k, pool) / pool for k in TOP_K] + [(pool + 1) / 2] + [100 * min(k, n) / n for k in TOP_K] * 2
        lines.append("| Random | " + " | ".join(f"{v:.2f}" for v in random) + " |")
    return "\n".join(lines) + "\n"


def run_embedding_method(args, accelerator, config, processor, variants, embeddings, train, num_clips, pool, encoder):
    if accelerator.num_processes > 1:
        raise ValueError("--method embedding trains on cached features in one process; run it without accelerate launch --multi_gpu.")
    pool_size = pool["pixel_values"].shape[0]
    accelerator.print(f"embedding method: {len(embeddings)} embedding(s); {num_clips} training clips, {pool_size} {args.eval_split} clips to rank.")
    results = {
        "method": "embedding", "dataset": args.dataset, "eval_split": args.eval_split, "num_train_clips": num_clips,
        "num_queries": pool_size, "encoder": encoder, "max_steps": args.max_steps,
        "clips_per_step": min(args.queries_per_batch, num_clips), "variants": variants, "embeddings": embeddings,
        "args": asdict(args), "results": [],
    }  # fmt: skip
    for kind in embeddings:
        model, report, losses, pool_embeds, timings = train_contrastive(args, accelerator, config, kind, train, num_clips, pool)
        rows = embedding_tables(pool_embeds, variants, args)
        if args.report_to != "none":
            accelerator.log({f"embedding-{kind}/{v}/{protocol}_{metric}": value for v, row in rows.items() for protocol in ("collection", "choice_random", "choice_hard")
                             for metric, value in row[protocol].items()}, step=len(losses))  # fmt: skip
        folder = os.path.join(args.output_dir, f"embedding-{kind}")
        tmp = os.path.join(args.output_dir, f".tmp-embedding-{kind}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        accelerator.print(f"{EMBEDDING_NAMES[kind]}: loss {losses[0]:.3f} (step 1) -> {losses[-1]:.3f} (step {len(losses)}); "
                          + ", ".join(f"{variant_name(v)} R@1 {r['collection']['recall@1']:.1f}" for v, r in rows.items()))  # fmt: skip
        results["results"].append({
            "embeddings": kind, "num_choices": min(args.eval_num_choices, pool_size), "variants": rows, "train_losses": losses,
            "checkpoint_load": report, **timings, "saved_to": folder,
            "head_parameters": sum(p.numel() for name, p in model.named_parameters() if not name.startswith("tribert.")),
        })  # fmt: skip
    table = embedding_markdown(results)
    atomic_write(os.path.join(args.output_dir, "retrieval_results.json"), json.dumps(results, indent=2, ensure_ascii=False))
    atomic_write(os.path.join(args.output_dir, "retrieval_table.md"), table)
    accelerator.print("\n" + table)
    accelerator.end_training()
    return results


__all__ = ["embedding_tables", "encoder_features", "new_contrastive_model", "run_embedding_method", "train_contrastive"]

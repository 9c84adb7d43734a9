"""Scoring a checkpoint on a prepared split (`tribert evaluate`): consecutive groups of clips mixed and separated,
SDR / SIR / SAR next to the mixture floor, the thresholded masks and the ideal-mask ceilings, through the library's
one evaluation loop (`tribert_hf.evaluation.evaluate_separation_model`)."""

from __future__ import annotations

import math
import os
import time

from ..separation.losses import masks_in_unit_range
from .checkpoint import as_checkpoint
from .outputs import json_ready, write_json


def load_dataset(dataset: str, cache_dir: str | None = None, progress: bool = False):
    """`synthetic:<preset>` or a prepared folder -> (root, DatasetDict)."""
    from ..data import SYNTHETIC_PRESETS, load_prepared, load_synthetic_music

    if dataset.startswith("synthetic:"):
        preset = dataset.split(":", 1)[1]
        if preset not in SYNTHETIC_PRESETS:
            raise ValueError(f"Unknown synthetic preset {preset!r}; use one of {', '.join(f'synthetic:{p}' for p in SYNTHETIC_PRESETS)}.")
        return load_synthetic_music(preset, cache_dir=cache_dir, progress=progress)
    if not os.path.isdir(dataset):
        raise FileNotFoundError(f"Dataset folder not found: {dataset!r} (give a `tribert prepare` folder or synthetic:tiny / synthetic:small).")
    return dataset, load_prepared(dataset)


def metrics_table(summary: dict) -> str:
    """The Markdown table of `evaluate_checkpoint`'s summary: model vs the mixture floor."""

    def cell(value):
        return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.2f}"

    model, floor, gain = summary["model"], summary["mixture"], summary["improvement"]
    lines = [
        f"# TriBERT separation: {summary['dataset']}, split {summary['split']}",
        "",
        f"{summary['num_mixtures']} mixtures of {summary['num_mix']} clips (centre crops of {summary['segment_seconds']:.2f} s), "
        f"{summary['num_skipped']} skipped (silent source); BSS Eval v3 ({summary['backend']} backend), checkpoint "
        f"`{summary['checkpoint']}`.",
        "",
        "| | SDR (dB) | SIR (dB) | SAR (dB) |",
        "|---|---:|---:|---:|",
        f"| model | {cell(model['sdr'])} | {cell(model['sir'])} | {cell(model['sar'])} |",
        f"| mixture (floor) | {cell(floor['sdr'])} | {cell(floor['sir'])} | {cell(floor['sar'])} |",
        f"| model - mixture | {cell(gain['sdr'])} | {cell(gain['sir'])} | - |",
    ]
    thresholded = masks_in_unit_range(summary.get("mask_type", "binary"), summary.get("mask_activation", "sigmoid"))
    protocol = "masks > 0.5 (SoP protocol, as the paper)" if thresholded else "SoP protocol (ratio masks as they are)"
    rows = {"threshold": f"model, {protocol}", "ideal_binary_mask": "ideal binary mask (ceiling)", "ideal_ratio_mask": "ideal ratio mask (ceiling)"}  # fmt: skip
    lines += [f"| {name} | {cell(summary[key]['sdr'])} | {cell(summary[key]['sir'])} | {cell(summary[key]['sar'])} |" for key, name in rows.items() if key in summary]
    lines += [
        "",
        ("Masks > 0.5: the predicted masks thresholded, the Sound-of-Pixels protocol of the paper's Table 1. "
         if thresholded else "SoP protocol: Sound-of-Pixels thresholds binary masks at 0.5 (the paper's Table 1) and "
         "uses ratio masks as they are; this model's are sigmoid ratio masks. ")
        + "The ideal "
        "masks, computed from the true sources, go through the same chain (log-frequency mask, mixture phase, inverse "
        "STFT): the ceiling of mask-based separation on these mixtures.",
        "The mixture floor scores the mixture itself as every source's estimate. Its SAR is not a floor: the mixture "
        "has no artifacts, so its SAR only reflects numerical precision (no SAR difference is given).",
    ]
    return "\n".join(lines) + "\n"


#: the scorings of `evaluate_checkpoint` (the first is the model's own) -> their key in the summary
SUMMARY_SCORINGS = {"soft": "model", "threshold": "threshold", "ideal_binary": "ideal_binary_mask", "ideal_ratio": "ideal_ratio_mask"}


def evaluate_checkpoint(
    checkpoint,
    dataset: str = "synthetic:tiny",
    split: str = "val",
    num_mix: int = 2,
    backend: str = "fast",
    max_mixtures: int | None = None,
    output_dir=None,
    *,
    batch_size: int = 4,
    device: str | None = None,
    cache_dir: str | None = None,
    figure: bool = True,
    progress: bool = False,
) -> dict:
    """SDR / SIR / SAR of a checkpoint on a split: consecutive groups of `num_mix` clips (centre crops, in the
    split's order, so deterministic) are mixed and separated; metrics as Sound-of-Pixels (mean over sources per
    mixture, then over mixtures) next to the mixture floor (the mixture as every estimate).

    With `output_dir`, writes `metrics.json`, `metrics.md` and `example.png` (the first scored mixture). Returns
    the summary (the JSON's content).
    """
    from tqdm.auto import tqdm

    from ..data import MixAndSeparateCollator, PreparedClipFeaturizer
    from ..evaluation import evaluate_separation_model

    if backend not in ("fast", "mir_eval"):
        raise ValueError(f"backend must be 'fast' or 'mir_eval', got {backend!r}.")
    if num_mix < 1:
        raise ValueError(f"num_mix must be at least 1, got {num_mix}.")
    if max_mixtures is not None and max_mixtures < 1:
        raise ValueError(f"max_mixtures must be at least 1, got {max_mixtures}.")
    started = time.perf_counter()
    checkpoint = as_checkpoint(checkpoint, device)
    model, processor, fe = checkpoint.model, checkpoint.processor, checkpoint.feature_extractor
    root, data = load_dataset(dataset, cache_dir, progress)
    if split not in data:
        raise ValueError(f"{dataset!r} has no split {split!r}; its splits: {', '.join(data)}.")
    rows = data[split]
    count = len(rows) // num_mix
    if max_mixtures is not None:
        count = min(count, max_mixtures)
    if count == 0:
        raise ValueError(f"Split {split!r} of {dataset!r} has {len(rows)} clips: not enough for one mixture of {num_mix}.")

    label2id = dict(model.config.label2id)  # the separation model ignores class_labels: unknown names just get new ids
    for labels in rows["labels"]:
        for name in labels:
            label2id.setdefault(name, len(label2id))
    featurizer = PreparedClipFeaturizer(root, processor, crop="center", return_waveform=True, label2id=label2id)
    collate = MixAndSeparateCollator(fe, num_mix=num_mix, mask_type=model.config.mask_type)

    def clips(mixture: int) -> list:
        return [rows[mixture * num_mix + k] for k in range(num_mix)]

    def batches():  # mixtures first .. first + batch_size - 1, featurized as they are needed
        for first in range(0, count, batch_size):
            yield collate([featurizer.example(row) for m in range(first, min(count, first + batch_size)) for row in clips(m)])

    per_mixture, example = [], {}
    bar = tqdm(total=count, desc="evaluate", unit="mixture", disable=not progress)

    def record(batch, masks, results):
        result = results["soft"]
        for j in range(len(batch["mixture_waveform"])):
            m, group = len(per_mixture), clips(len(per_mixture))
            per_mixture.append({
                "index": m, "videos": [r["video_id"] for r in group], "labels": [list(r["labels"]) for r in group],
                "valid": bool(result["valid"][j]),
                **{k: float(result[k][j]) for k in ("sdr", "sir", "sar", "sdr_mixture", "sir_mixture", "sar_mixture")},
            })  # fmt: skip
            if not example and result["valid"][j]:
                example.update({
                    "index": m, "mixture": batch["audio_spectrogram"][j, 0], "masks": masks[j].float(),
                    "true_masks": batch["labels"][j], "true_magnitudes": fe.log_frequency_magnitude(batch["source_waveforms"][j]),
                    "names": [f"{r['video_id']} ({' + '.join(r['labels'])})" for r in group],
                })  # fmt: skip
        bar.update(len(batch["mixture_waveform"]))

    scores = evaluate_separation_model(
        model, batches(), fe, scorings=tuple(SUMMARY_SCORINGS), backend=backend, on_batch=record
    )
    bar.close()
    summary = {
        "checkpoint": checkpoint.path, "dataset": dataset, "split": split, "num_mix": num_mix, "backend": backend,
        "num_mixtures": scores["num_mixtures"], "num_skipped": scores["num_skipped"],
        "segment_samples": fe.num_samples, "segment_seconds": fe.num_samples / fe.sampling_rate,
        "sampling_rate": fe.sampling_rate, "device": str(model.device), "mask_type": model.config.mask_type,
        "mask_activation": getattr(model.config, "mask_activation", "sigmoid"),
        "model": {k: scores[k] for k in ("sdr", "sir", "sar")},
        "mixture": {k: scores[f"{k}_mixture"] for k in ("sdr", "sir", "sar")},
        "improvement": {k: scores[k] - scores[f"{k}_mixture"] for k in ("sdr", "sir", "sar")},
        **{key: {k: scores[f"{k}_{name}"] for k in ("sdr", "sir", "sar")} for name, key in list(SUMMARY_SCORINGS.items())[1:]},
        "mixtures": per_mixture,
    }  # fmt: skip
    summary = json_ready(summary)
    if output_dir is not None:
        from ..visualization import plot_separation

        output_dir = os.fspath(output_dir)
        os.makedirs(output_dir, exist_ok=True)
        summary["figure"] = None
        if figure and example:
            summary["figure"] = "example.png"
            plot_separation(
                os.path.join(output_dir, "example.png"), example["mixture"], example["masks"],
                true_masks=example["true_masks"], true_magnitudes=example["true_magnitudes"], labels=example["names"],
                sampling_rate=fe.sampling_rate, hop_length=fe.hop_length,
                title=f"{dataset}, split {split}: mixture {example['index']} (model)",
            )  # fmt: skip
        summary["seconds"] = round(time.perf_counter() - started, 3)
        write_json(os.path.join(output_dir, "metrics.json"), summary)
        with open(os.path.join(output_dir, "metrics.md"), "w", encoding="utf-8") as f:
            f.write(metrics_table(summary))
    else:
        summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


__all__ = ["evaluate_checkpoint", "load_dataset", "metrics_table"]

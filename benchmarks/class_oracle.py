"""The separation U-Net told the true instrument class: how far the head and the recipe go on their own.

TriBERT has to earn the class from frames and pose; this diagnostic gives the U-Net (TriBERT's own separation
head, `tribert_hf.separation.unet.TriBertSeparationHead`) the videos' multi-hot labels as its condition instead,
and trains it alone on mix-and-separate pairs of a prepared dataset (e.g. the realistic set of docs/data.md):
every step draws `--mixtures` pairs of training clips, a fresh random crop and a gain in [0.5, 1.5] per clip.
The validation SDR is measured on fixed pairs of validation clips of distinct classes (centre crops) through the
feature extractor's chain and the fast BSS Eval, as the recipe's evaluation does. It separates the U-Net and its
training recipe from the encoder: if this reference learns slowly, so will TriBERT.

    python benchmarks/class_oracle.py --dataset ~/.cache/tribert_hf/realistic --steps 500 --condition_maps 0 16 \\
        --output benchmarks/results/class_oracle.json

Diagnostics of the head itself: `--base_channels` (the U-Net's width), `--no_attention_gates` (plain skips: the
gates replaced by the identity), `--train_sounds_dir` (train on the whole solo clips of a `tribert render-solos`
folder, the training split of `clip_split`, instead of the dataset's 6.5-s training videos: more material, the
same validation pairs). Every evaluation also scores 32 fixed pairs of training clips (the `train_sdr` of the
curve): the gap to the validation SDR says how much of what the head learns is specific to the training clips.

Writes JSON (every variant's validation curve, seconds per step, the settings) and prints one line per variant.
"""

import argparse
import itertools
import json
import math
import os
import platform
import random
import statistics
import time

import torch
from torch.nn import functional as F

from tribert_hf import TriBertFeatureExtractor
from tribert_hf.data import load_prepared
from tribert_hf.data.synthetic import clip_split, index_sounds
from tribert_hf.media import read_wav
from tribert_hf.metrics import SeparationMetrics
from tribert_hf.separation.losses import activate_masks, mask_loss, waveform_sdr_loss
from tribert_hf.separation.unet import TriBertFiLM, TriBertSeparationHead
from tribert_hf.training import model_config


def load_split(root: str, split, label2id: dict) -> list[tuple[torch.Tensor, torch.Tensor, frozenset]]:
    clips = []
    for row in split:
        waveform, _ = read_wav(os.path.join(root, row["audio_path"]))
        labels = torch.zeros(len(label2id))
        labels[[label2id[name] for name in row["labels"]]] = 1.0
        clips.append((torch.as_tensor(waveform, dtype=torch.float32), labels, frozenset(row["labels"])))
    return clips


def load_solo_clips(sounds_dir: str, label2id: dict, split: str = "train", peak: float = 0.5):
    """The whole clips of `split` (`clip_split`) of a `<class>/<name>.wav` folder (`index_sounds`), each scaled to
    `peak` (the level of a generated video's source)."""
    bank, clips = index_sounds(sounds_dir), []
    for name, paths in bank.clips.items():
        for path in clip_split(paths, split):
            waveform, _ = read_wav(os.path.join(bank.root, path))
            waveform = torch.as_tensor(waveform, dtype=torch.float32)
            labels = torch.zeros(len(label2id))
            labels[label2id[name]] = 1.0
            clips.append((waveform * (peak / waveform.abs().max().clamp_min(1e-8)), labels, frozenset([name])))
    return clips


class _PlainSkip(torch.nn.Module):
    """An attention gate replaced by the identity (`--no_attention_gates`): the skip passes as it is."""

    def forward(self, g, x):
        return x


def make_batch(fe, pairs, mask_type, generator=None, gain_range=(0.5, 1.5)):
    """Mixtures of the pairs: random crops and gains with a generator (training), centre crops without."""
    length, sources, labels = fe.num_samples, [], []
    for pair in pairs:
        waves = []
        for waveform, label, _ in pair:
            waveform = torch.nn.functional.pad(waveform, (0, max(0, length - len(waveform))))
            spare = len(waveform) - length
            start = int(torch.randint(0, spare + 1, (1,), generator=generator)) if generator is not None else spare // 2
            wave = waveform[start : start + length]
            if generator is not None:
                wave = wave * float(torch.empty(()).uniform_(*gain_range, generator=generator))
            waves.append(wave)
        sources.append(torch.stack(waves))
        labels.append(torch.stack([label for _, label, _ in pair]))
    sources = torch.stack(sources)
    mixture = fe.mix(sources.transpose(0, 1))
    magnitude, stft = fe.log_frequency_magnitude(mixture, return_stft=True)
    targets = fe.mask_targets(fe.log_frequency_magnitude(sources).transpose(0, 1), magnitude, mask_type).transpose(0, 1)
    return {
        "magnitude": magnitude.unsqueeze(1), "targets": targets, "weight": fe.loss_weight(magnitude).unsqueeze(1),
        "labels": torch.stack(labels), "sources": sources, "mixture": mixture, "stft": stft,
    }  # fmt: skip


@torch.no_grad()
def ideal_mask_sdr(fe, batches, mask_type: str, factors=(1, 2, 4)) -> dict:
    """SDR of the ideal masks of the validation mixtures (targets clamped to a mask's range) on the full grid and
    coarsened `factor` times (average-pooled, bilinearly upsampled back): how much a mask of coarser resolution
    can reach (the head's last up-convolution upsamples features of half the spectrogram's resolution)."""
    result = {}
    for factor in factors:
        metrics = SeparationMetrics()
        for batch in batches:
            masks = batch["targets"].clamp(0, 2)
            if factor > 1:
                masks = F.interpolate(F.avg_pool2d(masks, factor), scale_factor=factor, mode="bilinear", align_corners=True)
            metrics.update(batch["sources"], fe.masks_to_waveforms(masks, batch["stft"], fe.num_samples), batch["mixture"])
        result[str(factor)] = metrics.compute()["sdr"]
    return result


def run_variant(train, val_batches, fe, args, condition_maps: int, seed: int, train_batches=(), solo_batches=()) -> dict:
    config, _ = model_config(args.model_size)
    torch.manual_seed(seed)
    head = TriBertSeparationHead(
        len(config.label2id), args.base_channels or config.separation_base_channels, config.separation_num_downs,
        config.separation_fusion_heads, film=True, condition_maps=condition_maps, output_stride=args.output_stride,
    )  # fmt: skip
    if args.no_attention_gates:
        head.gates = torch.nn.ModuleList(_PlainSkip() for _ in head.gates)
    for module in head.modules():
        if isinstance(module, TriBertFiLM):  # as the models initialise it: FiLM starts as the identity
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.learning_rate, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.learning_rate, total_steps=args.steps, pct_start=0.3)
    generator, rng = torch.Generator().manual_seed(seed), random.Random(seed)

    @torch.no_grad()
    def validate(batches):
        head.eval()
        metrics = SeparationMetrics()
        for batch in batches:
            masks = activate_masks(head(batch["magnitude"], batch["labels"]), args.mask_type, args.mask_activation)
            estimates = fe.masks_to_waveforms(masks, batch["stft"], fe.num_samples)
            metrics.update(batch["sources"], estimates, batch["mixture"])
        head.train()
        return metrics.compute()

    curve, step_seconds = [], []
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        batch = make_batch(fe, [rng.sample(train, 2) for _ in range(args.mixtures)], args.mask_type, generator)
        logits = head(batch["magnitude"], batch["labels"])
        loss = 0.0
        if args.mask_loss_weight:
            loss = args.mask_loss_weight * mask_loss(
                logits, batch["targets"], batch["magnitude"], batch["weight"], args.mask_type, args.mask_activation
            )
        if args.waveform_loss_weight:
            masks = activate_masks(logits, args.mask_type, args.mask_activation)
            estimates = fe.masks_to_waveforms(masks, batch["stft"], fe.num_samples)
            loss = loss + args.waveform_loss_weight * waveform_sdr_loss(estimates, batch["sources"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step_seconds.append(time.perf_counter() - started)
        if step % args.eval_every == 0 or step == args.steps:
            result = validate(val_batches)
            train_sdr = validate(train_batches)["sdr"] if train_batches else math.nan
            solo_sdr = validate(solo_batches)["sdr"] if solo_batches else math.nan
            curve.append({"step": step, "loss": loss.item(), "sdr": result["sdr"], "sdr_mixture": result["sdr_mixture"], "solo_sdr": solo_sdr, "train_sdr": train_sdr})
            print(f"  maps={condition_maps} seed {seed} step {step}: validation SDR {result['sdr']:.2f} dB (mixture {result['sdr_mixture']:.2f}; solo pairs {solo_sdr:.2f}), training pairs {train_sdr:.2f}", flush=True)
    parameters = sum(p.numel() for p in head.parameters())
    return {"condition_maps": condition_maps, "seed": seed, "parameters": parameters, "curve": curve, "seconds_per_step_median": statistics.median(step_seconds)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a prepared folder (e.g. the realistic set)")
    parser.add_argument("--model_size", default="small", help="the U-Net of this TriBERT preset")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--mixtures", type=int, default=4, help="mixtures of 2 clips per step")
    parser.add_argument("--learning_rate", type=float, default=5e-3, help="one-cycle peak (30 %% warm-up)")
    parser.add_argument("--mask_type", default="ratio", choices=("ratio", "binary"))
    parser.add_argument("--mask_activation", default="sigmoid", choices=("sigmoid", "softmax"), help="softmax: the two masks of a mixture sum to 1 per bin")
    parser.add_argument("--condition_maps", type=int, nargs="+", default=[0, 16], help="variants: 0 = the paper's single map")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--val_pairs", type=int, default=64)
    parser.add_argument("--eval_every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--base_channels", type=int, default=None, help="the U-Net's first width (default: the preset's)")
    parser.add_argument("--no_attention_gates", action="store_true", help="plain skips instead of the attention gates")
    parser.add_argument("--output_stride", type=int, default=1, choices=(1, 2), help="2: the U-Net's last layer at half resolution, its output upsampled (separation_output_stride)")
    parser.add_argument("--train_sounds_dir", default=None, help="train on the whole clips of this render-solos folder")
    parser.add_argument("--train_pairs", type=int, default=32, help="fixed pairs of training clips scored beside validation")
    parser.add_argument("--mask_loss_weight", type=float, default=1.0, help="weight of the mask loss (--mask_type)")
    parser.add_argument("--waveform_loss_weight", type=float, default=0.0, help="weight of the negative SDR of the masked waveforms (waveform_sdr_loss)")
    parser.add_argument("--output", default="benchmarks/results/class_oracle.json")
    args = parser.parse_args(argv)
    if not (args.mask_loss_weight or args.waveform_loss_weight):
        parser.error("--mask_loss_weight and --waveform_loss_weight are both 0: nothing to train on.")
    if args.threads:
        torch.set_num_threads(args.threads)
    config, _ = model_config(args.model_size)
    fe = TriBertFeatureExtractor(num_frequency_bins=config.audio_config.num_frequency_bins)
    dataset = load_prepared(args.dataset)
    if args.train_sounds_dir:
        train = load_solo_clips(args.train_sounds_dir, config.label2id)
    else:
        train = load_split(args.dataset, dataset["train"], config.label2id)
    val = load_split(args.dataset, dataset["val"], config.label2id)
    pairs = [(a, b) for a, b in itertools.combinations(val, 2) if not a[2] & b[2]]
    random.Random(0).shuffle(pairs)
    pairs = pairs[: args.val_pairs]
    val_batches = [make_batch(fe, pairs[i : i + 8], args.mask_type) for i in range(0, len(pairs), 8)]
    # The same kind of pairs restricted to videos of one instrument (a mixture of exactly two instruments): the
    # validation pairs above also mix duet videos (a source of two instruments against a third).
    solo = [(a, b) for a, b in itertools.combinations(val, 2) if not a[2] & b[2] and len(a[2]) == len(b[2]) == 1]
    random.Random(0).shuffle(solo)
    solo = solo[: args.val_pairs]
    solo_batches = [make_batch(fe, solo[i : i + 8], args.mask_type) for i in range(0, len(solo), 8)]
    train_pairs = [(a, b) for a, b in itertools.combinations(train, 2) if not a[2] & b[2]]
    random.Random(1).shuffle(train_pairs)
    train_pairs = train_pairs[: args.train_pairs]
    train_batches = [make_batch(fe, train_pairs[i : i + 8], args.mask_type) for i in range(0, len(train_pairs), 8)]
    runs = [
        run_variant(train, val_batches, fe, args, k, seed, train_batches, solo_batches) for k in args.condition_maps for seed in args.seeds
    ]
    summary = {}
    for k in args.condition_maps:
        finals = [run["curve"][-1]["sdr"] for run in runs if run["condition_maps"] == k]
        summary[str(k)] = {"sdr": statistics.fmean(finals), "std": statistics.stdev(finals) if len(finals) > 1 else 0.0, "n": len(finals)}
        print(f"class oracle, condition_maps={k}: validation SDR {summary[str(k)]['sdr']:.2f} ± {summary[str(k)]['std']:.2f} dB after {args.steps} steps of {args.mixtures} mixtures ({len(pairs)} distinct-class pairs)")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    data = {
        "settings": vars(args), "summary": summary, "runs": runs, "validation_pairs": len(pairs), "solo_validation_pairs": len(solo),
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "load": os.getloadavg()},
        "mixture_floor": runs[0]["curve"][-1]["sdr_mixture"] if runs else math.nan,
        "ideal_mask_sdr_by_coarsening": ideal_mask_sdr(fe, val_batches, args.mask_type),
    }  # fmt: skip
    with open(args.output + ".tmp", "w") as f:
        json.dump(data, f, indent=2)
    os.replace(args.output + ".tmp", args.output)
    return data


if __name__ == "__main__":
    main()

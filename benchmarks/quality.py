"""Does TriBERT earn its complexity? Every separation method trained under one budget and scored on the same
held-out mixtures (the paper's Table 1 layout).

    python benchmarks/quality.py [--budget cpu] [--dataset synthetic:small] [--seeds 0,1,2]
                                 [--methods tribert,tribert_no_pose,tribert_self_attention,tribert_temporal,tribert_temporal_maps,tribert_temporal_spectrum,sop,audio_only]
                                 [--output_dir benchmarks/results/quality]

Methods (all trained by the training recipe, `tribert_hf.training.separation` (`examples/run_separation.py
--model ...`), same data, steps, batch size, mixture sampling
and seeds): `tribert` (the full model), `tribert_no_pose` and `tribert_self_attention` (ablations),
`tribert_temporal` (ours: the U-Net also conditioned frame by frame on the pose timeline,
`separation_conditioning="temporal"`: for the shared-class pairs), `tribert_temporal_maps` (ours: the same, and the
timeline, with the joints' positions, weights the U-Net's condition maps frame by frame: `separation_timeline_maps`),
`tribert_temporal_spectrum` (ours: the same, and the timeline with the condition also adds a spectrum to the mask
logits frame by frame: `separation_timeline_spectrum`),
`sop` (Sound of Pixels) and `audio_only` (no conditioning, permutation-invariant training; scored with its best
permutation).
Each run is evaluated on the TEST split: every pair of distinct clips (solos and duets, N = 2, centre crops) mixed
and separated, SDR/SIR/SAR with the fast BSS Eval (Sound-of-Pixels protocol), next to the mixture floor; and
again with the two sources' conditioning exchanged (does the model use its conditioning?).

Budgets (`--budget`; `--max_steps` etc. override): `tiny` (tests: seconds), `cpu` (small configs, 150 steps of
4 mixtures: the 15 runs are estimated at under an hour on 2 CPU cores from the per-step times), `cpu30` (small
configs, 2000 steps of 4 mixtures: what fits the small TriBERT in 30 minutes of training on 2 CPU cores, 0.83-0.90 s
a step; every method gets the same steps, and each run records its measured `train_seconds`), `cpu30time` (the
same, but each method gets the steps its own training step fits in those 30 minutes: Sound of Pixels 6000 at
0.29 s a step, audio-only 4600 at 0.38 s, every TriBERT variant 2000; `benchmarks/speed.py --suite
step_breakdown` measures the steps), `cpu30time_half` (the same with the U-Net's last layer at half resolution,
`*_half` recipes only: every TriBERT variant 2700 steps, Sound of Pixels 6900, audio-only 7700, from the stride-2
step speed-ups 1.38x / 1.15x / 1.67x). Both count the model's step only: whole training steps timed alone (data,
collator, optimizer; `--calibrate`) make the baselines' steps 33-41 minutes against TriBERT's 27-30
(docs/training.md), so their comparisons lean the baselines' way. `gpu` (small configs, 1500 steps of 8 mixtures),
`paper` (paper-size configs, 20000 steps of 12 mixtures). `--calibrate STEPS` trains nothing to keep: it times
each method's whole training step under the budget and recipe (STEPS steps, from `train_log.jsonl`'s
`step_seconds`) and writes `calibration.json` / `calibration.md`: how long the budget's steps take and how many fit
in its minutes (`BUDGET_MINUTES`, or `--minutes`). `--dataset` is `synthetic:tiny|small` or any folder
in the `tribert prepare` format (see docs/data.md).

Writes `quality.json` (every run: validation history, test metrics; the summary), `quality.md` (the table) and
`quality.png` (validation SDR against training steps, mean over seeds per method) in --output_dir; with
`tribert` and a temporal variant (`tribert_temporal`, `tribert_temporal_maps`, `tribert_temporal_spectrum`), also
`same_class.png`: one same-instrument test mixture, its two players' ground truths and each variant's estimates
(`same_class_figure`; `--combine` makes it too, from runs trained in different folders). Finished runs are kept
in `runs/<method>-seed<k>/` and skipped when the command is run again (an interrupted benchmark continues), unless
--fresh. A call for other seeds or methods into a folder whose report has the same budget,
recipe and dataset keeps that report's finished runs (`--seeds 2` after `--seeds 0,1` reports all three).
"""

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))


METHODS = {
    "tribert": "TriBERT (vision + pose + audio, co-attention)",
    "tribert_self_attention": "TriBERT, self-attention only (no co-attention)",
    "tribert_no_pose": "TriBERT without pose",
    "tribert_temporal": "TriBERT, temporal pose conditioning (ours: per-frame FiLM from the pose timeline)",
    "tribert_temporal_maps": "TriBERT, temporal pose conditioning + timeline maps (ours: the pose timeline weights the condition maps per frame)",
    "tribert_temporal_spectrum": "TriBERT, temporal pose conditioning + timeline maps + pose spectrum (ours: the pose timeline also adds a spectrum to the mask logits per frame)",
    "sop": "Sound of Pixels (ResNet frames)",
    "audio_only": "Audio only (PIT, best permutation)",
}
BUDGETS = {
    "tiny": {"model_size": "tiny", "max_steps": 3, "mixtures_per_batch": 2, "eval_steps": 3, "crops_per_clip": 2, "learning_rate": 1e-3, "test_mixtures": 4},
    "cpu": {"model_size": "small", "max_steps": 150, "mixtures_per_batch": 4, "eval_steps": 50, "crops_per_clip": 4, "learning_rate": 1e-3},
    "cpu30": {"model_size": "small", "max_steps": 2000, "mixtures_per_batch": 4, "eval_steps": 250, "crops_per_clip": 4, "learning_rate": 1e-3},
    "cpu30time": {"model_size": "small", "max_steps": 2000, "mixtures_per_batch": 4, "eval_steps": 250, "crops_per_clip": 4, "learning_rate": 1e-3, "steps_by_method": {"sop": 6000, "audio_only": 4600}},
    "cpu30time_half": {"model_size": "small", "max_steps": 2700, "mixtures_per_batch": 4, "eval_steps": 250, "crops_per_clip": 4, "learning_rate": 1e-3, "steps_by_method": {"sop": 6900, "audio_only": 7700}},
    "gpu": {"model_size": "small", "max_steps": 1500, "mixtures_per_batch": 8, "eval_steps": 150, "crops_per_clip": 8, "learning_rate": 1e-3},
    "paper": {"model_size": "paper", "max_steps": 20000, "mixtures_per_batch": 12, "eval_steps": 1000, "crops_per_clip": 8, "learning_rate": 1e-5},
}  # fmt: skip
# Budgets whose steps are those of a U-Net output stride (`separation_output_stride`): only recipes with that
# stride run under them (a `*_half` recipe), or a method would train the steps another step fits in the minutes.
BUDGET_OUTPUT_STRIDE = {"cpu30time_half": 2}
# How every method is trained (arguments of the training recipe, `tribert_hf.training.separation`, on top of the
# budget's). "baseline":
# the recipe's defaults (the paper's binary masks and weighted BCE, fixed crops, warm-up + cosine schedule).
# "levers": every lever of docs/training.md at once (ratio masks with weighted L1, per-clip gain jitter 0.5-1.5 as
# in the authors' code, 4x more crops per clip, one-cycle learning rate up to 2e-3; TriBERT models also condition
# the U-Net on their segmentation attention's class scores). "baseline_*": the baseline with one lever added (issue
# 14: which lever helps, which hurts). "maps": ratio masks, gain jitter, one-cycle with the U-Net at its own 5x
# rate, class scores and 16 condition maps (see docs/training.md for what each did). "ratio_maps": the two
# levers that each helped alone and that the class-told U-Net uses too (ratio masks; 16 condition maps with the
# U-Net at 5e-3), nothing else. "same_class": the baseline with half the training mixtures made of two clips of
# one class (issue 15: what tribert_temporal learns timing from); "ratio_maps_same_class": ratio_maps with those
# same-class mixtures. "ratio_maps_softmax": ratio masks and 16 condition maps as in ratio_maps, a mixture's masks
# normalised across its sources (`--mask_activation softmax`: they share out the mixture), and one learning rate
# for everything (with the U-Net at 5e-3 TriBERT's softmax masks collapsed: each mixture given to one video).
# "maps_softmax": the same with the paper's binary masks and weighted BCE (on the class-told head softmax + BCE
# was the best pair). "ratio_maps_one_rate": ratio_maps_softmax with the paper's sigmoid masks (the control that
# tells what the softmax adds and what dropping the U-Net's own rate does).
# "ratio_maps_waveform": ratio_maps plus 0.02 x the
# negative SDR of the masked waveforms (`--waveform_loss_weight`; at 0.02 its gradient is about as large as the
# mask loss's at initialisation, measured on the class-told head: 56-86 against 0.9-1.1 at weight 1).
# "..._same_class_timeline128" (issue 15): the same-class recipe with a pose timeline of 128 keypoint frames a crop
# (21.5 a second instead of 5.4), the ST-GCN over every 4th (`--gcn_frame_stride 4`: the 32 frames it had);
# "..._same_class_pose128": 128 frames through the ST-GCN too (timed only: a 37 % slower step).
RECIPES = {
    "baseline": {},
    "levers": {"mask_type": "ratio", "gain_range": "0.5,1.5", "lr_scheduler_type": "onecycle", "learning_rate": 2e-3, "warmup_ratio": 0.3, "crops_per_clip_factor": 4, "separation_class_conditioning": True},
    "baseline_maps": {"separation_condition_maps": 16, "separation_learning_rate": 5e-3},
    "baseline_ratio": {"mask_type": "ratio"},
    "baseline_gain": {"gain_range": "0.5,1.5"},
    "baseline_class": {"separation_class_conditioning": True},
    "baseline_onecycle": {"lr_scheduler_type": "onecycle", "learning_rate": 2e-3, "warmup_ratio": 0.3},
    "ratio_maps": {"mask_type": "ratio", "separation_condition_maps": 16, "separation_learning_rate": 5e-3},
    "same_class": {"same_class_mixtures": 0.5},
    "ratio_maps_softmax": {"mask_type": "ratio", "separation_condition_maps": 16, "mask_activation": "softmax"},
    "maps_softmax": {"separation_condition_maps": 16, "mask_activation": "softmax"},
    "ratio_maps_one_rate": {"mask_type": "ratio", "separation_condition_maps": 16},
    # maps_softmax + the frames' class scores in the condition, with the labels in their place early on (a curriculum:
    # `--class_teacher_forcing`, 1 -> 0 over the first half of the steps); _class is the control without the labels
    "maps_softmax_told": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5},
    "maps_softmax_class": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True},
    # maps_softmax_told with new data each step: 4x the random crops per clip, each clip's gain drawn in 0.5-1.5 (what the
    # class-told head trains with; the labels at test time add only 0.3 dB to maps_softmax_told: the U-Net is the limit)
    "maps_softmax_told_data": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5, "crops_per_clip_factor": 4, "gain_range": "0.5,1.5"},
    # maps_softmax_told_data with the class-told head's schedule for the U-Net: one-cycle (30 % rise, cosine decay), the
    # U-Net peaking at 6e-3 in a group of its own, the rest at 1e-3 (a constant 5e-3 for the U-Net collapsed TriBERT's
    # softmax masks under ratio targets; the labels early on and the rise are meant to keep them apart)
    "maps_softmax_told_data_onecycle": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5, "crops_per_clip_factor": 4, "gain_range": "0.5,1.5", "lr_scheduler_type": "onecycle", "warmup_ratio": 0.3, "separation_learning_rate": 6e-3},
    # maps_softmax_told_data_onecycle with the U-Net's last layer at half resolution, its mask logits upsampled x2
    # (`--separation_output_stride 2`): a 1.33-1.38x faster TriBERT step (speed.py --suite step_breakdown), so more
    # steps in the same minutes (`--budget cpu30time_half`, or `--max_steps` under a stride-1 budget)
    "maps_softmax_told_data_onecycle_half": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5, "crops_per_clip_factor": 4, "gain_range": "0.5,1.5", "lr_scheduler_type": "onecycle", "warmup_ratio": 0.3, "separation_learning_rate": 6e-3, "separation_output_stride": 2},
    # the same with bfloat16 autocast (`--mixed_precision bf16`: the convolutions and matrix products in bf16, on CPUs
    # with AVX512-BF16 / AMX much faster), without and with channels-last weights; then channels-last alone
    # (`--channels_last`: the same model, faster CPU kernels). `--calibrate` times what each gives the whole step.
    "maps_softmax_told_data_onecycle_half_bf16": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5, "crops_per_clip_factor": 4, "gain_range": "0.5,1.5", "lr_scheduler_type": "onecycle", "warmup_ratio": 0.3, "separation_learning_rate": 6e-3, "separation_output_stride": 2, "mixed_precision": "bf16"},
    "maps_softmax_told_data_onecycle_half_bf16_cl": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5, "crops_per_clip_factor": 4, "gain_range": "0.5,1.5", "lr_scheduler_type": "onecycle", "warmup_ratio": 0.3, "separation_learning_rate": 6e-3, "separation_output_stride": 2, "mixed_precision": "bf16", "channels_last": True},
    "maps_softmax_told_data_onecycle_half_cl": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5, "crops_per_clip_factor": 4, "gain_range": "0.5,1.5", "lr_scheduler_type": "onecycle", "warmup_ratio": 0.3, "separation_learning_rate": 6e-3, "separation_output_stride": 2, "channels_last": True},
    # the baselines' recipes with the half-resolution U-Net output (for `cpu30time_half`)
    "maps_softmax_half": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_output_stride": 2},
    "baseline_half": {"separation_output_stride": 2},
    # maps_softmax_told with half the training mixtures two clips of one class (issue 15: what timing must separate)
    "maps_softmax_told_same_class": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5, "same_class_mixtures": 0.5},
    "ratio_maps_same_class": {"mask_type": "ratio", "separation_condition_maps": 16, "separation_learning_rate": 5e-3, "same_class_mixtures": 0.5},
    # the bf16 stride-2 recipe (maps_softmax_told_data_onecycle_half_bf16_cl) with half the training mixtures two clips of
    # one class: what the temporal variants learn the players' timing from, at the fastest step (`cpu30time_half`)
    "maps_softmax_told_data_onecycle_half_bf16_cl_same_class": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5, "crops_per_clip_factor": 4, "gain_range": "0.5,1.5", "lr_scheduler_type": "onecycle", "warmup_ratio": 0.3, "separation_learning_rate": 6e-3, "separation_output_stride": 2, "mixed_precision": "bf16", "channels_last": True, "same_class_mixtures": 0.5},
    "maps_softmax_told_data_onecycle_half_bf16_cl_same_class_pose128": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5, "crops_per_clip_factor": 4, "gain_range": "0.5,1.5", "lr_scheduler_type": "onecycle", "warmup_ratio": 0.3, "separation_learning_rate": 6e-3, "separation_output_stride": 2, "mixed_precision": "bf16", "channels_last": True, "same_class_mixtures": 0.5, "num_pose_frames": 128},
    "maps_softmax_told_data_onecycle_half_bf16_cl_same_class_timeline128": {"separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5, "crops_per_clip_factor": 4, "gain_range": "0.5,1.5", "lr_scheduler_type": "onecycle", "warmup_ratio": 0.3, "separation_learning_rate": 6e-3, "separation_output_stride": 2, "mixed_precision": "bf16", "channels_last": True, "same_class_mixtures": 0.5, "num_pose_frames": 128, "gcn_frame_stride": 4},
    "ratio_maps_waveform": {"mask_type": "ratio", "separation_condition_maps": 16, "separation_learning_rate": 5e-3, "waveform_loss_weight": 0.02},
    "maps": {"mask_type": "ratio", "gain_range": "0.5,1.5", "lr_scheduler_type": "onecycle", "learning_rate": 1e-3, "separation_learning_rate": 5e-3, "warmup_ratio": 0.3, "separation_class_conditioning": True, "separation_condition_maps": 16},
}  # fmt: skip


def _atomic_json(path, data):
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2)
    os.replace(path + ".tmp", path)


CONDITIONING_INPUTS = ("pixel_values", "pose_keypoints", "pose_mask", "class_labels")


def load_test_split(run_dir: str, dataset: str, method: str, cache_dir=None):
    """A finished run's final model (eval mode), its feature extractor, the featurised test split (centre crops, the
    split's row order), each test clip's label set and the mixing collator: what the test mixtures are made of."""
    from tribert_hf import TriBertConfig, TriBertFeatureExtractor, TriBertProcessor
    from tribert_hf.data import MixAndSeparateCollator
    from tribert_hf.training import featurize, load_data, model_class

    model = model_class(method).from_pretrained(run_dir).eval()
    processor = TriBertProcessor.from_pretrained(run_dir)
    fe = processor.feature_extractor
    assert isinstance(fe, TriBertFeatureExtractor)

    class Args:
        pass

    args = Args()
    args.dataset, args.cache_dir = dataset, cache_dir
    root, data = load_data(args)
    label2id = getattr(model.config, "label2id", None) if method.startswith("tribert") else None
    label2id = label2id or TriBertConfig().label2id
    test = featurize(root, data["test"], processor, "center", 0, 1, 1, label2id, keep_in_memory=True)
    labels = [set(row) for row in data["test"]["labels"]]  # featurize keeps the split's row order
    return model, fe, test, labels, MixAndSeparateCollator(fe, num_mix=2, mask_type=model.config.mask_type)


def test_metrics(
    run_dir: str, dataset: str, method: str, size: str, cache_dir=None, max_mixtures: int = 1000, swaps=(False,)
) -> list[dict]:
    """SDR/SIR/SAR of the run's final model on the test split: every pair of distinct test clips mixed (centre
    crops) and separated, scored by the library's evaluation loop as in training (at most ``max_mixtures`` mixtures). One result
    per entry of ``swaps``; the model and the test features are loaded once.

    With a swap (``True``), the two sources of every mixture get each other's conditioning (frames, pose,
    labels) while the estimates are still scored against the original references: a model that follows its
    conditioning now separates the other source and its SDR falls; a model that ignores it scores the same.
    With ``"class_told"`` (TriBERT with `separation_class_conditioning` only), the U-Net's condition holds each
    video's labels in place of the frames' class scores (`labels_as_class_scores`): what the separation would be if
    the segmentation attention told the class perfectly.
    """
    import torch
    from accelerate import Accelerator

    from tribert_hf.evaluation import evaluate_separation_model

    model, fe, test, labels, mix_collate = load_test_split(run_dir, dataset, method, cache_dir)

    def swapped_collate(examples):
        batch = mix_collate(examples)
        for key in CONDITIONING_INPUTS:
            batch[key] = batch[key].flip(1)
        return batch

    pairs = select_pairs(labels, max_mixtures)
    order = [k for pair in pairs for k in pair]
    batches = [order[b : b + 16] for b in range(0, len(order), 16)]
    if "class_told" in swaps and not hasattr(model, "class_teacher_forcing"):  # only the pre-training model reads labels
        raise ValueError(f"The class-told diagnostic needs a TriBertForPreTraining model, got {type(model).__name__}.")
    results = []
    for swap in swaps:
        collate = swapped_collate if swap is True else mix_collate
        loader = torch.utils.data.DataLoader(test, batch_sampler=batches, collate_fn=collate)
        per_mixture = []
        scorings = ("soft",) if swap else TEST_SCORINGS
        with labels_as_class_scores(swap == "class_told"):
            result = evaluate_separation_model(model, loader, fe, Accelerator(cpu=True), len(pairs), per_mixture, scorings=scorings)
        result["by_pair"] = pair_breakdown(pairs, labels, per_mixture)
        results.append(result)
    return results


@contextlib.contextmanager
def labels_as_class_scores(active: bool = True):
    """Within the block, TriBERT models with `separation_class_conditioning` condition their U-Net on each video's
    labels instead of the frames' class scores, in evaluation as well (the curriculum's replacement of
    `--class_teacher_forcing` with probability 1): a diagnostic, not a way to separate (labels are not an input at
    inference)."""
    if not active:
        yield
        return
    import inspect

    import tribert_hf.modeling_tribert as modeling

    encode = modeling._encode_videos
    signature = inspect.signature(encode)

    def told(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.arguments["class_teacher_forcing"] = 1.0  # replace every video's scores (where labels are given)
        return encode(*bound.args, **bound.kwargs)

    modeling._encode_videos = told
    try:
        yield
    finally:
        modeling._encode_videos = encode


def class_conditioned(run_dir: str, method: str) -> bool:
    """Whether a finished run is a TriBERT model whose U-Net sees the frames' class scores."""
    if not method.startswith("tribert"):
        return False
    with open(os.path.join(run_dir, "config.json")) as f:
        return bool(json.load(f).get("separation_class_conditioning"))


TEST_MIXTURES = 300  # test mixtures per run unless the budget says otherwise (see select_pairs)
TEST_SCORINGS = ("soft", "threshold", "ideal_binary", "ideal_ratio")  # see tribert_hf.evaluation.SCORINGS


def select_pairs(labels: list[set], limit: int, seed: int = 0) -> list[tuple[int, int]]:
    """The test mixtures: pairs (i, j), i < j, of test clips. Every pair while there are at most `limit`; else
    every pair that shares a class (at most half the limit) and a seeded random sample of the other pairs up to
    `limit`, in (i, j) order. The shared-class pairs are few and the hard case, so none of them is dropped."""
    import numpy as np

    pairs = [(i, j) for i in range(len(labels)) for j in range(i + 1, len(labels))]
    if len(pairs) <= limit:
        return pairs
    shared = [p for p in pairs if labels[p[0]] & labels[p[1]]]
    distinct = [p for p in pairs if not labels[p[0]] & labels[p[1]]]
    rng = np.random.default_rng(seed)
    shared = [shared[k] for k in sorted(rng.permutation(len(shared))[: limit // 2])]
    sample = sorted(rng.permutation(len(distinct))[: limit - len(shared)])
    return sorted(shared + [distinct[k] for k in sample])


PAIR_KINDS = {
    "distinct_classes": "the two clips have no instrument class in common",
    "shared_class": "the two clips share an instrument class (e.g. two trumpet solos)",
}


def pair_breakdown(pairs: list[tuple[int, int]], labels: list[set], per_mixture: list[dict]) -> dict:
    """Mean SDR and mixture-floor SDR of the test mixtures grouped by pair kind (`PAIR_KINDS`).

    A model whose conditioning says only *which instrument* to extract cannot separate two players of the same
    class: the shared-class pairs measure whether it also uses *when* each player plays (pose, note onsets).
    """
    import numpy as np

    def column(key):
        return np.concatenate([np.asarray(r[key], dtype=float) for r in per_mixture])

    sdr = column("sdr")
    keys = [key for key in per_mixture[0] if key.startswith("sdr_") and key != "sdr_mixture"] if per_mixture else []
    extra = {key: column(key) for key in keys}  # sdr_threshold, sdr_ideal_binary, ... (evaluate's other scorings)
    floor = column("sdr_mixture")
    shared = np.array([bool(labels[i] & labels[j]) for i, j in pairs[: len(sdr)]])
    out = {}
    for kind, mask in (("distinct_classes", ~shared), ("shared_class", shared)):
        scored = mask & ~np.isnan(sdr)
        out[kind] = {
            "num_mixtures": int(scored.sum()),
            "sdr": float(sdr[scored].mean()) if scored.any() else None,
            "sdr_mixture": float(floor[scored].mean()) if scored.any() else None,
        }
        for key, values in extra.items():
            out[kind][key] = float(np.nanmean(values[scored])) if scored.any() else None
    return out


FIGURE_NAMES = {"tribert": "TriBERT (pooled)", "tribert_temporal": "TriBERT temporal", "tribert_temporal_maps": "TriBERT temporal + timeline maps", "tribert_temporal_spectrum": "TriBERT temporal + pose spectrum"}


def same_class_figure_methods(methods) -> tuple | None:
    """The methods of issue 15's figure when a report holds them: the pooled `tribert` and every temporal variant
    (`tribert_temporal`, `tribert_temporal_maps`, `tribert_temporal_spectrum`) among `methods`; None without
    `tribert` or without a temporal one."""
    temporal = tuple(m for m in methods if "temporal" in m)
    return ("tribert", *temporal) if "tribert" in methods and temporal else None


def same_class_figure(run_dirs: dict, dataset: str, path: str, cache_dir=None, max_mixtures: int = TEST_MIXTURES) -> dict:
    """One same-instrument test mixture separated by each method of `run_dirs` (method -> finished run): a PNG
    of the mixture's spectrogram, the two players' ground truths and every method's two estimates (dB log-frequency
    magnitudes, one colour scale), each estimate's SDR in its title. The mixture is the first test pair (in
    `select_pairs` order) of two solo clips of one class, else the first pair that shares a class: chosen by
    position, not by how well anything separates it. Returns the pair, each clip's classes, the SDRs (method ->
    [player 1, player 2]) and the mixture floor; None when no test pair shares a class."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tribert_hf.evaluation import evaluate_separation_model

    estimates, sdrs, example = {}, {}, None
    for method, run_dir in run_dirs.items():
        model, fe, test, labels, collate = load_test_split(run_dir, dataset, method, cache_dir)
        if example is None:  # two solos of one class first; else clips that share a class (a duet with a solo)
            pairs = [(i, j) for i, j in select_pairs(labels, max_mixtures) if labels[i] & labels[j]]
            if not pairs:
                return None
            example = min(pairs, key=lambda p: (labels[p[0]] != labels[p[1]] or len(labels[p[0]]) > 1, pairs.index(p)))
        batch = collate([test[example[0]], test[example[1]]])
        seen = {}  # the evaluation loop's own masks and scores of the one mixture

        def keep(_, masks, results, method=method):
            seen.update(masks=masks, scores=results["soft"])

        evaluate_separation_model(model, [batch], fe, on_batch=keep)
        estimates[method] = fe.masks_to_waveforms(seen["masks"].float(), batch["mixture_stft"], batch["mixture_waveform"].shape[-1])
        sdrs[method] = [float(v) for v in np.asarray(seen["scores"]["sdr_sources"]).reshape(-1)]
        floor = float(np.asarray(seen["scores"]["sdr_mixture"]).reshape(-1)[0])
    name = "+".join(sorted(labels[example[0]] & labels[example[1]]))
    players = ["+".join(sorted(labels[k])) for k in example]
    to_db = lambda wave: 20 * np.log10(fe.log_frequency_magnitude(wave.float()).numpy() + 1e-8)  # noqa: E731
    panels = [("mixture", to_db(batch["mixture_waveform"][0]), None)]
    for k in range(2):
        panels.append((f"player {k + 1} ({players[k]}): ground truth", to_db(batch["source_waveforms"][0, k]), None))
    for method in run_dirs:
        for k in range(2):
            panels.append((f"{FIGURE_NAMES.get(method, method)}: player {k + 1}", to_db(estimates[method][0, k]), sdrs[method][k]))
    top = max(float(image.max()) for _, image, _ in panels)
    rows = 1 + (len(panels) - 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(9, 2.3 * rows), dpi=100, squeeze=False)
    axes[0, 1].axis("off")
    seconds = fe.num_samples / fe.sampling_rate
    for index, (title, image, sdr) in enumerate(panels):
        axis = axes[0, 0] if index == 0 else axes[1 + (index - 1) // 2, (index - 1) % 2]
        axis.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top, extent=(0, seconds, 0, image.shape[0]))
        axis.set_title(title + ("" if sdr is None else f"  (SDR {sdr:.1f} dB)"), fontsize=8)
        axis.set_xlabel("time (s)", fontsize=7)
        axis.set_ylabel("log-frequency bin", fontsize=7)
        axis.tick_params(labelsize=6)
    figure.suptitle(f"Two players of {name} in one mixture (test pair {example}; mixture SDR {floor:.1f} dB)", fontsize=9)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return {"pair": list(example), "classes": players, "sdr": sdrs, "sdr_mixture": floor, "figure": os.path.basename(path)}


TEST_PROTOCOL = "pairs (all shared-class), by pair kind, thresholded and ideal masks"  # bump when test_metrics changes: finished runs are scored again (models are kept)


def score(run_dir: str, method: str, budget: dict, args) -> dict:
    """Test metrics of a finished run, and the conditioning-swap diagnostic (no conditioning: audio-only)."""
    limit = budget.get("test_mixtures", TEST_MIXTURES)
    swaps = (False,) if method == "audio_only" else (False, True)
    if class_conditioned(run_dir, method):
        swaps += ("class_told",)
    scores = test_metrics(run_dir, args.dataset, method, budget["model_size"], args.cache_dir, limit, swaps)
    out = {"test_protocol": TEST_PROTOCOL, "test": scores[0]}
    for swap, result in zip(swaps[1:], scores[1:]):
        out["test_swapped" if swap is True else f"test_{swap}"] = result
    return out


def trained_steps(result: dict) -> int:
    """The steps a finished run trained (results written before they recorded it: the last validation's step,
    which the recipe always takes at the last step)."""
    return result.get("max_steps") or result["validation"][-1]["step"]


def method_budget(budget: dict, method: str) -> dict:
    """`budget` for one method: its own steps where the budget has `steps_by_method` (the `cpu30time` budget: each
    method the steps its training step fits in 30 minutes), with as many validations as the budget's own steps
    get (`eval_steps` scaled alike); the budget's steps otherwise."""
    steps = budget.get("steps_by_method", {}).get(method)
    if steps is None:
        return budget
    evaluations = max(1, round(budget["max_steps"] / budget["eval_steps"]))
    return {**budget, "max_steps": steps, "eval_steps": max(1, steps // evaluations)}


def train_and_score(method, seed, budget, args) -> dict:
    from tribert_hf.training.separation import main as train

    budget = method_budget(budget, method)
    run_dir = os.path.join(args.output_dir, "runs", f"{method}-seed{seed}")
    done = os.path.join(run_dir, "result.json")
    result = None
    if os.path.isfile(done) and not args.fresh:
        with open(done) as f:
            result = json.load(f)
    if result is not None and trained_steps(result) != budget["max_steps"]:  # another budget's run: not this one's
        print(f"  {method} seed {seed}: trained {trained_steps(result)} steps before, this budget gives {budget['max_steps']}: trained again")
        result = None
    if result is not None:
        print(f"  {method} seed {seed}: done before, kept ({done})")
        if result.get("test_protocol") != TEST_PROTOCOL:  # scored before the protocol changed: score again
            result.update(score(run_dir, method, budget, args))
            _atomic_json(done, result)
        elif "test_class_told" not in result and class_conditioned(run_dir, method):  # scored before the diagnostic
            limit = budget.get("test_mixtures", TEST_MIXTURES)
            (result["test_class_told"],) = test_metrics(run_dir, args.dataset, method, budget["model_size"], args.cache_dir, limit, ("class_told",))
            _atomic_json(done, result)
        return result
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    history = train(training_argv(method, seed, budget, args, run_dir))
    train_seconds = time.perf_counter() - started
    result = {"method": method, "seed": seed, "max_steps": budget["max_steps"], "train_seconds": train_seconds, "validation": history}
    result.update(score(run_dir, method, budget, args))
    metrics = result["test"]
    shutil.rmtree(os.path.join(run_dir, "checkpoints"), ignore_errors=True)  # the final model is kept
    _atomic_json(done, result)
    print(f"  {method} seed {seed}: test SDR {metrics['sdr']:.2f} dB (mixture {metrics['sdr_mixture']:.2f}) in {train_seconds:.0f} s")
    return result


def training_argv(method: str, seed: int, budget: dict, args, run_dir: str) -> list[str]:
    """The training recipe's arguments (`examples/run_separation.py`) of one run: the budget's, the recipe's on top."""
    argv = [
        "--dataset", args.dataset, "--model", method, "--model_size", budget["model_size"], "--output_dir", run_dir,
        "--max_steps", str(budget["max_steps"]), "--eval_steps", str(budget["eval_steps"]),
        "--save_steps", str(budget["max_steps"]), "--mixtures_per_batch", str(budget["mixtures_per_batch"]),
        "--crops_per_clip", str(budget["crops_per_clip"]), "--learning_rate", str(budget["learning_rate"]),
        "--seed", str(seed), "--report_to", "none", "--logging_steps", str(max(1, budget["eval_steps"] // 4)),
        "--num_proc", str(args.num_proc),
    ]  # fmt: skip
    recipe = dict(RECIPES[args.recipe])
    factor = recipe.pop("crops_per_clip_factor", 1)
    if factor != 1:
        argv[argv.index("--crops_per_clip") + 1] = str(budget["crops_per_clip"] * factor)
    for key, value in recipe.items():
        if f"--{key}" in argv:
            argv[argv.index(f"--{key}") + 1] = str(value)
        else:
            argv += [f"--{key}", str(value)]
    if args.cache_dir:
        argv += ["--cache_dir", args.cache_dir]
    if method != "audio_only":  # the methods that see frames
        if args.vision_backbone:
            argv += ["--vision_backbone", args.vision_backbone]
        if args.freeze_vision_backbone:
            argv += ["--freeze_vision_backbone"]
    return argv


IDEAL_ROWS = {"ideal_binary_mask": "ideal_binary", "ideal_ratio_mask": "ideal_ratio"}  # summary row -> scoring


def summarize(results: list[dict], methods: list[str]) -> dict:
    """Mean ± std over seeds per method. Layout (tools read it): summary[method]["sdr"|"sir"|"sar"|
    "sdr_swapped"] and summary[method]["by_pair"][kind] = {"mean", "std", "n"} (soft masks, as before); beside
    them "sdr_threshold" / "by_pair_threshold" (the Sound-of-Pixels protocol, masks thresholded at 0.5) and
    "sdr_percent_of_ideal" / "sdr_threshold_percent_of_ideal" (percent of the ideal binary mask's SDR); rows
    "ideal_binary_mask" and "ideal_ratio_mask" (the ceilings of the same mixtures) and "mixture" (the floor)."""

    def stats(values):  # a NaN (every mixture skipped) is left out like a missing value: `n` counts the rest
        values = [v for v in values if v is not None and v == v]
        if not values:
            return {"mean": None, "std": None, "n": 0}
        return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}

    def pair_stats(runs, key):
        return {kind: stats([r["test"]["by_pair"][kind].get(key) for r in runs if "by_pair" in r["test"]]) for kind in PAIR_KINDS}

    summary = {}
    for row, scoring in IDEAL_ROWS.items():
        scored = [r for r in results if f"sdr_{scoring}" in r["test"]]
        if scored:
            summary[row] = {k: stats([r["test"][f"{k}_{scoring}"] for r in scored]) for k in ("sdr", "sir", "sar")}
            summary[row]["by_pair"] = pair_stats(scored, f"sdr_{scoring}")
    ceiling = summary.get("ideal_binary_mask", {}).get("sdr", {}).get("mean")
    for method in methods:
        runs = [r for r in results if r["method"] == method]
        summary[method] = {k: stats([r["test"][k] for r in runs]) for k in ("sdr", "sir", "sar")}
        swapped = [r["test_swapped"]["sdr"] for r in runs if "test_swapped" in r]
        if swapped:
            summary[method]["sdr_swapped"] = stats(swapped)
        told = [r for r in runs if "test_class_told" in r]
        if told:  # the labels in place of the class scores (labels_as_class_scores)
            summary[method]["sdr_class_told"] = stats([r["test_class_told"]["sdr"] for r in told])
            summary[method]["by_pair_class_told"] = {
                kind: stats([r["test_class_told"]["by_pair"][kind]["sdr"] for r in told]) for kind in PAIR_KINDS
            }
        summary[method]["by_pair"] = pair_stats(runs, "sdr")
        if any("sdr_threshold" in r["test"] for r in runs):
            summary[method]["sdr_threshold"] = stats([r["test"].get("sdr_threshold") for r in runs])
            summary[method]["by_pair_threshold"] = pair_stats(runs, "sdr_threshold")
        for key in ("sdr", "sdr_threshold"):
            mean = summary[method].get(key, {}).get("mean")
            if ceiling and mean is not None:
                summary[method][f"{key}_percent_of_ideal"] = 100.0 * mean / ceiling
    summary["mixture"] = {k: stats([r["test"][f"{k}_mixture"] for r in results]) for k in ("sdr", "sir", "sar")}
    summary["mixture"]["by_pair"] = pair_stats(results, "sdr_mixture")
    return summary


ROW_NAMES = {
    **METHODS,
    "ideal_binary_mask": "Ideal binary mask (ceiling)",
    "ideal_ratio_mask": "Ideal ratio mask (ceiling)",
    "mixture": "Mixture (floor)",
}


def markdown_table(report: dict) -> str:
    summary, methods = report["summary"], report["methods"]
    seeds = len(report["seeds"])
    num_mixtures = report["runs"][0]["test"]["num_mixtures"] if report.get("runs") else "?"
    ideal_rows = [row for row in IDEAL_ROWS if row in summary]
    rows = ideal_rows + methods + ["mixture"]
    recipe = f"recipe `{report.get('recipe', 'baseline')}`"
    if "recipes" in report:  # a combined report (--combine): each method under its own recipe
        recipe = "a recipe per method"
        seeds = "each method's " + ", ".join(f"{ROW_NAMES.get(m, m).split(' (')[0]}: {len(v)}" for m, v in report["seeds_by_method"].items())
    lines = [
        f"# Separation quality: {report['dataset']}, budget `{report['budget_name']}`, {recipe}",
        "",
    ]
    if "recipes" in report:
        lines += [
            "Each method trained with its own recipe (`RECIPES` in benchmarks/quality.py), runs taken from: "
            + "; ".join(f"{ROW_NAMES.get(m, m)}: `{r}`, seeds {', '.join(map(str, report['seeds_by_method'][m]))} "
                        f"({folder_names(report['combined_from'][m])})" for m, r in report["recipes"].items()) + ".",
            "",
        ]  # fmt: skip
    lines += [
        f"Test split, pairs of clips mixed (N = 2; solos and duets; {num_mixtures} mixtures: every pair, or every "
        f"shared-class pair and a seeded sample of the others), BSS Eval v3 (fast backend); mean ± std over {seeds} "
        f"seed(s) (± only with 2 or more); {steps_text(report)}, "
        f"`{report['budget']['model_size']}` configs. Generated by `benchmarks/quality.py` from quality.json.",
        "",
        "| Method | SDR (dB), soft masks | SDR (dB), masks > 0.5 (SoP protocol, as the paper) | % of ideal binary mask | SIR (dB) | SAR (dB) | SDR, conditioning swapped (dB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(value, plain=False):
        if not value or value["n"] == 0:
            return "-"
        return f"{value['mean']:.2f}" if value["n"] < 2 or plain else f"{value['mean']:.2f} ± {value['std']:.2f}"

    def percent(row):
        value = row.get("sdr_threshold_percent_of_ideal", row.get("sdr_percent_of_ideal"))
        return "-" if value is None else f"{value:.0f} %"

    for method in rows:
        row = summary[method]
        ideal_or_floor = method in ideal_rows or method == "mixture"
        cells = [  # the ceilings and the floor: the same mixtures in every run (no spread)
            cell(row["sdr"], ideal_or_floor), "-" if ideal_or_floor else cell(row.get("sdr_threshold")),
            "-" if ideal_or_floor else percent(row), cell(row["sir"], ideal_or_floor),
            "-" if method == "mixture" else cell(row["sar"], ideal_or_floor), cell(row.get("sdr_swapped")),
        ]  # fmt: skip
        lines.append(f"| {ROW_NAMES.get(method, method)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Soft masks: the predicted masks as they are. Masks > 0.5: the Sound-of-Pixels protocol that the paper's "
        "Table 1 uses (binary masks thresholded at 0.5): the column to compare with the paper. The ideal masks "
        "(computed from the true sources) go through the very same chain (log-frequency mask, mixture phase, "
        "inverse STFT): the ceiling of what a mask can reach on these mixtures; % of ideal: the thresholded SDR "
        "(soft SDR where there is none) over the ideal binary mask's SDR.",
        "The mixture floor's SAR is not shown: the mixture has no artifacts (its SAR is numerical noise).",
        "Last column: the same test mixtures with the two sources' conditioning (frames, pose) exchanged, scored "
        "against the original references. A model that uses its conditioning falls there (it now separates the "
        "other source); one that ignores it scores as in the SDR column. The audio-only model has no conditioning.",
    ]
    told = [m for m in methods if "sdr_class_told" in summary[m]]
    if told:
        lines += ["", "**The class told** (TriBERT with the frames' class scores in the U-Net's condition: the same test "
                  "mixtures with each video's labels in place of its class scores, soft masks; what perfect "
                  "classification would give this U-Net): " + "; ".join(
                      f"{ROW_NAMES.get(m, m)}: SDR {cell(summary[m]['sdr_class_told'])} against {cell(summary[m]['sdr'])}, "
                      + ", ".join(f"{kind.replace('_', ' ')} {cell(summary[m]['by_pair_class_told'][kind])} against "
                                  f"{cell(summary[m]['by_pair'][kind])}" for kind in PAIR_KINDS)
                      for m in told) + "."]  # fmt: skip
    skipped = {
        m: [(r["test"].get("num_skipped", 0), r["test"].get("num_skipped", 0) + r["test"]["num_mixtures"]) for r in report.get("runs", []) if r["method"] == m]
        for m in methods
    }  # fmt: skip
    skipped = {m: runs for m, runs in skipped.items() if any(k for k, _ in runs)}
    if skipped:
        lines += [
            "",
            "**Skipped mixtures** (Sound-of-Pixels' rule: a silent estimate or reference leaves the mixture out of "
            "the means; a model that gives a whole mixture to one output and nothing to the other is skipped "
            "there, not scored low): "
            + "; ".join(f"{ROW_NAMES.get(m, m)}: " + ", ".join(f"{k} of {n}" for k, n in runs) + " (per seed)" for m, runs in skipped.items())
            + ".",
        ]
    by_pair = {m: summary[m].get("by_pair", {}) for m in rows}
    counts = report["runs"][0]["test"].get("by_pair", {}) if report.get("runs") else {}
    if any(by_pair.values()) and counts:
        head = []
        for kind in PAIR_KINDS:
            label = f"{kind.replace('_', ' ')} ({counts[kind]['num_mixtures']} mixtures)"
            head += [f"SDR (dB), {label}, soft", f"SDR (dB), {label}, > 0.5"]
        lines += ["", "### By pair kind", "", "| Method | " + " | ".join(head) + " |", "|---" + "|---:" * len(head) + "|"]
        for method in rows:
            threshold = summary[method].get("by_pair_threshold", {})
            cells = []
            plain = method in ideal_rows or method == "mixture"
            for kind in PAIR_KINDS:
                cells += [cell(by_pair[method].get(kind), plain), cell(threshold.get(kind))]
            lines.append(f"| {ROW_NAMES.get(method, method)} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "The same test mixtures, split by whether the two clips share an instrument class: "
            + "; ".join(f"*{kind.replace('_', ' ')}*: {text}" for kind, text in PAIR_KINDS.items())
            + ". Conditioning that only tells the separator *which instrument* to extract cannot separate two "
            "players of the same class; only *when* each one plays (pose, note onsets) can.",
        ]
    return "\n".join(lines) + "\n"


def plot_curves(results: list[dict], methods: list[str], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    for method in methods:
        runs = [r["validation"] for r in results if r["method"] == method and r["validation"]]
        if not runs:
            continue
        steps = [row["step"] for row in runs[0]]
        means = [statistics.fmean(run[i]["sdr"] for run in runs if i < len(run)) for i in range(len(steps))]
        axes.plot(steps, means, "o-", label=METHODS[method])
    floors = [row["sdr_mixture"] for r in results for row in r["validation"][:1]]
    if floors:
        axes.axhline(statistics.fmean(floors), color="grey", linestyle="--", label="mixture floor")
    axes.set(xlabel="training step", ylabel="validation SDR (dB)", title="Validation SDR (mean over seeds)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def write_report(report: dict, output_dir: str) -> None:
    """quality.json, quality.md and quality.png of a report; prints the table and a one-line summary."""
    os.makedirs(output_dir, exist_ok=True)
    _atomic_json(os.path.join(output_dir, "quality.json"), report)
    table = markdown_table(report)
    with open(os.path.join(output_dir, "quality.md"), "w") as f:
        f.write(table)
    plot_curves(report["runs"], report["methods"], os.path.join(output_dir, "quality.png"))
    print("\n" + table)
    s, methods = report["summary"], report["methods"]
    print(
        "quality: " + ", ".join(f"{m} {s[m]['sdr']['mean']:.2f}±{s[m]['sdr']['std']:.2f}" for m in methods)
        + "".join(f", {row} {s[row]['sdr']['mean']:.2f}" for row in IDEAL_ROWS if row in s)
        + f", mixture {s['mixture']['sdr']['mean']:.2f} dB SDR ({report['dataset']}, {report['budget_name']} budget) -> {output_dir}"
    )


# The wall-clock minutes of training a budget stands for (`--calibrate` times each method's whole training step against
# them; `--minutes` for the others).
BUDGET_MINUTES = {"cpu30": 30, "cpu30time": 30, "cpu30time_half": 30}


def calibrate(budget: dict, methods: list[str], seed: int, args) -> dict:
    """Times each method's whole training step under the budget and recipe (`--calibrate STEPS`): STEPS steps of the
    training recipe with the run's arguments (data loading, the collator's mixing and STFTs, forward, backward, the
    optimizer; not validation or saving), the seconds a step from `train_log.jsonl`'s `step_seconds` (the median of
    its windows after the first quarter of the steps, which warms up). Against the budget's minutes: how long the
    budget's steps of each method take, and how many steps fit. Writes calibration.json / calibration.md in
    --output_dir, a row per method and recipe: a call with another recipe into the same folder (same budget, dataset,
    minutes and steps timed) adds its rows. The timed runs are removed. Time one run at a time on an idle machine."""
    from tribert_hf.training.separation import main as train

    minutes = args.minutes if args.minutes is not None else BUDGET_MINUTES.get(args.budget)
    if minutes is None:
        raise SystemExit(f"The {args.budget} budget names no minutes ({', '.join(BUDGET_MINUTES)} do): give --minutes.")
    steps = args.calibrate
    if steps < 2:
        raise SystemExit(f"--calibrate {steps}: time at least 2 steps (a few hundred give a steady median).")

    import torch

    report = {
        "benchmark": "quality-calibration", "dataset": args.dataset, "budget_name": args.budget, "budget": budget,
        "minutes": minutes, "steps_timed": steps, "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "rows": [],
    }  # fmt: skip
    path = os.path.join(args.output_dir, "calibration.json")
    if os.path.isfile(path):  # rows of other recipes or methods timed before under the same settings are kept
        with open(path) as f:
            before = json.load(f)
        if all(before.get(key) == report[key] for key in ("dataset", "budget_name", "budget", "minutes", "steps_timed", "cpu_threads")):
            report["rows"] = [r for r in before["rows"] if not (r["recipe"] == args.recipe and r["method"] in methods)]
    logging = max(1, min(10, steps // 8))
    for method in methods:
        run_dir = os.path.join(args.output_dir, "calibration", f"{method}-seed{seed}")
        shutil.rmtree(run_dir, ignore_errors=True)
        argv = training_argv(method, seed, {**budget, "max_steps": steps, "eval_steps": steps}, args, run_dir)
        argv[argv.index("--logging_steps") + 1] = str(logging)
        argv += ["--max_eval_mixtures", "2"]  # the one validation at the end is not timed: keep it short
        load = os.getloadavg()[0]
        print(f"[calibrate] {method}: {steps} steps ({args.budget} budget, recipe {args.recipe}; load {load:.2f})")
        started = time.perf_counter()
        train(argv)
        wall = time.perf_counter() - started
        with open(os.path.join(run_dir, "train_log.jsonl")) as f:
            log = [json.loads(line) for line in f if line.strip()]
        timed = [row for row in log if row["step"] > steps // 4] or log
        seconds = statistics.median(row["step_seconds"] for row in timed)
        budget_steps = method_budget(budget, method)["max_steps"]
        command = [f"OMP_NUM_THREADS={torch.get_num_threads()} python benchmarks/quality.py --budget {args.budget} --recipe {args.recipe}"]
        command += [f"--{key} {getattr(args, key)}" for key in ("max_steps", "mixtures_per_batch", "eval_steps", "minutes") if getattr(args, key) is not None]
        command += [f"--methods {method} --seeds {seed} --calibrate {steps} --dataset {args.dataset} --output_dir {args.output_dir}"]
        report["rows"].append({
            "method": method, "recipe": args.recipe, "recipe_arguments": RECIPES[args.recipe], "seed": seed, "command": " ".join(command),
            "seconds_per_step": seconds, "timed_from_step": timed[0]["step"], "budget_steps": budget_steps,
            "budget_minutes": budget_steps * seconds / 60, "steps_in_minutes": int(minutes * 60 / seconds),
            "wall_seconds": wall, "load_before": load,
            "windows": [{"step": r["step"], "step_seconds": r["step_seconds"]} for r in log],
        })  # fmt: skip
        shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(os.path.join(args.output_dir, "calibration"), ignore_errors=True)
    lines = [
        f"# Whole training steps under the {args.budget} budget ({args.dataset}, {torch.get_num_threads()} threads, "
        f"{steps} steps timed per run, the median after step {steps // 4})",
        "",
        f"| method | recipe | seconds a step | the budget's steps | their minutes | steps in {minutes:g} min | load before |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['method']} | `{r['recipe']}` | {r['seconds_per_step']:.3f} | {r['budget_steps']} | {r['budget_minutes']:.1f} | {r['steps_in_minutes']} | {r['load_before']:.2f} |"
        for r in report["rows"]
    ]
    os.makedirs(args.output_dir, exist_ok=True)
    _atomic_json(path, report)
    with open(os.path.join(args.output_dir, "calibration.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
    timed_now = [r for r in report["rows"] if r["recipe"] == args.recipe and r["method"] in methods]
    print(
        f"calibration ({args.budget}, {args.recipe}, {torch.get_num_threads()} threads): "
        + ", ".join(f"{r['method']} {r['seconds_per_step']:.3f} s a step, its {r['budget_steps']} steps {r['budget_minutes']:.1f} min, {r['steps_in_minutes']} in {minutes:g}" for r in timed_now)
        + f" -> {args.output_dir}"
    )
    return report


def combine(items: list[str], output_dir: str) -> dict:
    """One report from the runs of finished reports: `METHOD=FOLDER` takes METHOD's runs from FOLDER/quality.json.
    Each method keeps the recipe it was trained with (the report's `recipes`); the folders must agree on the
    budget, the dataset and the test protocol, so that every method is scored on the same test mixtures. A method
    named more than once takes its runs from every folder named (seeds trained in different folders or on
    different machines): the folders must then also agree on its recipe and steps, and not repeat a seed."""
    folders = {}  # method -> every (folder, report) named for it
    for item in items:
        method, sep, folder = item.partition("=")
        if not sep or method not in METHODS:
            raise SystemExit(f"--combine takes METHOD=FOLDER with METHOD one of {', '.join(METHODS)}; got {item!r}.")
        path = os.path.join(folder, "quality.json")
        if not os.path.isfile(path):
            raise SystemExit(f"--combine {item}: no report at {path} (run quality.py there first).")
        with open(path) as f:
            report = json.load(f)
        folders.setdefault(method, []).append((folder, report))
    sources = {m: named[0] for m, named in folders.items()}  # method -> its first (folder, report)
    methods = list(sources)
    first_folder, first = sources[methods[0]]
    for method, (folder, report) in ((m, fr) for m in methods for fr in folders[m]):
        for key, value, first_value in (
            ("budget", comparable_budget(report["budget"]), comparable_budget(first["budget"])),
            ("dataset", report["dataset"], first["dataset"]),
        ):
            if value != first_value:
                raise SystemExit(
                    f"--combine: {folder} has {key} {value!r}, {first_folder} has {first_value!r}: the methods "
                    "would not be compared at one budget on one dataset (only the steps may differ)."
                )
        own_folder, own = sources[method]
        for key, value, own_value in (
            ("recipe", report.get("recipe", "baseline"), own.get("recipe", "baseline")),
            ("steps", method_budget(report["budget"], method)["max_steps"], method_budget(own["budget"], method)["max_steps"]),
        ):
            if value != own_value:
                raise SystemExit(f"--combine: {method} has {key} {value!r} in {folder} and {own_value!r} in {own_folder}: its seeds would not be one method's.")
    results = []
    for method in methods:
        seen = {}
        for folder, report in folders[method]:
            runs = [r for r in report["runs"] if r["method"] == method]
            if not runs:
                raise SystemExit(f"--combine: {folder}/quality.json has no run of {method}.")
            if any(r.get("test_protocol") != TEST_PROTOCOL for r in runs):
                raise SystemExit(f"--combine: {folder} was scored with another test protocol; run quality.py there again first.")
            for run in runs:
                if run["seed"] in seen:
                    raise SystemExit(f"--combine: {method} seed {run['seed']} is in {seen[run['seed']]} and in {folder}: name each seed once.")
                seen[run["seed"]] = folder
            results += runs
    recipes = {m: sources[m][1].get("recipe", "baseline") for m in methods}
    seeds = {m: sorted(r["seed"] for r in results if r["method"] == m) for m in methods}
    train_seconds = sum(r["train_seconds"] for r in results)
    budget = {**first["budget"]}
    steps = {m: method_budget(sources[m][1]["budget"], m)["max_steps"] for m in methods}
    budget.pop("steps_by_method", None)
    if len(set(steps.values())) > 1:  # e.g. each method's steps in the same minutes (cpu30time, or --max_steps)
        budget["steps_by_method"] = steps
        budget["max_steps"] = steps[methods[0]]
    names = sorted({sources[m][1]["budget_name"] for m in methods})
    if len(names) > 1:  # runs under budgets that differ in their steps only: the budget whose steps they all had
        names = [n for n in names if n in BUDGETS and comparable_budget(BUDGETS[n]) == comparable_budget(budget)
                 and all(method_budget(BUDGETS[n], m)["max_steps"] == steps[m] for m in methods)] or names  # fmt: skip
    report = {
        "benchmark": "quality", "dataset": first["dataset"], "budget_name": " + ".join(names), "budget": budget,
        "recipe": "per method: " + ", ".join(f"{m} `{recipes[m]}` (seeds {', '.join(map(str, seeds[m]))})" for m in methods),
        "recipes": recipes, "recipe_arguments": {m: RECIPES.get(recipes[m]) for m in methods},
        "combined_from": {m: sources[m][0] if len(folders[m]) == 1 else [f for f, _ in folders[m]] for m in methods},
        "seeds_by_method": seeds,
        "command": "python benchmarks/quality.py --combine " + " ".join(items) + f" --output_dir {output_dir}",
        "methods": methods, "seeds": sorted({s for v in seeds.values() for s in v}), "device": first.get("device", "cpu"),
        "cpu": first["cpu"], "cpu_threads": first["cpu_threads"], "torch": first["torch"],
        "seconds": train_seconds, "train_seconds_total": train_seconds,
        "summary": summarize(results, methods), "runs": results,
    }  # fmt: skip
    figure_methods = same_class_figure_methods(methods)
    if figure_methods:  # each method's first seed, from the folder it was trained in
        seed_folder = {(r["method"], r["seed"]): f for m in methods for f, rep in folders[m] for r in rep["runs"]}
        run_dirs = {m: os.path.join(seed_folder[m, seeds[m][0]], "runs", f"{m}-seed{seeds[m][0]}") for m in figure_methods}
        add_same_class_figure(report, run_dirs, output_dir)
    write_report(report, output_dir)
    return report


def folder_names(folders) -> str:
    """A combined report's source folder(s) of one method, in words (one folder, or several joined by " + ")."""
    return folders if isinstance(folders, str) else " + ".join(folders)


def comparable_budget(budget: dict) -> dict:
    """What `--combine` needs equal in the reports it combines: the budget but its steps (and validation interval)."""
    return {k: v for k, v in budget.items() if k not in ("max_steps", "eval_steps", "steps_by_method")}


def steps_text(report: dict) -> str:
    """The report's steps in words: one number, or each method's (with its measured minutes of training, median)."""
    budget = report["budget"]
    by_method = {m: method_budget(budget, m)["max_steps"] for m in report["methods"]}
    if len(set(by_method.values())) == 1:
        return f"{budget['max_steps']} steps of {budget['mixtures_per_batch']} mixtures"
    parts = []
    for method, steps in by_method.items():
        seconds = [r["train_seconds"] for r in report["runs"] if r["method"] == method]
        minutes = f", {statistics.median(seconds) / 60:.1f} min" if seconds else ""
        parts.append(f"{ROW_NAMES.get(method, method).split(' (')[0]} {steps}{minutes}")
    return f"steps of {budget['mixtures_per_batch']} mixtures per method ({'; '.join(parts)}: median minutes of training, as measured)"


def earlier_runs(args, budget: dict, methods: list[str], seeds: list[int]) -> list[tuple[str, int]]:
    """The (method, seed) runs of the report already in `args.output_dir` that this call does not train, when that
    report was made under the same budget, recipe, dataset and backbone and their runs are still there: a call for
    seed 1 into a folder holding seed 0 reports both. Another report there (other settings) is replaced, as before."""
    path = os.path.join(args.output_dir, "quality.json")
    if args.fresh or not os.path.isfile(path):
        return []
    with open(path) as f:
        report = json.load(f)
    same = {"budget": budget, "recipe": args.recipe, "dataset": args.dataset, "vision_backbone": args.vision_backbone,
            "freeze_vision_backbone": args.freeze_vision_backbone}  # fmt: skip
    before_the_field = {"freeze_vision_backbone": False}  # what a report written before a field existed trained with
    if "combined_from" in report or any(report.get(key, before_the_field.get(key)) != value for key, value in same.items()):
        return []
    earlier = []
    for run in report.get("runs", []):
        key = (run["method"], run["seed"])
        trained_now = run["method"] in methods and run["seed"] in seeds
        if run["method"] in METHODS and not trained_now:
            if os.path.isfile(os.path.join(args.output_dir, "runs", f"{key[0]}-seed{key[1]}", "result.json")) and key not in earlier:
                earlier.append(key)
    if earlier:
        print("[quality] kept in the report, finished before under the same settings: " + ", ".join(f"{m} seed {s}" for m, s in earlier))
    return earlier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="cpu", choices=sorted(BUDGETS))
    parser.add_argument("--dataset", default=None, help="synthetic:tiny, synthetic:small or a prepared folder (default: synthetic:small; tiny budget: synthetic:tiny)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max_steps", type=int, help="override the budget's steps")
    parser.add_argument("--mixtures_per_batch", type=int, help="override the budget's batch")
    parser.add_argument("--eval_steps", type=int, help="override the budget's validation interval")
    parser.add_argument("--recipe", default="baseline", choices=sorted(RECIPES), help="how every method is trained (RECIPES)")
    parser.add_argument("--vision_backbone", help="every method with frames starts its frame backbone from this pretrained ResNet (hub id or local folder; run_separation.py's --vision_backbone)")
    parser.add_argument("--freeze_vision_backbone", action="store_true", help="and keeps it fixed (run_separation.py's --freeze_vision_backbone)")
    parser.add_argument("--num_proc", type=int, default=1)
    parser.add_argument("--cache_dir")
    parser.add_argument("--output_dir", default=os.path.join(HERE, "results", "quality"))
    parser.add_argument("--fresh", action="store_true", help="retrain runs that finished before")
    parser.add_argument(
        "--combine", nargs="+", metavar="METHOD=FOLDER",
        help="train nothing: one report from finished reports, each method's runs taken from the folder named (e.g. "
        "each method under the recipe that suits it); the folders must share the budget, dataset and test protocol; "
        "a method named more than once takes its seeds from each of its folders (e.g. seeds trained on two machines)",
    )  # fmt: skip
    parser.add_argument(
        "--calibrate", type=int, metavar="STEPS",
        help="train nothing to keep: time each method's whole training step (STEPS steps of its recipe, first seed) and "
        "write calibration.json / calibration.md: the seconds a step, how long the budget's steps take, how many fit "
        "in the budget's minutes (run alone, on an idle machine)",
    )  # fmt: skip
    parser.add_argument("--minutes", type=float, help="with --calibrate: the minutes to fit (default: the budget's, BUDGET_MINUTES)")
    args = parser.parse_args(argv)
    if args.combine:
        return combine(args.combine, args.output_dir)

    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"Unknown method(s) {unknown}; use {', '.join(METHODS)}.")
    stride, budget_stride = RECIPES[args.recipe].get("separation_output_stride", 1), BUDGET_OUTPUT_STRIDE.get(args.budget)
    if budget_stride is not None and stride != budget_stride:
        raise SystemExit(
            f"The {args.budget} budget gives each method the steps its step at U-Net output stride {budget_stride} fits "
            f"in the minutes; recipe {args.recipe!r} trains at stride {stride}. Use a recipe with "
            f"separation_output_stride {budget_stride} (e.g. {', '.join(r for r, a in RECIPES.items() if a.get('separation_output_stride') == budget_stride)})."
        )
    budget = dict(BUDGETS[args.budget])
    if args.max_steps is not None and "steps_by_method" in budget:  # every method's steps scaled alike
        scale = args.max_steps / budget["max_steps"]
        budget["steps_by_method"] = {m: max(1, round(s * scale)) for m, s in budget["steps_by_method"].items()}
    for key in ("max_steps", "mixtures_per_batch", "eval_steps"):
        if getattr(args, key) is not None:
            budget[key] = getattr(args, key)
    args.dataset = args.dataset or ("synthetic:tiny" if args.budget == "tiny" else "synthetic:small")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.calibrate is not None:
        return calibrate(budget, methods, seeds[0], args)
    os.makedirs(args.output_dir, exist_ok=True)

    import torch

    started = time.perf_counter()
    results = []
    for seed in seeds:  # seed-major: an early stop still has every method for the first seeds
        for method in methods:
            print(f"[quality] {method}, seed {seed} ({args.budget} budget, {method_budget(budget, method)['max_steps']} steps)")
            results.append(train_and_score(method, seed, budget, args))
    earlier = earlier_runs(args, budget, methods, seeds)  # read now: a call beside this one may have finished since
    for method, seed in earlier:  # finished before under the same settings: kept in the report (scored again if needed)
        results.append(train_and_score(method, seed, budget, args))
    if earlier:
        methods = list(dict.fromkeys([m for m, _ in earlier] + methods))
        seeds = sorted({r["seed"] for r in results})
        results.sort(key=lambda r: (r["seed"], methods.index(r["method"])))
    report = {
        "benchmark": "quality", "dataset": args.dataset, "budget_name": args.budget, "budget": budget,
        "recipe": args.recipe, "recipe_arguments": RECIPES[args.recipe],
        "vision_backbone": args.vision_backbone, "freeze_vision_backbone": args.freeze_vision_backbone,
        "methods": methods, "seeds": seeds, "device": "cpu", "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
        "seconds": time.perf_counter() - started, "train_seconds_total": sum(r["train_seconds"] for r in results), "summary": summarize(results, methods), "runs": results,
    }  # fmt: skip
    figure_methods = same_class_figure_methods(methods)
    if figure_methods:  # issue 15's figure: pooled and temporal, first seed
        run_dirs = {m: os.path.join(args.output_dir, "runs", f"{m}-seed{seeds[0]}") for m in figure_methods}
        add_same_class_figure(report, run_dirs, args.output_dir, args.cache_dir)
    write_report(report, args.output_dir)
    return report


def add_same_class_figure(report: dict, run_dirs: dict, output_dir: str, cache_dir=None) -> None:
    """`same_class.png` in `output_dir` and `report["same_class_example"]` (None when no test pair shares a class)."""
    limit = report["budget"].get("test_mixtures", TEST_MIXTURES)
    path = os.path.join(output_dir, "same_class.png")
    report["same_class_example"] = same_class_figure(run_dirs, report["dataset"], path, cache_dir, limit)
    if report["same_class_example"] is None:
        print("No test pair shares a class: no same_class.png.")


if __name__ == "__main__":
    main()

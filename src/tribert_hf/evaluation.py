"""The evaluation loop of mix-and-separate: batches of mixtures -> masks -> waveforms -> SDR/SIR/SAR.

One loop scores a separation model (TriBERT or a baseline) under several *scorings* of the same mixtures:

* `soft`: the predicted masks as they are;
* `threshold`: binary masks thresholded at 0.5: the Sound-of-Pixels protocol, which the paper's Table 1 and the
  authors' evaluation use: the scoring comparable with the paper (sigmoid ratio masks, in [0, 2], are used as they
  are, as Sound-of-Pixels' evaluation does; masks normalised across the sources, in [0, 1], are thresholded
  whatever their targets: with two sources that is the louder-source assignment);
* `ideal_binary`: the ideal binary mask (1 where the source is the loudest in a bin of the log-frequency grid),
  the ceiling of binary-mask separation through this audio chain;
* `ideal_ratio`: the ideal ratio mask (source over mixture magnitude, clamped as the feature extractor does).

Every scoring goes through the same chain (log-frequency mask -> unwarp -> x mixture STFT -> inverse STFT) and
the same BSS Eval, so the ideal masks say what the chain itself allows on these very mixtures.
"""

from __future__ import annotations

import torch

from .metrics import SeparationMetrics
from .separation.apply import reorder_sources
from .separation.losses import activate_masks, masks_in_unit_range


MODEL_INPUTS = ("pixel_values", "pose_keypoints", "pose_mask", "audio_spectrogram", "class_labels", "labels", "loss_weight")
SCORINGS = {
    "soft": "predicted masks as they are",
    "threshold": "binary masks thresholded at 0.5 (Sound-of-Pixels protocol, comparable with the paper)",
    "ideal_binary": "ideal binary mask (the source is the loudest in the bin)",
    "ideal_ratio": "ideal ratio mask (source / mixture magnitude)",
}
IDEAL_SCORINGS = ("ideal_binary", "ideal_ratio")


def predicted_masks(model, outputs) -> torch.Tensor:
    """Masks in the targets' order: the model's masks, or the PIT baseline's outputs in their best permutation."""
    masks = outputs.get("masks")
    if masks is None:
        config = model.config
        masks = activate_masks(outputs["mask_logits"], config.mask_type, getattr(config, "mask_activation", "sigmoid"))
    if outputs.get("permutation") is not None:
        masks = reorder_sources(masks, outputs["permutation"])
    return masks


def scoring_masks(
    scoring: str, batch: dict, feature_extractor, predicted: torch.Tensor | None, threshold: float = 0.5,
    mask_type: str = "binary", mask_activation: str = "sigmoid",
):  # fmt: skip
    """The masks `(B, N, 256, frames)` that `scoring` (a key of `SCORINGS`) applies to the batch's mixtures
    (`predicted`: the model's masks, of `mask_type` and `mask_activation`; sigmoid ratio masks are not
    thresholded, softmax masks are, whatever their type)."""
    if scoring == "soft":
        return predicted
    if scoring == "threshold":
        return (predicted > threshold).to(predicted.dtype) if masks_in_unit_range(mask_type, mask_activation) else predicted
    if scoring in IDEAL_SCORINGS:
        fe = feature_extractor
        sources = fe.log_frequency_magnitude(batch["source_waveforms"].float())  # (B, N, 256, frames)
        mixture = batch["audio_spectrogram"][:, 0].float()
        kind = "binary" if scoring == "ideal_binary" else "ratio"
        return fe.mask_targets(sources.transpose(0, 1), mixture, kind).transpose(0, 1)
    raise ValueError(f"Unknown scoring {scoring!r}; use one of {', '.join(SCORINGS)}.")


def _suffix(scoring: str) -> str:
    return "" if scoring == "soft" else f"_{scoring}"


@torch.no_grad()
def evaluate_separation_model(
    model,
    loader,
    feature_extractor,
    accelerator=None,
    max_mixtures: int | None = None,
    per_mixture: list | None = None,
    scorings=("soft",),
    threshold: float = 0.5,
    backend: str = "fast",
    on_batch=None,
) -> dict | None:
    """Mean SDR/SIR/SAR of `model` over the mixtures of `loader` (batches of `MixAndSeparateCollator`).

    Returns `SeparationMetrics.compute()` of the `soft` scoring (keys `sdr`, `sir`, `sar`, the mixture floor
    `sdr_mixture`, ..., `num_mixtures`) plus, for every other scoring in `scorings`, its `sdr`, `sir`, `sar` with
    the scoring's name as a suffix (`sdr_threshold`, `sdr_ideal_binary`, `sdr_ideal_ratio`, ...). Only the ideal
    scorings need no model: with `model=None` and `scorings=IDEAL_SCORINGS` it scores the ceilings alone (the
    main keys then hold the first scoring). Stops after about `max_mixtures`. With a list as `per_mixture`,
    each batch's per-mixture result (`evaluate_separation`'s dict for the first scoring, and `sdr_<scoring>` etc.
    arrays for the others) is appended. `on_batch(batch, masks, results)` (optional, main process) sees every
    batch with its predicted masks (None with only ideal scorings) and the per-mixture result of each scoring
    (scoring -> `evaluate_separation`'s dict). `accelerator` (optional) gathers the results across processes;
    returns None on the other processes. Without it, the model's inputs go to the model's device and its masks
    come back to the batch's (what `tribert evaluate` does on a GPU); `loader` is any iterable of batches.
    """
    scorings = tuple(scorings)
    unknown = [name for name in scorings if name not in SCORINGS]
    if unknown or not scorings:
        raise ValueError(f"Unknown or no scoring(s) {unknown or scorings}; use {', '.join(SCORINGS)}.")
    if model is None and any(name not in IDEAL_SCORINGS for name in scorings):
        raise ValueError("Scorings of predicted masks need a model; with model=None use only the ideal scorings.")
    main = scorings[0]
    is_main = accelerator is None or accelerator.is_main_process
    trackers = {name: SeparationMetrics(backend=backend) for name in scorings}
    was_training = model.training if model is not None else False
    device = getattr(model, "device", None) if accelerator is None and model is not None else None
    if model is not None:
        model.eval()
    seen = 0
    for batch in loader:
        predicted, mask_type, activation = None, "binary", "sigmoid"
        if any(name not in IDEAL_SCORINGS for name in scorings):
            inputs = {k: batch[k] if device is None else batch[k].to(device) for k in MODEL_INPUTS}
            outputs = model(**inputs)  # labels: the PIT baseline's best permutation
            unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
            predicted = predicted_masks(unwrapped, outputs)
            if device is not None:
                predicted = predicted.to(batch["mixture_stft"].device)
            config = getattr(unwrapped, "config", None)
            mask_type, activation = getattr(config, "mask_type", "binary"), getattr(config, "mask_activation", "sigmoid")
        length = batch["mixture_waveform"].shape[-1]
        results = {}
        for name in scorings:
            masks = scoring_masks(name, batch, feature_extractor, predicted, threshold, mask_type, activation)
            estimates = feature_extractor.masks_to_waveforms(masks, batch["mixture_stft"], length)
            mixture = batch["mixture_waveform"][:, None].expand_as(estimates)
            references = batch["source_waveforms"]
            if accelerator is not None:
                estimates, references, mixture = accelerator.gather_for_metrics((estimates, references, mixture))
            if is_main:
                results[name] = trackers[name].update(references.cpu(), estimates.cpu(), mixture[:, 0].cpu())
        if is_main and per_mixture is not None:
            row = dict(results[main])
            for name in scorings[1:]:
                row.update({f"{key}{_suffix(name)}": results[name][key] for key in ("sdr", "sir", "sar")})
            per_mixture.append(row)
        if is_main and on_batch is not None:
            on_batch(batch, predicted, results)
        seen += estimates.shape[0]
        if max_mixtures is not None and seen >= max_mixtures:
            break
    if model is not None and was_training:
        model.train()
    if not is_main:
        return None
    out = trackers[main].compute()
    for name in scorings[1:]:
        computed = trackers[name].compute()
        out.update({f"{key}{_suffix(name)}": computed[key] for key in ("sdr", "sir", "sar")})
    return out


__all__ = ["IDEAL_SCORINGS", "MODEL_INPUTS", "SCORINGS", "evaluate_separation_model", "predicted_masks", "scoring_masks"]

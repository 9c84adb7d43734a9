"""The mask losses of mix-and-separate (TriBERT and the baselines), with the two rules they share.

* Loss weight: `log1p(mixture magnitude)` clamped to `LOSS_WEIGHT_RANGE` (Sound of Pixels), `mask_loss_weight`. The
  feature extractor computes the same (`TriBertFeatureExtractor.loss_weight`, its `loss_weight_range` defaults to
  `LOSS_WEIGHT_RANGE`) and the collator passes it as `loss_weight`; a model given none computes it with the default
  range (a model does not know the feature extractor's).
* Ratio targets: a ratio mask is `RATIO_MASK_MAX * sigmoid(logits)`, in [0, 2], so the loss compares it with the
  target clamped to that range (`ratio_mask_target`). The feature extractor makes ratio targets clamped at its own
  `mask_ratio_max` (5: the ideal ratio mask of evaluation is built from them, and may go above what a model can
  output); in a loss they count up to 2, the effective rule for training.
"""

import itertools

import torch
from torch.nn import functional as F


LOSS_WEIGHT_RANGE = (1e-3, 10.0)
RATIO_MASK_MAX = 2.0
MASK_TYPES = ("binary", "ratio")


def mask_loss_weight(mixture_magnitude: torch.Tensor, weight_range: tuple[float, float] = LOSS_WEIGHT_RANGE) -> torch.Tensor:
    """Per-pixel loss weight: `log1p(mixture magnitude)` clamped to `weight_range` (Sound of Pixels)."""
    low, high = weight_range
    return torch.log1p(mixture_magnitude).clamp(low, high)


def ratio_mask_target(labels: torch.Tensor) -> torch.Tensor:
    """Ratio targets as a loss counts them: clamped to [0, RATIO_MASK_MAX], the range of a ratio mask."""
    return labels.clamp(0, RATIO_MASK_MAX)


def activate_masks(logits: torch.Tensor, mask_type: str = "binary") -> torch.Tensor:
    """Masks from mask logits: `sigmoid` (binary masks, in [0, 1]) or `RATIO_MASK_MAX * sigmoid` (ratio masks)."""
    return torch.sigmoid(logits) if mask_type == "binary" else RATIO_MASK_MAX * torch.sigmoid(logits)


def elementwise_mask_loss(logits: torch.Tensor, labels: torch.Tensor, mask_type: str = "binary") -> torch.Tensor:
    """Unweighted per-pixel loss: BCE with logits (binary masks) or L1 of the ratio mask against
    `ratio_mask_target(labels)` (ratio masks)."""
    labels = labels.to(logits.dtype)
    if mask_type == "binary":
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (activate_masks(logits, mask_type) - ratio_mask_target(labels)).abs()


def _check_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if labels.shape != logits.shape:
        raise ValueError(f"`labels` (mask targets) must have shape {tuple(logits.shape)}, got {tuple(labels.shape)}.")


def mask_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mixture_magnitude: torch.Tensor,
    loss_weight: torch.Tensor | None = None,
    mask_type: str = "binary",
) -> torch.Tensor:
    """Weighted per-pixel mask loss, averaged over every pixel of every mask.

    Args:
        logits: `(batch, N, frequency_bins, frames)` mask logits.
        labels: `(batch, N, frequency_bins, frames)` mask targets (binary, or ratios).
        mixture_magnitude: `(batch, 1, frequency_bins, frames)`: the default weight is `mask_loss_weight` of it.
        loss_weight: `(batch, 1, frequency_bins, frames)` or `(batch, N, ...)` per-pixel weight.
        mask_type: `"binary"` (weighted BCE) or `"ratio"` (weighted L1).
    """
    _check_labels(logits, labels)
    weight = mask_loss_weight(mixture_magnitude) if loss_weight is None else loss_weight
    weight = weight.expand_as(logits) if weight.shape != logits.shape else weight
    return (elementwise_mask_loss(logits, labels, mask_type) * weight).mean()


def permutation_invariant_mask_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mixture_magnitude: torch.Tensor,
    loss_weight: torch.Tensor | None = None,
    mask_type: str = "binary",
) -> tuple[torch.Tensor, torch.LongTensor]:
    """Permutation-invariant (PIT) version of `mask_loss`, for outputs in no particular order.

    For each mixture, the loss of every assignment of outputs to targets (`itertools.permutations`, N! of them) is
    the weighted per-pixel loss of `mask_loss` averaged over the N pairs; the mixture's loss is the smallest, and
    the batch loss their mean (so it equals `mask_loss` of the outputs reordered by the best permutation).

    Args:
        logits, labels, mixture_magnitude, mask_type: as in `mask_loss`.
        loss_weight: `(batch, 1, frequency_bins, frames)` per-pixel weight, or `(batch, N, ...)` one per target (it
            follows the target whatever output is assigned to it); defaults to `mask_loss_weight(mixture_magnitude)`.
    Returns:
        The loss `()` and `permutation` `(batch, N)`: `permutation[b, j]` is the output assigned to target `j`.
    """
    _check_labels(logits, labels)
    batch, sources = logits.shape[:2]
    weight = (mask_loss_weight(mixture_magnitude) if loss_weight is None else loss_weight).expand_as(labels)
    # pair_loss[b, i, j]: output i against target j, (batch, N outputs, N targets).
    outputs, targets = torch.broadcast_tensors(logits[:, :, None], labels[:, None])
    pixels = elementwise_mask_loss(outputs, targets, mask_type) * weight[:, None]
    pair_loss = pixels.mean(dim=(-2, -1))
    permutations = torch.tensor(list(itertools.permutations(range(sources))), device=logits.device)  # (P, N)
    costs = pair_loss[:, permutations, torch.arange(sources, device=logits.device)].mean(dim=-1)  # (batch, P)
    best_cost, best = costs.min(dim=1)
    return best_cost.mean(), permutations[best]


def waveform_sdr_loss(
    estimates: torch.Tensor, references: torch.Tensor, max_sdr: float = 30.0, eps: float = 1e-8
) -> torch.Tensor:
    """Negative signal-to-distortion ratio of waveforms (dB), averaged over every estimate: the plain SDR,
    `10 log10 |s|^2 / |s - s_hat|^2` (the evaluation's BSS Eval SDR also forgives a short distortion filter),
    trained through the masks, the mixture's phase and the inverse STFT (`masks_to_waveforms` is differentiable).
    Computed in float32.

    Bounded to [-max_sdr, max_sdr] per estimate: the error counts at least `10 ** (-max_sdr / 10) |s|^2` (an
    estimate already that good stops pulling, so easy mixtures do not dominate the mean), and an estimate more
    than `max_sdr` dB off, which in practice means a silent or near-silent reference (a pause, a tiny gain), counts
    `max_sdr` and gives no gradient: no SDR is defined for it, and it would otherwise dominate the mean.

    Args:
        estimates, references: `(..., samples)` waveforms of the same shape.
    """
    if estimates.shape != references.shape:
        raise ValueError(f"`estimates` {tuple(estimates.shape)} and `references` {tuple(references.shape)} must have the same shape.")
    estimates, references = estimates.float(), references.float()
    power = references.pow(2).sum(-1)
    error = (references - estimates).pow(2).sum(-1) + 10 ** (-max_sdr / 10) * power
    sdr = 10 * torch.log10((power + eps) / (error + eps))
    return (-sdr).clamp(max=max_sdr).mean()


__all__ = [
    "LOSS_WEIGHT_RANGE",
    "MASK_TYPES",
    "RATIO_MASK_MAX",
    "activate_masks",
    "elementwise_mask_loss",
    "mask_loss",
    "mask_loss_weight",
    "permutation_invariant_mask_loss",
    "ratio_mask_target",
    "waveform_sdr_loss",
]

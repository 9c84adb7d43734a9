"""The mask losses of mix-and-separate (TriBERT and the baselines), with the two rules they share.

* Loss weight: `log1p(mixture magnitude)` clamped to `LOSS_WEIGHT_RANGE` (Sound of Pixels), `mask_loss_weight`. The
  feature extractor computes the same (`TriBertFeatureExtractor.loss_weight`, its `loss_weight_range` defaults to
  `LOSS_WEIGHT_RANGE`) and the collator passes it as `loss_weight`; a model given none computes it with the default
  range (a model does not know the feature extractor's).
* Ratio targets: a ratio mask is `RATIO_MASK_MAX * sigmoid(logits)`, in [0, 2], so the loss compares it with the
  target clamped to that range (`ratio_mask_target`). The feature extractor makes ratio targets clamped at its own
  `mask_ratio_max` (5: the ideal ratio mask of evaluation is built from them, and may go above what a model can
  output); in a loss they count up to 2, the effective rule for training.
* Mask activation (`MASK_ACTIVATIONS`): `"sigmoid"` (the paper's) makes each of a mixture's N masks on its own;
  `"softmax"` normalises them across the N sources (dim 1) so that they sum to 1 in every bin (binary and ratio
  masks alike): the sources share out the mixture, and no bin can be given to nobody or to everybody. (A model
  can still give a whole mixture to one source: the unconditioned PIT baseline does, docs/training.md.)
"""

import itertools

import torch
from torch.nn import functional as F


LOSS_WEIGHT_RANGE = (1e-3, 10.0)
RATIO_MASK_MAX = 2.0
MASK_TYPES = ("binary", "ratio")
MASK_ACTIVATIONS = ("sigmoid", "softmax")
PROBABILITY_EPS = 1e-6  # softmax binary masks: BCE on probabilities clamped to [eps, 1 - eps]


def check_mask_options(mask_type: str, mask_activation: str, owner: str = "") -> None:
    """Refuse a mask type or activation the losses do not know (the configs' check), naming the field."""
    prefix = f"{owner}." if owner else ""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"{prefix}mask_type must be one of {MASK_TYPES}, got {mask_type!r}.")
    if mask_activation not in MASK_ACTIVATIONS:
        raise ValueError(f"{prefix}mask_activation must be one of {MASK_ACTIVATIONS}, got {mask_activation!r}.")


def masks_in_unit_range(mask_type: str, mask_activation: str) -> bool:
    """Whether a model's masks lie in [0, 1] (binary masks, or any masks normalised across the sources), so that
    thresholding them at 0.5 is meaningful; sigmoid ratio masks lie in [0, RATIO_MASK_MAX]."""
    return mask_type == "binary" or mask_activation == "softmax"


def mask_loss_weight(mixture_magnitude: torch.Tensor, weight_range: tuple[float, float] = LOSS_WEIGHT_RANGE) -> torch.Tensor:
    """Per-pixel loss weight: `log1p(mixture magnitude)` clamped to `weight_range` (Sound of Pixels)."""
    low, high = weight_range
    return torch.log1p(mixture_magnitude).clamp(low, high)


def ratio_mask_target(labels: torch.Tensor) -> torch.Tensor:
    """Ratio targets as a loss counts them: clamped to [0, RATIO_MASK_MAX], the range of a ratio mask."""
    return labels.clamp(0, RATIO_MASK_MAX)


def activate_masks(logits: torch.Tensor, mask_type: str = "binary", activation: str = "sigmoid") -> torch.Tensor:
    """Masks from mask logits `(batch, N, frequency_bins, frames)`. `activation="sigmoid"`: each mask on its own,
    `sigmoid` (binary masks, in [0, 1]) or `RATIO_MASK_MAX * sigmoid` (ratio masks). `activation="softmax"`: the
    softmax across the N masks of each mixture (dim 1, computed in float32): in [0, 1], summing to 1 per bin."""
    if activation == "softmax":
        if logits.shape[1] < 2:
            raise ValueError(
                "Softmax masks (mask_activation='softmax') share a mixture out among its sources: with one source "
                "the mask is 1 everywhere and the estimate is the mixture itself. Give two or more videos per "
                "mixture, or use a model with mask_activation='sigmoid'."
            )
        return torch.softmax(logits.float(), dim=1).to(logits.dtype)
    if activation != "sigmoid":
        raise ValueError(f"Mask activation must be one of {MASK_ACTIVATIONS}, got {activation!r}.")
    return torch.sigmoid(logits) if mask_type == "binary" else RATIO_MASK_MAX * torch.sigmoid(logits)


def _mask_error(masks: torch.Tensor, labels: torch.Tensor, mask_type: str) -> torch.Tensor:
    """Unweighted per-pixel loss of activated masks: BCE on probabilities (in float32; F.binary_cross_entropy
    refuses autocast) or L1 against `ratio_mask_target(labels)`."""
    if mask_type == "binary":
        p = masks.float().clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        y = labels.float()
        return -(y * torch.log(p) + (1 - y) * torch.log1p(-p))
    return (masks - ratio_mask_target(labels.to(masks.dtype))).abs()


def elementwise_mask_loss(
    logits: torch.Tensor, labels: torch.Tensor, mask_type: str = "binary", activation: str = "sigmoid"
) -> torch.Tensor:
    """Unweighted per-pixel loss: BCE (with logits for sigmoid masks) of binary masks, or L1 of the ratio mask
    against `ratio_mask_target(labels)`. With `activation="softmax"`, dim 1 of `logits` must be the mixture's
    sources (the masks are normalised across it)."""
    if activation == "sigmoid" and mask_type == "binary":
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
    return _mask_error(activate_masks(logits, mask_type, activation), labels, mask_type)


def _check_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if labels.shape != logits.shape:
        raise ValueError(f"`labels` (mask targets) must have shape {tuple(logits.shape)}, got {tuple(labels.shape)}.")


def mask_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mixture_magnitude: torch.Tensor,
    loss_weight: torch.Tensor | None = None,
    mask_type: str = "binary",
    activation: str = "sigmoid",
) -> torch.Tensor:
    """Weighted per-pixel mask loss, averaged over every pixel of every mask.

    Args:
        logits: `(batch, N, frequency_bins, frames)` mask logits.
        labels: `(batch, N, frequency_bins, frames)` mask targets (binary, or ratios).
        mixture_magnitude: `(batch, 1, frequency_bins, frames)`: the default weight is `mask_loss_weight` of it.
        loss_weight: `(batch, 1, frequency_bins, frames)` or `(batch, N, ...)` per-pixel weight.
        mask_type: `"binary"` (weighted BCE) or `"ratio"` (weighted L1).
        activation: `"sigmoid"` or `"softmax"` (across the N masks), as in `activate_masks`.
    """
    _check_labels(logits, labels)
    weight = mask_loss_weight(mixture_magnitude) if loss_weight is None else loss_weight
    weight = weight.expand_as(logits) if weight.shape != logits.shape else weight
    return (elementwise_mask_loss(logits, labels, mask_type, activation) * weight).mean()


def permutation_invariant_mask_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mixture_magnitude: torch.Tensor,
    loss_weight: torch.Tensor | None = None,
    mask_type: str = "binary",
    activation: str = "sigmoid",
) -> tuple[torch.Tensor, torch.LongTensor]:
    """Permutation-invariant (PIT) version of `mask_loss`, for outputs in no particular order.

    For each mixture, the loss of every assignment of outputs to targets (`itertools.permutations`, N! of them) is
    the weighted per-pixel loss of `mask_loss` averaged over the N pairs; the mixture's loss is the smallest, and
    the batch loss their mean (so it equals `mask_loss` of the outputs reordered by the best permutation).

    Args:
        logits, labels, mixture_magnitude, mask_type, activation: as in `mask_loss`.
        loss_weight: `(batch, 1, frequency_bins, frames)` per-pixel weight, or `(batch, N, ...)` one per target (it
            follows the target whatever output is assigned to it); defaults to `mask_loss_weight(mixture_magnitude)`.
    Returns:
        The loss `()` and `permutation` `(batch, N)`: `permutation[b, j]` is the output assigned to target `j`.
    """
    _check_labels(logits, labels)
    batch, sources = logits.shape[:2]
    weight = (mask_loss_weight(mixture_magnitude) if loss_weight is None else loss_weight).expand_as(labels)
    # pair_loss[b, i, j]: output i against target j, (batch, N outputs, N targets).
    if activation == "sigmoid":
        outputs, targets = torch.broadcast_tensors(logits[:, :, None], labels[:, None])
        pixels = elementwise_mask_loss(outputs, targets, mask_type)
    else:  # normalised across the outputs before they are paired with targets
        outputs, targets = torch.broadcast_tensors(activate_masks(logits, mask_type, activation)[:, :, None], labels[:, None])
        pixels = _mask_error(outputs, targets, mask_type)
    pixels = pixels * weight[:, None]
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
    "MASK_ACTIVATIONS",
    "MASK_TYPES",
    "RATIO_MASK_MAX",
    "activate_masks",
    "check_mask_options",
    "elementwise_mask_loss",
    "mask_loss",
    "mask_loss_weight",
    "masks_in_unit_range",
    "permutation_invariant_mask_loss",
    "ratio_mask_target",
    "waveform_sdr_loss",
]

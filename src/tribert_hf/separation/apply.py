"""Separating audio of any length with a separation model, segment by segment (as demucs' `apply`).

A separation model maps one crop's spectrogram (and each video's inputs) to masks; `separate` takes the model and
the feature extractor it was trained with (the STFT codec: waveform -> spectrogram, masks -> waveforms), cuts the
mixture into overlapping crops, runs the model on batches of them and overlap-adds the estimates. The models
themselves take no feature extractor. TriBERT and both baselines go through the same `separate_in_segments`.

```python
>>> from tribert_hf.separation.apply import separate
>>> estimates = separate(model, waveform, processor.feature_extractor, pixel_values, pose_keypoints, pose_mask=mask)
```
"""

import inspect
import itertools
from collections.abc import Callable

import torch
from torch.nn import functional as F

from tribert_hf.feature_extraction_tribert import pcm_to_float


# The per-video inputs a separation model may be conditioned on, in `forward`'s keyword names.
CONDITIONING_INPUTS = ("pixel_values", "pose_keypoints", "pose_mask")


def reorder_sources(estimates: torch.Tensor, permutation: torch.LongTensor) -> torch.Tensor:
    """Estimates `(batch, N, ...)` of unordered outputs -> `(batch, N, ...)` whose entry `j` is the output that
    `permutation` `(batch, N)` assigns to target `j` (the best permutation of `permutation_invariant_mask_loss`)."""
    if permutation.shape != estimates.shape[:2]:
        raise ValueError(
            f"`permutation` must have shape (batch, N) = {tuple(estimates.shape[:2])}, got {tuple(permutation.shape)}."
        )
    index = permutation.view(*permutation.shape, *([1] * (estimates.ndim - 2))).expand_as(estimates)
    return estimates.gather(1, index.to(estimates.device))


def _best_continuation(previous: torch.Tensor, current: torch.Tensor) -> torch.LongTensor:
    """Order `(batch, N)` of the `current` outputs that best continues `previous` (both `(batch, N, samples)` over
    the same samples): the permutation with the largest summed correlation."""
    similarity = torch.einsum("bis,bjs->bij", previous, current)
    sources = previous.shape[1]
    permutations = torch.tensor(list(itertools.permutations(range(sources))), device=previous.device)
    scores = similarity[:, torch.arange(sources, device=previous.device), permutations].sum(dim=-1)  # (batch, P)
    return permutations[scores.argmax(dim=1)]


def _check_waveform(waveform) -> torch.Tensor:
    """The mixtures `(batch, samples)` as float: integer PCM scaled to [-1, 1) (as the feature extractor does), and
    an error naming the mixture for an empty input, NaN or inf (which would come back as NaN audio)."""
    waveform = pcm_to_float(torch.as_tensor(waveform), "the mixture waveform")
    if waveform.ndim != 2 or 0 in waveform.shape:
        raise ValueError(
            f"The mixture waveform must be (samples,) or (batch, samples) with at least one sample, got shape "
            f"{tuple(waveform.shape)} (mix multichannel audio down to mono first)."
        )
    finite = torch.isfinite(waveform).all(dim=-1)
    if not bool(finite.all()):
        row = int((~finite).nonzero()[0, 0])
        sample = int((~torch.isfinite(waveform[row])).nonzero()[0, 0])
        raise ValueError(
            f"Mixture {row} contains NaN or infinite samples (first at sample {sample}): the separated audio would "
            "be NaN. Repair the input (e.g. `torch.nan_to_num`) first."
        )
    return waveform


def segment_hop(segment: int, overlap: float) -> int:
    """Samples between the starts of consecutive segments: `segment * (1 - overlap)`, at least 1."""
    return max(1, int(round(segment * (1.0 - overlap))))


def segment_starts(length: int, segment: int, overlap: float = 0.25) -> list[int]:
    """First samples of the segments that `separate_in_segments` cuts `length` samples into: `segment` samples
    each, `segment_hop` apart, the last one ending at the end of the audio."""
    hop = segment_hop(segment, overlap)
    return [0] if length <= segment else list(range(0, length - segment, hop)) + [length - segment]


@torch.no_grad()
def separate_in_segments(
    predict_masks: Callable[[torch.Tensor, list[int]], torch.Tensor],
    waveform: torch.Tensor,
    feature_extractor,
    device: torch.device | str = "cpu",
    overlap: float = 0.25,
    batch_size: int = 8,
    mask_threshold: float | None = None,
    align_sources: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Separate `(batch, samples)` mixtures of any length segment by segment, with any mask predictor.

    Audio longer than one crop (`feature_extractor.num_samples`) is cut into segments that overlap by `overlap`
    of a segment, separated `batch_size` segments at a time and overlap-added with linear cross-fades (weights
    summing to one); each estimate is mask x mixture magnitude with the mixture phase, inverse STFT.

    Args:
        predict_masks: called as `predict_masks(audio_spectrogram, starts)` with `audio_spectrogram`
            `(batch * k, 1, 256, frames)` of the k segments that begin at samples `starts` (row `b * k + i` is
            mixture b's segment `starts[i]`); returns masks `(batch * k, N, 256, frames)`.
        feature_extractor: the `TriBertFeatureExtractor` the model was trained with (its STFT, log-frequency warp
            and `masks_to_waveforms`).
        align_sources: for unordered outputs (PIT): reorder each segment's estimates to continue the previous
            segments' in the overlap (largest correlation), so that output j follows one source throughout.
            Needs `overlap > 0`.
    Returns:
        `(batch, N, samples)`.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size (segments per forward pass) must be an integer >= 1, got {batch_size!r}.")
    waveform = _check_waveform(waveform)
    fe = feature_extractor
    batch, length = waveform.shape
    segment = fe.num_samples
    starts = segment_starts(length, segment, overlap)
    fade = segment - segment_hop(segment, overlap) if len(starts) > 1 else 0
    output = None
    total = torch.zeros(length, device=device)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(starts), desc="separate", unit="segment", disable=not progress, leave=False)
    for first in range(0, len(starts), batch_size):
        chunk = starts[first : first + batch_size]
        pieces = torch.stack(
            [F.pad(waveform[:, s : s + segment], (0, max(0, s + segment - length))) for s in chunk], dim=1
        ).to(device)  # (batch, segments, segment)
        spectrogram, stft = fe.log_frequency_magnitude(pieces.flatten(0, 1), return_stft=True)
        masks = predict_masks(spectrogram.unsqueeze(1), chunk)
        if mask_threshold is not None:
            masks = (masks > mask_threshold).to(masks.dtype)
        sources = masks.shape[1]
        waves = fe.masks_to_waveforms(masks, stft, segment).view(batch, len(chunk), sources, segment)
        if output is None:
            output = torch.zeros(batch, sources, length, device=device)
        for offset, start in enumerate(chunk):
            current = waves[:, offset]
            if align_sources and fade and start > 0:
                order = _best_continuation(output[:, :, start : start + fade], current[..., :fade])
                current = reorder_sources(current, order)
            weight = torch.ones(segment, device=device)
            if fade and start > 0:
                weight[:fade] = torch.linspace(0, 1, fade + 2, device=device)[1:-1]
            if fade and start + segment < length:
                weight[-fade:] = torch.linspace(1, 0, fade + 2, device=device)[1:-1]
            valid = min(segment, length - start)
            output[:, :, start : start + valid] += current[..., :valid] * weight[:valid]
            total[start : start + valid] += weight[:valid]
        bar.update(len(chunk))
    bar.close()
    return output / total.clamp_min(1e-8)


def required_conditioning(model) -> list[str]:
    """The per-video inputs (`CONDITIONING_INPUTS`) that `model.forward` requires: `pixel_values` and
    `pose_keypoints` for TriBERT, `pixel_values` for Sound of Pixels, none for the audio-only baseline."""
    parameters = inspect.signature(type(model).forward).parameters
    return [name for name in CONDITIONING_INPUTS if name in parameters and parameters[name].default is inspect.Parameter.empty]


def time_resolved_pose(model) -> bool:
    """Whether `model` is conditioned frame by frame on its keypoints (TriBERT with
    `config.separation_conditioning="temporal"`): then every segment needs the keypoints of its own time window."""
    return getattr(getattr(model, "config", None), "separation_conditioning", "pooled") == "temporal"


@torch.no_grad()
def separate(
    model,
    waveform: torch.Tensor,
    feature_extractor,
    pixel_values: torch.Tensor | None = None,
    pose_keypoints: torch.Tensor | None = None,
    pose_mask: torch.Tensor | None = None,
    *,
    conditioning: Callable[[int, int], dict] | None = None,
    overlap: float = 0.25,
    batch_size: int = 8,
    mask_threshold: float | None = None,
    align_sources: bool | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Separate mixtures of any length into one waveform per video (per output for the audio-only baseline) with a
    separation model (`TriBertForSourceSeparation`, `SoundOfPixelsForSourceSeparation`,
    `AudioOnlyForSourceSeparation`).

    Args:
        model: the separation model (its `forward` takes `audio_spectrogram` and the per-video inputs, and returns
            `masks`).
        waveform: `(batch, samples)` or `(samples,)` mixtures at `feature_extractor.sampling_rate`, at least
            one sample: float, or integer PCM (scaled to [-1, 1) as the feature extractor does); NaN / inf
            are refused.
        feature_extractor: the `TriBertFeatureExtractor` the model was trained with (the STFT codec).
        pixel_values / pose_keypoints / pose_mask: each video's inputs, as the model's `forward` takes them
            (`(batch, videos, ...)`, or without `batch` for one mixture); the same frames and keypoints condition
            every segment. The model's required ones (`required_conditioning`), unless `conditioning` is given.
            A model conditioned frame by frame on the keypoints (`config.separation_conditioning="temporal"`)
            takes static keypoints for audio of one segment only: longer audio needs each segment's own keypoints
            (`conditioning`), or every segment would be told the timing of the first.
        conditioning: per-segment inputs instead of those (pass None for them): called as
            `conditioning(start, num_samples)` for each segment (its first sample and length at
            `feature_extractor.sampling_rate`), it returns a dict with the same inputs, taken from the segment's
            time window (so a long video is conditioned on the frames and keypoints of each moment), e.g.
            `lambda start, n: processor.window_inputs(videos, start / rate, video_fps, keypoints, pose_fps)`: the
            keypoints cut to `[start, start + n)` samples and resampled over it, as the processor does for a
            training crop (`tribert_hf.pipelines.SegmentConditioner` does the same for video files).
        overlap: fraction of a segment shared with the next one. Audio longer than one crop
            (`feature_extractor.num_samples`) is cut into segments that overlap by this much, separated one
            by one, and overlap-added with linear cross-fades (weights summing to one).
        batch_size: segments per forward pass (an integer >= 1).
        mask_threshold: binarise the masks at this value (Sound-of-Pixels uses 0.5); None keeps soft masks.
        align_sources: reorder each segment's outputs to continue the previous segment's in the overlap, so that
            output j follows one source throughout; defaults to True for a model whose outputs follow no order
            (`model.outputs_in_order` False: the audio-only baseline trained with PIT), False otherwise.
        progress: show a progress bar over the segments (tqdm).
    Returns:
        `(batch, videos, samples)` (or `(videos, samples)` for one mixture): mask x mixture magnitude with the
        mixture phase, inverse STFT.
    """
    static = {"pixel_values": pixel_values, "pose_keypoints": pose_keypoints, "pose_mask": pose_mask}
    static = {name: value for name, value in static.items() if value is not None}
    required = required_conditioning(model)
    if conditioning is not None and static:
        raise ValueError(f"separate() takes either {', '.join(f'`{n}`' for n in static)} or a per-segment `conditioning`, not both.")
    if conditioning is None and any(name not in static for name in required):
        raise ValueError(
            f"separate() needs either {' and '.join(f'`{n}`' for n in required)} or a per-segment `conditioning` "
            f"({type(model).__name__} is conditioned on them)."
        )
    if (
        conditioning is None and "pose_keypoints" in static and time_resolved_pose(model)
        and waveform.shape[-1] > feature_extractor.num_samples
    ):  # fmt: skip
        raise ValueError(
            f"{type(model).__name__} is conditioned frame by frame on the keypoints (separation_conditioning="
            f"'temporal'): audio longer than one segment ({feature_extractor.num_samples} samples) needs each "
            "segment's own keypoints. Pass a per-segment `conditioning` (e.g. `processor.window_inputs`) instead "
            "of static `pose_keypoints`."
        )
    if align_sources is None:
        align_sources = not getattr(model, "outputs_in_order", True)
    single = waveform.ndim == 1
    waveform = waveform[None] if single else waveform
    fe, device = feature_extractor, model.device

    def inputs_at(start: int) -> dict:
        """The per-video inputs of one segment, with the batch dimension."""
        given = static if conditioning is None else conditioning(start, fe.num_samples)
        given = {name: given[name] for name in CONDITIONING_INPUTS if given.get(name) is not None}
        return {name: value[None] for name, value in given.items()} if single else given

    def predict_masks(audio_spectrogram: torch.Tensor, starts: list[int]) -> torch.Tensor:
        segments = [inputs_at(start) for start in starts]  # each (batch, videos, ...)
        inputs = {
            name: torch.stack([s[name] for s in segments], dim=1).flatten(0, 1).to(device)  # batch-major, as the segments
            for name in segments[0]
        }
        return model(audio_spectrogram=audio_spectrogram, **inputs, return_dict=True).masks

    output = separate_in_segments(
        predict_masks, waveform, fe, device=device, overlap=overlap, batch_size=batch_size,
        mask_threshold=mask_threshold, align_sources=align_sources, progress=progress,
    )  # fmt: skip
    return output[0] if single else output


__all__ = [
    "CONDITIONING_INPUTS",
    "reorder_sources",
    "required_conditioning",
    "segment_starts",
    "separate",
    "separate_in_segments",
    "time_resolved_pose",
]

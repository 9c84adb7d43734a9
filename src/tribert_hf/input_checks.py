"""The input contract of the TriBERT models (see `docs/input_contract.md`) and the standard switches of every model
class: a wrong input gets an error that names it, not a crash deep in torch; an unknown keyword argument a
`TypeError` naming the closest accepted one; floating inputs the model's dtype; `output_attentions` a warning where
the attention implementation returns no weights."""

import difflib
import inspect

import torch
from torch import nn

from transformers.modeling_utils import PreTrainedModel
from transformers.utils import logging

from .configuration_tribert import TriBertConfig


logger = logging.get_logger(__name__)


def check_tensor(name: str, value, ndim: int, layout: str) -> None:
    """Raise an error naming the input `name` unless it is a floating point tensor of `ndim` dimensions (`layout`)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape {layout}, got {type(value).__name__}.")
    if value.ndim != ndim:
        raise ValueError(f"`{name}` must have shape {layout}, got a {value.ndim}-d tensor of shape {tuple(value.shape)}.")
    if not value.is_floating_point():
        raise ValueError(f"`{name}` must be a floating point tensor, got dtype {value.dtype}.")


def check_inputs(config: TriBertConfig, pixel_values, pose_keypoints, audio_spectrogram, pose_mask, audio_repeats=1) -> None:
    """The input contract of `TriBertModel.forward` (see `docs/input_contract.md`): shapes against the config, then
    the values (NaN / inf, `pose_mask` of 0 and 1, a non-negative magnitude) in one pass with one device sync."""
    vc, pc, ac = config.vision_config, config.pose_config, config.audio_config
    check_tensor("pixel_values", pixel_values, 5, "(batch, frames, channels, height, width)")
    check_tensor("pose_keypoints", pose_keypoints, 5, "(batch, persons, frames, joints, 3)")
    check_tensor("audio_spectrogram", audio_spectrogram, 4, "(batch, 1, frequency_bins, time_frames)")
    batch = pixel_values.shape[0]
    if batch == 0:
        raise ValueError("Got an empty batch (batch size 0): give at least one clip.")
    if pixel_values.shape[1] != vc.num_frames or pixel_values.shape[2] != vc.num_channels:
        raise ValueError(
            f"`pixel_values` must have {vc.num_frames} frames of {vc.num_channels} channels "
            f"(batch, {vc.num_frames}, {vc.num_channels}, H, W), got shape {tuple(pixel_values.shape)}."
        )
    if tuple(pixel_values.shape[3:]) != (vc.image_size, vc.image_size):
        raise ValueError(
            f"`pixel_values` frames must be {vc.image_size} x {vc.image_size} (config.vision_config.image_size), got "
            f"{pixel_values.shape[3]} x {pixel_values.shape[4]}: prepare the frames with the checkpoint's "
            "TriBertVideoProcessor (it resizes and centre-crops to that size)."
        )
    if pose_keypoints.shape[1] != pc.num_persons or pose_keypoints.shape[3:] != (pc.num_joints, pc.in_channels):
        raise ValueError(
            f"`pose_keypoints` must have shape (batch, {pc.num_persons} persons, T, {pc.num_joints} joints, "
            f"{pc.in_channels}) with x, y, confidence last; got {tuple(pose_keypoints.shape)}. Pad absent persons "
            "with zeros and mark them in `pose_mask`."
        )
    if pose_keypoints.shape[2] != pc.num_pose_frames:
        raise ValueError(
            f"`pose_keypoints` must have {pc.num_pose_frames} frames (config.pose_config.num_pose_frames), got "
            f"{pose_keypoints.shape[2]}: resample the clip's keypoints with the checkpoint's TriBertProcessor (or "
            "`tribert_hf.pose.keypoints.resample_keypoints`)."
        )
    if audio_spectrogram.shape[1] != 1 or audio_spectrogram.shape[2] != ac.num_frequency_bins:
        raise ValueError(
            f"`audio_spectrogram` must have shape (batch, 1, {ac.num_frequency_bins}, time_frames) (mono, "
            f"{ac.num_frequency_bins} log-frequency bins), got {tuple(audio_spectrogram.shape)}."
        )
    min_frames = 2 ** sum(1 for item in ac.cnn_layers if item == "M")
    if audio_spectrogram.shape[3] < min_frames:
        raise ValueError(
            f"`audio_spectrogram` has {audio_spectrogram.shape[3]} time frame(s) but the audio CNN halves the time "
            f"axis {min_frames.bit_length() - 1} times and needs at least {min_frames}: pad short audio (the feature "
            "extractor zero-pads every clip to its crop length)."
        )
    if pose_keypoints.shape[0] != batch:
        raise ValueError(
            f"`pose_keypoints` has batch size {pose_keypoints.shape[0]} but `pixel_values` has {batch}: the three "
            "streams must describe the same clips."
        )
    if audio_spectrogram.shape[0] * audio_repeats != batch:
        shared = f" x audio_repeats={audio_repeats}" if audio_repeats != 1 else ""
        raise ValueError(
            f"`audio_spectrogram` has batch size {audio_spectrogram.shape[0]}{shared} but `pixel_values` has {batch}: "
            "the three streams must describe the same clips."
        )
    if pose_mask is not None and tuple(pose_mask.shape) != (batch, pc.num_persons):
        raise ValueError(f"`pose_mask` must have shape (batch, {pc.num_persons}), got {tuple(pose_mask.shape)}.")
    if torch.compiler.is_compiling():
        return
    pose_bad = ~torch.isfinite(pose_keypoints).flatten(2).all(dim=-1)  # (batch, persons)
    if pose_mask is not None:
        pose_bad = pose_bad & (pose_mask != 0)  # an absent person's keypoints are ignored, NaN or not
    flags = [
        ~torch.isfinite(pixel_values).flatten(1).all(dim=-1),
        pose_bad.any(dim=-1),
        ~torch.isfinite(audio_spectrogram).flatten(1).all(dim=-1),
        (audio_spectrogram < 0).flatten(1).any(dim=-1) if ac.apply_log else torch.zeros_like(audio_spectrogram[:, 0, 0, 0], dtype=torch.bool),
    ]
    if pose_mask is not None:
        flags.append(((pose_mask != 0) & (pose_mask != 1)).any(dim=-1))
    bad = [row.nonzero().flatten().tolist() for row in flags] if bool(torch.cat([f.flatten() for f in flags]).any()) else []
    if not any(bad):
        return
    if bad[0] or bad[1] or bad[2]:
        name = "pixel_values" if bad[0] else "pose_keypoints" if bad[1] else "audio_spectrogram"
        rows = bad[0] or bad[1] or bad[2]
        where = f"example {rows[0]}"
        if name == "pose_keypoints":
            where += f", person {int(pose_bad[rows[0]].nonzero()[0, 0])} (pose_mask 1)"
        raise ValueError(
            f"`{name}` contains NaN or infinite values ({where}{f' and {len(rows) - 1} more' if len(rows) > 1 else ''}): "
            "one such value would make the whole batch NaN (batch norm mixes the examples). Repair or drop the "
            "clip; a missing joint has confidence 0, a missing person pose_mask 0."
        )
    if bad[3]:
        raise ValueError(
            "`audio_spectrogram` must be a non-negative STFT magnitude (the model takes its log). Got negative "
            "values: if you pass a log-magnitude already, set `config.audio_config.apply_log=False`."
        )
    values = sorted({float(v) for v in pose_mask.unique().tolist()} - {0.0, 1.0})
    raise ValueError(
        f"`pose_mask` must hold 1 (person present) and 0 (absent) only, got {values} (example {bad[4][0]})."
    )


def reject_unknown_kwargs(model: nn.Module, kwargs: dict) -> None:
    """Raise a `TypeError` naming every keyword argument `model.forward` does not take (with the closest name it
    does take), instead of letting a misspelled input such as `pose_masks` go unused."""
    if not kwargs:
        return
    accepted = [
        name for name, p in inspect.signature(type(model).forward).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]  # fmt: skip
    problems = []
    for name in kwargs:
        close = difflib.get_close_matches(name, accepted, n=1)
        problems.append(f"`{name}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
    raise TypeError(
        f"{type(model).__name__}.forward() got unexpected keyword argument(s) {', '.join(problems)}. It takes: "
        f"{', '.join(accepted)}."
    )


def cast_floating(dtype: torch.dtype, *tensors):
    """Floating tensors cast to the model's dtype (float64 inputs into a float32 model, the processor's float32
    into a bfloat16 model); other tensors and None returned as they are."""
    return tuple(t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in tensors)


def resolve_output_attentions(model: PreTrainedModel, output_attentions: bool | None) -> bool:
    """`output_attentions` (argument, else config); False with a warning, as transformers gives, where the attention
    implementation returns no weights (only `"eager"` does)."""
    output_attentions = output_attentions if output_attentions is not None else model.config.output_attentions
    implementation = model.config._attn_implementation
    if output_attentions and implementation != "eager":
        logger.warning_once(
            f"`{implementation}` attention does not support `output_attentions=True`: {type(model).__name__} returns "
            "no attention weights. Please set your attention to `eager` if you want any of these features "
            '(`from_pretrained(..., attn_implementation="eager")` or `model.set_attn_implementation("eager")`).'
        )
        return False
    return bool(output_attentions)


def check_video_inputs(pixel_values, pose_keypoints, pose_mask):
    """The video inputs of the separation and pre-training heads: `(batch, videos, ...)`, one entry per video."""
    if pixel_values.ndim != 6:
        raise ValueError(
            "`pixel_values` must have shape (batch, videos, frames, 3, height, width): one entry per video of the "
            f"mixture; got {tuple(pixel_values.shape)}."
        )
    if pose_keypoints.ndim != 6 or pose_keypoints.shape[:2] != pixel_values.shape[:2]:
        raise ValueError(
            f"`pose_keypoints` must have shape (batch, videos, persons, T, joints, 3) with the batch and videos of "
            f"`pixel_values` {tuple(pixel_values.shape[:2])}; got {tuple(pose_keypoints.shape)}."
        )
    if pose_mask is not None and tuple(pose_mask.shape[:2]) != tuple(pixel_values.shape[:2]):
        raise ValueError(f"`pose_mask` must have shape (batch, videos, persons), got {tuple(pose_mask.shape)}.")


__all__ = [
    "cast_floating",
    "check_inputs",
    "check_tensor",
    "check_video_inputs",
    "reject_unknown_kwargs",
    "resolve_output_attentions",
]

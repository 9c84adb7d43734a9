"""Frames for TriBERT's vision stream: pick 3 consecutive frames of a clip, resize and centre-crop to 224 x 224,
rescale to [0, 1] and normalise with the ImageNet mean/std -> `pixel_values` `(batch, 3, 3, 224, 224)`."""

import numpy as np
import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor

from .remote_code import RemoteCodeMixin


#: frames per second of the frames TriBERT trains on (`tribert prepare` and the synthetic dataset store them at this
#: rate): the conditioning frames of a window are `frame_stride / FRAME_RATE` seconds apart.
FRAME_RATE = 8.0


class TriBertVideoProcessorKwargs(VideosKwargs, total=False):
    """Frame selection: `frame_sampling` ("center" for evaluation, "random" for training), `frame_stride` (frames
    between the picked ones; 1 = consecutive), `seed` (for reproducible "random" picks) and `frame_rate` (frames per
    second of the training frames, saved with the processor)."""

    frame_sampling: str
    frame_stride: int
    seed: int | None
    frame_rate: float


class TriBertVideoProcessor(RemoteCodeMixin, BaseVideoProcessor):
    r"""Video processor of TriBERT.

    Takes one clip or a batch of clips, each `(frames, height, width, 3)` uint8 (or `(frames, 3, H, W)`; float frames
    in [0, 255], or in [0, 1] when every value of the clip lies there; see `docs/input_contract.md`), picks
    `num_frames` (3) frames `frame_stride` apart, centred in the clip (`frame_sampling="center"`) or at a random
    position (`"random"`, seeded by `seed`), resizes the shorter edge to 224, centre-crops 224 x 224 and normalises
    with the ImageNet statistics (torchvision's ResNet-50 recipe). Returns `pixel_values` `(batch, 3, 3, 224, 224)`.

    `frame_rate` (default `FRAME_RATE`, 8) is the rate of the frames the model was trained on. The training recipe
    sets it from its dataset and saves it with the processor; separating a video (`tribert separate`) takes the
    conditioning frames at this rate.
    """

    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"shortest_edge": 224}
    default_to_square = False
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = 3
    frame_sampling = "center"
    frame_stride = 1
    seed = None
    frame_rate = FRAME_RATE
    valid_kwargs = TriBertVideoProcessorKwargs
    model_input_names = ["pixel_values"]

    def __init__(self, **kwargs: Unpack[TriBertVideoProcessorKwargs]):
        super().__init__(**kwargs)

    def frame_indices(self, total_frames: int, num_frames=None, frame_sampling=None, frame_stride=None, seed=None):
        """Indices of the frames to keep out of `total_frames`; a clip shorter than the span repeats its last frame."""
        num_frames = num_frames or self.num_frames
        frame_sampling = frame_sampling or self.frame_sampling
        frame_stride = frame_stride or self.frame_stride
        if total_frames <= 0:
            raise ValueError("The clip has no frames.")
        span = (num_frames - 1) * frame_stride + 1
        room = max(total_frames - span, 0)
        if frame_sampling == "center":
            start = room // 2
        elif frame_sampling == "random":
            start = int(np.random.default_rng(seed).integers(0, room + 1))
        else:
            raise ValueError(f"frame_sampling must be 'center' or 'random', got {frame_sampling!r}.")
        return np.minimum(start + frame_stride * np.arange(num_frames), total_frames - 1)

    def sample_frames(self, metadata, num_frames=None, frame_sampling=None, frame_stride=None, seed=None, **kwargs):
        return self.frame_indices(metadata.total_num_frames, num_frames, frame_sampling, frame_stride, seed)

    def preprocess(self, videos, **kwargs: Unpack[TriBertVideoProcessorKwargs]):
        batch = super().preprocess(_check_videos(videos), **kwargs)
        batch["pixel_values"] = batch.pop("pixel_values_videos")
        return batch


def _check_clip(clip, name: str, rescale_unit_floats: bool = True):
    """One clip's frames as RGB values in [0, 255]: float frames in [0, 1] are scaled by 255; an empty clip, bool,
    NaN / inf, negative values (already normalised `pixel_values`?) or values above 255 are refused."""
    if not isinstance(clip, (np.ndarray, torch.Tensor)):
        return clip  # PIL images, paths, ...: the base class reads them
    values = torch.as_tensor(clip)
    if values.numel() == 0:
        raise ValueError(f"{name} has no frames (shape {tuple(values.shape)}).")
    if values.dtype == torch.bool or values.is_complex():
        raise ValueError(f"{name} has dtype {values.dtype}: frames must be RGB values (uint8 0-255, or float 0-1).")
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite pixel values.")
    if low < 0 or high > 255:
        raise ValueError(
            f"{name} has pixel values in [{low:.3g}, {high:.3g}]: frames must be RGB in [0, 255] (uint8) or [0, 1] "
            "(float). Normalised `pixel_values` go to the model directly, not through the video processor."
        )
    if rescale_unit_floats and values.is_floating_point() and high <= 1.0:
        return clip * 255.0  # float frames in [0, 1]: the rescale below expects 0-255
    return clip


def _check_videos(videos):
    """`_check_clip` on each clip of a batch: a list of 4-d arrays (one per clip) or of 3-d frames (one clip)."""
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("Got an empty batch of videos.")
        if all(isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim == 3 for v in videos):  # the frames of one clip
            frames = [_check_clip(frame, f"Frame {i}", rescale_unit_floats=False) for i, frame in enumerate(videos)]
            unit = all(torch.as_tensor(f).is_floating_point() for f in frames) and all(float(torch.as_tensor(f).max()) <= 1.0 for f in frames)
            return [f * 255.0 for f in frames] if unit else frames
        return [_check_clip(v, f"Video {i}") if v is not None else _none(i) for i, v in enumerate(videos)]
    if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 5:
        return [_check_clip(v, f"Video {i}") for i, v in enumerate(videos)]
    return _check_clip(videos, "The video")


def _none(index):
    raise ValueError(f"Video {index} is None: give frames for every clip of the batch.")


__all__ = ["FRAME_RATE", "TriBertVideoProcessor"]

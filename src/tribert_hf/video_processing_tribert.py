"""Frames for TriBERT's vision stream: pick 3 consecutive frames of a clip, resize and centre-crop to 224 x 224,
rescale to [0, 1] and normalise with the ImageNet mean/std -> `pixel_values` `(batch, 3, 3, 224, 224)`."""

import numpy as np
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor


class TriBertVideoProcessorKwargs(VideosKwargs, total=False):
    """Frame selection: `frame_sampling` ("center" for evaluation, "random" for training), `frame_stride` (frames
    between the picked ones; 1 = consecutive) and `seed` (for reproducible "random" picks)."""

    frame_sampling: str
    frame_stride: int
    seed: int | None


class TriBertVideoProcessor(BaseVideoProcessor):
    r"""Video processor of TriBERT.

    Takes one clip or a batch of clips, each `(frames, height, width, 3)` uint8 (or `(frames, 3, H, W)`), picks
    `num_frames` (3) frames `frame_stride` apart, centred in the clip (`frame_sampling="center"`) or at a random
    position (`"random"`, seeded by `seed`), resizes the shorter edge to 224, centre-crops 224 x 224 and normalises
    with the ImageNet statistics (torchvision's ResNet-50 recipe). Returns `pixel_values` `(batch, 3, 3, 224, 224)`.
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
        batch = super().preprocess(videos, **kwargs)
        batch["pixel_values"] = batch.pop("pixel_values_videos")
        return batch


__all__ = ["TriBertVideoProcessor"]

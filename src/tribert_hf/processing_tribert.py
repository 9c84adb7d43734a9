"""`TriBertProcessor`: one call turns a clip's audio, frames and keypoints into the model's inputs, aligned in time.

The audio crop decides the clip's time window (about 6 s); the 3 frames are taken around the window's centre
and the keypoints are cut to the same window and resampled to T = 256 frames.
"""

import numpy as np
import torch
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .remote_code import RemoteCodeMixin


def frame_window(centre: int, num_frames: int, stride: int, available: int | None = None) -> np.ndarray:
    """Indices of the `num_frames` frames, `stride` apart, that condition a time window centred on frame `centre`:
    the one rule of training crops (`TriBertProcessor.window_inputs`) and of segments of a video file
    (`tribert_hf.pipelines.SegmentConditioner`). Near the clip's edges the window is shifted, not clamped, so that it
    stays inside frames `[0, available)` (`available` None: no end); a clip shorter than the window repeats its
    last frame."""
    if available is not None and available < 1:
        raise ValueError(f"frame_window needs a clip of at least one frame, got available={available}.")
    span = (num_frames - 1) * stride + 1
    first = max(centre - span // 2, 0)
    if available is not None:
        first = min(first, max(available - span, 0))
    indices = first + stride * np.arange(num_frames)
    return indices if available is None else np.minimum(indices, available - 1)


class TriBertProcessor(RemoteCodeMixin, ProcessorMixin):
    r"""Combines [`TriBertFeatureExtractor`] (audio), [`TriBertVideoProcessor`] (frames) and keypoint resampling.

    Args:
        feature_extractor ([`TriBertFeatureExtractor`]), video_processor ([`TriBertVideoProcessor`]).
        num_pose_frames (`int`, defaults to 256): keypoint frames per clip (T).
        num_persons (`int`, defaults to 2): person slots.
        min_person_presence (`float`, defaults to 0.1): a person is present in a clip (pose_mask = 1) when seen in
            at least this fraction of the clip's keypoint frames.
    """

    def __init__(self, feature_extractor, video_processor, num_pose_frames=256, num_persons=2, min_person_presence=0.1):
        self.num_pose_frames = num_pose_frames
        self.num_persons = num_persons
        self.min_person_presence = min_person_presence
        super().__init__(feature_extractor, video_processor)

    def _remote_code_classes(self) -> list[type]:
        return [type(self), type(self.feature_extractor), type(self.video_processor)]

    def __call__(
        self,
        audio=None,
        videos=None,
        pose_keypoints=None,
        sampling_rate: int | None = None,
        video_fps: float | list[float] | None = None,
        pose_fps: float | list[float] | None = None,
        crop: str = "center",
        seed: int | None = None,
        resample: bool = False,
        return_waveform: bool = False,
        return_tensors: str | None = None,
        channel_axis: int | None = None,
    ) -> BatchFeature:
        """Prepare a clip or a batch of clips (lists, one entry per clip). The full input contract (shapes, dtypes,
        ranges, what is refused and why) is in `docs/input_contract.md`.

        Args:
            audio: mono waveform(s) `(samples,)` at `sampling_rate` Hz (a whole number), float in [-1, 1] or
                integer PCM (scaled to [-1, 1)); a batch is a list or a `(batch, samples)` array. Required: it
                fixes the time window. Multichannel clips need `channel_axis` (see `TriBertFeatureExtractor`).
            videos: frames `(frames, H, W, 3)` uint8 per clip (an array, or `tribert_hf.data.LazyFrames` that reads
                only the frames picked; float frames in [0, 1] or [0, 255]), at `video_fps` frames per second. With
                `video_fps` (> 0) the frames are taken around the centre of the audio window; without it (None or
                0), around the clip's centre.
            pose_keypoints: `(persons, N, 68, 3)` per clip (x, y normalised by the frame size, confidence in [0, 1];
                the prepared `pose.npy` format) at `pose_fps` (> 0), or None for a clip without keypoints (zeros,
                pose_mask 0). NaN / inf are refused (a missing joint has confidence 0), and so are coordinates far
                outside [0, 1] (pixels?).
            crop: `"center"` (evaluation) or `"random"` (training) crop of the audio; `seed` makes "random"
                reproducible (clip i uses `seed + i`).
            return_waveform: also return the audio crop itself, `waveform` `(B, 1, num_samples)` (what
                mix-and-separate sums into mixtures).
            return_tensors: `"pt"` for torch tensors (what the models take), `"np"` or None (the default, as in
                transformers' processors) for numpy arrays.

        Returns:
            `BatchFeature` with `audio_spectrogram` `(B, 1, 256, 256)`, `pixel_values` `(B, 3, 3, 224, 224)`,
            `pose_keypoints` `(B, 2, 256, 68, 3)` and `pose_mask` `(B, 2)` (for those given), and `crop_start`,
            `num_valid_samples`.
        """
        if audio is None:
            raise ValueError("TriBertProcessor needs `audio`: the audio crop decides the clip's time window.")
        fe = self.feature_extractor
        is_array = isinstance(audio, (np.ndarray, torch.Tensor))
        single = is_array and (np.ndim(audio) == 1 or (channel_axis is not None and np.ndim(audio) == 2))
        if is_array and not single and np.ndim(audio) != 2:
            raise ValueError(
                f"`audio` must be one clip (samples,), a batch (batch, samples) or a list of clips, got shape "
                f"{tuple(audio.shape)}."
            )
        if is_array and not single:
            from .feature_extraction_tribert import check_audio_layout

            check_audio_layout(tuple(audio.shape))
        if not is_array and not isinstance(audio, (list, tuple)):
            raise TypeError(f"`audio` must be a numpy array, a torch tensor or a list of them, got {type(audio).__name__}.")
        # one conversion and check for all clips: errors name the clip, integer PCM is scaled, channels averaged
        audio_list = fe._to_waveforms(audio if single else list(audio), channel_axis)
        batch = len(audio_list)
        videos = self._as_list(videos, single, batch, "videos")
        pose_keypoints = self._as_list(pose_keypoints, single, batch, "pose_keypoints")
        video_fps = self._per_clip(video_fps, batch, "video_fps")
        pose_fps = self._per_clip(pose_fps, batch, "pose_fps")

        generators = [
            torch.Generator().manual_seed(seed + i) if seed is not None else None for i in range(batch)
        ]
        audio_features = [
            fe(clip, sampling_rate=sampling_rate, crop=crop, resample=resample, generator=g, return_stft=return_waveform, return_tensors="pt")
            for clip, g in zip(audio_list, generators)
        ]
        data = {
            "audio_spectrogram": torch.cat([f["audio_spectrogram"] for f in audio_features]),
            "num_valid_samples": torch.cat([f["num_valid_samples"] for f in audio_features]),
            "crop_start": torch.cat([f["crop_start"] for f in audio_features]),
        }
        if return_waveform:
            data["waveform"] = torch.cat([f["waveform"] for f in audio_features]).unsqueeze(1)
        window_start = data["crop_start"].double() / fe.sampling_rate  # seconds
        window_length = fe.num_samples / fe.sampling_rate

        if videos is not None:
            picked = [
                self._pick_frames(frames, i, float(window_start[i]), window_length, video_fps[i], crop, seed)
                for i, frames in enumerate(videos)
            ]
            data["pixel_values"] = self.video_processor(
                picked, do_sample_frames=False, return_tensors="pt"
            )["pixel_values"]

        if pose_keypoints is not None:
            windows = [
                self._pose_window(pose, i, pose_fps[i], float(window_start[i]), window_length)
                for i, pose in enumerate(pose_keypoints)
            ]
            data["pose_keypoints"] = torch.from_numpy(np.stack([w for w, _ in windows]))
            data["pose_mask"] = torch.from_numpy(np.stack([m for _, m in windows])).long()

        if return_tensors in (None, "np"):
            data = {k: v.numpy() for k, v in data.items()}
        elif return_tensors != "pt":
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")
        return BatchFeature(data=data)

    def _pick_frames(self, frames, index, window_start, window_length, fps, crop="center", seed=None) -> np.ndarray:
        """The `num_frames` frames of clip `index` around the centre of its time window (seconds) at `fps`;
        without `fps`, around the clip's centre (or at random)."""
        vp = self.video_processor
        if frames is None or not hasattr(frames, "__getitem__") or np.ndim(frames) != 4:
            raise ValueError(
                f"videos[{index}] must be (frames, height, width, 3) (an array or LazyFrames), got "
                f"{getattr(frames, 'shape', type(frames).__name__)}."
            )
        if len(frames) == 0:
            raise ValueError(f"videos[{index}] has no frames (shape {tuple(np.shape(frames))}): give at least one.")
        if fps:
            centre = int(round((window_start + window_length / 2) * fps))
            indices = frame_window(centre, vp.num_frames, vp.frame_stride, len(frames))
        else:
            indices = vp.frame_indices(
                len(frames), frame_sampling="random" if crop == "random" else "center",
                seed=None if seed is None else seed + index,
            )  # fmt: skip
        return np.asarray(frames[indices])

    def _pose_window(self, pose, index, fps, window_start, window_length) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints of clip `index` cut to its time window and resampled to `num_pose_frames`, and its pose_mask
        (zeros for a clip without keypoints)."""
        if pose is None:
            return (
                np.zeros((self.num_persons, self.num_pose_frames, 68, 3), dtype=np.float32),
                np.zeros(self.num_persons, dtype=np.int64),
            )
        if not fps:
            raise ValueError(f"pose_keypoints[{index}] needs its frame rate: pass `pose_fps=`.")
        pose = np.asarray(pose, dtype=np.float32)
        if pose.ndim != 4 or pose.shape[0] != self.num_persons or pose.shape[-1] != 3:
            raise ValueError(
                f"pose_keypoints[{index}] must be ({self.num_persons} persons, frames, joints, 3), got {pose.shape}."
            )
        _check_pose(pose, f"pose_keypoints[{index}]")
        from tribert_hf.pose.keypoints import resample_keypoints

        return resample_keypoints(
            pose, fps, window_start, window_length, num_output_frames=self.num_pose_frames,
            min_presence=self.min_person_presence,
        )  # fmt: skip

    def window_inputs(self, videos, window_start: float, video_fps=None, pose_keypoints=None, pose_fps=None) -> BatchFeature:
        """The conditioning of one time window (one audio crop, `feature_extractor.num_samples` long, from
        `window_start` seconds) for each of the N videos of a mixture, e.g. one segment of a long recording.

        Args:
            videos: N clips of frames `(frames, H, W, 3)` uint8 at `video_fps` frames per second.
            pose_keypoints: N entries `(persons, frames, 68, 3)` at `pose_fps`, or None (for all, or per clip).
        Returns:
            `BatchFeature` of tensors: `pixel_values` `(N, 3, 3, 224, 224)`, `pose_keypoints` `(N, 2, 256, 68, 3)`,
            `pose_mask` `(N, 2)`: one video of `TriBertForSourceSeparation`'s `(batch, videos, ...)` inputs.
        """
        videos = list(videos)
        window_length = self.feature_extractor.num_samples / self.feature_extractor.sampling_rate
        video_fps = self._per_clip(video_fps, len(videos), "video_fps")
        poses = self._as_list(pose_keypoints, False, len(videos), "pose_keypoints") or [None] * len(videos)
        pose_fps = self._per_clip(pose_fps, len(videos), "pose_fps")
        picked = [self._pick_frames(f, i, window_start, window_length, video_fps[i]) for i, f in enumerate(videos)]
        windows = [self._pose_window(pose, i, pose_fps[i], window_start, window_length) for i, pose in enumerate(poses)]
        return BatchFeature(
            data={
                "pixel_values": self.video_processor(picked, do_sample_frames=False, return_tensors="pt")["pixel_values"],
                "pose_keypoints": torch.from_numpy(np.stack([w for w, _ in windows])),
                "pose_mask": torch.from_numpy(np.stack([m for _, m in windows])).long(),
            }
        )

    @staticmethod
    def group_videos(clips, num_videos: int) -> BatchFeature:
        """Per-clip rows (what `__call__` returns) -> the `(batch, videos, ...)` inputs of the separation and
        pre-training heads: rows `b * num_videos ... (b + 1) * num_videos - 1` are the videos of example b.

        Give every clip of an example the same audio, the mixture (`processor([mix, mix], videos=[a, b], ...)`):
        each example keeps the spectrogram of its first clip. Returns `pixel_values` `(B, N, 3, 3, 224, 224)`,
        `pose_keypoints` `(B, N, 2, 256, 68, 3)`, `pose_mask` `(B, N, 2)` and `audio_spectrogram`
        `(B, 1, 256, 256)` (those present), torch tensors or numpy arrays as given.
        """
        rows = len(clips["audio_spectrogram"])
        if num_videos < 1 or rows % num_videos:
            raise ValueError(f"Got {rows} clips: not a multiple of num_videos={num_videos}.")
        grouped = {}
        for key in ("pixel_values", "pose_keypoints", "pose_mask"):
            if key in clips:
                grouped[key] = clips[key].reshape(rows // num_videos, num_videos, *clips[key].shape[1:])
        spectrograms = clips["audio_spectrogram"].reshape(rows // num_videos, num_videos, *clips["audio_spectrogram"].shape[1:])
        if not all((spectrograms[:, k] == spectrograms[:, 0]).all() for k in range(1, num_videos)):
            raise ValueError(
                "The clips of an example must share one audio, the mixture: pass the mixture once per video "
                "(processor([mix, mix], videos=[video_a, video_b], ...))."
            )
        grouped["audio_spectrogram"] = spectrograms[:, 0]
        return BatchFeature(data=grouped)

    def post_process_source_separation(self, masks, mixture, mask_threshold: float | None = None) -> torch.Tensor:
        """Masks of `TriBertForSourceSeparation` -> one waveform per video.

        Args:
            masks: `(batch, videos, 256, frames)` (`outputs.masks`), or `(videos, 256, frames)` for one mixture.
            mixture: the audio the spectrogram was computed from, at `feature_extractor.sampling_rate`: `(batch,
                samples)` (or `(samples,)`); for the processor's crop, `processor(..., return_waveform=True)
                ["waveform"]`. For audio of any length, `tribert_hf.separation.apply.separate` (or the
                `"audio-source-separation"` pipeline) separates segment by segment.
            mask_threshold: binarise the masks at this value (Sound-of-Pixels uses 0.5); None keeps them soft.
        Returns:
            `(batch, videos, samples)` (or `(videos, samples)`): mask x mixture magnitude with the mixture phase,
            inverse STFT.
        """
        fe = self.feature_extractor
        masks = torch.as_tensor(masks).float()
        mixture = torch.as_tensor(mixture).float().to(masks.device)
        single = masks.ndim == 3
        masks = masks[None] if single else masks
        mixture = mixture.reshape(-1, mixture.shape[-1])
        if mixture.shape[0] != masks.shape[0]:
            raise ValueError(f"Got {mixture.shape[0]} mixtures for masks of {masks.shape[0]}.")
        stft = fe.stft(mixture)
        if stft.shape[-1] != masks.shape[-1]:
            raise ValueError(
                f"The masks have {masks.shape[-1]} frames but the mixture gives {stft.shape[-1]}: pass the audio the "
                "spectrogram was computed from (processor(..., return_waveform=True)['waveform'])."
            )
        if mask_threshold is not None:
            masks = (masks > mask_threshold).float()
        waveforms = fe.masks_to_waveforms(masks, stft, mixture.shape[-1])
        return waveforms[0] if single else waveforms

    def batch_decode(self, masks, mixture, **kwargs) -> torch.Tensor:
        """Same as `post_process_source_separation` (this processor has no tokenizer to decode with)."""
        return self.post_process_source_separation(masks, mixture, **kwargs)

    @staticmethod
    def _as_list(value, single, batch, name):
        if value is None:
            return None
        values = [value] if single else list(value)
        if len(values) != batch:
            raise ValueError(f"Got {len(values)} {name} for {batch} audio clips: give one per clip.")
        return values

    @staticmethod
    def _per_clip(value, batch, name):
        if value is None or isinstance(value, (int, float, np.integer, np.floating)):
            values = [value] * batch
        else:
            values = list(value)
        if len(values) != batch:
            raise ValueError(f"Got {len(values)} values of {name} for {batch} clips.")
        for i, rate in enumerate(values):
            if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not np.isfinite(rate) or rate < 0):
                raise ValueError(
                    f"{name} of clip {i} is {rate!r}: give the frame rate in frames per second (a finite number > 0), "
                    "or None when unknown."
                )
        return values

    @property
    def model_input_names(self):
        return ["pixel_values", "pose_keypoints", "pose_mask", "audio_spectrogram"]


def _check_pose(pose: np.ndarray, name: str) -> None:
    """Refuse keypoints the model would misread: NaN / inf anywhere, confidences outside [0, 1], coordinates of
    confident joints far outside [0, 1] (pixels instead of fractions of the frame size)."""
    finite = np.isfinite(pose)
    if not finite.all():
        person, frame, joint, channel = np.argwhere(~finite)[0]
        raise ValueError(
            f"{name} has {pose[person, frame, joint, channel]} as {('x', 'y', 'confidence')[channel]} of person "
            f"{person}, frame {frame}, joint {joint}: mark a missing joint with confidence 0 and x = y = 0 (as "
            "`load_keypoints` does), not NaN."
        )
    confidence = pose[..., 2]
    if confidence.size and (confidence.min() < 0 or confidence.max() > 1):
        raise ValueError(
            f"{name} has confidences in [{confidence.min():.3g}, {confidence.max():.3g}]: they must lie in [0, 1]."
        )
    coordinates = np.abs(pose[..., :2][confidence > 0])
    if coordinates.size and coordinates.max() > 2.0:
        raise ValueError(
            f"{name} has coordinates up to {coordinates.max():.4g}: x and y must be fractions of the frame size in "
            "[0, 1] (pixels divided by the width and height, as `load_keypoints` returns them)."
        )


__all__ = ["TriBertProcessor", "frame_window"]

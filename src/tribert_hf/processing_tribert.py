"""`TriBertProcessor`: one call turns a clip's audio, frames and keypoints into the model's inputs, aligned in time.

The audio crop decides the clip's time window (about 6 s); the 3 frames are taken around the window's centre
and the keypoints are cut to the same window and resampled to T = 256 frames.
"""

import numpy as np
import torch
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin


class TriBertProcessor(ProcessorMixin):
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
    ) -> BatchFeature:
        """Prepare a clip or a batch of clips (lists, one entry per clip).

        Args:
            audio: mono waveform(s) `(samples,)` at `sampling_rate` Hz. Required: it fixes the time window.
            videos: frames `(frames, H, W, 3)` uint8 per clip (an array, or `tribert_hf.data.LazyFrames` that reads
                only the frames picked), at `video_fps` frames per second. With `video_fps` the frames are taken
                around the centre of the audio window; without it, around the clip's centre.
            pose_keypoints: `(persons, N, 68, 3)` per clip (x, y normalised by the frame size, confidence; the
                prepared `pose.npy` format) at `pose_fps`, or None for a clip without keypoints (zeros, pose_mask 0).
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
        single = isinstance(audio, (np.ndarray, torch.Tensor)) and np.ndim(audio) == 1
        audio_list = [audio] if single else list(audio)
        batch = len(audio_list)
        videos = self._as_list(videos, single, batch, "videos")
        pose_keypoints = self._as_list(pose_keypoints, single, batch, "pose_keypoints")
        video_fps = self._per_clip(video_fps, batch, "video_fps")
        pose_fps = self._per_clip(pose_fps, batch, "pose_fps")

        fe = self.feature_extractor
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
            picked = []
            for i, frames in enumerate(videos):
                if not hasattr(frames, "__getitem__") or np.ndim(frames) != 4:
                    raise ValueError(
                        f"videos[{i}] must be (frames, height, width, 3) (an array or LazyFrames), got "
                        f"{getattr(frames, 'shape', type(frames).__name__)}."
                    )
                if video_fps[i]:
                    centre = int(round((float(window_start[i]) + window_length / 2) * video_fps[i]))
                    span = (self.video_processor.num_frames - 1) * self.video_processor.frame_stride + 1
                    first = min(max(centre - span // 2, 0), max(len(frames) - span, 0))
                    indices = np.minimum(first + self.video_processor.frame_stride * np.arange(
                        self.video_processor.num_frames), len(frames) - 1)  # fmt: skip
                else:
                    indices = self.video_processor.frame_indices(
                        len(frames), frame_sampling="random" if crop == "random" else "center",
                        seed=None if seed is None else seed + i,
                    )  # fmt: skip
                picked.append(np.asarray(frames[indices]))
            data["pixel_values"] = self.video_processor(
                picked, do_sample_frames=False, return_tensors="pt"
            )["pixel_values"]

        if pose_keypoints is not None:
            from .pose_keypoints import resample_keypoints

            poses, masks = [], []
            for i, pose in enumerate(pose_keypoints):
                if pose is None:
                    poses.append(np.zeros((self.num_persons, self.num_pose_frames, 68, 3), dtype=np.float32))
                    masks.append(np.zeros(self.num_persons, dtype=np.int64))
                    continue
                if not pose_fps[i]:
                    raise ValueError(f"pose_keypoints[{i}] needs its frame rate: pass `pose_fps=`.")
                pose = np.asarray(pose, dtype=np.float32)
                if pose.ndim != 4 or pose.shape[0] != self.num_persons or pose.shape[-1] != 3:
                    raise ValueError(
                        f"pose_keypoints[{i}] must be ({self.num_persons} persons, frames, joints, 3), got {pose.shape}."
                    )
                window, mask = resample_keypoints(
                    pose, pose_fps[i], float(window_start[i]), window_length,
                    num_output_frames=self.num_pose_frames, min_presence=self.min_person_presence,
                )  # fmt: skip
                poses.append(window)
                masks.append(mask)
            data["pose_keypoints"] = torch.from_numpy(np.stack(poses))
            data["pose_mask"] = torch.from_numpy(np.stack(masks)).long()

        if return_tensors in (None, "np"):
            data = {k: v.numpy() for k, v in data.items()}
        elif return_tensors != "pt":
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")
        return BatchFeature(data=data)

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
        if value is None or isinstance(value, (int, float)):
            return [value] * batch
        values = list(value)
        if len(values) != batch:
            raise ValueError(f"Got {len(values)} values of {name} for {batch} clips.")
        return values

    @property
    def model_input_names(self):
        return ["pixel_values", "pose_keypoints", "pose_mask", "audio_spectrogram"]


__all__ = ["TriBertProcessor"]

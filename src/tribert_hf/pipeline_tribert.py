"""The `"audio-source-separation"` pipeline: a recording and the video of each player -> one waveform per player.

Registered with transformers' `PIPELINE_REGISTRY` on `import tribert_hf`, and named in the `custom_pipelines` of
every saved separation or pre-training folder, so that it also runs from the folder's own code:

```python
from transformers import pipeline

separator = pipeline("audio-source-separation", model="my-tribert", trust_remote_code=True)
players = separator({"audio": mixture, "sampling_rate": 44100, "videos": [frames_a, frames_b], "video_fps": 25.0})
players[0]["waveform"]  # (samples,) at players[0]["sampling_rate"] (11025 Hz)
```
"""

import sys

import numpy as np
import torch
from transformers import Pipeline

from tribert_hf.separation.apply import separate


PIPELINE_TASK = "audio-source-separation"


def as_separation_model(model):
    """A `TriBertForSourceSeparation` for `model`: itself, or for a `TriBertForPreTraining` (what the training
    recipe saves) a separation model that shares its encoder and U-Net (no copy of the weights)."""
    if type(model).__name__ == "TriBertForSourceSeparation":
        return model
    module = sys.modules[type(model).__module__]  # local or remote code alike
    if "TriBertForSourceSeparation" in (model.config.architectures or []) and not hasattr(model, "separation"):
        # A separation folder's `AutoModel` is the separation model in its own code, but where tribert_hf is
        # installed its registration (AutoModel -> the bare encoder) wins: load the saved head itself.
        return module.TriBertForSourceSeparation.from_pretrained(model.name_or_path, dtype=model.dtype).to(model.device).eval()
    if not (hasattr(model, "tribert") and hasattr(model, "separation")):
        raise ValueError(
            f"The audio-source-separation pipeline needs a TriBERT separation or pre-training model, got "
            f"{type(model).__name__}."
        )
    separation_class = module.TriBertForSourceSeparation
    with torch.device("meta"):  # only the two sub-modules are kept, and they are the model's own
        separator = separation_class(model.config)
    separator.tribert, separator.separation = model.tribert, model.separation
    return separator.eval()


class TriBertSourceSeparationPipeline(Pipeline):
    r"""Separates a recording into one waveform per player, segment by segment for audio of any length (each segment
    conditioned on the frames and keypoints of its own time window).

    Inputs, one of:
        - a dict: `audio` (mono mixture `(samples,)`), `sampling_rate` (Hz; other rates than the model's are
          resampled), `videos` (one clip of frames `(frames, H, W, 3)` uint8 per player), `video_fps` (frames per
          second of the clips; without it, the frames around each clip's centre condition every segment) and
          optionally `pose_keypoints` (per player `(persons, frames, 68, 3)`, or None) with `pose_fps`;
        - a path to a video file (with `keypoints=` an AlphaPose / COCO-WholeBody JSON to split a duet per player):
          decoding and keypoint reading come from `tribert_hf.media` and `tribert_hf.pipelines`, so this needs
          tribert_hf installed.

    Parameters: `overlap` (fraction of a segment shared with the next, 0.25), `batch_size` (segments per forward
    pass, 8), `mask_threshold` (binarise the masks, None keeps them soft).

    Returns:
        A list with one dict per player: `waveform` (`np.ndarray` `(samples,)`), `sampling_rate` and `label`.
    """

    _load_processor = True
    _load_feature_extractor = False
    _load_video_processor = False
    _load_image_processor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model = as_separation_model(self.model)
        if self.processor is None:
            raise ValueError("The audio-source-separation pipeline needs the model's TriBertProcessor (processor=...).")

    def _sanitize_parameters(self, overlap=None, batch_size=None, mask_threshold=None, keypoints=None, **kwargs):
        preprocess = {} if keypoints is None else {"keypoints": keypoints}
        forward = {k: v for k, v in (("overlap", overlap), ("segment_batch_size", batch_size), ("mask_threshold", mask_threshold)) if v is not None}
        return preprocess, forward, {}

    def preprocess(self, inputs, keypoints=None):
        if isinstance(inputs, str):
            return {"video": inputs, "keypoints": keypoints}
        if not isinstance(inputs, dict) or "audio" not in inputs or "videos" not in inputs:
            raise ValueError(
                "The audio-source-separation pipeline takes a video path or a dict with `audio`, `sampling_rate` and "
                "`videos` (one clip per player), optionally `video_fps`, `pose_keypoints`, `pose_fps`."
            )
        fe = self.processor.feature_extractor
        if inputs.get("sampling_rate") is None:
            raise ValueError(f"Pass the audio's `sampling_rate` (the model works at {fe.sampling_rate} Hz).")
        audio = torch.as_tensor(np.asarray(inputs["audio"], dtype=np.float32))
        if audio.ndim != 1:
            raise ValueError(f"`audio` must be one mono mixture (samples,), got shape {tuple(audio.shape)}.")
        if inputs["sampling_rate"] != fe.sampling_rate:
            import torchaudio

            audio = torchaudio.functional.resample(audio, int(inputs["sampling_rate"]), fe.sampling_rate)
        return {
            "audio": audio,
            "videos": list(inputs["videos"]),
            "video_fps": inputs.get("video_fps"),
            "pose_keypoints": inputs.get("pose_keypoints"),
            "pose_fps": inputs.get("pose_fps"),
        }

    def _forward(self, model_inputs, overlap=0.25, segment_batch_size=8, mask_threshold=None):
        processor, fe = self.processor, self.processor.feature_extractor
        if "video" in model_inputs:
            try:
                from tribert_hf.pipelines import Checkpoint, separate_video
            except ImportError as error:
                raise ImportError(
                    "Separating a video file needs tribert_hf (video decoding, keypoint files): install it, or pass "
                    "the audio and frames as arrays (a dict with `audio`, `sampling_rate`, `videos`)."
                ) from error
            checkpoint = Checkpoint(model=self.model, processor=processor, path=str(getattr(self.model, "name_or_path", "")))
            result = separate_video(
                checkpoint, model_inputs["video"], model_inputs["keypoints"], overlap=overlap,
                batch_size=segment_batch_size, mask_threshold=mask_threshold,
            )  # fmt: skip
            return {"waveforms": torch.from_numpy(result.estimates), "labels": list(result.labels)}

        def conditioning(start: int, num_samples: int) -> dict:
            window = processor.window_inputs(
                model_inputs["videos"], start / fe.sampling_rate, video_fps=model_inputs["video_fps"],
                pose_keypoints=model_inputs["pose_keypoints"], pose_fps=model_inputs["pose_fps"],
            )  # fmt: skip
            return dict(window)

        waveforms = separate(
            self.model, model_inputs["audio"].to(self.model.device), fe, conditioning=conditioning, overlap=overlap,
            batch_size=segment_batch_size, mask_threshold=mask_threshold,
        )  # fmt: skip
        return {"waveforms": waveforms, "labels": [f"player {i}" for i in range(len(waveforms))]}

    def postprocess(self, model_outputs):
        rate = self.processor.feature_extractor.sampling_rate
        waveforms = model_outputs["waveforms"].float().cpu().numpy()
        return [
            {"label": label, "waveform": waveform, "sampling_rate": rate}
            for label, waveform in zip(model_outputs["labels"], waveforms)
        ]


def register_pipeline() -> None:
    """Register the task with transformers (`import tribert_hf` does it): `pipeline("audio-source-separation",
    model=folder)` then works for folders saved before the pipeline existed, too."""
    from transformers.pipelines import PIPELINE_REGISTRY

    from .modeling_tribert import TriBertForSourceSeparation

    if PIPELINE_TASK not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(
            PIPELINE_TASK, pipeline_class=TriBertSourceSeparationPipeline, pt_model=TriBertForSourceSeparation,
            type="multimodal",
        )  # fmt: skip


__all__ = ["TriBertSourceSeparationPipeline", "as_separation_model", "register_pipeline"]

"""Turning rows of a prepared dataset into model inputs, inside `datasets.Dataset.map(batched=True, num_proc=N)`.

    from tribert_hf import TriBertProcessor
    from tribert_hf.data import PreparedClipFeaturizer, load_prepared

    dataset = load_prepared(root)
    featurize = PreparedClipFeaturizer(root, processor, crop="center")
    features = dataset["val"].map(featurize, batched=True, batch_size=8, num_proc=2, with_indices=True,
                                  remove_columns=dataset["val"].column_names, features=featurize.features)
    features.set_format("torch")   # audio_spectrogram, pixel_values, pose_keypoints, pose_mask, class_labels
"""

import os

import numpy as np
import torch

from .prepared import lazy_frames, read_audio, read_pose


class PreparedClipFeaturizer:
    """A picklable `map` function: reads each row's media from `root` and runs the processor on it.

    Args:
        root: the prepared dataset folder.
        processor: a `TriBertProcessor`.
        crop: `"center"` (deterministic) or `"random"`; with `"random"`, example i uses `seed + i` (pass
            `with_indices=True` to `map`), so the features do not depend on batching or the number of processes.
        label2id: class name -> index; adds `class_labels`, a multi-hot float vector. Defaults to MUSIC21.
        return_waveform: also keep the audio crop (`waveform`, `(1, num_samples)`), which mix-and-separate training
            needs (see `MixAndSeparateCollator`).
    """

    def __init__(
        self, root: str, processor, crop: str = "center", seed: int = 0, label2id: dict | None = None,
        return_waveform: bool = False,
    ):  # fmt: skip
        from ..configuration_tribert import MUSIC21_LABELS

        self.root = root
        self.processor = processor
        self.crop = crop
        self.seed = seed
        self.label2id = label2id or {name: i for i, name in enumerate(MUSIC21_LABELS)}
        self.return_waveform = return_waveform
        self._owner_pid = os.getpid()

    @property
    def features(self):
        """`datasets.Features` of the output: fixed-shape arrays, which `map(..., features=...)` stores and reads back
        far faster than nested lists."""
        from datasets import Array2D, Array3D, Array4D, Features, List, Value

        fe, vp, p = self.processor.feature_extractor, self.processor.video_processor, self.processor
        crop = vp.crop_size
        crop = (crop["height"], crop["width"]) if isinstance(crop, dict) else (crop.height, crop.width)
        columns = {"waveform": Array2D((1, fe.num_samples), "float32")} if self.return_waveform else {}
        return Features(
            {
                **columns,
                "audio_spectrogram": Array3D((1, fe.num_frequency_bins, fe.num_frames), "float32"),
                "num_valid_samples": Value("int64"),
                "crop_start": Value("int64"),
                "pixel_values": Array4D((vp.num_frames, 3, *crop), "float32"),
                "pose_keypoints": Array4D((p.num_persons, p.num_pose_frames, 68, 3), "float32"),
                "pose_mask": List(Value("int64"), length=p.num_persons),
                "class_labels": List(Value("float32"), length=len(self.label2id)),
            }
        )

    def example(self, row: dict, index: int = 0) -> dict:
        """Features of one row (numpy arrays, without the batch dimension)."""
        waveform, sampling_rate = read_audio(self.root, row)
        pose = read_pose(self.root, row)
        out = self.processor(  # lists of one clip: a row without keypoints still gets (zero) pose features
            [waveform], videos=[lazy_frames(self.root, row)], pose_keypoints=[pose], sampling_rate=sampling_rate,
            video_fps=row["fps"], pose_fps=row["pose_fps"] or None, crop=self.crop,
            seed=self.seed + index if self.crop == "random" else None, return_waveform=self.return_waveform,
            return_tensors="np",
        )  # fmt: skip
        features = {k: v[0] for k, v in out.items()}
        labels = np.zeros(len(self.label2id), dtype=np.float32)
        unknown = [name for name in row["labels"] if name not in self.label2id]
        if unknown:
            raise ValueError(f"{row['video_id']!r} has labels {unknown} outside the label set.")
        labels[[self.label2id[name] for name in row["labels"]]] = 1.0
        features["class_labels"] = labels
        return features

    def __call__(self, batch: dict, indices=None) -> dict:
        if os.getpid() != self._owner_pid:
            # A `map(num_proc=N)` worker is forked from a process whose torch thread pool already ran; using that
            # pool in the child deadlocks (seen here: the test hung until its timeout). One intra-op thread per
            # worker avoids it, and N workers already use N cores.
            torch.set_num_threads(1)
        names = list(batch)
        size = len(batch[names[0]])
        indices = indices if indices is not None else range(size)
        examples = [self.example({k: batch[k][i] for k in names}, index) for i, index in zip(range(size), indices)]
        return {key: [e[key] for e in examples] for key in examples[0]}


__all__ = ["PreparedClipFeaturizer"]

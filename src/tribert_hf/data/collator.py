"""Mix-and-separate batches: N clips are summed into one mixture; each clip's mask is the training target."""

from collections.abc import Sequence

import numpy as np
import torch


class MixAndSeparateCollator:
    """Collate `batch_size * num_mix` featurized clips into `batch_size` mixtures of `num_mix` videos.

    Each input example (e.g. from `PreparedClipFeaturizer(..., return_waveform=True)`) holds `waveform`
    `(1, num_samples)`, `pixel_values`, `pose_keypoints`, `pose_mask` and `class_labels`. Consecutive groups of
    `num_mix` examples become one mixture (`mix = a1 + a2 + ...`, Sound-of-Pixels); a clip may itself hold several
    instruments (a duet), and its mask covers all of them.

    Returns tensors: `pixel_values` `(B, N, F, 3, H, W)`, `pose_keypoints` `(B, N, P, T, 68, 3)`, `pose_mask`
    `(B, N, P)`, `class_labels` `(B, N, C)`, `audio_spectrogram` `(B, 1, 256, frames)` (the mixture), `labels`
    `(B, N, 256, frames)` (binary: the clip dominates the bin; or ratio targets), `loss_weight` `(B, 1, 256, frames)`,
    and for evaluation `mixture_waveform` `(B, samples)`, `source_waveforms` `(B, N, samples)`, `mixture_stft`
    (complex `(B, 512, frames)`).

    gain_range `(low, high)` (training only, e.g. `(0.5, 1.5)` as in the authors' code): every clip is scaled by
    its own gain drawn uniformly from the range before mixing, so the same clips make new mixtures (and new mask
    targets) each time; the draws come from the collator's generator (`seed`), whose state `state_dict()` /
    `load_state_dict()` save and restore, so that a resumed run draws the same gains.
    """

    def __init__(
        self,
        feature_extractor,
        num_mix: int = 2,
        mask_type: str = "binary",
        gain_range: tuple[float, float] | None = None,
        seed: int = 0,
    ):
        if num_mix < 1:
            raise ValueError(f"num_mix must be at least 1, got {num_mix}.")
        if mask_type not in ("binary", "ratio"):
            raise ValueError(f"mask_type must be 'binary' or 'ratio', got {mask_type!r}.")
        if gain_range is not None and not 0.0 < gain_range[0] <= gain_range[1]:
            raise ValueError(f"gain_range must be (low, high) with 0 < low <= high, got {gain_range}.")
        self.feature_extractor = feature_extractor
        self.num_mix = num_mix
        self.mask_type = mask_type
        self.gain_range = None if gain_range is None else (float(gain_range[0]), float(gain_range[1]))
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def __call__(self, examples: list[dict]) -> dict:
        if len(examples) % self.num_mix:
            raise ValueError(
                f"Got {len(examples)} clips, not a multiple of num_mix={self.num_mix}: use a batch size of "
                "(mixtures per batch) x num_mix and drop_last=True."
            )
        if "waveform" not in examples[0]:
            raise ValueError("Mix-and-separate needs each clip's `waveform`: featurize with return_waveform=True.")
        batch, n = len(examples) // self.num_mix, self.num_mix
        fe = self.feature_extractor

        def stack(key):
            values = torch.stack([torch.as_tensor(example[key]) for example in examples])
            return values.view(batch, n, *values.shape[1:])

        sources = stack("waveform").squeeze(2).float()  # (B, N, samples)
        if self.gain_range is not None:
            low, high = self.gain_range
            sources = sources * torch.empty(batch, n, 1).uniform_(low, high, generator=self.generator)
        mixture = fe.mix(sources.transpose(0, 1))  # (B, samples)
        mixture_magnitude, mixture_stft = fe.log_frequency_magnitude(mixture, return_stft=True)  # (B, 256, frames)
        source_magnitude = fe.log_frequency_magnitude(sources)  # (B, N, 256, frames)
        labels = fe.mask_targets(source_magnitude.transpose(0, 1), mixture_magnitude, self.mask_type).transpose(0, 1)
        return {
            "pixel_values": stack("pixel_values").float(),
            "pose_keypoints": stack("pose_keypoints").float(),
            "pose_mask": stack("pose_mask").long(),
            "class_labels": stack("class_labels").float(),
            "audio_spectrogram": mixture_magnitude.unsqueeze(1),
            "labels": labels.contiguous(),
            "loss_weight": fe.loss_weight(mixture_magnitude).unsqueeze(1),
            "mixture_waveform": mixture,
            "source_waveforms": sources,
            "mixture_stft": mixture_stft,
        }


class _Epoch:
    """The epoch a `MixtureBatchSampler` draws with: accelerate calls `set_epoch` on a batch sampler's `sampler`
    (also when it shards the batch sampler over processes), so the epoch lives here."""

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class MixtureBatchSampler(torch.utils.data.Sampler):
    """Training batches for `MixAndSeparateCollator`: `mixtures_per_batch` groups of `num_mix` row indices each,
    a new shuffle every epoch, and a share of *same-class* mixtures.

    Random pairs of clips rarely share an instrument (about 1 mixture in 21 with MUSIC21's classes), yet two
    players of one instrument are what only timing can separate (`separation_conditioning="temporal"`). With
    `same_class_fraction` p, each mixture is, with probability p, `num_mix` rows of different clips that share a
    class (the class drawn uniformly among those with `num_mix` clips or more); the others are consecutive rows of
    the epoch's permutation, as a shuffled `DataLoader` would give. With p = 0 the batches are exactly those of a
    shuffled DataLoader with the same permutation (`numpy.random.default_rng([seed, epoch])`).

    Args:
        clip_labels: per row, its instrument classes (names or ids).
        clip_ids: per row, the clip it was cut from (rows of one clip never share a same-class mixture); defaults
            to the row itself.
        mixtures_per_batch, num_mix: a batch has `mixtures_per_batch * num_mix` rows.
        same_class_fraction: p in [0, 1].
        seed: with the epoch (`set_epoch`, called by accelerate), what every draw depends on.
    """

    def __init__(
        self,
        clip_labels: Sequence,
        mixtures_per_batch: int,
        num_mix: int = 2,
        same_class_fraction: float = 0.0,
        seed: int = 0,
        clip_ids: Sequence | None = None,
    ):
        if not 0.0 <= same_class_fraction <= 1.0:
            raise ValueError(f"same_class_fraction must be in [0, 1], got {same_class_fraction}.")
        if mixtures_per_batch < 1 or num_mix < 1:
            raise ValueError(f"mixtures_per_batch and num_mix must be positive, got {mixtures_per_batch}, {num_mix}.")
        self.num_rows = len(clip_labels)
        clip_ids = list(range(self.num_rows)) if clip_ids is None else list(clip_ids)
        if len(clip_ids) != self.num_rows:
            raise ValueError(f"clip_ids has {len(clip_ids)} entries for {self.num_rows} rows.")
        self.mixtures_per_batch, self.num_mix = mixtures_per_batch, num_mix
        self.same_class_fraction, self.seed = float(same_class_fraction), seed
        self.sampler = _Epoch()
        rows_by_class: dict = {}
        for row, labels in enumerate(clip_labels):
            for label in labels:
                rows_by_class.setdefault(label, []).append(row)
        self.clip_ids = clip_ids
        self.rows_by_class = {
            label: rows for label, rows in sorted(rows_by_class.items(), key=lambda item: str(item[0]))
            if len({clip_ids[row] for row in rows}) >= num_mix
        }  # fmt: skip
        if self.same_class_fraction > 0 and not self.rows_by_class:
            raise ValueError(f"same_class_fraction > 0 needs a class with {num_mix} different clips or more; there is none.")

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return self.num_rows // (self.mixtures_per_batch * self.num_mix)

    def _same_class_group(self, rng: np.random.Generator) -> list[int]:
        classes = list(self.rows_by_class)
        rows = self.rows_by_class[classes[int(rng.integers(len(classes)))]]
        group, clips = [], set()
        for row in rng.permutation(rows):
            if self.clip_ids[row] not in clips:
                group.append(int(row))
                clips.add(self.clip_ids[row])
                if len(group) == self.num_mix:
                    return group
        raise AssertionError("unreachable: every kept class has num_mix different clips")

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.sampler.epoch])
        order = rng.permutation(self.num_rows).tolist()
        size = self.mixtures_per_batch * self.num_mix
        for start in range(0, len(self) * size, size):
            batch = []
            for k in range(start, start + size, self.num_mix):
                if self.same_class_fraction > 0 and rng.random() < self.same_class_fraction:
                    batch += self._same_class_group(rng)
                else:
                    batch += order[k : k + self.num_mix]
            yield batch


__all__ = ["MixAndSeparateCollator", "MixtureBatchSampler"]

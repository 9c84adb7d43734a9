"""Mix-and-separate batches: N clips are summed into one mixture; each clip's mask is the training target."""

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


__all__ = ["MixAndSeparateCollator"]

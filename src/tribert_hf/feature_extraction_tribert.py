"""Audio features for TriBERT: waveform -> log-frequency STFT magnitude (and back), and mix-and-separate helpers.

The Sound-of-Pixels recipe the paper follows: mono audio at 11025 Hz, crops of 65535 samples (about 6 s), STFT
with a 1022-sample Hann window and hop 256 -> 512 frequency bins x 256 frames, magnitude resampled onto 256
log-spaced frequency rows -> `(1, 256, 256)`.

The log-frequency warp is Sound-of-Pixels' `warpgrid` (row i of the output reads the linear spectrogram at the
normalised frequency `(21 ** ((y + 1) / 2) - 11) / 10`, `y = -1 ... 1`), applied as a linear interpolation along the
frequency axis only (two gathers and a lerp), so it works for any number of frames.
"""

import numpy as np
import torch
from transformers import BatchFeature
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor


def _interpolation_weights(positions: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation of a signal of `size` samples at fractional `positions` (clamped to the ends):
    `value[r] = signal[low[r]] * (1 - frac[r]) + signal[high[r]] * frac[r]`."""
    positions = np.clip(positions, 0, size - 1)
    low = np.floor(positions).astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    return low, high, positions - low


def _interpolation_matrix(positions: np.ndarray, size: int) -> np.ndarray:
    """The same interpolation as a dense `(len(positions), size)` matrix."""
    low, high, frac = _interpolation_weights(positions, size)
    matrix = np.zeros((len(positions), size), dtype=np.float64)
    rows = np.arange(len(positions))
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


def _log_frequency_positions(num_linear_bins: int, num_log_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Fractional source indices of the warp (per log row) and of the unwarp (per linear bin)."""
    y = np.linspace(-1.0, 1.0, num_log_bins)
    linear_position = (np.power(21.0, (y + 1.0) / 2.0) - 11.0) / 10.0
    x = np.linspace(-1.0, 1.0, num_linear_bins)
    log_position = np.log(x * 10.0 + 11.0) / np.log(21.0) * 2.0 - 1.0
    return (linear_position + 1.0) / 2.0 * (num_linear_bins - 1), (log_position + 1.0) / 2.0 * (num_log_bins - 1)


def log_frequency_matrices(num_linear_bins: int = 512, num_log_bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The warp `(num_log_bins, num_linear_bins)` and unwarp `(num_linear_bins, num_log_bins)` matrices.

    Warp: output row i (normalised `y_i = -1 ... 1`) samples the linear axis at `(21 ** ((y_i + 1) / 2) - 11) / 10`.
    Unwarp: linear bin j (normalised `x_j`) samples the log axis at `log(10 x_j + 11) / log(21) * 2 - 1`, the inverse.
    Normalised coordinates map to indices as `(v + 1) / 2 * (n - 1)` (grid_sample with align_corners=True).
    The feature extractor applies the same interpolation with two gathers instead of these dense products.
    """
    warp_positions, unwarp_positions = _log_frequency_positions(num_linear_bins, num_log_bins)
    return (
        _interpolation_matrix(warp_positions, num_linear_bins),
        _interpolation_matrix(unwarp_positions, num_log_bins),
    )


class TriBertFeatureExtractor(SequenceFeatureExtractor):
    r"""Turns mono waveforms into TriBERT's `(1, 256, frames)` log-frequency STFT magnitudes.

    Args:
        sampling_rate (`int`, defaults to 11025): the rate the model was trained at (Hz).
        num_samples (`int`, defaults to 65535): crop length in samples (about 6 s); shorter audio is zero-padded
            at the end (and the padding is reported in `num_valid_samples`).
        n_fft (`int`, defaults to 1022): STFT size and Hann window length (512 frequency bins).
        hop_length (`int`, defaults to 256): STFT hop in samples (65535 samples -> 256 frames).
        num_frequency_bins (`int`, defaults to 256): log-frequency rows of the output.
        mask_ratio_max (`float`, defaults to 5.0): ratio-mask targets are clamped to [0, mask_ratio_max].
        loss_weight_range (`tuple`, defaults to (1e-3, 10)): clamp of the log1p(mixture magnitude) loss weight.
    """

    model_input_names = ["audio_spectrogram"]

    def __init__(
        self,
        sampling_rate: int = 11025,
        num_samples: int = 65535,
        n_fft: int = 1022,
        hop_length: int = 256,
        num_frequency_bins: int = 256,
        mask_ratio_max: float = 5.0,
        loss_weight_range: tuple[float, float] = (1e-3, 10.0),
        padding_value: float = 0.0,
        **kwargs,
    ):
        kwargs.pop("feature_size", None)  # always 1 (mono); present in saved configs
        super().__init__(feature_size=1, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        if n_fft % 2 != 0 or n_fft <= 0 or hop_length <= 0 or num_samples <= 0 or num_frequency_bins <= 1:
            raise ValueError(
                f"Invalid STFT settings: n_fft={n_fft} (must be even and positive), hop_length={hop_length}, "
                f"num_samples={num_samples}, num_frequency_bins={num_frequency_bins}."
            )
        self.num_samples = num_samples
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.num_frequency_bins = num_frequency_bins
        self.mask_ratio_max = mask_ratio_max
        self.loss_weight_range = tuple(loss_weight_range)
        warp_positions, unwarp_positions = _log_frequency_positions(n_fft // 2 + 1, num_frequency_bins)
        self._warp = tuple(torch.from_numpy(a) for a in _interpolation_weights(warp_positions, n_fft // 2 + 1))
        self._unwarp = tuple(torch.from_numpy(a) for a in _interpolation_weights(unwarp_positions, num_frequency_bins))

    # The interpolation tables are derived from the settings: keep them out of the saved JSON.
    def to_dict(self):
        output = super().to_dict()
        output.pop("_warp", None)
        output.pop("_unwarp", None)
        return output

    @staticmethod
    def _interpolate_rows(values: torch.Tensor, table) -> torch.Tensor:
        """Linear interpolation along dim -2 at the table's positions (two gathers and a lerp)."""
        low, high, frac = (t.to(values.device) for t in table)
        frac = frac.to(values.dtype)[:, None]
        return torch.lerp(values.index_select(-2, low), values.index_select(-2, high), frac)

    @property
    def num_linear_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def num_frames(self) -> int:
        """STFT frames of one crop (256 for 65535 samples)."""
        return 1 + self.num_samples // self.hop_length

    # ------------------------------------------------------------------------------------------------------------
    # Input checks
    # ------------------------------------------------------------------------------------------------------------

    def _to_waveforms(self, raw_audio) -> list[torch.Tensor]:
        """Accept one clip or a batch (array/tensor/list) and return a list of 1-d float32 tensors."""
        checked = False  # finiteness already checked for the whole batch
        if isinstance(raw_audio, (np.ndarray, torch.Tensor)):
            tensor = torch.as_tensor(raw_audio)
            if tensor.ndim == 1:
                clips = [tensor]
            elif tensor.ndim == 2:
                tensor = tensor.to(torch.float32)
                # one check for the whole batch: a NaN or inf makes the sum non-finite (a finite sum settles it;
                # otherwise, e.g. on overflow, the element-wise check decides)
                if tensor.numel() and not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
                    index = int((~torch.isfinite(tensor)).any(-1).nonzero()[0, 0])
                    raise ValueError(f"Clip {index} contains NaN or infinite samples.")
                clips, checked = list(tensor), True
            else:
                raise ValueError(
                    f"Expected one mono waveform (samples,) or a batch (batch, samples), got shape "
                    f"{tuple(tensor.shape)}. Stereo audio must be mixed down first, e.g. `waveform.mean(axis=0)`."
                )
        elif isinstance(raw_audio, (list, tuple)):
            if len(raw_audio) == 0:
                raise ValueError("Got an empty batch of audio.")
            if all(isinstance(x, (int, float)) for x in raw_audio):
                clips = [torch.tensor(raw_audio)]
            else:
                clips = [torch.as_tensor(np.asarray(x) if isinstance(x, list) else x) for x in raw_audio]
        else:
            raise TypeError(f"Audio must be a numpy array, a torch tensor or a list of them, got {type(raw_audio).__name__}.")
        out = []
        for index, clip in enumerate(clips):
            if clip.ndim != 1:
                raise ValueError(
                    f"Clip {index} has shape {tuple(clip.shape)}: each clip must be a mono waveform (samples,). "
                    "Stereo audio must be mixed down first, e.g. `waveform.mean(axis=0)`."
                )
            if clip.numel() == 0:
                raise ValueError(f"Clip {index} is empty (0 samples).")
            clip = clip.to(torch.float32)
            if not checked and not torch.isfinite(clip).all():
                raise ValueError(f"Clip {index} contains NaN or infinite samples.")
            out.append(clip)
        return out

    def _check_sampling_rate(self, sampling_rate, resample):
        if sampling_rate is None:
            raise ValueError(
                f"Pass `sampling_rate=` with the audio: TriBERT works at {self.sampling_rate} Hz and refuses to guess "
                "(add `resample=True` to convert other rates)."
            )
        if sampling_rate != self.sampling_rate and not resample:
            raise ValueError(
                f"The audio is sampled at {sampling_rate} Hz but TriBERT expects {self.sampling_rate} Hz. Resample it "
                f"first or call the feature extractor with `resample=True`."
            )

    # ------------------------------------------------------------------------------------------------------------
    # Signal processing (batched torch; any leading dimensions)
    # ------------------------------------------------------------------------------------------------------------

    def _window(self, device, dtype=torch.float32):
        return torch.hann_window(self.n_fft, periodic=True, device=device, dtype=dtype)

    def _spectrum(self, waveform: torch.Tensor) -> torch.Tensor:
        """`(..., samples)` -> complex `(..., frames, 512)`: the STFT with frequency last (centred frames, reflect
        padding, periodic Hann), as `torch.stft` computes it.

        On the CPU the frames are windowed in one pass and transformed by SciPy's FFT (pocketfft; on the 64 x 256
        frames of 64 clips it took 89 ms against torch.fft's 136 ms, both with other work on the CPU); elsewhere,
        and for tensors that need gradients, `torch.stft`.
        """
        shape = waveform.shape
        flat = waveform.reshape(-1, shape[-1])
        if waveform.device.type != "cpu" or waveform.requires_grad or flat.dtype not in (torch.float32, torch.float64):
            spec = torch.stft(
                flat, n_fft=self.n_fft, hop_length=self.hop_length, window=self._window(waveform.device),
                center=True, pad_mode="reflect", return_complex=True,
            ).transpose(-1, -2)  # fmt: skip
        else:
            import scipy.fft

            half = self.n_fft // 2
            if shape[-1] <= half:
                raise ValueError(
                    f"Audio of {shape[-1]} samples is too short for the STFT (n_fft={self.n_fft}): need more than "
                    f"{half} samples."
                )
            padded = torch.nn.functional.pad(flat[:, None], (half, half), mode="reflect")[:, 0]
            frames = padded.unfold(-1, self.n_fft, self.hop_length) * self._window(flat.device, flat.dtype)
            workers = max(1, torch.get_num_threads())
            spec = torch.from_numpy(scipy.fft.rfft(frames.numpy(), axis=-1, workers=workers))
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def stft(self, waveform: torch.Tensor) -> torch.Tensor:
        """`(..., samples)` -> complex `(..., 512, frames)` (centred frames, reflect padding, periodic Hann)."""
        return self._spectrum(waveform).transpose(-1, -2)

    def log_frequency_magnitude(self, waveform: torch.Tensor) -> torch.Tensor:
        """`(..., samples)` -> `(..., 256, frames)`: the model's input, `warp(magnitude(stft(waveform)))`.

        On the CPU: SciPy FFT, NumPy magnitude, one transpose, then the warp's row gathers.
        """
        return self._warped_magnitude(self._spectrum(waveform))

    def _warped_magnitude(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Complex `(..., frames, 512)` -> `(..., 256, frames)` warped magnitude (contiguous)."""
        return self.warp(self.magnitude(spectrum).transpose(-1, -2).contiguous())

    def istft(self, spectrogram: torch.Tensor, length: int) -> torch.Tensor:
        """Complex `(..., 512, frames)` -> `(..., length)` samples (inverse of `stft`)."""
        shape = spectrogram.shape
        wave = torch.istft(
            spectrogram.reshape(-1, *shape[-2:]), n_fft=self.n_fft, hop_length=self.hop_length,
            window=self._window(spectrogram.device), center=True, length=length,
        )  # fmt: skip
        return wave.reshape(*shape[:-2], length)

    def warp(self, linear: torch.Tensor) -> torch.Tensor:
        """Linear-frequency `(..., 512, frames)` -> log-frequency `(..., 256, frames)`."""
        return self._interpolate_rows(linear, self._warp)

    def unwarp(self, log_frequency: torch.Tensor) -> torch.Tensor:
        """Log-frequency `(..., 256, frames)` -> linear-frequency `(..., 512, frames)`."""
        return self._interpolate_rows(log_frequency, self._unwarp)

    def magnitude(self, stft: torch.Tensor) -> torch.Tensor:
        """|STFT|: NumPy's complex `abs` on the CPU (15 ms against torch's 44 ms for 64 clips here), `hypot` of the
        parts elsewhere and for tensors that need gradients."""
        if stft.device.type == "cpu" and not stft.requires_grad and not stft.is_conj():
            return torch.from_numpy(np.abs(stft.numpy()))
        return torch.hypot(stft.real, stft.imag)

    def crop(self, waveform: torch.Tensor, crop: str = "center", generator: torch.Generator | None = None):
        """Cut or zero-pad a `(samples,)` waveform to `num_samples`. Returns the crop and its start sample."""
        length = waveform.shape[-1]
        if crop == "none":
            return waveform, 0
        if crop not in ("center", "random"):
            raise ValueError(f"crop must be 'center', 'random' or 'none', got {crop!r}.")
        if length == self.num_samples:
            return waveform, 0
        if length < self.num_samples:
            return torch.nn.functional.pad(waveform, (0, self.num_samples - length), value=self.padding_value), 0
        if crop == "center":
            start = (length - self.num_samples) // 2
        else:
            start = int(torch.randint(0, length - self.num_samples + 1, (1,), generator=generator))
        return waveform[..., start : start + self.num_samples], start

    # ------------------------------------------------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------------------------------------------------

    def __call__(
        self,
        raw_audio,
        sampling_rate: int | None = None,
        crop: str = "center",
        resample: bool = False,
        generator: torch.Generator | None = None,
        return_stft: bool = False,
        return_tensors: str | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Featurise one clip or a batch of mono clips.

        Args:
            raw_audio: `(samples,)`, `(batch, samples)` or a list of 1-d arrays/tensors (float, any scale).
            sampling_rate: rate of `raw_audio` in Hz (required).
            crop: `"center"` (evaluation), `"random"` (training; use `generator` for reproducibility) or `"none"`
                (keep the whole clip; a batch is then zero-padded to its longest clip).
            resample: resample from `sampling_rate` to 11025 Hz instead of refusing other rates.
            return_stft: also return the complex linear STFT `stft` (`(batch, 512, frames)`, the phase for
                `masks_to_waveforms`) and the cropped `waveform`.
            return_tensors: `"pt"` for torch tensors, `"np"` or None for numpy arrays.

        Returns:
            `BatchFeature` with `audio_spectrogram` `(batch, 1, 256, frames)` (magnitude, non-negative),
            `num_valid_samples` `(batch,)` (samples before padding) and `crop_start` `(batch,)` (first sample of the
            crop in the input, at 11025 Hz); plus `stft` and `waveform` with `return_stft=True`.
        """
        self._check_sampling_rate(sampling_rate, resample)
        clips = self._to_waveforms(raw_audio)
        if sampling_rate != self.sampling_rate:
            import torchaudio

            clips = [torchaudio.functional.resample(c, sampling_rate, self.sampling_rate) for c in clips]
        cropped, starts, valid = [], [], []
        for clip in clips:
            piece, start = self.crop(clip, crop, generator)
            cropped.append(piece)
            starts.append(start)
            valid.append(min(clip.shape[-1] - start, piece.shape[-1]))
        longest = max(c.shape[-1] for c in cropped)
        waveforms = torch.stack(
            [
                c if c.shape[-1] == longest else torch.nn.functional.pad(c, (0, longest - c.shape[-1]), value=self.padding_value)
                for c in cropped
            ]
        )
        spectrum = self._spectrum(waveforms)
        magnitude = self._warped_magnitude(spectrum).unsqueeze(1)
        data = {
            "audio_spectrogram": magnitude,
            "num_valid_samples": torch.tensor(valid),
            "crop_start": torch.tensor(starts),
        }
        if return_stft:
            data["stft"] = spectrum.transpose(-1, -2)
            data["waveform"] = waveforms
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None (numpy), got {return_tensors!r}.")
        if return_tensors != "pt":
            data = {k: v.numpy() for k, v in data.items()}
        return BatchFeature(data=data)

    # Mix-and-separate helpers ----------------------------------------------------------------------------------

    @staticmethod
    def mix(sources: torch.Tensor) -> torch.Tensor:
        """`(num_sources, ..., samples)` -> their sum, the mixture `(..., samples)` (`mix = a1 + a2 + ...`)."""
        return sources.sum(dim=0)

    def mask_targets(self, source_magnitudes: torch.Tensor, mixture_magnitude: torch.Tensor, kind: str = "binary"):
        """Per-source mask targets on the log-frequency grid.

        Args:
            source_magnitudes: `(num_sources, ..., 256, frames)` magnitudes of each source alone.
            mixture_magnitude: `(..., 256, frames)` magnitude of their mixture.
            kind: `"binary"`: 1 where the source dominates the mixture (it is the loudest source in that bin;
                ties go to the first), so the N masks sum to exactly 1 in every bin. `"ratio"`:
                `source / mixture`, clamped to [0, mask_ratio_max] (sums to 1 where the sources add in phase).
        """
        if source_magnitudes.shape[1:] != mixture_magnitude.shape:
            raise ValueError(
                f"source_magnitudes {tuple(source_magnitudes.shape)} must be (num_sources, *mixture shape "
                f"{tuple(mixture_magnitude.shape)})."
            )
        if kind == "binary":
            winner = source_magnitudes.argmax(dim=0)
            return torch.nn.functional.one_hot(winner, source_magnitudes.shape[0]).movedim(-1, 0).to(source_magnitudes.dtype)
        if kind == "ratio":
            ratio = source_magnitudes / mixture_magnitude.clamp_min(torch.finfo(mixture_magnitude.dtype).tiny)
            return ratio.clamp(0.0, self.mask_ratio_max)
        raise ValueError(f"kind must be 'binary' or 'ratio', got {kind!r}.")

    def loss_weight(self, mixture_magnitude: torch.Tensor) -> torch.Tensor:
        """Per-pixel BCE weight `log1p(mixture magnitude)` clamped to `loss_weight_range` (Sound-of-Pixels)."""
        low, high = self.loss_weight_range
        return torch.log1p(mixture_magnitude).clamp(low, high)

    def masks_to_waveforms(self, masks: torch.Tensor, mixture_stft: torch.Tensor, length: int) -> torch.Tensor:
        """Predicted log-frequency masks -> waveforms.

        Args:
            masks: `(batch, num_sources, 256, frames)` (or `(batch, 256, frames)`) in [0, 1] (or ratios).
            mixture_stft: complex `(batch, 512, frames)` STFT of the mixture (`return_stft=True`).
            length: output length in samples.
        Returns:
            `(batch, num_sources, length)` (or `(batch, length)`): unwarp each mask to linear frequency, multiply
            with the mixture magnitude, use the mixture phase, inverse STFT.
        """
        squeeze = masks.ndim == 3
        if squeeze:
            masks = masks.unsqueeze(1)
        linear = self.unwarp(masks.to(mixture_stft.real.dtype))  # (batch, sources, 512, frames)
        spec = linear * mixture_stft.unsqueeze(1)  # magnitude x mask, mixture phase
        waves = self.istft(spec, length)
        return waves[:, 0] if squeeze else waves

    @property
    def duration(self) -> float:
        """Seconds of audio in one crop."""
        return self.num_samples / self.sampling_rate

    def frames_for_samples(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop_length



__all__ = ["TriBertFeatureExtractor", "log_frequency_matrices"]

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tribert_hf import TriBertFeatureExtractor
from tribert_hf.feature_extraction_tribert import log_frequency_matrices


SR = 11025


@pytest.fixture(scope="module")
def fe():
    return TriBertFeatureExtractor()


def sop_warpgrid(height, width, warp=True):
    """Sound-of-Pixels' sampling grid for F.grid_sample, written from its published formula (the reference)."""
    x = np.linspace(-1, 1, width)
    y = np.linspace(-1, 1, height)
    xv, yv = np.meshgrid(x, y)
    grid_y = (np.power(21, (yv + 1) / 2) - 11) / 10 if warp else np.log(yv * 10 + 11) / np.log(21) * 2 - 1
    return torch.from_numpy(np.stack([xv, grid_y], axis=-1)[None]).float()


def tone(freq, seconds=6.0, sr=SR, amplitude=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_output_shape_and_defaults(fe):
    out = fe(np.random.default_rng(0).standard_normal(80000).astype(np.float32), sampling_rate=SR, return_tensors="pt")
    assert out["audio_spectrogram"].shape == (1, 1, 256, 256)
    assert (out["audio_spectrogram"] >= 0).all()
    assert out["crop_start"].tolist() == [(80000 - 65535) // 2]
    assert out["num_valid_samples"].tolist() == [65535]
    assert fe.num_frames == 256 and abs(fe.duration - 65535 / SR) < 1e-9


def test_warp_matches_the_sound_of_pixels_grid_sample_reference(fe):
    magnitude = torch.rand(1, 1, 512, 256, generator=torch.Generator().manual_seed(0))
    reference = F.grid_sample(magnitude, sop_warpgrid(256, 256), align_corners=True)
    # float32 grid coordinates in grid_sample differ from our float64 weights by ~1e-5 of a bin
    torch.testing.assert_close(fe.warp(magnitude), reference, atol=1e-4, rtol=0)
    log_mag = torch.rand(1, 1, 256, 256, generator=torch.Generator().manual_seed(1))
    reference = F.grid_sample(log_mag, sop_warpgrid(512, 256, warp=False), align_corners=True)
    torch.testing.assert_close(fe.unwarp(log_mag), reference, atol=1e-4, rtol=0)


def test_warp_rows_are_interpolation_weights():
    warp, unwarp = log_frequency_matrices(512, 256)
    np.testing.assert_allclose(warp.sum(1), 1.0)
    np.testing.assert_allclose(unwarp.sum(1), 1.0)
    # low frequencies get finer rows than high frequencies (log spacing)
    centres = warp @ np.arange(512)
    steps = np.diff(centres)
    assert (steps > 0).all() and steps[0] < steps[-1] / 10
    # warping then unwarping a smooth spectral envelope comes back close
    envelope = np.exp(-np.linspace(0, 4, 512))
    np.testing.assert_allclose(unwarp @ (warp @ envelope), envelope, atol=5e-3)


def test_round_trip_mask_of_ones_gives_back_the_waveform(fe):
    wave = np.random.default_rng(1).standard_normal(65535).astype(np.float32) * 0.1
    out = fe(wave, sampling_rate=SR, return_stft=True, return_tensors="pt")
    assert out["stft"].shape == (1, 512, 256) and out["stft"].is_complex()
    back = fe.masks_to_waveforms(torch.ones(1, 2, 256, 256), out["stft"], 65535)
    assert back.shape == (1, 2, 65535)
    torch.testing.assert_close(back[0, 0], torch.from_numpy(wave), atol=1e-5, rtol=0)
    torch.testing.assert_close(back[0, 1], back[0, 0])


def test_oracle_binary_masks_separate_two_tones(fe):
    low, high = tone(220.0), tone(1760.0)
    sources = torch.from_numpy(np.stack([low, high]))
    mixture = fe.mix(sources)
    mix = fe(mixture.numpy(), sampling_rate=SR, return_stft=True, return_tensors="pt")
    per_source = fe(sources.numpy(), sampling_rate=SR, return_tensors="pt")["audio_spectrogram"][:, 0]
    masks = fe.mask_targets(per_source[:, None], mix["audio_spectrogram"][:, 0])  # (2 sources, 1, 256, 256)
    estimates = fe.masks_to_waveforms(masks.permute(1, 0, 2, 3), mix["stft"], 65535)[0]
    reference = mix["waveform"].new_tensor(np.stack([c[mix["crop_start"][0]:][:65535] for c in sources.numpy()]))
    for estimate, target in zip(estimates, reference):
        snr = 10 * torch.log10(target.pow(2).sum() / (estimate - target).pow(2).sum())
        assert snr > 15, float(snr)


def test_mask_targets_sum_over_sources(fe):
    generator = torch.Generator().manual_seed(0)
    sources = torch.rand(3, 2, 256, 40, generator=generator)
    mixture = sources.sum(0)
    binary = fe.mask_targets(sources, mixture, "binary")
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(binary.sum(0), torch.ones_like(mixture))
    assert torch.equal(binary.argmax(0), sources.argmax(0))
    ratio = fe.mask_targets(sources, mixture, "ratio")
    torch.testing.assert_close(ratio.sum(0), torch.ones_like(mixture))  # magnitudes that add up
    with pytest.raises(ValueError, match="kind must be"):
        fe.mask_targets(sources, mixture, "soft")
    with pytest.raises(ValueError, match="num_sources"):
        fe.mask_targets(sources, mixture[:, :10])
    weight = fe.loss_weight(torch.tensor([0.0, 1.0, 1e9]))
    torch.testing.assert_close(weight, torch.tensor([1e-3, float(np.log1p(1.0)), 10.0]))


def test_crops(fe):
    wave = np.arange(100000, dtype=np.float32) / 1e5
    a = fe(wave, sampling_rate=SR, crop="random", generator=torch.Generator().manual_seed(3), return_tensors="pt")
    b = fe(wave, sampling_rate=SR, crop="random", generator=torch.Generator().manual_seed(3), return_tensors="pt")
    assert torch.equal(a["audio_spectrogram"], b["audio_spectrogram"]) and a["crop_start"] == b["crop_start"]
    starts = {
        int(fe(wave, sampling_rate=SR, crop="random", generator=torch.Generator().manual_seed(s), return_tensors="pt")["crop_start"])
        for s in range(5)
    }
    assert len(starts) > 1 and all(0 <= s <= 100000 - 65535 for s in starts)
    full = fe(wave, sampling_rate=SR, crop="none", return_tensors="pt")
    assert full["audio_spectrogram"].shape == (1, 1, 256, 1 + 100000 // 256)
    with pytest.raises(ValueError, match="crop must be"):
        fe(wave, sampling_rate=SR, crop="left")


def test_short_audio_is_zero_padded_and_reported(fe):
    out = fe(np.ones(5000, dtype=np.float32), sampling_rate=SR, return_stft=True, return_tensors="pt")
    assert out["audio_spectrogram"].shape == (1, 1, 256, 256)
    assert out["num_valid_samples"].tolist() == [5000]
    assert out["waveform"][0, 5000:].abs().max() == 0


def test_batches_and_numpy_output(fe):
    clips = [np.random.default_rng(i).standard_normal(70000 + 1000 * i).astype(np.float32) for i in range(3)]
    out = fe(clips, sampling_rate=SR, return_tensors="np")
    assert isinstance(out["audio_spectrogram"], np.ndarray) and out["audio_spectrogram"].shape == (3, 1, 256, 256)
    single = fe(clips[1], sampling_rate=SR, return_tensors="np")
    np.testing.assert_allclose(out["audio_spectrogram"][1], single["audio_spectrogram"][0], rtol=1e-5, atol=1e-6)
    stacked = fe(np.stack([c[:70000] for c in clips]), sampling_rate=SR)
    assert stacked["audio_spectrogram"].shape == (3, 1, 256, 256)


def test_resampling_on_request(fe):
    import torchaudio

    wave = tone(440.0, sr=22050)
    with pytest.raises(ValueError, match="sampled at 22050 Hz but TriBERT expects 11025 Hz"):
        fe(wave, sampling_rate=22050)
    out = fe(wave, sampling_rate=22050, resample=True, return_tensors="pt")
    expected = fe(torchaudio.functional.resample(torch.from_numpy(wave), 22050, SR), sampling_rate=SR, return_tensors="pt")
    torch.testing.assert_close(out["audio_spectrogram"], expected["audio_spectrogram"])


@pytest.mark.parametrize(
    "audio, kwargs, error, message",
    [
        (np.zeros(70000, np.float32), {}, ValueError, "Pass `sampling_rate=`"),
        (np.zeros((2, 2, 70000), np.float32), {"sampling_rate": SR}, ValueError, "Stereo audio must be mixed down"),
        ([np.zeros((70000, 2), np.float32)], {"sampling_rate": SR}, ValueError, "Stereo audio must be mixed down"),
        (np.zeros(0, np.float32), {"sampling_rate": SR}, ValueError, "is empty"),
        ([], {"sampling_rate": SR}, ValueError, "empty batch"),
        (np.array([0.0, np.nan] * 100, np.float32), {"sampling_rate": SR}, ValueError, "NaN or infinite"),
        ("song.wav", {"sampling_rate": SR}, TypeError, "numpy array"),
    ],
)
def test_bad_audio_gets_a_clear_error(fe, audio, kwargs, error, message):
    with pytest.raises(error, match=message):
        fe(audio, **kwargs)


def test_save_and_load(tmp_path):
    fe = TriBertFeatureExtractor(num_samples=32767, hop_length=128)
    fe.save_pretrained(tmp_path)
    loaded = TriBertFeatureExtractor.from_pretrained(tmp_path)
    assert (loaded.num_samples, loaded.hop_length, loaded.n_fft) == (32767, 128, 1022)
    wave = np.random.default_rng(0).standard_normal(40000).astype(np.float32)
    np.testing.assert_array_equal(loaded(wave, sampling_rate=SR)["audio_spectrogram"], fe(wave, sampling_rate=SR)["audio_spectrogram"])
    with pytest.raises(ValueError, match="Invalid STFT settings"):
        TriBertFeatureExtractor(n_fft=1023)


def test_cpu_fast_path_matches_torch_stft(fe):
    """The CPU path (SciPy FFT of windowed frames, magnitudes of the bins the warp reads) equals torch.stft."""
    wave = torch.from_numpy(np.random.default_rng(3).standard_normal((3, 65535)).astype(np.float32)) * 0.1
    expected = torch.stft(
        wave, n_fft=1022, hop_length=256, window=torch.hann_window(1022, periodic=True), center=True,
        pad_mode="reflect", return_complex=True,
    )  # fmt: skip
    got = fe.stft(wave)
    assert got.shape == expected.shape == (3, 512, 256) and got.dtype == torch.complex64
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)
    reference = fe.warp(fe.magnitude(expected))
    torch.testing.assert_close(fe.log_frequency_magnitude(wave), reference, atol=2e-5, rtol=1e-5)
    out = fe(wave.numpy(), sampling_rate=SR, return_stft=True, return_tensors="pt")
    torch.testing.assert_close(out["audio_spectrogram"][:, 0], reference, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(out["stft"], expected, atol=2e-5, rtol=1e-5)
    # Tensors that need gradients take torch.stft (differentiable).
    grad_wave = wave[:1].clone().requires_grad_()
    fe.log_frequency_magnitude(grad_wave).sum().backward()
    assert grad_wave.grad is not None and torch.isfinite(grad_wave.grad).all()


def test_the_one_audio_chain_returns_the_stft_with_the_same_numbers(fe):
    """`log_frequency_magnitude(return_stft=True)`: the magnitude and the complex STFT of one pass, bit for bit what
    the steps give one by one (`warp(magnitude(stft))`, as the collator computed them) and what `__call__` gives."""
    wave = torch.from_numpy(np.random.default_rng(4).standard_normal((2, 2, 20000)).astype(np.float32)) * 0.2
    magnitude, stft = fe.log_frequency_magnitude(wave, return_stft=True)
    assert magnitude.shape == (2, 2, 256, 79) and stft.shape == (2, 2, 512, 79) and stft.is_complex()
    assert torch.equal(stft, fe.stft(wave))
    assert torch.equal(magnitude, fe.warp(fe.magnitude(fe.stft(wave))))
    assert torch.equal(magnitude, fe.log_frequency_magnitude(wave))
    out = fe(wave[0].numpy(), sampling_rate=SR, crop="none", return_stft=True, return_tensors="pt")
    assert torch.equal(out["audio_spectrogram"][:, 0], magnitude[0]) and torch.equal(out["stft"], stft[0])


def test_batch_with_a_nan_clip_names_it(fe):
    batch = np.zeros((3, 70000), dtype=np.float32)
    batch[2, 10] = np.nan
    with pytest.raises(ValueError, match="Clip 2 contains NaN"):
        fe(batch, sampling_rate=SR)
    batch[2, 10], batch[1, 5] = 0.0, -np.inf
    with pytest.raises(ValueError, match="Clip 1 contains NaN or infinite"):
        fe(batch, sampling_rate=SR)
    # Finite samples whose float32 sum overflows are accepted (the quick whole-batch check falls back).
    huge = np.full((2, 70000), 1e34, dtype=np.float32)
    assert not torch.isfinite(torch.from_numpy(huge).sum())
    assert fe(huge, sampling_rate=SR)["audio_spectrogram"].shape == (2, 1, 256, 256)

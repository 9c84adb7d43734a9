"""Separation figures (tribert_hf.visualization): PNGs are written, sized sensibly, and inputs are checked."""

import numpy as np
import pytest
import torch
from PIL import Image

from tribert_hf.visualization import plot_separation, plot_spectrogram


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BINS, FRAMES = 256, 64


def make_example(num_sources, seed=0):
    """A mixture `(256, frames)`, its binary ground-truth masks, soft predicted masks and source magnitudes."""
    rng = np.random.default_rng(seed)
    sources = rng.gamma(0.5, 1.0, size=(num_sources, BINS, FRAMES)) * np.linspace(2.0, 0.1, BINS)[:, None]
    mixture = sources.sum(axis=0)
    winner = sources.argmax(axis=0)
    true_masks = np.stack([(winner == i).astype(np.float64) for i in range(num_sources)])
    predicted = np.clip(0.8 * true_masks + 0.2 * rng.random(true_masks.shape), 0.0, 1.0)
    return mixture, predicted, true_masks, sources


def check_png(path, min_size=(300, 200), max_size=(3000, 3000)):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
        assert image.format == "PNG"
    assert min_size[0] <= width <= max_size[0] and min_size[1] <= height <= max_size[1], (width, height)
    return width, height


@pytest.mark.parametrize("num_sources", [2, 3])
def test_plot_separation_writes_png(tmp_path, num_sources):
    mixture, predicted, truth, sources = make_example(num_sources)
    path = tmp_path / "nested" / "folder" / "separation.png"  # parent folders are created
    labels = ["violin", "acoustic_guitar", "flute"][:num_sources]
    out = plot_separation(path, mixture, predicted, true_masks=truth, true_magnitudes=sources, labels=labels, title="t")
    assert out == str(path) and isinstance(out, str)
    width, height = check_png(out, min_size=(900, 400))
    # Four 2.9-inch columns + the colour bar at 100 dpi; a 2-inch mixture row, 2.1 inches per source, the title.
    assert width == 1230 and height == 240 + 210 * num_sources


def test_without_ground_truth_omits_columns(tmp_path):
    mixture, predicted, truth, sources = make_example(2)
    kwargs = {"dpi": 50}  # small and fast: only the relative sizes matter here
    full = check_png(plot_separation(tmp_path / "full.png", mixture, predicted, true_masks=truth, **kwargs), (300, 200))
    bare = check_png(plot_separation(tmp_path / "bare.png", mixture, predicted, **kwargs), (150, 150))  # 2 columns
    magnitudes_only = check_png(
        plot_separation(tmp_path / "mags.png", mixture, predicted, true_magnitudes=sources, **kwargs), (150, 150)
    )
    assert bare[0] < magnitudes_only[0] < full[0]


def render(path, **kwargs):
    """plot_separation's PNG as an RGB array."""
    out = plot_separation(str(path), **kwargs)
    check_png(out, min_size=(150, 100))
    with Image.open(out) as image:
        return np.asarray(image.convert("RGB"))


def test_mask_threshold_and_torch_inputs(tmp_path):
    """`mask_threshold` binarises the predicted masks for display (mask panels and predicted spectrograms): soft
    masks thresholded draw exactly what their binary masks draw; torch inputs (bfloat16 too) draw what NumPy draws."""
    mixture, predicted, truth, sources = make_example(2)  # predicted: 0.8-1 where truth is 1, 0-0.2 elsewhere
    mixture, sources = mixture.astype(np.float32), sources.astype(np.float32)  # the same values on both paths
    common = {"true_masks": truth, "true_magnitudes": sources, "labels": ("a", "b"), "dpi": 50}
    thresholded = render(
        tmp_path / "torch.png",
        mixture_magnitude=torch.from_numpy(mixture)[None],  # (1, 256, frames), as one item of `audio_spectrogram`
        predicted_masks=torch.from_numpy(predicted).to(torch.bfloat16),
        true_masks=torch.from_numpy(truth),
        true_magnitudes=torch.from_numpy(sources),
        labels=("a", "b"),
        dpi=50,
        mask_threshold=0.5,
    )
    binary = render(tmp_path / "binary.png", mixture_magnitude=mixture, predicted_masks=truth, mask_threshold=0.5, **common)
    np.testing.assert_array_equal(thresholded, binary)
    soft = render(tmp_path / "soft.png", mixture_magnitude=mixture, predicted_masks=predicted, **common)
    assert soft.shape == binary.shape and (soft != binary).any()  # without a threshold: the soft masks, drawn
    # at 0.9 some of the true bins (0.8-0.9) fall below: no longer the binary masks' figure
    high = render(tmp_path / "high.png", mixture_magnitude=mixture, predicted_masks=predicted, mask_threshold=0.9, **common)
    binary_high = render(tmp_path / "binary_high.png", mixture_magnitude=mixture, predicted_masks=truth, mask_threshold=0.9, **common)
    assert (high != binary_high).any()
    cut = np.where(predicted > 0.9, 1.0, 0.0)
    np.testing.assert_array_equal(high, render(tmp_path / "cut.png", mixture_magnitude=mixture, predicted_masks=cut, mask_threshold=0.9, **common))


def test_plot_spectrogram_and_no_pyplot_figures_left(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    mixture, *_ = make_example(2)
    out = plot_spectrogram(tmp_path / "spec" / "mix.png", torch.from_numpy(mixture), title="mixture")
    assert check_png(out, min_size=(300, 150)) == (600, 320)
    silent = plot_spectrogram(tmp_path / "silent.png", np.zeros((BINS, FRAMES)), dpi=50)  # all -160 dB: still drawable
    assert check_png(silent, min_size=(150, 100)) == (300, 160)
    assert plt.get_fignums() == before  # drawn on a bare Agg Figure: nothing registered with pyplot


@pytest.mark.parametrize(
    "argument, change",
    [
        ("mixture_magnitude", lambda x: {**x, "mixture_magnitude": x["mixture_magnitude"][None, None]}),
        ("mixture_magnitude", lambda x: {**x, "mixture_magnitude": -x["mixture_magnitude"]}),
        ("predicted_masks", lambda x: {**x, "predicted_masks": x["predicted_masks"][:, :128]}),
        ("predicted_masks", lambda x: {**x, "predicted_masks": x["predicted_masks"][..., :-1]}),
        ("true_masks", lambda x: {**x, "true_masks": x["true_masks"][:1]}),
        ("true_masks", lambda x: {**x, "true_masks": x["true_masks"][:, :, :10]}),
        ("true_magnitudes", lambda x: {**x, "true_magnitudes": x["true_magnitudes"][:, 1:]}),
        ("labels", lambda x: {**x, "labels": ["only one"]}),
        ("predicted_masks", lambda x: {**x, "predicted_masks": np.full_like(x["predicted_masks"], np.nan)}),
    ],
)
def test_shape_mismatch_raises(tmp_path, argument, change):
    mixture, predicted, truth, sources = make_example(2)
    kwargs = {
        "mixture_magnitude": mixture, "predicted_masks": predicted, "true_masks": truth, "true_magnitudes": sources,
        "labels": ["a", "b"],
    }  # fmt: skip
    path = tmp_path / "never.png"
    with pytest.raises(ValueError, match=argument):
        plot_separation(path, **change(kwargs))
    assert not path.exists()


def test_plot_spectrogram_rejects_bad_shape(tmp_path):
    with pytest.raises(ValueError, match="magnitude"):
        plot_spectrogram(tmp_path / "x.png", np.ones((2, BINS, FRAMES)))

"""Figures of separation results in the style of the TriBERT paper's Figure 3.

`plot_separation` draws one mixture: its log-frequency spectrogram on top, then one row per source with the
ground-truth mask, the predicted mask, the ground-truth spectrogram and the predicted spectrogram (predicted mask x
mixture magnitude). `plot_spectrogram` draws a single log-frequency spectrogram.

All inputs live on the feature extractor's log-frequency grid (`TriBertFeatureExtractor`: 256 rows, hop 256 at
11025 Hz): magnitudes `(256, frames)`, masks `(num_sources, 256, frames)` in [0, 1]. Numpy arrays and torch tensors
(any device / dtype) are accepted.

The figures are drawn on a `matplotlib.figure.Figure` with the Agg canvas directly: no display is needed and the
global pyplot backend / figure registry of the caller (e.g. a notebook) is left untouched.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

import numpy as np

from .feature_extraction_tribert import SAMPLING_RATE


_EPS = 1e-8
_PANEL_WIDTH = 2.9  # inches per image column
_PANEL_HEIGHT = 2.1  # inches per source row
_MIXTURE_HEIGHT = 2.0  # inches of the mixture row
_COLORBAR_WIDTH = 0.7  # inches of the colour-bar column


# ------------------------------------------------------------------------------------------------------------------
# Input handling
# ------------------------------------------------------------------------------------------------------------------


def _to_numpy(value, name: str) -> np.ndarray:
    """numpy array / torch tensor / nested list -> float64 numpy array (finite values only)."""
    if value is None:
        raise ValueError(f"`{name}` must not be None.")
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor, without importing torch
        value = value.detach().cpu()
        if hasattr(value, "float"):
            value = value.float()  # bf16 / half have no numpy dtype
        value = value.numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`{name}` must be a numeric numpy array or torch tensor ({error}).") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return array


def _as_magnitude(value, name: str) -> np.ndarray:
    """A `(bins, frames)` non-negative magnitude; a leading singleton channel `(1, bins, frames)` is dropped."""
    array = _to_numpy(value, name)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"`{name}` must have shape (frequency_bins, frames), got {array.shape}.")
    if (array < 0).any():
        raise ValueError(f"`{name}` must be a non-negative magnitude (min {array.min():.3g}).")
    return array


def _as_stack(value, name: str, shape: tuple[int, ...] | None, reference: str) -> np.ndarray:
    """A `(num_sources, bins, frames)` stack; a single `(bins, frames)` map counts as one source.

    `shape` is the expected `(bins, frames)` (or full `(num_sources, bins, frames)`), named after `reference`.
    """
    array = _to_numpy(value, name)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"`{name}` must have shape (num_sources, frequency_bins, frames), got {array.shape}.")
    if shape is not None and array.shape[-len(shape):] != tuple(shape):
        expected = ", ".join(str(n) for n in shape) if len(shape) == 3 else "num_sources, " + ", ".join(map(str, shape))
        raise ValueError(
            f"`{name}` has shape {array.shape}, which does not match `{reference}` {tuple(shape)}: expected "
            f"({expected}) = (num_sources, frequency_bins, frames)."
        )
    return array


def _to_db(magnitude: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(magnitude + _EPS)


def _check_timing(sampling_rate, hop_length, dynamic_range_db) -> None:
    if not sampling_rate or sampling_rate <= 0:
        raise ValueError(f"`sampling_rate` must be positive, got {sampling_rate!r}.")
    if not hop_length or hop_length <= 0:
        raise ValueError(f"`hop_length` must be positive, got {hop_length!r}.")
    if not dynamic_range_db or dynamic_range_db <= 0:
        raise ValueError(f"`dynamic_range_db` must be positive, got {dynamic_range_db!r}.")


def _new_figure(width: float, height: float, dpi: int):
    """A Figure on the Agg canvas (no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path) -> str:
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        figure.savefig(path, dpi=figure.dpi, format="png", facecolor="white")
    finally:
        figure.clear()  # release the artists; the Figure is not registered with pyplot, so nothing else holds it
    return path


def _show(axes, image, extent, *, cmap, vmin, vmax, title, xlabel, ylabel):
    artist = axes.imshow(
        image, origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    axes.set_title(title, fontsize=9)
    axes.tick_params(labelsize=7)
    if xlabel:
        axes.set_xlabel("time (s)", fontsize=8)
    else:
        axes.tick_params(labelbottom=False)
    if ylabel:
        axes.set_ylabel("log-frequency bin", fontsize=8)
    else:
        axes.tick_params(labelleft=False)
    return artist


# ------------------------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------------------------


def plot_spectrogram(
    path,
    magnitude,
    sampling_rate: int = SAMPLING_RATE,
    hop_length: int = 256,
    title: str | None = None,
    dynamic_range_db: float = 80.0,
    cmap: str = "magma",
    dpi: int = 100,
) -> str:
    """Write one log-frequency spectrogram as a PNG.

    Args:
        path: output file (`.png`); missing parent folders are created.
        magnitude: `(frequency_bins, frames)` non-negative magnitude (numpy or torch; `(1, bins, frames)` is
            accepted too), e.g. one item of the feature extractor's `audio_spectrogram`.
        sampling_rate, hop_length: give the time axis in seconds (`frames * hop_length / sampling_rate`).
        title: figure title (defaults to "spectrogram").
        dynamic_range_db: the colour scale spans `[max - dynamic_range_db, max]` dB of `20 log10(magnitude + 1e-8)`.
        cmap: matplotlib colormap of the dB image.
        dpi: resolution of the PNG (the figure is 6 x 3.2 inches).

    Returns:
        `path` (as a string).
    """
    _check_timing(sampling_rate, hop_length, dynamic_range_db)
    magnitude = _as_magnitude(magnitude, "magnitude")
    bins, frames = magnitude.shape
    duration = frames * hop_length / sampling_rate
    db = _to_db(magnitude)
    vmax = float(db.max())
    vmin = vmax - dynamic_range_db
    figure = _new_figure(6.0, 3.2, dpi)
    axes = figure.add_subplot(1, 1, 1)
    artist = _show(
        axes, np.clip(db, vmin, vmax), (0.0, duration, 0.0, bins), cmap=cmap, vmin=vmin, vmax=vmax,
        title=title or "spectrogram", xlabel=True, ylabel=True,
    )  # fmt: skip
    colorbar = figure.colorbar(artist, ax=axes)
    colorbar.set_label("dB", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    return _save(figure, path)


def plot_separation(
    path,
    mixture_magnitude,
    predicted_masks,
    true_masks=None,
    true_magnitudes=None,
    labels: Sequence[str] | None = None,
    sampling_rate: int = SAMPLING_RATE,
    hop_length: int = 256,
    title: str | None = None,
    mask_threshold: float | None = None,
    dynamic_range_db: float = 80.0,
    cmap: str = "magma",
    dpi: int = 100,
) -> str:
    """Write a Figure-3-style PNG of the separation of ONE mixture.

    Layout: the mixture's log-frequency spectrogram on top (full width); below it one row per source with the
    columns ground-truth mask | predicted mask | ground-truth spectrogram | predicted spectrogram. Spectrograms are
    shown in dB (`20 log10(mag + 1e-8)`, clipped to `dynamic_range_db` below the loudest pixel of the figure) with
    one colour scale shared by every spectrogram panel; masks are shown on [0, 1] in grey (ratio masks above 1
    saturate). Low frequencies are at the bottom; the time axis is in seconds (`frames * hop_length /
    sampling_rate`).

    Args:
        path: output file (`.png`); missing parent folders are created.
        mixture_magnitude: `(256, frames)` log-frequency magnitude of the mixture, non-negative (numpy or torch;
            `(1, 256, frames)` is accepted too).
        predicted_masks: `(num_sources, 256, frames)` predicted masks in [0, 1] (a `(256, frames)` mask counts as
            one source).
        true_masks: `(num_sources, 256, frames)` ground-truth masks (e.g. `TriBertFeatureExtractor.mask_targets`),
            or None: then the ground-truth mask column is omitted, and so is the ground-truth spectrogram column
            unless `true_magnitudes` is given.
        true_magnitudes: `(num_sources, 256, frames)` magnitudes of the sources alone, shown as the ground-truth
            spectrograms; if None they are `true_masks * mixture_magnitude`.
        labels: one name per source (e.g. instrument classes), used as row titles; defaults to "source 1", ...
        sampling_rate, hop_length: STFT timing for the time axis (11025 Hz and hop 256 for TriBERT).
        title: figure title.
        mask_threshold: if given, the predicted masks are binarised (`mask > mask_threshold`) for display, and the
            predicted spectrogram uses the binary mask (as in binary-mask separation); the column titles say so.
        dynamic_range_db: dB range of the shared spectrogram colour scale (80 by default).
        cmap: matplotlib colormap of the spectrograms.
        dpi: resolution of the PNG (each panel is about 2.9 x 2.1 inches).

    Returns:
        `path` (as a string).

    Raises:
        ValueError: an input has the wrong number of dimensions, a shape that does not match `mixture_magnitude`
            / `predicted_masks` (the message names the offending argument), negative magnitudes, NaN/inf values,
            or `labels` of the wrong length.
    """
    _check_timing(sampling_rate, hop_length, dynamic_range_db)
    mixture = _as_magnitude(mixture_magnitude, "mixture_magnitude")
    predicted = _as_stack(predicted_masks, "predicted_masks", mixture.shape, "mixture_magnitude")
    num_sources = predicted.shape[0]
    truth = None
    if true_masks is not None:
        truth = _as_stack(true_masks, "true_masks", predicted.shape, "predicted_masks")
    true_mags = None
    if true_magnitudes is not None:
        true_mags = _as_stack(true_magnitudes, "true_magnitudes", predicted.shape, "predicted_masks")
        if (true_mags < 0).any():
            raise ValueError(f"`true_magnitudes` must be non-negative (min {true_mags.min():.3g}).")
    elif truth is not None:
        true_mags = np.clip(truth, 0.0, None) * mixture
    if labels is None:
        labels = [f"source {i + 1}" for i in range(num_sources)]
    else:
        if isinstance(labels, str):
            labels = [labels]
        labels = [str(label) for label in labels]
        if len(labels) != num_sources:
            raise ValueError(f"`labels` has {len(labels)} names but `predicted_masks` has {num_sources} sources.")
    if mask_threshold is not None:
        mask_threshold = float(mask_threshold)
        shown_predicted = (predicted > mask_threshold).astype(np.float64)
        predicted_mask_title = f"predicted mask (> {mask_threshold:g})"
        predicted_spec_title = "predicted spectrogram (binary mask)"
    else:
        shown_predicted = predicted
        predicted_mask_title = "predicted mask"
        predicted_spec_title = "predicted spectrogram"
    predicted_mags = np.clip(shown_predicted, 0.0, None) * mixture

    # One dB scale for every spectrogram of the figure.
    mixture_db = _to_db(mixture)
    predicted_db = _to_db(predicted_mags)
    true_db = None if true_mags is None else _to_db(true_mags)
    vmax = max(float(mixture_db.max()), float(predicted_db.max()), -np.inf if true_db is None else float(true_db.max()))
    vmin = vmax - dynamic_range_db

    # Columns: masks first (grey), then spectrograms (dB), as in the paper.
    columns = []  # (kind, title, per-source images)
    if truth is not None:
        columns.append(("mask", "ground-truth mask", truth))
    columns.append(("mask", predicted_mask_title, shown_predicted))
    if true_db is not None:
        columns.append(("db", "ground-truth spectrogram", true_db))
    columns.append(("db", predicted_spec_title, predicted_db))
    num_columns = len(columns)

    bins, frames = mixture.shape
    extent = (0.0, frames * hop_length / sampling_rate, 0.0, bins)
    width = num_columns * _PANEL_WIDTH + _COLORBAR_WIDTH
    height = _MIXTURE_HEIGHT + num_sources * _PANEL_HEIGHT + (0.4 if title else 0.0)
    figure = _new_figure(width, height, dpi)
    grid = figure.add_gridspec(
        1 + num_sources, num_columns, height_ratios=[_MIXTURE_HEIGHT] + [_PANEL_HEIGHT] * num_sources
    )
    if title:
        figure.suptitle(title, fontsize=11)

    # Mixture row: full width.
    mixture_axes = figure.add_subplot(grid[0, :])
    db_artist = _show(
        mixture_axes, np.clip(mixture_db, vmin, vmax), extent, cmap=cmap, vmin=vmin, vmax=vmax,
        title="mixture", xlabel=True, ylabel=True,
    )  # fmt: skip

    mask_axes, db_axes = [], []
    mask_artist = None
    for row in range(num_sources):
        for column, (kind, column_title, images) in enumerate(columns):
            axes = figure.add_subplot(grid[1 + row, column], sharex=mixture_axes, sharey=mixture_axes)
            last_row = row == num_sources - 1
            panel_title = column_title
            if kind == "mask":
                mask_artist = _show(
                    axes, images[row], extent, cmap="gray", vmin=0.0, vmax=1.0, title=panel_title,
                    xlabel=last_row, ylabel=column == 0,
                )  # fmt: skip
                mask_axes.append(axes)
            else:
                _show(
                    axes, np.clip(images[row], vmin, vmax), extent, cmap=cmap, vmin=vmin, vmax=vmax,
                    title=panel_title, xlabel=last_row, ylabel=column == 0,
                )  # fmt: skip
                db_axes.append(axes)
            if not last_row:
                axes.tick_params(labelbottom=False)
            if column == 0:  # row title: the source's name, left of the y label
                axes.annotate(
                    textwrap.fill(labels[row], 24), xy=(0.0, 0.5), xycoords="axes fraction", xytext=(-34, 0),
                    textcoords="offset points", rotation=90, ha="right", va="center", fontsize=10,
                    fontweight="bold",
                )  # fmt: skip

    colorbar = figure.colorbar(db_artist, ax=[mixture_axes, *db_axes], location="right", shrink=0.9, aspect=40)
    colorbar.set_label("dB", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    if mask_artist is not None:
        mask_bar = figure.colorbar(mask_artist, ax=mask_axes, location="bottom", shrink=0.8, aspect=40)
        mask_bar.set_label("mask value", fontsize=8)
        mask_bar.ax.tick_params(labelsize=7)
    return _save(figure, path)


__all__ = ["plot_separation", "plot_spectrogram"]

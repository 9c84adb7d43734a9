"""`separation_timeline_spectrum` (ours, not in the paper; on top of `separation_timeline_maps`): a small network of
the pose timeline at each frame and the video's condition adds a value per frequency bin to the mask logits at that
frame. The config's rules, the zero-initialised start, logits that change only at the frames where the timeline
does and by exactly the network's spectrum, the half-resolution output, save / load, training and the preset."""

import json

import numpy as np
import pytest
import torch
from conftest import load_script
from test_heads import head_config, mixture_inputs

from tribert_hf import TriBertConfig, TriBertForPreTraining, TriBertForSourceSeparation
from tribert_hf.separation.unet import TriBertSeparationHead, timeline_to_frames


def spectrum_config(**overrides):
    return head_config(
        separation_conditioning="temporal", separation_condition_maps=3, separation_timeline_maps=True,
        separation_timeline_spectrum=True, **overrides,
    )  # fmt: skip


def randomise(module, seed=1, scale=0.3):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)


def test_the_config_needs_timeline_maps(tmp_path):
    assert TriBertConfig().separation_timeline_spectrum is False
    with pytest.raises(ValueError, match="separation_timeline_spectrum .* needs separation_timeline_maps=True"):
        head_config(separation_conditioning="temporal", separation_condition_maps=3, separation_timeline_spectrum=True)
    with pytest.raises(ValueError, match="timeline_spectrum_bins maps the timeline to the frequency bins: it needs timeline_size"):
        TriBertSeparationHead(4, base_channels=4, num_downs=3, fusion_heads=1, timeline_spectrum_bins=16)
    # a config saved before the field existed loads without it
    head_config(separation_conditioning="temporal", separation_condition_maps=3, separation_timeline_maps=True).save_pretrained(tmp_path)
    data = json.load(open(tmp_path / "config.json"))
    del data["separation_timeline_spectrum"]
    json.dump(data, open(tmp_path / "config.json", "w"))
    loaded = TriBertConfig.from_pretrained(tmp_path)
    assert loaded.separation_timeline_spectrum is False
    assert TriBertForSourceSeparation(loaded).separation.timeline_spectrum is None


def test_it_starts_as_the_timeline_maps_model():
    """The spectrum's last layer starts at zero: a timeline-maps model's weights give the same masks with it."""
    torch.manual_seed(0)
    model = TriBertForSourceSeparation(spectrum_config()).eval()
    spectrum = model.separation.timeline_spectrum
    assert not spectrum.output.weight.any() and not spectrum.output.bias.any() and spectrum.hidden.weight.any()
    assert spectrum.output.out_features == model.config.audio_config.num_frequency_bins
    maps = TriBertForSourceSeparation(head_config(separation_conditioning="temporal", separation_condition_maps=3, separation_timeline_maps=True)).eval()
    randomise(maps.separation.timeline_maps)  # the maps' per-frame weights at work
    info = model.load_state_dict(maps.state_dict(), strict=False)
    assert set(info.missing_keys) == {f"separation.timeline_spectrum.{n}.{p}" for n in ("hidden", "output") for p in ("weight", "bias")}
    assert not info.unexpected_keys
    for videos in (2, 3):
        inputs = mixture_inputs(model.config, videos=videos)
        with torch.no_grad():
            torch.testing.assert_close(model(**inputs).logits, maps(**inputs).logits, rtol=1e-5, atol=1e-5)


def head(output_stride=1, bins=16):
    torch.manual_seed(0)
    head = TriBertSeparationHead(
        4, base_channels=4, num_downs=3, fusion_heads=1, condition_maps=3, timeline_size=2, timeline_maps=True,
        output_stride=output_stride, timeline_spectrum_bins=bins,
    ).eval()  # fmt: skip
    randomise(head.timeline_spectrum)
    return head


def test_the_spectrum_is_added_frame_by_frame_and_bin_by_bin():
    """The logits are the timeline-maps head's plus the network's spectrum of (timeline at t, condition), at every
    frame t and bin f; a timeline that differs only early in the window changes the logits there only (the per-frame
    FiLM and maps left at zero)."""
    separator = head()
    for layer in (*separator.timeline_films, separator.timeline_maps):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    mixture, conditions = torch.rand(1, 1, 16, 64) + 0.1, torch.randn(1, 2, 4)
    quiet = torch.zeros(1, 2, 2, 16)
    busy = quiet.clone()
    busy[:, 0, :, :3] = 1.0  # keypoint frames 0-2 of video 0: spectrogram frames 0-11, and 12 on the way back
    with torch.no_grad():
        before, after = separator(mixture, conditions, timelines=quiet), separator(mixture, conditions, timelines=busy)
        spectrum = separator.timeline_spectrum
        separator.timeline_spectrum = None
        without = separator(mixture, conditions, timelines=busy)
        separator.timeline_spectrum = spectrum
        frames = timeline_to_frames(busy.flatten(0, 1), 64)
        expected = without.flatten(0, 1) + spectrum(frames, conditions.flatten(0, 1))
    torch.testing.assert_close(after.flatten(0, 1), expected, rtol=1e-5, atol=1e-5)
    changed = (before - after).abs().amax(dim=2)[0]  # (videos, frames)
    assert changed[0, :12].min() > 1e-3 and changed[0, 16:].max() == 0 and changed[1].max() == 0
    # different bins get different values: a spectrum, not a per-frame bias
    assert (after - without)[0, 0, :, 0].std() > 1e-3


def test_at_half_resolution_the_spectrum_has_half_the_bins_and_is_upsampled():
    separator = head(output_stride=2, bins=8)
    mixture, conditions, timelines = torch.rand(2, 1, 16, 64) + 0.1, torch.randn(2, 3, 4), torch.randn(2, 3, 2, 16)
    with torch.no_grad():
        logits = separator(mixture, conditions, timelines=timelines)
    assert logits.shape == (2, 3, 16, 64) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="The timeline spectrum has 8 frequency bins, the mask logits 16: the spectrogram must have 16 bins"):
        separator(torch.rand(2, 1, 32, 64) + 0.1, conditions, timelines=timelines)


def test_save_and_load_give_the_same_masks(tmp_path):
    torch.manual_seed(0)
    model = TriBertForPreTraining(spectrum_config()).eval()
    randomise(model.separation.timeline_spectrum)
    model.save_pretrained(tmp_path)
    separation, info = TriBertForSourceSeparation.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    assert separation.config.separation_timeline_spectrum is True
    inputs = mixture_inputs(model.config, videos=2)
    with torch.no_grad():
        torch.testing.assert_close(separation.eval()(**inputs).logits, model(**inputs).mask_logits, rtol=0, atol=0)


def test_training_the_preset_and_the_quality_method(tmp_path):
    from tribert_hf.training import build_config
    from tribert_hf.training.separation import main

    config = build_config("tribert_temporal_spectrum", "tiny")[0]
    assert (config.separation_conditioning, config.separation_condition_maps, config.separation_timeline_maps, config.separation_timeline_spectrum) == ("temporal", 16, True, True)
    assert build_config("tribert_temporal_maps", "tiny")[0].separation_timeline_spectrum is False
    quality = load_script("benchmarks/quality.py")
    assert "temporal" in quality.METHODS["tribert_temporal_spectrum"] and "tribert_temporal_spectrum" in quality.FIGURE_NAMES
    out = tmp_path / "run"
    main([
        "--dataset", "synthetic:tiny", "--model_size", "tiny", "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2",
        "--logging_steps", "1", "--crops_per_clip", "1", "--mixtures_per_batch", "2", "--report_to", "none",
        "--mask_activation", "softmax", "--model", "tribert_temporal_spectrum", "--output_dir", str(out),
    ])  # fmt: skip
    log = [json.loads(line) for line in open(out / "train_log.jsonl")]
    assert [row["step"] for row in log] == [1, 2] and all(np.isfinite(row["loss"]) for row in log)
    model = TriBertForPreTraining.from_pretrained(out)
    assert model.config.separation_timeline_spectrum and model.separation.timeline_spectrum.output.weight.any()  # trained
    assert "`separation_timeline_spectrum = true`" in open(out / "README.md").read()  # the model card says so

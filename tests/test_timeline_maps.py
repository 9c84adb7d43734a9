"""`separation_timeline_maps` (ours, not in the paper; with `separation_conditioning="temporal"` and condition maps):
the pose timeline also carries the joints' positions relative to the person's centre, and weights the U-Net's K
condition maps frame by frame. The config's rules, the zero-initialised start, masks that change only at the frames
where the timeline does, positions that ignore where the person stands, absent persons, save / load, training and
the command line's errors."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import load_script
from test_heads import head_config, mixture_inputs

from tribert_hf import TriBertConfig, TriBertForPreTraining, TriBertForSourceSeparation
from tribert_hf.separation.unet import TriBertSeparationHead, timeline_to_frames


# two steps of a tiny run with 4 condition maps and softmax masks (`examples/run_separation.py`'s arguments)
TINY_TRAINING = [
    "--dataset", "synthetic:tiny", "--model_size", "tiny", "--max_steps", "2", "--eval_steps", "2",
    "--save_steps", "2", "--logging_steps", "1", "--crops_per_clip", "1", "--mixtures_per_batch", "2",
    "--report_to", "none", "--separation_condition_maps", "4", "--mask_activation", "softmax",
]  # fmt: skip


def maps_config(**overrides):
    return head_config(separation_conditioning="temporal", separation_condition_maps=3, separation_timeline_maps=True, **overrides)


def build(model_class=TriBertForSourceSeparation, config=None, seed=0, scale=0.0):
    """A tiny model; `scale` > 0 draws the timeline's map weights (zero at initialisation) with that std."""
    torch.manual_seed(seed)
    model = model_class(config or maps_config()).eval()
    if scale:
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for parameter in model.separation.timeline_maps.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return model


def test_the_config_needs_temporal_conditioning_and_condition_maps(tmp_path):
    assert TriBertConfig().separation_timeline_maps is False
    with pytest.raises(ValueError, match="needs separation_conditioning='temporal' and separation_condition_maps > 0, got 'pooled' and 3"):
        head_config(separation_condition_maps=3, separation_timeline_maps=True)
    with pytest.raises(ValueError, match="got 'temporal' and 0"):
        head_config(separation_conditioning="temporal", separation_timeline_maps=True)
    with pytest.raises(ValueError, match="needs timeline_size and condition_maps > 0"):
        TriBertSeparationHead(4, base_channels=4, num_downs=3, fusion_heads=1, timeline_size=2, timeline_maps=True)
    # a config saved before the field existed loads without it
    head_config(separation_conditioning="temporal", separation_condition_maps=3).save_pretrained(tmp_path)
    data = json.load(open(tmp_path / "config.json"))
    del data["separation_timeline_maps"]
    json.dump(data, open(tmp_path / "config.json", "w"))
    loaded = TriBertConfig.from_pretrained(tmp_path)
    assert loaded.separation_timeline_maps is False
    model = TriBertForSourceSeparation(loaded)
    assert model.separation.timeline_maps is None and model.pose_timeline.position_norm is None


def test_it_starts_as_the_temporal_model_without_it():
    """The timeline's map weights start at zero: the masks are those of the same weights without the per-frame
    weighting (the timeline's extra inputs only reach the maps through the zero-initialised projections)."""
    model = build()
    assert not model.separation.timeline_maps.weight.any() and not model.separation.timeline_maps.bias.any()
    plain = TriBertForSourceSeparation(head_config(separation_conditioning="temporal", separation_condition_maps=3)).eval()
    missing = plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain.state_dict() and v.shape == plain.state_dict()[k].shape}, strict=False)
    assert set(missing.missing_keys) == {"pose_timeline.temporal.0.weight"}  # more inputs: the positions
    for videos in (2, 3):
        inputs = mixture_inputs(model.config, videos=videos)
        with torch.no_grad():
            torch.testing.assert_close(model(**inputs).logits, plain(**inputs).logits, rtol=1e-5, atol=1e-5)


def test_the_maps_are_weighted_frame_by_frame():
    """A timeline that differs only in the first quarter of the window changes the masks there and nowhere else
    (the per-frame FiLM is left at zero, so only the maps' weights see the timeline)."""
    torch.manual_seed(0)
    head = TriBertSeparationHead(4, base_channels=4, num_downs=3, fusion_heads=1, condition_maps=3, timeline_size=2, timeline_maps=True).eval()
    for film in head.timeline_films:
        torch.nn.init.zeros_(film.weight)
        torch.nn.init.zeros_(film.bias)
    torch.nn.init.normal_(head.timeline_maps.weight)
    mixture, conditions = torch.rand(1, 1, 16, 64) + 0.1, torch.randn(1, 2, 4)
    quiet = torch.zeros(1, 2, 2, 16)
    busy = quiet.clone()
    busy[:, 0, :, :3] = 1.0  # keypoint frames 0-2 of video 0: spectrogram frames 0-11, and 12 on the way back
    with torch.no_grad():
        before, after = head(mixture, conditions, timelines=quiet), head(mixture, conditions, timelines=busy)
    changed = (before - after).abs().amax(dim=2)[0]  # (videos, frames)
    assert changed[0, :12].min() > 1e-3 and changed[0, 16:].max() == 0 and changed[1].max() == 0
    # the weights at each frame are the condition's plus the timeline's there: frame by frame, the maps' weighted sum
    maps = {}
    head.ups[-1].register_forward_hook(lambda module, args, output: maps.setdefault("k", output))
    with torch.no_grad():
        logits = head(mixture, conditions, timelines=busy)
        static = head.condition_maps(conditions.flatten(0, 1))[:, :, None]
        frames = timeline_to_frames(busy.flatten(0, 1), 64)
        weights = static + head.timeline_maps(frames.transpose(1, 2)).transpose(1, 2)
        expected = (maps["k"] * weights[:, :-1, None, :]).sum(dim=1) + weights[:, -1, None, :]
    torch.testing.assert_close(logits.flatten(0, 1), expected, rtol=1e-5, atol=1e-5)


def test_positions_are_relative_to_the_person_and_reach_the_masks():
    """Where the person stands in the picture does not change the positions the timeline sees (the person's centre
    over the crop is removed); where the hand is relative to the body does."""
    model = build(scale=0.5)
    timeline = model.pose_timeline
    seen = []
    timeline.position_norm.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
    inputs = mixture_inputs(model.config, batch=1, videos=2)
    keypoints = inputs["pose_keypoints"].clone()
    moved = keypoints.clone()
    moved[..., :2] += 0.05  # the whole skeleton 5 % of the picture to the right and down
    hand = keypoints.clone()
    hand[..., -21:, :2] += 0.05  # one hand's 21 joints only
    with torch.no_grad():
        outputs = [model(**{**inputs, "pose_keypoints": k}).logits for k in (keypoints, moved, hand)]
    torch.testing.assert_close(seen[1], seen[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(seen[2], seen[0], atol=1e-3)
    assert not torch.allclose(outputs[2], outputs[0], atol=1e-4)


def test_an_absent_person_is_never_read():
    model = build(TriBertForPreTraining, scale=0.5)
    inputs = mixture_inputs(model.config, videos=3)
    inputs["pose_mask"] = torch.tensor([[[1, 0], [0, 0], [1, 1]], [[0, 0], [0, 1], [1, 0]]])
    absent = inputs["pose_mask"][..., None, None, None] == 0
    noisy = torch.where(absent, torch.full_like(inputs["pose_keypoints"], float("nan")), inputs["pose_keypoints"])
    with torch.no_grad():
        expected = model(**inputs).mask_logits
        got = model(**{**inputs, "pose_keypoints": noisy}).mask_logits
    assert torch.isfinite(expected).all()
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_save_and_load_give_the_same_masks(tmp_path):
    model = build(TriBertForPreTraining, scale=0.3)
    model.save_pretrained(tmp_path)
    separation, info = TriBertForSourceSeparation.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info  # (the classifiers are not needed)
    assert separation.config.separation_timeline_maps is True
    inputs = mixture_inputs(model.config, videos=2)
    with torch.no_grad():
        torch.testing.assert_close(separation.eval()(**inputs).logits, model(**inputs).mask_logits, rtol=0, atol=0)


def test_training_with_the_flag_and_its_errors(tmp_path):
    from tribert_hf.training.separation import main

    common = TINY_TRAINING
    out = tmp_path / "run"
    main([*common, "--model", "tribert_temporal", "--separation_timeline_maps", "--output_dir", str(out)])
    log = [json.loads(line) for line in open(out / "train_log.jsonl")]
    assert [row["step"] for row in log] == [1, 2] and all(np.isfinite(row["loss"]) for row in log)
    model = TriBertForPreTraining.from_pretrained(out)
    assert model.config.separation_timeline_maps and model.separation.timeline_maps.weight.any()  # trained
    assert "`separation_timeline_maps = true`" in open(out / "README.md").read()  # the model card says so
    with pytest.raises(ValueError, match="needs separation_conditioning='temporal'"):
        main([*common, "--separation_timeline_maps", "--output_dir", str(tmp_path / "pooled")])
    with pytest.raises(ValueError, match="an option of TriBERT models, not of --model sop"):
        main([*common, "--model", "sop", "--separation_timeline_maps", "--output_dir", str(tmp_path / "sop")])
    plain = tmp_path / "plain"
    main([*common, "--model", "tribert_temporal", "--output_dir", str(plain), "--max_steps", "1", "--eval_steps", "1", "--save_steps", "1"])
    with pytest.raises(ValueError, match="was trained without it; train from scratch"):
        main([*common, "--model_name_or_path", str(plain), "--separation_timeline_maps", "--output_dir", str(tmp_path / "again")])


def test_the_preset_and_the_quality_benchmarks_method(tmp_path, capsys):
    from tribert_hf.training import build_config

    config = build_config("tribert_temporal_maps", "tiny")[0]
    assert (config.separation_conditioning, config.separation_condition_maps, config.separation_timeline_maps) == ("temporal", 16, True)
    quality = load_script("benchmarks/quality.py")
    assert "temporal" in quality.METHODS["tribert_temporal_maps"]
    report = quality.main(["--budget", "tiny", "--methods", "tribert_temporal_maps", "--seeds", "0", "--output_dir", str(tmp_path)])
    run = report["runs"][0]
    assert run["method"] == "tribert_temporal_maps" and np.isfinite(run["test"]["sdr"]) and "test_swapped" in run
    saved = TriBertConfig.from_pretrained(os.path.join(tmp_path, "runs", "tribert_temporal_maps-seed0"))
    assert saved.separation_timeline_maps and saved.separation_conditioning == "temporal"
    capsys.readouterr()

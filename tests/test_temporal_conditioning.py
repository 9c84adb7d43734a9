"""`separation_conditioning="temporal"` (ours, not in the paper): the U-Net also scaled and shifted frame by frame by
each video's pose timeline. The config field, the heads for N = 2 and 3, the zero-initialised start (a temporal
model is the pooled one until it learns), masks that follow the pose timing, absent persons, save / load, gradient
checkpointing, segment-wise separation of long audio with each segment's own keypoints, training, `tribert
separate` and the quality benchmark's `tribert_temporal` method."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import load_script
from test_heads import head_config, mixture_inputs

from tribert_hf import (
    TriBertConfig,
    TriBertFeatureExtractor,
    TriBertForPreTraining,
    TriBertForSourceSeparation,
    TriBertProcessor,
    TriBertVideoProcessor,
)
from tribert_hf.modeling_tribert import _encode_videos, _video_timelines
from tribert_hf.separation.apply import separate, time_resolved_pose
from tribert_hf.separation.unet import TriBertSeparationHead, timeline_to_frames


SEGMENT, RATE = 4095, 11025
FE_KWARGS = {"num_samples": SEGMENT, "hop_length": 128, "num_frequency_bins": 32}  # 32 x 32 spectrograms


def temporal_config(**overrides):
    return head_config(separation_conditioning="temporal", **overrides)


def build(model_class=TriBertForSourceSeparation, config=None, seed=0, films=0.0):
    """A tiny model; `films` > 0 draws the per-frame FiLM projections (zero at initialisation) with that std."""
    torch.manual_seed(seed)
    model = model_class(config or temporal_config()).eval()
    if films:
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for film in model.separation.timeline_films:
                film.weight.copy_(torch.randn(film.weight.shape, generator=generator) * films)
                film.bias.copy_(torch.randn(film.bias.shape, generator=generator) * films)
    return model


def processor():
    return TriBertProcessor(
        TriBertFeatureExtractor(**FE_KWARGS),
        TriBertVideoProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        num_pose_frames=16,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Config and head
# ---------------------------------------------------------------------------------------------------------------


def test_the_config_field_defaults_to_pooled_and_names_the_allowed_values(tmp_path):
    assert TriBertConfig().separation_conditioning == "pooled"
    with pytest.raises(ValueError, match="separation_conditioning must be one of 'pooled', 'temporal', got 'timed'"):
        TriBertConfig(separation_conditioning="timed")
    # a config saved before the field existed loads as the paper's pooled conditioning
    head_config().save_pretrained(tmp_path)
    data = json.load(open(tmp_path / "config.json"))
    del data["separation_conditioning"]
    json.dump(data, open(tmp_path / "config.json", "w"))
    assert TriBertConfig.from_pretrained(tmp_path).separation_conditioning == "pooled"
    pooled = TriBertForSourceSeparation(head_config())
    assert pooled.pose_timeline is None and pooled.separation.timeline_films is None


@pytest.mark.parametrize("model_class", [TriBertForSourceSeparation, TriBertForPreTraining])
@pytest.mark.parametrize("videos", [2, 3])
def test_temporal_heads_give_one_mask_per_video(model_class, videos):
    model = build(model_class, films=0.1)
    inputs = mixture_inputs(model.config, videos=videos)
    labels = (torch.rand(2, videos, 32, 24) > 0.5).float()
    out = model(**inputs, labels=labels)
    logits = out.logits if model_class is TriBertForSourceSeparation else out.mask_logits
    assert logits.shape == (2, videos, 32, 24) and torch.isfinite(logits).all()
    loss = out.loss if model_class is TriBertForSourceSeparation else out.separation_loss
    assert torch.isfinite(loss)
    # the encoder returns the ST-GCN's frames only for the temporal heads: (B * N, persons, channels, T')
    features = model.tribert(**{k: v.flatten(0, 1) for k, v in inputs.items() if k != "audio_spectrogram"}, audio_spectrogram=inputs["audio_spectrogram"], audio_repeats=videos).pose_frame_features
    assert features.shape == (2 * videos, 2, 16, 8)  # gcn_channels[-1] = 16, T' = 16 frames / stride 2


def test_a_temporal_model_starts_as_the_pooled_one(tmp_path):
    """The per-frame FiLM projections are zero-initialised: a pooled checkpoint loaded as temporal gives the same
    masks (only the new modules are missing from its weights), until training moves them."""
    pooled = build(config=head_config())
    pooled.save_pretrained(tmp_path)
    temporal, info = TriBertForSourceSeparation.from_pretrained(tmp_path, separation_conditioning="temporal", output_loading_info=True)
    temporal.eval()
    assert temporal.config.separation_conditioning == "temporal" and info["missing_keys"]
    assert all(k.startswith(("pose_timeline.", "separation.timeline_films.")) for k in info["missing_keys"]), info
    assert all(not film.weight.any() and not film.bias.any() for film in temporal.separation.timeline_films)
    for videos in (2, 3):
        inputs = mixture_inputs(pooled.config, videos=videos)
        with torch.no_grad():
            torch.testing.assert_close(temporal(**inputs).logits, pooled(**inputs).logits, rtol=0, atol=0)
    # ... and a temporal model built from scratch separates as a pooled model with its other weights
    scratch = build()
    same = TriBertForSourceSeparation(head_config()).eval()
    same.load_state_dict({k: v for k, v in scratch.state_dict().items() if k in same.state_dict()})
    inputs = mixture_inputs(scratch.config)
    with torch.no_grad():
        torch.testing.assert_close(scratch(**inputs).logits, same(**inputs).logits, rtol=0, atol=0)


def test_the_timeline_lies_on_the_spectrograms_frames():
    """Sample i of a timeline of T samples lies at time i / T of the window, spectrogram frame m at m / F: a ramp of
    the time comes out as the frames' times; a decoder level of stride s sees the mean over its s frames."""
    ramp = (torch.arange(16.0) / 16)[None, None]  # (1, 1, T = 16)
    frames = timeline_to_frames(ramp, 64)
    expected = torch.arange(64.0) / 64
    expected[-3:] = 15 / 16  # beyond the last keypoint frame: its value
    torch.testing.assert_close(frames[0, 0], expected)
    # the head: a timeline that shifts one channel by the time shows, at every decoder level, each frame's mean time
    head = TriBertSeparationHead(4, base_channels=4, num_downs=3, fusion_heads=1, timeline_size=1).eval()
    seen = []
    for film in head.timeline_films:
        torch.nn.init.zeros_(film.weight)
        torch.nn.init.zeros_(film.bias)
        film.register_forward_hook(lambda module, args, output: seen.append(args[0][0, :, 0].clone()))
    head(torch.rand(1, 1, 16, 64) + 0.1, torch.randn(1, 2, 4), timelines=ramp[:, None].expand(1, 2, 1, 16))
    for level in seen:  # 8, 16, 32 frames
        stride = 64 // len(level)
        torch.testing.assert_close(level, expected.view(-1, stride).mean(dim=1))


def test_masks_follow_the_pose_timing_once_the_projections_are_trained():
    """Two videos with the same pooled condition (the same class, the same `<SOS>` vector) whose players move at
    other times: the masks differ once the per-frame FiLM projections are non-zero, not before."""
    for films, differ in ((0.0, False), (0.3, True)):
        model = build(films=films)
        inputs = mixture_inputs(model.config, batch=1, videos=2)
        keypoints = inputs["pose_keypoints"].clone()
        keypoints[:, 1] = keypoints[:, 0].roll(5, dims=2)  # video 1: video 0's player, 5 keypoint frames later
        inputs["pose_keypoints"], inputs["pixel_values"][:, 1] = keypoints, inputs["pixel_values"][:, 0]
        inputs["pose_mask"][:, 1] = inputs["pose_mask"][:, 0]
        with torch.no_grad():
            conditions, outputs = _encode_videos(model.tribert, inputs["pixel_values"], keypoints, inputs["audio_spectrogram"], inputs["pose_mask"])
            conditions = conditions[:, :1].expand(-1, 2, -1)  # one pooled condition for both
            timelines = _video_timelines(model.pose_timeline, outputs, keypoints, 1, 2)
            logits = model.separation(inputs["audio_spectrogram"], conditions, timelines=timelines)
        assert not torch.equal(timelines[:, 0], timelines[:, 1])
        assert (not torch.allclose(logits[:, 0], logits[:, 1], atol=1e-4)) == differ, films
    # the whole model: its masks change when the pose timing changes
    model = build(films=0.3)
    inputs = mixture_inputs(model.config, batch=1, videos=2)
    shifted = {**inputs, "pose_keypoints": inputs["pose_keypoints"].roll(5, dims=3)}
    with torch.no_grad():
        assert not torch.allclose(model(**inputs).logits, model(**shifted).logits, atol=1e-4)


def test_an_absent_person_contributes_nothing_and_gives_finite_masks():
    model = build(films=0.3)
    inputs = mixture_inputs(model.config, videos=3)
    inputs["pose_mask"] = torch.tensor([[[1, 0], [0, 0], [1, 1]], [[0, 0], [0, 1], [1, 0]]])
    with torch.no_grad():
        expected = model(**inputs).logits
        absent = inputs["pose_mask"][..., None, None, None] == 0
        noisy = torch.where(absent, torch.full_like(inputs["pose_keypoints"], float("nan")), inputs["pose_keypoints"])
        got = model(**{**inputs, "pose_keypoints": noisy}).logits
    assert torch.isfinite(expected).all()
    torch.testing.assert_close(got, expected, rtol=0, atol=0)  # NaN keypoints of an absent person are never read
    # nobody at all (also the "without pose" ablation): zeros timelines, finite masks
    with torch.no_grad():
        none = model(**{**inputs, "pose_mask": torch.zeros_like(inputs["pose_mask"])}).logits
        ablation = build(config=temporal_config(use_pose_input=False), films=0.3)(**inputs).logits
    assert torch.isfinite(none).all() and torch.isfinite(ablation).all()


def test_save_and_load_give_the_same_masks(tmp_path):
    model = build(TriBertForPreTraining, films=0.2)
    model.save_pretrained(tmp_path)
    loaded, info = TriBertForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    assert loaded.config.separation_conditioning == "temporal"
    inputs = mixture_inputs(model.config, videos=3)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(**inputs).mask_logits, model(**inputs).mask_logits, rtol=0, atol=0)
    # the same weights as a separation model (what `tribert separate` loads)
    separation = TriBertForSourceSeparation.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(separation(**inputs).logits, model(**inputs).mask_logits, rtol=0, atol=0)


@pytest.mark.slow
def test_a_temporal_folder_loads_as_remote_code(tmp_path):
    """The saved folder's flat code (modeling_tribert.py, unet.py) builds the temporal head where tribert_hf is not
    installed, with the same masks (up to float rounding: the other interpreter may use other thread counts)."""
    from test_remote_code import run_without_tribert_hf

    model = build(films=0.2)
    model.save_pretrained(tmp_path / "model")
    inputs = mixture_inputs(model.config, videos=3)
    torch.save(inputs, tmp_path / "inputs.pt")
    with torch.no_grad():
        torch.save(model(**inputs).logits, tmp_path / "expected.pt")
    run_without_tribert_hf(
        tmp_path,
        f"""
        import torch, transformers
        model = transformers.AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
        assert model.config.separation_conditioning == "temporal" and model.pose_timeline is not None
        with torch.no_grad():
            logits = model(**torch.load({str(tmp_path / "inputs.pt")!r})).logits
        torch.testing.assert_close(logits, torch.load({str(tmp_path / "expected.pt")!r}), rtol=1e-4, atol=1e-5)
        """,
    )


def test_gradient_checkpointing_and_bfloat16():
    """The same loss and gradients with gradient checkpointing; the timeline and its projections get gradients."""

    def step(checkpointing):
        model = build(films=0.1).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        out = model(**mixture_inputs(model.config), labels=torch.ones(2, 2, 32, 24))
        out.loss.backward()
        return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    (plain_loss, plain), (checked_loss, checked) = step(False), step(True)
    torch.testing.assert_close(checked_loss, plain_loss)
    assert plain.keys() == checked.keys()
    assert any(n.startswith("pose_timeline.") for n in plain) and any(".timeline_films." in n for n in plain)
    for name in plain:
        torch.testing.assert_close(checked[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)
    model = build(films=0.1).to(torch.bfloat16)
    with torch.no_grad():
        logits = model(**mixture_inputs(model.config)).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


# ---------------------------------------------------------------------------------------------------------------
# Segment-wise separation: each segment conditioned on the keypoints of its own time window
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("videos", [2, 3])
def test_long_audio_is_separated_with_each_segments_own_keypoints(videos):
    model = build(films=0.3)
    proc = processor()
    fe = proc.feature_extractor
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 255, (40, 40, 40, 3), dtype=np.uint8) for _ in range(videos)]  # 5 s at 8 fps
    poses = [rng.uniform(0.2, 0.8, (2, 120, 68, 3)).astype(np.float32) for _ in range(videos)]  # 5 s at 24 fps
    poses[0][1] = 0.0  # the first video has one player
    waveform = torch.from_numpy(rng.standard_normal(10000).astype(np.float32) * 0.1)
    starts = [0, 3071, 5905]  # segment_starts(10000, 4095, 0.25)

    def window(start):
        return proc.window_inputs(clips, start / RATE, 8.0, poses, 24.0)

    static = window(0)
    assert time_resolved_pose(model) and not time_resolved_pose(build(config=head_config()))
    with pytest.raises(ValueError, match="frame by frame on the keypoints"):
        separate(model, waveform, fe, static["pixel_values"], static["pose_keypoints"], pose_mask=static["pose_mask"])
    short = separate(model, waveform[:SEGMENT], fe, static["pixel_values"], static["pose_keypoints"], pose_mask=static["pose_mask"])
    assert short.shape == (videos, SEGMENT)  # one segment: its keypoints are the static ones

    calls = []

    def conditioning(start, num_samples):
        calls.append(start)
        return window(start)

    estimates = separate(model, waveform, fe, conditioning=conditioning, batch_size=2)
    assert estimates.shape == (videos, 10000) and torch.isfinite(estimates).all() and calls == starts

    def direct(start, inputs):  # one segment, as the processor gives a training crop of that window
        spectrogram, stft = fe.log_frequency_magnitude(waveform[None, start : start + SEGMENT], return_stft=True)
        with torch.no_grad():
            masks = model(audio_spectrogram=spectrogram[:, None], **{k: v[None] for k, v in inputs.items()}).masks
        return fe.masks_to_waveforms(masks, stft, SEGMENT)[0]

    # the samples only the first / only the last segment covers are that segment's estimate
    torch.testing.assert_close(estimates[:, :3071], direct(0, window(0))[:, :3071], atol=1e-5, rtol=0)
    only_last = slice(3071 + SEGMENT, 10000)
    last = direct(5905, window(5905))[:, only_last.start - 5905 :]
    torch.testing.assert_close(estimates[:, only_last], last, atol=1e-5, rtol=0)
    # the first window's keypoints would have told the last segment another timing
    stale = direct(5905, {**window(5905), "pose_keypoints": window(0)["pose_keypoints"]})[:, only_last.start - 5905 :]
    assert not torch.allclose(stale, last, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Training, `tribert separate`, the quality benchmark
# ---------------------------------------------------------------------------------------------------------------


def test_three_training_steps_on_synthetic_tiny(tmp_path):
    from tribert_hf.training.separation import main

    out = tmp_path / "run"
    history = main([
        "--dataset", "synthetic:tiny", "--model_size", "tiny", "--separation_conditioning", "temporal",
        "--output_dir", str(out), "--max_steps", "3", "--eval_steps", "3", "--save_steps", "3", "--logging_steps", "1",
        "--crops_per_clip", "1", "--mixtures_per_batch", "2", "--learning_rate", "1e-3", "--report_to", "none",
    ])  # fmt: skip
    log = [json.loads(line) for line in open(out / "train_log.jsonl")]
    assert [row["step"] for row in log] == [1, 2, 3] and all(np.isfinite(row["loss"]) for row in log)
    assert [row["step"] for row in history] == [3] and np.isfinite(history[0]["sdr"])
    assert TriBertConfig.from_pretrained(out).separation_conditioning == "temporal"
    card = open(out / "README.md").read()
    assert '`separation_conditioning = "temporal"`' in card and "frame by frame" in card
    model = TriBertForPreTraining.from_pretrained(out)
    assert any(film.weight.any() for film in model.separation.timeline_films)  # trained away from zero
    from tribert_hf.training import build_config

    assert build_config("tribert_temporal", "tiny")[0].separation_conditioning == "temporal"
    assert build_config("tribert", "tiny")[0].separation_conditioning == "pooled"


@pytest.fixture(scope="module")
def temporal_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("temporal")
    labels = {0: "violin", 1: "trumpet", 2: "acoustic_guitar", 3: "flute", 4: "cello"}
    build(TriBertForPreTraining, temporal_config(id2label=labels), films=0.3).save_pretrained(path)
    processor().save_pretrained(path)
    return str(path)


def test_tribert_separate_uses_the_checkpoints_temporal_conditioning(temporal_checkpoint, tmp_path, capsys):
    """The checkpoint's config decides: `tribert separate` loads the temporal head, conditions each segment on its
    own window's keypoints (as a training crop of that window), and says which conditioning it used."""
    from PIL import Image

    from tribert_hf.cli import main
    from tribert_hf.data import write_wav
    from tribert_hf.media import VisualClip
    from tribert_hf.pipelines import SegmentConditioner, SourceSpec, load_checkpoint, separate_sources

    images = []
    for index in range(3):
        images.append(str(tmp_path / f"still-{index}.png"))
        Image.fromarray(np.full((40, 40, 3), 60 * index, dtype=np.uint8)).save(images[-1])
    mixture = tmp_path / "mix.wav"
    write_wav(str(mixture), (0.1 * np.sin(np.arange(9000) / 5.0)).astype(np.float32), RATE)
    out = tmp_path / "out"
    assert main(["separate", temporal_checkpoint, "--mixture", str(mixture), "--clips", *images, "-o", str(out), "--quiet", "--no-figure"]) == 0
    summary = json.load(open(out / "separation.json"))
    assert summary["separation_conditioning"] == "temporal" and len(summary["sources"]) == 3  # no keypoints: absent
    capsys.readouterr()

    checkpoint = load_checkpoint(temporal_checkpoint, "cpu")
    assert checkpoint.model.pose_timeline is not None and checkpoint.model.config.separation_conditioning == "temporal"
    rng = np.random.default_rng(1)
    poses = [rng.uniform(0.2, 0.8, (2, 72, 68, 3)).astype(np.float32) for _ in range(2)]  # 3 s at 24 fps
    specs = [SourceSpec(VisualClip(images[i]), poses[i], 24.0) for i in range(2)]
    conditioner = SegmentConditioner(specs, checkpoint.processor)
    for start in (0, 4000):  # the keypoints of the segment's window, resampled as for a training crop there
        expected = checkpoint.processor.window_inputs([np.zeros((1, 40, 40, 3), np.uint8)] * 2, start / RATE, 8.0, poses, 24.0)
        got = conditioner.inputs(start, SEGMENT)
        torch.testing.assert_close(got["pose_keypoints"], expected["pose_keypoints"], rtol=0, atol=0)
        torch.testing.assert_close(got["pose_mask"], expected["pose_mask"])
    result = separate_sources(checkpoint, np.sin(np.arange(9000) / 7.0).astype(np.float32) * 0.1, specs)
    assert result.estimates.shape == (2, 9000) and np.isfinite(result.estimates).all()


def test_quality_benchmark_trains_and_scores_tribert_temporal(tmp_path, capsys):
    quality = load_script("benchmarks/quality.py")
    assert "temporal" in quality.METHODS["tribert_temporal"]
    report = quality.main(["--budget", "tiny", "--methods", "tribert,tribert_temporal", "--seeds", "0", "--output_dir", str(tmp_path)])
    run = report["runs"][1]
    assert run["method"] == "tribert_temporal" and np.isfinite(run["test"]["sdr"])
    # the same-class figure: both variants on one test mixture whose clips share a class (tiny: cello, accordion+cello)
    example = report["same_class_example"]
    assert (tmp_path / "same_class.png").stat().st_size > 10_000 and example["figure"] == "same_class.png"
    assert example["classes"] == ["cello", "accordion+cello"] and set(example["sdr"]) == {"tribert", "tribert_temporal"}
    assert all(len(v) == 2 and all(np.isfinite(v)) for v in example["sdr"].values()) and np.isfinite(example["sdr_mixture"])
    assert example["sdr"]["tribert"] != example["sdr"]["tribert_temporal"]
    assert set(run["test"]["by_pair"]) == set(quality.PAIR_KINDS) and "test_swapped" in run
    config = TriBertConfig.from_pretrained(os.path.join(tmp_path, "runs", "tribert_temporal-seed0"))
    assert config.separation_conditioning == "temporal"
    assert "TriBERT, temporal pose conditioning" in (tmp_path / "quality.md").read_text()
    assert quality.same_class_figure_methods(["audio_only", "tribert_temporal_maps", "tribert"]) == ("tribert", "tribert_temporal_maps")
    assert quality.same_class_figure_methods(["tribert", "sop"]) is None and quality.same_class_figure_methods(["tribert_temporal"]) is None
    # the timeline-maps variant trained in a folder of its own; --combine puts it in the figure beside the pooled run
    maps = str(tmp_path / "maps")
    quality.main(["--budget", "tiny", "--methods", "tribert_temporal_maps", "--seeds", "0", "--output_dir", maps])
    combined = quality.main(["--combine", f"tribert={tmp_path}", f"tribert_temporal_maps={maps}", "--output_dir", str(tmp_path / "both")])
    both = combined["same_class_example"]
    assert set(both["sdr"]) == {"tribert", "tribert_temporal_maps"} and both["pair"] == example["pair"]
    assert both["sdr"]["tribert"] == pytest.approx(example["sdr"]["tribert"]) and (tmp_path / "both" / "same_class.png").is_file()
    capsys.readouterr()

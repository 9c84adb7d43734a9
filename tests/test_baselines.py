"""Separation baselines on tiny configs: audio-only U-Net with PIT and Sound of Pixels.

Shapes and input errors, the PIT loss against a hand-computed minimum, what each model listens to (frames or not),
a few optimizer steps, save/load round trips and segment-wise separation of audio longer than one crop.
"""

import itertools

import pytest
import torch

from tribert_hf.baselines.configuration_baselines import AudioOnlySeparationConfig, SoundOfPixelsConfig
from tribert_hf.feature_extraction_tribert import TriBertFeatureExtractor
from tribert_hf.baselines.modeling_baselines import (
    AudioOnlyForSourceSeparation,
    AudioOnlySeparationOutput,
    SoundOfPixelsForSourceSeparation,
)
from tribert_hf.modeling_tribert import TriBertSeparationOutput
from tribert_hf.separation.apply import reorder_sources, separate, separate_in_segments
from tribert_hf.separation.losses import mask_loss, permutation_invariant_mask_loss


BINS, FRAMES = 32, 24
UNET = {"num_frequency_bins": BINS, "separation_num_downs": 3, "separation_base_channels": 4}
TINY_RESNET = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic"}


def audio_only_model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = AudioOnlySeparationConfig(**{**UNET, "separation_fusion_heads": 2, "source_embedding_size": 8, **overrides})
    return AudioOnlyForSourceSeparation(config)


def sop_model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = SoundOfPixelsConfig(**{**UNET, "num_feature_channels": 6, "frame_encoder_config": TINY_RESNET, **overrides})
    return SoundOfPixelsForSourceSeparation(config)


def mixture_batch(batch=2, videos=2, seed=0, frames=FRAMES):
    """A `MixAndSeparateCollator`-like batch: random frames, keypoints, mixture and binary targets."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "pixel_values": torch.randn(batch, videos, 3, 3, 32, 32, generator=generator),
        "pose_keypoints": torch.rand(batch, videos, 2, 16, 68, 3, generator=generator),
        "pose_mask": torch.ones(batch, videos, 2, dtype=torch.long),
        "audio_spectrogram": torch.rand(batch, 1, BINS, frames, generator=generator) * 2,
        "labels": (torch.rand(batch, videos, BINS, frames, generator=generator) > 0.5).float(),
        "loss_weight": torch.rand(batch, 1, BINS, frames, generator=generator) + 0.5,
        "mixture_waveform": torch.randn(batch, 4095, generator=generator),
    }


# ----------------------------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------------------------


def test_config_defaults_and_errors():
    sop = SoundOfPixelsConfig()
    resnet = sop.frame_encoder_config
    assert resnet.layer_type == "basic" and list(resnet.depths) == [2, 2, 2, 2]
    assert list(resnet.hidden_sizes) == [64, 128, 256, 512]
    assert sop.num_feature_channels == 32 and sop.model_type == "tribert_sop"
    audio = AudioOnlySeparationConfig()
    assert audio.num_sources == 2 and audio.model_type == "tribert_audio_only" and audio.bottleneck_channels == 512
    with pytest.raises(ValueError, match="separation_fusion_heads"):
        AudioOnlySeparationConfig(separation_fusion_heads=3)
    with pytest.raises(ValueError, match="num_sources"):
        AudioOnlySeparationConfig(num_sources=0)
    with pytest.raises(ValueError, match="num_frequency_bins"):
        AudioOnlySeparationConfig(num_frequency_bins=100)
    with pytest.raises(ValueError, match="mask_type"):
        SoundOfPixelsConfig(mask_type="soft")
    with pytest.raises(ValueError, match="spatial_pooling"):
        SoundOfPixelsConfig(spatial_pooling="sum")
    with pytest.raises(ValueError, match="frame_activation"):
        SoundOfPixelsConfig(frame_activation="tanh")


# ----------------------------------------------------------------------------------------------------------------
# Audio only (PIT)
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sources", [2, 3])
def test_audio_only_shapes_and_errors(sources):
    model = audio_only_model(num_sources=sources).eval()
    batch = mixture_batch(videos=sources)
    out = model(**batch)
    assert isinstance(out, AudioOnlySeparationOutput)
    assert out.logits.shape == out.masks.shape == (2, sources, BINS, FRAMES)
    assert ((out.masks > 0) & (out.masks < 1)).all() and torch.isfinite(out.loss)
    assert out.permutation.shape == (2, sources) and out.permutation.dtype == torch.long
    assert all(sorted(row.tolist()) == list(range(sources)) for row in out.permutation)
    assert not torch.allclose(out.masks[:, 0], out.masks[:, 1])  # the learned embeddings tell the outputs apart
    assert model(batch["audio_spectrogram"]).loss is None
    assert model(batch["audio_spectrogram"]).permutation is None
    as_tuple = model(**batch, return_dict=False)
    torch.testing.assert_close(as_tuple[1], out.logits)
    spectrogram = batch["audio_spectrogram"]
    with pytest.raises(ValueError, match="mask targets"):
        model(spectrogram, labels=batch["labels"][:, :1])
    with pytest.raises(ValueError, match=f"\\(batch, 1, {BINS}, time_frames\\)"):
        model(spectrogram[:, :, :16])
    with pytest.raises(ValueError, match="4-d|shape"):
        model(spectrogram[:, 0])
    with pytest.raises(ValueError, match="non-negative"):
        model(spectrogram - 1)
    with pytest.raises(ValueError, match="divisible by 2 \\*\\* separation_num_downs"):
        model(spectrogram[..., :20])


@pytest.mark.parametrize("mask_type", ["binary", "ratio"])
def test_pit_loss_is_the_minimum_over_permutations(mask_type):
    model = audio_only_model(mask_type=mask_type).eval()
    batch = mixture_batch(batch=3)
    labels = batch["labels"] if mask_type == "binary" else batch["labels"] * 1.5
    spectrogram, weight = batch["audio_spectrogram"], batch["loss_weight"]
    out = model(spectrogram, labels=labels, loss_weight=weight)
    swapped = model(spectrogram, labels=labels[:, [1, 0]], loss_weight=weight)
    torch.testing.assert_close(swapped.loss, out.loss)
    torch.testing.assert_close(swapped.permutation, out.permutation[:, [1, 0]])

    # By hand: per mixture, TriBERT's mask loss of the two assignments; keep the smaller; average the mixtures.
    per_mixture = []
    for b in range(3):
        row = slice(b, b + 1)
        identity = mask_loss(out.logits[row], labels[row], spectrogram[row], weight[row], mask_type=model.config.mask_type)
        crossed = mask_loss(out.logits[row, [1, 0]], labels[row], spectrogram[row], weight[row], mask_type=model.config.mask_type)
        per_mixture.append(torch.minimum(identity, crossed))
        assert out.permutation[b].tolist() == ([0, 1] if identity <= crossed else [1, 0])
    torch.testing.assert_close(out.loss, torch.stack(per_mixture).mean())
    # ... which is TriBERT's loss of the outputs put in the best order.
    aligned = reorder_sources(out.logits, out.permutation)
    torch.testing.assert_close(out.loss, mask_loss(aligned, labels, spectrogram, weight, mask_type=model.config.mask_type))


def test_pit_loss_with_three_sources_matches_brute_force():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 3, 8, 8, generator=generator)
    labels = (torch.rand(4, 3, 8, 8, generator=generator) > 0.5).float()
    labels[0] = torch.sigmoid(logits[0, [2, 0, 1]]).round()  # a mixture whose best assignment is known
    mixture = torch.rand(4, 1, 8, 8, generator=generator)
    loss, permutation = permutation_invariant_mask_loss(logits, labels, mixture)
    assert permutation[0].tolist() == [2, 0, 1]
    config = AudioOnlySeparationConfig(**UNET)
    best = []
    for b in range(4):
        costs = {
            order: float(mask_loss(logits[b : b + 1, list(order)], labels[b : b + 1], mixture[b : b + 1], None, mask_type=config.mask_type))
            for order in itertools.permutations(range(3))
        }
        order = min(costs, key=costs.get)
        assert tuple(permutation[b].tolist()) == order
        best.append(costs[order])
    assert abs(float(loss) - sum(best) / 4) < 1e-6


def test_audio_only_ignores_frames():
    model = audio_only_model().eval()
    batch = mixture_batch()
    reference = model(batch["audio_spectrogram"]).masks
    other = mixture_batch(seed=1)
    with_frames = model(**{**batch, "pixel_values": other["pixel_values"], "pose_keypoints": other["pose_keypoints"]})
    torch.testing.assert_close(with_frames.masks, reference, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# Sound of Pixels
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("videos", [2, 3])
def test_sop_shapes_and_errors(videos):
    model = sop_model().eval()
    batch = mixture_batch(videos=videos)
    out = model(**batch)
    assert isinstance(out, TriBertSeparationOutput)
    assert out.logits.shape == out.masks.shape == (2, videos, BINS, FRAMES)
    assert ((out.masks >= 0) & (out.masks <= 1)).all() and torch.isfinite(out.loss) and out.loss > 0
    expected = mask_loss(out.logits, batch["labels"], batch["audio_spectrogram"], batch["loss_weight"], mask_type=model.config.mask_type)
    torch.testing.assert_close(out.loss, expected)
    # TriBERT's positional order: pixel_values, pose_keypoints, audio_spectrogram
    positional = model(batch["pixel_values"], batch["pose_keypoints"], batch["audio_spectrogram"])
    torch.testing.assert_close(positional.logits, out.logits)
    assert model(**batch, return_dict=False)[0] == out.loss
    pixel_values, spectrogram = batch["pixel_values"], batch["audio_spectrogram"]
    with pytest.raises(ValueError, match="one entry per|6-d|shape"):
        model(pixel_values[:, 0], audio_spectrogram=spectrogram)
    with pytest.raises(ValueError, match="one entry per video"):
        model(pixel_values[:, :, :, :1], audio_spectrogram=spectrogram)
    with pytest.raises(ValueError, match="needs `audio_spectrogram`"):
        model(pixel_values)
    with pytest.raises(ValueError, match="batch size"):
        model(pixel_values, audio_spectrogram=spectrogram[:1])
    with pytest.raises(ValueError, match="mask targets"):
        model(pixel_values, audio_spectrogram=spectrogram, labels=batch["labels"][:, :1])
    with pytest.raises(ValueError, match="divisible by 2 \\*\\* separation_num_downs"):
        model(pixel_values, audio_spectrogram=spectrogram[..., :20])


def test_sop_mask_depends_on_the_frames():
    model = sop_model().eval()
    batch = mixture_batch()
    out = model(**batch)
    changed = batch["pixel_values"].clone()
    changed[:, 0] = torch.randn(changed[:, 0].shape, generator=torch.Generator().manual_seed(7))
    new = model(**{**batch, "pixel_values": changed})
    assert (new.masks[:, 0] - out.masks[:, 0]).abs().max() > 1e-4  # the changed video's mask moved
    torch.testing.assert_close(new.masks[:, 1], out.masks[:, 1])  # the other video's did not
    # pose is ignored
    keypoints = torch.zeros_like(batch["pose_keypoints"])
    torch.testing.assert_close(model(**{**batch, "pose_keypoints": keypoints}).masks, out.masks, rtol=0, atol=0)


@pytest.mark.parametrize("spatial", ["avg", "max"])
@pytest.mark.parametrize("temporal", ["avg", "max"])
def test_sop_pooling_options(spatial, temporal):
    """A video's vector: the frame net's feature maps pooled over space (max or mean), then over the video's
    frames, then projected to K (then `frame_activation`); the masks are `sum_k w_k s_k U_k + b` of those vectors."""
    model = sop_model(spatial_pooling=spatial, temporal_pooling=temporal, frame_activation="identity").eval()
    batch = mixture_batch()
    pixel_values = batch["pixel_values"]
    pools = {"max": lambda x, dim: x.amax(dim=dim), "avg": lambda x, dim: x.mean(dim=dim)}
    with torch.no_grad():
        maps = model.frame_encoder(pixel_values.flatten(0, 2)).last_hidden_state  # (B * V * frames, C, h, w)
        assert maps.shape[-2:].numel() > 1 and pixel_values.shape[2] > 1  # something to pool over in both
        per_frame = {name: pool(maps, (-2, -1)).view(*pixel_values.shape[:3], -1) for name, pool in pools.items()}
        expected = {
            (s, t): model.frame_projection(pools[t](per_frame[s], 2)) for s in pools for t in pools
        }  # every combination, to tell them apart
        vectors = model.encode_frames(pixel_values)
        torch.testing.assert_close(vectors, expected[spatial, temporal])
        for other, value in expected.items():
            if other != (spatial, temporal):
                assert (value - vectors).abs().max() > 1e-4, other  # the option decides the vector
        out = model(**batch)
        feature_maps = model.encode_audio(batch["audio_spectrogram"])
        logits = torch.einsum("bvk,bkft->bvft", vectors * model.feature_scale, feature_maps) + model.mask_bias
        torch.testing.assert_close(out.logits, logits)
        model.config.frame_activation = "sigmoid"
        torch.testing.assert_close(model.encode_frames(pixel_values), torch.sigmoid(expected[spatial, temporal]))


# ----------------------------------------------------------------------------------------------------------------
# Both: training, save/load, long audio
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [audio_only_model, sop_model], ids=["audio_only", "sop"])
def test_a_few_steps_decrease_the_loss(build):
    model = build().train()
    batch = mixture_batch(seed=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.97 * losses[0] and losses[-1] == min(losses), losses


def architecture(config_dict: dict) -> dict:
    """A config's dict without what loading sets (where it came from, the dtype), sub-configs included."""
    return {
        key: architecture(value) if isinstance(value, dict) and "model_type" in value else value
        for key, value in config_dict.items()
        if key not in ("_name_or_path", "dtype")
    }


@pytest.mark.parametrize("build", [audio_only_model, sop_model], ids=["audio_only", "sop"])
def test_save_and_load_round_trip(build, tmp_path):
    model = build().eval()
    batch = mixture_batch()
    with torch.no_grad():
        model.train()(**batch)  # running batch-norm statistics away from their initial values
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path).eval()
    assert type(loaded.config) is type(model.config)
    assert architecture(loaded.config.to_dict()) == architecture(model.config.to_dict())
    with torch.no_grad():
        expected, got = model(**batch), loaded(**batch)
    torch.testing.assert_close(got.logits, expected.logits, rtol=0, atol=0)
    torch.testing.assert_close(got.loss, expected.loss, rtol=0, atol=0)


def test_audio_only_film_starts_as_the_identity():
    model = audio_only_model(separation_film=True)
    assert all(not film.weight.any() and not film.bias.any() for film in model.separation.films)


FE_KWARGS = {"num_samples": 4095, "hop_length": 128, "num_frequency_bins": BINS}  # 32 x 32 spectrograms


def run_separate(model, waveform, frames, fe, **kwargs):
    """`separate` with the frames where the model takes them (`frames` with the waveform's batch dims)."""
    if isinstance(model, SoundOfPixelsForSourceSeparation):
        return separate(model, waveform, fe, frames, **kwargs)
    return separate(model, waveform, fe, **kwargs)


@pytest.mark.parametrize("build", [audio_only_model, sop_model], ids=["audio_only", "sop"])
def test_separate_long_audio(build):
    fe = TriBertFeatureExtractor(**FE_KWARGS)
    model = build().eval()
    waveform = torch.randn(3 * 4095 + 100, generator=torch.Generator().manual_seed(4)) * 0.1
    frames = mixture_batch(batch=1)["pixel_values"][0]  # (videos, frames, 3, H, W)
    long = run_separate(model, waveform, frames, fe, overlap=0.25, batch_size=2)
    assert long.shape == (2, len(waveform)) and torch.isfinite(long).all()
    batched = run_separate(model, torch.stack([waveform, 2 * waveform]), torch.stack([frames, frames]), fe)
    assert batched.shape == (2, 2, len(waveform))
    torch.testing.assert_close(batched[0], long, atol=1e-5, rtol=0)

    # One segment: the same as featurising the crop and calling forward.
    short = run_separate(model, waveform[:4095], frames, fe)
    spectrogram, stft = fe.log_frequency_magnitude(waveform[None, :4095], return_stft=True)
    inputs = {"audio_spectrogram": spectrogram.unsqueeze(1), "pixel_values": frames[None]}
    with torch.no_grad():
        direct = fe.masks_to_waveforms(model(**inputs).masks, stft, 4095)[0]
    torch.testing.assert_close(short, direct, atol=1e-5, rtol=0)
    # Before the first cross-fade, the long path is the one-segment path.
    fade = 4095 - int(round(4095 * 0.75))
    torch.testing.assert_close(long[:, : 4095 - fade], short[:, : 4095 - fade], atol=1e-5, rtol=0)


def test_sop_separate_with_per_segment_frames():
    fe = TriBertFeatureExtractor(**FE_KWARGS)
    model = sop_model().eval()
    waveform = torch.randn(2 * 4095, generator=torch.Generator().manual_seed(5)) * 0.1
    frames = mixture_batch(batch=1)["pixel_values"][0]
    starts = []

    def conditioning(start, num_samples):
        starts.append(start)
        return {"pixel_values": frames}

    by_segment = separate(model, waveform, fe, conditioning=conditioning)
    torch.testing.assert_close(by_segment, separate(model, waveform, fe, frames), atol=1e-6, rtol=0)
    assert starts[0] == 0 and starts[-1] == len(waveform) - 4095
    with pytest.raises(ValueError, match="either `pixel_values` or"):
        separate(model, waveform, fe)


def test_separate_in_segments_realigns_swapped_outputs():
    """PIT outputs may swap from one segment to the next; `align_sources` follows each source across segments."""
    fe = TriBertFeatureExtractor(**FE_KWARGS)
    waveform = torch.randn(1, 4 * 4095, generator=torch.Generator().manual_seed(6))
    low = (torch.arange(BINS) < BINS // 2).float()[:, None].expand(BINS, 32)
    ordered = torch.stack([low, 1 - low])

    def predict(swap):
        def predict_masks(audio_spectrogram, starts):
            masks = [ordered[[1, 0]] if swap and round(start / 2048) % 2 else ordered for start in starts]  # hop 2048
            return torch.stack([masks[i % len(starts)] for i in range(audio_spectrogram.shape[0])])

        return predict_masks

    reference = separate_in_segments(predict(False), waveform, fe, overlap=0.5, batch_size=3)
    realigned = separate_in_segments(predict(True), waveform, fe, overlap=0.5, batch_size=3, align_sources=True)
    unaligned = separate_in_segments(predict(True), waveform, fe, overlap=0.5, batch_size=3)
    torch.testing.assert_close(realigned, reference, atol=1e-5, rtol=0)
    assert (unaligned - reference).abs().max() > 0.1


def test_sop_frozen_frame_encoder_gets_no_gradient_and_keeps_its_statistics():
    model = sop_model()
    model.freeze_vision_backbone()
    model.train()
    encoder = model.frame_encoder
    assert not encoder.training and model.audio_unet.training
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model(**{k: v for k, v in mixture_batch().items() if k != "mixture_waveform"}).loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in encoder.parameters())
    assert model.frame_projection.weight.grad.abs().sum() > 0
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)
    model.freeze_vision_backbone(False)
    model.train()
    assert encoder.training and all(p.requires_grad for p in encoder.parameters())

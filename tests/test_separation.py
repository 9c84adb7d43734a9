"""The separation package on its own: one loss-weight rule and one ratio-target rule for every model's loss, the
attention U-Net built from explicit sizes, and segment-wise separation by `separation.apply` (the models take no
feature extractor)."""

import inspect
from types import SimpleNamespace

import pytest
import torch
from test_baselines import audio_only_model, mixture_batch, sop_model
from test_heads import head_config, mixture_inputs

from tribert_hf import (
    AudioOnlyForSourceSeparation,
    SoundOfPixelsForSourceSeparation,
    TriBertFeatureExtractor,
    TriBertForPreTraining,
    TriBertForSourceSeparation,
)
from tribert_hf.separation import apply as apply_module
from tribert_hf.separation.apply import required_conditioning, separate
from tribert_hf.separation.losses import (
    LOSS_WEIGHT_RANGE,
    RATIO_MASK_MAX,
    activate_masks,
    mask_loss,
    mask_loss_weight,
    permutation_invariant_mask_loss,
    ratio_mask_target,
    waveform_sdr_loss,
)


# ---------------------------------------------------------------------------------------------------------------
# Losses: one loss weight, one ratio-target clamp
# ---------------------------------------------------------------------------------------------------------------


def test_the_feature_extractor_weighs_the_loss_with_the_one_rule():
    mixture = torch.tensor([0.0, 1e-4, 1.0, 50.0, 1e9])
    fe = TriBertFeatureExtractor()
    assert fe.loss_weight_range == LOSS_WEIGHT_RANGE == (1e-3, 10.0)
    torch.testing.assert_close(fe.loss_weight(mixture), mask_loss_weight(mixture), rtol=0, atol=0)
    torch.testing.assert_close(mask_loss_weight(mixture), torch.log1p(mixture).clamp(1e-3, 10.0), rtol=0, atol=0)
    other = TriBertFeatureExtractor(loss_weight_range=(0.5, 2.0))
    torch.testing.assert_close(other.loss_weight(mixture), torch.tensor([0.5, 0.5, float(torch.log1p(torch.tensor(1.0))), 2.0, 2.0]))
    assert TriBertFeatureExtractor.from_dict(other.to_dict()).loss_weight_range == (0.5, 2.0)


def _models():
    config = head_config()
    torch.manual_seed(0)
    tribert_inputs = mixture_inputs(config)
    baseline_inputs = {k: v for k, v in mixture_batch().items() if k in ("pixel_values", "audio_spectrogram")}
    return {
        "tribert": (TriBertForSourceSeparation(config).eval(), tribert_inputs, "loss"),
        "pretraining": (TriBertForPreTraining(config).eval(), tribert_inputs, "separation_loss"),
        "audio_only": (audio_only_model().eval(), baseline_inputs, "loss"),
        "sop": (sop_model().eval(), baseline_inputs, "loss"),
    }


@pytest.mark.parametrize("name", ["tribert", "pretraining", "audio_only", "sop"])
def test_every_model_defaults_to_the_feature_extractors_loss_weight(name):
    model, inputs, field = _models()[name]
    mixture = inputs["audio_spectrogram"] * 30  # magnitudes past both ends of the clamp
    inputs = {**inputs, "audio_spectrogram": mixture}
    labels = (torch.rand(2, 2, *mixture.shape[-2:], generator=torch.Generator().manual_seed(1)) > 0.5).float()
    with torch.no_grad():
        default = model(**inputs, labels=labels)[field]
        explicit = model(**inputs, labels=labels, loss_weight=TriBertFeatureExtractor().loss_weight(mixture))[field]
        other = model(**inputs, labels=labels, loss_weight=torch.ones_like(mixture))[field]
    torch.testing.assert_close(default, explicit, rtol=0, atol=0)
    assert not torch.allclose(default, other)


@pytest.mark.parametrize("name", ["tribert", "pretraining", "audio_only", "sop"])
def test_every_model_counts_ratio_targets_up_to_the_ratio_mask_range(name):
    """The feature extractor's ratio targets go up to `mask_ratio_max` (5); every loss counts them up to 2, the most
    a ratio mask (2 * sigmoid) outputs: targets of 2 and of 5 cost the same, targets below 2 do not."""
    model, inputs, field = _models()[name]
    model.config.mask_type = "ratio"
    fe = TriBertFeatureExtractor()
    shape = (2, 2, *inputs["audio_spectrogram"].shape[-2:])
    ratios = torch.rand(shape, generator=torch.Generator().manual_seed(2)) * 2 * fe.mask_ratio_max
    with torch.no_grad():
        output = model(**inputs, labels=ratios.clamp(0, fe.mask_ratio_max))
        as_counted = model(**inputs, labels=ratio_mask_target(ratios))
        lower = model(**inputs, labels=ratios.clamp(0, 1.5))
    masks = output.masks if "masks" in output else activate_masks(output.mask_logits, "ratio")
    assert float(masks.min()) >= 0 and float(masks.max()) <= RATIO_MASK_MAX == 2.0
    torch.testing.assert_close(output[field], as_counted[field], rtol=0, atol=0)
    assert not torch.allclose(output[field], lower[field])


def test_mask_loss_and_its_permutation_invariant_version_agree():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 8, 8, generator=generator)
    labels = torch.rand(3, 2, 8, 8, generator=generator) * 4
    mixture = torch.rand(3, 1, 8, 8, generator=generator) * 20
    for mask_type in ("binary", "ratio"):
        targets = (labels > 2).float() if mask_type == "binary" else labels
        loss, permutation = permutation_invariant_mask_loss(logits, targets, mixture, mask_type=mask_type)
        aligned = logits.gather(1, permutation[:, :, None, None].expand_as(logits))
        torch.testing.assert_close(loss, mask_loss(aligned, targets, mixture, mask_type=mask_type))
        assert float(loss) <= float(mask_loss(logits, targets, mixture, mask_type=mask_type)) + 1e-7
    torch.testing.assert_close(activate_masks(logits, "ratio"), 2 * torch.sigmoid(logits), rtol=0, atol=0)
    with pytest.raises(ValueError, match="mask targets"):
        mask_loss(logits, labels[:, :1], mixture)


def test_softmax_masks_share_out_the_mixture_and_their_losses_match_a_reference():
    """`activation="softmax"`: a mixture's N masks sum to 1 in every bin; the losses are BCE / L1 of those masks
    (checked against a direct formula), PIT works on them as a whole (one softmax, then the pairing), and a bad
    name is refused."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 3, 8, 8, generator=generator) * 3
    ratios = torch.rand(3, 3, 8, 8, generator=generator) * 2.5
    binary = (ratios > 1.25).float()
    mixture = torch.rand(3, 1, 8, 8, generator=generator) * 20
    weight = mask_loss_weight(mixture)
    for mask_type in ("binary", "ratio"):
        masks = activate_masks(logits, mask_type, "softmax")
        torch.testing.assert_close(masks, torch.softmax(logits, dim=1))
        torch.testing.assert_close(masks.sum(dim=1), torch.ones(3, 8, 8))
    p = torch.softmax(logits, dim=1).clamp(1e-6, 1 - 1e-6)
    bce = -(binary * p.log() + (1 - binary) * (1 - p).log())
    torch.testing.assert_close(mask_loss(logits, binary, mixture, mask_type="binary", activation="softmax"), (bce * weight).mean())
    l1 = (torch.softmax(logits, dim=1) - ratios.clamp(0, 2)).abs()
    torch.testing.assert_close(mask_loss(logits, ratios, mixture, mask_type="ratio", activation="softmax"), (l1 * weight).mean())
    # PIT: the best assignment's loss is mask_loss of the reordered logits (a reordering commutes with the softmax)
    for mask_type, targets in (("binary", binary), ("ratio", ratios)):
        loss, permutation = permutation_invariant_mask_loss(logits, targets, mixture, mask_type=mask_type, activation="softmax")
        aligned = logits.gather(1, permutation[:, :, None, None].expand_as(logits))
        torch.testing.assert_close(loss, mask_loss(aligned, targets, mixture, mask_type=mask_type, activation="softmax"))
    with pytest.raises(ValueError, match="activation"):
        activate_masks(logits, "binary", "relu")
    with pytest.raises(ValueError, match="with one source the mask is 1 everywhere"):
        activate_masks(logits[:, :1], "ratio", "softmax")  # a softmax over one source is 1: the mixture itself
    torch.testing.assert_close(activate_masks(logits[:, :1], "binary"), torch.sigmoid(logits[:, :1]))


@pytest.mark.parametrize("name", ["tribert", "pretraining", "audio_only", "sop"])
def test_every_model_can_normalise_its_masks_across_the_sources(name):
    """`config.mask_activation = "softmax"`: every separation model's masks sum to 1 per bin, its loss is the
    softmax loss of its logits, and the gradient reaches the logits; the field round-trips and a bad one is refused."""
    model, inputs, field = _models()[name]
    model.config.mask_activation = "softmax"
    model.config.mask_type = "ratio"
    shape = (2, 2, *inputs["audio_spectrogram"].shape[-2:])
    ratios = torch.rand(shape, generator=torch.Generator().manual_seed(3)) * 2
    output = model(**inputs, labels=ratios)
    logits = output.logits if "logits" in output else output.mask_logits
    masks = output.masks if "masks" in output else activate_masks(logits, "ratio", "softmax")
    torch.testing.assert_close(masks.sum(dim=1), torch.ones_like(masks[:, 0]))
    if name != "audio_only":  # the PIT baseline's loss takes its best permutation
        expected = mask_loss(logits, ratios, inputs["audio_spectrogram"], mask_type="ratio", activation="softmax")
        torch.testing.assert_close(output[field], expected)
    output[field].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    config = type(model.config).from_dict(model.config.to_dict())
    assert config.mask_activation == "softmax"
    with pytest.raises(ValueError, match="mask_activation"):
        type(model.config)(**{**model.config.to_dict(), "mask_activation": "tanh"})


def test_waveform_sdr_loss_is_the_negative_sdr_and_trains_masks_through_the_inverse_stft():
    reference = torch.randn(2, 3, 1000, generator=torch.Generator().manual_seed(0))
    # half the reference: error |s|^2 / 4 -> SDR 10 log10(4) = 6.02 dB (the 30-dB floor adds 1e-3 |s|^2 to the error)
    assert float(waveform_sdr_loss(0.5 * reference, reference)) == pytest.approx(-10 * torch.log10(torch.tensor(1 / 0.251)).item(), abs=1e-4)
    assert float(waveform_sdr_loss(reference, reference)) == pytest.approx(-30.0, abs=1e-3)  # soft-capped at 30 dB
    # a silent reference defines no SDR: it counts max_sdr, without gradient, and does not swamp the others
    silent, leak = torch.zeros(2, 1000), (0.01 * reference[0]).requires_grad_()
    pair = waveform_sdr_loss(torch.stack([reference[0, 0] * 0.5, leak[0]]), torch.stack([reference[0, 0], silent[0]]))
    assert float(pair) == pytest.approx((-6.003 + 30.0) / 2, abs=1e-3)
    pair.backward()
    assert not leak.grad.any()
    assert waveform_sdr_loss(0.5 * reference.bfloat16(), reference.bfloat16()).dtype == torch.float32
    with pytest.raises(ValueError, match="same shape"):
        waveform_sdr_loss(reference[:, :2], reference)
    # Masks trained by the loss through masks_to_waveforms (unwarp, mixture phase, inverse STFT) separate a mixture
    # of a low and a high tone: the SDR of the estimates rises from about 0 dB (masks of 0.5) by more than 10 dB.
    fe = TriBertFeatureExtractor(**FE_KWARGS)
    t = torch.arange(fe.num_samples) / fe.sampling_rate
    sources = torch.stack([torch.sin(2 * torch.pi * 220 * t), 0.5 * torch.sin(2 * torch.pi * 3000 * t)])[None]
    _, stft = fe.log_frequency_magnitude(sources.sum(1), return_stft=True)
    logits = torch.zeros(1, 2, fe.num_frequency_bins, fe.num_frames, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.3)
    losses = []
    for _ in range(40):
        loss = waveform_sdr_loss(fe.masks_to_waveforms(torch.sigmoid(logits), stft, fe.num_samples), sources)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[0] > -3 and losses[-1] < losses[0] - 10


# ---------------------------------------------------------------------------------------------------------------
# apply: separating long audio with a model that takes no feature extractor
# ---------------------------------------------------------------------------------------------------------------

FE_KWARGS = {"num_samples": 4095, "hop_length": 128, "num_frequency_bins": 32}


class ConstantMasks(torch.nn.Module):
    """Each video's mask is its mean pixel value everywhere: `separate` must give that value x the mixture."""

    device = torch.device("cpu")

    def forward(self, pixel_values, audio_spectrogram, pose_mask=None, return_dict=True):
        values = pixel_values.flatten(2).mean(dim=-1)  # (batch, videos)
        return SimpleNamespace(masks=values[:, :, None, None].expand(-1, -1, *audio_spectrogram.shape[-2:]))


def test_models_take_no_feature_extractor():
    for model_class in (TriBertForSourceSeparation, AudioOnlyForSourceSeparation, SoundOfPixelsForSourceSeparation):
        assert not hasattr(model_class, "separate")
        assert "feature_extractor" not in inspect.signature(model_class.forward).parameters
    assert required_conditioning(_models()["tribert"][0]) == ["pixel_values", "pose_keypoints"]
    assert required_conditioning(sop_model()) == ["pixel_values"]
    assert required_conditioning(audio_only_model()) == []


def test_separate_applies_the_feature_extractor_around_the_model():
    fe = TriBertFeatureExtractor(**FE_KWARGS)
    waveform = torch.randn(2, 3 * 4095 + 100, generator=torch.Generator().manual_seed(0)) * 0.1
    ones = torch.ones(2, 2, 3, 3, 4, 4)
    reference = separate(ConstantMasks(), waveform, fe, ones, overlap=0.25, batch_size=2)
    assert reference.shape == (2, 2, waveform.shape[1])
    torch.testing.assert_close(reference[:, 0], waveform, atol=1e-4, rtol=0)  # mask 1: the mixture back
    values = torch.tensor([[0.25, 0.75], [0.5, 1.0]])  # per mixture, per video
    scaled = separate(ConstantMasks(), waveform, fe, ones * values[:, :, None, None, None, None], batch_size=3)
    torch.testing.assert_close(scaled, reference * values[:, :, None], atol=1e-6, rtol=0)
    one = separate(ConstantMasks(), waveform[1], fe, ones[1] * values[1, :, None, None, None, None])  # no batch dim
    torch.testing.assert_close(one, scaled[1], atol=1e-6, rtol=0)

    calls = []

    def conditioning(start, num_samples):  # each segment's own value: 1 for the first, 0.5 for the others
        calls.append((start, num_samples))
        return {"pixel_values": ones[0] * (1.0 if start == 0 else 0.5), "pose_keypoints": None}

    per_segment = separate(ConstantMasks(), waveform[0], fe, conditioning=conditioning, overlap=0.25)
    hop, last = round(4095 * 0.75), waveform.shape[1] - 4095  # 3071 samples; the last segment ends with the audio
    assert calls == [(0, 4095), (hop, 4095), (2 * hop, 4095), (last, 4095)]
    torch.testing.assert_close(per_segment[:, :1000], reference[0, :, :1000], atol=1e-6, rtol=0)
    torch.testing.assert_close(per_segment[:, -1000:], 0.5 * reference[0, :, -1000:], atol=1e-6, rtol=0)


def test_separate_refuses_missing_or_doubled_conditioning():
    fe = TriBertFeatureExtractor(**FE_KWARGS)
    waveform, ones = torch.zeros(5000), torch.ones(2, 3, 3, 4, 4)
    with pytest.raises(ValueError, match="needs either `pixel_values` or a per-segment `conditioning`"):
        separate(ConstantMasks(), waveform, fe)
    with pytest.raises(ValueError, match="not both"):
        separate(ConstantMasks(), waveform, fe, ones, conditioning=lambda start, n: {"pixel_values": ones})
    model = _models()["tribert"][0]
    with pytest.raises(ValueError, match="needs either `pixel_values` and `pose_keypoints`"):
        separate(model, waveform, fe, ones)


def test_unordered_outputs_are_realigned_by_default():
    """The audio-only baseline's outputs follow no order (`outputs_in_order = False`): `separate` realigns them
    across segments unless told not to; ordered models are not realigned."""
    fe = TriBertFeatureExtractor(**FE_KWARGS)
    model = audio_only_model().eval()
    assert AudioOnlyForSourceSeparation.outputs_in_order is False
    waveform = torch.randn(2 * 4095, generator=torch.Generator().manual_seed(1)) * 0.1
    default = separate(model, waveform, fe, overlap=0.5)
    torch.testing.assert_close(default, separate(model, waveform, fe, overlap=0.5, align_sources=True), rtol=0, atol=0)
    calls = []
    original = apply_module.separate_in_segments

    def spy(*args, **kwargs):
        calls.append(kwargs["align_sources"])
        return original(*args, **kwargs)

    apply_module.separate_in_segments = spy
    try:
        separate(model, waveform, fe)
        separate(ConstantMasks(), waveform, fe, torch.ones(2, 3, 3, 4, 4))
    finally:
        apply_module.separate_in_segments = original
    assert calls == [True, False]


# ---------------------------------------------------------------------------------------------------------------
# Condition maps: the mask is the condition-weighted sum of the decoder's last K maps
# ---------------------------------------------------------------------------------------------------------------


def test_condition_maps_weigh_the_last_maps_by_the_condition():
    from tribert_hf.separation.unet import TriBertSeparationHead

    torch.manual_seed(0)
    head = TriBertSeparationHead(6, base_channels=4, num_downs=3, fusion_heads=1, condition_maps=3).eval()
    mixture = torch.rand(2, 1, 16, 16) + 0.1
    conditions = torch.randn(2, 2, 6)
    logits = head(mixture, conditions)
    assert logits.shape == (2, 2, 16, 16)
    # the same computation by hand: the decoder's 3 maps, weighted by the linear map of the condition, plus its bias
    skips = head.encode(mixture)
    flat = conditions.flatten(0, 1)
    hidden = head.fusion(skips[-1].repeat_interleave(2, dim=0), flat)
    maps = head.decode(hidden, [s.repeat_interleave(2, dim=0) for s in skips[:-1]], flat)
    assert maps.shape == (4, 3, 16, 16)
    weights = head.condition_maps(flat)
    expected = (maps * weights[:, :3, None, None]).sum(1) + weights[:, 3, None, None]
    torch.testing.assert_close(logits, expected.view(2, 2, 16, 16))
    # the two videos of a mixture get different masks from different conditions, the same from the same one
    assert not torch.allclose(logits[:, 0], logits[:, 1])
    same = head(mixture, conditions[:, :1].expand(2, 2, 6))
    torch.testing.assert_close(same[:, 0], same[:, 1])


def test_condition_maps_in_the_config_build_the_head_and_round_trip(tmp_path):
    config = head_config()
    config.separation_condition_maps = 4
    model = TriBertForSourceSeparation(config).eval()
    assert model.separation.condition_maps.out_features == 5
    model.save_pretrained(tmp_path)
    loaded = TriBertForSourceSeparation.from_pretrained(tmp_path).eval()
    assert loaded.config.separation_condition_maps == 4
    torch.manual_seed(0)
    inputs = mixture_inputs(config)
    torch.testing.assert_close(loaded(**inputs).masks, model(**inputs).masks)
    with pytest.raises(ValueError, match="separation_condition_maps"):
        type(config)(separation_condition_maps=-1)
    from tribert_hf.separation.unet import TriBertSeparationHead

    with pytest.raises(ValueError, match="condition_maps needs a condition"):
        TriBertSeparationHead(None, base_channels=4, num_downs=3, condition_maps=2)


def test_half_resolution_output_upsamples_the_finished_mask_logits():
    """`output_stride=2`: the last up-convolution works on the level above as it is (half resolution) and only the
    condition-weighted logits are upsampled x2 (bilinear, corners aligned); the parameters are those of stride 1."""
    from torch.nn import functional as F

    from tribert_hf.separation.unet import TriBertSeparationHead

    torch.manual_seed(0)
    full = TriBertSeparationHead(6, base_channels=4, num_downs=3, fusion_heads=1, condition_maps=3).eval()
    half = TriBertSeparationHead(6, base_channels=4, num_downs=3, fusion_heads=1, condition_maps=3, output_stride=2).eval()
    half.load_state_dict(full.state_dict())  # the same names and shapes: a stride-1 checkpoint loads (strict)
    mixture = torch.rand(2, 1, 16, 16) + 0.1
    conditions = torch.randn(2, 2, 6)
    logits = half(mixture, conditions)
    assert logits.shape == full(mixture, conditions).shape == (2, 2, 16, 16)
    skips = half.encode(mixture)
    flat = conditions.flatten(0, 1)
    hidden = half.fusion(skips[-1].repeat_interleave(2, dim=0), flat)
    maps = half.decode(hidden, [s.repeat_interleave(2, dim=0) for s in skips[:-1]], flat)
    assert maps.shape == (4, 3, 8, 8)  # the last layer at half resolution
    weights = half.condition_maps(flat)
    small = (maps * weights[:, :3, None, None]).sum(1, keepdim=True) + weights[:, 3, None, None, None]
    expected = F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=True)
    torch.testing.assert_close(logits, expected.view(2, 2, 16, 16))
    with pytest.raises(ValueError, match="output_stride must be 1"):
        TriBertSeparationHead(6, base_channels=4, num_downs=3, fusion_heads=1, output_stride=4)


@pytest.mark.parametrize("name", ["tribert", "pretraining", "audio_only", "sop"])
def test_every_model_can_run_its_last_unet_layer_at_half_resolution(name, tmp_path):
    """`separation_output_stride=2` in every separation model's config: full-size masks and a loss that trains, the
    field round-trips, a stride-1 checkpoint loads with stride 2 (the same parameters), other strides are refused."""
    model, inputs, field = _models()[name]
    model.save_pretrained(tmp_path)
    half = type(model).from_pretrained(tmp_path, separation_output_stride=2).eval()
    assert half.config.separation_output_stride == 2 and model.config.separation_output_stride == 1
    labels = (torch.rand(2, 2, *inputs["audio_spectrogram"].shape[-2:], generator=torch.Generator().manual_seed(1)) > 0.5).float()
    output, reference = half(**inputs, labels=labels), model(**inputs, labels=labels)
    masks = output.masks if "masks" in output else output.mask_logits
    assert masks.shape == (reference.masks if "masks" in reference else reference.mask_logits).shape
    assert not torch.allclose(output[field], reference[field])  # another computation from the same parameters
    output[field].backward()
    decoder = [p for n, p in half.named_parameters() if ".ups." in n]
    assert decoder and all(p.grad is not None for p in decoder)
    half.save_pretrained(tmp_path / "half")
    assert type(model).from_pretrained(tmp_path / "half").config.separation_output_stride == 2
    with pytest.raises(ValueError, match="separation_output_stride must be 1"):
        type(model.config)(**{**model.config.to_dict(), "separation_output_stride": 3})

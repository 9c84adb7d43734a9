"""Task heads on a tiny config: separation (N = 2, 3), pre-training losses, segment-wise separation, retrieval,
and the MUSIC21 -> MUSIC label swap."""

import numpy as np
import pytest
import torch
from conftest import make_inputs, make_tiny_config

from tribert_hf import (
    TriBertFeatureExtractor,
    TriBertForPreTraining,
    TriBertForRetrieval,
    TriBertForSourceSeparation,
    TriBertSeparationOutput,
    compose_retrieval_pairs,
    retrieval_top_k,
    separate,
)
from tribert_hf.configuration_tribert import RETRIEVAL_VARIANTS


HEAD_CONFIG = {"separation_num_downs": 3, "separation_base_channels": 4, "separation_fusion_heads": 2}


def head_config(vision_config=None, **overrides):
    zero = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    return make_tiny_config(
        vision_config={**zero, "segmentation_dropout": 0.0, "mask_probability": 0.0, **(vision_config or {})},
        pose_config=zero,
        audio_config=zero,
        co_attention_dropout=0.0,
        **{**HEAD_CONFIG, **overrides},
    )


def mixture_inputs(config, batch=2, videos=2, seed=0, frames=24):
    clips = make_inputs(config, batch_size=batch * videos, seed=seed, time_frames=frames)
    generator = torch.Generator().manual_seed(seed)
    return {
        "pixel_values": clips["pixel_values"].view(batch, videos, *clips["pixel_values"].shape[1:]),
        "pose_keypoints": clips["pose_keypoints"].view(batch, videos, *clips["pose_keypoints"].shape[1:]),
        "pose_mask": clips["pose_mask"].view(batch, videos, -1),
        "audio_spectrogram": torch.rand(batch, 1, config.audio_config.num_frequency_bins, frames, generator=generator),
    }


@pytest.mark.parametrize("videos", [2, 3])
def test_separation_shapes_and_loss(videos):
    config = head_config()
    torch.manual_seed(0)
    model = TriBertForSourceSeparation(config).eval()
    inputs = mixture_inputs(config, videos=videos)
    labels = (torch.rand(2, videos, 32, 24) > 0.5).float()
    out = model(**inputs, labels=labels)
    assert isinstance(out, TriBertSeparationOutput)
    assert out.logits.shape == out.masks.shape == (2, videos, 32, 24)
    assert ((out.masks > 0) & (out.masks < 1)).all()
    assert torch.isfinite(out.loss) and out.loss > 0
    as_tuple = model(**inputs, labels=labels, return_dict=False)
    torch.testing.assert_close(as_tuple[1], out.logits)
    with pytest.raises(ValueError, match="divisible by 2 \\*\\* separation_num_downs"):
        model(**{**inputs, "audio_spectrogram": inputs["audio_spectrogram"][..., :20]})
    with pytest.raises(ValueError, match="one entry per video"):
        model(**{**inputs, "pixel_values": inputs["pixel_values"][:, 0]})
    with pytest.raises(ValueError, match="mask targets"):
        model(**inputs, labels=labels[:, :1])


def test_ratio_masks():
    config = head_config(mask_type="ratio")
    model = TriBertForSourceSeparation(config).eval()
    inputs = mixture_inputs(config)
    out = model(**inputs, labels=torch.rand(2, 2, 32, 24) * 3)
    assert (out.masks <= 2).all() and (out.masks >= 0).all() and torch.isfinite(out.loss)


def test_pretraining_losses_are_positive_and_decrease():
    config = head_config()
    torch.manual_seed(0)
    model = TriBertForPreTraining(config).train()
    inputs = mixture_inputs(config)
    class_labels = torch.eye(5)[torch.tensor([[0, 1], [2, 3]])]
    labels = (torch.rand(2, 2, 32, 24, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    names = ["vision_classification_loss", "pose_classification_loss", "audio_classification_loss", "segmentation_loss", "separation_loss"]
    history = []
    for _ in range(12):
        out = model(**inputs, class_labels=class_labels, labels=labels)
        history.append({name: float(out[name]) for name in names + ["loss"]})
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    first, last = history[0], history[-1]
    for name in names:
        assert np.isfinite(first[name]) and first[name] > 0, name
        assert last[name] < first[name], (name, first[name], last[name])
    weighted = sum(first[name] for name in names)
    assert abs(first["loss"] - weighted) < 1e-4  # unit weights by default
    assert out.vision_scores.shape == out.pose_scores.shape == out.audio_logits.shape == (2, 2, 5)
    assert out.mask_logits.shape == (2, 2, 32, 24)


def test_pose_loss_ignores_videos_without_persons():
    config = head_config()
    model = TriBertForPreTraining(config).eval()
    inputs = mixture_inputs(config)
    class_labels = torch.eye(5)[torch.tensor([[0, 1], [2, 3]])]
    inputs["pose_mask"] = torch.zeros_like(inputs["pose_mask"])
    out = model(**inputs, class_labels=class_labels)
    assert float(out.pose_classification_loss) == 0.0 and out.separation_loss is None
    assert torch.isfinite(out.loss)


class _OracleSeparator(TriBertForSourceSeparation):
    """Returns a perfect mask for two tones: video 0 owns the rows below `split`, video 1 the rows above."""

    split = 0

    def forward(self, pixel_values, pose_keypoints, audio_spectrogram, pose_mask=None, return_dict=None, **kwargs):
        rows = torch.arange(audio_spectrogram.shape[-2])[:, None].expand(audio_spectrogram.shape[-2:])
        low = (rows < self.split).float()
        masks = torch.stack([low, 1 - low])[None].expand(audio_spectrogram.shape[0], 2, *rows.shape)
        return TriBertSeparationOutput(logits=masks, masks=masks)


def _sdr(estimate, reference):
    return float(10 * torch.log10(reference.pow(2).sum() / (estimate - reference).pow(2).sum()))


def test_separate_with_an_oracle_mask_beats_the_mixture_on_long_audio():
    fe = TriBertFeatureExtractor()
    config = head_config()
    model = _OracleSeparator(config).eval()
    warp_rows = (np.power(21.0, np.linspace(0, 1, 256)) - 1) / 20 * (fe.sampling_rate / 2)  # row -> Hz
    model.split = int(np.searchsorted(warp_rows, 600.0))
    seconds = 20
    t = torch.arange(seconds * fe.sampling_rate) / fe.sampling_rate
    sources = torch.stack([0.5 * torch.sin(2 * torch.pi * 220 * t), 0.3 * torch.sin(2 * torch.pi * 1760 * t)])
    mixture = sources.sum(0)
    videos = mixture_inputs(config, batch=1)
    estimates = separate(model, mixture, fe, videos["pixel_values"][0], videos["pose_keypoints"][0], pose_mask=videos["pose_mask"][0])
    assert estimates.shape == (2, len(mixture))
    for estimate, reference in zip(estimates, sources):
        assert _sdr(estimate, reference) > 20 > _sdr(mixture, reference) + 10


def test_long_audio_path_matches_the_six_second_path():
    fe = TriBertFeatureExtractor(num_samples=4095, hop_length=128, num_frequency_bins=32)  # 32 x 32 for the tiny U-Net
    config = head_config()
    torch.manual_seed(0)
    model = TriBertForSourceSeparation(config).eval()
    videos = mixture_inputs(config, batch=1)
    waveform = torch.randn(3 * 4095, generator=torch.Generator().manual_seed(2)) * 0.1
    args = (fe, videos["pixel_values"][0], videos["pose_keypoints"][0])
    long = separate(model, waveform, *args, pose_mask=videos["pose_mask"][0], overlap=0.25, batch_size=2)
    short = separate(model, waveform[:4095], *args, pose_mask=videos["pose_mask"][0])
    direct_stft = fe.stft(waveform[None, :4095])
    magnitude = fe.warp(fe.magnitude(direct_stft)).unsqueeze(1)
    with torch.no_grad():
        masks = model(**{k: v for k, v in videos.items() if k != "audio_spectrogram"}, audio_spectrogram=magnitude).masks
    direct = fe.masks_to_waveforms(masks, direct_stft, 4095)[0]
    torch.testing.assert_close(short, direct, atol=1e-5, rtol=0)
    fade = 4095 - int(round(4095 * 0.75))
    only_first = 4095 - fade  # samples covered by the first segment alone
    torch.testing.assert_close(long[:, :only_first], short[:, :only_first], atol=1e-5, rtol=0)
    assert long.shape == (2, 3 * 4095) and torch.isfinite(long).all()


@pytest.mark.parametrize("variant", sorted(RETRIEVAL_VARIANTS))
def test_retrieval_variants(variant):
    config = head_config(retrieval_variant=variant, retrieval_hidden_size=16)
    torch.manual_seed(0)
    model = TriBertForRetrieval(config).train()
    n = RETRIEVAL_VARIANTS[variant][2]
    pool = make_inputs(config, batch_size=n, seed=3)
    query = {k: v[0] for k, v in make_inputs(config, batch_size=1, seed=4).items()}
    pairs = compose_retrieval_pairs(variant, query, pool)
    assert pairs["pixel_values"].shape[0] == n
    query_streams, candidate, _ = RETRIEVAL_VARIANTS[variant]
    blank = ({"vision", "pose", "audio"} - set(query_streams) - {candidate}).pop() if len(query_streams) == 1 else None
    if blank == "pose":
        assert pairs["pose_mask"].sum() == 0 and pairs["pose_keypoints"].abs().max() == 0
    if candidate == "vision":
        torch.testing.assert_close(pairs["pixel_values"], pool["pixel_values"])
    batch = {k: torch.stack([v, v]) for k, v in pairs.items()}
    out = model(**batch, labels=torch.tensor([0, n - 1]))
    assert out.logits.shape == (2, n) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.query_projection.weight.grad is not None
    model.eval()
    assert model.score_pool(query, pool, batch_size=2).shape == (n,)


def test_retrieval_can_learn_a_small_pool_and_freeze_the_encoder():
    config = head_config(retrieval_variant="audio_to_vision", retrieval_embeddings="pre_transformer", retrieval_hidden_size=64)
    torch.manual_seed(0)
    model = TriBertForRetrieval(config).train()
    model.freeze_encoder()
    assert not any(p.requires_grad for p in model.tribert.parameters())
    pool = make_inputs(config, batch_size=3, seed=5)
    # clips that differ the way real ones do: each sounds in its own band and looks its own colour
    pool["audio_spectrogram"] = torch.full_like(pool["audio_spectrogram"], 1e-3)
    for i in range(3):
        pool["audio_spectrogram"][i, :, 10 * i : 10 * i + 8] = 1.0
        pool["pixel_values"][i] = torch.linspace(-2, 2, 3)[i]
    examples = [compose_retrieval_pairs("audio_to_vision", {k: v[i] for k, v in pool.items()}, pool) for i in range(3)]
    batch = {k: torch.stack([e[k] for e in examples]) for k in examples[0]}
    labels = torch.arange(3)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.tribert.eval()
    for _ in range(150):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss < 0.1, float(loss)
    model.eval()
    scores = torch.stack([model.score_pool({k: v[i] for k, v in pool.items()}, pool) for i in range(3)])
    assert retrieval_top_k(scores, labels, ks=(1,))["top1"] == 1.0


def test_retrieval_top_k_on_a_hand_made_pool():
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.2, 0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.05, 0.01],  # answer 0 ranked 1st
            [0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 0.95, 0.0],  # answer 2 ranked 11th
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.0],  # answer 8 ranked 4th
            [0.5, 0.4, 0.3, 0.2, 0.1, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.0],  # answer 0 ranked 6th
        ]
    )
    accuracy = retrieval_top_k(scores, torch.tensor([0, 2, 8, 0]))
    assert accuracy == {"top1": 0.25, "top5": 0.5, "top10": 0.75}
    with pytest.raises(ValueError, match="queries"):
        retrieval_top_k(scores[0], torch.tensor([0]))


def test_fine_tuning_label_swap_keeps_the_encoder(tmp_path):
    config = head_config()
    torch.manual_seed(0)
    model = TriBertForPreTraining(config)
    model.save_pretrained(tmp_path)
    music = {0: "accordion", 1: "cello", 2: "violin"}
    tuned = TriBertForPreTraining.from_pretrained(tmp_path, num_labels=3, id2label=music, ignore_mismatched_sizes=True)
    assert tuned.config.num_labels == 3 and tuned.config.id2label == music
    assert tuned.vision_classifier.classification.out_features == 3 and tuned.audio_classifier.out_features == 3
    before, after = model.state_dict(), tuned.state_dict()
    replaced = [k for k in before if before[k].shape != after[k].shape]
    assert replaced and all("classif" in k or "segmentation." in k for k in replaced), replaced
    for key in before:
        if key not in replaced:
            assert torch.equal(before[key], after[key]), key


def test_retrieval_and_separation_heads_load_a_pretraining_checkpoint(tmp_path):
    config = head_config()
    torch.manual_seed(0)
    pretrained = TriBertForPreTraining(config)
    pretrained.save_pretrained(tmp_path)
    retrieval = TriBertForRetrieval.from_pretrained(tmp_path)
    separation = TriBertForSourceSeparation.from_pretrained(tmp_path)
    for name, value in pretrained.tribert.state_dict().items():
        assert torch.equal(retrieval.tribert.state_dict()[name], value), name
        assert torch.equal(separation.tribert.state_dict()[name], value), name
    for name, value in pretrained.separation.state_dict().items():
        assert torch.equal(separation.separation.state_dict()[name], value), name


@pytest.mark.parametrize("mask_probability", [0.0, 0.15])
def test_every_pretraining_parameter_takes_part_in_the_joint_loss(mask_probability):
    """DistributedDataParallel (accelerate launch) needs every parameter in every step's graph."""
    config = head_config(vision_config={"mask_probability": mask_probability})
    torch.manual_seed(0)
    model = TriBertForPreTraining(config).train()
    inputs = mixture_inputs(config)
    out = model(**inputs, class_labels=torch.eye(5)[torch.tensor([[0, 1], [2, 3]])], labels=torch.ones(2, 2, 32, 24))
    out.loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


def test_film_starts_as_the_papers_bottleneck_conditioning_and_learns():
    """`separation_film=True`: zero-initialised FiLM layers (the paper's model at step 0) that receive gradients."""
    config = head_config(separation_film=True)
    torch.manual_seed(0)
    model = TriBertForSourceSeparation(config).eval()
    films = model.separation.films
    assert len(films) == config.separation_num_downs - 1
    assert all(not film.weight.any() and not film.bias.any() for film in films)
    plain = TriBertForSourceSeparation(head_config())
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(".films." in name for name in unexpected)
    inputs = mixture_inputs(config)
    torch.testing.assert_close(model(**inputs).logits, plain.eval()(**inputs).logits)
    model.train()
    labels = (torch.rand(2, 2, 32, 24) > 0.5).float()
    model(**inputs, labels=labels).loss.backward()
    assert all(film.weight.grad.abs().sum() > 0 for film in films)


def test_a_frozen_encoder_stays_in_eval_mode():
    """freeze_encoder: no gradients, and BatchNorm statistics / dropout of the encoder frozen under train()."""
    config = head_config(retrieval_variant="audio_to_vision", retrieval_hidden_size=16)
    model = TriBertForRetrieval(config)
    model.freeze_encoder()
    model.train()
    assert model.training and model.scorer.training and not model.tribert.training
    assert not any(p.requires_grad for p in model.tribert.parameters())
    model.freeze_encoder(False)
    unreachable = set(model.unreachable_parameter_names())  # poolers, the blank stream's last layers: never trained
    assert model.tribert.training and all(p.requires_grad != (n in unreachable) for n, p in model.named_parameters())


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
)
@pytest.mark.parametrize("mask_activation", ["sigmoid", "softmax"])
def test_pretraining_step_under_bf16_autocast(device, mask_activation):
    """Mixed precision (accelerate --mixed_precision bf16): finite losses, float32 classification terms. On CUDA,
    autocast refuses F.binary_cross_entropy whatever its inputs' dtype (it crashed the GPU speed benchmark)."""
    config = head_config(mask_activation=mask_activation)
    torch.manual_seed(0)
    model = TriBertForPreTraining(config).train().to(device)
    inputs = {k: v.to(device) for k, v in mixture_inputs(config).items()}
    class_labels = torch.nn.functional.one_hot(torch.tensor([[0, 1], [2, 3]]), config.num_labels).float().to(device)
    labels = (torch.rand(2, 2, 32, 24) > 0.5).float().to(device)
    with torch.autocast(device, dtype=torch.bfloat16):
        out = model(**inputs, class_labels=class_labels, labels=labels)
    assert out.vision_classification_loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()


@pytest.mark.parametrize("embeddings", ["transformer", "pre_transformer"])
@pytest.mark.parametrize("variant", sorted(RETRIEVAL_VARIANTS))
def test_retrieval_parameters_without_gradients_are_exactly_the_unreachable_ones(tmp_path, variant, embeddings):
    """Every trainable parameter gets a gradient (DistributedDataParallel needs no find_unused_parameters); the
    ones that cannot change the score (poolers, the blank stream's last layers) are frozen, also after loading."""
    config = head_config(retrieval_variant=variant, retrieval_embeddings=embeddings, retrieval_hidden_size=16)
    torch.manual_seed(0)
    model = TriBertForRetrieval(config)
    model.save_pretrained(tmp_path)
    model = TriBertForRetrieval.from_pretrained(tmp_path).train()
    unreachable = set(model.unreachable_parameter_names())
    assert any(".poolers." in name for name in unreachable)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == unreachable
    clips = make_inputs(config, batch_size=4)
    model(**{k: v.view(2, 2, *v.shape[1:]) for k, v in clips.items()}, labels=torch.tensor([0, 1])).loss.backward()
    without = {name for name, p in model.named_parameters() if p.grad is None}
    assert without == unreachable


def test_class_conditioning_feeds_the_segmentation_class_scores_to_the_unet():
    """separation_class_conditioning: the U-Net's condition is the <SOS> outputs plus the frames' mean class scores
    of the segmentation attention; the separation loss then trains that attention too, and the masks follow it."""
    torch.manual_seed(0)
    plain = TriBertForPreTraining(head_config(separation_film=True)).eval()
    torch.manual_seed(0)
    config = head_config(separation_film=True, separation_class_conditioning=True)
    model = TriBertForPreTraining(config).eval()
    inputs = mixture_inputs(config)

    def unet_condition(head):
        """The condition the U-Net receives (its second argument), caught by a forward pre-hook."""
        seen = []
        handle = head.separation.register_forward_pre_hook(lambda module, args: seen.append(args[1].detach()))
        with torch.no_grad():
            head(**inputs)
        handle.remove()
        return seen[0]

    conditions, sos = unet_condition(model), unet_condition(plain)
    with torch.no_grad():  # the encoder on every (mixture, video) pair, each video with its mixture's spectrogram
        outputs = model.tribert(
            pixel_values=inputs["pixel_values"].flatten(0, 1),
            pose_keypoints=inputs["pose_keypoints"].flatten(0, 1),
            pose_mask=inputs["pose_mask"].flatten(0, 1),
            audio_spectrogram=inputs["audio_spectrogram"].repeat_interleave(2, dim=0),
            return_dict=True,
        )
    assert conditions.shape == (2, 2, sos.shape[-1] + config.num_labels)
    pooled = torch.cat([outputs.vision_pooler_output, outputs.pose_pooler_output, outputs.audio_pooler_output], -1)
    torch.testing.assert_close(conditions[..., : -config.num_labels], pooled.view(2, 2, -1))
    torch.testing.assert_close(conditions[..., -config.num_labels :], outputs.vision_class_scores.mean(1).view(2, 2, -1))
    model.train()
    labels = torch.rand(2, 2, *inputs["audio_spectrogram"].shape[-2:]).round()
    model(**inputs, labels=labels).loss.backward()  # separation loss alone: reaches the segmentation attention
    attention = model.tribert.vision_embeddings.segmentation
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in attention.parameters())
    for film in model.separation.films:  # FiLM layers take the wider condition
        assert film.in_features == conditions.shape[-1]


def test_class_teacher_forcing_puts_the_labels_in_the_condition_while_training_only():
    """`class_teacher_forcing` p: in training, each video's class scores in the U-Net's condition are its labels
    with probability p (p = 1: every video; p = 0: none, the model's scores); evaluation always uses the scores.
    The <SOS> part of the condition is untouched."""
    torch.manual_seed(0)
    config = head_config(separation_film=True, separation_class_conditioning=True)
    model = TriBertForPreTraining(config)
    inputs = mixture_inputs(config)
    class_labels = torch.zeros(2, 2, config.num_labels)
    class_labels[0, 0, 1] = class_labels[0, 1, 3] = class_labels[1, 0, 2] = class_labels[1, 1, 0] = class_labels[1, 1, 4] = 1

    def condition(p, train):
        model.class_teacher_forcing = p
        model.train(train)
        seen = []
        handle = model.separation.register_forward_pre_hook(lambda module, args: seen.append(args[1].detach()))
        torch.manual_seed(1)
        with torch.no_grad():
            model(**inputs, class_labels=class_labels)
        handle.remove()
        return seen[0][..., -config.num_labels :]

    scores = condition(0.0, train=True)
    assert not torch.equal(scores, class_labels) and ((scores > 0) & (scores < 1)).all()
    torch.testing.assert_close(condition(1.0, train=True), class_labels)
    torch.testing.assert_close(condition(1.0, train=False), condition(0.0, train=False))  # never in evaluation
    # p = 0.5 (same seed, so the same dropout draws): each video has either its labels or its own scores
    half, labels, own = condition(0.5, train=True).flatten(0, 1), class_labels.flatten(0, 1), scores.flatten(0, 1)
    told = [torch.equal(half[i], labels[i]) for i in range(4)]
    assert all(told[i] or torch.equal(half[i], own[i]) for i in range(4))
    assert 0 < sum(told) < 4  # with this seed: some told, some not
    with pytest.raises(ValueError, match="class_labels` must have shape"):
        model(**inputs, class_labels=class_labels[..., :3])


def test_the_recipe_anneals_class_teacher_forcing_and_checks_it():
    from types import SimpleNamespace

    from tribert_hf.training.presets import build_config
    from tribert_hf.training.separation import check_class_teacher_forcing, class_teacher_forcing_at

    args = SimpleNamespace(class_teacher_forcing=0.5, max_steps=100)
    assert [class_teacher_forcing_at(s, args) for s in (0, 25, 50, 99)] == [1.0, 0.5, 0.0, 0.0]
    assert class_teacher_forcing_at(10, SimpleNamespace(class_teacher_forcing=0.0, max_steps=100)) == 0.0
    config, _ = build_config("tribert", "tiny")
    with pytest.raises(ValueError, match="needs a TriBERT model with --separation_class_conditioning"):
        check_class_teacher_forcing(args, config)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        check_class_teacher_forcing(SimpleNamespace(class_teacher_forcing=1.5), config)
    config.separation_class_conditioning = True
    check_class_teacher_forcing(args, config)
    audio_only, _ = build_config("audio_only", "tiny")
    with pytest.raises(ValueError, match="needs a TriBERT model"):
        check_class_teacher_forcing(args, audio_only)

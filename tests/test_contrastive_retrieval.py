"""TriBertForContrastiveRetrieval: CLIP-style `get_*_features` (one modality encoded alone), the contrastive loss
(InfoNCE and the hard n-way choice), training that lowers the loss and learns a pool, loading an encoder
checkpoint, and clear errors. Tiny configs, CPU, seconds."""

import copy
import os

import pytest
import torch
from conftest import make_inputs, make_tiny_config
from torch.nn import functional as F

from tribert_hf import TriBertForContrastiveRetrieval, TriBertForPreTraining, contrastive_embedding_query, contrastive_loss
from tribert_hf.modeling_tribert_retrieval import CONTRASTIVE_LOGIT_SCALE_INIT
from tribert_hf.retrieval_index import collection_metrics


DIM = 16


def config(**overrides):
    return make_tiny_config(retrieval_hidden_size=DIM, **overrides)


def build(seed=0, **overrides):
    torch.manual_seed(seed)
    return TriBertForContrastiveRetrieval(config(**overrides)).eval()


@pytest.mark.parametrize("embeddings", ["transformer", "pre_transformer"])
def test_feature_shapes_and_forward_agree(embeddings):
    model = build(retrieval_embeddings=embeddings)
    inputs = make_inputs(model.config, batch_size=3)
    with torch.no_grad():
        vision = model.get_vision_features(inputs["pixel_values"])
        pose = model.get_pose_features(inputs["pose_keypoints"], inputs["pose_mask"])
        audio = model.get_audio_features(inputs["audio_spectrogram"])
        out = model(**inputs, return_loss=True)
    tokens = model.token_counts
    assert vision.pooler_output.shape == pose.pooler_output.shape == audio.pooler_output.shape == (3, DIM)
    assert vision.last_hidden_state.shape == (3, tokens["vision"], 32)
    assert pose.last_hidden_state.shape == (3, tokens["pose"], 32)
    assert audio.last_hidden_state.shape == (3, tokens["audio"], 16)
    for name, features in (("vision", vision), ("pose", pose), ("audio", audio)):
        torch.testing.assert_close(getattr(out, f"{name}_embeds"), F.normalize(features.pooler_output, dim=-1))
    assert out.logits_vision_audio.shape == out.logits_vision_audio_pose.shape == (3, 3)
    scale = model.logit_scale.exp()
    torch.testing.assert_close(out.logits_audio_pose, scale * out.audio_embeds @ out.pose_embeds.T)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    # CLIP's convention: a tuple without return_dict
    as_tuple = model.get_audio_features(inputs["audio_spectrogram"], return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[1], audio.pooler_output)


def test_a_modality_embedding_depends_on_that_modality_only():
    """The other streams are blank: the vision embedding of a clip is the same whatever its sound, its pose or the
    rest of the batch; and the blank persons of the pose stream hide nothing real."""
    model = build()
    inputs = make_inputs(model.config, batch_size=3)
    with torch.no_grad():
        batch = model.get_vision_features(inputs["pixel_values"]).pooler_output
        alone = model.get_vision_features(inputs["pixel_values"][1:2]).pooler_output
        other = make_inputs(model.config, batch_size=3, seed=5)
        mixed = {**other, "pixel_values": inputs["pixel_values"]}
        from_forward = model(**mixed).vision_embeds
    torch.testing.assert_close(alone[0], batch[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(from_forward, F.normalize(batch, dim=-1), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        absent = inputs["pose_mask"].clone()
        absent[:, 1] = 0
        keypoints = inputs["pose_keypoints"].clone()
        keypoints[:, 1] = torch.rand_like(keypoints[:, 1])  # an absent person's keypoints are ignored
        a = model.get_pose_features(inputs["pose_keypoints"], absent).pooler_output
        b = model.get_pose_features(keypoints, absent).pooler_output
        present = model.get_pose_features(inputs["pose_keypoints"]).pooler_output  # default: everyone present
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, present)


def test_contrastive_loss_infonce_and_hard_choice():
    logits = torch.tensor([[5.0, 1.0, 0.0, 4.0], [0.0, 5.0, 0.0, 0.0], [1.0, 2.0, 3.0, 0.0], [0.0, 0.0, 2.0, 1.0]])
    expected = (F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits.T, torch.arange(4))) / 2
    torch.testing.assert_close(contrastive_loss(logits), expected)
    # 2-way choice: the positive against the single highest-scoring negative of its row / column
    rows = torch.tensor([[5.0, 4.0], [5.0, 0.0], [3.0, 2.0], [1.0, 2.0]])
    columns = torch.tensor([[5.0, 1.0], [5.0, 2.0], [3.0, 2.0], [1.0, 4.0]])
    two_way = (F.cross_entropy(rows, torch.zeros(4, dtype=torch.long)) + F.cross_entropy(columns, torch.zeros(4, dtype=torch.long))) / 2
    torch.testing.assert_close(contrastive_loss(logits, num_choices=2), two_way)
    torch.testing.assert_close(contrastive_loss(logits, num_choices=4), expected)  # n = batch: InfoNCE itself
    assert contrastive_loss(torch.eye(4) * 50) < 1e-6


def test_vision_audio_query_is_the_normalised_sum():
    embeds = {s: F.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(i)), dim=-1) for i, s in enumerate(("vision", "pose", "audio"))}
    torch.testing.assert_close(contrastive_embedding_query("audio_to_pose", embeds), embeds["audio"])
    fused = contrastive_embedding_query("vision_audio_to_pose", embeds)
    torch.testing.assert_close(fused, F.normalize(embeds["vision"] + embeds["audio"], dim=-1))


def test_training_lowers_the_loss_and_learns_the_pool():
    """Projections trained on the frozen encoder's cached features of 8 clips: the loss goes down and every variant
    retrieves the right clip of that pool (recall@1 100 %, far above chance 12.5 %)."""
    model = build()
    model.freeze_encoder()
    inputs = make_inputs(model.config, batch_size=8, seed=3)
    inputs["pose_mask"] = torch.ones(8, 2, dtype=torch.long)
    with torch.no_grad():
        cached = {s: model.encode_modality(s, **inputs)[0] for s in ("vision", "pose", "audio")}
    assert not any(p.requires_grad for p in model.tribert.parameters())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    assert not model.tribert.training  # frozen: the encoder stays in eval mode
    torch.manual_seed(0)
    losses = []
    for _ in range(150):
        loss = model.contrastive_outputs({s: model.projections[s](f) for s, f in cached.items()}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0] and losses[-1] < losses[50] < losses[0]
    model.eval()
    with torch.no_grad():
        out = model(**inputs)
    embeds = {"vision": out.vision_embeds, "pose": out.pose_embeds, "audio": out.audio_embeds}
    from tribert_hf.configuration_tribert import RETRIEVAL_VARIANTS

    for variant, (_, target, _) in RETRIEVAL_VARIANTS.items():
        scores = contrastive_embedding_query(variant, embeds) @ embeds[target].T
        metrics = collection_metrics(scores)
        assert metrics["recall@1"] == 100.0 and metrics["median_rank"] == 1.0, variant


def test_encoder_from_a_pretraining_checkpoint(tmp_path):
    torch.manual_seed(1)
    pretraining = TriBertForPreTraining(config())
    pretraining.save_pretrained(tmp_path / "pre")
    model, info = TriBertForContrastiveRetrieval.from_pretrained(tmp_path / "pre", output_loading_info=True)
    encoder = pretraining.tribert.state_dict()
    for name, tensor in model.tribert.state_dict().items():
        torch.testing.assert_close(tensor, encoder[name], rtol=0, atol=0)
    assert all(k.startswith(("projections.", "logit_scale")) for k in info["missing_keys"])
    assert model.logit_scale.item() == pytest.approx(CONTRASTIVE_LOGIT_SCALE_INIT)
    assert all(torch.isfinite(p).all() for p in model.projections.parameters())
    model.save_pretrained(tmp_path / "contrastive")
    again = TriBertForContrastiveRetrieval.from_pretrained(tmp_path / "contrastive")
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_clear_errors():
    model = build()
    inputs = make_inputs(model.config, batch_size=2)
    with pytest.raises(ValueError, match="Unknown modality"):
        model.encode_modality("text", pixel_values=inputs["pixel_values"])
    with pytest.raises(ValueError, match="need `audio_spectrogram`"):
        model.encode_modality("audio", pixel_values=inputs["pixel_values"])
    with pytest.raises(ValueError, match="32 x 32"):
        model.get_vision_features(torch.zeros(2, 3, 3, 16, 16))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model.get_audio_features(inputs["audio_spectrogram"].numpy())
    with pytest.raises(TypeError, match="pose_masks"):
        model(**inputs, pose_masks=inputs["pose_mask"])
    bad = copy.deepcopy(inputs["audio_spectrogram"])
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.get_audio_features(bad)


def test_saved_folder_loads_with_remote_code(tmp_path):
    """The folder carries its code: `AutoModel` with `trust_remote_code=True` loads the contrastive model in a
    process that cannot import tribert_hf, and gives the same audio features."""
    from test_remote_code import run_without_tribert_hf

    model = build()
    model.save_pretrained(tmp_path / "folder")
    assert {"modeling_tribert.py", "modeling_tribert_retrieval.py"} <= set(os.listdir(tmp_path / "folder"))
    inputs = make_inputs(model.config, batch_size=2)
    torch.save(inputs["audio_spectrogram"], tmp_path / "audio.pt")
    with torch.no_grad():
        expected = model.get_audio_features(inputs["audio_spectrogram"]).pooler_output
    torch.save(expected, tmp_path / "expected.pt")
    run_without_tribert_hf(tmp_path, f"""
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / "folder")!r}, trust_remote_code=True).eval()
        assert type(model).__name__ == "TriBertForContrastiveRetrieval", type(model)
        with torch.no_grad():
            out = model.get_audio_features(torch.load({str(tmp_path / "audio.pt")!r})).pooler_output
        torch.testing.assert_close(out, torch.load({str(tmp_path / "expected.pt")!r}))
    """)

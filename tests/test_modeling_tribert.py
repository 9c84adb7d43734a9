"""Our own version of transformers' common model tests, on a tiny config."""

import copy
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import make_inputs, make_tiny_config, tiny_config_kwargs
from transformers import AutoConfig, AutoModel

from tribert_hf import MUSIC21_LABELS, TriBertConfig, TriBertModel, TriBertModelOutput


def _no_dropout_config(**overrides):
    zero = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    return make_tiny_config(
        vision_config={**zero, "segmentation_dropout": 0.0, "mask_probability": 0.0},
        pose_config=zero,
        audio_config=zero,
        co_attention_dropout=0.0,
        **overrides,
    )


def _model(config, seed=0, attn_implementation=None):
    torch.manual_seed(seed)
    model = TriBertModel(copy.deepcopy(config)).eval()
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    return model


def test_default_config_is_the_papers():
    config = TriBertConfig()
    vc, pc, ac = config.vision_config, config.pose_config, config.audio_config
    assert (vc.hidden_size, pc.hidden_size, ac.hidden_size) == (1024, 1024, 512)
    assert vc.num_attention_heads == pc.num_attention_heads == ac.num_attention_heads == 8
    assert (vc.num_frames, vc.num_objects, vc.feature_size) == (3, 2, 1024)
    assert (pc.num_persons, pc.num_joints, pc.num_pose_frames, pc.num_segments) == (2, 68, 256, 3)
    assert ac.num_frequency_bins == 256
    assert vc.mask_probability == 0.15
    assert config.co_attention_hidden_size == 512 and config.co_attention_num_heads == 8
    assert config.num_labels == 21 and tuple(config.id2label[i] for i in range(21)) == MUSIC21_LABELS
    assert config.label2id["violin"] == MUSIC21_LABELS.index("violin")
    assert config.layer_plan["vision"] == ["co", "self"] * 6
    backbone = vc.backbone_config
    assert backbone.model_type == "resnet" and list(backbone.depths) == [3, 4, 6, 3]
    assert backbone.layer_type == "bottleneck" and backbone.out_features == ["stage4"]


def test_config_json_round_trip(tmp_path, tiny_config):
    tiny_config.save_pretrained(tmp_path)
    loaded = TriBertConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == tiny_config.to_dict()
    assert loaded.vision_config.backbone_config.hidden_sizes == [8, 16]
    assert isinstance(AutoConfig.from_pretrained(tmp_path), TriBertConfig)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"vision_config": {"hidden_size": 30}}, "not divisible by num_attention_heads"),
        ({"vision_config": {"num_frames": 0}}, "num_frames must be a positive"),
        ({"pose_config": {"num_persons": 0}}, "num_persons must be a positive"),
        ({"co_attention_hidden_size": 18}, "co_attention_hidden_size (18) is not divisible"),
        ({"vision_config": {"mask_probability": 1.5}}, "mask_probability must be in [0, 1)"),
        ({"audio_config": {"co_attention_ids": [0]}}, "same number of co-attention layers"),
        ({"pose_config": {"co_attention_ids": [1, 0]}}, "non-decreasing"),
        ({"pose_config": {"co_attention_ids": [0, 3]}}, "must lie in [0, num_hidden_layers=2]"),
        ({"pose_config": {"graph_layout": "coco17"}}, "graph_layout must be one of"),
        ({"pose_config": {"num_joints": 17}}, "does not match graph_layout"),
        ({"pose_config": {"temporal_kernel_size": 4}}, "must be odd"),
        ({"vision_config": {"num_objects": 6}}, "cannot exceed the number of classes"),
        ({"vision_config": {"use_pretrained_backbone": True}}, "needs `backbone`"),
        ({"audio_config": {"cnn_layers": ["M"]}}, "at least one convolution"),
    ],
)
def test_config_validation_errors(overrides, message):
    with pytest.raises(ValueError) as error:
        make_tiny_config(**overrides)
    assert message in str(error.value)


def test_output_shapes(tiny_config, tiny_inputs):
    model = _model(tiny_config)
    with torch.no_grad():
        out = model(**tiny_inputs)
    assert isinstance(out, TriBertModelOutput)
    batch = 2
    assert out.vision_last_hidden_state.shape == (batch, 1 + 3 * 2, 32)
    assert out.pose_last_hidden_state.shape == (batch, 1 + 3 * 2, 32)
    assert out.audio_last_hidden_state.shape == (batch, 1 + 6, 16)
    assert out.vision_pooler_output.shape == (batch, 32)
    assert out.pose_pooler_output.shape == (batch, 32)
    assert out.audio_pooler_output.shape == (batch, 16)
    assert out.vision_embeddings.shape == out.vision_last_hidden_state.shape
    assert out.pose_embeddings.shape == out.pose_last_hidden_state.shape
    assert out.audio_embeddings.shape == out.audio_last_hidden_state.shape
    assert out.vision_class_scores.shape == (batch, 3, 5)
    assert ((out.vision_class_scores > 0) & (out.vision_class_scores < 1)).all()
    assert out.vision_object_classes.shape == (batch, 2)
    # the object classes are the two best clip-level scores
    expected = out.vision_class_scores.mean(1).topk(2).indices
    assert torch.equal(out.vision_object_classes, expected)
    assert out.vision_masked_positions is None  # eval mode: nothing masked
    # pose tokens are segment-major: (sos, s0p0, s0p1, s1p0, s1p1, s2p0, s2p1); clip 1 has person 1 absent
    assert out.pose_attention_mask.tolist() == [[1] * 7, [1, 1, 0, 1, 0, 1, 0]]
    assert out.vision_hidden_states is None and out.vision_attentions is None
    for value in out.to_tuple():
        if value.is_floating_point():
            assert torch.isfinite(value).all()


def test_hidden_states_and_attentions(tiny_config, tiny_inputs):
    model = _model(tiny_config, attn_implementation="eager")
    with torch.no_grad():
        out = model(**tiny_inputs, output_hidden_states=True, output_attentions=True)
    # embeddings + one entry per layer that updates the stream (2 co + self layers)
    assert len(out.vision_hidden_states) == 1 + 2 + 2
    assert len(out.pose_hidden_states) == 1 + 2 + 2
    assert len(out.audio_hidden_states) == 1 + 2 + 1
    assert torch.equal(out.vision_hidden_states[0], out.vision_embeddings)
    assert torch.equal(out.audio_hidden_states[-1], out.audio_last_hidden_state)
    assert len(out.vision_attentions) == 2 and len(out.audio_attentions) == 1
    assert out.vision_attentions[0].shape == (2, 4, 7, 7)
    assert out.audio_attentions[0].shape == (2, 4, 7, 7)
    # co-attention: the keys are the other two streams concatenated
    assert len(out.vision_cross_attentions) == 2
    assert out.vision_cross_attentions[0].shape == (2, 4, 7, 7 + 7)
    assert out.audio_cross_attentions[0].shape == (2, 4, 7, 7 + 7)
    # absent person's tokens get zero attention everywhere (clip 1, person 1 -> pose tokens 2, 4, 6)
    absent = [2, 4, 6]
    assert out.pose_attentions[0][1, :, :, absent].abs().max() == 0
    assert out.vision_cross_attentions[0][1, :, :, absent].abs().max() == 0  # keys: pose, audio
    assert out.audio_cross_attentions[1][1, :, :, [7 + i for i in absent]].abs().max() == 0  # keys: vision, pose
    torch.testing.assert_close(out.vision_cross_attentions[0].sum(-1), torch.ones(2, 4, 7))


def test_tuple_and_dict_outputs_agree(tiny_config, tiny_inputs):
    model = _model(tiny_config)
    with torch.no_grad():
        as_dict = model(**tiny_inputs, output_hidden_states=True)
        as_tuple = model(**tiny_inputs, output_hidden_states=True, return_dict=False)
    assert isinstance(as_tuple, tuple)
    expected = as_dict.to_tuple()
    assert len(as_tuple) == len(expected)
    for a, b in zip(as_tuple, expected):
        if isinstance(a, tuple):
            assert all(torch.equal(x, y) for x, y in zip(a, b))
        else:
            assert torch.equal(a, b)


def test_save_and_load_round_trip(tmp_path, tiny_config, tiny_inputs):
    model = _model(tiny_config)
    with torch.no_grad():
        before = model(**tiny_inputs)
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert "model.safetensors" in files and "config.json" in files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files), files
    for loader in (TriBertModel, AutoModel):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert type(loaded) is TriBertModel
        with torch.no_grad():
            after = loaded(**tiny_inputs)
        for key in ("vision_last_hidden_state", "pose_last_hidden_state", "audio_pooler_output", "vision_class_scores"):
            torch.testing.assert_close(after[key], before[key], rtol=0, atol=1e-6)
    # non-persistent buffer (graph adjacency) is rebuilt, not left on the meta device
    assert loaded.pose_embeddings.graph_network.adjacency.device.type == "cpu"


def test_eager_and_sdpa_agree(tiny_config, tiny_inputs):
    eager = _model(tiny_config, attn_implementation="eager")
    sdpa = _model(tiny_config, seed=1, attn_implementation="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    with torch.no_grad():
        a, b = eager(**tiny_inputs), sdpa(**tiny_inputs)
    for key in ("vision_last_hidden_state", "pose_last_hidden_state", "audio_last_hidden_state"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_inputs):
    config = _no_dropout_config()

    def gradients(checkpointing):
        model = _model(config).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.encoder.co_attention_layers[0].gradient_checkpointing
        out = model(**tiny_inputs)
        loss = sum(out[f"{s}_last_hidden_state"].pow(2).mean() for s in ("vision", "pose", "audio"))
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_absent_person_does_not_change_the_outputs(tiny_config, tiny_inputs, mode):
    config = _no_dropout_config() if mode == "train" else tiny_config
    model = _model(config).train(mode == "train")
    other = {k: v.clone() for k, v in tiny_inputs.items()}
    other["pose_keypoints"][1, 1] = torch.rand_like(other["pose_keypoints"][1, 1]) * 5  # clip 1, absent person 1
    with torch.no_grad():
        a, b = model(**tiny_inputs), model(**other)
    present = [0, 1, 3, 5]  # sos and person-0 tokens
    torch.testing.assert_close(a.pose_last_hidden_state[:, present], b.pose_last_hidden_state[:, present])
    torch.testing.assert_close(a.vision_last_hidden_state, b.vision_last_hidden_state)
    torch.testing.assert_close(a.audio_last_hidden_state, b.audio_last_hidden_state)
    # ...while changing a present person does change them
    other["pose_keypoints"][1, 0] = torch.rand_like(other["pose_keypoints"][1, 0])
    with torch.no_grad():
        c = model(**other)
    assert not torch.allclose(a.vision_last_hidden_state[1], c.vision_last_hidden_state[1])


def test_visual_region_masking(tiny_inputs):
    config = make_tiny_config(vision_config={"mask_probability": 0.5})
    model = _model(config)
    masked = torch.zeros(2, 6, dtype=torch.bool)
    masked[0, 1] = True
    with torch.no_grad():
        plain = model(**tiny_inputs)
        out = model(**tiny_inputs, bool_masked_pos=masked)
    assert torch.equal(out.vision_masked_positions, masked)
    # the masked token's embedding is the mask embedding's, whatever the frame held
    assert not torch.allclose(out.vision_embeddings[0, 2], plain.vision_embeddings[0, 2])
    torch.testing.assert_close(out.vision_embeddings[1], plain.vision_embeddings[1])
    # training mode samples masks at the configured rate
    model.train()
    torch.manual_seed(0)
    rates = [model(**tiny_inputs).vision_masked_positions.float().mean().item() for _ in range(8)]
    assert 0.3 < sum(rates) / len(rates) < 0.7
    with pytest.raises(ValueError, match="bool_masked_pos"):
        model(**tiny_inputs, bool_masked_pos=torch.zeros(2, 5, dtype=torch.bool))


def test_every_parameter_gets_a_gradient(tiny_inputs):
    """No unused parameters: DistributedDataParallel needs no `find_unused_parameters`."""
    model = _model(_no_dropout_config()).train()
    masked = torch.zeros(2, 6, dtype=torch.bool)
    masked[:, 0] = True
    out = model(**tiny_inputs, bool_masked_pos=masked)
    loss = sum(out[f"{s}_pooler_output"].sum() for s in ("vision", "pose", "audio")) + out.vision_class_scores.sum()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_shared_audio_equals_repeated_audio(tiny_inputs):
    """`audio_repeats`: one spectrogram row per mixture gives the outputs of the spectrogram repeated per video."""
    model = _model(_no_dropout_config())
    audio = tiny_inputs["audio_spectrogram"][:1]
    inputs = dict(tiny_inputs)
    with torch.no_grad():
        repeated = model(**{**inputs, "audio_spectrogram": audio.repeat_interleave(2, dim=0)})
        shared = model(**{**inputs, "audio_spectrogram": audio}, audio_repeats=2)
    for name in ("vision_pooler_output", "pose_pooler_output", "audio_pooler_output", "audio_last_hidden_state"):
        torch.testing.assert_close(shared[name], repeated[name], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="batch size 1 x audio_repeats=3"):
        model(**{**inputs, "audio_spectrogram": audio}, audio_repeats=3)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x: x.update(pixel_values=x["pixel_values"][:, :2]), "must have 3 frames"),
        (lambda x: x.update(pixel_values=x["pixel_values"][0]), "must have shape (batch, frames, channels"),
        (lambda x: x.update(pose_keypoints=x["pose_keypoints"][..., :17, :]), "68 joints"),
        (lambda x: x.update(pose_keypoints=x["pose_keypoints"][..., :2]), "x, y, confidence"),
        (lambda x: x.update(audio_spectrogram=-x["audio_spectrogram"]), "non-negative STFT magnitude"),
        (lambda x: x.update(audio_spectrogram=x["audio_spectrogram"][:, :, :10]), "32 log-frequency bins"),
        (lambda x: x.update(audio_spectrogram=x["audio_spectrogram"][:1]), "batch size 1"),
        (lambda x: x.update(pose_mask=torch.ones(2, 3)), "`pose_mask` must have shape (batch, 2)"),
        (lambda x: x.update(pixel_values=x["pixel_values"].long()), "floating point"),
    ],
)
def test_bad_inputs_get_clear_errors(tiny_config, tiny_inputs, change, message):
    model = _model(tiny_config)
    change(tiny_inputs)
    with pytest.raises(ValueError) as error:
        model(**tiny_inputs)
    assert message in str(error.value)


def test_auto_classes_resolve(tiny_config):
    config = AutoConfig.for_model("tribert", **tiny_config_kwargs())
    assert isinstance(config, TriBertConfig)
    assert type(AutoModel.from_config(config)) is TriBertModel


def test_pretrained_backbone_from_a_local_folder(tmp_path, tiny_inputs):
    from transformers import ResNetConfig, ResNetModel

    backbone_config = make_tiny_config().vision_config.backbone_config
    torch.manual_seed(123)
    resnet = ResNetModel(ResNetConfig(**{k: v for k, v in backbone_config.to_dict().items() if "out_" not in k}))
    resnet.save_pretrained(tmp_path / "resnet")
    config = make_tiny_config(vision_config={"use_pretrained_backbone": True, "backbone": str(tmp_path / "resnet")})
    model = TriBertModel(config).eval()
    reference = resnet.state_dict()
    loaded = model.vision_embeddings.backbone.state_dict()
    shared = [k for k in loaded if k in reference]
    assert len(shared) > 10
    for key in shared:
        torch.testing.assert_close(loaded[key], reference[key], msg=key)
    # the checkpoint holds the backbone: reloading needs no backbone folder
    model.save_pretrained(tmp_path / "tribert")
    assert json.load(open(tmp_path / "tribert" / "config.json"))["vision_config"]["use_pretrained_backbone"] is False
    assert model.config.vision_config.use_pretrained_backbone is True  # the live config is untouched
    (tmp_path / "resnet" / "model.safetensors").unlink()
    reloaded = TriBertModel.from_pretrained(tmp_path / "tribert").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**tiny_inputs).vision_pooler_output, model(**tiny_inputs).vision_pooler_output)


@pytest.mark.slow
def test_trust_remote_code_load_without_tribert_hf(tmp_path, tiny_config, tiny_inputs):
    model = _model(tiny_config)
    model.save_pretrained(tmp_path / "model")
    saved = os.listdir(tmp_path / "model")
    assert {"configuration_tribert.py", "modeling_tribert.py", "graph.py"} <= set(saved)
    auto_map = json.load(open(tmp_path / "model" / "config.json"))["auto_map"]
    assert auto_map == {"AutoConfig": "configuration_tribert.TriBertConfig", "AutoModel": "modeling_tribert.TriBertModel"}
    torch.save(tiny_inputs, tmp_path / "inputs.pt")
    with torch.no_grad():
        torch.save(model(**tiny_inputs).vision_pooler_output, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys, importlib.abc

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "tribert_hf":
                    raise ImportError("tribert_hf must not be imported here")

        sys.meta_path.insert(0, Block())
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
        assert "tribert_hf" not in sys.modules
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        with torch.no_grad():
            out = model(**inputs).vision_pooler_output
        torch.testing.assert_close(out, torch.load({str(tmp_path / "expected.pt")!r}))
        print("REMOTE-OK", type(model).__name__)
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REMOTE-OK TriBertModel" in result.stdout



def backbone_state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_a_frozen_vision_backbone_gets_no_gradient_and_keeps_its_statistics(tiny_config, tiny_inputs):
    """`freeze_vision_backbone`: no gradient reaches the frame backbone, its batch-norm statistics stay as they
    were through training-mode forwards (whatever `train()` is asked), and what follows it still learns;
    `freeze_vision_backbone(False)` undoes it."""
    torch.manual_seed(0)
    model = TriBertModel(tiny_config)
    embeddings = model.vision_embeddings
    backbone = embeddings.backbone
    model.freeze_vision_backbone()
    model.train()
    assert not backbone.training and embeddings.feature_conv.training
    before = backbone_state(backbone)
    statistics = [k for k in before if k.endswith("running_mean")]
    assert statistics
    model(**tiny_inputs).vision_pooler_output.sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in backbone.parameters())
    assert embeddings.feature_conv.weight.grad.abs().sum() > 0
    after = backbone_state(backbone)
    for key in before:
        torch.testing.assert_close(after[key], before[key], msg=key)  # batch-norm statistics included
    model.freeze_vision_backbone(False)
    model.train()
    assert backbone.training and all(p.requires_grad for p in backbone.parameters())
    model(**tiny_inputs)
    assert any(not torch.equal(backbone.state_dict()[k], before[k]) for k in statistics)  # trained again

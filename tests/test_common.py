"""Our own version of transformers' common model tests, run over every TriBERT model class (tiny configs, CPU):
return_dict by argument and by config, tuple/dict equivalence, hidden states and attentions by argument and by
config, the sdpa warning, eager vs sdpa, save/load with missing and mismatched keys, `device_map` loading,
strict keyword arguments, input dtypes, gradient checkpointing; `torch.compile` / `torch.export` in the slow tier."""

import copy

import pytest
import torch
from conftest import make_inputs
from test_heads import head_config, mixture_inputs
from transformers.testing_utils import CaptureLogger

from tribert_hf import TriBertForPreTraining, TriBertForRetrieval, TriBertForSourceSeparation, TriBertModel
from tribert_hf import input_checks


MODEL_CLASSES = [TriBertModel, TriBertForSourceSeparation, TriBertForPreTraining, TriBertForRetrieval]
STREAMS = ("vision", "pose", "audio")
# encoder examples per batch: TriBertModel sees 4 clips, the heads 2 examples of 2 videos or 2 candidate pairs
ENCODER_BATCH = 4
FIELD = {
    TriBertModel: "vision_pooler_output",
    TriBertForSourceSeparation: "logits",
    TriBertForPreTraining: "mask_logits",
    TriBertForRetrieval: "logits",
}


def common_config(**overrides):
    return head_config(retrieval_variant="audio_to_vision", retrieval_hidden_size=16, **overrides)


def inputs_for(model_class, config, seed=0):
    """Inputs every class accepts: clips for TriBertModel, 2 mixtures of 2 videos for the separation heads, 2
    queries with their n candidate pairs for retrieval."""
    if model_class is TriBertModel:
        return make_inputs(config, batch_size=ENCODER_BATCH, seed=seed)
    if model_class is TriBertForRetrieval:  # 2 candidates per query (forward takes any n)
        clips = make_inputs(config, batch_size=4, seed=seed)
        return {k: v.view(2, 2, *v.shape[1:]) for k, v in clips.items()}
    return mixture_inputs(config, seed=seed)


def build(model_class, config=None, seed=0, attn_implementation=None):
    config = copy.deepcopy(config or common_config())
    torch.manual_seed(seed)
    model = model_class(config).eval()
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    return model


def assert_same(a, b, atol=0.0):
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y, atol)
    else:
        torch.testing.assert_close(a, b, rtol=0, atol=atol)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_return_dict_by_argument_and_by_config(model_class, tmp_path):
    model = build(model_class)
    inputs = inputs_for(model_class, model.config)
    with torch.no_grad():
        as_dict = model(**inputs, output_hidden_states=True)
        as_tuple = model(**inputs, output_hidden_states=True, return_dict=False)
        model.config.return_dict = False
        by_config = model(**inputs, output_hidden_states=True)
        forced = model(**inputs, return_dict=True)
    assert isinstance(as_tuple, tuple) and isinstance(by_config, tuple) and not isinstance(forced, tuple)
    assert_same(as_tuple, as_dict.to_tuple())
    assert_same(by_config, as_tuple)
    model.config.return_dict = True
    model.save_pretrained(tmp_path)
    loaded = model_class.from_pretrained(tmp_path, return_dict=False).eval()
    assert loaded.config.return_dict is False
    with torch.no_grad():
        assert isinstance(loaded(**inputs), tuple)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("by", ["argument", "config"])
def test_hidden_states_and_attentions(model_class, by):
    model = build(model_class, attn_implementation="eager")
    inputs = inputs_for(model_class, model.config)
    with torch.no_grad():
        plain = model(**inputs)
        if by == "argument":
            out = model(**inputs, output_hidden_states=True, output_attentions=True)
        else:
            model.config.output_hidden_states = True
            model.config.output_attentions = True
            out = model(**inputs)
    for stream in STREAMS:
        assert getattr(plain, f"{stream}_hidden_states") is None and getattr(plain, f"{stream}_attentions") is None
    # embeddings + one entry per layer that updates the stream (2 co-attention layers and the stream's own layers)
    layers = {"vision": 2, "pose": 2, "audio": 1}
    for stream, count in layers.items():
        hidden = getattr(out, f"{stream}_hidden_states")
        assert len(hidden) == 1 + 2 + count and hidden[0].shape[0] == ENCODER_BATCH
        assert len(getattr(out, f"{stream}_attentions")) == count
        cross = getattr(out, f"{stream}_cross_attentions")
        assert len(cross) == 2 and cross[0].shape[:2] == (ENCODER_BATCH, 4)
    assert out.vision_attentions[0].shape == (ENCODER_BATCH, 4, 7, 7)
    # the outputs themselves do not change
    assert_same(out[FIELD[model_class]], plain[FIELD[model_class]])


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_sdpa_warns_and_returns_no_attentions(model_class):
    model = build(model_class)
    assert model.config._attn_implementation == "sdpa"
    inputs = inputs_for(model_class, model.config)
    logger = input_checks.logger
    with CaptureLogger(logger) as captured, torch.no_grad():
        out = model(**inputs, output_attentions=True)
    assert "`sdpa` attention does not support `output_attentions=True`" in captured.out
    assert model_class.__name__ in captured.out
    assert all(getattr(out, f"{s}_attentions") is None and getattr(out, f"{s}_cross_attentions") is None for s in STREAMS)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 0.1)])
def test_eager_and_sdpa_agree(model_class, dtype, atol):
    eager = build(model_class, attn_implementation="eager").to(dtype)
    sdpa = build(model_class, attn_implementation="sdpa").to(dtype)
    inputs = inputs_for(model_class, eager.config)
    with torch.no_grad():
        a, b = eager(**inputs), sdpa(**inputs)
    assert a[FIELD[model_class]].dtype == dtype
    torch.testing.assert_close(a[FIELD[model_class]].float(), b[FIELD[model_class]].float(), rtol=0, atol=atol)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_unknown_keyword_arguments_are_named(model_class):
    model = build(model_class)
    inputs = inputs_for(model_class, model.config)
    inputs["pose_masks"] = inputs.pop("pose_mask")
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) `pose_masks` \(did you mean `pose_mask`\?\)"):
        model(**inputs)
    assert model.accepts_loss_kwargs is False  # so transformers' Trainer passes no `num_items_in_batch`


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_floating_inputs_are_cast_to_the_model_dtype(model_class):
    model = build(model_class)
    inputs = inputs_for(model_class, model.config)
    with torch.no_grad():
        expected = model(**inputs)[FIELD[model_class]]
        doubled = model(**{k: v.double() if v.is_floating_point() else v for k, v in inputs.items()})
        halved = model(**{k: v.half() if v.is_floating_point() else v for k, v in inputs.items()})
    assert doubled[FIELD[model_class]].dtype == torch.float32
    torch.testing.assert_close(doubled[FIELD[model_class]], expected)
    assert halved[FIELD[model_class]].dtype == torch.float32
    # the processor's float32 tensors into a bfloat16 model
    model.to(torch.bfloat16)
    with torch.no_grad():
        out = model(**inputs)
    assert out[FIELD[model_class]].dtype == torch.bfloat16 and torch.isfinite(out[FIELD[model_class]].float()).all()


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_save_load_and_device_map(model_class, tmp_path):
    model = build(model_class)
    inputs = inputs_for(model_class, model.config)
    model.save_pretrained(tmp_path)
    with torch.no_grad():
        expected = model(**inputs)[FIELD[model_class]]
    for kwargs in ({}, {"device_map": "cpu"}):
        loaded, info = model_class.from_pretrained(tmp_path, output_loading_info=True, **kwargs)
        assert type(loaded) is model_class and not any(info.values()), info
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval()(**inputs)[FIELD[model_class]], expected, rtol=0, atol=1e-6)


def test_missing_and_mismatched_keys(tmp_path):
    """A base checkpoint into a head: the head's own weights are reported missing; a changed label set is
    refused unless `ignore_mismatched_sizes=True`, which reports the replaced weights."""
    build(TriBertModel).save_pretrained(tmp_path / "base")
    for model_class in (TriBertForSourceSeparation, TriBertForPreTraining, TriBertForRetrieval):
        _, info = model_class.from_pretrained(tmp_path / "base", output_loading_info=True)
        assert info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
        assert not any(key.startswith("tribert.") for key in info["missing_keys"]), info["missing_keys"]
    build(TriBertForPreTraining).save_pretrained(tmp_path / "pretraining")
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        TriBertForPreTraining.from_pretrained(tmp_path / "pretraining", num_labels=3)
    _, info = TriBertForPreTraining.from_pretrained(
        tmp_path / "pretraining", num_labels=3, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert any("audio_classifier" in str(key) for key in info["mismatched_keys"])


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_training_step_with_gradient_checkpointing(model_class):
    """Same loss and gradients with and without gradient checkpointing, then an optimiser step."""

    def step(checkpointing):
        model = build(model_class).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.is_activation_checkpointing
        out = model(**inputs_for(model_class, model.config))
        loss = out[FIELD[model_class]].float().pow(2).mean()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        return loss.detach(), grads

    (plain_loss, plain), (checked_loss, checked) = step(False), step(True)
    torch.testing.assert_close(checked_loss, plain_loss)
    assert plain.keys() == checked.keys() and plain
    for name in plain:
        torch.testing.assert_close(checked[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_torch_compile_forward_and_backward(model_class):
    model = build(model_class).train()
    inputs = inputs_for(model_class, model.config)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(**inputs)
    out[FIELD[model_class]].float().pow(2).mean().backward()
    assert any(p.grad is not None for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_torch_export(model_class):
    model = build(model_class)
    inputs = inputs_for(model_class, model.config)
    with torch.no_grad():
        expected = model(**inputs)[FIELD[model_class]]
    exported = torch.export.export(model, args=(), kwargs=inputs, strict=False)
    with torch.no_grad():
        got = exported.module()(**inputs)[FIELD[model_class]]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)

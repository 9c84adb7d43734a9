"""Every saved folder (each model class, the baselines, the processor, the feature extractor, the video processor)
loads with `trust_remote_code=True` in a process that cannot import tribert_hf: `auto_map` + the copied code."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import make_inputs
from test_baselines import audio_only_model, mixture_batch, sop_model
from test_common import build, common_config, inputs_for

from tribert_hf import (
    TriBertFeatureExtractor,
    TriBertForPreTraining,
    TriBertForRetrieval,
    TriBertForSourceSeparation,
    TriBertModel,
    TriBertProcessor,
    TriBertVideoProcessor,
)


BLOCK_TRIBERT_HF = """
import sys, importlib.abc

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tribert_hf":
            raise ImportError("tribert_hf must not be imported here")

sys.meta_path.insert(0, Block())
"""


def run_without_tribert_hf(tmp_path, body: str) -> str:
    """Run `body` in a fresh interpreter in which `import tribert_hf` fails; returns its stdout."""
    script = BLOCK_TRIBERT_HF + textwrap.dedent(body) + '\nassert "tribert_hf" not in sys.modules\nprint("REMOTE-OK")\n'
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)  # the package must not be found at all
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "REMOTE-OK" in result.stdout
    return result.stdout


MODELS = {
    # class: (Auto classes that load it from its folder, Auto classes that load the bare encoder from it)
    TriBertModel: (["AutoModel"], []),
    TriBertForPreTraining: (["AutoModelForPreTraining"], ["AutoModel"]),
    TriBertForRetrieval: (["AutoModelForMultipleChoice"], ["AutoModel"]),
    TriBertForSourceSeparation: (["AutoModel"], []),
}
FIELD = {TriBertModel: "vision_pooler_output", TriBertForPreTraining: "mask_logits"}


@pytest.mark.slow
@pytest.mark.parametrize("model_class", list(MODELS), ids=lambda c: c.__name__)
def test_every_model_folder_loads_as_remote_code(tmp_path, model_class):
    model = build(model_class, common_config())
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    files = set(os.listdir(folder))
    assert {"configuration_tribert.py", "modeling_tribert.py", "graph.py"} <= files, files
    auto_map = json.load(open(folder / "config.json"))["auto_map"]
    loads_head, loads_base = MODELS[model_class]
    expected = {"AutoConfig": "configuration_tribert.TriBertConfig"}
    expected |= {auto: f"{model_class.__module__.rpartition('.')[2]}.{model_class.__name__}" for auto in loads_head}
    expected |= {auto: "modeling_tribert.TriBertModel" for auto in loads_base}
    assert auto_map == expected
    inputs = inputs_for(model_class, model.config)
    field = FIELD.get(model_class, "logits")
    torch.save(inputs, tmp_path / "inputs.pt")
    with torch.no_grad():
        torch.save(model(**inputs)[field], tmp_path / "expected.pt")
        torch.save(model.tribert(**make_inputs(model.config)).vision_pooler_output if loads_base else None, tmp_path / "base.pt")
    run_without_tribert_hf(
        tmp_path,
        f"""
        import torch, transformers
        folder = {str(folder)!r}
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        for auto in {loads_head!r}:
            model = getattr(transformers, auto).from_pretrained(folder, trust_remote_code=True).eval()
            assert type(model).__name__ == {model_class.__name__!r} and type(model).__module__.startswith("transformers_modules")
            with torch.no_grad():
                torch.testing.assert_close(model(**inputs)[{field!r}], torch.load({str(tmp_path / "expected.pt")!r}))
        for auto in {loads_base!r}:
            base = getattr(transformers, auto).from_pretrained(folder, trust_remote_code=True).eval()
            assert type(base).__name__ == "TriBertModel", type(base)
        """,
    )


def test_a_head_saved_from_another_heads_folder_names_only_its_own_classes(tmp_path):
    build(TriBertForPreTraining).save_pretrained(tmp_path / "pretraining")
    config = json.load(open(tmp_path / "pretraining" / "config.json"))
    assert config["custom_pipelines"]["audio-source-separation"]["pt"] == ["AutoModelForPreTraining"]
    assert "pipeline_tribert.py" in os.listdir(tmp_path / "pretraining")
    for model_class in (TriBertModel, TriBertForRetrieval, TriBertForSourceSeparation):
        folder = tmp_path / model_class.__name__
        model_class.from_pretrained(tmp_path / "pretraining").save_pretrained(folder)
        config = json.load(open(folder / "config.json"))
        assert "AutoModelForPreTraining" not in config["auto_map"], config["auto_map"]
        pipelines = config.get("custom_pipelines") or {}
        if model_class is TriBertForSourceSeparation:
            assert pipelines["audio-source-separation"]["pt"] == ["AutoModel"]
            assert "pipeline_tribert.py" in os.listdir(folder)
        else:
            assert not pipelines, pipelines


@pytest.mark.slow
@pytest.mark.parametrize("name", ["audio_only", "sound_of_pixels"])
def test_baseline_folders_load_as_remote_code(tmp_path, name):
    model = (audio_only_model() if name == "audio_only" else sop_model()).eval()
    model_class = type(model)
    model.save_pretrained(tmp_path / "model")
    assert {"modeling_baselines.py", "modeling_tribert.py", "configuration_baselines.py"} <= set(os.listdir(tmp_path / "model"))
    batch = mixture_batch()
    torch.save(batch, tmp_path / "inputs.pt")
    with torch.no_grad():
        torch.save(model(**batch).masks, tmp_path / "expected.pt")
    run_without_tribert_hf(
        tmp_path,
        f"""
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
        assert type(model).__name__ == {model_class.__name__!r}
        with torch.no_grad():
            torch.testing.assert_close(model(**torch.load({str(tmp_path / "inputs.pt")!r})).masks, torch.load({str(tmp_path / "expected.pt")!r}))
        """,
    )


@pytest.mark.slow
def test_processor_feature_extractor_and_video_processor_load_as_remote_code(tmp_path):
    processor = TriBertProcessor(TriBertFeatureExtractor(), TriBertVideoProcessor(), num_pose_frames=64)
    for name, obj in (("processor", processor), ("feature_extractor", processor.feature_extractor), ("video_processor", processor.video_processor)):
        obj.save_pretrained(tmp_path / name)
    assert {"processing_tribert.py", "feature_extraction_tribert.py", "video_processing_tribert.py"} <= set(os.listdir(tmp_path / "processor"))
    audio = np.random.default_rng(0).standard_normal(70000).astype(np.float32)
    frames = np.random.default_rng(1).integers(0, 255, (12, 40, 50, 3), dtype=np.uint8)
    expected = processor(audio, videos=frames, sampling_rate=11025, video_fps=2.0, return_tensors="pt")
    torch.save({"audio": audio, "frames": frames, "expected": dict(expected)}, tmp_path / "data.pt")
    run_without_tribert_hf(
        tmp_path,
        f"""
        import torch
        from transformers import AutoFeatureExtractor, AutoProcessor, AutoVideoProcessor
        data = torch.load({str(tmp_path / "data.pt")!r}, weights_only=False)
        processor = AutoProcessor.from_pretrained({str(tmp_path / "processor")!r}, trust_remote_code=True)
        assert type(processor).__name__ == "TriBertProcessor" and processor.num_pose_frames == 64
        assert type(processor.feature_extractor).__name__ == "TriBertFeatureExtractor"
        assert type(processor.video_processor).__name__ == "TriBertVideoProcessor"
        out = processor(data["audio"], videos=data["frames"], sampling_rate=11025, video_fps=2.0, return_tensors="pt")
        for key, value in data["expected"].items():
            torch.testing.assert_close(out[key], value)
        fe = AutoFeatureExtractor.from_pretrained({str(tmp_path / "feature_extractor")!r}, trust_remote_code=True)
        assert type(fe).__name__ == "TriBertFeatureExtractor"
        torch.testing.assert_close(fe(data["audio"], sampling_rate=11025, return_tensors="pt")["audio_spectrogram"], data["expected"]["audio_spectrogram"])
        vp = AutoVideoProcessor.from_pretrained({str(tmp_path / "video_processor")!r}, trust_remote_code=True)
        assert type(vp).__name__ == "TriBertVideoProcessor"
        assert vp(data["frames"], return_tensors="pt")["pixel_values"].shape == (1, 3, 3, 224, 224)
        """,
    )


# ---------------------------------------------------------------------------------------------------------------
# The code a folder carries: tribert_hf's sub-packages written flat (transformers cannot follow `.pkg.module`)
# ---------------------------------------------------------------------------------------------------------------


def test_write_flat_code_flattens_sub_packages(tmp_path, monkeypatch):
    """A package with a sub-package: absolute and `..` imports become `from .<file> import`, optional imports
    (in a `try` catching ImportError) stay, and transformers' loader resolves what is written."""
    from transformers.dynamic_module_utils import get_relative_import_files

    from tribert_hf.remote_code import write_flat_code

    package = tmp_path / "src" / "fakepkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "top.py").write_text(
        "from fakepkg.sub.leaf import VALUE  # absolute, across folders\n"
        "from .helper import (\n    HELP,  # a comment\n)\n\n\n"
        "def lazy():\n    from fakepkg.sub.other import OTHER\n    return OTHER\n\n\n"
        "try:\n    from fakepkg.optional import NOT_SAVED\nexcept ImportError:\n    NOT_SAVED = None\n"
    )
    (package / "helper.py").write_text("HELP = 'é'\n")
    (package / "sub" / "leaf.py").write_text("from ..helper import HELP\nfrom .other import OTHER\nVALUE = HELP + OTHER\n")
    (package / "sub" / "other.py").write_text("OTHER = 'o'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))

    folder = tmp_path / "saved"
    written = write_flat_code(folder, ["fakepkg.top"], package="fakepkg")
    assert sorted(p.name for p in written) == ["helper.py", "leaf.py", "other.py", "top.py"]
    top = (folder / "top.py").read_text()
    assert "from .leaf import VALUE  # absolute, across folders" in top
    assert "from .helper import HELP\n" in top and "    from .other import OTHER\n" in top
    assert "from fakepkg.optional import NOT_SAVED" in top  # optional: left to the installed package
    assert (folder / "leaf.py").read_text().startswith("from .helper import HELP\nfrom .other import OTHER\n")
    assert sorted(os.path.basename(f) for f in get_relative_import_files(folder / "top.py")) == ["helper.py", "leaf.py", "other.py"]

    (package / "sub" / "helper.py").write_text("")
    (package / "sub" / "other.py").write_text("from .helper import X\nOTHER = 'o'\n")
    with pytest.raises(ValueError, match="the same file name"):
        write_flat_code(tmp_path / "again", ["fakepkg.top"], package="fakepkg")
    (package / "sub" / "other.py").write_text("from . import helper\nOTHER = 'o'\n")
    with pytest.raises(ValueError, match="not `from . import module`"):
        write_flat_code(tmp_path / "again", ["fakepkg.top"], package="fakepkg")


@pytest.mark.parametrize("model_class", list(MODELS), ids=lambda c: c.__name__)
def test_saved_code_imports_only_files_of_the_folder(tmp_path, model_class):
    """Every file a saved folder carries imports the others as `from .<file> import` (what transformers resolves)
    and never tribert_hf itself, except in an optional `try` (the loader skips those too)."""
    from transformers.dynamic_module_utils import get_imports, get_relative_imports

    build(model_class, common_config()).save_pretrained(tmp_path)
    code = [name for name in os.listdir(tmp_path) if name.endswith(".py")]
    for name in code:
        assert "tribert_hf" not in get_imports(tmp_path / name), name
        for needed in get_relative_imports(tmp_path / name):
            assert f"{needed}.py" in code, (name, needed)


def test_save_pretrained_with_push_to_hub_pushes_the_flat_code(tmp_path, monkeypatch):
    """transformers would upload before the code is written: the folder is saved first, then `push_to_hub` (which
    saves again through `save_pretrained`) uploads it."""
    model = build(TriBertForSourceSeparation, common_config())
    pushed = []
    monkeypatch.setattr(model, "push_to_hub", lambda repo_id, **kwargs: pushed.append((repo_id, kwargs)))
    model.save_pretrained(tmp_path / "folder", push_to_hub=True, repo_id="me/tribert", commit_message="hi")
    assert pushed == [("me/tribert", {"commit_message": "hi"})]
    assert {"modeling_tribert.py", "unet.py", "graph.py", "apply.py"} <= set(os.listdir(tmp_path / "folder"))

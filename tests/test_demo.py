"""`make demo`'s script end to end on the tiny preset and model (the learning itself is measured by running the
demo, see docs/training.md; here: every output is written and loadable)."""

import json
import os

import pytest
from conftest import load_script


def load_demo():
    return load_script("examples/run_demo.py")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    run_demo = load_demo()
    output = tmp_path_factory.mktemp("demo")
    argv = ["--output_dir", str(output), "--preset", "tiny", "--model_size", "tiny", "--max_steps", "4", "--eval_steps", "2", "--report_to", "none"]
    summary = run_demo.main(argv)
    return output, summary


@pytest.mark.slow
def test_demo_writes_every_output(demo, capsys):
    output, summary = demo
    for path in ("model/config.json", "model/model.safetensors", "model/README.md", "model/best/config.json",
                 "evaluation/metrics.md", "evaluation/metrics.json", "evaluation/example.png", "training.png"):  # fmt: skip
        assert os.path.isfile(output / path), path
    wavs = sorted(os.listdir(output / "example"))
    assert wavs[0] == "estimate-1-" + wavs[0].split("-", 2)[2] and "mixture.wav" in wavs and len(wavs) == 5
    metrics = json.loads((output / "evaluation" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_mixtures"] >= 1
    assert summary["model"]["sdr"] == metrics["model"]["sdr"]
    table = (output / "evaluation" / "metrics.md").read_text()
    assert "| model |" in table and "| mixture (floor) |" in table


@pytest.mark.slow
def test_demo_resumes_instead_of_retraining(demo, capsys):
    output, _ = demo
    run_demo = load_demo()
    before = os.path.getmtime(output / "model" / "checkpoints" / "step-4")
    run_demo.main(["--output_dir", str(output), "--preset", "tiny", "--model_size", "tiny", "--max_steps", "4", "--eval_steps", "2", "--report_to", "none"])
    assert os.path.getmtime(output / "model" / "checkpoints" / "step-4") == before  # nothing retrained
    assert "Outputs:" in capsys.readouterr().out


def test_a_demo_trained_with_another_recipe_is_not_resumed(tmp_path):
    """Resuming checkpoints of another recipe would load another model: the demo refuses, naming --fresh; the same
    recipe (or a run_args.json from before the field existed, which trained the paper's defaults) passes."""
    run_demo = load_demo()
    (tmp_path / "run_args.json").write_text(json.dumps({"mask_type": None, "separation_condition_maps": 0}))
    run_demo.check_previous_recipe(str(tmp_path), run_demo.DEMO_RECIPES["paper"])
    with pytest.raises(SystemExit, match="--fresh") as error:
        run_demo.check_previous_recipe(str(tmp_path), run_demo.DEMO_RECIPES["softmax"])
    assert "mask_activation 'sigmoid' -> 'softmax'" in str(error.value)
    run_demo.check_previous_recipe(str(tmp_path / "missing"), run_demo.DEMO_RECIPES["softmax"])  # a new demo
    # without --recipe, a demo trained before is resumed with its own recipe (the default changed from paper to told)
    assert run_demo.previous_recipe(str(tmp_path)) == "paper" and run_demo.previous_recipe(str(tmp_path / "missing")) is None
    assert run_demo.DEFAULT_RECIPE == "told"
    with pytest.raises(SystemExit, match="separation_class_conditioning False -> True"):  # keys older runs lack
        run_demo.check_previous_recipe(str(tmp_path), run_demo.DEMO_RECIPES["told"])
    told = {"mask_type": "binary", "separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5}
    (tmp_path / "run_args.json").write_text(json.dumps(told))
    run_demo.check_previous_recipe(str(tmp_path), run_demo.DEMO_RECIPES["told"])
    assert run_demo.previous_recipe(str(tmp_path)) == "told"
    with pytest.raises(SystemExit, match="class_teacher_forcing 0.5 -> 0.0"):
        run_demo.check_previous_recipe(str(tmp_path), run_demo.DEMO_RECIPES["paper"])

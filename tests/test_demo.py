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
    assert run_demo.DEFAULT_RECIPE == "recommended"
    with pytest.raises(SystemExit, match="separation_class_conditioning False -> True"):  # keys older runs lack
        run_demo.check_previous_recipe(str(tmp_path), run_demo.DEMO_RECIPES["told"])
    told = {"mask_type": "binary", "separation_condition_maps": 16, "mask_activation": "softmax", "separation_class_conditioning": True, "class_teacher_forcing": 0.5}
    (tmp_path / "run_args.json").write_text(json.dumps(told))
    run_demo.check_previous_recipe(str(tmp_path), run_demo.DEMO_RECIPES["told"])
    assert run_demo.previous_recipe(str(tmp_path)) == "told"
    with pytest.raises(SystemExit, match="class_teacher_forcing 0.5 -> 0.0"):
        run_demo.check_previous_recipe(str(tmp_path), run_demo.DEMO_RECIPES["paper"])
    # a run records every argument, its defaults included (None for "the config's"): told is told, not recommended
    told_run = {**told, "crops_per_clip": 4, "gain_range": None, "lr_scheduler_type": "cosine", "warmup_ratio": 0.05, "separation_learning_rate": None, "separation_output_stride": None}
    (tmp_path / "run_args.json").write_text(json.dumps(told_run))
    assert run_demo.previous_recipe(str(tmp_path)) == "told"
    with pytest.raises(SystemExit, match="crops_per_clip 4 -> 16.*separation_output_stride 1 -> 2"):
        run_demo.check_previous_recipe(str(tmp_path), run_demo.DEMO_RECIPES["recommended"])
    (tmp_path / "run_args.json").write_text(json.dumps({**told_run, **run_demo.DEMO_RECIPES["recommended"]}))
    assert run_demo.previous_recipe(str(tmp_path)) == "recommended"


def test_each_recipe_trains_its_own_steps_and_the_seed_reaches_the_training(tmp_path, monkeypatch):
    """Without --max_steps the demo trains its recipe's steps (the recommended recipe's faster step fits more in the
    same minutes); --max_steps and --seed reach the training run; a resumed demo keeps its own recipe's steps."""
    import tribert_hf.training.separation as recipe

    run_demo = load_demo()
    seen = []

    class Stop(Exception):
        pass

    def fake_train(argv):
        seen.append(argv)
        raise Stop

    monkeypatch.setattr(recipe, "main", fake_train)
    common = ["--preset", "tiny", "--model_size", "tiny", "--report_to", "none"]
    for extra in ([], ["--recipe", "told"], ["--max_steps", "7", "--seed", "3"]):
        with pytest.raises(Stop):
            run_demo.main(common + ["--output_dir", str(tmp_path / f"demo{len(seen)}")] + extra)
    value = lambda argv, key: argv[argv.index(key) + 1]  # noqa: E731
    assert [value(a, "--max_steps") for a in seen] == [str(run_demo.DEMO_STEPS["recommended"]), "300", "7"]
    assert [value(a, "--seed") for a in seen] == ["0", "0", "3"]
    assert value(seen[0], "--separation_output_stride") == "2" and value(seen[0], "--crops_per_clip") == "16"
    assert "--separation_output_stride" not in seen[1] and run_demo.DEMO_STEPS["recommended"] > run_demo.DEMO_STEPS["told"]
    # a demo trained before with told is resumed with told's recipe and steps
    (tmp_path / "demo1" / "model").mkdir(parents=True, exist_ok=True)
    told_run = {**run_demo.RECIPE_DEFAULTS, **run_demo.DEMO_RECIPES["told"]}
    (tmp_path / "demo1" / "model" / "run_args.json").write_text(json.dumps(told_run))
    with pytest.raises(Stop):
        run_demo.main(common + ["--output_dir", str(tmp_path / "demo1")])
    assert value(seen[-1], "--max_steps") == "300" and value(seen[-1], "--class_teacher_forcing") == "0.5"

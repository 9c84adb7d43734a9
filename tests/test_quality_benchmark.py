"""benchmarks/quality.py end to end on the tiny budget: trains, scores on the test split, writes JSON, the Table-1
style Markdown and the figure, and skips finished runs when run again."""

import json
import math
from types import SimpleNamespace

import pytest
from conftest import load_script


@pytest.mark.slow
def test_quality_benchmark_tiny_budget(tmp_path, capsys):
    quality = load_script("benchmarks/quality.py")
    argv = ["--budget", "tiny", "--methods", "tribert,audio_only", "--seeds", "0,1", "--output_dir", str(tmp_path)]
    report = quality.main(argv)
    data = json.loads((tmp_path / "quality.json").read_text())
    assert data["methods"] == ["tribert", "audio_only"] and data["seeds"] == [0, 1] and len(data["runs"]) == 4
    # Every run scores the same mixtures (4 of the 6 pairs of synthetic:tiny's 4 test clips: the tiny budget's
    # test_mixtures): the floor and the ideal masks, which no model enters, agree across runs.
    first = data["runs"][0]["test"]
    unmodelled = ("sdr_mixture", "sir_mixture", "sdr_ideal_binary", "sir_ideal_binary", "sdr_ideal_ratio")
    assert first["sdr_ideal_binary"] > first["sdr_mixture"] + 3  # the chain separates, given the right mask
    for run in data["runs"]:
        assert run["validation"][-1]["step"] == 3
        test = run["test"]
        assert test["num_mixtures"] == quality.BUDGETS["tiny"]["test_mixtures"] == 4 and test["num_skipped"] == 0
        keys = ("sdr", "sir", "sar", "sdr_threshold", "sir_threshold", *unmodelled)
        assert all(math.isfinite(test[k]) for k in keys), test
        assert all(test[k] == pytest.approx(first[k], abs=1e-9) for k in unmodelled)
        assert test["sdr"] != test["sdr_mixture"] and test["sdr"] != test["sdr_threshold"]  # the model's masks
        # The conditioning-swap diagnostic: same mixtures, conditioning exchanged (none for the audio-only model).
        if run["method"] == "tribert":
            swapped = run["test_swapped"]
            assert swapped["num_mixtures"] == test["num_mixtures"] and math.isfinite(swapped["sdr"])
            assert swapped["sdr_mixture"] == test["sdr_mixture"]  # same mixtures and references
            assert swapped["sdr"] != test["sdr"]  # the conditioning reaches the masks
        else:
            assert "test_swapped" not in run
        by_pair = run["test"]["by_pair"]  # every scored mixture is in exactly one pair kind
        assert set(by_pair) == set(quality.PAIR_KINDS)
        assert sum(kind["num_mixtures"] for kind in by_pair.values()) == run["test"]["num_mixtures"]
    tribert = data["summary"]["tribert"]["sdr"]
    sdrs = [r["test"]["sdr"] for r in data["runs"] if r["method"] == "tribert"]
    assert tribert["n"] == 2 and abs(tribert["mean"] - sum(sdrs) / 2) < 1e-9
    assert data["summary"]["ideal_binary_mask"]["sdr"]["mean"] == pytest.approx(first["sdr_ideal_binary"], abs=1e-9)
    assert data["summary"]["mixture"]["sdr"]["mean"] == pytest.approx(first["sdr_mixture"], abs=1e-9)
    table = (tmp_path / "quality.md").read_text()
    assert "| Audio only (PIT, best permutation) |" in table and "| Mixture (floor) |" in table and " ± " in table
    assert "| Ideal binary mask (ceiling) |" in table and "masks > 0.5" in table
    assert "conditioning swapped" in table and "sdr_swapped" in data["summary"]["tribert"]
    assert "sdr_swapped" not in data["summary"]["audio_only"]
    assert "### By pair kind" in table and "SDR (dB), shared class (" in table
    assert (tmp_path / "quality.png").stat().st_size > 1000
    capsys.readouterr()
    again = quality.main(argv)  # every run finished: nothing is retrained
    assert "done before, kept" in capsys.readouterr().out
    assert again["summary"] == report["summary"]
    # one more seed (or one method) into the folder keeps the other finished runs of the same settings in its report
    one = quality.main(["--budget", "tiny", "--methods", "audio_only", "--seeds", "1", "--output_dir", str(tmp_path)])
    assert "kept in the report, finished before under the same settings: tribert seed 0, audio_only seed 0, tribert seed 1" in capsys.readouterr().out
    assert one["methods"] == ["tribert", "audio_only"] and one["seeds"] == [0, 1] and one["summary"] == report["summary"]
    assert [(r["method"], r["seed"]) for r in one["runs"]] == [(r["method"], r["seed"]) for r in report["runs"]]
    settings = dict(fresh=False, output_dir=str(tmp_path), recipe="baseline", dataset="synthetic:tiny", vision_backbone=None, freeze_vision_backbone=False)
    budget = quality.BUDGETS["tiny"]
    assert len(quality.earlier_runs(SimpleNamespace(**settings), budget, ["tribert"], [0])) == 3
    for change in ({"recipe": "maps_softmax"}, {"dataset": "synthetic:small"}, {"fresh": True}):  # another report: replaced
        assert quality.earlier_runs(SimpleNamespace(**{**settings, **change}), budget, ["tribert"], [0]) == []
    assert quality.earlier_runs(SimpleNamespace(**settings), {**budget, "max_steps": 4}, ["tribert"], [0]) == []


def test_pair_breakdown_groups_mixtures_by_shared_class():
    """Pairs are 'shared_class' when their clips' label sets intersect; skipped (NaN) mixtures are left out."""
    import numpy as np

    quality = load_script("benchmarks/quality.py")
    pairs = [(0, 1), (0, 2), (1, 2), (2, 3)]
    labels = [{"trumpet"}, {"trumpet", "cello"}, {"flute"}, {"drum"}]
    per_mixture = [  # batches as run_separation.evaluate returns them
        {"sdr": np.array([1.0, 2.0]), "sdr_mixture": np.array([0.0, 0.5])},
        {"sdr": np.array([np.nan, 4.0]), "sdr_mixture": np.array([np.nan, 1.5])},
    ]
    out = quality.pair_breakdown(pairs, labels, per_mixture)
    assert out["shared_class"] == {"num_mixtures": 1, "sdr": 1.0, "sdr_mixture": 0.0}
    assert out["distinct_classes"] == {"num_mixtures": 2, "sdr": 3.0, "sdr_mixture": 1.0}


def test_benchmark_docs_are_generated_from_the_json(tmp_path):
    """docs/benchmarks.md comes from the result files: a section per benchmark, 'not run yet' when one is missing."""
    load_script("benchmarks/quality.py")  # make_docs.py imports it
    make_docs = load_script("benchmarks/make_docs.py")
    results = tmp_path / "results"
    results.mkdir()
    step = {"device": "cpu", "cpu": "x86_64", "cpu_threads": 2, "torch": "2.11", "repeats": 3, "configs": {
        "small": {"parameters": 3.6e6, "mixtures_per_step": 4, "median_s": 1.5, "seconds_per_mixture": 0.375, "peak_memory_mb": 700.0}}}  # fmt: skip
    (results / "train_step.json").write_text(json.dumps(step))
    output = tmp_path / "benchmarks.md"
    make_docs.main(["--results", str(results), "--output", str(output)])
    text = output.read_text()
    assert "| small | 3.6 M | 4 | 1.50 | 0.38 | +700 MiB |" in text
    assert "Not run yet: `python benchmarks/quality.py`" in text and "Not run yet: `python benchmarks/speed.py`" in text


def test_the_table_says_which_mixtures_were_skipped():
    """A model that gives a whole mixture to one output has a silent estimate: Sound-of-Pixels' rule skips the
    mixture rather than scoring it; the table says so per seed instead of printing a bare mean."""
    quality = load_script("benchmarks/quality.py")

    def run(method, seed, sdr, skipped):
        test = {"sdr": sdr, "sir": sdr, "sar": sdr, "sdr_mixture": 0.1, "sir_mixture": 0.1, "sar_mixture": 50.0,
                "num_mixtures": 4 - skipped, "num_skipped": skipped}  # fmt: skip
        return {"method": method, "seed": seed, "test": test, "validation": []}

    runs = [run("tribert", 0, 2.0, 0), run("audio_only", 0, float("nan"), 4), run("audio_only", 1, 1.0, 1)]
    methods = ["tribert", "audio_only"]
    report = {"summary": quality.summarize(runs, methods), "methods": methods, "seeds": [0, 1], "runs": runs,
              "dataset": "synthetic:tiny", "budget_name": "tiny", "budget": quality.BUDGETS["tiny"]}  # fmt: skip
    assert report["summary"]["audio_only"]["sdr"] == {"mean": 1.0, "std": 0.0, "n": 1}  # the NaN seed left out
    table = quality.markdown_table(report)
    assert "**Skipped mixtures**" in table and "Audio only (PIT, best permutation): 4 of 4, 1 of 4 (per seed)" in table
    assert "TriBERT (vision" not in table.split("**Skipped mixtures**")[1]
    report["runs"], report["methods"] = runs[:1], methods[:1]
    report["summary"] = quality.summarize(runs[:1], methods[:1])
    assert "Skipped" not in quality.markdown_table(report)


def test_gpu_speed_runs_get_their_own_section(tmp_path):
    """speed-cuda-*.md (speed.py --device cuda) are shown under 'On a GPU', each with the command that made it."""
    load_script("benchmarks/quality.py")
    make_docs = load_script("benchmarks/make_docs.py")
    results = tmp_path / "results"
    results.mkdir()
    (results / "speed-cuda-bf16.md").write_text("# Speed suite\n\n| figure | measured |\n|---|---|\n| MFU | 5.3 % |\n")
    (results / "speed-cuda-bf16.json").write_text(json.dumps({"command": "speed.py --device cuda --bf16 --output /root/out/speed-cuda-bf16.json"}))
    output = tmp_path / "benchmarks.md"
    make_docs.main(["--results", str(results), "--output", str(output)])
    text = output.read_text()
    assert "### On a GPU" in text and "#### `speed-cuda-bf16`" in text and "| MFU | 5.3 % |" in text
    assert "python benchmarks/speed.py --device cuda --bf16 --output benchmarks/results/speed-cuda-bf16.json" in text


def stopped_training(monkeypatch):
    """Replaces the training recipe by one that records its arguments (by `--model`) and stops: what quality.py
    asks each method's training for, without training. Returns (the arguments seen, the exception it stops with)."""
    import tribert_hf.training.separation as recipe

    seen = {}

    class Stop(Exception):
        pass

    def fake_train(argv):
        seen[argv[argv.index("--model") + 1]] = argv
        raise Stop

    monkeypatch.setattr(recipe, "main", fake_train)
    return seen, Stop


def test_a_pretrained_vision_backbone_reaches_every_method_with_frames(tmp_path, monkeypatch):
    """--vision_backbone / --freeze_vision_backbone go to the training of the methods that see frames, not to the
    audio-only baseline (which has none, and whose training would refuse them)."""
    quality = load_script("benchmarks/quality.py")
    seen, Stop = stopped_training(monkeypatch)
    for method in ("tribert", "sop", "audio_only"):
        with pytest.raises(Stop):
            quality.main(["--budget", "tiny", "--methods", method, "--seeds", "0", "--output_dir", str(tmp_path),
                          "--vision_backbone", "/models/resnet-18", "--freeze_vision_backbone"])  # fmt: skip
    for method in ("tribert", "sop"):
        argv = seen[method]
        assert argv[argv.index("--vision_backbone") + 1] == "/models/resnet-18" and "--freeze_vision_backbone" in argv
    assert "--vision_backbone" not in seen["audio_only"] and "--freeze_vision_backbone" not in seen["audio_only"]


def test_the_class_told_diagnostic_of_class_conditioned_runs(tmp_path, capsys):
    """TriBERT with the frames' class scores in its U-Net's condition is also scored with the labels in their place
    (what perfect classification would give); inside `labels_as_class_scores` the condition holds the labels, outside
    it the model's own scores again; a run scored before the diagnostic existed gets it when the report is made."""
    import torch
    from test_heads import head_config, mixture_inputs

    import tribert_hf.modeling_tribert as modeling
    from tribert_hf import TriBertForPreTraining

    quality = load_script("benchmarks/quality.py")
    model = TriBertForPreTraining(head_config(separation_class_conditioning=True)).eval()
    inputs = mixture_inputs(model.config)
    labels = torch.zeros(2, 2, model.config.num_labels)
    labels[:, 0, 1] = labels[:, 1, 3] = 1.0
    args = (model.tribert, inputs["pixel_values"], inputs["pose_keypoints"], inputs["audio_spectrogram"], inputs["pose_mask"], None, False, False, labels, 0.0)
    with torch.no_grad():
        own = modeling._encode_videos(*args)[0][..., -model.config.num_labels :]
        with quality.labels_as_class_scores():
            told = modeling._encode_videos(*args)[0][..., -model.config.num_labels :]
            masks_told = model(**inputs, class_labels=labels).mask_logits
        masks_own = model(**inputs, class_labels=labels).mask_logits
        assert torch.equal(modeling._encode_videos(*args)[0][..., -model.config.num_labels :], own)  # restored
    assert torch.equal(told, labels) and not torch.equal(own, labels) and not torch.allclose(masks_told, masks_own)

    argv = ["--budget", "tiny", "--recipe", "maps_softmax_told", "--methods", "tribert", "--seeds", "0", "--output_dir", str(tmp_path)]
    report = quality.main(argv)
    summary = report["summary"]["tribert"]
    assert summary["sdr_class_told"]["n"] == 1 and set(summary["by_pair_class_told"]) == set(quality.PAIR_KINDS)
    assert "**The class told**" in (tmp_path / "quality.md").read_text()
    done = tmp_path / "runs" / "tribert-seed0" / "result.json"
    result = json.loads(done.read_text())
    del result["test_class_told"]  # as scored before the diagnostic existed
    done.write_text(json.dumps(result))
    again = quality.main(argv)
    assert again["summary"]["tribert"]["sdr_class_told"] == summary["sdr_class_told"]
    assert "test_class_told" in json.loads(done.read_text())
    capsys.readouterr()


def test_combine_makes_one_report_from_runs_under_different_recipes(tmp_path, capsys):
    """`--combine METHOD=FOLDER ...`: each method's runs from its own report (its own recipe), one table; folders at
    another budget or without the method are refused, naming the problem."""
    quality = load_script("benchmarks/quality.py")
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    quality.main(["--budget", "tiny", "--methods", "tribert,audio_only", "--seeds", "0", "--output_dir", first])
    quality.main(["--budget", "tiny", "--recipe", "maps_softmax", "--methods", "tribert", "--seeds", "0", "--output_dir", second])
    out = str(tmp_path / "combined")
    report = quality.main(["--combine", f"tribert={second}", f"audio_only={first}", "--output_dir", out])
    assert report["methods"] == ["tribert", "audio_only"] and report["recipes"] == {"tribert": "maps_softmax", "audio_only": "baseline"}
    b = json.loads((tmp_path / "b" / "quality.json").read_text())
    a = json.loads((tmp_path / "a" / "quality.json").read_text())
    assert report["summary"]["tribert"]["sdr"] == b["summary"]["tribert"]["sdr"]
    assert report["summary"]["audio_only"]["sdr"] == a["summary"]["audio_only"]["sdr"]
    assert report["summary"]["mixture"]["sdr"]["mean"] == a["summary"]["mixture"]["sdr"]["mean"]  # the same test mixtures
    table = (tmp_path / "combined" / "quality.md").read_text()
    assert "a recipe per method" in table and "`maps_softmax`, seeds 0" in table and (tmp_path / "combined" / "quality.png").is_file()
    assert json.loads((tmp_path / "combined" / "quality.json").read_text())["command"].startswith("python benchmarks/quality.py --combine tribert=")
    # a method named twice: its seeds from both folders (trained apart), if the folders agree on its recipe and steps
    third = str(tmp_path / "c")
    quality.main(["--budget", "tiny", "--methods", "audio_only", "--seeds", "1", "--output_dir", third])
    merged = quality.main(["--combine", f"tribert={second}", f"audio_only={first}", f"audio_only={third}", "--output_dir", out])
    c = json.loads((tmp_path / "c" / "quality.json").read_text())
    values = [a["runs"][1]["test"]["sdr"], c["runs"][0]["test"]["sdr"]]
    assert merged["seeds_by_method"] == {"tribert": [0], "audio_only": [0, 1]} and merged["combined_from"]["audio_only"] == [first, third]
    assert merged["summary"]["audio_only"]["sdr"]["n"] == 2 and merged["summary"]["audio_only"]["sdr"]["mean"] == pytest.approx(sum(values) / 2)
    assert f"seeds 0, 1 ({first} + {third})" in (tmp_path / "combined" / "quality.md").read_text()
    with pytest.raises(SystemExit, match="audio_only seed 0 is in"):
        quality.main(["--combine", f"audio_only={first}", f"audio_only={first}", "--output_dir", out])
    with pytest.raises(SystemExit, match="tribert has recipe 'maps_softmax'"):
        quality.main(["--combine", f"tribert={first}", f"tribert={second}", "--output_dir", out])
    with pytest.raises(SystemExit, match="has no run of sop"):
        quality.main(["--combine", f"sop={first}", "--output_dir", out])
    with pytest.raises(SystemExit, match="METHOD=FOLDER"):
        quality.main(["--combine", first, "--output_dir", out])
    other = json.loads((tmp_path / "b" / "quality.json").read_text())
    other["budget"]["max_steps"] = 7  # only the steps differ (each method's own minutes): combined, and said
    (tmp_path / "b" / "quality.json").write_text(json.dumps(other))
    report = quality.main(["--combine", f"tribert={second}", f"audio_only={first}", "--output_dir", out])
    assert report["budget"]["steps_by_method"] == {"tribert": 7, "audio_only": 3}
    assert "steps of 2 mixtures per method (TriBERT 7, " in (tmp_path / "combined" / "quality.md").read_text()
    other["budget"]["mixtures_per_batch"] = 3  # anything else differs: refused
    (tmp_path / "b" / "quality.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="has budget"):
        quality.main(["--combine", f"tribert={second}", f"audio_only={first}", "--output_dir", out])
    capsys.readouterr()


def test_the_time_matched_budget_gives_each_method_its_own_steps(tmp_path, monkeypatch, capsys):
    """`cpu30time`: each method trains the steps its own step fits in the 30 minutes (validated as often as the
    budget's own steps), `--max_steps` scales them all alike; the other budgets give every method the same steps."""
    quality = load_script("benchmarks/quality.py")
    budget = quality.BUDGETS["cpu30time"]
    assert quality.method_budget(budget, "tribert_temporal")["max_steps"] == budget["max_steps"] == 2000
    sop = quality.method_budget(budget, "sop")
    assert (sop["max_steps"], sop["eval_steps"]) == (6000, 750) and budget["steps_by_method"]["sop"] == 6000
    assert quality.method_budget(quality.BUDGETS["cpu30"], "sop")["max_steps"] == 2000
    seen, Stop = stopped_training(monkeypatch)
    # a run finished before under another budget (3 steps, written before results recorded their steps) is not kept
    (tmp_path / "runs" / "tribert-seed0").mkdir(parents=True)
    (tmp_path / "runs" / "tribert-seed0" / "result.json").write_text(json.dumps({"method": "tribert", "seed": 0, "validation": [{"step": 3}]}))
    for method in ("tribert", "sop", "audio_only"):
        with pytest.raises(Stop):
            quality.main(["--budget", "cpu30time", "--max_steps", "20", "--dataset", "synthetic:tiny", "--methods", method, "--seeds", "0", "--output_dir", str(tmp_path)])
    assert "tribert seed 0: trained 3 steps before, this budget gives 20: trained again" in capsys.readouterr().out
    steps = {m: (int(a[a.index("--max_steps") + 1]), int(a[a.index("--eval_steps") + 1])) for m, a in seen.items()}
    assert steps == {"tribert": (20, 250), "sop": (60, 60), "audio_only": (46, 46)}


def test_the_half_resolution_budget_takes_half_resolution_recipes_only(tmp_path, monkeypatch, capsys):
    """`cpu30time_half`: the steps each method's stride-2 step fits in the minutes, so a stride-1 recipe is refused
    (naming the recipes that fit); a `*_half` recipe trains each method its own steps at stride 2."""
    quality = load_script("benchmarks/quality.py")
    budget = quality.BUDGETS["cpu30time_half"]
    assert {m: quality.method_budget(budget, m)["max_steps"] for m in ("tribert", "sop", "audio_only")} == {"tribert": 2700, "sop": 6900, "audio_only": 7700}
    assert quality.comparable_budget(budget) == quality.comparable_budget(quality.BUDGETS["cpu30time"])  # combinable with cpu30time runs
    common = ["--budget", "cpu30time_half", "--dataset", "synthetic:tiny", "--seeds", "0", "--output_dir", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"stride 2 fits in the minutes; recipe 'maps_softmax' trains at stride 1.*maps_softmax_half"):
        quality.main(common + ["--methods", "sop", "--recipe", "maps_softmax"])
    seen, Stop = stopped_training(monkeypatch)
    for method, recipe in (("sop", "maps_softmax_half"), ("audio_only", "baseline_half"), ("tribert", "maps_softmax_told_data_onecycle_half")):
        with pytest.raises(Stop):
            quality.main(common + ["--methods", method, "--recipe", recipe, "--max_steps", "27"])
    steps = {m: (int(a[a.index("--max_steps") + 1]), a[a.index("--separation_output_stride") + 1]) for m, a in seen.items()}
    assert steps == {"sop": (69, "2"), "audio_only": (77, "2"), "tribert": (27, "2")}


@pytest.mark.slow
def test_calibration_times_whole_training_steps_against_the_budgets_minutes(tmp_path, capsys):
    """`--calibrate STEPS`: each method's training step timed from the training log (the median after the first
    quarter), set against the budget's steps and minutes; the timed runs are not kept; another recipe's call into
    the same folder adds its rows. A budget without minutes needs --minutes."""
    import statistics

    quality = load_script("benchmarks/quality.py")
    with pytest.raises(SystemExit, match="names no minutes.*give --minutes"):
        quality.main(["--budget", "tiny", "--calibrate", "8", "--methods", "sop", "--output_dir", str(tmp_path)])
    results, tmp_path = tmp_path, tmp_path / "calibration-tiny"
    common = ["--budget", "tiny", "--calibrate", "8", "--minutes", "0.5", "--seeds", "1", "--output_dir", str(tmp_path)]
    report = quality.main(common + ["--methods", "audio_only,sop"])
    assert [(r["method"], r["recipe"], r["seed"]) for r in report["rows"]] == [("audio_only", "baseline", 1), ("sop", "baseline", 1)]
    assert report["minutes"] == 0.5
    for row in report["rows"]:
        windows = row["windows"]
        assert [w["step"] for w in windows] == list(range(1, 9))  # a row a step (8 steps: logged every step)
        assert all(w["step_seconds"] > 0 for w in windows)
        assert row["timed_from_step"] == 3 and row["seconds_per_step"] == pytest.approx(statistics.median(w["step_seconds"] for w in windows[2:]))
        assert row["budget_steps"] == 3 and row["budget_minutes"] == pytest.approx(3 * row["seconds_per_step"] / 60)
        assert row["steps_in_minutes"] == int(30 / row["seconds_per_step"])
    assert not (tmp_path / "calibration").exists() and not (tmp_path / "quality.json").exists()  # nothing trained is kept
    assert "calibration (tiny, baseline, " in capsys.readouterr().out
    again = quality.main(common + ["--methods", "sop", "--recipe", "maps_softmax"])  # another recipe: rows added
    assert [(r["method"], r["recipe"]) for r in again["rows"]] == [("audio_only", "baseline"), ("sop", "baseline"), ("sop", "maps_softmax")]
    assert again["rows"][0] == report["rows"][0]
    saved = json.loads((tmp_path / "calibration.json").read_text())
    assert [r["recipe"] for r in saved["rows"]] == ["baseline", "baseline", "maps_softmax"]
    assert "| sop | `maps_softmax` | " in (tmp_path / "calibration.md").read_text()
    assert again["rows"][2]["command"].endswith(f"--budget tiny --recipe maps_softmax --minutes 0.5 --methods sop --seeds 1 --calibrate 8 --dataset synthetic:tiny --output_dir {tmp_path}")
    make_docs = load_script("benchmarks/make_docs.py")  # docs/benchmarks.md gets a section per calibration folder
    make_docs.main(["--results", str(results), "--output", str(results / "benchmarks.md")])
    text = (results / "benchmarks.md").read_text()
    assert "### Whole training steps against the `tiny` budget's 0.5 minutes, `calibration-tiny`" in text
    assert "| sop | `maps_softmax` | " in text and again["rows"][2]["command"] in text


def test_the_training_log_times_each_step_without_validation(tmp_path, monkeypatch):
    """train_log.jsonl's `step_seconds`: the step's own seconds, not the validation or the saving before it."""
    import time

    from tribert_hf.training import separation

    evaluate = separation.evaluate_separation_model

    def slow_evaluation(*args, **kwargs):
        time.sleep(1.5)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(separation, "evaluate_separation_model", slow_evaluation)
    out = tmp_path / "run"
    separation.main([
        "--dataset", "synthetic:tiny", "--model_size", "tiny", "--model", "audio_only", "--max_steps", "4", "--eval_steps", "2",
        "--save_steps", "2", "--logging_steps", "1", "--report_to", "none", "--crops_per_clip", "2", "--mixtures_per_batch", "2",
        "--max_eval_mixtures", "2", "--output_dir", str(out),
    ])  # fmt: skip
    log = [json.loads(line) for line in open(out / "train_log.jsonl")]
    assert [row["step"] for row in log] == [1, 2, 3, 4]
    assert all(0 < row["step_seconds"] < 1.5 for row in log)  # step 3 follows step 2's validation and checkpoint

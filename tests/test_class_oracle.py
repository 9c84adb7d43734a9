"""benchmarks/class_oracle.py: the separation U-Net told the true class, trained alone on a prepared dataset."""

import json
import math

from conftest import load_script

from tribert_hf.data import load_synthetic_music


def test_class_oracle_trains_each_variant_and_writes_json(tmp_path, capsys):
    oracle = load_script("benchmarks/class_oracle.py")
    root, _ = load_synthetic_music("tiny")
    out = tmp_path / "oracle.json"
    argv = ["--dataset", root, "--model_size", "tiny", "--steps", "4", "--eval_every", "2", "--mixtures", "2",
            "--condition_maps", "0", "3", "--val_pairs", "4", "--threads", "1", "--output", str(out)]  # fmt: skip
    oracle.main(argv)
    data = json.loads(out.read_text())
    assert [run["condition_maps"] for run in data["runs"]] == [0, 3] and set(data["summary"]) == {"0", "3"}
    for run in data["runs"]:
        assert [point["step"] for point in run["curve"]] == [2, 4]
        assert all(math.isfinite(point["sdr"]) and math.isfinite(point["loss"]) for point in run["curve"])
        # the same validation mixtures for every variant: the same floor
        assert run["curve"][-1]["sdr_mixture"] == data["mixture_floor"]
    # K maps: the last up-convolution gives 3 maps instead of 1, plus the condition's 4 weights
    assert data["runs"][1]["parameters"] > data["runs"][0]["parameters"]
    assert data["validation_pairs"] >= 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("class oracle")]
    assert len(lines) == 2 and "condition_maps=3" in lines[1]

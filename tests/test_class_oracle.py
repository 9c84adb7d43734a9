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
            "--condition_maps", "0", "3", "--val_pairs", "4", "--threads", "1", "--output", str(out),
            "--output_stride", "2"]  # fmt: skip
    oracle.main(argv)
    data = json.loads(out.read_text())
    assert data["settings"]["output_stride"] == 2  # the last layer at half resolution (the other test: full)
    assert [run["condition_maps"] for run in data["runs"]] == [0, 3] and set(data["summary"]) == {"0", "3"}
    for run in data["runs"]:
        assert [point["step"] for point in run["curve"]] == [2, 4]
        assert all(math.isfinite(point[key]) for point in run["curve"] for key in ("sdr", "loss", "train_sdr", "solo_sdr"))
        # the same validation mixtures for every variant: the same floor
        assert run["curve"][-1]["sdr_mixture"] == data["mixture_floor"]
    # K maps: the last up-convolution gives 3 maps instead of 1, plus the condition's 4 weights
    assert data["runs"][1]["parameters"] > data["runs"][0]["parameters"]
    assert data["validation_pairs"] >= 1
    ideal = data["ideal_mask_sdr_by_coarsening"]  # a coarser ideal mask reaches less
    assert set(ideal) == {"1", "2", "4"} and ideal["1"] > ideal["2"] > ideal["4"] > data["mixture_floor"]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("class oracle")]
    assert len(lines) == 2 and "condition_maps=3" in lines[1]


def test_class_oracle_head_diagnostics(tmp_path, capsys):
    """--base_channels widens the head, --no_attention_gates drops the gates' parameters, --train_sounds_dir trains
    on whole solo clips (the training split of clip_split) and scores fixed pairs of them."""
    import numpy as np

    from tribert_hf.media import write_wav

    oracle = load_script("benchmarks/class_oracle.py")
    root, _ = load_synthetic_music("tiny")
    sounds = tmp_path / "sounds"
    rng = np.random.default_rng(0)
    for name in ("violin", "flute", "cello"):
        (sounds / name).mkdir(parents=True)
        for k in range(3):
            write_wav(str(sounds / name / f"{k}.wav"), 0.1 * rng.standard_normal(11025 * 7).astype(np.float32), 11025)
    clips = oracle.load_solo_clips(str(sounds), {"violin": 0, "flute": 1, "cello": 2, "drum": 3})
    assert len(clips) == 3 and all(abs(float(w.abs().max()) - 0.5) < 1e-6 for w, _, _ in clips)  # one train clip each
    runs = {}
    for name, extra in {"plain": [], "wide": ["--base_channels", "16"], "gateless": ["--no_attention_gates"],
                        "solos": ["--train_sounds_dir", str(sounds)],
                        "waveform": ["--mask_loss_weight", "0", "--waveform_loss_weight", "1"],
                        "softmax": ["--mask_activation", "softmax"]}.items():  # fmt: skip
        out = tmp_path / f"{name}.json"
        argv = ["--dataset", root, "--model_size", "tiny", "--steps", "2", "--eval_every", "2", "--mixtures", "2",
                "--condition_maps", "0", "--val_pairs", "2", "--train_pairs", "2", "--threads", "1", "--output", str(out)]  # fmt: skip
        runs[name] = json.loads(oracle.main(argv + extra) and out.read_text())["runs"][0]
    assert runs["wide"]["parameters"] > runs["plain"]["parameters"] > runs["gateless"]["parameters"]
    assert all(math.isfinite(run["curve"][-1]["train_sdr"]) for run in runs.values())
    assert runs["solos"]["curve"][-1]["train_sdr"] != runs["plain"]["curve"][-1]["train_sdr"]
    # the mask loss (weighted L1 of ratio masks) is >= 0; the waveform loss is a negative SDR in dB, soft-capped at 30
    assert runs["plain"]["curve"][-1]["loss"] >= 0 and -30 <= runs["waveform"]["curve"][-1]["loss"] <= 30
    assert runs["waveform"]["curve"][-1]["loss"] != runs["plain"]["curve"][-1]["loss"]
    assert runs["softmax"]["curve"][-1]["loss"] != runs["plain"]["curve"][-1]["loss"]  # the same batches, other masks

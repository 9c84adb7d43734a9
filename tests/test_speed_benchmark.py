"""benchmarks/speed.py: its FLOP counting against hand counts, the peer rows against mir_eval / our features, the
result layout and the --quick suite end to end (seconds, CPU)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import load_script
from torch import nn

from tribert_hf import TriBertFeatureExtractor
from tribert_hf.training import model_config


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "speed.py")
RESULTS = os.path.join(ROOT, "benchmarks", "results")
common = load_script("benchmarks/common.py")  # what speed.py imports
speed = load_script("benchmarks/speed.py")
count_flops, random_batch = speed.count_flops, common.random_batch

SUITES = ["features", "bss_eval", "train_step", "separation", "model_size"]


def linear_flops(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


# ----------------------------------------------------------------------------------------------------------------
# Hand counts
# ----------------------------------------------------------------------------------------------------------------


def test_linear_stack_forward_and_backward_match_2mnk():
    torch.manual_seed(0)
    m, k, n, o = 5, 7, 11, 3
    model = nn.Sequential(nn.Linear(k, n), nn.ReLU(), nn.Linear(n, o))
    x = torch.randn(m, k, requires_grad=True)  # so the first layer's input gradient is computed too
    forward = 2 * m * k * n + 2 * m * n * o
    assert count_flops(lambda: model(x))["total"] == forward
    counted = count_flops(lambda: model(x).sum().backward())
    # backward: the gradient of the input and of the weight, one matmul of the same size each (bias: a sum, no FLOPs)
    assert counted["total"] == 3 * forward
    assert counted["uncounted_ops"] == []


def test_matmul_conv_and_cpu_attention_match_hand_counts():
    a, b = torch.randn(4, 6), torch.randn(6, 8)
    assert count_flops(lambda: a @ b)["total"] == 2 * 4 * 6 * 8
    conv, image = nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8)
    assert count_flops(lambda: conv(image))["total"] == 2 * (4 * 6 * 6) * (3 * 3 * 3)  # 2 x outputs x taps
    # CPU's fused attention kernel (no dropout), which torch's counter alone would count as 0:
    # QK^T and PV, 2 * B * H * Lq * Lk * d each; its backward recomputes QK^T and does 4 more such products.
    B, H, Lq, Lk, d = 2, 4, 10, 12, 8
    q = torch.randn(B, H, Lq, d, requires_grad=True)
    k, v = torch.randn(B, H, Lk, d, requires_grad=True), torch.randn(B, H, Lk, d, requires_grad=True)
    mask = torch.zeros(B, 1, 1, Lk)
    one = 2 * B * H * Lq * Lk * d
    attend = lambda: nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # noqa: E731
    assert count_flops(attend)["total"] == 2 * one
    counted = count_flops(lambda: attend().sum().backward())
    assert counted["total"] == 7 * one
    assert counted["uncounted_ops"] == []


def _encoder_hand_count(config, shapes: dict) -> dict:
    """FLOPs of each encoder layer from the layer shapes: 2 * tokens * in * out per linear layer, and
    4 * B * Lq * Lk * width per attention (QK^T and PV)."""
    counts = {}
    co_width, co_inter = config.co_attention_hidden_size, config.co_attention_intermediate_size
    for name, (kind, dims) in shapes.items():
        if kind == "self":
            (B, L, hidden), inter = dims, config.streams[name.split(".")[1]].intermediate_size
            linears = 4 * linear_flops(B * L, hidden, hidden) + 2 * linear_flops(B * L, hidden, inter)
            counts[name] = linears + 4 * B * L * L * hidden
        else:  # co-attention: dims = {stream: (B, L, hidden)}
            total = 0
            for stream, (B, L, hidden) in dims.items():
                others = sum(dims[s][1] for s in dims if s != stream)
                total += 4 * linear_flops(B * L, hidden, co_width)  # query, key, value, output (co_width -> hidden)
                total += 2 * linear_flops(B * L, hidden, co_inter)  # feed-forward
                total += 4 * B * L * others * co_width  # queries of this stream over the other two streams' keys
            counts[name] = total
    return counts


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_tiny_tribert_encoder_forward_matches_layer_shapes(mode):
    """The suite's counter on the tiny config's TriBertForPreTraining forward: every encoder layer's FLOPs equal the
    hand count from the shapes it saw (eval: CPU's fused attention kernel; train: attention dropout, the math path)."""
    from tribert_hf import TriBertForPreTraining

    torch.manual_seed(0)
    config, _ = model_config("tiny")
    model = TriBertForPreTraining(config).train(mode == "train")
    batch = random_batch(config, 1)
    encoder = model.tribert.encoder
    shapes, hooks = {}, []
    for stream, layers in encoder.layers.items():
        for i, layer in enumerate(layers):
            name = f"layers.{stream}.{i}"
            hooks.append(layer.register_forward_hook(lambda m, a, o, name=name: shapes.__setitem__(name, ("self", tuple(a[0].shape)))))
    for i, layer in enumerate(encoder.co_attention_layers):
        hooks.append(layer.register_forward_hook(
            lambda m, a, o, name=f"co_attention_layers.{i}": shapes.__setitem__(
                name, ("co", {s: tuple(x.shape) for s, x in zip(("vision", "pose", "audio"), a[:3])})
            )
        ))  # fmt: skip
    counted = count_flops(lambda: model(**batch))
    for hook in hooks:
        hook.remove()
    assert len(shapes) == sum(len(layers) for layers in encoder.layers.values()) + len(encoder.co_attention_layers)
    expected = _encoder_hand_count(config, shapes)
    prefix = "TriBertForPreTraining.tribert.encoder."
    for name, flops in expected.items():
        assert counted["per_module"][prefix + name] == flops, name
    assert counted["per_module"][prefix.rstrip(".")] == sum(expected.values())
    assert counted["uncounted_ops"] == []
    assert counted["total"] > sum(expected.values())  # plus the CNN/GCN embeddings and the U-Net


def test_tiny_tribert_forward_backward_is_about_three_forwards():
    from tribert_hf import TriBertForPreTraining

    torch.manual_seed(0)
    config, _ = model_config("tiny")
    model = TriBertForPreTraining(config).train()
    batch = random_batch(config, 1)
    forward = count_flops(lambda: model(**batch).loss)["total"]
    both = count_flops(lambda: model(**batch).loss.backward())
    # backward = input and weight gradients (2x forward), less the input gradient of the first layers, whose
    # inputs need none
    assert 2.5 * forward < both["total"] <= 3 * forward
    assert both["uncounted_ops"] == []


# ----------------------------------------------------------------------------------------------------------------
# Peer rows (fast: tiny sizes, in process)
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixtures():
    return common.make_mixtures(2, 4000, 11025, seed=1)


def _mir_eval_values(refs, ests):
    from tribert_hf.metrics import separation_metrics_mir_eval

    return np.stack([np.stack([r["sdr"], r["sir"], r["sar"]]) for r in (separation_metrics_mir_eval(x, y) for x, y in zip(refs, ests))])


def test_bss_eval_rows_report_the_difference_from_mir_eval(mixtures):
    """The machinery every row goes through: an implementation that is off by 1 dB in SIR is reported 1 dB off."""
    refs, ests = mixtures
    mir = _mir_eval_values(refs, ests)
    from tribert_hf.metrics import bss_eval_sources_torch

    def off_by_one(r, e):
        sdr, sir, sar = bss_eval_sources_torch(r, e)
        return sdr, sir + 1.0, sar

    refs_t, ests_t = torch.from_numpy(refs), torch.from_numpy(ests)
    row = speed.batched_row(off_by_one, refs_t, ests_t, mir, 1.0, 1, torch.device("cpu"), ("sdr", "sir", "sar"))
    assert row["max_abs_diff_db_per_metric"]["sir"] == pytest.approx(1.0, abs=1e-6)
    assert row["max_abs_diff_db_per_metric"]["sdr"] < 1e-6 and row["max_abs_diff_db"] == pytest.approx(1.0, abs=1e-6)
    assert row["speedup_over_mir_eval"] == pytest.approx(1.0 / row["median_s_per_mixture"])


def test_fast_bss_eval_peer_agrees_with_mir_eval(mixtures):
    fast_bss_eval = pytest.importorskip("fast_bss_eval")
    refs, ests = mixtures
    result = speed.bss_eval_rows(refs, ests, 1, torch.device("cpu"))
    row = result["peers"]["fast_bss_eval"]
    assert "skipped" not in row and row["backend"] == "torch" and row["metrics"] == ["sdr", "sir", "sar"]
    assert row["max_abs_diff_db"] < 1e-4, row
    assert result["max_abs_diff_db"] < 1e-4  # ours, beside it
    # the row's figure is the real one: the peer called directly, against mir_eval
    sdr, sir, sar = fast_bss_eval.bss_eval_sources(torch.from_numpy(refs), torch.from_numpy(ests), compute_permutation=False)
    direct = np.abs(torch.stack([sdr, sir, sar], 1).numpy() - _mir_eval_values(refs, ests)).max()
    assert row["max_abs_diff_db"] == pytest.approx(direct, abs=1e-9)
    assert "fast_bss_eval" in speed.summary_line("bss_eval", result)


def test_torchmetrics_sdr_peer_agrees_with_mir_eval(mixtures):
    pytest.importorskip("torchmetrics")
    refs, ests = mixtures
    result = speed.bss_eval_rows(refs, ests, 1, torch.device("cpu"))
    row = result["peers"]["torchmetrics"]
    assert "skipped" not in row and row["metrics"] == ["sdr"] and row["function"] == "signal_distortion_ratio"
    assert row["max_abs_diff_db"] < 1e-4, row
    assert 0 < abs(result["mean_sdr_db"]) < 60  # real separations, not identical signals


def test_librosa_stft_peer_agrees_with_our_features():
    pytest.importorskip("librosa")
    fe = TriBertFeatureExtractor()
    clips = (np.random.default_rng(0).standard_normal((2, fe.num_samples)) * 0.1).astype(np.float32)
    audio = speed.audio_features(clips, 1)
    stft = audio["stft_magnitude"]
    assert stft["shape"] == [2, fe.n_fft // 2 + 1, fe.num_frames]
    assert stft["max_value"] > 1.0 and stft["max_abs_diff"] < 1e-5 * stft["max_value"], stft
    assert audio["max_abs_diff"] < 1e-4 * audio["reference_max_value"]  # the log-frequency features too
    assert audio["speedup"] == pytest.approx(audio["reference_median_s"] / audio["ours_median_s"])


def test_a_missing_peer_package_skips_its_row_with_a_message(monkeypatch, mixtures):
    for module in ("fast_bss_eval", "torchmetrics", "librosa"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    refs, ests = mixtures
    result = speed.bss_eval_rows(refs, ests, 1, torch.device("cpu"))
    for name in ("fast_bss_eval", "torchmetrics"):
        message = result["peers"][name]["skipped"]
        assert f"{name} is not installed" in message and "tribert_hf[bench]" in message
    line = speed.summary_line("bss_eval", result)
    assert "fast_bss_eval skipped: fast_bss_eval is not installed" in line and "max |diff|" in line  # ours still there
    fe = TriBertFeatureExtractor()
    audio = speed.audio_features(np.zeros((1, fe.num_samples), np.float32) + 0.1, 1)
    assert "librosa is not installed" in audio["skipped"]["librosa"] and "speedup" not in audio
    maps = {"rows": 8, "num_proc_1": {"rows_per_s": 1.0}, "num_proc_2": {"rows_per_s": 2.0}, "scaling_2_over_1": 2.0}
    assert "librosa is not installed" in speed.summary_line("features", {"audio_features": audio, "datasets_map": maps})


# ----------------------------------------------------------------------------------------------------------------
# Suites, layout, documents
# ----------------------------------------------------------------------------------------------------------------


def test_suite_names():
    assert speed.parse_suites("all") == SUITES
    assert speed.parse_suites("bss_eval, features,bss_eval") == ["bss_eval", "features"]
    assert speed.parse_suites("all,retrieval") == SUITES + ["retrieval"]
    assert speed.parse_suites("step_breakdown") == ["step_breakdown"]  # opt-in: not in all
    with pytest.raises(ValueError, match="unknown suite 'training'"):
        speed.parse_suites("training")
    with pytest.raises(SystemExit) as refused:
        speed.main(["--suite", "preprocessing"])
    assert refused.value.code == 2


def test_layout_1_is_converted_losslessly():
    old = {
        "machine": {"device": "cpu"},
        "sections": {
            "preprocessing": {"audio_features": {"speedup": 2.0}, "wall_s": 1.0},
            "bss_eval": {"speedup": 11.0, "wall_s": 2.0},
            "matmul_peak": {"device": "cpu", "fp32": {"n": 8, "flop_per_s": 5.0}, "wall_s": 3.0},
            "training": {"config": "paper", "mfu": 0.4, "wall_s": 4.0},
        },
    }
    new = speed.upgrade_layout(json.loads(json.dumps(old)))
    assert new["layout"] == speed.LAYOUT and new["upgraded_from_layout"] == 1
    s = new["sections"]
    assert list(s) == ["features", "bss_eval", "train_step"]
    assert s["features"] == old["sections"]["preprocessing"]
    assert s["train_step"] == {"matmul_peak": old["sections"]["matmul_peak"], "config": "paper", "mfu": 0.4, "wall_s": 7.0}
    assert speed.upgrade_layout(new) is new
    assert [t["measured"] for t in speed.targets(new)] == [0.4, None, None, 11.0, None, 2.0]


@pytest.mark.parametrize("name", ["speed", "retrieval_speed"])
def test_committed_results_are_this_layout_and_their_markdown(name):
    """The committed results read as this layout, and their .md is what `markdown` makes of the JSON."""
    with open(os.path.join(RESULTS, name + ".json")) as f:
        result = json.load(f)
    assert result["layout"] == speed.LAYOUT
    assert set(result["sections"]) <= set(speed.SUITES)
    with open(os.path.join(RESULTS, name + ".md")) as f:
        assert speed.markdown(result) == f.read()


def test_make_docs_takes_the_training_steps_from_the_speed_suite(tmp_path):
    load_script("benchmarks/quality.py")  # make_docs.py imports it
    make_docs = load_script("benchmarks/make_docs.py")
    results = tmp_path / "results"
    results.mkdir()
    legacy = {"device": "cpu", "cpu": "x86_64", "cpu_threads": 2, "torch": "2.11", "repeats": 3, "configs": {
        "small": {"parameters": 3.6e6, "mixtures_per_step": 4, "median_s": 1.5, "seconds_per_mixture": 0.375, "peak_memory_mb": 700.0}}}  # fmt: skip
    (results / "train_step.json").write_text(json.dumps(legacy))
    output = tmp_path / "benchmarks.md"
    make_docs.main(["--results", str(results), "--output", str(output)])
    text = output.read_text()
    assert "| small | 3.6 M | 4 | 1.50 | 0.38 | +700 MiB |" in text and "former `benchmarks/train_step.py`" in text
    step = {"parameters": 2.5e8, "mixtures_per_step": 1, "median_s": 12.0, "seconds_per_mixture": 12.0, "peak_memory_mb": 2400.0}
    result = {"layout": speed.LAYOUT, "machine": {"device": "cpu"}, "sections": {"train_step": {"steps": {"paper": step}}}}
    (results / "speed.json").write_text(json.dumps(result))
    (results / "speed.md").write_text("# Speed suite\n\n| figure | measured | target | met? |\n")
    make_docs.main(["--results", str(results), "--output", str(output)])
    text = output.read_text()
    assert "| figure | measured | target | met? |" in text
    assert "| small | 3.6 M |" not in text and "train_step.json" not in text  # the suite's own steps win


# ----------------------------------------------------------------------------------------------------------------
# The suite end to end
# ----------------------------------------------------------------------------------------------------------------


def run_suite(*args, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


@pytest.mark.slow
def test_quick_suite_writes_every_section_targets_and_markdown(tmp_path):
    output = tmp_path / "speed.json"
    result = run_suite("--quick", "--profile", "--output", str(output))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    for name in SUITES:
        assert any(line.startswith(f"{name}: ") for line in lines), name
    assert lines[-1].startswith("speed: ") and "targets met" in lines[-1]
    assert sorted(os.listdir(tmp_path)) == ["speed.json", "speed.md"]  # no temporary file left

    report = json.loads(output.read_text())
    assert report["quick"] is True and report["dtype"] == "fp32"
    assert list(report["sections"]) == SUITES
    for name, section in report["sections"].items():
        assert "error" not in section, section.get("error")
    machine = report["machine"]
    assert machine["device"] == "cpu" and machine["cpu"] and machine["torch"] == torch.__version__
    assert machine["torch_threads"] == 1

    s = report["sections"]
    assert report["layout"] == speed.LAYOUT and report["suites"] == SUITES
    training = s["train_step"]
    assert training["config"] == "tiny" and training["uncounted_ops"] == []
    assert training["forward_backward_flops"] > 2 * training["forward_flops"] > 0
    assert training["peak_flop_per_s_before"] == training["matmul_peak"]["fp32"]["flop_per_s"]
    assert training["peak_flop_per_s"] == max(training["peak_flop_per_s_before"], training["peak_flop_per_s_after"])
    assert training["mfu"] == pytest.approx(
        training["forward_backward_flops"] / training["median_s"] / training["peak_flop_per_s"]
    )
    step = training["steps"]["tiny"]
    assert step["mixtures_per_step"] == 2 and step["seconds_per_mixture"] == pytest.approx(step["median_s"] / 2)
    assert step["parameters"] == training["parameters"]  # the same tiny TriBertForPreTraining
    for role in ("small", "paper"):
        for length, seconds in (("short", 65535 / 11025), ("long", 15.0)):
            entry = s["separation"][role][length]
            assert entry["audio_seconds"] == pytest.approx(seconds, abs=1e-3)
            assert entry["real_time_factor"] == pytest.approx(entry["audio_seconds"] / entry["median_s"])
        assert 0 < s["separation"][role]["unet_parameters"] < s["separation"][role]["parameters"]
    assert s["separation"]["small"]["long"]["segments"] == 4  # starts 0, 49151, 98302 and 99840
    assert s["bss_eval"]["max_abs_diff_db"] < 0.01 and s["bss_eval"]["speedup"] > 0
    assert set(s["bss_eval"]["peers"]) == {"fast_bss_eval", "torchmetrics"}
    for name, peer in s["bss_eval"]["peers"].items():  # measured, or skipped with the reason
        assert ("skipped" in peer) or peer["max_abs_diff_db"] < 0.01, (name, peer)
    features = s["features"]["audio_features"]
    assert features["max_abs_diff"] < 1e-4
    assert features["speedup_bound_fft_only"] == pytest.approx(features["reference_median_s"] / features["fft_only_median_s"])
    assert features["stft_magnitude"]["max_abs_diff"] < 1e-4
    assert "audio features: speedup bound" in (tmp_path / "speed.md").read_text()
    assert s["features"]["datasets_map"]["num_proc_2"]["rows_per_s"] > 0
    sizes = s["model_size"]
    assert sizes["config"] == "tiny" and sizes["parameters"]["total"] == sum(
        p.numel() for p in __import__("tribert_hf").TriBertModel(model_config("tiny")[0]).parameters()
    )
    assert sizes["forward"]["median_s"] > 0 and sizes["forward_backward_train_mode"]["median_s"] > 0

    targets = report["targets"]
    assert len(targets) == 6
    for target in targets:
        assert isinstance(target["measured"], float) and isinstance(target["met"], bool)
        op = {">=": float.__ge__, "<=": float.__le__}[target["comparison"]]
        assert target["met"] == op(target["measured"], float(target["target"]))
    for key in ("training_step", "separation"):
        ops = report["profile"][key]["top_ops_by_self_cpu"]
        assert len(ops) == 15 and all(o["self_cpu_ms"] > 0 for o in ops)
        assert [o["self_cpu_ms"] for o in ops] == sorted((o["self_cpu_ms"] for o in ops), reverse=True)

    markdown = (tmp_path / "speed.md").read_text()
    assert "| figure | measured | target | met? |" in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    for target in targets:
        row = next(line for line in table if line.startswith(f"| {target['name']} |"))
        assert row.count(" | ") == 3  # four cells: no stray pipe
        assert row.endswith("| yes |" if target["met"] else "| **no** |")


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_cleanly(tmp_path):
    result = run_suite("--quick", "--device", "cuda", "--output", str(tmp_path / "speed.json"), timeout=300)
    assert result.returncode == 2
    assert "no CUDA device" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "speed.json").exists()


# ----------------------------------------------------------------------------------------------------------------
# step_breakdown: a separation training step taken apart
# ----------------------------------------------------------------------------------------------------------------


def test_captured_inputs_reproduce_each_part_of_a_real_forward_pass():
    """Each part is timed on what it received inside the whole model: on those inputs it gives what it gave there,
    and a tensor that carried a gradient there still asks for one (so its backward does the same work)."""
    from tribert_hf import TriBertForPreTraining

    torch.manual_seed(0)
    config, _ = model_config("tiny")
    config.separation_condition_maps, config.mask_activation = 4, "softmax"
    model = TriBertForPreTraining(config).eval()  # no dropout, fixed batch-norm statistics: repeatable
    batch = random_batch(config, 2)
    outputs = {}
    handles = [
        model.get_submodule(name).register_forward_hook(lambda m, a, out, name=name: outputs.setdefault(name, out))
        for name in speed.BREAKDOWN_COMPONENTS
    ]
    captured = speed.capture_inputs(model, speed.BREAKDOWN_COMPONENTS, lambda: model(**batch))
    for handle in handles:
        handle.remove()
    assert set(captured) == set(speed.BREAKDOWN_COMPONENTS)
    for name, (args, kwargs) in captured.items():
        again = speed._tensors(model.get_submodule(name)(*args, **kwargs))
        reference = speed._tensors(outputs[name])
        assert len(again) == len(reference) > 0, name
        for a, b in zip(again, reference):
            torch.testing.assert_close(a, b, msg=name)
    # the U-Net's conditions come from the transformer: they carried a gradient; the spectrogram did not
    separation_inputs = [t for t in speed._tensors(captured["separation"]) if t.is_floating_point()]
    assert any(t.requires_grad for t in separation_inputs) and not all(t.requires_grad for t in separation_inputs)
    assert not any(t.requires_grad for t in speed._tensors(captured["tribert.audio_embeddings"]))


@pytest.mark.slow
def test_step_breakdown_quick_writes_its_section_and_table(tmp_path):
    output = tmp_path / "speed-step_breakdown.json"
    result = run_suite("--quick", "--suite", "step_breakdown", "--output", str(output))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.splitlines()[0].startswith("step_breakdown: tiny config, 2 mixtures")
    sec = json.loads(output.read_text())["sections"]["step_breakdown"]
    assert sec["recipe_options"] == {"mask_type": "binary", "mask_activation": "softmax", "separation_condition_maps": 16}
    assert list(sec["components"]) == list(speed.BREAKDOWN_COMPONENTS)
    assert sum(c["parameters"] for c in sec["components"].values()) < sec["parameters"]  # the heads are the rest
    for c in sec["components"].values():
        assert c["forward"]["median_s"] > 0 and c["forward_backward"]["median_s"] > 0  # no timing order: tiny and noisy
    assert set(sec["baselines"]) == {"sop", "audio_only"} and all(e["median_s"] > 0 for e in sec["baselines"].values())
    assert sec["collator"]["median_s"] > 0 and sec["step"]["median_s"] > 0
    # make_docs puts the table into docs/benchmarks.md, with the command that made it
    load_script("benchmarks/quality.py")  # make_docs.py imports it
    make_docs = load_script("benchmarks/make_docs.py")
    lines = "\n".join(make_docs.step_breakdown_section(str(tmp_path)))
    assert lines.startswith("### Where a separation training step goes") and "--suite step_breakdown" in lines
    assert "### A separation training step taken apart [tiny]" in lines and "Generated from" in lines
    layouts = sec["memory_format"]
    assert len(layouts["channels_last"]["times_s"]) == len(layouts["contiguous"]["times_s"]) == 2
    assert layouts["speedup"] == pytest.approx(layouts["contiguous"]["median_s"] / layouts["channels_last"]["median_s"])
    strides = sec["output_stride"]  # every method's step at both U-Net output strides, taking turns
    assert set(strides) == {"tribert", "sop", "audio_only"}
    for o in strides.values():
        assert len(o["stride_1"]["times_s"]) == len(o["stride_2"]["times_s"]) == 2
        assert o["speedup"] == pytest.approx(o["stride_1"]["median_s"] / o["stride_2"]["median_s"])
    assert "half-resolution U-Net output (stride 2 vs 1): tribert " in result.stdout.splitlines()[0]
    table = (tmp_path / "speed-step_breakdown.md").read_text()
    assert "A separation training step taken apart [tiny]" in table and "`separation`" in table and "the rest" in table
    assert "`--separation_output_stride 2`" in table

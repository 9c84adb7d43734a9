"""benchmarks/speed.py: its FLOP counting against hand counts, and the --quick suite end to end (seconds, CPU)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import load_script
from torch import nn

from tribert_hf.training import model_config


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "speed.py")
for _sibling in ("common", "model_size", "bss_eval", "feature_extraction", "train_step"):  # what speed.py imports
    load_script(f"benchmarks/{_sibling}.py")
count_flops = load_script("benchmarks/speed.py").count_flops
random_batch = load_script("benchmarks/train_step.py").random_batch

SECTIONS = ["preprocessing", "bss_eval", "matmul_peak", "training", "separation"]


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
    for name in SECTIONS:
        assert any(line.startswith(f"{name}: ") for line in lines), name
    assert lines[-1].startswith("speed: ") and "targets met" in lines[-1]
    assert sorted(os.listdir(tmp_path)) == ["speed.json", "speed.md"]  # no temporary file left

    report = json.loads(output.read_text())
    assert report["quick"] is True and report["dtype"] == "fp32"
    assert list(report["sections"]) == SECTIONS
    for name, section in report["sections"].items():
        assert "error" not in section, section.get("error")
    machine = report["machine"]
    assert machine["device"] == "cpu" and machine["cpu"] and machine["torch"] == torch.__version__
    assert machine["torch_threads"] == 1

    s = report["sections"]
    training = s["training"]
    assert training["config"] == "tiny" and training["uncounted_ops"] == []
    assert training["forward_backward_flops"] > 2 * training["forward_flops"] > 0
    assert training["peak_flop_per_s_before"] == s["matmul_peak"]["fp32"]["flop_per_s"]
    assert training["peak_flop_per_s"] == max(training["peak_flop_per_s_before"], training["peak_flop_per_s_after"])
    assert training["mfu"] == pytest.approx(
        training["forward_backward_flops"] / training["median_s"] / training["peak_flop_per_s"]
    )
    for role in ("small", "paper"):
        for length, seconds in (("short", 65535 / 11025), ("long", 15.0)):
            entry = s["separation"][role][length]
            assert entry["audio_seconds"] == pytest.approx(seconds, abs=1e-3)
            assert entry["real_time_factor"] == pytest.approx(entry["audio_seconds"] / entry["median_s"])
    assert s["separation"]["small"]["long"]["segments"] == 4  # starts 0, 49151, 98302 and 99840
    assert s["bss_eval"]["max_abs_diff_db"] < 0.01 and s["bss_eval"]["speedup"] > 0
    features = s["preprocessing"]["audio_features"]
    assert features["max_abs_diff"] < 1e-4
    assert features["speedup_bound_fft_only"] == pytest.approx(features["reference_median_s"] / features["fft_only_median_s"])
    assert "audio features: speedup bound" in (tmp_path / "speed.md").read_text()
    assert s["preprocessing"]["datasets_map"]["num_proc_2"]["rows_per_s"] > 0

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

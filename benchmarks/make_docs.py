"""Write docs/benchmarks.md from the benchmark results (never typed by hand).

    python benchmarks/make_docs.py [--results benchmarks/results] [--output docs/benchmarks.md]

Reads `quality/quality.json` and `quality-*/` (benchmarks/quality.py), `calibration-*/` (`quality.py --calibrate`)
and `speed.json` + `speed.md` (benchmarks/speed.py, the one speed suite) where they exist and says which ones have
not been run. Until a speed run has the `train_step` suite's optimizer steps, the training-step table comes from
`train_step.json`, written by the former `benchmarks/train_step.py` (now `speed.py --suite train_step`) and kept as
it was.
"""

import argparse
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(path):
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def quality_sections(results: str, docs_dir: str) -> list[str]:
    """The main quality run (results/quality/), then any other run kept next to it (results/quality-*/, e.g. a
    longer budget for a subset of methods: `quality.py --output_dir benchmarks/results/quality-long ...`)."""
    extra = sorted(d for d in os.listdir(results) if d.startswith("quality-")) if os.path.isdir(results) else []
    lines = quality_section(results, "quality", docs_dir)
    for name in extra:
        if os.path.isfile(os.path.join(results, name, "quality.json")):
            lines += quality_section(results, name, docs_dir)
    return lines


def quality_section(results: str, folder: str, docs_dir: str) -> list[str]:
    from quality import markdown_table  # benchmarks/quality.py: a script's own folder is importable

    report = _load(os.path.join(results, folder, "quality.json"))
    title = "Separation quality" if folder == "quality" else f"Separation quality, `{folder}`"
    lines = [f"## {title} (`benchmarks/quality.py`)", ""]
    if report is None:
        return lines + ["Not run yet: `python benchmarks/quality.py` writes benchmarks/results/quality/.", ""]
    seeds = ",".join(str(s) for s in report["seeds"])
    budget = report["budget"]
    dataset = report["dataset"]
    home = os.path.expanduser("~")
    if dataset.startswith(home + os.sep):  # e.g. the realistic set of docs/data.md: ~/.cache/tribert_hf/realistic
        dataset = "~" + dataset[len(home) :]
    command = f"python benchmarks/quality.py --budget {report['budget_name']} --dataset {dataset} --seeds {seeds} --methods {','.join(report['methods'])}"
    defaults = __import__("quality").BUDGETS[report["budget_name"]]
    for key in ("max_steps", "mixtures_per_batch", "eval_steps"):
        if budget[key] != defaults[key]:
            command += f" --{key} {budget[key]}"
    if report.get("recipe", "baseline") != "baseline":
        command += f" --recipe {report['recipe']}"
    if folder != "quality":
        command += f" --output_dir benchmarks/results/{folder}"
    command = report.get("command", command)  # a combined report (quality.py --combine) says how it was made
    table = markdown_table(report).split("\n", 2)[2]  # without its own title
    figure = os.path.relpath(os.path.join(results, folder, "quality.png"), docs_dir)
    lines += [
        f"Machine: {report['cpu']}, {report['cpu_threads']} CPU threads, torch {report['torch']}; "
        f"{report.get('train_seconds_total', report['seconds']) / 60:.1f} min of training in all.",
        "",
        f"```bash\n{command}\n```",
        "",
        table.strip(),
        "",
        f"![validation SDR against steps]({figure})",
        "",
    ]
    example = report.get("same_class_example")
    if example:
        sdr = "; ".join(f"{method} {a:.2f} / {b:.2f} dB" for method, (a, b) in example["sdr"].items())
        lines += [
            f"One mixture of two clips sharing a class (test pair {tuple(example['pair'])}: {' and '.join(example['classes'])}, "
            f"the first such pair of the test mixtures; mixture SDR {example['sdr_mixture']:.2f} dB): the two players' "
            f"ground truths and each variant's estimates (SDR of player 1 / player 2: {sdr}).",
            "",
            f"![one same-class mixture separated by each variant]({os.path.relpath(os.path.join(results, folder, example['figure']), docs_dir)})",
            "",
        ]
    return lines


SPEED_SUITES = """The speed suite is one command with sub-suites (`--suite all`, the default, runs every one but the
opt-in `retrieval`; `--suite bss_eval,features` runs those): `features` (our audio features against a librosa/NumPy
reference, and the peer row librosa.stft beside our STFT; the featurizer through `datasets.map`), `bss_eval` (ours
and the peer rows `fast_bss_eval`, torch backend, and torchmetrics' `signal_distortion_ratio` beside mir_eval: time
and max |difference| from mir_eval), `train_step` (matmul peak, FLOPs and MFU of a training step; time and memory of
an optimizer step of the demo and paper configs), `separation` (real-time factor), `model_size` (parameters per
component, forward time and memory), and the opt-in `retrieval` and `step_breakdown` (the separation recipe's
training step taken apart, below). Peers are measured in the same run as ours; a peer whose
package is missing (`pip install -e '.[bench]'`) is skipped with the reason."""
# said while speed.json is a result of the suite before its sub-suites (converted by `speed.py --convert`)
SPEED_LEGACY = """The results below were written before `fast_bss_eval`, torchmetrics, the librosa STFT row, `train_step`'s
optimizer steps and `model_size` joined the suite (then separate scripts, whose result files
`feature_extraction.json`, `bss_eval.json`, `separation_speed.json`, `model_size.json` and `train_step.json` are kept
as they were), and converted to the suite names by `speed.py --convert` (values unchanged): they have no peer rows
yet."""


def _has_steps(results: str) -> bool:
    speed = _load(os.path.join(results, "speed.json"))
    return bool(speed and speed.get("sections", {}).get("train_step", {}).get("steps"))


def speed_section(results: str) -> list[str]:
    lines = ["## Speed (`benchmarks/speed.py`)", ""]
    table = os.path.join(results, "speed.md")
    if not os.path.isfile(table):
        return lines + ["Not run yet: `python benchmarks/speed.py` writes benchmarks/results/speed.json and speed.md.", ""]
    with open(table) as f:
        text = f.read().strip()
    if text.startswith("# "):
        text = text.split("\n", 1)[1].strip()  # its own title
    speed = _load(os.path.join(results, "speed.json")) or {}
    intro = SPEED_SUITES + ("\n" + SPEED_LEGACY if "upgraded_from_layout" in speed else "")
    command = "python benchmarks/" + speed.get("command", "speed.py --profile")
    return lines + [intro, "", f"```bash\n{command}\n```", "", text.replace("\n## ", "\n### "), ""]


GPU_SPEED = """The same suite on a GPU (`--device cuda`; the `features` suite is the CPU data pipeline and is not run
there), one table per run (`speed-cuda-*.json` and `.md`). The MFU is against the matmul peak of the training dtype
(bf16: about 770 TFLOP/s on an H100): the paper-size step is not matmul-bound there; the profile's table of self GPU
time says where the step goes (each aten op and its kernel are listed with the same time)."""


def gpu_speed_section(results: str) -> list[str]:
    """Every `speed-cuda-*.md` (speed.py runs with --device cuda), each with its command."""
    names = sorted(n for n in os.listdir(results) if n.startswith("speed-cuda-") and n.endswith(".md"))
    if not names:
        return []
    lines = ["### On a GPU", "", GPU_SPEED, ""]
    for name in names:
        with open(os.path.join(results, name)) as f:
            title, _, text = f.read().strip().partition("\n")
        run = _load(os.path.join(results, name[:-3] + ".json")) or {}
        command = run.get("command", "speed.py").replace("/root/out/", "benchmarks/results/")
        lines += [f"#### `{name[:-3]}`", "", f"```bash\npython benchmarks/{command}\n```", ""]
        lines += [text.strip().replace("\n## ", "\n##### "), ""]
    return lines


def step_breakdown_section(results: str) -> list[str]:
    """`speed-step_breakdown.md` (`speed.py --suite step_breakdown`): where a training step of the recipe goes."""
    table = os.path.join(results, "speed-step_breakdown.md")
    if not os.path.isfile(table):
        return []
    with open(table) as f:
        text = f.read().strip()
    run = _load(os.path.join(results, "speed-step_breakdown.json")) or {}
    command = "python benchmarks/" + run.get("command", "speed.py --suite step_breakdown")
    parts = text.split("\n## ", 1)  # the machine line, the targets table (none here), then the breakdown
    header = parts[0].split("\n", 1)[1].strip().split("\n\n", 1)[0] if "\n" in parts[0] else ""
    body = ("### " + parts[1]) if len(parts) > 1 else text
    return ["### Where a separation training step goes", "", f"```bash\n{command}\n```", "", header, "", body, ""]


def calibration_sections(results: str) -> list[str]:
    """Each `calibration-*/` folder (`quality.py --calibrate`): whole training steps timed against a budget's minutes."""
    names = sorted(n for n in os.listdir(results) if n.startswith("calibration-")) if os.path.isdir(results) else []
    lines = []
    for name in names:
        report = _load(os.path.join(results, name, "calibration.json"))
        table = os.path.join(results, name, "calibration.md")
        if report is None or not os.path.isfile(table):
            continue
        with open(table) as f:
            body = f.read().strip().split("\n", 1)[1].strip()  # the table, without its title
        commands = "\n".join(dict.fromkeys(row["command"] for row in report["rows"] if "command" in row))
        lines += [
            f"### Whole training steps against the `{report['budget_name']}` budget's {report['minutes']:g} minutes, `{name}`", "",
            f"{report['dataset']}, {report['cpu_threads']} threads, {report['cpu']}, torch {report['torch']}; {report['steps_timed']} "
            f"steps of each run timed from its `train_log.jsonl` (data, collator, forward, backward, optimizer), the "
            f"median after step {report['steps_timed'] // 4}.", "",
        ]  # fmt: skip
        if commands:
            lines += ["```bash", commands, "```", ""]
        lines += [body, ""]
    return lines


def train_step_section(results: str) -> list[str]:
    """The legacy training-step table (the former benchmarks/train_step.py), unless the speed suite has its own."""
    if _has_steps(results):
        return []  # in speed.md, from the train_step suite
    report = _load(os.path.join(results, "train_step.json"))
    lines = ["## One training step (the former `benchmarks/train_step.py`)", ""]
    if report is None:
        return lines + ["Not run yet: `python benchmarks/speed.py --suite train_step`.", ""]
    lines += [
        f"Device: {report['device']} ({report['cpu']}, {report['cpu_threads']} threads), torch {report['torch']}, "
        f"median of {report['repeats']} steps (forward + backward + AdamW, joint pre-training loss). Written by the "
        "former `benchmarks/train_step.py` (`train_step.json`, kept as it was); the same measurement is now "
        "`python benchmarks/speed.py --suite train_step`.",
        "",
        "| config | parameters | mixtures of 2 videos per step | s / step (median) | s / mixture | peak memory over the step |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["configs"].items():
        lines.append(
            f"| {name} | {row['parameters'] / 1e6:.1f} M | {row['mixtures_per_step']} | {row['median_s']:.2f} | "
            f"{row['seconds_per_mixture']:.2f} | +{row['peak_memory_mb']:.0f} MiB |"
        )
    return lines + [""]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    parser.add_argument("--output", default=os.path.join(HERE, "..", "docs", "benchmarks.md"))
    args = parser.parse_args(argv)
    docs_dir = os.path.dirname(os.path.abspath(args.output))
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/make_docs.py` from the JSON files in `benchmarks/results/` (each written",
        "by the benchmark named in its section); do not edit by hand. Speeds are medians; ratios are measured in one",
        "run against a reference on the same machine.",
        "",
    ]
    lines += quality_sections(args.results, docs_dir) + speed_section(args.results) + step_breakdown_section(args.results)
    lines += calibration_sections(args.results)
    lines += gpu_speed_section(args.results)
    lines += train_step_section(args.results)
    with open(args.output + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(args.output + ".tmp", args.output)
    print(f"make_docs: wrote {args.output}")


if __name__ == "__main__":
    main()

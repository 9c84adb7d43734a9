"""Write docs/benchmarks.md from the benchmark results (never typed by hand).

    python benchmarks/make_docs.py [--results benchmarks/results] [--output docs/benchmarks.md]

Reads `quality/quality.json` (benchmarks/quality.py), `speed.json` + `speed.md` (benchmarks/speed.py) and
`train_step.json` (benchmarks/train_step.py) where they exist and says which ones have not been run.
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
    return lines


def speed_section(results: str) -> list[str]:
    lines = ["## Speed (`benchmarks/speed.py`)", ""]
    table = os.path.join(results, "speed.md")
    if not os.path.isfile(table):
        return lines + ["Not run yet: `python benchmarks/speed.py` writes benchmarks/results/speed.json and speed.md.", ""]
    with open(table) as f:
        text = f.read().strip()
    if text.startswith("# "):
        text = text.split("\n", 1)[1].strip()  # its own title
    return lines + ["```bash\npython benchmarks/speed.py --profile\n```", "", text.replace("\n## ", "\n### "), ""]


def train_step_section(results: str) -> list[str]:
    report = _load(os.path.join(results, "train_step.json"))
    lines = ["## One training step (`benchmarks/train_step.py`)", ""]
    if report is None:
        return lines + ["Not run yet: `python benchmarks/train_step.py`.", ""]
    lines += [
        f"Device: {report['device']} ({report['cpu']}, {report['cpu_threads']} threads), torch {report['torch']}, "
        f"median of {report['repeats']} steps (forward + backward + AdamW, joint pre-training loss).",
        "",
        "```bash\npython benchmarks/train_step.py\n```",
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
    lines += quality_sections(args.results, docs_dir) + speed_section(args.results) + train_step_section(args.results)
    with open(args.output + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(args.output + ".tmp", args.output)
    print(f"make_docs: wrote {args.output}")


if __name__ == "__main__":
    main()

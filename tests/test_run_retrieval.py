"""The retrieval recipe (examples/run_retrieval.py, its library `tribert_hf.training.retrieval`) on synthetic:tiny with the tiny model: the Table 3 results
(JSON + Markdown), the training losses, the saved models, loading a pre-training checkpoint, and clear errors."""

import json
import os
import subprocess
import sys

import pytest
import torch


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "run_retrieval.py")
# 3 training clips, 3 queries a step and the paper's n = 3: every step scores the same 9 (query, candidate) pairs,
# so the training loss must go down (a random tiny encoder gives features that are hard to tell apart: with
# random batches a few steps show no trend).
COMMON = [
    "--dataset", "synthetic:tiny", "--report_to", "none", "--seed", "0",
    "--max_train_clips", "3", "--queries_per_batch", "3", "--learning_rate", "1e-3", "--retrieval_hidden_size", "64",
]  # fmt: skip
VARIANTS = ["audio_to_vision", "pose_to_audio"]


@pytest.fixture(scope="module")
def recipe():
    """The recipe's library (the script runs its `main`; test_clear_errors runs the script itself)."""
    import tribert_hf.training.retrieval

    return tribert_hf.training.retrieval


@pytest.fixture(scope="module")
def checkpoint(recipe, tmp_path_factory):
    """What run_separation.py writes: a `TriBertForPreTraining` (tiny config) `save_pretrained` folder."""
    from tribert_hf import TriBertForPreTraining

    config, _ = recipe.model_config("tiny")
    torch.manual_seed(1)
    model = TriBertForPreTraining(config)
    path = tmp_path_factory.mktemp("checkpoint")
    model.save_pretrained(path)
    return str(path), model.tribert.state_dict()


def train_feature_caches() -> set:
    """The datasets cache files beside synthetic:tiny's training split (where the recipe's crops are cached)."""
    from tribert_hf.data import load_synthetic_music

    _, data = load_synthetic_music("tiny", progress=False)
    folder = os.path.dirname(data["train"].cache_files[0]["filename"])
    return {name for name in os.listdir(folder) if name.startswith("cache-")}


@pytest.fixture(scope="module")
def run(recipe, checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("retrieval")
    args = COMMON + ["--model_name_or_path", checkpoint[0], "--variants", ",".join(VARIANTS), "--embeddings", "both"]
    before = train_feature_caches()
    results = recipe.main(args + ["--max_steps", "3", "--output_dir", str(out)])
    assert train_feature_caches() <= before  # the finished run removed the cache of its training crops
    return out, results


@pytest.mark.slow
def test_results_json_table_and_saved_models(run, checkpoint):
    out, returned = run
    results = json.load(open(out / "retrieval_results.json", encoding="utf-8"))
    assert results["variants"] == VARIANTS and results["embeddings"] == ["transformer", "pre_transformer"]
    assert results["num_candidates"] == results["num_queries"] == 4  # the tiny val split
    assert results["random"] == {"top1": 25.0, "top5": 100.0, "top10": 100.0}
    cells = {(r["variant"], r["embeddings"]): r for r in results["results"]}
    assert set(cells) == {(v, e) for v in VARIANTS for e in ("transformer", "pre_transformer")}
    for cell in cells.values():
        assert 0.0 <= cell["top1"] <= cell["top5"] <= cell["top10"] <= 100.0
        assert cell["top5"] == cell["top10"] == 100.0  # k >= 4 candidates
        assert cell["num_choices"] == 3 and cell["num_steps"] == 3
        assert len(cell["scores"]) == 4 and all(len(row) == 4 for row in cell["scores"])
    assert returned["results"][0]["top1"] == results["results"][0]["top1"]

    table = open(out / "retrieval_table.md", encoding="utf-8").read()
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert lines[0].split("|")[1:-1] == [
        " Retrieval variant ", " Top-1 transformer ", " Top-1 pre-transformer ", " Top-5 transformer ",
        " Top-5 pre-transformer ", " Top-10 transformer ", " Top-10 pre-transformer ",
    ]  # fmt: skip
    rows = {line.split("|")[1].strip(): [float(x) for x in line.split("|")[2:-1]] for line in lines[2:]}
    assert set(rows) == {"Audio → Vision", "Pose → Audio", "Random selection"}
    t, p = cells[("audio_to_vision", "transformer")], cells[("audio_to_vision", "pre_transformer")]
    assert rows["Audio → Vision"] == pytest.approx([round(c[f"top{k}"], 2) for k in (1, 5, 10) for c in (t, p)])
    assert rows["Random selection"] == [25.0, 25.0, 100.0, 100.0, 100.0, 100.0]
    assert "**4 candidates**" in table and "synthetic:tiny" in table and "(frozen)" in table
    assert not [name for name in os.listdir(out) if ".tmp" in name]  # atomic writes left nothing behind

    from tribert_hf import TriBertForRetrieval

    for variant in VARIANTS:
        for embeddings in ("transformer", "pre_transformer"):
            folder = out / f"{variant}-{embeddings}"
            assert (folder / "processor_config.json").is_file()
            model = TriBertForRetrieval.from_pretrained(folder)
            assert (model.config.retrieval_variant, model.config.retrieval_embeddings) == (variant, embeddings)
            # --freeze_encoder (the default) keeps the encoder in eval mode: every tensor, BatchNorm statistics
            # included, is the checkpoint's after training
            for name, value in checkpoint[1].items():
                assert torch.equal(model.tribert.state_dict()[name], value), (variant, embeddings, name)


@pytest.mark.slow
def test_training_loss_decreases_and_is_recorded(run):
    out, _ = run
    results = json.load(open(out / "retrieval_results.json", encoding="utf-8"))
    for cell in results["results"]:
        losses = cell["train_losses"]
        assert len(losses) == 3 and all(loss == loss for loss in losses)
        assert losses[0] == pytest.approx(1.0986, abs=0.05)  # ln 3: a new head guesses
        assert losses[-1] < losses[0] - 0.005, (cell["variant"], cell["embeddings"], losses)
        assert all(b < a for a, b in zip(losses, losses[1:])), losses  # the same 9 pairs every step


def test_load_retrieval_model_takes_the_checkpoint_encoder_and_a_new_head(recipe, checkpoint):
    from tribert_hf import TriBertForRetrieval

    path, expected = checkpoint
    # from_pretrained: the `tribert.` weights of the checkpoint, a new head, the pre-training heads ignored
    model, report = recipe.load_retrieval_model(path, "vision_audio_to_pose", "pre_transformer", hidden_size=32)
    assert isinstance(model, TriBertForRetrieval) and model.config.retrieval_variant == "vision_audio_to_pose"
    assert model.config.retrieval_embeddings == "pre_transformer" and model.query_projection.out_features == 32
    assert model.tribert.state_dict().keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(model.tribert.state_dict()[name], value), name
    assert report == {"encoder_tensors": len(expected), "new_head_tensors": 10, "ignored_tensors": report["ignored_tensors"], "replaced_head": False}
    assert report["ignored_tensors"] > 0  # the pre-training heads
    again, _ = recipe.load_retrieval_model(path, "vision_audio_to_pose", "pre_transformer", hidden_size=32)
    assert torch.equal(again.scorer[0].weight, model.scorer[0].weight)  # the new head is seeded


def test_without_a_checkpoint_a_random_model_of_model_size(recipe, tmp_path):
    out = tmp_path / "run"
    args = ["--dataset", "synthetic:tiny", "--report_to", "none", "--model_size", "tiny", "--variants", "audio->pose"]
    args += ["--embeddings", "pre-transformer", "--max_steps", "1", "--queries_per_batch", "2", "--max_train_clips", "3"]
    results = recipe.main(args + ["--max_eval_clips", "2", "--output_dir", str(out)])
    assert results["num_candidates"] == 2 and results["random"]["top1"] == 50.0
    assert [(r["variant"], r["embeddings"], r["checkpoint_load"]) for r in results["results"]] == [("audio_to_pose", "pre_transformer", None)]
    assert "randomly initialised `tiny` model" in open(out / "retrieval_table.md", encoding="utf-8").read()


@pytest.mark.slow
def test_clear_errors(recipe, tmp_path):
    out = ["--output_dir", str(tmp_path / "out")]
    with pytest.raises(ValueError, match=r"Unknown retrieval variant\(s\) \['audio_to_smell'\].*audio_to_vision"):
        recipe.main(COMMON + ["--variants", "audio_to_vision,audio_to_smell"] + out)
    with pytest.raises(ValueError, match="--embeddings must be"):
        recipe.main(COMMON + ["--embeddings", "post_transformer"] + out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a model folder"):
        recipe.main(COMMON + ["--model_name_or_path", str(tmp_path / "empty")] + out)
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37).save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match="not a TriBERT checkpoint.*'bert'"):
        recipe.main(COMMON + ["--model_name_or_path", str(tmp_path / "bert")] + out)
    recipe.model_config("tiny")[0].save_pretrained(tmp_path / "config-only")
    with pytest.raises(ValueError, match="has a TriBERT config but no weights"):
        recipe.main(COMMON + ["--model_name_or_path", str(tmp_path / "config-only")] + out)
    assert not (tmp_path / "out").exists()  # every check ran before any work

    # the same from the command line: a non-zero exit and the message
    result = subprocess.run(
        [sys.executable, SCRIPT, "--variants", "audio_to_smell"] + out, capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode != 0 and "Unknown retrieval variant(s) ['audio_to_smell']" in result.stderr


def test_top_k_breaks_ties_at_random(recipe):
    from tribert_hf import retrieval_top_k

    generator = torch.Generator().manual_seed(0)
    scores, targets = torch.randn(20, 12, generator=generator), torch.randint(12, (20,), generator=generator)
    library = retrieval_top_k(scores, targets)
    assert recipe.top_k_accuracy(scores, targets) == pytest.approx({k: 100 * v for k, v in library.items()})
    constant = torch.zeros(4, 4)  # a scorer that cannot tell the candidates apart is at chance, not 100 %
    assert recipe.top_k_accuracy(constant, torch.arange(4)) == pytest.approx(recipe.random_top_k(4)) == {"top1": 25.0, "top5": 100.0, "top10": 100.0}
    assert retrieval_top_k(constant, torch.arange(4))["top1"] == 0.25  # a constant scorer is at chance level
    ties = torch.tensor([[1.0, 1.0, 0.0, 2.0]])  # target 0: 1 better, tied with 1 -> rank 2 or 3
    assert recipe.top_k_accuracy(ties, torch.tensor([0]), ks=(1, 2, 3)) == pytest.approx({"top1": 0.0, "top2": 50.0, "top3": 100.0})

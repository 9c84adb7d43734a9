"""The embedding index (tribert_hf.retrieval_index) and `tribert index build/search`: exact top-k against brute force,
a save/load round trip with the dataset's ids, the two evaluation protocols, re-ranking with the joint encoder,
the recipe's `--method embedding`, FAISS where installed, and clear errors. Tiny configs, CPU, seconds."""

import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from conftest import make_inputs, make_tiny_config

from tribert_hf import TriBertFeatureExtractor, TriBertForContrastiveRetrieval, TriBertForRetrieval, TriBertProcessor, TriBertVideoProcessor
from tribert_hf.cli import main as cli
from tribert_hf.retrieval_index import (
    choice_sets, collection_metrics, default_target, embed_clips, exact_top_k, expected_ranks, faiss_available,
    load_index, make_index, multiple_choice_metrics, query_embedding, rerank,
)  # fmt: skip


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_index(n=50, dim=8, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    embeds = {m: rng.standard_normal((n, dim)).astype(np.float32) for m in ("vision", "pose", "audio")}
    ids = [f"clip-{i:03d}" for i in range(n)]
    return make_index(ids, embeds, splits=["train"] * (n - 5) + ["test"] * 5, labels=[["violin"]] * n, **kwargs), ids


def brute_force(matrix, query, k):
    scores = matrix @ query
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return scores[order], np.array(order)


@pytest.mark.parametrize("k", [1, 3, 10, 49, 50, 80])
def test_exact_top_k_matches_brute_force(k):
    rng = np.random.default_rng(k)
    matrix = rng.standard_normal((50, 6)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix[10] = matrix[20] = matrix[30]  # ties: the lower row comes first, as in a full sort
    queries = rng.standard_normal((4, 6)).astype(np.float32)
    queries[0] = matrix[30]
    scores, indices = exact_top_k(matrix, queries, k)
    assert scores.shape == indices.shape == (4, min(k, 50))
    for q in range(4):
        want_scores, want = brute_force(matrix, queries[q], k)
        np.testing.assert_array_equal(indices[q], want)
        np.testing.assert_allclose(scores[q], want_scores, rtol=1e-5, atol=1e-5)
    assert list(indices[0][:3]) == [10, 20, 30][: min(k, 3)]


def test_index_round_trip_keeps_ids_and_embeddings(tmp_path):
    index, ids = random_index()
    index.save(str(tmp_path / "idx"))
    loaded = load_index(str(tmp_path / "idx"), use_faiss=False)
    assert loaded.ids == ids and len(loaded) == 50 and loaded.dim == 8
    assert loaded.info["num_clips"] == 50 and loaded.info["modalities"] == ["audio", "pose", "vision"]
    for m in ("vision", "pose", "audio"):
        np.testing.assert_array_equal(loaded.matrices[m], index.matrices[m])
        np.testing.assert_allclose(np.linalg.norm(loaded.matrices[m], axis=1), 1.0, rtol=1e-5)  # normalised
    assert loaded.dataset["split"][-1] == "test" and loaded.dataset["labels"][0] == ["violin"]
    # search by a stored embedding: the clip itself first, then the brute-force order, with ids and scores
    query = loaded.embedding("clip-007", "vision")
    hits = loaded.search(query, target="vision", k=5)
    assert hits[0].id == "clip-007" and hits[0].score == pytest.approx(1.0, abs=1e-5) and hits[0].rank == 1
    want_scores, want = brute_force(loaded.matrices["vision"], query, 5)
    assert [h.id for h in hits] == [ids[i] for i in want]
    np.testing.assert_allclose([h.score for h in hits], want_scores, rtol=1e-5)
    assert [h.id for h in loaded.search(query, "vision", k=4, exclude="clip-007")] == [ids[i] for i in want[1:5]]
    assert len(loaded.search(query, "audio", k=500)) == 50


@pytest.mark.skipif(not faiss_available(), reason="faiss-cpu not installed (the exact NumPy search is the default)")
def test_faiss_gives_the_numpy_top_k(tmp_path):
    index, _ = random_index(use_faiss=True)
    index.save(str(tmp_path / "idx"))
    assert all(os.path.isfile(tmp_path / "idx" / f"{m}.faiss") for m in ("vision", "pose", "audio"))
    with_faiss = load_index(str(tmp_path / "idx"), use_faiss=True)
    exact = load_index(str(tmp_path / "idx"), use_faiss=False)
    queries = query_embedding({"q": np.random.default_rng(1).standard_normal((6, 8))})
    s1, i1 = with_faiss.search_batch(queries, "pose", 7)
    s2, i2 = exact.search_batch(queries, "pose", 7)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-6)


def test_index_errors(tmp_path):
    index, _ = random_index()
    with pytest.raises(KeyError, match="No clip 'nope'"):
        index.embedding("nope", "audio")
    with pytest.raises(ValueError, match="dimension 5"):
        index.search(np.ones(5, np.float32), "audio")
    with pytest.raises(ValueError, match="unique"):
        make_index(["a", "a"], {"audio": np.ones((2, 3))})
    with pytest.raises(ValueError, match="one dim"):
        make_index(["a", "b"], {"audio": np.ones((2, 3)), "vision": np.ones((2, 4))})
    with pytest.raises(FileNotFoundError, match="not an embedding index"):
        load_index(str(tmp_path))
    only_audio = make_index(["a", "b"], {"audio": np.ones((2, 3))})
    with pytest.raises(ValueError, match="no 'pose' embeddings"):
        only_audio.search(np.ones(3), "pose")
    if not faiss_available():
        with pytest.raises(ImportError, match="faiss-cpu"):
            random_index(use_faiss=True)
    with pytest.raises(ValueError, match="No modality left"):
        default_target(["vision", "pose", "audio"])
    assert [default_target(q) for q in (["audio"], ["vision"], ["pose"], ["vision", "audio"])] == ["vision", "audio", "audio", "pose"]


def test_protocol_metrics():
    perfect = torch.eye(6)
    assert collection_metrics(perfect) == {"recall@1": 100.0, "recall@5": 100.0, "recall@10": 100.0, "median_rank": 1.0}
    constant = torch.zeros(6, 6)  # at chance, ties at random in expectation
    metrics = collection_metrics(constant)
    assert metrics["recall@1"] == pytest.approx(100 / 6) and metrics["median_rank"] == pytest.approx(3.5)
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.2, 0.8, 0.3], [0.9, 0.1, 0.5]])
    torch.testing.assert_close(expected_ranks(scores, torch.arange(3)), torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64))
    # choice sets: the right clip first, distinct distractors, never the clip itself
    rng = np.random.default_rng(0)
    candidates = rng.standard_normal((12, 4)).astype(np.float32)
    candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
    for kind in ("random", "hard"):
        sets = choice_sets(candidates, 4, kind, seed=0)
        assert sets.shape == (12, 4) and (sets[:, 0] == np.arange(12)).all()
        assert all(len(set(row)) == 4 for row in sets)
    hard = choice_sets(candidates, 4, "hard")
    similarity = candidates @ candidates.T
    for i in range(12):  # the 3 nearest neighbours of clip i's own candidate
        others = [j for j in np.argsort(-similarity[i]) if j != i][:3]
        assert sorted(hard[i, 1:]) == sorted(others)
    np.testing.assert_array_equal(choice_sets(candidates, 4, "random", seed=3), choice_sets(candidates, 4, "random", seed=3))
    # a scorer that prefers the nearest neighbours of the answer: hard distractors beat it more often than random
    scores = torch.as_tensor(similarity) + 0.5 * torch.eye(12)
    assert multiple_choice_metrics(torch.eye(12), hard) == {"top-1": 100.0, "top-5": 100.0, "top-10": 100.0}
    assert multiple_choice_metrics(torch.zeros(12, 12), hard)["top-1"] == pytest.approx(25.0)
    assert multiple_choice_metrics(scores, hard)["top-1"] <= multiple_choice_metrics(scores, choice_sets(candidates, 4, "random"))["top-1"]
    with pytest.raises(ValueError, match="2 <= n <= 12"):
        choice_sets(candidates, 13)
    with pytest.raises(ValueError, match="random' or 'hard"):
        choice_sets(candidates, 3, "nearest")


def test_rerank_is_the_joint_models_pool_scores():
    config = make_tiny_config(retrieval_variant="audio_to_vision", retrieval_hidden_size=16)
    torch.manual_seed(0)
    joint = TriBertForRetrieval(config).eval()
    clips = make_inputs(config, batch_size=4, seed=2)
    query = {k: v[0] for k, v in clips.items()}
    scores = rerank(joint, query, clips, batch_size=3)
    np.testing.assert_allclose(scores, joint.score_pool(query, clips).numpy(), rtol=1e-5, atol=1e-6)
    assert scores.shape == (4,)


# ---------------------------------------------------------------------------------------------------------------
# A tiny checkpoint on synthetic:tiny: the recipe, `tribert index build` and `tribert index search`
# ---------------------------------------------------------------------------------------------------------------


def tiny_processor(config):
    image = config.vision_config.image_size
    video = TriBertVideoProcessor(size={"shortest_edge": image}, crop_size={"height": image, "width": image})
    return TriBertProcessor(TriBertFeatureExtractor(num_frequency_bins=config.audio_config.num_frequency_bins), video, num_pose_frames=config.pose_config.num_pose_frames)


@pytest.fixture(scope="module")
def contrastive_checkpoint(tmp_path_factory):
    config = make_tiny_config(retrieval_hidden_size=16)
    torch.manual_seed(0)
    model = TriBertForContrastiveRetrieval(config)
    path = tmp_path_factory.mktemp("contrastive")
    model.save_pretrained(path)
    tiny_processor(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def built_index(contrastive_checkpoint, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("index") / "idx")
    assert cli(["index", "build", "synthetic:tiny", contrastive_checkpoint, out, "--batch-size", "8"]) == 0
    return out


def test_build_embeds_every_clip_with_the_dataset_ids(built_index, contrastive_checkpoint):
    from tribert_hf.data import load_synthetic_music
    from tribert_hf.retrieval_index import featurize_split, load_contrastive_model

    root, data = load_synthetic_music("tiny", progress=False)
    index = load_index(built_index, use_faiss=False)
    assert index.ids == [v for split in data for v in data[split]["video_id"]]
    assert index.dataset["split"] == [split for split in data for _ in range(len(data[split]))]
    assert index.info["dataset"] == "synthetic:tiny" and index.info["faiss"] == faiss_available()
    assert os.path.isfile(os.path.join(built_index, "model", "config.json"))
    # the stored embeddings are the model's, for the rows with these ids
    model, processor = load_contrastive_model(contrastive_checkpoint)
    features = featurize_split(root, data["val"], processor, None)[:]
    embeds = embed_clips(model, features)
    for m in ("vision", "pose", "audio"):
        np.testing.assert_allclose(index.matrices[m][16:20], embeds[m], rtol=1e-4, atol=1e-5)


def test_search_from_the_command_line(built_index, capsys):
    assert cli(["index", "search", built_index, "--id", "synth-val-0001", "--modality", "audio", "-k", "3", "--json", "--no-faiss"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["query"] == ["audio"] and result["target"] == "vision" and len(result["hits"]) == 3
    index = load_index(built_index, use_faiss=False)
    _, want = exact_top_k(index.matrices["vision"], index.embedding("synth-val-0001", "audio")[None], 3)
    assert [h["id"] for h in result["hits"]] == [index.ids[i] for i in want[0]]
    # a query from files gives the embedding stored for that clip
    from tribert_hf.data import load_synthetic_music

    root, data = load_synthetic_music("tiny", progress=False)
    row = data["val"][1]
    assert cli(["index", "search", built_index, "--audio", os.path.join(root, row["audio_path"]), "-k", "3", "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert [h["id"] for h in from_file["hits"]] == [h["id"] for h in result["hits"]]
    np.testing.assert_allclose([h["score"] for h in from_file["hits"]], [h["score"] for h in result["hits"]], atol=1e-4)
    # vision + audio -> pose, and the plain-text table
    assert cli(["index", "search", built_index, "--id", "synth-val-0001", "--modality", "vision,audio", "-k", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("vision + audio -> pose: top 2 of 24 clips") and "synth-" in text


def test_search_rerank_with_the_joint_encoder(built_index, tmp_path, capsys):
    config = make_tiny_config(retrieval_variant="audio_to_vision", retrieval_hidden_size=16)
    torch.manual_seed(0)
    TriBertForRetrieval(config).save_pretrained(tmp_path / "joint")
    assert cli(["index", "search", built_index, "--id", "synth-val-0001", "-k", "4", "--rerank", str(tmp_path / "joint"), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 4 and all("rerank_score" in h for h in hits)
    reranked = [h["rerank_score"] for h in hits]
    assert reranked == sorted(reranked, reverse=True)
    assert cli(["index", "search", built_index, "--id", "synth-val-0001", "--target", "pose", "--rerank", str(tmp_path / "joint")]) == 2
    assert "scores audio -> vision, the search is audio -> pose" in capsys.readouterr().err


def test_cli_errors(built_index, tmp_path, capsys):
    from tribert_hf import TriBertForPreTraining

    torch.manual_seed(0)
    TriBertForPreTraining(make_tiny_config()).save_pretrained(tmp_path / "pre")
    assert cli(["index", "build", "synthetic:tiny", str(tmp_path / "pre"), str(tmp_path / "out")]) == 2
    assert "not a TriBertForContrastiveRetrieval" in capsys.readouterr().err
    assert cli(["index", "search", built_index, "--id", "nope"]) == 2
    assert "No clip 'nope'" in capsys.readouterr().err
    assert cli(["index", "search", built_index]) == 2
    assert "needs --audio, --video" in capsys.readouterr().err
    assert cli(["index", "search", built_index, "--id", "synth-val-0001", "--target", "audio"]) == 2
    assert "is a modality of the query" in capsys.readouterr().err
    assert cli(["index", "search", str(tmp_path), "--id", "x"]) == 2
    assert "not an embedding index" in capsys.readouterr().err


def test_recipe_embedding_method(tmp_path):
    """run_retrieval.py --method embedding on synthetic:tiny: the loss goes down, both protocols in the JSON and the
    table, and the saved model builds an index."""
    spec = importlib.util.spec_from_file_location("run_retrieval", os.path.join(ROOT, "examples", "run_retrieval.py"))
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    results = recipe.main([
        "--method", "embedding", "--dataset", "synthetic:tiny", "--model_size", "tiny", "--embeddings", "transformer",
        "--max_train_clips", "8", "--queries_per_batch", "8", "--max_steps", "150", "--learning_rate", "3e-3",
        "--retrieval_hidden_size", "16", "--eval_num_choices", "3", "--output_dir", str(tmp_path),
    ])  # fmt: skip
    cell = results["results"][0]
    assert cell["train_losses"][-1] < 0.5 * cell["train_losses"][0]
    assert set(cell["variants"]) == set(results["variants"]) and len(results["variants"]) == 5
    for row in cell["variants"].values():
        assert set(row["collection"]) == {"recall@1", "recall@5", "recall@10", "median_rank"}
        assert 1 <= row["collection"]["median_rank"] <= 4
        for kind in ("choice_random", "choice_hard"):
            assert 0 <= row[kind]["top-1"] <= row[kind]["top-5"] == 100.0  # 3-way: top-5 is 100 by definition
    table = open(tmp_path / "retrieval_table.md", encoding="utf-8").read()
    assert "| Audio → Vision |" in table and "MC hard top-1" in table and "4 candidates" in table
    assert json.load(open(tmp_path / "retrieval_results.json", encoding="utf-8"))["method"] == "embedding"
    assert cli(["index", "build", "synthetic:tiny", cell["saved_to"], str(tmp_path / "idx"), "--splits", "val"]) == 0
    assert load_index(str(tmp_path / "idx")).ids == [f"synth-val-{i:04d}" for i in range(4)]
    with pytest.raises(ValueError, match="--method must be joint or embedding"):
        recipe.main(["--method", "index", "--output_dir", str(tmp_path)])


def test_exact_top_k_in_chunks_and_hard_sets_of_a_larger_pool():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((300, 5)).astype(np.float32)
    queries = rng.standard_normal((70, 5)).astype(np.float32)
    whole = exact_top_k(matrix, queries, 7)
    chunked = exact_top_k(matrix, queries, 7, chunk=16)
    np.testing.assert_array_equal(whole[1], chunked[1])
    np.testing.assert_array_equal(whole[0], chunked[0])
    candidates = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    hard = choice_sets(candidates, 5, "hard")
    similarity = candidates @ candidates.T
    np.fill_diagonal(similarity, -np.inf)
    np.testing.assert_array_equal(np.sort(hard[:, 1:], axis=1), np.sort(np.argsort(-similarity, axis=1)[:, :4], axis=1))


def test_build_in_chunks_gives_the_same_index(built_index, contrastive_checkpoint, tmp_path):
    from tribert_hf.retrieval_index import build_index

    chunked = build_index("synthetic:tiny", contrastive_checkpoint, str(tmp_path / "idx"), splits=["test", "val"], chunk_size=3, log=lambda *_: None)
    whole = load_index(built_index, use_faiss=False)
    assert chunked.ids == [f"synth-test-{i:04d}" for i in range(4)] + [f"synth-val-{i:04d}" for i in range(4)]
    rows = [whole.ids.index(i) for i in chunked.ids]
    for m in ("vision", "pose", "audio"):
        np.testing.assert_allclose(chunked.matrices[m], whole.matrices[m][rows], rtol=1e-4, atol=1e-5)


def test_search_with_a_still_image_as_the_video(built_index, capsys):
    """--video also takes an image (a still clip, no audio track): vision -> audio, and with --audio, vision + audio
    -> pose."""
    from tribert_hf.data import load_synthetic_music

    root, data = load_synthetic_music("tiny", progress=False)
    media = os.path.join(root, os.path.dirname(data["test"][0]["audio_path"]))
    frame = os.path.join(media, "frames", sorted(os.listdir(os.path.join(media, "frames")))[0])
    assert cli(["index", "search", built_index, "--video", frame, "-k", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["query"] == ["vision"] and result["target"] == "audio" and len(result["hits"]) == 2
    assert cli(["index", "search", built_index, "--video", frame, "--audio", os.path.join(root, data["test"][0]["audio_path"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target"] == "pose"
    assert cli(["index", "search", built_index, "--keypoints", frame]) == 2
    assert "--keypoints needs --video" in capsys.readouterr().err

"""An embedding index for cross-modal retrieval: embed a collection once, then search it with a video, a pose track or
a sound in milliseconds.

    from tribert_hf.retrieval_index import build_index, load_index

    build_index("synthetic:small", "out/contrastive", "out/index")   # every clip of every split, once
    index = load_index("out/index")
    index.search(query_embedding, target="vision", k=10)            # [(clip id, cosine similarity), ...]

The index is a folder:

* `embeddings/`: a `datasets.Dataset` (`save_to_disk`) with the dataset's ids (`id`, the prepared `video_id`),
  `split`, `labels` and one L2-normalised embedding column per modality (`vision_embeds`, `pose_embeds`,
  `audio_embeds`, float32 of `retrieval_hidden_size`), in the dataset's order;
* `<modality>.faiss`: an exact inner-product FAISS index of each column, when `faiss-cpu` is installed (else the
  search is an exact NumPy matrix product; both give the same top-k);
* `model/`: the `TriBertForContrastiveRetrieval` and its processor, to embed queries;
* `index.json`: what was indexed (dataset, splits, checkpoint, sizes, crop).
"""

import json
import os
import shutil
import time
from dataclasses import dataclass

import numpy as np
import torch


MODALITIES = ("vision", "pose", "audio")
COLUMNS = {m: f"{m}_embeds" for m in MODALITIES}
INDEX_FORMAT_VERSION = 1


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def embed_clips(model, clips: dict, batch_size: int = 32, modalities=MODALITIES) -> dict[str, np.ndarray]:
    """L2-normalised embeddings `{modality: (clips, dim) float32}` of clips given as model inputs with a leading clip
    dimension (`pixel_values`, `pose_keypoints`, `pose_mask`, `audio_spectrogram`; those of the modalities asked)."""
    from torch.nn import functional as F

    model.eval()
    getters = {"vision": model.get_vision_features, "pose": model.get_pose_features, "audio": model.get_audio_features}
    names = {"vision": ("pixel_values",), "pose": ("pose_keypoints", "pose_mask"), "audio": ("audio_spectrogram",)}
    out = {}
    for modality in modalities:
        if modality not in getters:
            raise ValueError(f"Unknown modality {modality!r}; use one of {MODALITIES}.")
        first = names[modality][0]
        if first not in clips:
            raise ValueError(f"Embedding the {modality} of clips needs `{first}`.")
        size = clips[first].shape[0]
        parts = []
        for start in range(0, size, batch_size):
            inputs = {n: torch.as_tensor(clips[n][start : start + batch_size]) for n in names[modality] if clips.get(n) is not None}
            parts.append(F.normalize(getters[modality](**inputs, return_dict=True).pooler_output.float(), dim=-1).cpu())
        out[modality] = torch.cat(parts).numpy().astype(np.float32) if parts else np.zeros((0, model.config.retrieval_hidden_size), np.float32)
    return out


def query_embedding(embeds: dict[str, np.ndarray]) -> np.ndarray:
    """One query from the modalities given (`{modality: (dim,) or (queries, dim)}`, normalised): their normalised
    sum (vision + audio -> pose is the paper's fused query; a single modality is returned as is)."""
    if not embeds:
        raise ValueError("A query needs at least one modality.")
    query = np.sum([np.asarray(e, dtype=np.float32) for e in embeds.values()], axis=0)
    norm = np.linalg.norm(query, axis=-1, keepdims=True)
    return query / np.maximum(norm, 1e-12)


def default_target(query_modalities) -> str:
    """The retrieved modality of the paper's variants: audio -> vision, vision -> audio, pose -> audio,
    vision + audio -> pose (an audio + pose query retrieves vision)."""
    query = set(query_modalities)
    if query == {"audio"}:
        return "vision"
    if query in ({"vision"}, {"pose"}, {"vision", "pose"}):
        return "audio"
    if query == {"vision", "audio"}:
        return "pose"
    if query == {"audio", "pose"}:
        return "vision"
    raise ValueError(f"No modality left to retrieve for a query of {sorted(query)}.")


# ---------------------------------------------------------------------------------------------------------------
# Exact top-k
# ---------------------------------------------------------------------------------------------------------------


def exact_top_k(matrix: np.ndarray, queries: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The `k` rows of `matrix` `(n, dim)` with the largest inner product with each query `(q, dim)`: `(scores,
    indices)`, each `(q, min(k, n))`, best first; equal scores in row order. Brute force, exact."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if queries.shape[-1] != matrix.shape[1]:
        raise ValueError(f"Query dimension {queries.shape[-1]} does not match the index's {matrix.shape[1]}.")
    k = min(int(k), matrix.shape[0])
    if k < 1:
        raise ValueError(f"k must be at least 1 (and the index non-empty), got k={k} for {matrix.shape[0]} clips.")
    if len(queries) > chunk:  # a (chunk, n) score matrix at a time
        parts = [exact_top_k(matrix, queries[i : i + chunk], k, chunk) for i in range(0, len(queries), chunk)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    scores = queries @ matrix.T  # (q, n)
    if k < matrix.shape[0]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        # ties at the k-th score: argpartition may pick any of them; keep the lowest row numbers, as a full sort would
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
        candidates = [np.flatnonzero(row >= t) for row, t in zip(scores, kth)]
        order = [c[np.lexsort((c, -s[c]))][:k] for c, s in zip(candidates, scores)]
        indices = np.stack(order)
    else:
        indices = np.stack([np.lexsort((np.arange(len(s)), -s)) for s in scores])
    return np.take_along_axis(scores, indices, axis=1), indices


# ---------------------------------------------------------------------------------------------------------------
# The index
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SearchHit:
    id: str
    score: float
    rank: int
    split: str | None = None
    labels: list | None = None


class EmbeddingIndex:
    """Per-clip embeddings of a collection (one column per modality) with their ids; exact search by inner product
    (cosine similarity: every embedding is normalised), through FAISS when `use_faiss` and installed."""

    def __init__(self, dataset, info: dict | None = None, path: str | None = None, use_faiss: bool | None = None):
        self.dataset = dataset
        self.info = info or {}
        self.path = path
        self.ids = list(dataset["id"])
        self._positions = {}
        for i, clip_id in enumerate(self.ids):
            self._positions.setdefault(clip_id, i)
        numpy = dataset.with_format("numpy")
        self.matrices = {m: np.ascontiguousarray(numpy[COLUMNS[m]], dtype=np.float32) for m in MODALITIES if COLUMNS[m] in dataset.column_names}
        self.use_faiss = faiss_available() if use_faiss is None else use_faiss
        if self.use_faiss and not faiss_available():
            raise ImportError("use_faiss=True needs faiss-cpu (`pip install faiss-cpu`); without it the search is exact NumPy.")
        self._faiss = {}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return next(iter(self.matrices.values())).shape[1]

    def embedding(self, clip_id: str, modality: str) -> np.ndarray:
        """The stored embedding `(dim,)` of a clip's modality."""
        if clip_id not in self._positions:
            raise KeyError(f"No clip {clip_id!r} in the index ({len(self)} clips, e.g. {self.ids[:3]}).")
        return self._matrix(modality)[self._positions[clip_id]]

    def _matrix(self, modality: str) -> np.ndarray:
        if modality not in self.matrices:
            raise ValueError(f"The index has no {modality!r} embeddings; it has {sorted(self.matrices)}.")
        return self.matrices[modality]

    def _faiss_index(self, modality: str):
        if modality not in self._faiss:
            import faiss

            file = os.path.join(self.path, f"{modality}.faiss") if self.path else None
            if file and os.path.isfile(file):
                index = faiss.read_index(file)
            else:
                index = faiss.IndexFlatIP(self.dim)
                index.add(self._matrix(modality))
            self._faiss[modality] = index
        return self._faiss[modality]

    def search_batch(self, queries: np.ndarray, target: str, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-k `(scores, row indices)`, each `(queries, k)`, of normalised queries `(queries, dim)` among the
        `target` embeddings."""
        matrix = self._matrix(target)
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if self.use_faiss:
            if queries.shape[-1] != matrix.shape[1]:
                raise ValueError(f"Query dimension {queries.shape[-1]} does not match the index's {matrix.shape[1]}.")
            scores, indices = self._faiss_index(target).search(np.ascontiguousarray(queries), min(int(k), len(self)))
            return scores, indices
        return exact_top_k(matrix, queries, k)

    def search(self, query: np.ndarray, target: str, k: int = 10, exclude: str | None = None) -> list[SearchHit]:
        """The `k` clips whose `target` embedding is closest to `query` `(dim,)` (normalised), best first, with
        cosine similarities; `exclude` leaves out one id (e.g. the query's own clip)."""
        extra = 1 if exclude is not None else 0
        scores, indices = self.search_batch(np.asarray(query)[None], target, k + extra)
        hits = []
        for score, index in zip(scores[0], indices[0]):
            if index < 0 or self.ids[index] == exclude:
                continue
            row = self.dataset[int(index)]
            hits.append(SearchHit(self.ids[index], float(score), len(hits) + 1, row.get("split"), row.get("labels")))
            if len(hits) == k:
                break
        return hits

    def save(self, path: str) -> None:
        """Write `embeddings/`, `index.json` and (with faiss) one `<modality>.faiss` per column into `path`."""
        os.makedirs(path, exist_ok=True)
        tmp = os.path.join(path, ".tmp-embeddings")
        shutil.rmtree(tmp, ignore_errors=True)
        self.dataset.save_to_disk(tmp)
        final = os.path.join(path, "embeddings")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        info = {**self.info, "format_version": INDEX_FORMAT_VERSION, "num_clips": len(self), "dim": self.dim,
                "modalities": sorted(self.matrices), "faiss": bool(self.use_faiss)}  # fmt: skip
        if self.use_faiss:
            import faiss

            for modality in self.matrices:
                index = faiss.IndexFlatIP(self.dim)
                index.add(self.matrices[modality])
                faiss.write_index(index, os.path.join(path, f"{modality}.faiss"))
        _atomic_json(os.path.join(path, "index.json"), info)
        self.info, self.path = info, path


def make_index(ids, embeddings: dict[str, np.ndarray], splits=None, labels=None, info: dict | None = None, use_faiss: bool | None = None) -> EmbeddingIndex:
    """An `EmbeddingIndex` of clips `ids` with their embeddings `{modality: (clips, dim)}` (normalised here)."""
    from datasets import Dataset, Features, List, Value

    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids):
        raise ValueError("The clip ids of an index must be unique.")
    dims = {m: e.shape for m, e in embeddings.items()}
    if any(shape[0] != len(ids) or len(shape) != 2 for shape in dims.values()) or len({s[1] for s in dims.values()}) != 1:
        raise ValueError(f"Embeddings must be (clips, dim) with one dim for all modalities and {len(ids)} clips, got {dims}.")
    columns = {"id": ids, "split": list(splits) if splits is not None else [""] * len(ids),
               "labels": [list(x) for x in labels] if labels is not None else [[] for _ in ids]}  # fmt: skip
    features = {"id": Value("string"), "split": Value("string"), "labels": List(Value("string"))}
    dim = next(iter(dims.values()))[1]
    for modality, matrix in embeddings.items():
        matrix = np.asarray(matrix, dtype=np.float32)
        matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        columns[COLUMNS[modality]] = matrix
        features[COLUMNS[modality]] = List(Value("float32"), length=dim)
    dataset = Dataset.from_dict(columns, features=Features(features))
    return EmbeddingIndex(dataset, info, use_faiss=use_faiss)


def load_index(path: str, use_faiss: bool | None = None) -> EmbeddingIndex:
    """An index folder written by `build_index` / `EmbeddingIndex.save`."""
    from datasets import load_from_disk

    info_file = os.path.join(path, "index.json")
    if not os.path.isfile(info_file):
        raise FileNotFoundError(f"{path!r} is not an embedding index (no index.json): build one with `tribert index build`.")
    with open(info_file, encoding="utf-8") as f:
        info = json.load(f)
    if info.get("format_version") != INDEX_FORMAT_VERSION:
        raise ValueError(f"{path!r} has index format {info.get('format_version')}, this version reads {INDEX_FORMAT_VERSION}: rebuild it.")
    return EmbeddingIndex(load_from_disk(os.path.join(path, "embeddings")), info, path=path, use_faiss=use_faiss)


def _atomic_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------------
# Building from a dataset and a checkpoint
# ---------------------------------------------------------------------------------------------------------------


def load_contrastive_model(path: str, device: str | None = None):
    """A trained `TriBertForContrastiveRetrieval` and its processor, or a clear error for a checkpoint without
    trained projections (e.g. a pre-training folder: train them with `examples/run_retrieval.py --method
    embedding`)."""
    from transformers import PretrainedConfig

    from .modeling_tribert_retrieval import TriBertForContrastiveRetrieval
    from .processing_tribert import TriBertProcessor

    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"{path!r} is not a model folder (no config.json).")
    config, _ = PretrainedConfig.get_config_dict(path)
    if "TriBertForContrastiveRetrieval" not in (config.get("architectures") or []):
        raise ValueError(
            f"{path!r} is a {config.get('architectures')} checkpoint, not a TriBertForContrastiveRetrieval: its "
            "embeddings would go through untrained projections. Train one with `examples/run_retrieval.py --method "
            "embedding --model_name_or_path <encoder>`."
        )
    from .pipelines import quiet_transformers

    with quiet_transformers():
        model = TriBertForContrastiveRetrieval.from_pretrained(path).eval()
    if device:
        model.to(device)
    if not os.path.isfile(os.path.join(path, "processor_config.json")):
        raise ValueError(f"{path!r} has no processor (processor_config.json); save the processor next to the model.")
    return model, TriBertProcessor.from_pretrained(path)


def _load_dataset(dataset: str):
    from .data import load_prepared, load_synthetic_music

    if dataset.startswith("synthetic:"):
        return load_synthetic_music(dataset.split(":", 1)[1], progress=False)
    if not os.path.isdir(dataset):
        raise FileNotFoundError(f"Dataset {dataset!r} is neither synthetic:<preset> nor a prepared folder.")
    return dataset, load_prepared(dataset)


def featurize_split(root: str, split, processor, label2id: dict | None, num_proc: int = 1, keep_in_memory: bool = False):
    """Centre-crop model inputs of every row of a prepared split (torch-formatted `datasets.Dataset`)."""
    from .data import PreparedClipFeaturizer

    labels = sorted({name for row in split["labels"] for name in row})
    label2id = label2id if label2id and set(labels) <= set(label2id) else {name: i for i, name in enumerate(labels)}
    featurizer = PreparedClipFeaturizer(root, processor, crop="center", label2id=label2id)
    features = split.map(
        featurizer, batched=True, batch_size=8, with_indices=True, num_proc=num_proc if num_proc > 1 else None,
        remove_columns=split.column_names, features=featurizer.features, desc="features (centre crops)",
        keep_in_memory=keep_in_memory,
    )  # fmt: skip
    features.set_format("torch", columns=["pixel_values", "pose_keypoints", "pose_mask", "audio_spectrogram"])
    return features


def build_index(
    dataset: str, checkpoint: str, output: str, splits=None, batch_size: int = 32, num_proc: int = 1,
    use_faiss: bool | None = None, device: str | None = None, log=print, chunk_size: int = 256,
) -> EmbeddingIndex:  # fmt: skip
    """Embed every clip of `dataset` (`synthetic:<preset>` or a prepared folder; `splits`, default all) with a
    trained `TriBertForContrastiveRetrieval` and write the index folder `output`. The clips are featurized and
    embedded `chunk_size` at a time, in memory."""
    model, processor = load_contrastive_model(checkpoint, device)
    root, data = _load_dataset(dataset)
    splits = list(data) if not splits else list(splits)
    unknown = [s for s in splits if s not in data]
    if unknown:
        raise ValueError(f"Unknown split(s) {unknown} of {dataset} ({list(data)}).")
    ids, split_names, labels, parts = [], [], [], {m: [] for m in MODALITIES}
    start = time.perf_counter()
    for split in splits:
        rows = data[split]
        # chunk by chunk, in memory: a large collection's inputs never sit on disk or in memory all at once
        for chunk in range(0, len(rows), chunk_size):
            features = featurize_split(root, rows.select(range(chunk, min(chunk + chunk_size, len(rows)))), processor,
                                       model.config.label2id, num_proc, keep_in_memory=True)  # fmt: skip
            embeds = embed_clips(model, features[:], batch_size)
            for m in MODALITIES:
                parts[m].append(embeds[m])
        ids += list(rows["video_id"])
        split_names += [split] * len(rows)
        labels += [list(x) for x in rows["labels"]]
        log(f"{split}: {len(rows)} clips embedded")
    seconds = time.perf_counter() - start
    info = {"dataset": dataset, "dataset_root": os.path.abspath(root), "splits": splits, "checkpoint": os.path.abspath(checkpoint),
            "crop": "center", "retrieval_embeddings": model.config.retrieval_embeddings, "build_seconds": round(seconds, 2)}  # fmt: skip
    index = make_index(ids, {m: np.concatenate(parts[m]) for m in MODALITIES}, split_names, labels, info, use_faiss)
    model_dir = os.path.join(output, "model")
    os.makedirs(output, exist_ok=True)
    tmp = os.path.join(output, ".tmp-model")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    shutil.rmtree(model_dir, ignore_errors=True)
    os.replace(tmp, model_dir)
    index.save(output)
    log(f"{len(index)} clips x {len(MODALITIES)} modalities ({index.dim}-d) in {seconds:.1f} s -> {output} ({'FAISS' if index.use_faiss else 'exact NumPy'} search)")
    return index


# ---------------------------------------------------------------------------------------------------------------
# Queries from files, and re-ranking with the joint encoder
# ---------------------------------------------------------------------------------------------------------------


def query_inputs_from_files(processor, audio: str | None = None, video: str | None = None, keypoints: str | None = None):
    """Model inputs (batch of one, centre crop as in the index) of a query given as files, and the modalities it
    has: `audio` (a WAV / audio file, or a video's audio track), `video` (its frames; its audio track fixes the time
    window when there is no `audio`), `keypoints` (AlphaPose / COCO-WholeBody JSON of `video`)."""
    from .media import VisualClip, load_audio
    from .pipelines import load_clip_keypoints

    if keypoints and not video:
        raise ValueError("--keypoints needs --video (the keypoint file's frame size and frame rate come from the video).")
    if not (audio or video):
        raise ValueError("A query needs --audio, --video (with --keypoints for pose) or --id.")
    rate = processor.feature_extractor.sampling_rate
    clip = VisualClip(video) if video else None
    if audio:
        waveform = load_audio(audio, rate)
    else:
        try:
            waveform = load_audio(video, rate)
        except Exception:  # noqa: BLE001 - a silent or audio-less video: its frames only
            duration = clip.duration if np.isfinite(clip.duration) else processor.feature_extractor.num_samples / rate
            waveform = np.zeros(max(1, int(duration * rate)), np.float32)
    kwargs = {}
    if clip is not None:
        if clip.is_image:
            kwargs.update(videos=[clip.frames_at(np.zeros(3))], video_fps=None)
        else:
            times = np.arange(clip.num_frames) / clip.fps
            kwargs.update(videos=[clip.frames_at(times)], video_fps=clip.fps)
    if keypoints:
        pose = load_clip_keypoints(keypoints, clip)
        kwargs.update(pose_keypoints=[pose], pose_fps=clip.fps if pose is not None else None)
    inputs = processor([waveform], sampling_rate=rate, crop="center", return_tensors="pt", **kwargs)
    modalities = (["vision"] if video else []) + (["audio"] if audio else []) + (["pose"] if keypoints else [])
    return dict(inputs), modalities


def embed_query_files(model, processor, audio: str | None = None, video: str | None = None, keypoints: str | None = None) -> dict[str, np.ndarray]:
    """Normalised embeddings `{modality: (dim,)}` of a query given as files (see `query_inputs_from_files`)."""
    inputs, modalities = query_inputs_from_files(processor, audio, video, keypoints)
    embeds = embed_clips(model, inputs, modalities=modalities)
    return {m: e[0] for m, e in embeds.items()}


def indexed_clip_inputs(index: EmbeddingIndex, ids, processor) -> dict:
    """Model inputs (centre crops, leading dimension `len(ids)`) of indexed clips, read again from the dataset the
    index was built from (e.g. to re-rank a top-k with the joint encoder)."""
    dataset = index.info.get("dataset")
    if not dataset:
        raise ValueError("The index does not record its dataset: its clips cannot be read again.")
    root, data = _load_dataset(dataset)
    wanted, parts = list(ids), {}
    for split in index.info.get("splits") or list(data):
        rows = data[split]
        positions = {clip_id: i for i, clip_id in enumerate(rows["video_id"])}
        picked = [(clip_id, positions[clip_id]) for clip_id in wanted if clip_id in positions]
        if not picked:
            continue
        features = featurize_split(root, rows.select([i for _, i in picked]), processor, None)[:]
        for j, (clip_id, _) in enumerate(picked):
            parts[clip_id] = {k: v[j] for k, v in features.items()}
    missing = [clip_id for clip_id in wanted if clip_id not in parts]
    if missing:
        raise ValueError(f"Clips {missing[:3]} are not in {dataset} any more: rebuild the index.")
    return {k: torch.stack([parts[clip_id][k] for clip_id in wanted]) for k in parts[wanted[0]]}


@torch.no_grad()
def rerank(joint_model, query: dict, candidates: dict, batch_size: int = 16) -> np.ndarray:
    """Scores `(candidates,)` of the joint `TriBertForRetrieval` (query and candidate encoded together, the paper's
    n-way head) for a short list, e.g. the top-k of an index search: `query` one clip's inputs (no batch
    dimension), `candidates` the candidate clips' inputs with a leading dimension. Sort by them to re-rank."""
    joint_model.eval()
    return joint_model.score_pool(query, candidates, batch_size=batch_size).float().cpu().numpy()


# ---------------------------------------------------------------------------------------------------------------
# Evaluation protocols: full-collection recall and the paper's n-way multiple choice
# ---------------------------------------------------------------------------------------------------------------


def expected_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each query's right answer in a `(queries, pool)` score matrix, ties broken at random in
    expectation (`g` better and `t` tied others: rank `g + 1 + t / 2`)."""
    scores = torch.as_tensor(scores).double()
    target = scores.gather(1, torch.as_tensor(targets)[:, None])
    better = (scores > target).sum(dim=1).double()
    tied = (scores == target).sum(dim=1).double() - 1
    return better + 1 + tied / 2


def collection_metrics(scores: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """Full-collection retrieval of a square `(queries, pool)` score matrix whose right answers are the diagonal:
    recall@k (%, ties at random in expectation) and the median rank of the right answer (1 is perfect)."""
    from .modeling_tribert_retrieval import retrieval_top_k

    scores = torch.as_tensor(scores)
    targets = torch.arange(scores.shape[0])
    metrics = {f"recall@{k}": 100 * v for k, v in zip(ks, retrieval_top_k(scores, targets, ks).values())}
    metrics["median_rank"] = float(expected_ranks(scores, targets).median())
    return metrics


def choice_sets(candidates: np.ndarray, num_choices: int, distractors: str = "random", seed: int = 0) -> np.ndarray:
    """For each clip i, the candidates of its n-way multiple choice `(clips, n)`: i itself (column 0) and n - 1
    distractors, other clips drawn at random (`"random"`, seeded) or the n - 1 clips whose candidate embedding is
    nearest to clip i's (`"hard"`: nearest neighbours, `candidates` `(clips, dim)` normalised)."""
    size = candidates.shape[0]
    if not 2 <= num_choices <= size:
        raise ValueError(f"An n-way choice needs 2 <= n <= {size} (the clips to rank), got n = {num_choices}.")
    if distractors == "random":
        rng = np.random.default_rng(seed)
        others = np.stack([rng.choice(size - 1, num_choices - 1, replace=False) for _ in range(size)])
        others = others + (others >= np.arange(size)[:, None])  # skip clip i itself
    elif distractors == "hard":
        _, nearest = exact_top_k(candidates, candidates, num_choices)  # chunk the rows for a large pool
        others = np.stack([[j for j in row if j != i][: num_choices - 1] for i, row in enumerate(nearest)])
    else:
        raise ValueError(f"distractors must be 'random' or 'hard', got {distractors!r}.")
    return np.concatenate([np.arange(size)[:, None], others], axis=1)


def multiple_choice_metrics(scores: torch.Tensor, choices: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    """Top-k accuracy (%) of n-way multiple choice: query i ranks the candidates `choices[i]` (the right one in
    column 0) by `scores[i]` (`(queries, pool)`); ties at random in expectation. With k >= n it is 100."""
    from .modeling_tribert_retrieval import retrieval_top_k

    scores = torch.as_tensor(scores)
    sub = scores.gather(1, torch.as_tensor(choices, dtype=torch.long))
    return {k.replace("top", "top-"): 100 * v for k, v in retrieval_top_k(sub, torch.zeros(sub.shape[0], dtype=torch.long), ks).items()}


__all__ = [
    "EmbeddingIndex",
    "SearchHit",
    "build_index",
    "choice_sets",
    "collection_metrics",
    "default_target",
    "embed_clips",
    "embed_query_files",
    "exact_top_k",
    "expected_ranks",
    "faiss_available",
    "featurize_split",
    "indexed_clip_inputs",
    "load_contrastive_model",
    "load_index",
    "make_index",
    "multiple_choice_metrics",
    "query_embedding",
    "query_inputs_from_files",
    "rerank",
]

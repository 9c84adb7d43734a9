"""Features of a prepared dataset through `datasets.map(batched=True, num_proc=2)` equal the processor's own."""

import numpy as np
import pytest

from tribert_hf import MUSIC21_LABELS, TriBertFeatureExtractor, TriBertProcessor, TriBertVideoProcessor
from tribert_hf.data import PreparedClipFeaturizer, lazy_frames, load_synthetic_music, read_audio, read_pose


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return load_synthetic_music("tiny", cache_dir=str(tmp_path_factory.mktemp("synthetic")), progress=False)


@pytest.fixture(scope="module")
def processor():
    return TriBertProcessor(TriBertFeatureExtractor(), TriBertVideoProcessor())


@pytest.mark.parametrize("crop", ["center", "random"])
def test_map_with_two_processes_matches_the_processor(synthetic, processor, crop):
    root, dataset = synthetic
    split = dataset["val"]
    featurize = PreparedClipFeaturizer(root, processor, crop=crop, seed=7)
    mapped = split.map(
        featurize, batched=True, batch_size=3, num_proc=2, with_indices=True, remove_columns=split.column_names,
        features=featurize.features,
    )
    mapped.set_format("numpy")
    assert set(mapped.column_names) >= {"audio_spectrogram", "pixel_values", "pose_keypoints", "pose_mask", "class_labels"}
    for index in range(len(split)):
        row, features = split[index], mapped[index]
        waveform, rate = read_audio(root, row)
        direct = processor(
            waveform, videos=lazy_frames(root, row), pose_keypoints=read_pose(root, row), sampling_rate=rate,
            video_fps=row["fps"], pose_fps=row["pose_fps"], crop=crop, seed=7 + index if crop == "random" else None,
            return_tensors="np",
        )  # fmt: skip
        for key in ("audio_spectrogram", "pixel_values", "pose_keypoints", "pose_mask"):
            np.testing.assert_allclose(features[key], direct[key][0], rtol=1e-6, atol=1e-6, err_msg=key)
        expected = np.zeros(len(MUSIC21_LABELS), np.float32)
        expected[[MUSIC21_LABELS.index(name) for name in row["labels"]]] = 1
        np.testing.assert_array_equal(features["class_labels"], expected)
    assert features["audio_spectrogram"].shape == (1, 256, 256)
    assert features["pixel_values"].shape == (3, 3, 224, 224)
    assert features["pose_keypoints"].shape == (2, 256, 68, 3)


def test_solo_and_duet_pose_masks(synthetic, processor):
    root, dataset = synthetic
    featurize = PreparedClipFeaturizer(root, processor)
    kinds = {}
    for row in dataset["train"]:
        kinds.setdefault(row["kind"], featurize.example(row)["pose_mask"].tolist())
    assert kinds["solo"] == [1, 0] and kinds["duet"] == [1, 1]


def test_lazy_frames_reads_only_what_is_asked(synthetic):
    root, dataset = synthetic
    row = dataset["train"][0]
    frames = lazy_frames(root, row)
    assert len(frames) == row["num_frames"] and frames.ndim == 4
    assert frames[[0, 2]].shape[0] == 2 and frames[1].ndim == 3 and frames[1:4].shape[0] == 3

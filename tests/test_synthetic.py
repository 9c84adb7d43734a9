"""The built-in synthetic music dataset (tribert_hf.data.synthetic): format, determinism, audio, frames, pose."""

import os

import numpy as np
import pytest

from tribert_hf.data import prepared
from tribert_hf.data import synthetic
from tribert_hf.data.prepared import PREPARED_FEATURES, read_audio, read_frames, read_pose
from tribert_hf.data.synthetic import (
    DEFAULT_SYNTHETIC_CLASSES,
    generate_synthetic_music,
    load_synthetic_music,
    make_synthetic_video,
    read_sources,
)


COUNTS = {"train": 4, "val": 2, "test": 2}
KWARGS = {"num_videos": COUNTS, "duet_fraction": 0.5, "duration": 6.5, "progress": False}  # every split has a duet


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    return root, generate_synthetic_music(root, **KWARGS)


def all_rows(dataset):
    return [row for split in dataset for row in dataset[split]]


def test_rows_columns_and_counts(generated):
    root, dataset = generated
    assert {split: len(part) for split, part in dataset.items()} == COUNTS
    ids = [row["video_id"] for row in all_rows(dataset)]
    assert len(set(ids)) == len(ids)
    for split, part in dataset.items():
        assert set(part.column_names) == set(PREPARED_FEATURES)
        assert [row["video_id"] for row in part] == [f"synth-{split}-{i:04d}" for i in range(COUNTS[split])]
    assert os.path.isfile(os.path.join(root, synthetic.MARKER_FILE))


def test_solos_and_duets(generated):
    root, dataset = generated
    kinds = []
    for row in all_rows(dataset):
        pose = read_pose(root, row)
        kinds.append(row["kind"])
        assert set(row["labels"]) <= set(DEFAULT_SYNTHETIC_CLASSES)
        if row["kind"] == "solo":
            assert len(row["labels"]) == 1
            assert np.any(pose[0]) and not np.any(pose[1]), "a solo has one player; person slot 1 is absent"
        else:
            assert row["kind"] == "duet" and len(set(row["labels"])) == 2 == len(row["labels"])
            assert np.all(pose[:, :, :, 2] > 0), "a duet has two players"
    assert kinds.count("duet") == 4 and kinds.count("solo") == 4


def test_audio_and_sources(generated):
    root, dataset = generated
    for row in all_rows(dataset):
        audio, rate = read_audio(root, row)
        assert rate == row["sampling_rate"] == 11025
        assert audio.dtype == np.float32 and audio.shape == (round(6.5 * 11025),)
        assert np.isfinite(audio).all() and 0.3 < np.abs(audio).max() <= 0.9 + 1e-6
        sources = read_sources(root, row)
        assert list(sources) == row["labels"]
        np.testing.assert_allclose(sum(sources.values()), audio, atol=1e-4)
        for wave in sources.values():
            assert np.abs(wave).max() <= 0.5 + 1e-6 and np.sqrt(np.mean(wave**2)) > 0.01


def test_frames(generated):
    root, dataset = generated
    row = dataset["train"][3]
    assert row["num_frames"] == round(6.5 * 8) == len(os.listdir(os.path.join(root, row["frames_dir"])))
    frames = read_frames(root, row, [0, row["num_frames"] - 1])
    assert frames.shape == (2, 96, 96, 3) and frames.dtype == np.uint8
    assert frames.std() > 10, "players and instruments are drawn on the background"


def test_pose_format(generated):
    root, dataset = generated
    for row in all_rows(dataset):
        pose = read_pose(root, row)
        assert pose.shape == (2, round(6.5 * 24), 68, 3) and pose.dtype == np.float32 and row["pose_fps"] == 24
        present = pose[pose[..., 2] > 0]
        assert present[:, :2].min() >= 0 and present[:, :2].max() <= 1 and present[:, 2].max() <= 1


def test_generation_is_deterministic(generated, tmp_path):
    root, dataset = generated
    other = generate_synthetic_music(str(tmp_path), **KWARGS)
    for split in ("train", "test"):
        for row, again in zip(dataset[split], other[split]):
            assert row == again
            np.testing.assert_array_equal(read_audio(root, row)[0], read_audio(str(tmp_path), again)[0])
            np.testing.assert_array_equal(read_pose(root, row), read_pose(str(tmp_path), again))


def test_seed_changes_the_video():
    first, again, other = (make_synthetic_video("train", 1, seed=seed) for seed in (0, 0, 1))
    np.testing.assert_array_equal(first.waveform, again.waveform)
    np.testing.assert_array_equal(first.pose, again.pose)
    assert first.waveform.shape == other.waveform.shape and not np.allclose(first.waveform, other.waveform)
    assert not np.allclose(first.pose, other.pose)
    assert make_synthetic_video("val", 1).video_id == "synth-val-0001"
    assert not np.allclose(make_synthetic_video("val", 1).waveform, first.waveform), "splits are disjoint"


def average_spectrum(label, videos=2):
    spectra = []
    for index in range(videos):
        wave = make_synthetic_video("train", index, classes=[label], duet_fraction=0.0).waveform
        frames = wave[: len(wave) // 1024 * 1024].reshape(-1, 1024) * np.hanning(1024)
        spectra.append(np.abs(np.fft.rfft(frames, axis=-1)).mean(axis=0))
    spectrum = np.mean(spectra, axis=0)
    return spectrum / np.linalg.norm(spectrum)


def test_classes_have_distinct_spectra():
    spectra = {label: average_spectrum(label) for label in DEFAULT_SYNTHETIC_CLASSES}
    frequencies = np.fft.rfftfreq(1024, 1 / 11025)
    centroid = {label: float(frequencies @ s / s.sum()) for label, s in spectra.items()}
    assert centroid["flute"] > 2 * centroid["cello"] and centroid["violin"] > 2 * centroid["cello"]
    labels = list(spectra)
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            assert np.corrcoef(spectra[a], spectra[b])[0, 1] < 0.95, (a, b)
    for a, b in [("flute", "cello"), ("xylophone", "acoustic_guitar"), ("trumpet", "cello"), ("violin", "drum")]:
        assert np.corrcoef(spectra[a], spectra[b])[0, 1] < 0.5, (a, b)


@pytest.mark.parametrize("label", DEFAULT_SYNTHETIC_CLASSES)
def test_hands_move_with_the_onsets(label):
    video = make_synthetic_video("test", 2, classes=[label], duet_fraction=0.0)
    wrists = video.pose[0, :, [9, 10], :2]  # (2 wrists, pose frames, 2)
    speed = np.linalg.norm(np.diff(wrists, axis=1), axis=-1).max(axis=0) * 24  # frame widths per second
    times = (np.arange(len(speed)) + 0.5) / 24
    since_onset = times[:, None] - video.onsets[label][None, :]
    after_onset = ((since_onset >= 0) & (since_onset < 0.1)).any(axis=1)
    assert after_onset.sum() >= 3
    assert speed[after_onset].mean() > 1.3 * speed[~after_onset].mean()


def test_load_synthetic_music_caches(tmp_path, monkeypatch):
    root, dataset = load_synthetic_music("tiny", cache_dir=str(tmp_path), progress=False)
    assert os.path.dirname(root) == str(tmp_path) and os.path.basename(root).startswith("tiny-")
    assert {split: len(part) for split, part in dataset.items()} == {"train": 16, "val": 4, "test": 4}
    assert dataset["train"][0]["duration"] == pytest.approx(6.5, abs=1e-3)
    marker = os.path.join(root, synthetic.MARKER_FILE)
    stamp = os.stat(marker).st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("a complete cached dataset must not be regenerated")

    monkeypatch.setattr(synthetic, "generate_synthetic_music", must_not_run)
    again, dataset_again = load_synthetic_music("tiny", cache_dir=str(tmp_path))
    assert again == root and os.stat(marker).st_mtime_ns == stamp
    assert dataset_again["test"][:] == dataset["test"][:]

    os.remove(marker)  # as if interrupted before the end: generated again
    calls = []
    monkeypatch.setattr(synthetic, "generate_synthetic_music", lambda root, **kw: calls.append(root) or {})
    assert load_synthetic_music("tiny", cache_dir=str(tmp_path))[0] == root and calls == [root]


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="not_an_instrument"):
        generate_synthetic_music(str(tmp_path), classes=["violin", "not_an_instrument"], progress=False)
    with pytest.raises(ValueError, match="not_an_instrument"):
        make_synthetic_video("train", 0, classes=["not_an_instrument"])
    with pytest.raises(ValueError, match="preset"):
        load_synthetic_music("huge", cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="two classes"):
        make_synthetic_video("train", 3, classes=["violin"], duet_fraction=0.25)
    assert not os.path.exists(os.path.join(tmp_path, "media")), "nothing is written for invalid arguments"


def test_any_music21_subset(tmp_path):
    classes = ["bagpipe", "tuba", "pipa"]
    dataset = generate_synthetic_music(str(tmp_path), {"train": 3}, classes, duet_fraction=0.0, progress=False)
    assert sorted(label for row in dataset["train"] for label in row["labels"]) == sorted(classes)
    assert prepared.load_prepared(str(tmp_path))["train"].num_rows == 3

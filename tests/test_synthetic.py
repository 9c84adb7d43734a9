"""The built-in synthetic music dataset (tribert_hf.data.synthetic): format, determinism, audio, frames, pose."""

import json
import os

import numpy as np
import pytest

from tribert_hf.data import prepared
from tribert_hf.data import synthetic
from tribert_hf.data.prepared import PREPARED_FEATURES, SPLITS, read_audio, read_frames, read_pose
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

    monkeypatch.setattr(synthetic.dataset, "generate_synthetic_music", must_not_run)
    again, dataset_again = load_synthetic_music("tiny", cache_dir=str(tmp_path))
    assert again == root and os.stat(marker).st_mtime_ns == stamp
    assert dataset_again["test"][:] == dataset["test"][:]

    os.remove(marker)  # as if interrupted before the end: generated again
    calls = []
    monkeypatch.setattr(synthetic.dataset, "generate_synthetic_music", lambda root, **kw: calls.append(root) or {})
    assert load_synthetic_music("tiny", cache_dir=str(tmp_path))[0] == root and calls == [root]

    # Without cache_dir: $XDG_CACHE_HOME/tribert_hf/synthetic when set.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    calls.clear()
    default_root = load_synthetic_music("tiny")[0]
    assert default_root.startswith(str(tmp_path / "xdg" / "tribert_hf" / "synthetic")) and calls == [default_root]


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


# ----------------------------------------------------------------------------------------------------------------
# Sounds from a folder of solo clips (sounds_dir)
# ----------------------------------------------------------------------------------------------------------------

CLIP_RATE = 22050  # clips are resampled to the dataset's 11025 Hz
# class -> clips (name, frequency in Hz, note onsets in s, length in s): one clip longer than a video, one shorter
CLIPS = {
    "xylophone": [("long", 880.0, (0.2, 0.7, 1.2, 1.7, 2.2, 2.7), 3.0), ("short", 1320.0, (0.1, 0.45, 0.9, 1.25), 1.5)],
    "cello": [("long", 220.0, (0.15, 0.65, 1.15, 1.65, 2.15, 2.65), 3.0), ("short", 330.0, (0.1, 0.5, 1.0), 1.4)],
}
SOUND_SECONDS = 2.0
SOUND_COUNTS = {"train": 4, "val": 1, "test": 2}
SOUND_KWARGS = {"num_videos": SOUND_COUNTS, "duet_fraction": 0.5, "duration": SOUND_SECONDS, "progress": False}


def decaying_tone(frequency, onsets, length, rate=CLIP_RATE):
    """A pure tone restarted (zero phase, peak 0.6, 80 ms decay) at each onset: silence before the first."""
    time = np.arange(round(length * rate)) / rate
    wave = np.zeros_like(time)
    for start, end in zip(onsets, (*onsets[1:], length)):
        note = (time >= start) & (time < end)
        age = time[note] - start
        wave[note] = 0.6 * np.sin(2 * np.pi * frequency * age) * np.exp(-age / 0.08)
    return wave


def make_sounds(folder, clips=CLIPS):
    for label, entries in clips.items():
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        for name, frequency, onsets, length in entries:
            path = os.path.join(folder, label, f"{name}.wav")
            prepared.write_wav(path, decaying_tone(frequency, onsets, length), CLIP_RATE)
    return str(folder)


def clip_entry(path):
    label, name = path.split("/")
    return next(entry for entry in CLIPS[label] if f"{entry[0]}.wav" == name)


def expected_onsets(info, duration=SOUND_SECONDS):
    """Onset times (s) in a video of the clip segment `info` (its "path", "start", "looped")."""
    _, _, onsets, length = clip_entry(info["path"])
    repeats = np.arange(-1, 1 + int(np.ceil(duration / length)) + 1) if info["looped"] else np.zeros(1)
    times = (np.array(onsets)[None, :] + length * repeats[:, None]).ravel() - info["start"]
    return np.sort(times[(times > -0.05) & (times < duration + 0.05)])


@pytest.fixture(scope="module")
def sounds_dir(tmp_path_factory):
    return make_sounds(tmp_path_factory.mktemp("sounds"))


@pytest.fixture(scope="module")
def sound_videos(sounds_dir):
    with pytest.warns(UserWarning, match="val and test share"):  # 2 clips per class
        bank = synthetic.index_sounds(sounds_dir)
    return [
        make_synthetic_video(split, index, duet_fraction=0.5, duration=SOUND_SECONDS, sounds_dir=bank)
        for split, count in SOUND_COUNTS.items()
        for index in range(count)
    ]


@pytest.fixture(scope="module")
def sound_generated(sounds_dir, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic-sounds"))
    with pytest.warns(UserWarning):
        return root, generate_synthetic_music(root, sounds_dir=sounds_dir, **SOUND_KWARGS)


def test_sounds_dir_sources_come_from_the_clips(sounds_dir, sound_generated):
    from scipy.signal import resample_poly

    root, dataset = sound_generated
    with open(os.path.join(root, synthetic.MARKER_FILE)) as f:
        record = json.load(f)
    assert record["sounds_dir"] == os.path.abspath(sounds_dir) and record["classes"] == ["cello", "xylophone"]
    frequencies = np.fft.rfftfreq(round(SOUND_SECONDS * 11025), 1 / 11025)
    kinds = []
    for row in all_rows(dataset):
        kinds.append(row["kind"])
        audio, rate = read_audio(root, row)
        sources = read_sources(root, row)
        assert rate == 11025 and audio.shape == (round(SOUND_SECONDS * 11025),)
        np.testing.assert_allclose(sum(sources.values()), audio, atol=1e-4)
        for label, wave in sources.items():
            info = record["clips"][row["video_id"]][label]
            assert info["path"].startswith(f"{label}/")
            _, frequency, _, _ = clip_entry(info["path"])
            clip, clip_rate = prepared.read_wav(os.path.join(sounds_dir, info["path"]))
            clip = resample_poly(clip.astype(np.float64), 1, 2)  # 22050 -> 11025 Hz
            start = round(info["start"] * 11025)
            segment = np.take(clip, np.arange(start, start + len(wave)), mode="wrap" if info["looped"] else "raise")
            assert np.corrcoef(segment, wave)[0, 1] > 0.999, "the source is the clip's segment"
            assert frequencies[np.argmax(np.abs(np.fft.rfft(wave)))] == pytest.approx(frequency, abs=2.0)
            assert np.abs(wave).max() <= 0.5 + 1e-6
            if row["kind"] == "solo":
                assert np.abs(wave).max() == pytest.approx(0.5, abs=1e-6), "normalised as a synthesised source"
    assert "solo" in kinds and "duet" in kinds
    looped = [info["looped"] for clips in record["clips"].values() for info in clips.values()]
    assert any(looped) and not all(looped), "short clips are looped, long ones cut"


@pytest.mark.filterwarnings("ignore:Class .* clip")
@pytest.mark.parametrize("rate", [44100, 16000])
def test_sounds_dir_stereo_int16_clip(tmp_path, rate):
    """A stereo 16-bit clip at another rate is mixed to mono and resampled to 11025 Hz."""
    from scipy.io import wavfile

    tone = decaying_tone(440.0, (0.1, 0.6, 1.1, 1.6, 2.1), 2.5, rate)
    (tmp_path / "violin").mkdir()
    stereo = np.stack([tone, 0.5 * tone], axis=1)  # mono: 0.75 x tone
    wavfile.write(str(tmp_path / "violin" / "stereo.wav"), rate, np.round(stereo * 32767).astype(np.int16))
    video = make_synthetic_video("train", 0, duet_fraction=0.0, duration=SOUND_SECONDS, sounds_dir=str(tmp_path))
    wave = video.sources["violin"]
    time = np.arange(len(wave)) / 11025 + video.clips["violin"]["start"]
    expected = decaying_tone(440.0, (0.1, 0.6, 1.1, 1.6, 2.1), 2.5, 11025)[np.round(time * 11025).astype(int)]
    assert wave.shape == (round(SOUND_SECONDS * 11025),) and np.abs(wave).max() == pytest.approx(0.5, abs=1e-6)
    assert np.corrcoef(expected, wave)[0, 1] > 0.99
    assert len(video.onsets["violin"]) >= 3


def test_sounds_dir_splits_use_disjoint_clips(sound_generated):
    root, _ = sound_generated
    with open(os.path.join(root, synthetic.MARKER_FILE)) as f:
        clips = json.load(f)["clips"]
    used = {split: set() for split in SPLITS}
    for video_id, players in clips.items():
        used[video_id.split("-")[1]] |= {info["path"] for info in players.values()}
    assert used["train"] and used["test"]
    assert not used["train"] & (used["val"] | used["test"]), "train and val/test draw from different clips"
    every_clip = {f"{label}/{entry[0]}.wav" for label, entries in CLIPS.items() for entry in entries}
    assert used["train"] | used["val"] | used["test"] <= every_clip


def test_clip_split():
    clips = [f"violin/{i:02d}.wav" for i in range(20)]
    parts = {split: synthetic.clip_split(clips, split, seed=0) for split in SPLITS}
    assert [len(parts[split]) for split in SPLITS] == [16, 2, 2]
    assert sorted(sum(parts.values(), ())) == clips and all(list(p) == sorted(p) for p in parts.values())
    assert synthetic.clip_split(clips, "test", seed=1) != parts["test"], "the seed picks the held-out clips"
    assert synthetic.clip_split(clips[::-1], "test", seed=0) == parts["test"]
    three = {split: synthetic.clip_split(clips[:3], split) for split in SPLITS}
    assert sorted(sum(three.values(), ())) == clips[:3], "3 clips: one per split"
    assert synthetic.clip_split(clips[:1], "test") == synthetic.clip_split(clips[:1], "train") == (clips[0],)


def test_sounds_dir_onsets_are_detected(sound_videos):
    count = 0
    for video in sound_videos:
        for label, info in video.clips.items():
            detected, expected = video.onsets[label], expected_onsets(info)
            assert len(detected) and np.all(np.diff(detected) > 0)
            assert np.abs(detected[:, None] - expected[None, :]).min(axis=1).max() < 0.03, (detected, expected)
            inner = expected[(expected > 0.05) & (expected < SOUND_SECONDS - 0.05)]
            assert np.abs(inner[:, None] - detected[None, :]).min(axis=1).max() < 0.03, (detected, expected)
            count += len(inner)
    assert count >= 20


def test_detect_onsets_on_synthesised_notes():
    """The detector finds the notes of the built-in synthesiser (ground truth known) within 30 ms."""
    for label in ("piano", "violin", "drum", "flute"):
        rng = np.random.default_rng(3)
        melody = synthetic.random_melody(synthetic.TIMBRES[label], rng, 6.5)
        wave = synthetic.synthesize(synthetic.TIMBRES[label], melody, round(6.5 * 11025), 11025, rng)
        detected, strengths = synthetic.detect_onsets(wave, 11025)
        assert strengths.max() == 1.0 and strengths.min() > 0
        hit = np.abs(melody.onsets[:, None] - detected[None, :]).min(axis=1) < 0.03
        precise = np.abs(detected[:, None] - melody.onsets[None, :]).min(axis=1) < 0.03
        assert hit.mean() >= 0.9 and precise.mean() >= 0.8, label
    assert len(synthetic.detect_onsets(np.zeros(11025), 11025)[0]) == 0


def test_sounds_dir_hands_move_with_the_clip_onsets(sound_videos):
    for video in sound_videos:
        for slot, label in enumerate(video.labels):
            wrists = video.pose[slot, :, [9, 10], :2]
            speed = np.linalg.norm(np.diff(wrists, axis=1), axis=-1).max(axis=0) * 24
            steps = np.arange(len(speed))  # step i: pose frame i -> i + 1, times i / 24 .. (i + 1) / 24
            onsets = expected_onsets(video.clips[label])[None, :]
            # the steps that overlap the 0.1 s after an onset (the onsets here fall at the same place between pose
            # frames, so a step's midpoint can precede the onset that starts its motion)
            after_onset = (((steps[:, None] + 1) / 24 > onsets) & (steps[:, None] / 24 < onsets + 0.1)).any(axis=1)
            assert after_onset.sum() >= 3
            assert speed[after_onset].mean() > 1.3 * speed[~after_onset].mean(), (video.video_id, label)


@pytest.mark.filterwarnings("ignore:Class .* clip")
def test_sounds_dir_generation_is_deterministic(sounds_dir, sound_generated, tmp_path):
    root, dataset = sound_generated
    with pytest.warns(UserWarning):
        other = generate_synthetic_music(str(tmp_path), sounds_dir=sounds_dir, **SOUND_KWARGS)
    for row, again in zip(all_rows(dataset), all_rows(other)):
        assert row == again
        for name in ["audio.wav", "pose.npy", *(f"sources/{label}.wav" for label in row["labels"])]:
            with open(os.path.join(root, "media", row["video_id"], name), "rb") as a:
                with open(os.path.join(tmp_path, "media", row["video_id"], name), "rb") as b:
                    assert a.read() == b.read(), name
    first, other_seed = (
        make_synthetic_video("train", 1, duration=SOUND_SECONDS, sounds_dir=sounds_dir, seed=seed) for seed in (0, 1)
    )
    assert not np.allclose(first.waveform, other_seed.waveform), "the seed picks other clips and segments"


def test_sounds_dir_cache_key(sounds_dir, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(synthetic.dataset, "generate_synthetic_music", lambda root, **kw: calls.append((root, kw)) or {})
    cache = str(tmp_path / "cache")
    with pytest.warns(UserWarning):
        root, _ = load_synthetic_music("tiny", cache_dir=cache, sounds_dir=sounds_dir)
        again, _ = load_synthetic_music("tiny", cache_dir=cache, sounds_dir=sounds_dir)
        plain, _ = load_synthetic_music("tiny", cache_dir=cache)
    assert root == again and os.path.basename(root).startswith("tiny-sounds-") and plain != root
    assert calls[0][1]["sounds_dir"].root == sounds_dir and calls[0][1]["classes"] == ["cello", "xylophone"]
    assert "sounds_dir" not in calls[2][1]

    other = make_sounds(tmp_path / "other", {"cello": CLIPS["cello"], "xylophone": CLIPS["xylophone"][:1]})
    with pytest.warns(UserWarning):
        assert load_synthetic_music("tiny", cache_dir=cache, sounds_dir=other)[0] not in (root, plain)
        changed = os.path.join(other, "cello", "long.wav")
        before = load_synthetic_music("tiny", cache_dir=cache, sounds_dir=other)[0]
        os.utime(changed, ns=(0, os.stat(changed).st_mtime_ns + 10**9))  # the clip was edited
        assert load_synthetic_music("tiny", cache_dir=cache, sounds_dir=other)[0] != before


@pytest.mark.filterwarnings("ignore:Class .* clip")
def test_sounds_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        generate_synthetic_music(str(tmp_path / "out"), sounds_dir=str(tmp_path / "missing"), progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        make_synthetic_video("train", 0, sounds_dir=str(empty))

    unknown = tmp_path / "unknown"
    make_sounds(unknown, {"violin": CLIPS["cello"]})
    (unknown / "kazoo").mkdir()
    with pytest.raises(ValueError, match=r"\['kazoo'\].*acoustic_guitar.*xylophone"):  # lists the valid names
        generate_synthetic_music(str(tmp_path / "out"), sounds_dir=str(unknown), progress=False)

    no_wavs = tmp_path / "no_wavs"
    make_sounds(no_wavs, {"violin": CLIPS["cello"]})
    (no_wavs / "flute").mkdir()
    (no_wavs / "flute" / "notes.txt").write_text("not a clip")
    with pytest.raises(ValueError, match="flute.*no .wav clips"):
        make_synthetic_video("train", 0, sounds_dir=str(no_wavs))

    valid = make_sounds(tmp_path / "valid", {"violin": CLIPS["cello"]})
    with pytest.raises(ValueError, match="no clips of \\['drum'\\]"):
        make_synthetic_video("train", 0, classes=["violin", "drum"], sounds_dir=valid)

    silent = tmp_path / "silent"
    (silent / "violin").mkdir(parents=True)
    prepared.write_wav(str(silent / "violin" / "quiet.wav"), np.zeros(22050), 22050)
    with pytest.warns(UserWarning, match="1 clip"), pytest.raises(ValueError, match="quiet.wav.*silent"):
        generate_synthetic_music(
            str(tmp_path / "out"), {"train": 1}, duet_fraction=0.0, sounds_dir=str(silent), progress=False
        )
    assert not os.path.exists(os.path.join(tmp_path, "out", synthetic.MARKER_FILE))


def test_cli_synthetic_sounds_dir(tmp_path, monkeypatch, capsys):
    from tribert_hf import cli

    calls = []
    fake = lambda root, **kw: calls.append((root, kw)) or {"train": []}  # noqa: E731
    monkeypatch.setattr(synthetic, "generate_synthetic_music", fake)
    assert cli.main(["synthetic", str(tmp_path / "out"), "--preset", "tiny", "--sounds-dir", str(tmp_path)]) == 0
    assert calls[0][1]["sounds_dir"] == str(tmp_path)
    assert calls[0][1]["num_videos"] == {"train": 16, "val": 4, "test": 4}
    assert "sounds from" in capsys.readouterr().out
    monkeypatch.undo()
    (tmp_path / "kazoo").mkdir()
    assert cli.main(["synthetic", str(tmp_path / "out"), "--sounds-dir", str(tmp_path)]) == 2
    assert "kazoo" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Same-class duets (opt-in: same_class_duet_fraction), and the shared-class test pairs of the realistic preset
# ---------------------------------------------------------------------------------------------------------------


def test_same_class_duets_are_opt_in_and_leave_the_other_videos_unchanged(tmp_path):
    """With same_class_duet_fraction 0.5 every second duet has two players of one class, each with a melody of
    their own (sources `<class>.wav` and `<class>-2.wav`); the other videos are byte for byte those generated
    without the parameter."""
    kwargs = {"num_videos": {"train": 4}, "duet_fraction": 0.5, "duration": 2.0, "frame_size": 32, "progress": False}
    root = str(tmp_path / "same")
    dataset = generate_synthetic_music(root, same_class_duet_fraction=0.5, **kwargs)
    rows = list(dataset["train"])
    assert [row["kind"] for row in rows] == ["solo", "duet", "solo", "duet"]
    assert len(rows[1]["labels"]) == 2 and len(rows[3]["labels"]) == 1  # duet 0 distinct, duet 1 same-class
    (label,) = rows[3]["labels"]
    assert synthetic.video_players("train", 3, duet_fraction=0.5, same_class_duet_fraction=0.5) == [label, label]
    sources = read_sources(root, rows[3])
    assert list(sources) == [label, f"{label}-2"]
    audio, _ = read_audio(root, rows[3])
    np.testing.assert_allclose(sum(sources.values()), audio, atol=1e-4)
    video = make_synthetic_video("train", 3, duet_fraction=0.5, duration=2.0, frame_size=32, same_class_duet_fraction=0.5)
    assert video.labels == [label] and list(video.onsets) == [label, f"{label}-2"]
    assert not np.array_equal(video.onsets[label], video.onsets[f"{label}-2"])  # two players, their own timing
    assert np.all(video.pose[:, :, :, 2] > 0)  # both players are seen
    assert json.load(open(os.path.join(root, synthetic.MARKER_FILE)))["same_class_duet_fraction"] == 0.5

    plain = generate_synthetic_music(str(tmp_path / "plain"), **kwargs)
    assert "same_class_duet_fraction" not in json.load(open(os.path.join(tmp_path / "plain", synthetic.MARKER_FILE)))
    for index in (0, 1, 2):  # solos and the distinct-class duet: unchanged
        assert plain["train"][index]["labels"] == rows[index]["labels"]
        np.testing.assert_array_equal(read_audio(str(tmp_path / "plain"), plain["train"][index])[0], read_audio(root, rows[index])[0])
        np.testing.assert_array_equal(read_pose(str(tmp_path / "plain"), plain["train"][index]), read_pose(root, rows[index]))
    assert len(set(plain["train"][3]["labels"])) == 2
    with pytest.raises(ValueError, match="same_class_duet_fraction"):
        make_synthetic_video("train", 3, same_class_duet_fraction=1.5)
    # one class is enough when every duet is a same-class duet
    assert make_synthetic_video("train", 3, classes=["violin"], duet_fraction=0.25, duration=1.0, frame_size=32, same_class_duet_fraction=1.0).labels == ["violin"]


def test_a_preset_with_same_class_duets_has_its_own_cache_and_the_others_keep_theirs(tmp_path, monkeypatch):
    """The parameter enters a preset's cache key only when the preset sets it: the existing presets keep their
    folders (and content)."""
    calls = {}

    def record(root, **parameters):
        calls[os.path.basename(root)] = parameters
        return {}

    monkeypatch.setattr(synthetic.dataset, "generate_synthetic_music", record)
    monkeypatch.setitem(synthetic.SYNTHETIC_PRESETS, "tiny_same_class", {**synthetic.SYNTHETIC_PRESETS["tiny"], "same_class_duet_fraction": 0.5})
    tiny = os.path.basename(load_synthetic_music("tiny", cache_dir=str(tmp_path))[0])
    same = os.path.basename(load_synthetic_music("tiny_same_class", cache_dir=str(tmp_path))[0])
    assert "same_class_duet_fraction" not in calls[tiny] and calls[same]["same_class_duet_fraction"] == 0.5
    key = {"generator_version": synthetic.GENERATOR_VERSION, "num_videos": None, "classes": list(DEFAULT_SYNTHETIC_CLASSES), **synthetic.GENERATION_DEFAULTS, **synthetic.SYNTHETIC_PRESETS["tiny"]}
    import hashlib

    assert tiny == "tiny-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]  # as before


def test_the_realistic_preset_has_enough_shared_class_test_pairs():
    """docs/data.md: the realistic set (21 classes of `tribert render-solos`) has 63 test pairs that share a class,
    counted from the players' draw without rendering; with same-class duets its training set has them too."""
    from tribert_hf.configuration_tribert import MUSIC21_LABELS

    preset = {**synthetic.GENERATION_DEFAULTS, **synthetic.SYNTHETIC_PRESETS["realistic"]}
    count = preset["num_videos"]["test"]
    labels = [set(synthetic.video_players("test", i, MUSIC21_LABELS, preset["duet_fraction"], preset["seed"])) for i in range(count)]
    shared = sum(bool(labels[i] & labels[j]) for i in range(count) for j in range(i + 1, count))
    assert shared == 63 >= 40
    train = [synthetic.video_players("train", i, MUSIC21_LABELS, preset["duet_fraction"], preset["seed"]) for i in range(preset["num_videos"]["train"])]
    assert not any(len(p) == 2 and p[0] == p[1] for p in train)  # the preset itself: no same-class duet
    train = [synthetic.video_players("train", i, MUSIC21_LABELS, preset["duet_fraction"], preset["seed"], 0.5) for i in range(preset["num_videos"]["train"])]
    assert sum(len(p) == 2 and p[0] == p[1] for p in train) == 24  # half of the 48 duets


def test_cli_synthetic_same_class_duet_fraction(tmp_path, monkeypatch, capsys):
    from tribert_hf import cli

    calls = []
    monkeypatch.setattr(synthetic, "generate_synthetic_music", lambda root, **kw: calls.append(kw) or {"train": []})
    assert cli.main(["synthetic", str(tmp_path / "a"), "--preset", "tiny", "--same-class-duet-fraction", "0.5"]) == 0
    assert cli.main(["synthetic", str(tmp_path / "b"), "--preset", "tiny"]) == 0
    assert calls[0]["same_class_duet_fraction"] == 0.5 and "same_class_duet_fraction" not in calls[1]
    capsys.readouterr()


def test_every_class_plays_solo_in_every_split_of_the_built_in_presets():
    """With 8 classes and every 4th video a duet, cycling through the classes made two of them only ever a duet's
    first player: the demo's test split then held solos of classes trained on in duets only (its xylophone +
    guitar mixtures failed). Each cycle is now shifted; a class count that does not share the duets' spacing (the
    realistic set's 21) keeps the plain cycle, so that set's content is unchanged."""
    from tribert_hf.configuration_tribert import MUSIC21_LABELS
    from tribert_hf.data.synthetic.dataset import _cycle_hides_solos

    for preset in ("tiny", "small"):
        sizes = synthetic.SYNTHETIC_PRESETS[preset]["num_videos"]
        for split, count in sizes.items():
            players = [synthetic.video_players(split, i) for i in range(count)]
            solos = {p[0] for p in players if len(p) == 1}
            assert solos == set(DEFAULT_SYNTHETIC_CLASSES) or count < len(DEFAULT_SYNTHETIC_CLASSES), (preset, split, solos)
            assert sum(len(p) == 2 for p in players) == count // 4
    assert _cycle_hides_solos(8, 0.25) and not _cycle_hides_solos(21, 0.25) and not _cycle_hides_solos(8, 0.0)
    order = np.random.default_rng([0, SPLITS.index("test")]).permutation(len(MUSIC21_LABELS))
    assert [synthetic.video_players("test", i, MUSIC21_LABELS)[0] for i in range(48)] == [MUSIC21_LABELS[order[i % 21]] for i in range(48)]

"""`tribert prepare` on tiny videos made with FFmpeg (one corrupt, one silent, one too short, one without audio)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tribert_hf.data import load_prepared, read_audio, read_frames, read_pose
from tribert_hf.data.prepare import PrepareOptions, assign_split, authors_split, find_videos, prepare_dataset


pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the system FFmpeg (make test installs it)")


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def make_video(path, seconds, audio="sine=frequency=440", size="160x120"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    video = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=10:duration={seconds}"]
    if audio is None:
        ffmpeg(*video, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path)
        return
    sound = ["-f", "lavfi", "-i", f"{audio}:sample_rate=22050:duration={seconds}" if "sine" in audio else f"{audio}:sample_rate=22050"]
    ffmpeg(*video, *sound, "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path)


def alphapose_json(path, num_frames, width=160, height=120):
    detections = []
    for frame in range(num_frames):
        keypoints = np.zeros((136, 3))
        keypoints[:, 0] = 40 + frame % 5
        keypoints[:, 1] = np.linspace(10, 110, 136)
        keypoints[:, 2] = 0.9
        detections.append({"image_id": f"{frame}.jpg", "category_id": 1, "keypoints": keypoints.ravel().tolist(), "score": 2.5, "box": [0, 0, 80, 120]})
    with open(path, "w") as f:
        json.dump(detections, f)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    make_video(str(root / "violin" / "good_solo.mp4"), 7)
    make_video(str(root / "acoustic_guitar violin" / "good_duet.mp4"), 7, audio="sine=frequency=660")
    make_video(str(root / "flute" / "too_short.mp4"), 3)
    make_video(str(root / "cello" / "silent.mp4"), 7, audio="anullsrc=channel_layout=mono")
    make_video(str(root / "drum" / "no_audio.mp4"), 7, audio=None)
    os.makedirs(root / "trumpet")
    (root / "trumpet" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a real video" * 50)
    keypoints = tmp_path_factory.mktemp("keypoints")
    alphapose_json(str(keypoints / "good_solo.json"), 70)
    return str(root), str(keypoints)


def test_prepare_writes_a_dataset_and_reports_the_bad_videos(videos, tmp_path):
    video_dir, keypoints_dir = videos
    options = PrepareOptions(val_fraction=0.0, test_fraction=0.0)
    dataset = prepare_dataset(video_dir, str(tmp_path), keypoints_dir=keypoints_dir, options=options, progress=False)
    train = dataset["train"]
    assert sorted(train["video_id"]) == ["good_duet", "good_solo"]
    rows = {row["video_id"]: row for row in train}
    assert rows["good_duet"]["labels"] == ["acoustic_guitar", "violin"] and rows["good_duet"]["kind"] == "duet"
    assert rows["good_solo"]["labels"] == ["violin"] and rows["good_solo"]["kind"] == "solo"
    solo = rows["good_solo"]
    waveform, rate = read_audio(str(tmp_path), solo)
    assert rate == 11025 and abs(len(waveform) / rate - 7.0) < 0.1
    spectrum = np.abs(np.fft.rfft(waveform))
    assert abs(np.argmax(spectrum) * rate / len(waveform) - 440) < 5  # resampled, not sped up
    assert solo["fps"] == 8.0 and abs(solo["num_frames"] - 56) <= 1
    assert read_frames(str(tmp_path), solo, [0, solo["num_frames"] - 1]).shape == (2, 256, 341, 3)
    pose = read_pose(str(tmp_path), solo)
    assert pose.shape == (2, 70, 68, 3) and solo["pose_fps"] == 10.0
    assert pose[0, :, :, 2].min() > 0 and pose[1].max() == 0  # one person, normalised coordinates
    assert 0 <= pose[0, :, :, :2].min() and pose[0, :, :, :2].max() <= 1
    assert rows["good_duet"]["pose_path"] == ""

    report = json.load(open(tmp_path / "report.json"))
    reasons = {item["video_id"]: item["reason"] for item in report["skipped"]}
    assert set(reasons) == {"too_short", "silent", "no_audio", "corrupt"}
    assert "too short" in reasons["too_short"] and "silent" in reasons["silent"]
    assert "no audio track" in reasons["no_audio"] and "Cannot decode" in reasons["corrupt"]
    assert report["videos_found"] == 6 and report["videos_prepared"] == 2
    assert load_prepared(str(tmp_path))["train"].num_rows == 2


def test_an_interrupted_prepare_resumes_without_redoing_finished_videos(videos, tmp_path):
    video_dir, _ = videos
    options = PrepareOptions(val_fraction=0.0, test_fraction=0.0)
    assert prepare_dataset(video_dir, str(tmp_path), options=options, limit=3, progress=False) is None
    done = [json.loads(line)["video_id"] for line in open(tmp_path / "progress.jsonl")]
    assert len(done) == 3 and not (tmp_path / "dataset").exists()
    finished = [v for v in done if (tmp_path / "media" / v).is_dir()]
    stamps = {v: os.stat(tmp_path / "media" / v / "audio.wav").st_mtime_ns for v in finished}
    # a crash in the middle of a video leaves a temporary folder and maybe a cut progress line
    (tmp_path / "media" / ".tmp-good_duet-deadbeef").mkdir()
    with open(tmp_path / "progress.jsonl", "a") as f:
        f.write('{"video_id": "good_du')
    dataset = prepare_dataset(video_dir, str(tmp_path), options=options, progress=False)
    assert sorted(dataset["train"]["video_id"]) == ["good_duet", "good_solo"]
    for video_id, stamp in stamps.items():
        assert os.stat(tmp_path / "media" / video_id / "audio.wav").st_mtime_ns == stamp, f"{video_id} was redone"
    assert not any(name.startswith(".tmp-") for name in os.listdir(tmp_path / "media"))


def test_split_rules():
    options = PrepareOptions(seed=0)
    ids = [f"video{i:04d}" for i in range(2000)]
    splits = [assign_split(i, options) for i in ids]
    assert abs(splits.count("test") / 2000 - 0.1) < 0.03 and abs(splits.count("val") / 2000 - 0.1) < 0.03
    assert splits == [assign_split(i, options) for i in ids]  # stable
    assert splits != [assign_split(i, PrepareOptions(seed=1)) for i in ids]
    authors = authors_split()
    assert len(authors) == 840 + 211
    first_train = open(os.path.join(os.path.dirname(__file__), "..", "src", "tribert_hf", "data", "lists", "music21_train.csv")).readline().strip()
    assert assign_split(first_train, PrepareOptions(split_rule="authors")) == "train"
    assert assign_split("not-a-music21-id", PrepareOptions(split_rule="authors")) == "test"
    with pytest.raises(ValueError, match="split_rule"):
        assign_split("x", PrepareOptions(split_rule="random"))


def test_unknown_class_folders_are_refused(tmp_path):
    (tmp_path / "kazoo").mkdir()
    with pytest.raises(ValueError, match="unknown class"):
        find_videos(str(tmp_path), PrepareOptions().classes)
    with pytest.raises(FileNotFoundError, match="Video folder not found"):
        find_videos(str(tmp_path / "missing"), PrepareOptions().classes)


@pytest.mark.slow
def test_command_line(videos, tmp_path):
    video_dir, keypoints_dir = videos
    command = [sys.executable, "-m", "tribert_hf.cli", "prepare", video_dir, str(tmp_path / "out"), "--keypoints-dir", keypoints_dir, "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Prepared dataset in" in result.stdout and "report.json" in result.stdout
    result = subprocess.run([sys.executable, "-m", "tribert_hf.cli", "prepare", str(tmp_path / "nope"), str(tmp_path / "o2")], capture_output=True, text=True)
    assert result.returncode == 2 and "Video folder not found" in result.stderr

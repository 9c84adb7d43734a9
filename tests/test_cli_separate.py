"""`tribert separate` / `tribert evaluate` (tribert_hf.pipelines) with a tiny random checkpoint.

Media: synthetic music videos (tribert_hf.data.synthetic) encoded with FFmpeg, their keypoints written as AlphaPose
JSON. The checkpoint's feature extractor uses 4095-sample segments (0.37 s), so a 2-s mixture is 7 segments.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import make_tiny_config

from tribert_hf import TriBertFeatureExtractor, TriBertForPreTraining, TriBertProcessor, TriBertVideoProcessor, separate
from tribert_hf.cli import main
from tribert_hf.data import read_wav, write_wav
from tribert_hf.data.synthetic import make_synthetic_video
from tribert_hf.media import VisualClip
from tribert_hf.processing_tribert import frame_window
from tribert_hf.pipelines import SegmentConditioner, SourceSpec, load_checkpoint, segment_starts, separate_mixture


LABELS = {0: "violin", 1: "trumpet", 2: "acoustic_guitar", 3: "flute", 4: "cello"}
SEGMENT = 4095
RATE = 11025
INPUT_RATE = 22050  # the test media are at 22050 Hz: the outputs must come back at the model's 11025 Hz


def _has_video_support():
    if shutil.which("ffmpeg") is None:
        return False
    try:
        from tribert_hf.media import load_torchcodec

        load_torchcodec()
        return True
    except ImportError:
        return False


needs_video = pytest.mark.skipif(not _has_video_support(), reason="needs the system FFmpeg and torchcodec")


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: a tiny checkpoint, synthetic videos, AlphaPose JSON
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint")
    zero = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    config = make_tiny_config(
        vision_config={**zero, "segmentation_dropout": 0.0, "mask_probability": 0.0}, pose_config=zero,
        audio_config=zero, co_attention_dropout=0.0, separation_num_downs=3, separation_base_channels=4,
        separation_fusion_heads=2, id2label=LABELS,
    )  # fmt: skip
    torch.manual_seed(0)
    TriBertForPreTraining(config).save_pretrained(path)
    processor = TriBertProcessor(
        TriBertFeatureExtractor(num_samples=SEGMENT, hop_length=128, num_frequency_bins=32),
        TriBertVideoProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        num_pose_frames=16,
    )  # fmt: skip
    processor.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(checkpoint_dir):
    return load_checkpoint(checkpoint_dir, "cpu")


def write_video(path, frames, fps, audio=None, rate=INPUT_RATE):
    """Frames `(N, H, W, 3)` uint8 (+ mono audio) -> an H.264 (+ AAC) mp4 with FFmpeg."""
    frames = np.asarray(frames, dtype=np.uint8)
    command = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{frames.shape[2]}x{frames.shape[1]}", "-r", str(fps), "-i", "-"]
    if audio is not None:
        wav = f"{path}.wav"
        write_wav(wav, audio, rate)
        command += ["-i", wav, "-c:a", "aac"]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-shortest", str(path)]
    subprocess.run(command, input=frames.tobytes(), check=True)


def write_alphapose(path, pose, width, height):
    """Prepared-format keypoints `(persons, frames, 68, 3)` -> AlphaPose results (halpe68 layout, tracked)."""
    detections = []
    for person in range(pose.shape[0]):
        for frame in range(pose.shape[1]):
            joints = pose[person, frame]
            if not (joints[:, 2] > 0).any():
                continue
            pixels = np.stack([joints[:, 0] * width, joints[:, 1] * height, joints[:, 2]], axis=1)
            detections.append({"image_id": f"{frame}.jpg", "category_id": 1, "keypoints": pixels.ravel().tolist(), "score": 2.0, "idx": person})
    with open(path, "w") as f:
        json.dump(detections, f)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Two solo clips, their mixture (WAV at 22050 Hz), a duet video with its keypoints (24 fps, 2 s)."""
    if not _has_video_support():
        pytest.skip("needs the system FFmpeg and torchcodec")
    root = tmp_path_factory.mktemp("media")
    settings = {"duration": 2.0, "sampling_rate": INPUT_RATE, "fps": 24.0, "pose_fps": 24.0, "frame_size": 96}
    solos = [make_synthetic_video("train", index, **settings) for index in (0, 1)]
    duet = make_synthetic_video("train", 3, **settings)
    assert len(duet.labels) == 2 and all(len(v.labels) == 1 for v in solos)
    paths = {"root": root}
    for name, video in (("a", solos[0]), ("b", solos[1])):
        paths[name] = str(root / f"{name}.mp4")
        write_video(paths[name], video.frames, 24, video.waveform)
        paths[f"{name}.json"] = str(root / f"{name}.json")
        write_alphapose(paths[f"{name}.json"], video.pose, 96, 96)
    paths["mixture"] = str(root / "mixture.wav")
    write_wav(paths["mixture"], solos[0].waveform + solos[1].waveform, INPUT_RATE)
    paths["duet"] = str(root / "duet.mp4")
    write_video(paths["duet"], duet.frames, 24, duet.waveform)
    paths["duet.json"] = str(root / "duet.json")
    write_alphapose(paths["duet.json"], duet.pose, 96, 96)
    paths["duet_labels"] = duet.labels
    return paths


def mixture_at_model_rate(path):
    waveform, rate = read_wav(path)
    import torchaudio

    return torchaudio.functional.resample(torch.from_numpy(waveform), rate, RATE).numpy()


def check_outputs(out, num_sources, mixture, figure=True):
    """The files of one separation: WAVs of the mixture's length at 11025 Hz, residual, PNG, JSON."""
    summary = json.load(open(out / "separation.json"))
    assert len(summary["sources"]) == num_sources == len(summary["predicted_labels"])
    total = np.zeros_like(mixture)
    for index, source in enumerate(summary["sources"], start=1):
        assert source["file"] == f"source-{index}-{source['label']}.wav" and source["label"] in LABELS.values()
        waveform, rate = read_wav(str(out / source["file"]))
        assert rate == RATE == summary["sampling_rate"] and waveform.shape == mixture.shape
        assert np.isfinite(waveform).all()
        total += waveform
    residual, _ = read_wav(str(out / "residual.wav"))
    np.testing.assert_allclose(total + residual, mixture, atol=1e-5)
    assert summary["num_samples"] == len(mixture) and abs(summary["duration"] - len(mixture) / RATE) < 1e-9
    assert summary["num_segments"] == len(segment_starts(len(mixture), SEGMENT, 0.25))
    if figure:
        assert summary["figure"] == "separation.png"
        assert open(out / "separation.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    return summary


# ---------------------------------------------------------------------------------------------------------------
# separate
# ---------------------------------------------------------------------------------------------------------------


@needs_video
def test_mixture_and_two_clips_give_two_wavs(checkpoint_dir, media, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([
        "separate", checkpoint_dir, "--mixture", media["mixture"], "--clips", media["a"], media["b"],
        "--keypoints", media["a.json"], media["b.json"], "-o", str(out), "--device", "cpu", "--quiet",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    mixture = mixture_at_model_rate(media["mixture"])
    assert len(mixture) == round(2.0 * RATE)
    summary = check_outputs(out, 2, mixture)
    assert summary["mode"] == "mix-and-separate" and summary["num_segments"] == 7
    assert [s["clip"] for s in summary["sources"]] == [media["a"], media["b"]]
    assert "source-1-" in captured.out and "residual.wav" in captured.out


@needs_video
def test_duet_video_with_keypoints_is_split_per_person(checkpoint_dir, media, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--keypoints", media["duet.json"], "-o", str(out), "--quiet", "--no-figure"]
    assert main(["separate", checkpoint_dir, "--video", media["duet"], *args]) == 0
    from tribert_hf.media import load_audio

    summary = check_outputs(out, 2, load_audio(media["duet"], RATE), figure=False)
    assert summary["mode"] == "per-person" and summary["persons_detected"] == 2
    assert [s["person"] for s in summary["sources"]] == [0, 1]
    left, right = (s["crop_box"] for s in summary["sources"])
    assert left[0] < right[0] and all(b[2] - b[0] == b[3] - b[1] for b in (left, right))  # square crops, left first

    # Without keypoints (or with --no-person-split) the whole video is one source; the residual keeps the rest.
    out = tmp_path / "whole"
    assert main(["separate", checkpoint_dir, "--video", media["duet"], "-o", str(out), "--quiet", "--no-figure"]) == 0
    summary = json.load(open(out / "separation.json"))
    assert summary["mode"] == "single-source" and len(summary["sources"]) == 1 and summary["figure"] is None
    estimate, _ = read_wav(str(out / summary["sources"][0]["file"]))
    residual, _ = read_wav(str(out / "residual.wav"))
    np.testing.assert_allclose(estimate + residual, load_audio(media["duet"], RATE), atol=1e-5)
    assert "whole video is one source" in capsys.readouterr().err


@needs_video
def test_long_input_is_conditioned_per_segment(checkpoint, media, tmp_path):
    # 3 copies of the mixture: 6 s, 22 segments; a still image as the second clip (no decoder needed for it).
    mixture = mixture_at_model_rate(media["mixture"])
    long = np.concatenate([mixture] * 3)
    write_wav(str(tmp_path / "long.wav"), long, RATE)
    image = tmp_path / "still.png"
    from PIL import Image

    Image.fromarray(VisualClip(media["b"]).frames_at([0.5])[0]).save(image)
    result = separate_mixture(checkpoint, str(tmp_path / "long.wav"), [media["a"], str(image)], batch_size=8)
    expected = segment_starts(len(long), SEGMENT, 0.25)
    assert len(expected) > 3 and result.segment_starts == expected  # the conditioning was asked once per segment
    assert result.estimates.shape == (2, len(long)) and result.residual.shape == (len(long),)
    np.testing.assert_allclose(result.estimates.sum(0) + result.residual, long, atol=1e-5)

    # Each segment sees the frames of its own time window: the video clip's inputs change, the still image's do not.
    conditioner = SegmentConditioner([SourceSpec(VisualClip(media["a"])), SourceSpec(VisualClip(str(image)))], checkpoint.processor)
    first, last = conditioner(expected[0], SEGMENT), conditioner(expected[-1], SEGMENT)
    times = conditioner.frame_times(expected[-1], SEGMENT)
    assert abs(times.mean() - (expected[-1] + SEGMENT / 2) / RATE) < 0.2
    assert not torch.equal(first["pixel_values"][0], last["pixel_values"][0])
    assert torch.equal(first["pixel_values"][1], last["pixel_values"][1])


def test_separate_with_per_segment_conditioning_matches_static_inputs(checkpoint):
    """`separate(conditioning=...)` is called once per segment with its start, and equals the static path when the
    conditioning does not change."""
    model, fe = checkpoint.model, checkpoint.feature_extractor
    config = model.config
    generator = torch.Generator().manual_seed(0)
    static = {
        "pixel_values": torch.randn(2, 3, 3, 32, 32, generator=generator),
        "pose_keypoints": torch.rand(2, 2, 16, 68, 3, generator=generator),
        "pose_mask": torch.tensor([[1, 0], [1, 1]]),
    }
    assert config.pose_config.num_pose_frames == 16
    waveform = 0.1 * torch.randn(3 * SEGMENT + 100, generator=generator)
    calls = []

    def conditioning(start, num_samples):
        calls.append((start, num_samples))
        return static

    direct = separate(model, waveform, fe, static["pixel_values"], static["pose_keypoints"], pose_mask=static["pose_mask"], batch_size=3)
    per_segment = separate(model, waveform, fe, conditioning=conditioning, batch_size=3)
    torch.testing.assert_close(per_segment, direct, atol=1e-6, rtol=0)
    assert calls == [(s, SEGMENT) for s in segment_starts(len(waveform), SEGMENT, 0.25)] and len(calls) > 3


def test_a_video_file_and_decoded_frames_get_the_same_frames_at_the_clips_edges(checkpoint):
    """A segment near the start or the end of a video file is conditioned on the frames a training crop of the same
    window would get (`frame_window`: the window shifted inside the clip, not clamped frame by frame)."""
    processor = checkpoint.processor
    rate, fps, frames = processor.feature_extractor.sampling_rate, 8.0, 20  # a 2.5-s clip at 8 fps
    conditioner = SegmentConditioner([], processor, fps=fps)
    window = SEGMENT / rate
    for start in (0, SEGMENT // 8, int(2.5 * rate) - SEGMENT, int(2.5 * rate) - SEGMENT // 2):
        indices = np.rint(conditioner.frame_times(start, SEGMENT, duration=frames / fps) * fps).astype(int)
        video = np.arange(frames)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)  # frame k holds k
        picked = processor._pick_frames(video, 0, start / rate, window, fps)[:, 0, 0, 0]
        np.testing.assert_array_equal(indices, picked)
        assert indices.min() >= 0 and indices.max() <= frames - 1 and len(set(indices.tolist())) == len(indices)
    # a 2.55-s clip at 8 fps has the 21 frames at 0, 1/8, ... 2.5 s (media.iter_frames, what `tribert prepare` keeps)
    end = conditioner.frame_times(int(2.55 * rate) - SEGMENT // 2, SEGMENT, duration=2.55)
    assert np.rint(end * fps).astype(int).max() == 20
    with pytest.raises(ValueError, match="at least one frame"):
        frame_window(3, 3, 1, available=0)


def test_the_conditioning_frames_come_at_the_checkpoints_training_frame_rate(checkpoint_dir, tmp_path, capsys):
    """A checkpoint trained on 4-fps frames (its processor says so) is conditioned on frames 1/4 s apart, unless
    --fps says otherwise; separation.json records the rate used."""
    from PIL import Image

    from tribert_hf.pipelines import training_frame_rate

    folder = tmp_path / "checkpoint"
    shutil.copytree(checkpoint_dir, folder)
    processor = TriBertProcessor.from_pretrained(folder)
    processor.video_processor.frame_rate = 4.0
    processor.save_pretrained(folder)
    checkpoint = load_checkpoint(folder, "cpu")
    assert training_frame_rate(checkpoint.processor) == 4.0 and training_frame_rate(load_checkpoint(checkpoint_dir, "cpu").processor) == 8.0
    start = 3 * RATE - SEGMENT // 2  # the window's centre: 3 s
    np.testing.assert_allclose(SegmentConditioner([], checkpoint.processor).frame_times(start, SEGMENT), [2.75, 3.0, 3.25])
    np.testing.assert_allclose(SegmentConditioner([], checkpoint.processor, fps=8.0).frame_times(start, SEGMENT), [2.875, 3.0, 3.125])

    image, mixture = tmp_path / "still.png", tmp_path / "mix.wav"
    Image.fromarray(np.full((40, 40, 3), 90, dtype=np.uint8)).save(image)
    write_wav(str(mixture), 0.1 * np.sin(np.arange(8000) / 5.0).astype(np.float32), RATE)
    for extra, expected in (([], 4.0), (["--fps", "10"], 10.0)):
        out = tmp_path / f"out-{expected:g}"
        argv = ["separate", str(folder), "--mixture", str(mixture), "--clips", str(image), "-o", str(out), "--quiet", "--no-figure"]
        assert main(argv + extra) == 0
        assert json.load(open(out / "separation.json"))["fps"] == expected
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------------------------
# Clear errors: exit code 2, a message naming the problem, no traceback
# ---------------------------------------------------------------------------------------------------------------


def run_error(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


@needs_video
def test_softmax_masks_need_two_or_more_sources(checkpoint_dir, media, tmp_path, capsys):
    """A checkpoint whose masks share the mixture out (mask_activation="softmax") gives every bin to one source when
    there is one: separating a whole video as one source, or a mixture with one clip, is refused with a message that
    says so; per player, the estimates add up to the mixture (the masks sum to 1, the residual is silence)."""
    softmax_dir = tmp_path / "softmax"
    shutil.copytree(checkpoint_dir, softmax_dir)
    config = json.load(open(softmax_dir / "config.json"))
    json.dump({**config, "mask_activation": "softmax"}, open(softmax_dir / "config.json", "w"))
    err = run_error(["separate", str(softmax_dir), "--video", media["duet"], "-o", str(tmp_path / "whole"), "--quiet"], capsys)
    assert "separated as one source" in err and "mask_activation='softmax'" in err and "no keypoint file" in err
    args = ["--mixture", media["mixture"], "--clips", media["a"], "-o", str(tmp_path / "one"), "--quiet"]
    err = run_error(["separate", str(softmax_dir), *args], capsys)
    assert "with one source the mask is 1 everywhere" in err

    out = tmp_path / "players"
    args = ["--video", media["duet"], "--keypoints", media["duet.json"], "-o", str(out), "--quiet", "--no-figure"]
    assert main(["separate", str(softmax_dir), *args]) == 0
    from tribert_hf.media import load_audio

    mixture = load_audio(media["duet"], RATE)
    summary = check_outputs(out, 2, mixture, figure=False)
    assert summary["mode"] == "per-person"
    estimates = [read_wav(str(out / source["file"]))[0] for source in summary["sources"]]
    energy = [float((estimate**2).sum() / (mixture**2).sum()) for estimate in estimates]
    assert all(0.05 < e < 0.95 for e in energy), energy  # neither is the mixture nor silence ...
    np.testing.assert_allclose(estimates[0] + estimates[1], mixture, atol=2e-3)  # ... that share out the mixture


def test_checkpoint_errors(checkpoint_dir, tmp_path, capsys):
    mixture = tmp_path / "mix.wav"
    write_wav(str(mixture), 0.1 * np.sin(np.arange(8000) / 5.0).astype(np.float32), RATE)
    args = ["--mixture", str(mixture), "--clips", str(mixture), "-o", str(tmp_path / "out"), "--quiet"]
    err = run_error(["separate", str(tmp_path / "missing"), *args], capsys)
    assert "Checkpoint folder not found" in err
    (tmp_path / "empty").mkdir()
    err = run_error(["separate", str(tmp_path / "empty"), *args], capsys)
    assert "not a TriBERT checkpoint" in err and "config.json" in err
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    err = run_error(["separate", str(tmp_path / "bert"), *args], capsys)
    assert "not a TriBERT checkpoint" in err and "'bert'" in err
    (tmp_path / "noweights").mkdir()
    shutil.copy(os.path.join(checkpoint_dir, "config.json"), tmp_path / "noweights")
    err = run_error(["separate", str(tmp_path / "noweights"), *args], capsys)
    assert "no weights" in err
    from tribert_hf import TriBertConfig, TriBertModel

    TriBertModel(TriBertConfig.from_pretrained(checkpoint_dir)).save_pretrained(tmp_path / "encoder")
    err = run_error(["separate", str(tmp_path / "encoder"), *args], capsys)
    assert "no separation head" in err
    err = run_error(["separate", checkpoint_dir, *args, "--device", "tpu9"], capsys)
    assert "Unknown device 'tpu9'" in err
    err = run_error(["evaluate", str(tmp_path / "empty"), "synthetic:tiny", "-o", str(tmp_path / "eval")], capsys)
    assert "not a TriBERT checkpoint" in err


def test_audio_errors(checkpoint_dir, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    write_wav(str(silent), np.zeros(8000, dtype=np.float32), RATE)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    image = tmp_path / "clip.png"
    from PIL import Image

    Image.fromarray(np.full((40, 40, 3), 128, dtype=np.uint8)).save(image)
    common = ["--clips", str(image), "-o", str(tmp_path / "out"), "--quiet"]
    err = run_error(["separate", checkpoint_dir, "--mixture", str(tmp_path / "nope.wav"), *common], capsys)
    assert "No such" in err and "nope.wav" in err
    err = run_error(["separate", checkpoint_dir, "--mixture", str(silent), *common], capsys)
    assert "silent" in err
    err = run_error(["separate", checkpoint_dir, "--mixture", str(corrupt), *common], capsys)
    assert "Cannot read the WAV file" in err and "corrupt" in err
    broken_image = tmp_path / "broken.png"
    broken_image.write_bytes(b"not a png")
    mixture = tmp_path / "mix.wav"
    write_wav(str(mixture), 0.1 * np.sin(np.arange(8000) / 5.0).astype(np.float32), RATE)
    err = run_error(["separate", checkpoint_dir, "--mixture", str(mixture), "--clips", str(broken_image), "-o", str(tmp_path / "o")], capsys)
    assert "Cannot read the image" in err
    err = run_error(["separate", checkpoint_dir, "--mixture", str(mixture), "--clips", str(image), "--keypoints", "a.json", "b.json", "-o", str(tmp_path / "o")], capsys)
    assert "2 keypoint files for 1 clips" in err


@needs_video
def test_media_and_keypoint_errors(checkpoint_dir, media, tmp_path, capsys):
    root = media["root"]
    no_audio = str(root / "no_audio.mp4")
    frames = np.zeros((20, 64, 64, 3), dtype=np.uint8)
    write_video(no_audio, frames, 10)
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a real video" * 50)
    out = ["-o", str(tmp_path / "out"), "--quiet"]
    err = run_error(["separate", checkpoint_dir, "--video", no_audio, *out], capsys)
    assert "has no audio track" in err
    err = run_error(["separate", checkpoint_dir, "--video", str(corrupt), *out], capsys)
    assert "Cannot decode" in err and "corrupt" in err
    err = run_error(["separate", checkpoint_dir, "--mixture", media["mixture"], "--clips", str(corrupt), *out], capsys)
    assert "Cannot decode" in err and "corrupt.mp4" in err
    err = run_error(["separate", checkpoint_dir, "--mixture", str(corrupt), "--clips", media["a"], *out], capsys)
    assert "Cannot decode" in err
    err = run_error(["separate", checkpoint_dir, "--mixture", media["mixture"], "--clips", media["mixture"], *out], capsys)
    assert "has no video stream" in err

    # Keypoints of a longer video (frames beyond the clip), and of a larger resolution.
    pose = np.zeros((1, 200, 68, 3), dtype=np.float32)
    pose[0, :, :, :2], pose[0, :, :, 2] = 0.5, 0.9
    write_alphapose(str(root / "long.json"), pose, 96, 96)
    err = run_error(["separate", checkpoint_dir, "--video", media["duet"], "--keypoints", str(root / "long.json"), *out], capsys)
    assert "does not match" in err and "up to frame 199" in err and "48 frames" in err
    write_alphapose(str(root / "big.json"), pose[:, :40], 1920, 1080)
    err = run_error(["separate", checkpoint_dir, "--video", media["duet"], "--keypoints", str(root / "big.json"), *out], capsys)
    assert "does not match" in err and "outside the 96x96 frame" in err
    # Keypoints covering only the start of the video are accepted, with a note.
    from tribert_hf.pipelines import load_clip_keypoints

    write_alphapose(str(root / "short.json"), pose[:, :10], 96, 96)
    notes = []
    assert load_clip_keypoints(str(root / "short.json"), VisualClip(media["duet"]), notes=notes).shape == (2, 48, 68, 3)
    assert len(notes) == 1 and "frames 0-9 only, of the 48 frames" in notes[0]
    (root / "bad.json").write_text("{not json")
    err = run_error(["separate", checkpoint_dir, "--video", media["duet"], "--keypoints", str(root / "bad.json"), *out], capsys)
    assert "not valid JSON" in err


@pytest.mark.slow
@needs_video
def test_console_script_exit_code(checkpoint_dir, tmp_path):
    """The real command line (a fresh interpreter): exit code 2 and one line, no traceback."""
    corrupt = tmp_path / "garbage.mp4"
    corrupt.write_bytes(b"garbage" * 100)
    command = [sys.executable, "-m", "tribert_hf.cli", "separate", checkpoint_dir, "--video", str(corrupt), "-o", str(tmp_path / "o")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("tribert separate: error: Cannot decode")


# ---------------------------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------------------------


def test_evaluate_on_synthetic_tiny(checkpoint_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["evaluate", checkpoint_dir, "synthetic:tiny", "--split", "val", "--max-mixtures", "2", "-o", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    metrics = json.load(open(out / "metrics.json"))
    assert metrics["num_mixtures"] + metrics["num_skipped"] == 2 and metrics["num_mixtures"] >= 1
    assert metrics["num_mix"] == 2 and metrics["backend"] == "fast" and metrics["split"] == "val"
    for part in ("model", "mixture", "improvement"):
        assert set(metrics[part]) == {"sdr", "sir", "sar"}
        assert all(isinstance(v, float) and abs(v) < 200 for v in metrics[part].values()), metrics[part]
    assert abs(metrics["improvement"]["sdr"] - (metrics["model"]["sdr"] - metrics["mixture"]["sdr"])) < 1e-9
    # the same mixtures thresholded (the paper's protocol) and with the ideal masks (the ceiling of the chain)
    for part in ("threshold", "ideal_binary_mask", "ideal_ratio_mask"):
        assert set(metrics[part]) == {"sdr", "sir", "sar"}
    assert metrics["ideal_binary_mask"]["sdr"] > metrics["mixture"]["sdr"] + 5
    assert metrics["ideal_ratio_mask"]["sdr"] > metrics["mixture"]["sdr"] + 5
    assert len(metrics["mixtures"]) == 2 and all(len(m["videos"]) == 2 for m in metrics["mixtures"])
    table = open(out / "metrics.md").read()
    assert "| model |" in table and "| mixture (floor) |" in table and f"{metrics['model']['sdr']:.2f}" in table
    assert f"| ideal binary mask (ceiling) | {metrics['ideal_binary_mask']['sdr']:.2f} |" in table
    assert "| mixture (floor) |" in captured.out
    assert open(out / "example.png", "rb").read(4) == b"\x89PNG"

    # Deterministic: the same pairs and scores again, here through the library with a dataset folder and mir_eval.
    from tribert_hf.data import load_synthetic_music
    from tribert_hf.pipelines import evaluate_checkpoint

    root, _ = load_synthetic_music("tiny", progress=False)
    again = evaluate_checkpoint(checkpoint_dir, root, max_mixtures=2, backend="mir_eval", device="cpu")
    assert [m["videos"] for m in again["mixtures"]] == [m["videos"] for m in metrics["mixtures"]]
    for ours, theirs in zip(again["mixtures"], metrics["mixtures"]):
        assert ours["valid"] == theirs["valid"]
        if ours["valid"]:  # a centre crop where one source rests is skipped (Sound-of-Pixels' rule)
            assert abs(ours["sdr"] - theirs["sdr"]) < 1e-3 and abs(ours["sdr_mixture"] - theirs["sdr_mixture"]) < 1e-3

    err = run_error(["evaluate", checkpoint_dir, "synthetic:tiny", "--split", "nope", "-o", str(out)], capsys)
    assert "no split 'nope'" in err
    err = run_error(["evaluate", checkpoint_dir, str(tmp_path / "missing"), "-o", str(out)], capsys)
    assert "Dataset folder not found" in err

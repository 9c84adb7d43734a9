"""Bad inputs across the public API (issue 16): each gets a clear error naming the problem and the fix, or the
right result. One parametrised test per class of input; the contract itself is `docs/input_contract.md`."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import make_inputs, make_tiny_config

from tribert_hf import (
    TriBertFeatureExtractor,
    TriBertForSourceSeparation,
    TriBertModel,
    TriBertProcessor,
    TriBertVideoProcessor,
    separate,
)
from tribert_hf.cli import main as cli_main
from tribert_hf.data import write_wav


SR = 11025
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def fe():
    return TriBertFeatureExtractor(num_samples=4095, hop_length=128, num_frequency_bins=32)


@pytest.fixture(scope="module")
def processor(fe):
    video = TriBertVideoProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return TriBertProcessor(fe, video, num_pose_frames=16)


def noise(samples=5000, seed=0, scale=0.3):
    return (scale * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


def spectrogram(fe, audio, **kwargs):
    return fe(audio, sampling_rate=kwargs.pop("sampling_rate", SR), return_tensors="pt", **kwargs)["audio_spectrogram"]


# ---------------------------------------------------------------------------------------------------------------
# Audio: layout, dtype, values, rate (feature extractor and processor)
# ---------------------------------------------------------------------------------------------------------------


BAD_AUDIO = {
    "soundfile (samples, channels)": (lambda: np.zeros((33075, 2), np.float32), {}, "(samples, channels) layout"),
    "stereo of a list": (lambda: [np.zeros((2, 5000), np.float32)], {}, "Stereo audio must be mixed down"),
    "channel_axis on the wrong axis": (lambda: np.zeros((2, 5000), np.float32), {"channel_axis": -1}, "other axis"),
    "bool samples": (lambda: np.ones(5000, bool), {}, "bool samples are not audio"),
    "int64 samples": (lambda: np.ones(5000, np.int64), {}, "int64 is no PCM format"),
    "complex samples": (lambda: np.ones(5000, np.complex64), {}, "no sample format"),
    "NaN sample": (lambda: np.where(np.arange(5000) == 17, np.nan, 0.1).astype(np.float32), {}, "first at sample 17"),
    "inf in a batch": (lambda: np.stack([noise(), np.full(5000, np.inf, np.float32)]), {}, "Clip 1 contains NaN or infinite"),
    "finite but huge": (lambda: np.full(5000, 3e38, np.float32), {}, "overflows float32"),
    "huge float64": (lambda: np.full(5000, 1e300), {}, "overflows float32"),
    "(0, N) batch": (lambda: np.zeros((0, 5000), np.float32), {}, "empty batch"),
    "None in a batch": (lambda: [noise(), None], {}, "Clip 1 is None"),
    "string clip in a batch": (lambda: [noise(), "a.wav"], {}, "Clip 1 is a str"),
    "fractional rate": (lambda: noise(), {"sampling_rate": 11025.5, "resample": True}, "whole number of Hz"),
    "NaN rate": (lambda: noise(), {"sampling_rate": float("nan"), "resample": True}, "whole number of Hz"),
    "negative rate": (lambda: noise(), {"sampling_rate": -11025, "resample": True}, "whole number of Hz"),
    "bool rate": (lambda: noise(), {"sampling_rate": True, "resample": True}, "whole number of Hz"),
}


@pytest.mark.parametrize("case", list(BAD_AUDIO))
@pytest.mark.parametrize("entry", ["feature_extractor", "processor"])
def test_bad_audio_is_refused_with_the_fix(fe, processor, case, entry):
    make, kwargs, message = BAD_AUDIO[case]
    kwargs = {"sampling_rate": SR, **kwargs}
    call = fe if entry == "feature_extractor" else processor
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(").replace(")", r"\)")):
        call(make(), **kwargs)


PCM = np.round(noise(5000, seed=1) * 20000).astype(np.int16)
GOOD_AUDIO = {
    # name: (input, its float equivalent, kwargs)
    "int16 PCM": (PCM, PCM.astype(np.float32) / 32768, {}),
    "int32 PCM": (PCM.astype(np.int32) * 65536, PCM.astype(np.float32) / 32768, {}),
    "int8 PCM": ((PCM // 256).astype(np.int8), (PCM // 256).astype(np.float32) / 128, {}),
    "uint8 PCM": ((PCM // 256 + 128).astype(np.uint8), (PCM // 256).astype(np.float32) / 128, {}),
    "float16": (noise().astype(np.float16), noise().astype(np.float16).astype(np.float32), {}),
    "float64": (noise().astype(np.float64), noise(), {}),
    "(samples, channels) declared": (np.stack([noise(), -noise()], axis=1), np.zeros(5000, np.float32), {"channel_axis": -1}),
    "(channels, samples) declared": (np.stack([noise(), noise()]), noise(), {"channel_axis": 0}),
    "int16 stereo declared": (np.stack([PCM, PCM], axis=1), PCM.astype(np.float32) / 32768, {"channel_axis": 1}),
    "list of numbers": (noise(300).tolist(), noise(300), {}),
}


@pytest.mark.parametrize("case", list(GOOD_AUDIO))
@pytest.mark.parametrize("entry", ["feature_extractor", "processor"])
def test_other_sample_formats_give_the_float_result(fe, processor, case, entry):
    audio, expected, kwargs = GOOD_AUDIO[case]
    if entry == "processor":
        if case == "list of numbers":
            audio = [audio]  # the processor's lists are batches
        got = processor(audio, sampling_rate=SR, return_tensors="pt", **kwargs)["audio_spectrogram"]
    else:
        got = spectrogram(fe, audio, **kwargs)
    torch.testing.assert_close(got, spectrogram(fe, expected), atol=1e-6, rtol=1e-5)


def test_a_batch_of_two_rows_is_two_clips(fe):
    """The documented rule: a 2-d array is (batch, samples) unless `channel_axis` is given."""
    stereo = np.stack([noise(seed=1), noise(seed=2)])
    assert spectrogram(fe, stereo).shape[0] == 2
    assert spectrogram(fe, stereo, channel_axis=0).shape[0] == 1


def test_large_but_representable_amplitudes_are_accepted(fe):
    loud = noise() * 1e30
    out = spectrogram(fe, loud)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out / 1e30, spectrogram(fe, noise()), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Frames (video processor and processor)
# ---------------------------------------------------------------------------------------------------------------


FRAMES = np.random.default_rng(0).integers(0, 256, (4, 40, 48, 3), dtype=np.uint8)
BAD_FRAMES = {
    "normalised pixel values": ((FRAMES.astype(np.float32) - 128) / 64, "already normalised|Normalised `pixel_values`"),
    "values above 255": (FRAMES.astype(np.float32) * 2, r"in \[0, 255\]"),
    "NaN": (np.full((4, 40, 48, 3), np.nan, np.float32), "NaN or infinite"),
    "bool": (FRAMES > 128, "dtype torch.bool"),
    "no frames": (np.zeros((0, 40, 48, 3), np.uint8), "no frames"),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_bad_frames_are_refused(processor, case):
    frames, message = BAD_FRAMES[case]
    with pytest.raises(ValueError, match=message):
        processor.video_processor(frames, return_tensors="pt")
    with pytest.raises(ValueError, match=message):
        processor([noise()], videos=[frames], sampling_rate=SR, video_fps=8.0)


@pytest.mark.parametrize("scale", ["[0, 1]", "[0, 255]"])
def test_float_frames_give_the_uint8_result(processor, scale):
    vp = processor.video_processor
    floats = FRAMES.astype(np.float32) / (255.0 if scale == "[0, 1]" else 1.0)
    expected = vp(FRAMES.astype(np.float32), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(vp(floats, return_tensors="pt")["pixel_values"], expected, atol=1e-5, rtol=1e-5)
    uint8 = vp(FRAMES, return_tensors="pt")["pixel_values"]
    assert (vp(floats, return_tensors="pt")["pixel_values"] - uint8).abs().mean() < 0.02  # resize rounding only


@pytest.mark.parametrize("video_fps, message", [(float("nan"), "video_fps of clip 0"), (-8.0, "video_fps of clip 0"), ("8", "video_fps")])
def test_bad_frame_rates_are_refused(processor, video_fps, message):
    with pytest.raises(ValueError, match=message):
        processor([noise()], videos=[FRAMES], sampling_rate=SR, video_fps=video_fps)


def test_missing_video_in_a_batch_is_named(processor):
    with pytest.raises(ValueError, match=r"videos\[1\]"):
        processor([noise(), noise()], videos=[FRAMES, None], sampling_rate=SR)


# ---------------------------------------------------------------------------------------------------------------
# Keypoints (processor, load_keypoints)
# ---------------------------------------------------------------------------------------------------------------


def pose_array(frames=40):
    pose = np.zeros((2, frames, 68, 3), np.float32)
    pose[0, :, :, :2] = 0.5
    pose[0, :, :, 2] = 0.9
    return pose


def with_value(index, value):
    pose = pose_array()
    pose[index] = value
    return pose


BAD_POSE = {
    "NaN x of a confident joint": (with_value((0, 3, 7, 0), np.nan), "nan as x of person 0, frame 3, joint 7"),
    "NaN in an absent person": (with_value((1, 5, 2, 1), np.nan), "nan as y of person 1, frame 5, joint 2"),
    "inf confidence": (with_value((0, 0, 0, 2), np.inf), "inf as confidence"),
    "confidence above 1": (with_value((0, 0, 0, 2), 2.0), r"confidences in \[0, 2\]"),
    "pixel coordinates": (with_value((0, 1, 1, 0), 640.0), "fractions of the frame size"),
}


@pytest.mark.parametrize("case", list(BAD_POSE))
def test_bad_keypoints_are_refused(processor, case):
    pose, message = BAD_POSE[case]
    with pytest.raises(ValueError, match=message):
        processor([noise()], pose_keypoints=[pose], pose_fps=8.0, sampling_rate=SR)


@pytest.mark.parametrize("pose_fps", [float("nan"), -1.0])
def test_bad_pose_rates_are_refused(processor, pose_fps):
    with pytest.raises(ValueError, match="pose_fps of clip 0"):
        processor([noise()], pose_keypoints=[pose_array()], pose_fps=pose_fps, sampling_rate=SR)


def alphapose(tmp_path, text):
    path = tmp_path / "keypoints.json"
    path.write_text(text)
    return str(path)


def detection(image_id):
    return {"image_id": image_id, "category_id": 1, "keypoints": [10.0, 10.0, 0.9] * 26, "score": 2.0}


BAD_KEYPOINT_FILES = {
    "deeply nested": ("[" * 100_000 + "]" * 100_000, {}, "nested too deeply"),
    "frame 5,000,000 without num_frames": (json.dumps([detection("5000000.jpg")]), {}, "Pass `num_frames=`"),
    "absurd frame number": (json.dumps([detection("1" * 30 + ".jpg")]), {}, "not a frame index"),
}


@pytest.mark.parametrize("case", list(BAD_KEYPOINT_FILES))
def test_bad_keypoint_files_are_refused(tmp_path, case):
    from tribert_hf.pose.keypoints import load_keypoints

    text, kwargs, message = BAD_KEYPOINT_FILES[case]
    with pytest.raises(ValueError, match=message):
        load_keypoints(alphapose(tmp_path, text), frame_size=(100, 100), **kwargs)


def test_nan_in_a_keypoint_file_is_a_missing_joint(tmp_path):
    from tribert_hf.pose.keypoints import load_keypoints

    values = [50.0, 50.0, 0.9] * 26
    values[3] = float("nan")  # x of joint 1, confidence 0.9
    path = alphapose(tmp_path, json.dumps([{**detection("0.jpg"), "keypoints": values}]))
    pose = load_keypoints(path, frame_size=(100, 100))
    assert np.isfinite(pose).all() and (pose[0, 0, 1] == 0).all() and pose[0, 0, 0, 2] == np.float32(0.9)


def test_a_far_detection_with_num_frames_is_ignored(tmp_path):
    from tribert_hf.pose.keypoints import load_keypoints

    path = alphapose(tmp_path, json.dumps([detection("5000000.jpg"), detection("3.jpg")]))
    pose = load_keypoints(path, frame_size=(100, 100), num_frames=10)
    assert pose.shape == (2, 10, 68, 3) and pose[0, 3, 0, 2] > 0


# ---------------------------------------------------------------------------------------------------------------
# Model inputs and separate()
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return TriBertModel(make_tiny_config()).eval()


def _edit(name, index, value):
    def change(inputs):
        tensor = inputs[name].clone()
        tensor[index] = value
        return {**inputs, name: tensor}

    return change


BAD_MODEL_INPUTS = {
    "batch of 0": (lambda x: {k: v[:0] for k, v in x.items()}, "empty batch"),
    "wrong frame size": (lambda x: {**x, "pixel_values": torch.randn(2, 3, 3, 48, 48)}, "frames must be 32 x 32"),
    "wrong number of pose frames": (lambda x: {**x, "pose_keypoints": torch.rand(2, 2, 8, 68, 3)}, "must have 16 frames"),
    "one audio frame": (lambda x: {**x, "audio_spectrogram": torch.rand(2, 1, 32, 1)}, "needs at least 4"),
    "pose_mask 2": (_edit("pose_mask", (0, 1), 2), r"1 \(person present\) and 0 \(absent\) only, got \[2.0\]"),
    "pose_mask -1": (_edit("pose_mask", (1, 0), -1), r"got \[-1.0\] \(example 1\)"),
    "NaN pixel": (_edit("pixel_values", (1, 0, 0, 0, 0), float("nan")), r"`pixel_values` contains NaN.*example 1"),
    "NaN keypoint of a present person": (_edit("pose_keypoints", (0, 1, 2, 3, 0), float("nan")), "example 0, person 1"),
    "inf spectrogram": (_edit("audio_spectrogram", (1, 0, 0, 0), float("inf")), "`audio_spectrogram` contains NaN"),
    "negative spectrogram": (_edit("audio_spectrogram", (0, 0, 0, 0), -1.0), "non-negative"),
}


@pytest.mark.parametrize("case", list(BAD_MODEL_INPUTS))
def test_bad_model_inputs_are_named(tiny_model, case):
    change, message = BAD_MODEL_INPUTS[case]
    inputs = change(make_inputs(tiny_model.config))
    with pytest.raises(ValueError, match=message), torch.no_grad():
        tiny_model(**inputs)


def test_nan_in_an_absent_person_is_ignored(tiny_model):
    inputs = make_inputs(tiny_model.config)  # example 1 has person 1 absent
    poisoned = inputs["pose_keypoints"].clone()
    poisoned[1, 1] = float("nan")
    with torch.no_grad():
        clean = tiny_model(**inputs)
        got = tiny_model(**{**inputs, "pose_keypoints": poisoned})
    for name in ("vision_pooler_output", "pose_pooler_output", "audio_pooler_output"):
        assert torch.isfinite(got[name]).all()
        torch.testing.assert_close(got[name], clean[name])


@pytest.fixture(scope="module")
def separator():
    config = make_tiny_config(separation_num_downs=3, separation_base_channels=4, separation_fusion_heads=2)
    torch.manual_seed(0)
    model = TriBertForSourceSeparation(config).eval()
    inputs = make_inputs(config, batch_size=2)
    conditioning = {
        "pixel_values": inputs["pixel_values"], "pose_keypoints": inputs["pose_keypoints"], "pose_mask": inputs["pose_mask"],
    }  # fmt: skip
    return model, conditioning


BAD_SEPARATE = {
    "batch_size=0": (lambda: noise(5000), {"batch_size": 0}, "batch_size"),
    "batch_size=-1": (lambda: noise(5000), {"batch_size": -1}, "batch_size"),
    "NaN waveform": (lambda: np.where(np.arange(5000) == 40, np.nan, 0.1).astype(np.float32), {}, "first at sample 40"),
    "empty waveform": (lambda: np.zeros(0, np.float32), {}, "at least one sample"),
    "bool waveform": (lambda: np.ones(5000, bool), {}, "bool samples"),
}


@pytest.mark.parametrize("case", list(BAD_SEPARATE))
def test_bad_separate_inputs_are_refused(separator, fe, case):
    model, conditioning = separator
    make, kwargs, message = BAD_SEPARATE[case]
    with pytest.raises(ValueError, match=message):
        separate(model, torch.from_numpy(make()), fe, **conditioning, **kwargs)


def test_int16_into_separate_gives_the_float_result(separator, fe):
    model, conditioning = separator
    pcm = torch.from_numpy(PCM)
    got = separate(model, pcm, fe, **conditioning)
    expected = separate(model, pcm.float() / 32768, fe, **conditioning)
    assert got.shape == (2, 5000) and torch.isfinite(got).all()
    torch.testing.assert_close(got, expected)


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints and media files (tribert separate / evaluate): one line, exit 2
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("good")
    config = make_tiny_config(separation_num_downs=3, separation_base_channels=4, separation_fusion_heads=2)
    torch.manual_seed(0)
    TriBertForSourceSeparation(config).save_pretrained(path)
    return path


def truncated(saved_model, folder):
    shutil.copytree(saved_model, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])


class _Payload:
    def __reduce__(self):
        return (print, ("the payload ran",))


def pickled(saved_model, folder):
    folder.mkdir()
    shutil.copy(saved_model / "config.json", folder)
    torch.save({"weight": _Payload()}, folder / "pytorch_model.bin")


@pytest.mark.parametrize(
    "make, message",
    [(truncated, "model.safetensors is truncated or corrupt"), (pickled, "pickled objects, which could run code, are refused")],
    ids=["truncated safetensors", "pickle with a payload"],
)
@pytest.mark.parametrize("command", ["separate", "evaluate"])
def test_broken_checkpoints_get_one_line_and_exit_2(saved_model, tmp_path, capsys, make, message, command):
    folder = tmp_path / "checkpoint"
    make(saved_model, folder)
    if command == "separate":
        argv = ["separate", str(folder), "--mixture", "mix.wav", "--clips", "a.mp4", "-o", str(tmp_path / "out")]
    else:
        argv = ["evaluate", str(folder), "synthetic:tiny", "-o", str(tmp_path / "out")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "the payload ran" not in capsys.readouterr().out
    assert len(err.strip().splitlines()) == 1


def test_a_truncated_wav_is_refused(tmp_path):
    from tribert_hf.media import load_audio
    from tribert_hf.media import MediaError

    path = tmp_path / "mix.wav"
    write_wav(str(path), noise(20000), SR)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="is truncated"):
        load_audio(str(path))


def _has_video_support():
    if shutil.which("ffmpeg") is None:
        return False
    try:
        from tribert_hf.media import load_torchcodec

        load_torchcodec()
        return True
    except ImportError:
        return False


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the system FFmpeg")


def make_video(path, seconds, size="96x96"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=10:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=22050:duration={seconds}", "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path,
        ],
        check=True,
    )  # fmt: skip


@pytest.mark.skipif(not _has_video_support(), reason="needs the system FFmpeg and torchcodec")
def test_corrupt_audio_packets_are_not_called_a_missing_track(tmp_path):
    from tribert_hf.media import load_audio
    from tribert_hf.media import MediaError

    path = str(tmp_path / "clip.mp4")
    make_video(path, 4)
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2
    data[middle : middle + 4000] = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    open(path, "wb").write(bytes(data))
    with pytest.raises(MediaError) as error:
        load_audio(path)
    assert "no audio track" not in str(error.value) and "corrupt" in str(error.value)


# ---------------------------------------------------------------------------------------------------------------
# tribert prepare: nothing lost, nothing stops the run
# ---------------------------------------------------------------------------------------------------------------


def keypoint_file(path, frames=70):
    detections = [
        {"image_id": f"{f}.jpg", "category_id": 1, "keypoints": [40.0, 50.0, 0.9] * 136, "score": 2.0} for f in range(frames)
    ]
    with open(path, "w") as f:
        json.dump(detections, f)


@needs_ffmpeg
def test_prepare_retries_fixed_files_and_keeps_tmp_named_videos(tmp_path):
    from tribert_hf.data import load_prepared
    from tribert_hf.data.prepare import prepare_dataset

    videos, keypoints, out = tmp_path / "videos", tmp_path / "keypoints", tmp_path / "out"
    make_video(str(videos / "violin" / ".tmp-x.mp4"), 7)  # a real video whose name looks like a leftover
    os.makedirs(videos / "flute")
    (videos / "flute" / "fixme.mp4").write_bytes(b"not a video" * 100)
    os.makedirs(keypoints)
    (keypoints / ".tmp-x.json").write_text("[" * 100_000 + "]" * 100_000)  # crashed json's parser

    with pytest.raises(ValueError, match="No usable video"):  # both skipped, with their reasons: the run ends
        prepare_dataset(str(videos), str(out), keypoints_dir=str(keypoints), progress=False)
    reasons = {entry["video_id"]: entry["reason"] for entry in json.load(open(out / "report.json"))["skipped"]}
    assert "nested too deeply" in reasons[".tmp-x"] and "fixme" in reasons

    keypoint_file(keypoints / ".tmp-x.json")  # both files repaired: both are retried
    shutil.copy(videos / "violin" / ".tmp-x.mp4", videos / "flute" / "fixme.mp4")
    prepare_dataset(str(videos), str(out), keypoints_dir=str(keypoints), progress=False)
    prepare_dataset(str(videos), str(out), keypoints_dir=str(keypoints), progress=False)  # a rerun changes nothing
    assert (out / "media" / ".tmp-x" / "audio.wav").is_file() and (out / "media" / "fixme" / "audio.wav").is_file()
    dataset = load_prepared(str(out))
    assert sorted(v for split in dataset.values() for v in split["video_id"]) == [".tmp-x", "fixme"]
    assert json.load(open(out / "report.json"))["skipped"] == []


def test_ctrl_c_in_prepare_says_how_to_continue(tmp_path, capsys, monkeypatch):
    import tribert_hf.data.prepare as prepare

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "prepare_dataset", interrupted)
    assert cli_main(["prepare", str(tmp_path / "videos"), str(tmp_path / "out"), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "interrupted; run the same command again to continue" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------------------------
# The training recipe: one output_dir, one run
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe():
    import tribert_hf.training.separation

    return tribert_hf.training.separation


def old_run(folder, max_steps=8, with_args=True):
    """An output_dir as a finished run leaves it: checkpoints up to max_steps, best/, logs, run_args.json."""
    for step in (max_steps - 2, max_steps):
        os.makedirs(folder / "checkpoints" / f"step-{step}")
    os.makedirs(folder / "best")
    (folder / "best_metrics.json").write_text(json.dumps({"step": max_steps, "sdr": 3.0}))
    (folder / "model.safetensors").write_bytes(b"old weights")
    if with_args:
        args = {"dataset": "synthetic:tiny", "model_size": "tiny", "max_steps": max_steps, "learning_rate": 1e-3}
        (folder / "run_args.json").write_text(json.dumps(args))


COMMON = ["--dataset", "synthetic:tiny", "--model_size", "tiny", "--learning_rate", "1e-3", "--report_to", "none"]
REFUSED_RUNS = {
    "new run in a used folder": (True, COMMON + ["--max_steps", "8"], "is not empty"),
    "resume with other arguments": (True, COMMON + ["--max_steps", "4", "--resume"], r"other arguments .*--max_steps 8 -> 4"),
    "resume past max_steps (no run_args.json)": (False, COMMON + ["--max_steps", "4", "--resume"], "step 8, past --max_steps 4"),
    "resume and overwrite": (True, COMMON + ["--resume", "--overwrite_output_dir"], "pass one"),
    # an argument the saved run_args.json predates counts as its default: turning it on is a change
    "resume turning on an argument added since": (True, COMMON + ["--max_steps", "8", "--resume", "--waveform_loss_weight", "0.5"], r"--waveform_loss_weight 0\.0 -> 0\.5"),
    "resume with another mask activation": (True, COMMON + ["--max_steps", "8", "--resume", "--mask_activation", "softmax"], r"--mask_activation None -> 'softmax'"),
}


@pytest.mark.parametrize("case", list(REFUSED_RUNS))
def test_training_refuses_to_mix_runs(recipe, tmp_path, case):
    with_args, argv, message = REFUSED_RUNS[case]
    old_run(tmp_path, with_args=with_args)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(recipe.RunArgumentsError, match=message):
        recipe.main(argv + ["--output_dir", str(tmp_path)])
    assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "model.safetensors").read_bytes() == b"old weights"


def test_resume_with_the_same_arguments_is_accepted(recipe, tmp_path):
    old_run(tmp_path)
    args = recipe.parse_args(
        COMMON + ["--max_steps", "8", "--resume", "--stop_at_step", "9", "--num_proc", "2", "--output_dir", str(tmp_path)]
    )
    recipe.check_output_dir(args)  # operational arguments may change


def test_overwrite_output_dir_deletes_the_old_run_only(recipe, tmp_path):
    old_run(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    args = recipe.parse_args(
        COMMON + ["--max_steps", "4", "--overwrite_output_dir", "--hub_token", "secret", "--output_dir", str(tmp_path)]
    )
    recipe.check_output_dir(args)
    recipe.start_run(args)
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "notes.txt", "run_args.json"]
    saved = json.load(open(tmp_path / "run_args.json"))
    assert saved["max_steps"] == 4 and "hub_token" not in saved


def test_the_script_prints_the_refusal_and_exits_2(tmp_path, capsys, monkeypatch):
    import runpy

    old_run(tmp_path)
    script = os.path.join(ROOT, "examples", "run_separation.py")
    monkeypatch.setattr(sys, "argv", [script, *COMMON, "--max_steps", "8", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_code:
        runpy.run_path(script, run_name="__main__")
    err = capsys.readouterr().err
    assert exit_code.value.code == 2 and "is not empty" in err and "Traceback" not in err

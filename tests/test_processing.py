import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoProcessor, AutoVideoProcessor

from tribert_hf import TriBertConfig, TriBertFeatureExtractor, TriBertProcessor, TriBertVideoProcessor


SR = 11025


@pytest.fixture(scope="module")
def processor():
    return TriBertProcessor(TriBertFeatureExtractor(), TriBertVideoProcessor())


def numbered_frames(count, height=90, width=120):
    """Frame i is filled with the grey level i (< 256), so a processed frame tells which frame it was."""
    return np.stack([np.full((height, width, 3), i, dtype=np.uint8) for i in range(count)])


def frame_number(pixel_values, processor):
    mean, std = processor.video_processor.image_mean[0], processor.video_processor.image_std[0]
    level = float(pixel_values[0].mean()) * std + mean
    return round(level * 255)


def test_video_processor_shapes_and_normalisation():
    vp = TriBertVideoProcessor()
    grey = np.full((10, 100, 150, 3), 128, dtype=np.uint8)
    out = vp(grey, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 3, 224, 224)
    for channel in range(3):
        expected = (128 / 255 - vp.image_mean[channel]) / vp.image_std[channel]
        torch.testing.assert_close(out[0, :, channel], torch.full((3, 224, 224), expected), atol=1e-4, rtol=0)
    batch = vp([grey, grey[:4]], return_tensors="pt")["pixel_values"]
    assert batch.shape == (2, 3, 3, 224, 224)


def test_frame_selection():
    vp = TriBertVideoProcessor()
    assert vp.frame_indices(11).tolist() == [4, 5, 6]
    assert vp.frame_indices(11, frame_stride=3).tolist() == [2, 5, 8]
    assert vp.frame_indices(2).tolist() == [0, 1, 1]  # a short clip repeats its last frame
    picks = {tuple(vp.frame_indices(50, frame_sampling="random", seed=s)) for s in range(10)}
    assert len(picks) > 1 and all(b - a == 1 for p in picks for a, b in zip(p, p[1:]))
    assert vp.frame_indices(50, frame_sampling="random", seed=4).tolist() == vp.frame_indices(50, frame_sampling="random", seed=4).tolist()
    with pytest.raises(ValueError, match="frame_sampling"):
        vp.frame_indices(10, frame_sampling="first")
    frames = numbered_frames(30)
    out = vp(frames, return_tensors="pt")["pixel_values"][0]
    processor = TriBertProcessor(TriBertFeatureExtractor(), vp)
    assert [frame_number(out[i], processor) for i in range(3)] == [13, 14, 15]


def test_processor_aligns_frames_and_keypoints_with_the_audio_crop(processor):
    seconds = 20
    audio = np.random.default_rng(0).standard_normal(seconds * SR).astype(np.float32)
    frames = numbered_frames(seconds * 8)  # 8 fps
    pose = np.zeros((2, seconds * 10, 68, 3), dtype=np.float32)  # 10 fps, x encodes time
    pose[0, :, :, 0] = (np.arange(seconds * 10) / (seconds * 10))[:, None]
    pose[0, :, :, 2] = 1.0
    out = processor(audio, videos=frames, pose_keypoints=pose, sampling_rate=SR, video_fps=8.0, pose_fps=10.0, return_tensors="pt")
    assert out["audio_spectrogram"].shape == (1, 1, 256, 256)
    assert out["pixel_values"].shape == (1, 3, 3, 224, 224)
    assert out["pose_keypoints"].shape == (1, 2, 256, 68, 3)
    assert out["pose_mask"].tolist() == [[1, 0]]
    start = int(out["crop_start"][0]) / SR
    assert abs(start - (seconds - 65535 / SR) / 2) < 1e-3
    centre = start + 65535 / SR / 2
    picked = [frame_number(out["pixel_values"][0, i], processor) for i in range(3)]
    assert picked[1] == round(centre * 8) and picked == [picked[0], picked[0] + 1, picked[0] + 2]
    # the keypoints cover the same window
    x = out["pose_keypoints"][0, 0, :, 0, 0]
    assert abs(float(x[0]) - start / seconds) < 0.01 and abs(float(x[-1]) - (start + 65535 / SR) / seconds) < 0.01


def test_processor_batches_random_crops_and_missing_pose(processor):
    audio = [np.random.default_rng(i).standard_normal(15 * SR).astype(np.float32) for i in range(2)]
    frames = [numbered_frames(120), numbered_frames(120)]
    kwargs = {"sampling_rate": SR, "video_fps": 8.0, "crop": "random", "seed": 5, "return_tensors": "pt"}
    a = processor(audio, videos=frames, pose_keypoints=[None, None], **kwargs)
    b = processor(audio, videos=frames, pose_keypoints=[None, None], **kwargs)
    assert torch.equal(a["audio_spectrogram"], b["audio_spectrogram"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    assert a["crop_start"][0] != a["crop_start"][1]
    assert a["pose_mask"].tolist() == [[0, 0], [0, 0]] and a["pose_keypoints"].abs().max() == 0
    np_out = processor(audio, sampling_rate=SR, return_tensors="np")
    assert isinstance(np_out["audio_spectrogram"], np.ndarray) and "pixel_values" not in np_out
    default = processor(audio, sampling_rate=SR)  # return_tensors=None, as transformers: numpy arrays
    assert isinstance(default["audio_spectrogram"], np.ndarray)
    np.testing.assert_array_equal(default["audio_spectrogram"], np_out["audio_spectrogram"])


def test_processor_errors(processor):
    audio = np.zeros(70000, dtype=np.float32)
    with pytest.raises(ValueError, match="needs `audio`"):
        processor(videos=numbered_frames(5))
    with pytest.raises(ValueError, match="Got 2 videos for 1 audio clips"):
        processor([audio], videos=[numbered_frames(5)] * 2, sampling_rate=SR)
    with pytest.raises(ValueError, match="pass `pose_fps=`"):
        processor(audio, pose_keypoints=np.zeros((2, 10, 68, 3), np.float32), sampling_rate=SR)
    with pytest.raises(ValueError, match=r"must be \(2 persons"):
        processor(audio, pose_keypoints=np.zeros((3, 10, 68, 3), np.float32), sampling_rate=SR, pose_fps=10.0)
    with pytest.raises(ValueError, match="expects 11025 Hz"):
        processor(audio, sampling_rate=16000)


def test_processor_round_trip_and_auto_classes(tmp_path, processor):
    processor.save_pretrained(tmp_path)
    TriBertConfig().save_pretrained(tmp_path)
    for auto, expected in ((AutoProcessor, TriBertProcessor), (AutoFeatureExtractor, TriBertFeatureExtractor), (AutoVideoProcessor, TriBertVideoProcessor)):
        assert type(auto.from_pretrained(tmp_path)) is expected
    loaded = TriBertProcessor.from_pretrained(tmp_path)
    assert loaded.num_pose_frames == 256 and loaded.feature_extractor.num_samples == 65535
    audio = np.random.default_rng(0).standard_normal(70000).astype(np.float32)
    np.testing.assert_allclose(loaded(audio, sampling_rate=SR)["audio_spectrogram"], processor(audio, sampling_rate=SR)["audio_spectrogram"])


def test_the_training_frame_rate_is_saved_with_the_processor(tmp_path):
    """`frame_rate` (the rate of the training frames) round-trips through processor_config.json; a processor saved
    before it existed loads with the default, FRAME_RATE."""
    import json

    from tribert_hf.video_processing_tribert import FRAME_RATE

    assert FRAME_RATE == 8.0 and TriBertVideoProcessor().frame_rate == FRAME_RATE
    TriBertProcessor(TriBertFeatureExtractor(), TriBertVideoProcessor(frame_rate=12.5)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    assert config["video_processor"]["frame_rate"] == 12.5
    assert TriBertProcessor.from_pretrained(tmp_path).video_processor.frame_rate == 12.5
    assert AutoProcessor.from_pretrained(tmp_path).video_processor.frame_rate == 12.5
    del config["video_processor"]["frame_rate"]  # as saved by an older tribert_hf
    (tmp_path / "processor_config.json").write_text(json.dumps(config))
    assert TriBertProcessor.from_pretrained(tmp_path).video_processor.frame_rate == FRAME_RATE

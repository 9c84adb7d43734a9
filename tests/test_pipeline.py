"""The processor's side of separation (clips grouped per mixture, masks -> waveforms) and the
`"audio-source-separation"` pipeline: arrays or a video file, audio of any length, local and remote code."""

import numpy as np
import pytest
import torch
from test_cli_separate import RATE, SEGMENT, checkpoint_dir, media, needs_video  # noqa: F401 (fixtures)
from test_remote_code import run_without_tribert_hf
from transformers import pipeline

from tribert_hf import TriBertForSourceSeparation, TriBertProcessor, TriBertSourceSeparationPipeline, separate


def players(seed=0, frames=30, fps=10.0):
    """Two players' frames `(frames, 48, 48, 3)` and keypoints `(2, frames, 68, 3)` (one person each)."""
    rng = np.random.default_rng(seed)
    videos = [rng.integers(0, 255, (frames, 48, 48, 3), dtype=np.uint8) for _ in range(2)]
    poses = []
    for _ in range(2):
        pose = np.zeros((2, frames, 68, 3), dtype=np.float32)
        pose[0, ..., :2] = rng.random((frames, 68, 2))
        pose[0, ..., 2] = 1.0
        poses.append(pose)
    return videos, poses


def test_processor_groups_clips_for_the_heads_and_post_processes_masks(checkpoint_dir):  # noqa: F811
    processor = TriBertProcessor.from_pretrained(checkpoint_dir)
    model = TriBertForSourceSeparation.from_pretrained(checkpoint_dir).eval()
    fe = processor.feature_extractor
    mixture = np.random.default_rng(1).standard_normal(2 * SEGMENT).astype(np.float32)
    videos, poses = players()
    kwargs = {"sampling_rate": RATE, "video_fps": 10.0, "pose_fps": 10.0, "return_tensors": "pt", "return_waveform": True}
    clips = processor([mixture, mixture], videos=videos, pose_keypoints=poses, **kwargs)
    inputs = processor.group_videos(clips, num_videos=2)
    assert inputs["pixel_values"].shape[:2] == inputs["pose_keypoints"].shape[:2] == inputs["pose_mask"].shape[:2] == (1, 2)
    assert inputs["audio_spectrogram"].shape == (1, 1, 32, fe.frames_for_samples(SEGMENT))
    with torch.no_grad():
        masks = model(**inputs).masks  # the processor's batch is accepted as it is
    crop = clips["waveform"][::2]  # (1, 1, samples): the mixture crop the spectrogram came from
    waveforms = processor.post_process_source_separation(masks, crop)
    assert waveforms.shape == (1, 2, SEGMENT)
    expected = fe.masks_to_waveforms(masks, fe.stft(crop[:, 0]), SEGMENT)
    torch.testing.assert_close(waveforms, expected)
    torch.testing.assert_close(processor.batch_decode(masks, crop), expected)
    torch.testing.assert_close(processor.post_process_source_separation(masks[0], crop[0, 0]), expected[0])
    binary = processor.post_process_source_separation(masks, crop, mask_threshold=0.5)
    torch.testing.assert_close(binary, fe.masks_to_waveforms((masks > 0.5).float(), fe.stft(crop[:, 0]), SEGMENT))

    with pytest.raises(ValueError, match="share one audio, the mixture"):
        processor.group_videos(processor([mixture, mixture[::-1].copy()], videos=videos, **kwargs), num_videos=2)
    with pytest.raises(ValueError, match="not a multiple of num_videos=2"):
        processor.group_videos(processor([mixture], videos=videos[:1], **kwargs), num_videos=2)
    with pytest.raises(ValueError, match="pass the audio the spectrogram was computed from"):
        processor.post_process_source_separation(masks, mixture[None])


def expected_separation(checkpoint_dir, audio, videos, poses):  # noqa: F811
    """What the pipeline must give: `separate()` conditioned per segment on `window_inputs`."""
    processor = TriBertProcessor.from_pretrained(checkpoint_dir)
    model = TriBertForSourceSeparation.from_pretrained(checkpoint_dir).eval()
    sr = processor.feature_extractor.sampling_rate

    def conditioning(start, num_samples):
        return dict(processor.window_inputs(videos, start / sr, video_fps=10.0, pose_keypoints=poses, pose_fps=10.0))

    return separate(model, torch.from_numpy(audio), processor.feature_extractor, conditioning=conditioning)


def test_pipeline_separates_long_audio_from_arrays(checkpoint_dir):  # noqa: F811
    """A pre-training folder (what the recipe saves): one call, one waveform per player, segment by segment."""
    audio = np.random.default_rng(2).standard_normal(3 * SEGMENT + 100).astype(np.float32) * 0.1  # 5 segments
    videos, poses = players()
    separator = pipeline("audio-source-separation", model=checkpoint_dir, trust_remote_code=True)
    assert type(separator).__name__ == "TriBertSourceSeparationPipeline"
    assert type(separator.model).__name__ == "TriBertForSourceSeparation"
    inputs = {"audio": audio, "sampling_rate": RATE, "videos": videos, "video_fps": 10.0, "pose_keypoints": poses, "pose_fps": 10.0}
    out = separator(inputs, batch_size=2)
    assert [p["label"] for p in out] == ["player 0", "player 1"]
    assert all(p["waveform"].shape == audio.shape and p["sampling_rate"] == RATE for p in out)
    expected = expected_separation(checkpoint_dir, audio, videos, poses)
    np.testing.assert_allclose(np.stack([p["waveform"] for p in out]), expected.numpy(), atol=1e-5)
    # other rates are resampled to the model's
    resampled = separator({**inputs, "audio": np.repeat(audio, 2), "sampling_rate": 2 * RATE})
    assert resampled[0]["waveform"].shape == audio.shape
    with pytest.raises(ValueError, match="sampling_rate"):
        separator({**inputs, "sampling_rate": None})


def test_pipeline_from_a_separation_folder_and_the_registry(checkpoint_dir, tmp_path):  # noqa: F811
    model = TriBertForSourceSeparation.from_pretrained(checkpoint_dir)
    processor = TriBertProcessor.from_pretrained(checkpoint_dir)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    audio = np.random.default_rng(3).standard_normal(SEGMENT + 500).astype(np.float32) * 0.1
    videos, poses = players(seed=4)
    inputs = {"audio": audio, "sampling_rate": RATE, "videos": videos, "video_fps": 10.0, "pose_keypoints": poses, "pose_fps": 10.0}
    expected = expected_separation(checkpoint_dir, audio, videos, poses).numpy()
    remote = pipeline("audio-source-separation", model=str(tmp_path), trust_remote_code=True)
    local = TriBertSourceSeparationPipeline(model=model.eval(), processor=processor)  # the class registered locally
    for separator in (remote, local):
        np.testing.assert_allclose(np.stack([p["waveform"] for p in separator(inputs)]), expected, atol=1e-5)


@pytest.mark.slow
def test_pipeline_runs_as_remote_code_without_tribert_hf(checkpoint_dir, tmp_path):  # noqa: F811
    audio = np.random.default_rng(5).standard_normal(2 * SEGMENT).astype(np.float32) * 0.1
    videos, poses = players(seed=6)
    expected = expected_separation(checkpoint_dir, audio, videos, poses).numpy()
    np.savez(tmp_path / "inputs.npz", audio=audio, a=videos[0], b=videos[1], pa=poses[0], pb=poses[1], expected=expected)
    run_without_tribert_hf(
        tmp_path,
        f"""
        import numpy as np
        from transformers import pipeline
        data = np.load({str(tmp_path / "inputs.npz")!r})
        separator = pipeline("audio-source-separation", model={checkpoint_dir!r}, trust_remote_code=True)
        out = separator({{"audio": data["audio"], "sampling_rate": 11025, "videos": [data["a"], data["b"]],
                          "video_fps": 10.0, "pose_keypoints": [data["pa"], data["pb"]], "pose_fps": 10.0}})
        np.testing.assert_allclose(np.stack([p["waveform"] for p in out]), data["expected"], atol=1e-5)
        """,
    )


@needs_video
def test_pipeline_separates_a_video_file_per_player(checkpoint_dir, media):  # noqa: F811
    from tribert_hf.media import load_audio

    separator = pipeline("audio-source-separation", model=checkpoint_dir, trust_remote_code=True)
    out = separator(media["duet"], keypoints=media["duet.json"])
    assert len(out) == 2 and {p["label"] for p in out} <= {"violin", "trumpet", "acoustic_guitar", "flute", "cello"}
    audio = load_audio(media["duet"], RATE)
    assert all(p["waveform"].shape == audio.shape and p["sampling_rate"] == RATE for p in out)

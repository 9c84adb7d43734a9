"""Shared pieces of the benchmarks: seeded model inputs."""

import torch


def example_inputs(config, batch_size: int = 1, seed: int = 0) -> dict:
    """Seeded random inputs of a TriBERT config's shapes (a solo: one player present)."""
    generator = torch.Generator().manual_seed(seed)
    vc, pc, ac = config.vision_config, config.pose_config, config.audio_config
    return {
        "pixel_values": torch.randn(batch_size, vc.num_frames, vc.num_channels, vc.image_size, vc.image_size, generator=generator),
        "pose_keypoints": torch.rand(batch_size, pc.num_persons, pc.num_pose_frames, pc.num_joints, pc.in_channels, generator=generator),
        "audio_spectrogram": torch.rand(batch_size, 1, ac.num_frequency_bins, 256, generator=generator),
        "pose_mask": torch.tensor([[1] + [0] * (pc.num_persons - 1)] * batch_size),
    }  # fmt: skip

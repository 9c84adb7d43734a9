"""The README's first command (for now): build the paper-size TriBERT, run one forward pass, print what it made.

    python examples/run_demo.py [--small]

Inputs are seeded random tensors of the right shapes: 3 RGB frames of 224x224, 2 persons x 256 frames x 68
keypoints, and a 256x256 log-frequency magnitude. Training on the built-in synthetic dataset replaces this
once the data pipeline and the separation head land.
"""

import argparse
import time

import torch

from tribert_hf import TriBertConfig, TriBertModel


def example_inputs(config: TriBertConfig, batch_size: int = 1, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    vc, pc, ac = config.vision_config, config.pose_config, config.audio_config
    return {
        "pixel_values": torch.randn(batch_size, vc.num_frames, vc.num_channels, vc.image_size, vc.image_size, generator=generator),
        "pose_keypoints": torch.rand(batch_size, pc.num_persons, pc.num_pose_frames, pc.num_joints, pc.in_channels, generator=generator),
        "audio_spectrogram": torch.rand(batch_size, 1, ac.num_frequency_bins, 256, generator=generator),
        "pose_mask": torch.tensor([[1] + [0] * (pc.num_persons - 1)] * batch_size),  # a solo: one player
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = TriBertConfig()
    start = time.perf_counter()
    model = TriBertModel(config).eval()
    built = time.perf_counter() - start
    print(f"Built the paper-size TriBERT in {built:.1f} s ({config._attn_implementation} attention).")
    print("Layer plan per stream:", " ".join(config.layer_plan["vision"]))
    print("\nParameters per component:")
    for name, value in model.parameter_counts().items():
        print(f"  {name:<32} {value / 1e6:9.2f} M")

    inputs = example_inputs(config, args.batch_size)
    print("\nInputs:")
    for name, value in inputs.items():
        print(f"  {name:<32} {tuple(value.shape)}")
    start = time.perf_counter()
    with torch.inference_mode():
        outputs = model(**inputs)
    elapsed = time.perf_counter() - start
    print(f"\nOne forward pass (batch {args.batch_size}) on {torch.get_num_threads()} CPU threads: {elapsed:.2f} s")
    print("Outputs:")
    for name, value in outputs.items():
        print(f"  {name:<32} {tuple(value.shape)}")
    labels = [config.id2label[int(i)] for i in outputs.vision_object_classes[0]]
    print(f"\nVisual objects picked by the (untrained) segmentation attention: {labels}")


if __name__ == "__main__":
    main()

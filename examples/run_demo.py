"""The README's first command (for now): generate the built-in synthetic music dataset, turn one of its clips into
model inputs with TriBertProcessor, build the paper-size TriBERT and run it once; print what it made.

    python examples/run_demo.py [--batch-size N] [--cache-dir DIR]

Training on the synthetic dataset replaces the single forward pass once the separation head and the training
recipe land (see the issues).
"""

import argparse
import time

import torch

from tribert_hf import TriBertConfig, TriBertFeatureExtractor, TriBertModel, TriBertProcessor, TriBertVideoProcessor
from tribert_hf.data import PreparedClipFeaturizer, load_synthetic_music


def example_inputs(config: TriBertConfig, batch_size: int = 1, seed: int = 0) -> dict:
    """Seeded random inputs of the model's shapes (for benchmarks)."""
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
    parser.add_argument("--batch-size", type=int, default=2, help="clips of the synthetic validation split")
    parser.add_argument("--cache-dir", help="where the synthetic dataset is generated (default ~/.cache/tribert_hf)")
    args = parser.parse_args()

    root, dataset = load_synthetic_music("tiny", cache_dir=args.cache_dir)
    print(f"Synthetic music dataset in {root}: " + ", ".join(f"{k} {len(v)}" for k, v in dataset.items()))
    processor = TriBertProcessor(TriBertFeatureExtractor(), TriBertVideoProcessor())
    featurize = PreparedClipFeaturizer(root, processor)
    rows = [dataset["val"][i] for i in range(min(args.batch_size, len(dataset["val"])))]
    examples = [featurize.example(row) for row in rows]
    inputs = {
        key: torch.stack([torch.as_tensor(e[key]) for e in examples])
        for key in ("pixel_values", "pose_keypoints", "pose_mask", "audio_spectrogram")
    }

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

    print("\nInputs (" + "; ".join(f"{r['video_id']}: {' + '.join(r['labels'])}" for r in rows) + "):")
    for name, value in inputs.items():
        print(f"  {name:<32} {tuple(value.shape)}")
    start = time.perf_counter()
    with torch.inference_mode():
        outputs = model(**inputs)
    elapsed = time.perf_counter() - start
    print(f"\nOne forward pass (batch {len(rows)}) on {torch.get_num_threads()} CPU threads: {elapsed:.2f} s")
    print("Outputs:")
    for name, value in outputs.items():
        print(f"  {name:<32} {tuple(value.shape)}")
    labels = [config.id2label[int(i)] for i in outputs.vision_object_classes[0]]
    print(f"\nVisual objects picked by the (untrained) segmentation attention: {labels}")


if __name__ == "__main__":
    main()

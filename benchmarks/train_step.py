"""Per-step training time and peak memory of the demo config (`--model_size small`, what `make demo` trains) and
of the paper-size config: one optimizer step of `TriBertForPreTraining` (joint loss, forward + backward + AdamW) on
random mixtures of the recipe's shapes.

    python benchmarks/train_step.py [--sizes small,paper] [--mixtures small=4,paper=1] [--repeats 5]
                                    [--device cpu] [--gradient-checkpointing] [--output benchmarks/results/train_step.json]

Writes a JSON file and prints a one-line summary per config. Times are medians over --repeats steps after one
warm-up step. Peak memory on CPU is the process's resident set size sampled during the steps minus the size
before them (the optimizer state exists after the warm-up step, so it is in the baseline); on CUDA it is
torch.cuda.max_memory_allocated (everything: weights, optimizer state, activations).
"""

import argparse
import json
import os
import platform

import torch

from model_size import measure  # benchmarks/model_size.py: a script's own folder is importable

from tribert_hf import TriBertForPreTraining
from tribert_hf.training import model_config


HERE = os.path.dirname(os.path.abspath(__file__))


def random_batch(config, mixtures: int, num_mix: int = 2, seed: int = 0) -> dict:
    """Seeded random inputs and targets of the recipe's shapes: `mixtures` mixtures of `num_mix` videos (solos)."""
    g = torch.Generator().manual_seed(seed)
    vc, pc, ac = config.vision_config, config.pose_config, config.audio_config
    frames, bins = 256, ac.num_frequency_bins  # 65535 samples, hop 256 -> 256 STFT frames
    pose_mask = torch.zeros(mixtures, num_mix, pc.num_persons, dtype=torch.long)
    pose_mask[..., 0] = 1
    return {
        "pixel_values": torch.randn(mixtures, num_mix, vc.num_frames, 3, vc.image_size, vc.image_size, generator=g),
        "pose_keypoints": torch.rand(mixtures, num_mix, pc.num_persons, pc.num_pose_frames, pc.num_joints, 3, generator=g),
        "pose_mask": pose_mask,
        "audio_spectrogram": torch.rand(mixtures, 1, bins, frames, generator=g) * 4,
        "class_labels": torch.nn.functional.one_hot(torch.randint(0, config.num_labels, (mixtures, num_mix), generator=g), config.num_labels).float(),
        "labels": torch.randint(0, 2, (mixtures, num_mix, bins, frames), generator=g).float(),
    }  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,paper", help="comma list of tiny, small (the demo), paper")
    parser.add_argument("--mixtures", default="small=4,paper=1", help="mixtures per step per size (size=n,...)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (GPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "train_step.json"))
    args = parser.parse_args()

    device = torch.device(args.device)
    mixtures = {k: int(v) for k, v in (item.split("=") for item in args.mixtures.split(","))}
    result = {
        "benchmark": "train_step",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "repeats": args.repeats,
        "bf16": args.bf16,
        "gradient_checkpointing": args.gradient_checkpointing,
        "configs": {},
    }
    for size in args.sizes.split(","):
        torch.manual_seed(0)
        config, _ = model_config(size)
        model = TriBertForPreTraining(config).to(device).train()
        if args.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
        n = mixtures.get(size, 1)
        batch = {k: v.to(device) for k, v in random_batch(config, n).items()}

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        stats = measure(step, args.repeats, device)
        stats.update(
            mixtures_per_step=n, videos_per_step=2 * n, parameters=sum(p.numel() for p in model.parameters()),
            seconds_per_mixture=stats["median_s"] / n,
        )  # fmt: skip
        result["configs"][size] = stats
        print(
            f"train_step[{size}]: {stats['parameters'] / 1e6:.1f} M parameters, {n} mixtures of 2 videos per step on "
            f"{result['device']} ({result['cpu_threads']} threads): median {stats['median_s']:.2f} s/step, peak +"
            f"{stats['peak_memory_mb']:.0f} MiB"
        )
        del model, optimizer
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(args.output + ".tmp", args.output)
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()

"""The `tribert` command line: jobs a user runs without writing code.

    tribert prepare VIDEO_DIR OUTPUT_DIR [--keypoints-dir DIR] [...]   videos -> prepared dataset
    tribert synthetic OUTPUT_DIR [--preset small]                      the built-in synthetic music dataset
"""

import argparse
import sys


def _prepare(args) -> int:
    from .data.prepare import PrepareOptions, prepare_dataset

    options = PrepareOptions(
        fps=args.fps,
        frame_short_side=args.frame_short_side,
        split_rule=args.split_rule,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        require_keypoints=args.require_keypoints,
    )
    dataset = prepare_dataset(
        args.video_dir, args.output_dir, keypoints_dir=args.keypoints_dir, options=options,
        num_workers=args.num_workers, limit=args.limit, progress=not args.quiet,
    )  # fmt: skip
    if dataset is None:
        print(f"Stopped after --limit {args.limit} videos; run the same command again to continue.")
        return 0
    sizes = ", ".join(f"{split} {len(part)}" for split, part in dataset.items())
    print(f"Prepared dataset in {args.output_dir} ({sizes}); skipped videos and reasons: {args.output_dir}/report.json")
    return 0


def _synthetic(args) -> int:
    from .data.synthetic import SYNTHETIC_PRESETS, generate_synthetic_music

    dataset = generate_synthetic_music(args.output_dir, **SYNTHETIC_PRESETS[args.preset], seed=args.seed)
    sizes = ", ".join(f"{split} {len(part)}" for split, part in dataset.items())
    print(f"Synthetic music dataset in {args.output_dir} ({sizes}).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tribert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser(
        "prepare",
        help="prepare downloaded MUSIC21/MUSIC videos (+ AlphaPose keypoints) as a dataset",
        description="Decode videos laid out as VIDEO_DIR/<class>/<youtube_id>.mp4 (duets: '<class> <class>/') into "
        "11025 Hz mono audio, frames at --fps and keypoints, and write a datasets.DatasetDict with train/val/test "
        "splits. Resumable: run the same command again after an interruption.",
    )
    prepare.add_argument("video_dir", help="folder of class sub-folders holding the videos")
    prepare.add_argument("output_dir", help="where the prepared dataset is written")
    prepare.add_argument("--keypoints-dir", help="folder of AlphaPose result files named <youtube_id>.json")
    prepare.add_argument("--require-keypoints", action="store_true", help="skip videos without a keypoint file")
    prepare.add_argument("--fps", type=float, default=8.0, help="frame rate of the stored frames (default 8)")
    prepare.add_argument("--frame-short-side", type=int, default=256, help="stored frames' shorter side in pixels")
    prepare.add_argument("--split-rule", choices=("hash", "authors"), default="hash",
                         help="'hash': seeded hash of the id; 'authors': the original TriBERT train/val lists")  # fmt: skip
    prepare.add_argument("--val-fraction", type=float, default=0.1)
    prepare.add_argument("--test-fraction", type=float, default=0.1)
    prepare.add_argument("--seed", type=int, default=0, help="seed of the hash split")
    prepare.add_argument("--num-workers", type=int, default=1, help="videos decoded in parallel")
    prepare.add_argument("--limit", type=int, help="stop after this many new videos (resume later)")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(func=_prepare)

    synthetic = commands.add_parser("synthetic", help="write the built-in synthetic music dataset")
    synthetic.add_argument("output_dir")
    synthetic.add_argument("--preset", default="small", choices=("tiny", "small"))
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.set_defaults(func=_synthetic)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"tribert {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

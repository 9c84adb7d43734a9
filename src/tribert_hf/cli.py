"""The `tribert` command line: jobs a user runs without writing code.

    tribert prepare VIDEO_DIR OUTPUT_DIR [--keypoints-dir DIR] [...]   videos -> prepared dataset
    tribert synthetic OUTPUT_DIR [--preset small] [--sounds-dir DIR]   the built-in synthetic music dataset
    tribert render-solos OUTPUT_DIR --soundfont SF2 [...]             realistic solo clips of the 21 classes
    tribert separate CHECKPOINT --mixture MIX --clips A B [...] -o OUT  one WAV per clip (mix-and-separate)
    tribert separate CHECKPOINT --video V [--keypoints V.json] -o OUT   one WAV per player (or for the video)
    tribert evaluate CHECKPOINT DATASET [--split val] [-o OUT]         SDR/SIR/SAR vs the mixture floor
    tribert index build DATASET CHECKPOINT OUT [--splits test]         one embedding per clip and modality
    tribert index search OUT --audio A.wav | --video V [...] [-k 10]   the nearest clips, with scores
"""

import argparse
import sys

from .feature_extraction_tribert import SAMPLING_RATE
from .video_processing_tribert import FRAME_RATE


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

    parameters = dict(SYNTHETIC_PRESETS[args.preset])
    if args.same_class_duet_fraction is not None:
        parameters["same_class_duet_fraction"] = args.same_class_duet_fraction
    dataset = generate_synthetic_music(args.output_dir, **parameters, seed=args.seed, sounds_dir=args.sounds_dir)
    sizes = ", ".join(f"{split} {len(part)}" for split, part in dataset.items())
    sounds = f"; sounds from {args.sounds_dir}" if args.sounds_dir else ""
    print(f"Synthetic music dataset in {args.output_dir} ({sizes}{sounds}).")
    return 0


def _render_solos(args) -> int:
    from .data.soundfont import render_solos

    manifest = render_solos(
        args.output_dir, args.soundfont, classes=args.classes, clips_per_class=args.clips_per_class,
        seconds=args.seconds, seed=args.seed, progress=not args.quiet,
    )  # fmt: skip
    fonts = ", ".join(font["name"] for font in manifest["soundfonts"])
    print(
        f"Rendered {len(manifest['clips'])} solo clips ({len(manifest['classes'])} classes x {args.clips_per_class}, "
        f"{args.seconds:g} s, {fonts}) into {args.output_dir}; notes and programs: {args.output_dir}/manifest.json"
    )
    return 0


def _separate(args) -> int:
    from .pipelines import load_checkpoint, separate_mixture, separate_video

    if args.video and args.clips:
        raise ValueError("--clips go with --mixture; with --video the sources come from the video (and its keypoints).")
    if args.mixture and not args.clips:
        raise ValueError("--mixture needs --clips: one video (or image) per source to separate.")
    if args.video and args.keypoints and len(args.keypoints) != 1:
        raise ValueError(f"--video takes one keypoint file (all its players), got {len(args.keypoints)}.")
    if not 0.0 <= args.overlap < 1.0 or args.batch_size < 1 or (args.fps is not None and not args.fps > 0) or args.crop_margin < 0:
        raise ValueError("--overlap must be in [0, 1), --batch-size >= 1, --fps > 0 and --crop-margin >= 0.")
    checkpoint = load_checkpoint(args.checkpoint, args.device)
    for warning in checkpoint.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    common = {
        "overlap": args.overlap, "batch_size": args.batch_size, "fps": args.fps, "mask_threshold": args.mask_threshold,
        "figure": not args.no_figure, "progress": not args.quiet,
    }  # fmt: skip
    if args.video:
        summary = separate_video(
            checkpoint, args.video, args.keypoints[0] if args.keypoints else None, args.output_dir,
            person_split=not args.no_person_split, max_persons=args.max_persons, crop_margin=args.crop_margin, **common,
        )  # fmt: skip
    else:
        summary = separate_mixture(checkpoint, args.mixture, args.clips, args.keypoints, args.output_dir, **common)
    for warning in summary.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"Separated {summary['duration']:.1f} s ({summary['num_segments']} segments of {summary['segment_seconds']:.2f} s, "
        f"{summary['mode']}) into {args.output_dir}:"
    )
    for source in summary["sources"]:
        what = f"person {source['person'] + 1} of {source['clip']}" if source["person"] is not None else source["clip"]
        print(f"  {source['file']:<32} {source['label']} (score {source['label_scores'][source['label']]:.2f}) <- {what}")
    print(f"  {summary['residual']['file']:<32} mixture minus the estimates")
    if summary["figure"]:
        print(f"  {summary['figure']:<32} mixture spectrogram, masks, estimates")
    print("  separation.json")
    return 0


def _evaluate(args) -> int:
    from .pipelines import evaluate_checkpoint, load_checkpoint, metrics_table

    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1.")
    checkpoint = load_checkpoint(args.checkpoint, args.device)
    for warning in checkpoint.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    summary = evaluate_checkpoint(
        checkpoint, args.dataset, split=args.split, num_mix=args.num_mix, backend=args.backend,
        max_mixtures=args.max_mixtures, output_dir=args.output_dir, batch_size=args.batch_size,
        cache_dir=args.cache_dir, figure=not args.no_figure, progress=not args.quiet,
    )  # fmt: skip
    print(metrics_table(summary))
    figure = ", example.png" if summary.get("figure") else ""
    print(f"Wrote metrics.json, metrics.md{figure} to {args.output_dir}")
    return 0


def _index_build(args) -> int:
    from .retrieval_index import build_index

    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1.")
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    build_index(args.dataset, args.checkpoint, args.output, splits=splits, batch_size=args.batch_size,
                num_proc=args.num_proc, use_faiss=False if args.no_faiss else None, device=args.device)  # fmt: skip
    return 0


def _index_search(args) -> int:
    import json
    import os
    import time

    import numpy as np

    from .retrieval_index import (
        default_target, embed_query_files, indexed_clip_inputs, load_contrastive_model, load_index, query_embedding,
        query_inputs_from_files, rerank,
    )  # fmt: skip

    if args.k < 1:
        raise ValueError("-k must be at least 1.")
    index = load_index(args.index, use_faiss=False if args.no_faiss else None)
    model = processor = None
    start = time.perf_counter()
    if args.id:
        if args.audio or args.video or args.keypoints:
            raise ValueError("--id takes the query from the index: give it without --audio/--video/--keypoints.")
        modalities = [m.strip() for m in args.modality.split(",")] if args.modality else ["audio"]
        try:
            embeds = {m: index.embedding(args.id, m) for m in modalities}
        except KeyError as error:
            raise ValueError(error.args[0]) from error
    else:
        model, processor = load_contrastive_model(os.path.join(args.index, "model"), args.device)
        embeds = embed_query_files(model, processor, args.audio, args.video, args.keypoints)
        modalities = list(embeds)
    target = args.target or default_target(modalities)
    if target in modalities:
        raise ValueError(f"--target {target} is a modality of the query ({', '.join(modalities)}): retrieve another one.")
    embed_seconds = time.perf_counter() - start
    start = time.perf_counter()
    hits = index.search(query_embedding(embeds), target, args.k, exclude=args.id if args.id and args.exclude_query else None)
    search_seconds = time.perf_counter() - start
    rerank_scores = None
    if args.rerank:
        from .modeling_tribert_retrieval import TriBertForRetrieval
        from .configuration_tribert import RETRIEVAL_VARIANTS

        from .pipelines import quiet_transformers

        with quiet_transformers():
            joint = TriBertForRetrieval.from_pretrained(args.rerank).eval()
        query_streams, candidate_stream, _ = RETRIEVAL_VARIANTS[joint.config.retrieval_variant]
        if set(query_streams) != set(modalities) or candidate_stream != target:
            raise ValueError(
                f"--rerank {args.rerank} scores {' + '.join(query_streams)} -> {candidate_stream}, the search is "
                f"{' + '.join(modalities)} -> {target}."
            )
        if processor is None:
            _, processor = load_contrastive_model(os.path.join(args.index, "model"))
        if args.id:
            query = {k: v[0] for k, v in indexed_clip_inputs(index, [args.id], processor).items()}
        else:
            query = {k: v[0] for k, v in query_inputs_from_files(processor, args.audio, args.video, args.keypoints)[0].items()}
        candidates = indexed_clip_inputs(index, [h.id for h in hits], processor)
        rerank_scores = rerank(joint, query, candidates)
        order = np.argsort(-rerank_scores, kind="stable")
        hits, rerank_scores = [hits[i] for i in order], rerank_scores[order]
    rows = [{"rank": r + 1, "id": h.id, "score": round(h.score, 6), "split": h.split, "labels": h.labels,
             **({"rerank_score": round(float(rerank_scores[r]), 6)} if rerank_scores is not None else {})}
            for r, h in enumerate(hits)]  # fmt: skip
    if args.json:
        print(json.dumps({"query": modalities, "target": target, "embed_ms": round(1000 * embed_seconds, 2),
                          "search_ms": round(1000 * search_seconds, 3), "hits": rows}, indent=2))  # fmt: skip
        return 0
    print(f"{' + '.join(modalities)} -> {target}: top {len(rows)} of {len(index)} clips "
          f"(query ready in {1000 * embed_seconds:.1f} ms, model loading included; searched in {1000 * search_seconds:.2f} ms)")  # fmt: skip
    for row in rows:
        extra = f"  re-ranked {row['rerank_score']:+.4f}" if "rerank_score" in row else ""
        print(f"{row['rank']:>4}  {row['score']:+.4f}{extra}  {row['id']}  [{row['split']}] {', '.join(row['labels'] or [])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tribert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser(
        "prepare",
        help="prepare downloaded MUSIC21/MUSIC videos (+ AlphaPose keypoints) as a dataset",
        description="Decode videos laid out as VIDEO_DIR/<class>/<youtube_id>.mp4 (duets: '<class> <class>/') into "
        f"{SAMPLING_RATE} Hz mono audio, frames at --fps and keypoints, and write a datasets.DatasetDict with train/val/test "
        "splits. Resumable: run the same command again after an interruption.",
    )
    prepare.add_argument("video_dir", help="folder of class sub-folders holding the videos")
    prepare.add_argument("output_dir", help="where the prepared dataset is written")
    prepare.add_argument("--keypoints-dir", help="folder of AlphaPose result files named <youtube_id>.json")
    prepare.add_argument("--require-keypoints", action="store_true", help="skip videos without a keypoint file")
    prepare.add_argument("--fps", type=float, default=FRAME_RATE, help=f"frame rate of the stored frames (default {FRAME_RATE:g})")
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

    synthetic = commands.add_parser(
        "synthetic",
        help="write the built-in synthetic music dataset",
        description="Write seeded synthetic music videos (audio, frames, keypoints, per-source WAVs) as a prepared "
        "dataset. The sounds come from the built-in synthesiser, or with --sounds-dir from solo clips laid out as "
        "DIR/<class>/<name>.wav (MUSIC21 class names): each player plays a random segment of a clip of its class "
        "and its frames and skeleton move with the note onsets detected in the clip.",
    )
    synthetic.add_argument("output_dir")
    synthetic.add_argument(
        "--preset", default="small", choices=("tiny", "small", "realistic"),
        help="sizes: tiny (tests), small (demo), realistic (the benchmark set, with --sounds-dir; see docs/data.md)",
    )
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument(
        "--sounds-dir", metavar="DIR", help="folder of solo clips DIR/<class>/<name>.wav to take the sounds from"
    )
    synthetic.add_argument(
        "--same-class-duet-fraction", type=float, metavar="F",
        help="share of the duets whose two players play the same class (two violins: only when each plays tells "
        "them apart); default: the preset's (none)",
    )  # fmt: skip
    synthetic.set_defaults(func=_synthetic)

    render = commands.add_parser(
        "render-solos",
        help="render realistic solo clips of the 21 MUSIC21 classes with FluidSynth and a General MIDI soundfont",
        description="Seeded random phrases per class (General MIDI program or drum kit, the instrument's range and "
        f"playing style), rendered with FluidSynth, mono {SAMPLING_RATE} Hz, loudness-normalised, written as "
        "OUTPUT_DIR/<class>/<k>.wav with OUTPUT_DIR/manifest.json (programs, soundfonts, notes). The folder is a "
        "--sounds-dir for `tribert synthetic`. Needs the fluidsynth program; resumable.",
    )
    render.add_argument("output_dir")
    render.add_argument("--soundfont", action="append", required=True, metavar="SF2",
                        help="a General MIDI .sf2/.sf3 file; repeat it to alternate sound sets between clips")  # fmt: skip
    render.add_argument("--classes", nargs="+", help="MUSIC21 class names (default: all 21)")
    render.add_argument("--clips-per-class", type=int, default=20, help="clips per class (default 20)")
    render.add_argument("--seconds", type=float, default=24.0, help="length of a clip (default 24)")
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.set_defaults(func=_render_solos)

    separate = commands.add_parser(
        "separate",
        help="separate a mixture (one clip per source) or a video (one source per player) with a checkpoint",
        description="TriBERT predicts one mask per conditioning video. --mixture MIX --clips A B ...: the mixture's "
        "audio is split into one WAV per clip, each conditioned on that clip's frames (and --keypoints, one JSON per "
        "clip, '-' for none). --video V [--keypoints V.json]: the video's own audio; with two or more tracked players "
        "in the keypoints, one WAV per player (frames cropped to the player), else one WAV for the video. Audio of "
        "any length is separated in overlapping segments, each conditioned on its own time window. Writes "
        "source-<i>-<predicted class>.wav, residual.wav (mixture minus the estimates), separation.png and "
        "separation.json into -o.",
    )
    separate.add_argument("checkpoint", help="a TriBERT checkpoint folder (save_pretrained of the model + processor)")
    source = separate.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="a video with an audio track: separate its own audio")
    source.add_argument("--mixture", help="the mixture: a WAV, audio or video file")
    separate.add_argument("--clips", nargs="+", help="with --mixture: one video (or image) per source")
    separate.add_argument("--keypoints", nargs="+", help="AlphaPose JSON: one per clip ('-' for none), or one for --video")
    separate.add_argument("-o", "--output-dir", required=True, help="where the WAVs, figure and JSON are written")
    separate.add_argument("--no-person-split", action="store_true", help="--video: one source even with several players")
    separate.add_argument("--max-persons", type=int, default=4, help="--video: players read from the keypoints (default 4)")
    separate.add_argument("--crop-margin", type=float, default=0.15, help="--video: margin around a player's box (fraction)")
    separate.add_argument("--overlap", type=float, default=0.25, help="fraction shared by consecutive segments (default 0.25)")
    separate.add_argument(
        "--fps", type=float, default=None,
        help=f"rate of the conditioning frames (default: the rate the checkpoint was trained at, saved with its processor; {FRAME_RATE:g} for older ones)",
    )  # fmt: skip
    separate.add_argument("--mask-threshold", type=float, help="binarise the masks at this value (default: soft masks)")
    separate.add_argument("--batch-size", type=int, default=4, help="segments per forward pass (default 4)")
    separate.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    separate.add_argument("--no-figure", action="store_true", help="do not draw separation.png")
    separate.add_argument("--quiet", action="store_true", help="no progress bar")
    separate.set_defaults(func=_separate)

    evaluate = commands.add_parser(
        "evaluate",
        help="SDR/SIR/SAR of a checkpoint on a prepared split, next to the mixture floor",
        description="Pairs the split's clips into mixtures (consecutive groups of --num-mix, centre crops: "
        "deterministic), separates them and scores SDR/SIR/SAR (BSS Eval v3) with the mixture floor. Writes "
        "metrics.json, metrics.md and example.png into -o and prints the table.",
    )
    evaluate.add_argument("checkpoint", help="a TriBERT checkpoint folder")
    evaluate.add_argument("dataset", help="a `tribert prepare` folder, or synthetic:tiny / synthetic:small")
    evaluate.add_argument("--split", default="val", help="split to evaluate (default val)")
    evaluate.add_argument("--num-mix", type=int, default=2, help="clips per mixture (default 2)")
    evaluate.add_argument("--backend", choices=("fast", "mir_eval"), default="fast", help="BSS Eval implementation")
    evaluate.add_argument("--max-mixtures", type=int, help="score at most this many mixtures")
    evaluate.add_argument("-o", "--output-dir", default="tribert-evaluation", help="where metrics.json/.md and example.png go")
    evaluate.add_argument("--batch-size", type=int, default=4, help="mixtures per forward pass (default 4)")
    evaluate.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    evaluate.add_argument("--cache-dir", help="where synthetic:<preset> is generated (default ~/.cache/tribert_hf)")
    evaluate.add_argument("--no-figure", action="store_true", help="do not draw example.png")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=_evaluate)

    index = commands.add_parser(
        "index",
        help="an embedding index of a dataset for cross-modal retrieval: build it once, search it in milliseconds",
        description="build: embeds every clip of a dataset (vision, pose and audio, one embedding each) with a "
        "TriBertForContrastiveRetrieval checkpoint (examples/run_retrieval.py --method embedding) and writes the index "
        "folder. search: the top-k clips of the index for a query (files, or an indexed clip's embedding).",
    )
    index_commands = index.add_subparsers(dest="index_command", required=True)
    build = index_commands.add_parser("build", help="embed every clip of a dataset once")
    build.add_argument("dataset", help="a `tribert prepare` folder, or synthetic:tiny / synthetic:small")
    build.add_argument("checkpoint", help="a TriBertForContrastiveRetrieval folder (run_retrieval.py --method embedding)")
    build.add_argument("output", help="the index folder to write")
    build.add_argument("--splits", help="comma-separated splits to index (default: all)")
    build.add_argument("--batch-size", type=int, default=32, help="clips per forward pass (default 32)")
    build.add_argument("--num-proc", type=int, default=1, help="processes for feature extraction (default 1)")
    build.add_argument("--no-faiss", action="store_true", help="write no FAISS files even when faiss-cpu is installed")
    build.add_argument("--device", default=None, help="torch device (default cpu)")
    build.set_defaults(func=_index_build)
    search = index_commands.add_parser("search", help="the nearest clips of an index for a query")
    search.add_argument("index", help="an index folder written by `tribert index build`")
    search.add_argument("--audio", help="query sound: a WAV / audio file (or a video's audio track)")
    search.add_argument("--video", help="query frames: a video file (or an image)")
    search.add_argument("--keypoints", help="query pose: the AlphaPose / COCO-WholeBody JSON of --video")
    search.add_argument("--id", help="query with an indexed clip's stored embedding(s) instead of files")
    search.add_argument("--modality", help="with --id: the query modality or modalities, comma-separated (default audio)")
    search.add_argument("--target", choices=("vision", "pose", "audio"), help="the modality retrieved (default: the paper's variant: audio -> vision, vision -> audio, pose -> audio, vision + audio -> pose)")
    search.add_argument("-k", type=int, default=10, help="clips to return (default 10)")
    search.add_argument("--exclude-query", action="store_true", help="with --id: leave the query's own clip out")
    search.add_argument("--rerank", help="a TriBertForRetrieval folder of the same variant: re-score the top-k with the joint encoder")
    search.add_argument("--no-faiss", action="store_true", help="exact NumPy search even when faiss-cpu is installed")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.add_argument("--device", default=None, help="torch device for embedding the query (default cpu)")
    search.set_defaults(func=_index_search)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, ImportError, OSError, MemoryError) as error:
        print(f"tribert {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        again = "; run the same command again to continue where it stopped" if args.command == "prepare" else ""
        print(f"\ntribert {args.command}: interrupted{again}.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

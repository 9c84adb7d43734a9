"""Applications of a trained TriBERT checkpoint: separate a video or a mixture, evaluate on a prepared split.

The library behind `tribert separate` and `tribert evaluate` (see `docs/separation_cli.md`)::

    from tribert_hf.pipelines import evaluate_checkpoint, load_checkpoint, separate_mixture, separate_video

    checkpoint = load_checkpoint("outputs/separation")                 # model + processor, checked
    summary = separate_mixture(checkpoint, "mix.wav", ["a.mp4", "b.mp4"], output_dir="out/")
    summary = separate_video(checkpoint, "duet.mp4", keypoints="duet.json", output_dir="out/")
    metrics = evaluate_checkpoint(checkpoint, "synthetic:tiny", split="val", output_dir="eval/")

One module per concern: `checkpoint` (loading and checking a checkpoint, the device), `conditioning` (what
conditions each source, segment by segment, with person crops; keypoint files checked against their video),
`separate` (the two separation settings and their outputs), `evaluate` (scores on a split, through the library's
one evaluation loop, `tribert_hf.evaluation`). Decoding audio and video is `tribert_hf.media`'s.

TriBERT predicts one mask per *conditioning video*: each source is described by frames (and keypoints) and the
model returns the part of the mixture that belongs to it. So the sources are

* `separate_mixture`: one per clip (the mix-and-separate setting the model is trained in);
* `separate_video`: one per tracked person of the keypoint file (frames cropped to that person, `pose_mask`
  selecting only them) when it holds two or more players; otherwise one source for the whole video.

Audio of any length is separated segment by segment (`tribert_hf.separation.apply.separate` with overlapping,
cross-faded segments of the feature extractor's crop length), and every segment is conditioned on the frames and
keypoints of its own time window, taken at the rate the checkpoint was trained at (its processor's
`video_processor.frame_rate`). `residual.wav` (mixture minus the sum of the estimates) keeps what no source
claimed.
"""

from .checkpoint import Checkpoint, CheckpointError, as_checkpoint, default_device, load_checkpoint, quiet_transformers, resolve_device
from .conditioning import SegmentConditioner, SourceSpec, load_clip_keypoints, training_frame_rate
from .evaluate import evaluate_checkpoint, load_dataset, metrics_table
from .separate import (
    SeparationResult,
    predict_labels,
    segment_starts,
    separate_mixture,
    separate_sources,
    separate_video,
    write_separation,
)


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "SegmentConditioner",
    "SeparationResult",
    "SourceSpec",
    "as_checkpoint",
    "default_device",
    "evaluate_checkpoint",
    "load_checkpoint",
    "load_clip_keypoints",
    "load_dataset",
    "metrics_table",
    "predict_labels",
    "quiet_transformers",
    "resolve_device",
    "segment_starts",
    "separate_mixture",
    "separate_sources",
    "separate_video",
    "training_frame_rate",
    "write_separation",
]

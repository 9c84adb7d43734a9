"""The one evaluation loop (`tribert_hf.evaluation`): soft, thresholded and ideal-mask scorings of the same
mixtures, per-mixture rows, and the pair of a model that predicts the ideal masks."""

import math

import numpy as np
import pytest
import torch

from tribert_hf import TriBertFeatureExtractor
from tribert_hf.data import MixAndSeparateCollator
from tribert_hf.evaluation import SCORINGS, evaluate_separation_model, scoring_masks


def _tone_clips(fe, count=4, seed=0):
    """Clips of one or two harmonic tones each, distinct pitches: well separable by a mask."""
    rng = np.random.default_rng(seed)
    t = np.arange(fe.num_samples) / fe.sampling_rate
    clips = []
    for k in range(count):
        f0 = 110.0 * 2 ** (k * 7 / 12)
        wave = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 5))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (0.5 + k) * t) ** 2
        clips.append({
            "waveform": torch.tensor(0.2 * wave * envelope, dtype=torch.float32)[None],
            "pixel_values": torch.zeros(1), "pose_keypoints": torch.zeros(1), "pose_mask": torch.zeros(1),
            "class_labels": torch.zeros(1),
        })  # fmt: skip
    return clips


class IdealMaskModel(torch.nn.Module):
    """Predicts the ideal binary mask from the labels (as the training targets are): a perfect binary model."""

    def __init__(self, high=1.0, low=0.0):
        super().__init__()
        self.high, self.low = high, low

    def forward(self, labels=None, **inputs):
        return {"masks": labels * self.high + (1 - labels) * self.low}


@pytest.fixture(scope="module")
def batches():
    fe = TriBertFeatureExtractor(num_samples=16383)  # 1.5-s clips: 64 frames, the same 256-bin chain
    collate = MixAndSeparateCollator(fe, num_mix=2, mask_type="binary")
    clips = _tone_clips(fe)
    return fe, [collate(clips[:2]), collate(clips[2:])]


def test_a_perfect_binary_model_scores_the_ideal_binary_mask(batches):
    fe, loader = batches
    per_mixture = []
    out = evaluate_separation_model(IdealMaskModel(), loader, fe, per_mixture=per_mixture, scorings=tuple(SCORINGS))
    assert out["num_mixtures"] == 2
    assert math.isclose(out["sdr"], out["sdr_ideal_binary"], rel_tol=1e-9)
    assert math.isclose(out["sdr"], out["sdr_threshold"], rel_tol=1e-9)  # 0/1 masks: thresholding changes nothing
    assert out["sdr_ideal_binary"] > out["sdr_mixture"] + 10 and out["sdr_ideal_ratio"] > out["sdr_mixture"] + 10
    assert len(per_mixture) == 2 and set(per_mixture[0]) >= {"sdr", "sdr_mixture", "sdr_threshold", "sdr_ideal_ratio"}
    assert np.asarray(per_mixture[0]["sdr_ideal_binary"]).shape == (1,)


def test_thresholding_and_model_free_ceilings(batches):
    fe, loader = batches
    soft = evaluate_separation_model(IdealMaskModel(0.6, 0.3), loader, fe, scorings=("soft", "threshold"))
    # masks of 0.6 where the source dominates and 0.3 elsewhere: thresholded, the ideal binary mask again
    ideal = evaluate_separation_model(None, loader, fe, scorings=("ideal_binary",))
    assert math.isclose(soft["sdr_threshold"], ideal["sdr"], rel_tol=1e-9)
    assert soft["sdr"] < soft["sdr_threshold"]
    with pytest.raises(ValueError, match="need a model"):
        evaluate_separation_model(None, loader, fe, scorings=("soft",))
    with pytest.raises(ValueError, match="Unknown or no scoring"):
        evaluate_separation_model(None, loader, fe, scorings=("oracle",))
    with pytest.raises(ValueError, match="Unknown scoring"):
        scoring_masks("oracle", loader[0], fe, None)
    assert evaluate_separation_model(IdealMaskModel(), loader, fe, max_mixtures=1)["num_mixtures"] == 1
    ratio = torch.full((1, 2, 4, 4), 0.3)  # ratio masks are scored as they are (Sound-of-Pixels' evaluation)
    assert scoring_masks("threshold", loader[0], fe, ratio, mask_type="ratio") is ratio
    assert not scoring_masks("threshold", loader[0], fe, ratio).any()
    # masks normalised across the sources are in [0, 1] whatever their targets: thresholded (the louder source's)
    shared = torch.tensor([0.7, 0.3])[None, :, None, None].expand(1, 2, 4, 4)
    thresholded = scoring_masks("threshold", loader[0], fe, shared, mask_type="ratio", mask_activation="softmax")
    assert torch.equal(thresholded, (shared > 0.5).float())


def test_on_batch_sees_each_batch_with_its_masks_and_results(batches):
    """`on_batch(batch, masks, results)`: once per batch, the predicted masks (None without a model) and every
    scoring's per-mixture result, the same numbers that the means are made of; a generator works as the loader."""
    fe, loader = batches
    seen = []
    out = evaluate_separation_model(
        IdealMaskModel(0.6, 0.3), (batch for batch in loader), fe, scorings=("soft", "ideal_ratio"),
        on_batch=lambda batch, masks, results: seen.append((batch, masks, results)),
    )  # fmt: skip
    assert [batch is original for (batch, _, _), original in zip(seen, loader)] == [True, True]
    torch.testing.assert_close(seen[1][1], loader[1]["labels"] * 0.6 + (1 - loader[1]["labels"]) * 0.3)
    assert set(seen[0][2]) == {"soft", "ideal_ratio"}
    sdr = [float(r["soft"]["sdr"][0]) for _, _, r in seen]
    assert math.isclose(out["sdr"], sum(sdr) / 2, rel_tol=1e-9)
    ceiling = []
    evaluate_separation_model(None, loader, fe, scorings=("ideal_binary",), on_batch=lambda b, m, r: ceiling.append(m))
    assert ceiling == [None, None]


def test_the_metrics_table_names_the_protocol_the_masks_got():
    """`tribert evaluate`'s table: binary and softmax masks are thresholded (masks > 0.5), sigmoid ratio masks are
    scored as they are and the row says so instead of claiming a threshold."""
    from tribert_hf.pipelines.evaluate import metrics_table

    scores = {"sdr": 3.0, "sir": 4.0, "sar": 10.0}
    summary = {
        "dataset": "synthetic:tiny", "split": "test", "num_mixtures": 2, "num_mix": 2, "segment_seconds": 1.0,
        "num_skipped": 0, "backend": "fast", "checkpoint": "ckpt", "model": scores, "mixture": scores,
        "improvement": scores, "threshold": scores,
    }  # fmt: skip
    for mask_type, activation, thresholded in [("binary", "sigmoid", True), ("ratio", "softmax", True), ("ratio", "sigmoid", False)]:
        table = metrics_table({**summary, "mask_type": mask_type, "mask_activation": activation})
        assert ("| model, masks > 0.5 (SoP protocol, as the paper) |" in table) is thresholded, (mask_type, activation)
        assert ("| model, SoP protocol (ratio masks as they are) |" in table) is not thresholded
    assert "masks > 0.5" in metrics_table(summary)  # summaries written before the fields: binary, as then

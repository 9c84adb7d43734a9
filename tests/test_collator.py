"""Mix-and-separate batches from the synthetic dataset, end to end into a tiny separation model."""

import pytest
import torch
from test_heads import head_config

from tribert_hf import TriBertFeatureExtractor, TriBertForSourceSeparation, TriBertProcessor, TriBertVideoProcessor
from tribert_hf.data import MixAndSeparateCollator, PreparedClipFeaturizer, load_synthetic_music


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root, dataset = load_synthetic_music("tiny", cache_dir=str(tmp_path_factory.mktemp("synthetic")), progress=False)
    # 4095-sample crops on 32 log-frequency rows: 32 x 16 spectrograms, what the tiny U-Net takes
    fe = TriBertFeatureExtractor(num_samples=4095, num_frequency_bins=32)
    processor = TriBertProcessor(fe, TriBertVideoProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), num_pose_frames=16)
    featurize = PreparedClipFeaturizer(root, processor, crop="random", seed=3, return_waveform=True)
    split = dataset["train"].select(range(8))
    features = split.map(featurize, batched=True, with_indices=True, remove_columns=split.column_names, features=featurize.features)
    features.set_format("torch")
    return fe, features


def test_mixtures_and_targets(clips):
    fe, features = clips
    collate = MixAndSeparateCollator(fe, num_mix=2)
    batch = collate([features[i] for i in range(4)])
    assert batch["pixel_values"].shape == (2, 2, 3, 3, 32, 32)
    assert batch["pose_keypoints"].shape == (2, 2, 2, 16, 68, 3) and batch["pose_mask"].shape == (2, 2, 2)
    assert batch["audio_spectrogram"].shape == (2, 1, 32, 16) and batch["labels"].shape == (2, 2, 32, 16)
    torch.testing.assert_close(batch["mixture_waveform"], batch["source_waveforms"].sum(1))
    expected = fe(batch["mixture_waveform"].numpy(), sampling_rate=fe.sampling_rate, return_tensors="pt")["audio_spectrogram"]
    torch.testing.assert_close(batch["audio_spectrogram"], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch["labels"].sum(1), torch.ones(2, 32, 16))
    assert batch["class_labels"].sum(-1).min() >= 1
    with pytest.raises(ValueError, match="not a multiple of num_mix=2"):
        collate([features[i] for i in range(3)])
    with pytest.raises(ValueError, match="return_waveform=True"):
        collate([{k: v for k, v in features[i].items() if k != "waveform"} for i in range(2)])


def test_a_training_step_on_collated_mixtures(clips):
    fe, features = clips
    loader = torch.utils.data.DataLoader(features, batch_size=4, collate_fn=MixAndSeparateCollator(fe, num_mix=2))
    config = head_config()
    torch.manual_seed(0)
    model = TriBertForSourceSeparation(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = next(iter(loader))
    inputs = {k: batch[k] for k in ("pixel_values", "pose_keypoints", "pose_mask", "audio_spectrogram", "labels", "loss_weight")}
    losses = []
    for _ in range(5):
        loss = model(**inputs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_gain_jitter_scales_each_clip_and_resumes_with_the_same_draws(clips):
    """gain_range: every clip of a mixture gets its own gain in [low, high] before mixing; the targets follow the
    scaled clips; the generator's state round-trips through state_dict (a resumed run draws the same gains)."""
    fe, features = clips
    examples = [features[i] for i in range(4)]
    plain = MixAndSeparateCollator(fe, num_mix=2)(examples)
    collate = MixAndSeparateCollator(fe, num_mix=2, gain_range=(0.5, 1.5), seed=3)
    state = collate.state_dict()
    first = collate(examples)
    gains = first["source_waveforms"].abs().amax(-1) / plain["source_waveforms"].abs().amax(-1)
    assert ((gains >= 0.5) & (gains <= 1.5)).all() and gains.std() > 0.01
    torch.testing.assert_close(first["source_waveforms"], plain["source_waveforms"] * gains[..., None])
    torch.testing.assert_close(first["mixture_waveform"], first["source_waveforms"].sum(1))
    second = collate(examples)
    assert not torch.allclose(second["source_waveforms"], first["source_waveforms"])  # new gains every call
    collate.load_state_dict(state)
    torch.testing.assert_close(collate(examples)["source_waveforms"], first["source_waveforms"])
    with pytest.raises(ValueError, match="gain_range"):
        MixAndSeparateCollator(fe, gain_range=(0.0, 1.0))


def test_mixture_batch_sampler_plain_same_class_and_epochs():
    import numpy as np

    from tribert_hf.data import MixtureBatchSampler

    labels = [{"violin"}, {"flute"}, {"violin"}, {"cello"}, {"flute"}, {"violin", "cello"}, {"drum"}, {"flute"}] * 2
    clip_ids = list(range(8)) * 2  # two crops of each of 8 clips
    plain = MixtureBatchSampler(labels, mixtures_per_batch=2, num_mix=2, seed=3, clip_ids=clip_ids)
    assert len(plain) == 4
    order = np.random.default_rng([3, 0]).permutation(16).tolist()
    assert [row for batch in plain for row in batch] == order  # p = 0: the epoch's permutation, in groups
    same = MixtureBatchSampler(labels, mixtures_per_batch=2, num_mix=2, same_class_fraction=1.0, seed=3, clip_ids=clip_ids)
    first = list(same)
    assert first == list(same)  # the same epoch draws the same batches
    for batch in first:
        for a, b in zip(batch[::2], batch[1::2]):
            assert labels[a] & labels[b] and clip_ids[a] != clip_ids[b]  # a shared class, two different clips
    assert "drum" not in same.rows_by_class  # one drum clip (two crops) cannot make a same-class mixture
    same.sampler.set_epoch(1)  # what accelerate calls (also through a sharded batch sampler)
    assert list(same) != first
    half = MixtureBatchSampler(labels * 8, mixtures_per_batch=4, num_mix=2, same_class_fraction=0.5, seed=0)
    pairs = [(batch[k], batch[k + 1]) for batch in half for k in range(0, 8, 2)]
    shared = sum(bool((labels * 8)[a] & (labels * 8)[b]) for a, b in pairs) / len(pairs)
    assert 0.45 < shared < 0.8  # half drawn same-class, plus the random pairs that happen to share one
    with pytest.raises(ValueError, match="same_class_fraction must be in"):
        MixtureBatchSampler(labels, 2, same_class_fraction=1.5)
    with pytest.raises(ValueError, match="needs a class with 2 different clips"):
        MixtureBatchSampler([{"a"}, {"b"}], 1, same_class_fraction=0.5)

"""`pose_config.gcn_frame_stride` (ours, not in the paper): the ST-GCN sees every k-th keypoint frame while the
separation's pose timeline sees all of them: with k x T0 frames the pose tokens are exactly those of T0 frames, and
the timeline is k times finer. The config's rules, that equivalence, the timeline reading the frames the ST-GCN
skips, and training with `--num_pose_frames` / `--gcn_frame_stride` (the processor follows the config)."""

import json

import pytest
import torch
from huggingface_hub.errors import StrictDataclassFieldValidationError
from test_heads import head_config, mixture_inputs
from test_timeline_maps import TINY_TRAINING

from tribert_hf import TriBertConfig, TriBertForPreTraining, TriBertForSourceSeparation, TriBertModel


def temporal_config(num_pose_frames, stride=1):
    config = head_config(separation_conditioning="temporal", separation_condition_maps=3, separation_timeline_maps=True)
    config.pose_config.num_pose_frames = num_pose_frames
    config.pose_config.gcn_frame_stride = stride
    config.pose_config._check_architecture()
    return config


def test_the_config_field_and_its_rules(tmp_path):
    assert TriBertConfig().pose_config.gcn_frame_stride == 1
    with pytest.raises(ValueError, match="gcn_frame_stride must be a positive number, got 0"):
        temporal_config(16, 0)
    for bad in (1.5, True):  # the strict dataclass's type check
        with pytest.raises(StrictDataclassFieldValidationError, match="gcn_frame_stride' expected int"):
            temporal_config(16, bad)
    with pytest.raises(ValueError, match="gcn_frame_stride 32 leaves the ST-GCN no frame of the 16 keypoint frames"):
        temporal_config(16, 32)
    # a config saved before the field existed loads with the ST-GCN over every frame
    temporal_config(16, 2).save_pretrained(tmp_path)
    data = json.load(open(tmp_path / "config.json"))
    assert data["pose_config"]["gcn_frame_stride"] == 2
    del data["pose_config"]["gcn_frame_stride"]
    json.dump(data, open(tmp_path / "config.json", "w"))
    assert TriBertConfig.from_pretrained(tmp_path).pose_config.gcn_frame_stride == 1


@pytest.mark.parametrize("stride", [2, 4])
def test_the_tokens_are_those_of_the_coarse_frames(stride):
    """k x T0 frames at stride k: the same pose tokens (and every stream's output) as T0 frames, the same weights,
    given the k-th frames; the pose frame features (the timeline's ST-GCN input) too."""
    coarse_config, fine_config = temporal_config(8), temporal_config(8 * stride, stride)
    torch.manual_seed(0)
    coarse = TriBertModel(coarse_config).eval()
    fine = TriBertModel(fine_config).eval()
    fine.load_state_dict(coarse.state_dict())
    inputs = mixture_inputs(fine_config, batch=1, videos=2)
    clips = {k: inputs[k].flatten(0, 1) for k in ("pixel_values", "pose_keypoints", "pose_mask")}
    spectrogram = torch.rand(2, 1, fine_config.audio_config.num_frequency_bins, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out_fine = fine(**clips, audio_spectrogram=spectrogram)
        out_coarse = coarse(**{**clips, "pose_keypoints": clips["pose_keypoints"][:, :, ::stride]}, audio_spectrogram=spectrogram)
    for name in ("vision_last_hidden_state", "pose_last_hidden_state", "audio_last_hidden_state", "pose_frame_features"):
        torch.testing.assert_close(getattr(out_fine, name), getattr(out_coarse, name), msg=name)


def test_the_timeline_sees_the_frames_the_graph_network_skips():
    """Moving the joints in a keypoint frame the ST-GCN skips changes the masks (through the timeline) and leaves
    the pose tokens as they were."""
    config = temporal_config(32, 4)
    torch.manual_seed(0)
    model = TriBertForSourceSeparation(config).eval()
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():  # the timeline's map weights start at zero: draw them, so that the timeline matters
        for parameter in model.separation.timeline_maps.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    inputs = mixture_inputs(config, batch=1, videos=2, frames=128)
    moved = {k: v.clone() for k, v in inputs.items()}
    moved["pose_keypoints"][:, :, :, 1, :, :2] += 0.2  # frame 1: not one of the ST-GCN's (0, 4, 8, ...)
    with torch.no_grad():
        before, after = model(**inputs), model(**moved)
        tokens = [model.tribert(**{k: v.flatten(0, 1) for k, v in x.items() if k != "audio_spectrogram"},
                                audio_spectrogram=x["audio_spectrogram"].repeat(2, 1, 1, 1)).pose_last_hidden_state
                  for x in (inputs, moved)]  # fmt: skip
    torch.testing.assert_close(tokens[0], tokens[1])
    assert (before.logits - after.logits).abs().max() > 1e-3


def test_training_with_the_options_and_their_errors(tmp_path):
    from tribert_hf.training.separation import main

    common = TINY_TRAINING
    out = tmp_path / "run"
    main([*common, "--model", "tribert_temporal_maps", "--num_pose_frames", "64", "--gcn_frame_stride", "2", "--output_dir", str(out)])
    model = TriBertForPreTraining.from_pretrained(out)
    assert (model.config.pose_config.num_pose_frames, model.config.pose_config.gcn_frame_stride) == (64, 2)
    assert json.load(open(out / "processor_config.json"))["num_pose_frames"] == 64  # the processor follows
    assert "64 keypoint frames a window; the ST-GCN (the pose tokens) sees one in 2" in open(out / "README.md").read()  # the card
    with pytest.raises(ValueError, match="--gcn_frame_stride is an option of TriBERT models .* not of --model sop"):
        main([*common, "--model", "sop", "--gcn_frame_stride", "2", "--output_dir", str(tmp_path / "sop")])
    with pytest.raises(ValueError, match="--num_pose_frames 32 differs from .*pose_config.num_pose_frames 64: train from scratch"):
        main([*common, "--model_name_or_path", str(out), "--num_pose_frames", "32", "--output_dir", str(tmp_path / "again")])

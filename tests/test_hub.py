"""Model card and the push-to-hub path, up to the upload (there is no hub here: the API is a recording stand-in)."""

import pytest

from tribert_hf.hub import push_folder, resolve_hub_model_id, write_model_card


def test_repo_ids():
    assert resolve_hub_model_id("/tmp/runs/tribert-music21/") == "tribert-music21"
    assert resolve_hub_model_id("/tmp/x", "me/tribert") == "me/tribert"
    with pytest.raises(ValueError, match="not a valid hub repository id"):
        resolve_hub_model_id("/tmp/x", "a/b/c")
    with pytest.raises(ValueError, match="not a valid hub repository id"):
        resolve_hub_model_id("/tmp/x", "bad name with spaces")


def test_model_card(tmp_path):
    history = [
        {"step": 50, "sdr": 1.234, "sir": 2.0, "sar": 9.0, "sdr_mixture": 0.1, "num_mixtures": 8},
        {"step": 100, "sdr": 3.5, "sir": 5.0, "sar": 10.0, "sdr_mixture": 0.1, "num_mixtures": 8},
    ]
    path = write_model_card(str(tmp_path), {"learning_rate": 1e-5, "num_mix": 2}, "synthetic:small", {"train": 64, "val": 16}, history[1], history)
    card = open(path).read()
    assert card.startswith("---\nlibrary_name: transformers")
    assert "| 50 | 1.23 | 2.00 | 9.00 | 0.10 | 8 |" in card and "Best SDR 3.50 dB at step 100" in card
    assert "`synthetic:small`" in card and "train 64, val 16" in card and '"learning_rate": 1e-05' in card
    assert "license: apache-2.0" in card and "pipeline_tag: audio-to-audio" in card
    assert "REPO" not in card and repr(str(tmp_path)) in card  # no placeholder: the folder, or the hub id below
    assert "binary mask targets (weighted BCE), one sigmoid mask per source (the paper's)" in card  # no config: defaults
    (tmp_path / "config.json").write_text('{"architectures": ["TriBertForSourceSeparation"]}')
    card = open(write_model_card(str(tmp_path), {}, "d", {}, None, [], repo_id="me/tribert")).read()
    assert "TriBertForSourceSeparation.from_pretrained('me/tribert')" in card
    assert "pipeline(\"audio-source-separation\", model='me/tribert', trust_remote_code=True)" in card
    (tmp_path / "config.json").write_text('{"architectures": ["TriBertForPreTraining"], "mask_type": "ratio", "mask_activation": "softmax"}')
    card = open(write_model_card(str(tmp_path), {}, "d", {}, None, [])).read()
    assert "ratio mask targets (weighted L1), masks normalised across the mixture's sources" in card
    assert "separation_output_stride" not in card
    (tmp_path / "config.json").write_text('{"architectures": ["TriBertForPreTraining"], "separation_output_stride": 2}')
    card = open(write_model_card(str(tmp_path), {}, "d", {}, None, [])).read()
    assert "its mask logits upsampled x2 (`separation_output_stride = 2`, not in the paper)" in card


class RecordingApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, private=False, exist_ok=False):
        self.calls.append(("create_repo", repo_id, private, exist_ok))
        return f"https://hub.example/{repo_id}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))


def test_push_folder_creates_the_repo_and_uploads_the_folder_without_checkpoints(tmp_path):
    api = RecordingApi()
    url = push_folder(str(tmp_path), "me/tribert", private=True, api=api)
    assert url == "https://hub.example/me/tribert"
    assert api.calls[0] == ("create_repo", "me/tribert", True, True)
    upload = api.calls[1][1]
    assert upload["repo_id"] == "me/tribert" and upload["folder_path"] == str(tmp_path)
    assert {"checkpoints/*", "logs/*", "feature_cache/*"} <= set(upload["ignore_patterns"])

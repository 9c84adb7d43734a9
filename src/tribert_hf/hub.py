"""Model cards and the push-to-hub path of the training recipes."""

import json
import os

from huggingface_hub import HfApi
from huggingface_hub.utils import HFValidationError, validate_repo_id


def resolve_hub_model_id(output_dir: str, hub_model_id: str | None = None) -> str:
    """`hub_model_id` if given (`"name"` or `"namespace/name"`), else the output folder's name; checked."""
    repo_id = hub_model_id or os.path.basename(os.path.normpath(output_dir))
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{repo_id!r} is not a valid hub repository id: {error}") from error
    return repo_id


def write_model_card(
    output_dir: str, training_arguments: dict, dataset: str, split_sizes: dict, best: dict | None, history: list[dict],
    repo_id: str | None = None,
) -> str:
    """Write `README.md` (a hub model card) describing the run: data, split, metrics, training arguments.

    `repo_id` (the hub repository the folder goes to) appears in the usage snippet; without it, the folder's path.
    The model class is read from the folder's `config.json` (`architectures`) when it is there.
    """
    repo = repo_id or os.path.abspath(output_dir)
    model_class, config = "TriBertForPreTraining", {}
    config_path = os.path.join(output_dir, "config.json")
    if os.path.isfile(config_path):
        with open(config_path) as f:
            config = json.load(f)
        model_class = (config.get("architectures") or [model_class])[0]
    lines = [
        "---",
        "library_name: transformers",
        "license: apache-2.0",
        "pipeline_tag: audio-to-audio",
        "tags: [tribert, audio-visual, source-separation, music]",
        "---",
        "",
        "# TriBERT (tribert_hf)",
        "",
        "TriBERT (Rahman, Xu & Sigal, NeurIPS 2021) trained with `examples/run_separation.py` of tribert_hf: vision, "
        "body/hand pose and audio streams with tri-modal co-attention, pre-trained jointly for instrument "
        "classification and mix-and-separate sound separation.",
        "",
        "```python",
        "import tribert_hf  # registers the classes (or use trust_remote_code=True without it)",
        f"from tribert_hf import {model_class}, TriBertProcessor",
        f"model = {model_class}.from_pretrained({repo!r})",
        f"processor = TriBertProcessor.from_pretrained({repo!r})",
        "```",
        "",
        "Without tribert_hf installed, the folder's own code loads it:",
        "",
        "```python",
        "from transformers import AutoModel, pipeline",
        f"model = AutoModel.from_pretrained({repo!r}, trust_remote_code=True)",
        f'separator = pipeline("audio-source-separation", model={repo!r}, trust_remote_code=True)',
        'players = separator("performance.mp4")  # one waveform per player',
        "```",
        "",
        *_conditioning_lines(config),
        "## Data",
        "",
        f"Dataset: `{dataset}`. Split sizes (clips): " + ", ".join(f"{k} {v}" for k, v in split_sizes.items()) + ".",
        "Mixtures of `num_mix` clips (`mix = a1 + a2`), " + _mask_text(config) + ", loss weighted by log1p of the mixture.",
        "",
        "## Evaluation (validation mixtures, fast BSS Eval v3, dB)",
        "",
        "| step | SDR | SIR | SAR | mixture SDR | mixtures |",
        "|---|---|---|---|---|---|",
    ]
    for row in history:
        lines.append(
            f"| {row['step']} | {row['sdr']:.2f} | {row['sir']:.2f} | {row['sar']:.2f} | {row['sdr_mixture']:.2f} | {row['num_mixtures']} |"
        )
    if best:
        lines += ["", f"Best SDR {best['sdr']:.2f} dB at step {best['step']} (kept in `best/`)."]
    lines += ["", "## Training arguments", "", "```json", json.dumps(training_arguments, indent=2, sort_keys=True), "```", ""]
    path = os.path.join(output_dir, "README.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


CONDITIONING_TEXT = {
    "pooled": "the paper's: the U-Net is conditioned on each video's pooled `<SOS>` outputs (one vector per video: "
    "which instrument to extract, not when it plays).",
    "temporal": "not in the paper: besides the pooled `<SOS>` outputs, each video's pose timeline (joint velocities "
    "and ST-GCN features per keypoint frame, aligned with the spectrogram's frames) scales and shifts the U-Net's "
    "decoder frame by frame, so that it can tell two players of the same instrument apart by when each plays. "
    "`tribert separate` conditions every segment on the keypoints of its own time window.",
}


def _mask_text(config: dict) -> str:
    """What the model's masks are (`mask_type`, `mask_activation`; configs saved before a field: its default)."""
    mask_type, activation = config.get("mask_type", "binary"), config.get("mask_activation", "sigmoid")
    targets = "binary mask targets (weighted BCE)" if mask_type == "binary" else "ratio mask targets (weighted L1)"
    masks = (
        "masks normalised across the mixture's sources (`mask_activation = \"softmax\"`: they sum to 1 per bin)"
        if activation == "softmax"
        else "one sigmoid mask per source (the paper's)"
    )
    if config.get("separation_output_stride", 1) == 2:
        masks += (
            "; the U-Net's last layer at half resolution and its mask logits upsampled x2 (`separation_output_stride = 2`,"
            " not in the paper)"
        )
    return f"{targets}, {masks}"


def _conditioning_lines(config: dict) -> list[str]:
    """The card's "Separation conditioning" section, for a TriBERT config (baselines have none)."""
    if config.get("model_type", "tribert") != "tribert":
        return []
    conditioning = config.get("separation_conditioning", "pooled")  # configs saved before the field: pooled
    text = CONDITIONING_TEXT.get(conditioning, "")
    if config.get("separation_timeline_maps"):
        text += (
            " With `separation_timeline_maps = true` the timeline also carries the joints' positions relative to the"
            " person (where the hand is along the instrument), and it weights the U-Net's condition maps frame by frame."
        )
    pose = config.get("pose_config") or {}
    if conditioning == "temporal" and pose.get("num_pose_frames"):
        stride = pose.get("gcn_frame_stride", 1)
        text += f" The timeline has {pose['num_pose_frames']} keypoint frames a window" + (
            f"; the ST-GCN (the pose tokens) sees one in {stride} (`gcn_frame_stride = {stride}`)." if stride > 1 else "."
        )
    if config.get("separation_timeline_spectrum"):
        text += (
            " With `separation_timeline_spectrum = true` a small network of the timeline and the condition also adds a"
            " value per frequency bin to the mask logits at every frame (a prior over the bins from the pose)."
        )
    return ["## Separation conditioning", "", f"`separation_conditioning = \"{conditioning}\"`: {text}", ""]


def push_folder(output_dir: str, repo_id: str, token: str | None = None, private: bool = False, api: HfApi | None = None) -> str:
    """Create the hub repository if needed and upload `output_dir` (checkpoints and logs left out); returns its URL."""
    api = api or HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id, folder_path=output_dir, commit_message="Upload TriBERT trained with tribert_hf",
        ignore_patterns=["checkpoints/*", "logs/*", "processes/*", "feature_cache/*", ".tmp-*"],
    )  # fmt: skip
    return str(url)


__all__ = ["CONDITIONING_TEXT", "push_folder", "resolve_hub_model_id", "write_model_card"]

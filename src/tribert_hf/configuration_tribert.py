"""TriBERT configuration: one typed sub-config per stream plus the tri-modal co-attention settings.

Defaults reproduce the paper (Rahman et al., NeurIPS 2021) and the original code's
``multi_modal_bert_base_layer_conect.json``: vision/pose hidden size 1024, audio 512, 8 heads,
6 self-attention layers per stream each preceded by a tri-modal co-attention layer of width 512.
A config holds architecture only: sample rates, FFT sizes and mask thresholds belong to the
feature extractor, learning rates to the training arguments.
"""


from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

from tribert_hf.separation.losses import check_mask_options
from tribert_hf.separation.unet import bottleneck_channels

from .remote_code import RemoteCodeMixin


# The 21 instrument classes of MUSIC21, in the order of the dataset's JSON lists (alphabetical).
MUSIC21_LABELS = (
    "accordion",
    "acoustic_guitar",
    "bagpipe",
    "banjo",
    "bassoon",
    "cello",
    "clarinet",
    "congas",
    "drum",
    "electric_bass",
    "erhu",
    "flute",
    "guzheng",
    "piano",
    "pipa",
    "saxophone",
    "trumpet",
    "tuba",
    "ukulele",
    "violin",
    "xylophone",
)

# The 11 classes of MUSIC (a subset of MUSIC21), used when fine-tuning MUSIC21 -> MUSIC.
MUSIC_LABELS = (
    "accordion",
    "acoustic_guitar",
    "cello",
    "clarinet",
    "erhu",
    "flute",
    "saxophone",
    "trumpet",
    "tuba",
    "violin",
    "xylophone",
)

# Retrieval variants of the paper's Table 3: query streams -> candidate stream, and the n of the n-way choice.
RETRIEVAL_VARIANTS = {
    "audio_to_vision": (("audio",), "vision", 3),
    "vision_to_audio": (("vision",), "audio", 3),
    "audio_to_pose": (("audio",), "pose", 3),
    "pose_to_audio": (("pose",), "audio", 3),
    "vision_audio_to_pose": (("vision", "audio"), "pose", 4),
}

# How the separation U-Net is conditioned: "pooled", the paper's (each video's pooled `<SOS>` outputs, one vector);
# "temporal" (ours) also per time frame, by the video's pose timeline (`TriBertPoseTimeline`).
SEPARATION_CONDITIONINGS = ("pooled", "temporal")

_ACTIVATIONS = ("gelu", "relu", "silu", "gelu_new", "tanh", "gelu_pytorch_tanh")


def check_positive(config, names):
    """Raise a `ValueError` naming the first of the fields `names` of `config` that is not a positive number."""
    for name in names:
        value = getattr(config, name)
        if value is None or value <= 0:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive number, got {value!r}.")


def check_output_stride(config):
    """Raise a `ValueError` unless `config.separation_output_stride` is 1 or 2 (the U-Net's last layer at full or half
    resolution: `TriBertSeparationHead`'s `output_stride`)."""
    if config.separation_output_stride not in (1, 2) or isinstance(config.separation_output_stride, bool):
        raise ValueError(
            f"{type(config).__name__}.separation_output_stride must be 1 (the U-Net's last layer at full resolution) or 2 "
            f"(at half, its output upsampled), got {config.separation_output_stride!r}."
        )


def _check_probability(config, names):
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{type(config).__name__}.{name} must be in [0, 1), got {value!r}.")


class _TriBertStreamConfig(PreTrainedConfig):
    """Fields and checks shared by the three stream configs (a BERT-style transformer per stream)."""

    hidden_size: int = 1024
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    intermediate_size: int = 1024
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    layer_norm_eps: float = 1e-12
    # ViLBERT's `*_biattention_id`: co-attention layer i runs after this stream's self-attention
    # layers [0, co_attention_ids[i]). [0, 1, ..., 5] with 6 layers interleaves co, self, co, self...
    co_attention_ids: list[int] | tuple[int, ...] = (0, 1, 2, 3, 4, 5)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self._check_architecture()

    def _check_architecture(self):
        """Raise a `ValueError` naming the field for values the model cannot be built with."""
        check_positive(self, ("hidden_size", "num_attention_heads", "intermediate_size", "layer_norm_eps"))
        if self.num_hidden_layers < 0:
            raise ValueError(f"{type(self).__name__}.num_hidden_layers must be >= 0, got {self.num_hidden_layers}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"{type(self).__name__}.hidden_size ({self.hidden_size}) is not divisible by "
                f"num_attention_heads ({self.num_attention_heads})."
            )
        _check_probability(self, ("hidden_dropout_prob", "attention_probs_dropout_prob"))
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"{type(self).__name__}.hidden_act must be one of {_ACTIVATIONS}, got {self.hidden_act!r}.")
        ids = list(self.co_attention_ids)
        if any(not isinstance(i, int) for i in ids) or ids != sorted(ids):
            raise ValueError(f"{type(self).__name__}.co_attention_ids must be non-decreasing integers, got {ids}.")
        if ids and (ids[0] < 0 or ids[-1] > self.num_hidden_layers):
            raise ValueError(
                f"{type(self).__name__}.co_attention_ids must lie in [0, num_hidden_layers={self.num_hidden_layers}], "
                f"got {ids}."
            )


@strict
class TriBertVisionConfig(_TriBertStreamConfig):
    r"""Vision stream: ResNet backbone -> 3x3 conv -> weakly supervised segmentation attention -> tokens.

    Args:
        backbone_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the frame backbone, built with `transformers.load_backbone`. Defaults to ResNet-50
            (`ResNetConfig()`) returning its last stage (`out_features=["stage4"]`, 2048 channels, 7x7 at 224x224).
        backbone (`str`, *optional*):
            Hub id or local folder of a pretrained backbone checkpoint (e.g. a local copy of `microsoft/resnet-50`),
            loaded when `use_pretrained_backbone=True`.
        use_pretrained_backbone (`bool`, defaults to `False`):
            Load the backbone weights from `backbone` when the model is built. Saved TriBERT checkpoints store
            `False` here because their own weights already contain the backbone.
        num_channels (`int`, defaults to 3): channels of the input frames.
        image_size (`int`, defaults to 224): height and width of the input frames, in pixels.
        num_frames (`int`, defaults to 3): frames per clip.
        num_objects (`int`, defaults to 2): "objects" (top-scoring classes) pooled per frame.
        feature_size (`int`, defaults to 1024): channels of the spatial map V_e after the 3x3 conv.
        segmentation_dropout (`float`, defaults to 0.1): dropout inside both attention branches.
        mask_probability (`float`, defaults to 0.15): fraction of visual region tokens masked in training.
    """

    model_type = "tribert_vision"
    base_config_key = "vision_config"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(
            config_class=AutoConfig, model_type="resnet", init_kwargs={"out_features": ["stage4"]}
        ),
    }

    backbone_config: dict | PreTrainedConfig | None = None
    backbone: str | None = None
    use_pretrained_backbone: bool = False
    num_channels: int = 3
    image_size: int = 224
    num_frames: int = 3
    num_objects: int = 2
    feature_size: int = 1024
    segmentation_dropout: float | int = 0.1
    mask_probability: float | int = 0.15

    def _check_architecture(self):
        super()._check_architecture()
        check_positive(self, ("num_channels", "image_size", "num_frames", "num_objects", "feature_size"))
        _check_probability(self, ("segmentation_dropout", "mask_probability"))
        if self.use_pretrained_backbone and not self.backbone:
            raise ValueError(
                "TriBertVisionConfig.use_pretrained_backbone=True needs `backbone`, the hub id or local folder of "
                "the backbone checkpoint (e.g. a local copy of 'microsoft/resnet-50')."
            )


@strict
class TriBertPoseConfig(_TriBertStreamConfig):
    r"""Pose stream: ST-GCN over the 68-joint Halpe graph -> one token per (segment, person).

    Args:
        num_joints (`int`, defaults to 68): 26 body + 21 left-hand + 21 right-hand joints (Halpe layout).
        num_persons (`int`, defaults to 2): persons per clip (absent ones are masked).
        num_pose_frames (`int`, defaults to 256): keypoint frames per clip (T) the processor produces.
        num_segments (`int`, defaults to 3): temporal segments = tokens per person: the T keypoint frames
            average-pooled into equal parts (about 2 s each of the 6-s window; not aligned with the 3 visual
            frames, which span about 0.4 s).
        in_channels (`int`, defaults to 3): x, y, confidence.
        graph_layout (`str`, defaults to `"halpe68"`): skeleton, see `tribert_hf.pose.graph`.
        gcn_channels / gcn_strides: output channels and temporal stride of each ST-GCN block (ST-GCN's 10 blocks).
        temporal_kernel_size (`int`, defaults to 9): temporal convolution width of each block.
        gcn_dropout (`float`, defaults to 0.0): dropout inside the temporal convolutions.
        gcn_frame_stride (`int`, defaults to 1): the ST-GCN (hence the pose tokens) sees every k-th of the T keypoint
            frames, at the cost of T / k; the separation's pose timeline (`separation_conditioning="temporal"`) still
            sees all T. With T = k x T0 the ST-GCN's input is exactly that of T0 frames (frame i at i / T0 of the
            window): a finer timeline at the tokens' cost of T0 (not in the paper; 1: the paper's ST-GCN over all).
    """

    model_type = "tribert_pose"
    base_config_key = "pose_config"

    num_joints: int = 68
    num_persons: int = 2
    num_pose_frames: int = 256
    num_segments: int = 3
    in_channels: int = 3
    graph_layout: str = "halpe68"
    gcn_channels: list[int] | tuple[int, ...] = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
    gcn_strides: list[int] | tuple[int, ...] = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    temporal_kernel_size: int = 9
    gcn_dropout: float | int = 0.0
    gcn_frame_stride: int = 1

    def _check_architecture(self):
        super()._check_architecture()
        check_positive(
            self,
            ("num_joints", "num_persons", "num_pose_frames", "num_segments", "in_channels", "temporal_kernel_size", "gcn_frame_stride"),
        )
        if self.gcn_frame_stride > self.num_pose_frames:
            raise ValueError(
                f"TriBertPoseConfig.gcn_frame_stride {self.gcn_frame_stride} leaves the ST-GCN no frame of the "
                f"{self.num_pose_frames} keypoint frames (num_pose_frames): it must be at most num_pose_frames."
            )
        _check_probability(self, ("gcn_dropout",))
        if len(self.gcn_channels) == 0 or len(self.gcn_channels) != len(self.gcn_strides):
            raise ValueError(
                "TriBertPoseConfig.gcn_channels and gcn_strides must be non-empty and of equal length, got "
                f"{list(self.gcn_channels)} and {list(self.gcn_strides)}."
            )
        if any(c <= 0 for c in self.gcn_channels) or any(s <= 0 for s in self.gcn_strides):
            raise ValueError("TriBertPoseConfig.gcn_channels and gcn_strides must be positive.")
        if self.temporal_kernel_size % 2 == 0:
            raise ValueError(f"TriBertPoseConfig.temporal_kernel_size must be odd, got {self.temporal_kernel_size}.")
        from tribert_hf.pose.graph import GRAPH_LAYOUTS

        if self.graph_layout not in GRAPH_LAYOUTS:
            raise ValueError(f"TriBertPoseConfig.graph_layout must be one of {sorted(GRAPH_LAYOUTS)}, got {self.graph_layout!r}.")
        if GRAPH_LAYOUTS[self.graph_layout]["num_joints"] != self.num_joints:
            raise ValueError(
                f"TriBertPoseConfig.num_joints={self.num_joints} does not match graph_layout {self.graph_layout!r} "
                f"({GRAPH_LAYOUTS[self.graph_layout]['num_joints']} joints)."
            )


@strict
class TriBertAudioConfig(_TriBertStreamConfig):
    r"""Audio stream: VGGish-style CNN over the log-frequency magnitude -> one global feature, repeated.

    Args:
        num_frequency_bins (`int`, defaults to 256): log-frequency bins of the input spectrogram.
        cnn_layers (`list`, defaults to VGGish's): conv output channels, `"M"` for a 2x2 max-pool.
        use_batch_norm (`bool`, defaults to `True`): batch norm after each conv (training from scratch).
        feature_size (`int`, defaults to 2048): width of the fully connected embedding after global pooling.
        sequence_length (`int`, defaults to 6): how many times the global feature is repeated (stream length
            without `<SOS>`), the same as the 3 x 2 tokens of the other streams.
        apply_log (`bool`, defaults to `True`): the model takes a magnitude and applies `log(x + log_eps)`.
        log_eps (`float`, defaults to 1e-10).
    """

    model_type = "tribert_audio"
    base_config_key = "audio_config"

    hidden_size: int = 512
    num_frequency_bins: int = 256
    cnn_layers: list[int | str] | tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")
    use_batch_norm: bool = True
    feature_size: int = 2048
    sequence_length: int = 6
    apply_log: bool = True
    log_eps: float = 1e-10

    def _check_architecture(self):
        super()._check_architecture()
        check_positive(self, ("num_frequency_bins", "feature_size", "sequence_length", "log_eps"))
        if not any(isinstance(c, int) for c in self.cnn_layers):
            raise ValueError("TriBertAudioConfig.cnn_layers needs at least one convolution (an integer).")
        for c in self.cnn_layers:
            if not ((isinstance(c, int) and c > 0) or c == "M"):
                raise ValueError(f"TriBertAudioConfig.cnn_layers entries must be positive ints or 'M', got {c!r}.")


@strict
class TriBertConfig(RemoteCodeMixin, PreTrainedConfig):
    r"""Configuration of a TriBERT model (vision, pose and audio streams joined by tri-modal co-attention).

    Args:
        vision_config, pose_config, audio_config (`dict` or the stream config class, *optional*):
            The three streams. Defaults are the paper's.
        co_attention_hidden_size (`int`, defaults to 512): width of the co-attention Q/K/V (`bi_hidden_size`).
        co_attention_num_heads (`int`, defaults to 8).
        co_attention_intermediate_size (`int`, defaults to 1024): feed-forward width after co-attention.
        co_attention_dropout (`float`, defaults to 0.1): dropout on co-attention probabilities.
        initializer_range (`float`, defaults to 0.02).
        id2label / num_labels: the instrument classes. Defaults to the 21 MUSIC21 classes.
        separation_base_channels (`int`, defaults to 64): channels of the attention U-Net's first level (doubling
            per level up to 8x).
        separation_num_downs (`int`, defaults to 7): down-convolutions (and up-convolutions) of the U-Net; the
            spectrogram's frequency bins and frames must be divisible by 2 ** separation_num_downs.
        separation_fusion_heads (`int`, defaults to 8): heads of the bottleneck self-attention fusion.
        use_pose_input (`bool`, defaults to True): False is the "without pose" ablation: the pose stream receives no
            keypoints (every person is treated as absent, so only its `<SOS>` token remains) and the pose
            classification term of pre-training is left out.
        separation_film (`bool`, defaults to False): also scale and shift every decoder level's channels by the
            fused `<SOS>` vector (FiLM; zero-initialised, so training starts from the paper's bottleneck-only
            conditioning). Not in the paper: it makes the conditioning learn much faster (see docs/training.md).
        separation_class_conditioning (`bool`, defaults to False): also condition the U-Net on each video's class
            scores from the vision stream's segmentation attention (`vision_class_scores` averaged over the frames,
            `num_labels` values in (0, 1) next to the `<SOS>` outputs): which instrument the frames show, learned
            from the videos' labels by the segmentation term of pre-training. Not in the paper (docs/training.md).
        separation_condition_maps (`int`, defaults to 0): 0 (the paper): the U-Net's last layer gives the mask.
            K > 0: it gives K maps, and each video's mask is their sum weighted by a linear map of its condition
            (as Sound of Pixels weights its K maps by the frame vector). Not in the paper: with the true class as
            the condition it learned faster than the single map (docs/training.md).
        separation_output_stride (`int`, defaults to 1): 1 (the paper): the U-Net's last up-convolution works at the
            spectrogram's full resolution. 2 (not in the paper): it works at half resolution and only the finished
            mask logits are upsampled x2 (bilinear): the same parameters, the small config's whole training step
            1.38x faster (the U-Net alone 1.7x), the same validation SDR per step (docs/training.md). Configs saved
            without the field load as 1.
        separation_conditioning (`str`, defaults to `"pooled"`): `"pooled"` (the paper): the U-Net is conditioned
            on each video's pooled `<SOS>` outputs, one vector per video: which instrument to extract, not when it
            plays. `"temporal"` (not in the paper): also frame by frame on the video's pose timeline (joint
            velocities and the ST-GCN's frames, per keypoint frame: `TriBertPoseTimeline`), which scales and
            shifts every decoder level but the last at each time frame (per-frame FiLM, zero-initialised: a
            temporal model starts as the pooled one). The keypoint frames span the audio crop's time window, so
            the timeline is aligned with the spectrogram's frames; its resolution is `pose_config.num_pose_frames`
            per crop. For two players of the same instrument (docs/training.md). Configs saved without the field
            load as `"pooled"`.
        separation_timeline_maps (`bool`, defaults to False): with `separation_conditioning="temporal"` and
            `separation_condition_maps` K > 0 only (not in the paper): the timeline also carries every joint's
            position relative to the person's centre over the crop (where the hand is along the instrument: the
            note's pitch), and the weights of the K condition maps vary frame by frame by a linear map of the
            timeline at that frame (zero-initialised) on top of the condition's: the mask at time t is made of
            the maps that the player's pose at t selects, so two players of one instrument can be told apart by
            what each plays when, not only by their class.
        separation_timeline_spectrum (`bool`, defaults to False): with `separation_timeline_maps` only (not in the
            paper): a small network of the timeline at each frame and the video's condition adds a value per
            frequency bin to the video's mask logits at that frame (`TriBertTimelineSpectrum`, zero-initialised: a
            model starts as one without it): a prior over the bins from the pose, e.g. the harmonics of the note
            the hand's place along the instrument says is playing. Configs saved without the field load as False.
        mask_type (`str`, defaults to `"binary"`): `"binary"` masks (sigmoid, weighted BCE) or `"ratio"` masks
            (2 * sigmoid, weighted L1 against ratio targets clamped to [0, 2]).
        mask_activation (`str`, defaults to `"sigmoid"`): `"sigmoid"` (the paper's: each video's mask on its own)
            or `"softmax"` (a mixture's masks normalised across its videos: they sum to 1 in every bin, so the
            videos share out the mixture; binary and ratio masks alike, in [0, 1]). Configs saved without the field
            load as `"sigmoid"`.
        *_loss_weight (`float`): weights of the pre-training loss terms (vision, pose, audio classification, the
            segmentation attention's class scores, separation).
        retrieval_variant (`str`, defaults to `"audio_to_vision"`): one of `RETRIEVAL_VARIANTS`.
        retrieval_embeddings (`str`, defaults to `"transformer"`): `"transformer"` (hidden states after the
            encoder) or `"pre_transformer"` (the stream embeddings; the paper's baseline).
        retrieval_hidden_size (`int`, defaults to 1024): common projection size of query and candidate.

    Example:

    ```python
    >>> from tribert_hf import TriBertConfig, TriBertModel
    >>> config = TriBertConfig()  # the paper's model
    >>> model = TriBertModel(config)
    ```
    """

    model_type = "tribert"
    sub_configs_defaults = {
        "vision_config": TriBertVisionConfig,
        "pose_config": TriBertPoseConfig,
        "audio_config": TriBertAudioConfig,
    }

    vision_config: dict | PreTrainedConfig | None = None
    pose_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    co_attention_hidden_size: int = 512
    co_attention_num_heads: int = 8
    co_attention_intermediate_size: int = 1024
    co_attention_dropout: float | int = 0.1
    initializer_range: float = 0.02
    separation_base_channels: int = 64
    separation_num_downs: int = 7
    separation_fusion_heads: int = 8
    separation_film: bool = False
    separation_class_conditioning: bool = False
    separation_condition_maps: int = 0
    separation_output_stride: int = 1
    separation_conditioning: str = "pooled"
    separation_timeline_maps: bool = False
    separation_timeline_spectrum: bool = False
    use_pose_input: bool = True
    mask_type: str = "binary"
    mask_activation: str = "sigmoid"
    vision_classification_loss_weight: float | int = 1.0
    pose_classification_loss_weight: float | int = 1.0
    audio_classification_loss_weight: float | int = 1.0
    segmentation_loss_weight: float | int = 1.0
    separation_loss_weight: float | int = 1.0
    retrieval_variant: str = "audio_to_vision"
    retrieval_embeddings: str = "transformer"
    retrieval_hidden_size: int = 1024

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(MUSIC21_LABELS))
        super().__post_init__(**kwargs)
        if self.label2id is None or set(self.label2id) != set(self.id2label.values()):
            self.label2id = {label: idx for idx, label in self.id2label.items()}
        self._check_architecture()

    @property
    def streams(self) -> dict[str, _TriBertStreamConfig]:
        return {"vision": self.vision_config, "pose": self.pose_config, "audio": self.audio_config}

    @property
    def layer_plan(self) -> dict[str, list[str]]:
        """Per stream, the order of layers: `"co"` (tri-modal co-attention) or `"self"` (self-attention)."""
        plan = {}
        for name, cfg in self.streams.items():
            order, start = [], 0
            for end in cfg.co_attention_ids:
                order += ["self"] * (end - start) + ["co"]
                start = end
            plan[name] = order + ["self"] * (cfg.num_hidden_layers - start)
        return plan

    def _check_architecture(self):
        check_positive(
            self,
            ("co_attention_hidden_size", "co_attention_num_heads", "co_attention_intermediate_size", "initializer_range"),
        )
        _check_probability(self, ("co_attention_dropout",))
        if self.co_attention_hidden_size % self.co_attention_num_heads != 0:
            raise ValueError(
                f"TriBertConfig.co_attention_hidden_size ({self.co_attention_hidden_size}) is not divisible by "
                f"co_attention_num_heads ({self.co_attention_num_heads})."
            )
        check_positive(self, ("separation_base_channels", "separation_num_downs", "separation_fusion_heads", "retrieval_hidden_size"))
        if not isinstance(self.separation_condition_maps, int) or self.separation_condition_maps < 0:
            raise ValueError(f"separation_condition_maps must be an int >= 0, got {self.separation_condition_maps!r}.")
        check_output_stride(self)
        if self.separation_conditioning not in SEPARATION_CONDITIONINGS:
            raise ValueError(
                f"separation_conditioning must be one of {', '.join(repr(c) for c in SEPARATION_CONDITIONINGS)}, got "
                f"{self.separation_conditioning!r}."
            )
        temporal_maps = self.separation_conditioning == "temporal" and self.separation_condition_maps
        if self.separation_timeline_maps and not temporal_maps:
            raise ValueError(
                "separation_timeline_maps weights the condition maps by the pose timeline: it needs "
                "separation_conditioning='temporal' and separation_condition_maps > 0, got "
                f"{self.separation_conditioning!r} and {self.separation_condition_maps}."
            )
        if self.separation_timeline_spectrum and not self.separation_timeline_maps:
            raise ValueError(
                "separation_timeline_spectrum maps the pose timeline (with the joints' positions) to the frequency "
                "bins: it needs separation_timeline_maps=True (and so separation_conditioning='temporal')."
            )
        bottleneck = bottleneck_channels(self.separation_base_channels, self.separation_num_downs)
        if bottleneck % self.separation_fusion_heads != 0:
            raise ValueError(
                f"The U-Net bottleneck width ({bottleneck}) is not divisible by separation_fusion_heads "
                f"({self.separation_fusion_heads})."
            )
        check_mask_options(self.mask_type, self.mask_activation)
        if self.retrieval_variant not in RETRIEVAL_VARIANTS:
            raise ValueError(f"retrieval_variant must be one of {sorted(RETRIEVAL_VARIANTS)}, got {self.retrieval_variant!r}.")
        if self.retrieval_embeddings not in ("transformer", "pre_transformer"):
            raise ValueError(
                f"retrieval_embeddings must be 'transformer' or 'pre_transformer', got {self.retrieval_embeddings!r}."
            )
        if self.num_labels <= 0:
            raise ValueError(f"TriBertConfig needs at least one label, got num_labels={self.num_labels}.")
        streams = self.streams
        if self.vision_config.num_objects > self.num_labels:
            raise ValueError(
                f"vision_config.num_objects ({self.vision_config.num_objects}) cannot exceed the number of classes "
                f"({self.num_labels}): each visual object is the feature of one top-scoring class."
            )
        counts = {name: len(cfg.co_attention_ids) for name, cfg in streams.items()}
        if len(set(counts.values())) != 1:
            raise ValueError(
                "Every stream needs the same number of co-attention layers (they run jointly); got "
                + ", ".join(f"{n}_config.co_attention_ids with {c}" for n, c in counts.items())
                + "."
            )


__all__ = [
    "MUSIC21_LABELS",
    "MUSIC_LABELS",
    "RETRIEVAL_VARIANTS",
    "SEPARATION_CONDITIONINGS",
    "TriBertAudioConfig",
    "TriBertConfig",
    "TriBertPoseConfig",
    "TriBertVisionConfig",
    "check_positive",
]

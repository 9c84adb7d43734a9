"""Configurations of the separation baselines TriBERT is compared with (paper Table 1).

* `AudioOnlySeparationConfig`: TriBERT's attention U-Net with no visual or pose conditioning, trained with a
  permutation-invariant loss (PIT).
* `SoundOfPixelsConfig`: Sound of Pixels (Zhao et al., ECCV 2018): a ResNet frame encoder whose K-channel video
  vector weights K feature maps of an audio U-Net (the paper's "SoP" row).

The U-Net fields carry the names of `TriBertConfig`'s (`separation_base_channels`, `separation_num_downs`, ...), so
that one set of command-line arguments configures the three models alike. A config holds architecture only: sample
rates, FFT sizes and mask thresholds belong to the feature extractor.
"""


from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

from tribert_hf.configuration_tribert import check_output_stride, check_positive
from tribert_hf.remote_code import RemoteCodeMixin
from tribert_hf.separation.losses import check_mask_options
from tribert_hf.separation.unet import bottleneck_channels


# ResNet-18's layout (He et al., 2016): basic blocks, 2 per stage, 64 -> 512 channels (Sound of Pixels' frame net).
RESNET18_KWARGS = {
    "embedding_size": 64,
    "hidden_sizes": [64, 128, 256, 512],
    "depths": [2, 2, 2, 2],
    "layer_type": "basic",
    "hidden_act": "relu",
    "downsample_in_first_stage": False,
}


class _SeparationUNetConfig(RemoteCodeMixin, PreTrainedConfig):
    """Fields and checks of the audio U-Net shared by the baselines (the U-Net of TriBERT's separation head)."""

    num_frequency_bins: int = 256
    separation_base_channels: int = 64
    separation_num_downs: int = 7
    separation_output_stride: int = 1
    mask_type: str = "binary"
    mask_activation: str = "sigmoid"
    log_eps: float = 1e-10
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self._check_architecture()

    @property
    def bottleneck_channels(self) -> int:
        """Channels of the U-Net's deepest level (doubling per level from `separation_base_channels`, at most 8x)."""
        return bottleneck_channels(self.separation_base_channels, self.separation_num_downs)

    def _check_architecture(self):
        """Raise a `ValueError` naming the field for values the model cannot be built with."""
        check_positive(
            self,
            ("num_frequency_bins", "separation_base_channels", "separation_num_downs", "log_eps", "initializer_range"),
        )
        if self.num_frequency_bins % 2**self.separation_num_downs:
            raise ValueError(
                f"{type(self).__name__}.num_frequency_bins ({self.num_frequency_bins}) must be divisible by "
                f"2 ** separation_num_downs = {2**self.separation_num_downs}."
            )
        check_output_stride(self)
        check_mask_options(self.mask_type, self.mask_activation, type(self).__name__)


@strict
class AudioOnlySeparationConfig(_SeparationUNetConfig):
    r"""Audio-only baseline: TriBERT's attention U-Net without visual or pose conditioning.

    The encoder runs once per mixture; its bottleneck is fused (`TriBertBottleneckFusion`) with one learned source
    embedding per output instead of a video's `<SOS>` outputs, and the decoder runs once per output. Nothing tells
    the outputs which source to take: the loss is permutation invariant (PIT), the best assignment of outputs to
    targets per mixture.

    Args:
        num_sources (`int`, defaults to 2): masks produced per mixture (the N of mix-and-separate).
        source_embedding_size (`int`, defaults to 512): width of the learned per-output embeddings.
        num_frequency_bins (`int`, defaults to 256): log-frequency bins of the input spectrogram.
        separation_base_channels (`int`, defaults to 64): channels of the U-Net's first level (doubling per level
            up to 8x).
        separation_num_downs (`int`, defaults to 7): down-convolutions (and up-convolutions) of the U-Net; the
            spectrogram's frequency bins and frames must be divisible by 2 ** separation_num_downs.
        separation_output_stride (`int`, defaults to 1): 1, or 2: the U-Net's last up-convolution at half
            resolution and its output upsampled x2, as `TriBertConfig.separation_output_stride`.
        separation_fusion_heads (`int`, defaults to 8): heads of the bottleneck self-attention fusion.
        separation_film (`bool`, defaults to `False`): also scale and shift every decoder level by the source
            embedding (FiLM, zero-initialised), as `TriBertConfig.separation_film`.
        mask_type (`str`, defaults to `"binary"`): `"binary"` masks (sigmoid, weighted BCE) or `"ratio"` masks
            (2 * sigmoid, weighted L1 against ratio targets clamped to [0, 2]).
        log_eps (`float`, defaults to 1e-10): the U-Net takes `log(magnitude + log_eps)`.
        initializer_range (`float`, defaults to 0.02): std of the normal init of linear layers.

    Example:

    ```python
    >>> from tribert_hf.baselines.configuration_baselines import AudioOnlySeparationConfig
    >>> from tribert_hf.baselines.modeling_baselines import AudioOnlyForSourceSeparation
    >>> model = AudioOnlyForSourceSeparation(AudioOnlySeparationConfig(num_sources=2))
    ```
    """

    model_type = "tribert_audio_only"

    num_sources: int = 2
    source_embedding_size: int = 512
    separation_fusion_heads: int = 8
    separation_film: bool = False

    def _check_architecture(self):
        super()._check_architecture()
        check_positive(self, ("num_sources", "source_embedding_size", "separation_fusion_heads"))
        if self.bottleneck_channels % self.separation_fusion_heads:
            raise ValueError(
                f"AudioOnlySeparationConfig.separation_fusion_heads ({self.separation_fusion_heads}) must divide the "
                f"U-Net bottleneck width ({self.bottleneck_channels})."
            )


@strict
class SoundOfPixelsConfig(_SeparationUNetConfig):
    r"""Sound of Pixels (Zhao et al., ECCV 2018), the "SoP" baseline of the TriBERT paper.

    Frame net: a ResNet (`ResNetModel`, randomly initialised) over each frame, pooled over space then over the
    video's frames, projected to a K-channel vector `w` (sigmoid). Sound net: TriBERT's attention U-Net (without the
    bottleneck fusion) turning the mixture into K feature maps `U` once per mixture. Synthesizer: each video's mask
    is `sigmoid(sum_k w_k * s_k * U_k + b)` with learned per-channel scales `s` and bias `b` (SoP's linear one).

    Args:
        frame_encoder_config (`dict` or `ResNetConfig`, *optional*): the frame ResNet. Defaults to ResNet-18
            (`RESNET18_KWARGS`: basic blocks, depths [2, 2, 2, 2], hidden sizes [64, 128, 256, 512]). A dict
            replaces those defaults (it is a full `ResNetConfig`'s keyword arguments).
        num_feature_channels (`int`, defaults to 32): K, the channels of the video vector and the audio feature maps.
        spatial_pooling (`str`, defaults to `"max"`): `"max"` or `"avg"` pooling of each frame's feature map.
        temporal_pooling (`str`, defaults to `"max"`): `"max"` (SoP) or `"avg"` pooling over the video's frames.
        frame_activation (`str`, defaults to `"sigmoid"`): activation of the video vector, `"sigmoid"` (SoP) or
            `"identity"`.
        num_frequency_bins, separation_base_channels, separation_num_downs, separation_output_stride, mask_type,
            log_eps, initializer_range: as in `AudioOnlySeparationConfig` (with stride 2 the K feature maps are
            upsampled before the synthesizer weights them: the same as weighting first, bilinear being linear).

    Example:

    ```python
    >>> from tribert_hf.baselines.configuration_baselines import SoundOfPixelsConfig
    >>> from tribert_hf.baselines.modeling_baselines import SoundOfPixelsForSourceSeparation
    >>> model = SoundOfPixelsForSourceSeparation(SoundOfPixelsConfig())  # ResNet-18 frames, K = 32
    ```
    """

    model_type = "tribert_sop"
    sub_configs_defaults = {
        "frame_encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet", init_kwargs=RESNET18_KWARGS),
    }

    frame_encoder_config: dict | PreTrainedConfig | None = None
    num_feature_channels: int = 32
    spatial_pooling: str = "max"
    temporal_pooling: str = "max"
    frame_activation: str = "sigmoid"

    def _check_architecture(self):
        super()._check_architecture()
        check_positive(self, ("num_feature_channels",))
        if self.frame_encoder_config.model_type != "resnet":
            raise ValueError(
                "SoundOfPixelsConfig.frame_encoder_config must be a ResNet config (model_type 'resnet'), got "
                f"model_type {self.frame_encoder_config.model_type!r}."
            )
        for name in ("spatial_pooling", "temporal_pooling"):
            if getattr(self, name) not in ("max", "avg"):
                raise ValueError(f"SoundOfPixelsConfig.{name} must be 'max' or 'avg', got {getattr(self, name)!r}.")
        if self.frame_activation not in ("sigmoid", "identity"):
            raise ValueError(
                f"SoundOfPixelsConfig.frame_activation must be 'sigmoid' or 'identity', got {self.frame_activation!r}."
            )


__all__ = ["AudioOnlySeparationConfig", "RESNET18_KWARGS", "SoundOfPixelsConfig"]

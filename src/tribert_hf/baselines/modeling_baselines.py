"""Separation baselines of the TriBERT paper (Table 1), sharing TriBERT's audio U-Net, losses and batch format.

* `AudioOnlyForSourceSeparation`: the attention U-Net of `TriBertSeparationHead` with no visual or pose
  conditioning: one learned embedding per output takes the place of a video's `<SOS>` outputs. The outputs are
  unordered, so training uses a permutation-invariant loss (PIT) and evaluation the best permutation
  (`permutation` of the output, `tribert_hf.separation.apply.reorder_sources`).
* `SoundOfPixelsForSourceSeparation`: Sound of Pixels (Zhao et al., ECCV 2018): a ResNet frame encoder gives each
  video a K-channel vector `w`, the U-Net gives the mixture K feature maps `U` (once per mixture), and the video's
  mask is `sigmoid(sum_k w_k * s_k * U_k + b)`.

Both take the batches of `MixAndSeparateCollator` (`audio_spectrogram` `(batch, 1, 256, frames)`, `labels`
`(batch, N, 256, frames)`, `loss_weight` `(batch, 1, 256, frames)`, `pixel_values` `(batch, N, frames, 3, H, W)`,
...) and ignore the inputs they have no use for, so one training loop serves TriBERT and both baselines, and
`tribert_hf.separation.apply.separate` separates long audio with any of them.
"""


from dataclasses import dataclass

import torch
from torch import nn

from transformers import ResNetModel
from transformers import initialization as init
from transformers.modeling_utils import PreTrainedModel

from tribert_hf.input_checks import check_tensor
from tribert_hf.modeling_tribert import TriBertSeparationOutput
from tribert_hf.remote_code import RemoteCodeMixin
from tribert_hf.separation.losses import activate_masks, mask_loss, permutation_invariant_mask_loss
from tribert_hf.separation.unet import TriBertSeparationHead

from .configuration_baselines import AudioOnlySeparationConfig, SoundOfPixelsConfig


# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------


def _check_spectrogram(config, audio_spectrogram, batch: int | None = None) -> None:
    check_tensor("audio_spectrogram", audio_spectrogram, 4, "(batch, 1, frequency_bins, time_frames)")
    if audio_spectrogram.shape[1] != 1 or audio_spectrogram.shape[2] != config.num_frequency_bins:
        raise ValueError(
            f"`audio_spectrogram` must have shape (batch, 1, {config.num_frequency_bins}, time_frames) (mono, "
            f"{config.num_frequency_bins} log-frequency bins), got {tuple(audio_spectrogram.shape)}."
        )
    if batch is not None and audio_spectrogram.shape[0] != batch:
        raise ValueError(
            f"`audio_spectrogram` has batch size {audio_spectrogram.shape[0]} but `pixel_values` has {batch}: one "
            "mixture per row of `pixel_values`."
        )
    if not torch.compiler.is_compiling() and bool((audio_spectrogram < 0).any()):
        raise ValueError("`audio_spectrogram` must be a non-negative STFT magnitude (the U-Net takes its log).")


# ----------------------------------------------------------------------------------------------------------------
# Audio only (PIT)
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class AudioOnlySeparationOutput(TriBertSeparationOutput):
    r"""
    loss (`()`): permutation-invariant weighted mask loss (`permutation_invariant_mask_loss`), when `labels` are given.
    logits / masks (`(batch, num_sources, frequency_bins, frames)`): the outputs, in no particular order.
    permutation (`(batch, num_sources)`, when `labels` are given): `permutation[b, j]` is the output assigned to
        target `j` by the best permutation; `reorder_sources(masks, permutation)` aligns the outputs with the targets.
        Evaluation (SDR, SIR, SAR) uses this best permutation, as is usual for audio-only separation.
    """

    permutation: torch.LongTensor | None = None


class AudioOnlyPreTrainedModel(RemoteCodeMixin, PreTrainedModel):
    config: AudioOnlySeparationConfig
    config_class = AudioOnlySeparationConfig
    base_model_prefix = "audio_only"
    main_input_name = "audio_spectrogram"
    input_modalities = ("audio",)
    supports_gradient_checkpointing = False

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, AudioOnlyForSourceSeparation):
            # Unit-scale embeddings: distinct outputs from the first step (PIT has nothing else to tell them apart).
            init.normal_(module.source_embeddings, mean=0.0, std=1.0)
            # FiLM starts as the identity. Done here, after the children: transformers skips the `_init_weights` of
            # custom-code modules without parameters of their own, such as the head.
            for film in module.separation.films or ():
                init.zeros_(film.weight)
                init.zeros_(film.bias)


class AudioOnlyForSourceSeparation(AudioOnlyPreTrainedModel):
    """TriBERT's attention U-Net with no visual or pose conditioning: `num_sources` masks per mixture.

    The encoder runs once per mixture; its bottleneck is fused with one learned embedding per output (in place of
    a video's `<SOS>` outputs) and the decoder runs once per output. Trained with a permutation-invariant loss.
    Long audio: `tribert_hf.separation.apply.separate(model, waveform, feature_extractor)`.
    """

    # PIT: the outputs follow no order, so `separation.apply.separate` realigns them from one segment to the next.
    outputs_in_order = False

    def __init__(self, config: AudioOnlySeparationConfig):
        super().__init__(config)
        self.source_embeddings = nn.Parameter(torch.empty(config.num_sources, config.source_embedding_size))
        self.separation = TriBertSeparationHead(
            config.source_embedding_size, config.separation_base_channels, config.separation_num_downs,
            config.separation_fusion_heads, config.separation_film, output_stride=config.separation_output_stride,
        )  # fmt: skip
        self.post_init()

    def forward(
        self,
        audio_spectrogram: torch.FloatTensor,
        labels: torch.Tensor | None = None,
        loss_weight: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        pose_keypoints: torch.Tensor | None = None,
        pose_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> AudioOnlySeparationOutput | tuple:
        r"""
        audio_spectrogram (`(batch, 1, 256, frames)`): the mixture's log-frequency magnitude.
        labels (`(batch, num_sources, 256, frames)`, *optional*): mask targets, in any order.
        loss_weight (`(batch, 1, 256, frames)`, *optional*): per-pixel weight; defaults to log1p(mixture) in [1e-3, 10].
        pixel_values, pose_keypoints, pose_mask: accepted and ignored (the batch of the other separation models).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        _check_spectrogram(self.config, audio_spectrogram)
        conditions = self.source_embeddings[None].expand(audio_spectrogram.shape[0], -1, -1)
        logits = self.separation(audio_spectrogram, conditions.to(audio_spectrogram.dtype), self.config.log_eps)
        loss = permutation = None
        if labels is not None:
            loss, permutation = permutation_invariant_mask_loss(
                logits, labels, audio_spectrogram, loss_weight, self.config.mask_type, self.config.mask_activation
            )
        masks = activate_masks(logits, self.config.mask_type, self.config.mask_activation)
        output = AudioOnlySeparationOutput(loss=loss, logits=logits, masks=masks, permutation=permutation)
        return output if return_dict else output.to_tuple()


# ----------------------------------------------------------------------------------------------------------------
# Sound of Pixels
# ----------------------------------------------------------------------------------------------------------------


class SoundOfPixelsPreTrainedModel(RemoteCodeMixin, PreTrainedModel):
    config: SoundOfPixelsConfig
    config_class = SoundOfPixelsConfig
    base_model_prefix = "sound_of_pixels"
    main_input_name = "pixel_values"
    input_modalities = ("video", "audio")
    supports_gradient_checkpointing = False
    _no_split_modules = ["ResNetConvLayer", "ResNetShortCut"]

    def _init_weights(self, module):
        super()._init_weights(module)  # the frame ResNet (a `ResNetModel`) runs its own
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, SoundOfPixelsForSourceSeparation):
            init.ones_(module.feature_scale)
            init.zeros_(module.mask_bias)


class SoundOfPixelsForSourceSeparation(SoundOfPixelsPreTrainedModel):
    """Sound of Pixels: a video's K-channel vector weights the mixture's K U-Net feature maps into its mask.

    Frame net: `ResNetModel` over every frame -> spatial pooling -> pooling over the video's frames -> linear to K
    -> `frame_activation`. Sound net: the attention U-Net without conditioning, K output maps (once per mixture). Synthesizer (SoP's linear one):
    mask logits `sum_k w_k * s_k * U_k + b`, learned scales `s` and bias `b`. Loss: TriBERT's weighted BCE / L1.
    """

    def __init__(self, config: SoundOfPixelsConfig):
        super().__init__(config)
        self.frame_encoder = ResNetModel(config.frame_encoder_config)
        self.frame_projection = nn.Linear(config.frame_encoder_config.hidden_sizes[-1], config.num_feature_channels)
        # The U-Net without conditioning, ending in K feature maps: SoP's sound network, once per mixture.
        self.audio_unet = TriBertSeparationHead(
            None, config.separation_base_channels, config.separation_num_downs, out_channels=config.num_feature_channels,
            output_stride=config.separation_output_stride,
        )
        self.feature_scale = nn.Parameter(torch.empty(config.num_feature_channels))
        self.mask_bias = nn.Parameter(torch.empty(()))
        self.post_init()

    def freeze_vision_backbone(self, freeze: bool = True) -> None:
        """Keep the frame ResNet fixed (e.g. ImageNet weights, as Sound of Pixels' ResNet-18): no gradients for its
        weights, its batch-norm layers in inference mode whatever `train()` asks. The projection to K still trains."""
        self.frame_encoder.requires_grad_(not freeze)
        self.frame_encoder_frozen = freeze
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "frame_encoder_frozen", False):
            self.frame_encoder.eval()
        return self

    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(batch, videos, frames, 3, H, W)` -> each video's vector `w` `(batch, videos, K)`."""
        batch, videos, frames = pixel_values.shape[:3]
        feature_maps = self.frame_encoder(pixel_values.flatten(0, 2), return_dict=True).last_hidden_state
        spatial = feature_maps.flatten(2)  # (batch * videos * frames, channels, h * w)
        pooled = spatial.amax(dim=-1) if self.config.spatial_pooling == "max" else spatial.mean(dim=-1)
        pooled = pooled.view(batch, videos, frames, -1)
        pooled = pooled.amax(dim=2) if self.config.temporal_pooling == "max" else pooled.mean(dim=2)
        vectors = self.frame_projection(pooled)
        return torch.sigmoid(vectors) if self.config.frame_activation == "sigmoid" else vectors

    def encode_audio(self, audio_spectrogram: torch.Tensor) -> torch.Tensor:
        """`(batch, 1, 256, frames)` mixture magnitude -> K feature maps `(batch, K, 256, frames)`."""
        return self.audio_unet(audio_spectrogram, log_eps=self.config.log_eps)

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        pose_keypoints: torch.Tensor | None = None,
        audio_spectrogram: torch.FloatTensor | None = None,
        pose_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        loss_weight: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TriBertSeparationOutput | tuple:
        r"""
        The signature of `TriBertForSourceSeparation.forward`; `pose_keypoints`, `pose_mask` and `bool_masked_pos`
        are accepted and ignored.

        pixel_values (`(batch, videos, frames, 3, H, W)`): each video of the mixture.
        audio_spectrogram (`(batch, 1, 256, frames)`): the mixture's log-frequency magnitude (required).
        labels (`(batch, videos, 256, frames)`, *optional*): mask targets (binary or ratios).
        loss_weight (`(batch, 1, 256, frames)`, *optional*): per-pixel weight; defaults to log1p(mixture) in [1e-3, 10].
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        channels = self.config.frame_encoder_config.num_channels
        check_tensor("pixel_values", pixel_values, 6, "(batch, videos, frames, channels, height, width)")
        if pixel_values.shape[3] != channels:
            raise ValueError(
                f"`pixel_values` must have shape (batch, videos, frames, {channels}, height, width) (one entry per "
                f"video of the mixture), got {tuple(pixel_values.shape)}."
            )
        if audio_spectrogram is None:
            raise ValueError("SoundOfPixelsForSourceSeparation needs `audio_spectrogram`, the mixture's magnitude.")
        _check_spectrogram(self.config, audio_spectrogram, batch=pixel_values.shape[0])
        vectors = self.encode_frames(pixel_values)  # (batch, videos, K)
        feature_maps = self.encode_audio(audio_spectrogram)  # (batch, K, F, T)
        logits = torch.einsum("bvk,bkft->bvft", vectors * self.feature_scale, feature_maps) + self.mask_bias
        mask_type, activation = self.config.mask_type, self.config.mask_activation
        loss = None if labels is None else mask_loss(logits, labels, audio_spectrogram, loss_weight, mask_type, activation)
        output = TriBertSeparationOutput(loss=loss, logits=logits, masks=activate_masks(logits, mask_type, activation))
        return output if return_dict else output.to_tuple()


__all__ = [
    "AudioOnlyForSourceSeparation",
    "AudioOnlyPreTrainedModel",
    "AudioOnlySeparationOutput",
    "SoundOfPixelsForSourceSeparation",
    "SoundOfPixelsPreTrainedModel",
]

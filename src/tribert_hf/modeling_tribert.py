"""TriBERT: a three-stream transformer over vision, body/hand pose and audio joined by tri-modal co-attention.

Shapes used throughout (paper defaults in brackets):

* `pixel_values`: `(batch, frames [3], 3, 224, 224)` normalised RGB frames.
* `pose_keypoints`: `(batch, persons [2], T [256], joints [68], 3)` with x, y (normalised by the frame size)
  and confidence; `pose_mask`: `(batch, persons)`, 1 for a present person, 0 for an absent one.
* `audio_spectrogram`: `(batch, 1, 256, 256)` log-frequency STFT magnitude of the mixture.

Each stream becomes `<SOS>` + tokens: vision `frames x objects` (3 x 2), pose `segments x persons` (3 x 2),
audio `sequence_length` (6) copies of the global VGGish-style feature. Encoder: ViLBERT's layout extended
to three streams (per-stream self-attention layers, and tri-modal co-attention layers in which the queries of
one stream attend over the concatenated keys/values of the other two).
"""


from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from transformers import AutoConfig
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.backbone_utils import load_backbone
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING
from transformers.utils import ModelOutput, logging

from tribert_hf.pose.graph import spatial_partition_adjacency
from tribert_hf.separation.losses import activate_masks, mask_loss
from tribert_hf.separation.unet import TriBertFiLM, TriBertSeparationHead, TriBertTimelineMaps, TriBertTimelineSpectrumOutput, interpolate_frames

from .configuration_tribert import TriBertConfig
from .input_checks import (
    cast_floating,
    check_inputs,
    check_video_inputs,
    reject_unknown_kwargs,
    resolve_output_attentions,
)
from .remote_code import RemoteCodeMixin


logger = logging.get_logger(__name__)

STREAMS = ("vision", "pose", "audio")


@dataclass
class TriBertModelOutput(ModelOutput):
    r"""
    Outputs of [`TriBertModel`]. Sequence lengths include the leading `<SOS>` token.

    vision_last_hidden_state (`(batch, 1 + frames * objects, vision hidden)`), pose_last_hidden_state
    (`(batch, 1 + segments * persons, pose hidden)`), audio_last_hidden_state (`(batch, 1 + sequence_length,
    audio hidden)`): final hidden states of each stream.
    vision_pooler_output / pose_pooler_output / audio_pooler_output (`(batch, hidden)`): the `<SOS>` output of
    each stream after a dense + tanh pooler.
    vision_embeddings / pose_embeddings / audio_embeddings: the pre-transformer token embeddings fed to the
    first layer (the "pre-transformer" retrieval baseline uses them).
    vision_class_scores (`(batch, frames, num_labels)`): per-frame class scores in (0, 1) of the weakly supervised
    segmentation attention (spatial pooling of A_m = S_E * S_D).
    vision_object_classes (`(batch, objects)`): the top-scoring classes whose features became the visual tokens.
    vision_masked_positions (`(batch, frames * objects)`, bool): visual region tokens that were masked, if any.
    vision_attention_mask / pose_attention_mask / audio_attention_mask (`(batch, length)`): 1 for a real token,
    0 for a masked-out one (an absent person).
    *_hidden_states: with `output_hidden_states=True`, the stream's hidden states after the embeddings and after
    every layer that updates the stream (self-attention and co-attention layers, in execution order).
    *_attentions / *_cross_attentions: with `output_attentions=True` (eager attention), the self-attention
    weights `(batch, heads, length, length)` and co-attention weights `(batch, heads, length, other lengths)`,
    whose keys are the other two streams concatenated in the order vision, pose, audio.
    pose_frame_features (`(batch, persons, gcn_channels[-1], T')`): with `config.separation_conditioning =
    "temporal"` only, the ST-GCN's output averaged over the joints before its pooling into segments: one feature
    per person and ST-GCN frame (T' = T / the product of `gcn_strides`; frame t' lies at keypoint frame
    t' * T / T').
    """

    vision_last_hidden_state: torch.FloatTensor | None = None
    pose_last_hidden_state: torch.FloatTensor | None = None
    audio_last_hidden_state: torch.FloatTensor | None = None
    vision_pooler_output: torch.FloatTensor | None = None
    pose_pooler_output: torch.FloatTensor | None = None
    audio_pooler_output: torch.FloatTensor | None = None
    vision_embeddings: torch.FloatTensor | None = None
    pose_embeddings: torch.FloatTensor | None = None
    audio_embeddings: torch.FloatTensor | None = None
    vision_class_scores: torch.FloatTensor | None = None
    vision_object_classes: torch.LongTensor | None = None
    vision_masked_positions: torch.BoolTensor | None = None
    vision_attention_mask: torch.LongTensor | None = None
    pose_attention_mask: torch.LongTensor | None = None
    audio_attention_mask: torch.LongTensor | None = None
    vision_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    pose_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    audio_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    vision_attentions: tuple[torch.FloatTensor, ...] | None = None
    pose_attentions: tuple[torch.FloatTensor, ...] | None = None
    audio_attentions: tuple[torch.FloatTensor, ...] | None = None
    vision_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    pose_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    audio_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    pose_frame_features: torch.FloatTensor | None = None


def _additive_mask(token_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`(batch, length)` 1/0 -> `(batch, 1, 1, length)` additive mask (0 kept, dtype min masked)."""
    return (1.0 - token_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


# ----------------------------------------------------------------------------------------------------------------
# Stream embeddings
# ----------------------------------------------------------------------------------------------------------------


class TriBertSegmentationAttention(nn.Module):
    """Weakly supervised, class-specific spatial attention (paper Fig. 2, after Zhang et al.'s decoupled attention).

    Expansive branch: dropout -> 1x1 conv -> dropout -> sigmoid -> spatial normalisation (Eq. 1-2): S_E sums to 1
    over H x W per class, i.e. where the class is. Discriminative branch: dropout -> 1x1 conv -> dropout -> sigmoid:
    S_D in (0, 1), how much each location looks like the class. A_m = S_E * S_D. The class score is the spatial
    pooling of A_m, scaled by H x W so that it is the S_E-weighted mean of S_D, a probability in (0, 1).
    """

    def __init__(self, feature_size: int, num_classes: int, dropout: float):
        super().__init__()
        self.expansive = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(feature_size, num_classes, 1), nn.Dropout(dropout))
        self.discriminative = nn.Sequential(
            nn.Dropout(dropout), nn.Conv2d(feature_size, num_classes, 1), nn.Dropout(dropout)
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`features` `(N, D, H, W)` -> attention map A_m `(N, C, H, W)` and class scores `(N, C)`."""
        expansive = torch.sigmoid(self.expansive(features))
        expansive = expansive / expansive.sum(dim=(-2, -1), keepdim=True)
        discriminative = torch.sigmoid(self.discriminative(features))
        attention_map = expansive * discriminative
        return attention_map, attention_map.sum(dim=(-2, -1))


def _load_pretrained_backbone(name_or_path: str, out_features: list[str]):
    """Backbone weights from a hub id or a local folder (e.g. a copy of `microsoft/resnet-50`)."""
    backbone_config = AutoConfig.from_pretrained(name_or_path, out_features=out_features)
    if type(backbone_config) not in MODEL_FOR_BACKBONE_MAPPING:
        raise ValueError(
            f"{name_or_path!r} holds a {type(backbone_config).__name__}, which has no transformers backbone class; "
            "use a checkpoint of a backbone model such as 'microsoft/resnet-50'."
        )
    backbone_class = MODEL_FOR_BACKBONE_MAPPING[type(backbone_config)]
    return backbone_class.from_pretrained(name_or_path, config=backbone_config, attn_implementation="eager")


class TriBertVisionEmbeddings(nn.Module):
    """Frames -> backbone -> 3x3 conv (V_e) -> segmentation attention -> top-k class features -> tokens."""

    def __init__(self, config: TriBertConfig):
        super().__init__()
        vc = config.vision_config
        self.config = vc
        # A CNN backbone has no attention: it runs "eager" whatever the streams use (it would refuse "sdpa").
        vc.backbone_config._attn_implementation_internal = "eager"
        if vc.use_pretrained_backbone:
            self.backbone = _load_pretrained_backbone(vc.backbone, list(vc.backbone_config.out_features))
            vc.backbone_config = self.backbone.config  # the checkpoint defines the backbone's architecture
        else:
            self.backbone = load_backbone(vc)
        self.backbone_frozen = False  # `TriBertPreTrainedModel.freeze_vision_backbone`
        self.feature_conv = nn.Conv2d(self.backbone.channels[-1], vc.feature_size, kernel_size=3, padding=1)
        self.segmentation = TriBertSegmentationAttention(vc.feature_size, config.num_labels, vc.segmentation_dropout)
        self.mask_embedding = nn.Parameter(torch.zeros(vc.feature_size))
        self.projection = nn.Linear(vc.feature_size, vc.hidden_size)
        self.frame_embeddings = nn.Embedding(vc.num_frames, vc.hidden_size)
        self.object_embeddings = nn.Embedding(vc.num_objects, vc.hidden_size)
        self.sos_embedding = nn.Parameter(torch.zeros(1, 1, vc.hidden_size))
        self.layer_norm = nn.LayerNorm(vc.hidden_size, eps=vc.layer_norm_eps)
        self.dropout = nn.Dropout(vc.hidden_dropout_prob)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.backbone_frozen:  # a frozen backbone keeps its batch-norm statistics: inference mode always
            self.backbone.eval()
        return self

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None):
        vc = self.config
        batch, frames = pixel_values.shape[:2]
        feature_maps = self.backbone(pixel_values.flatten(0, 1)).feature_maps[-1]
        spatial = F.relu(self.feature_conv(feature_maps))  # V_e: (batch * frames, D, H, W)
        attention_map, class_scores = self.segmentation(spatial)
        height, width = spatial.shape[-2:]
        attention_map = attention_map.view(batch, frames, -1, height, width)
        class_scores = class_scores.view(batch, frames, -1)

        # The same top-k classes in every frame, so object k is one instrument throughout the clip.
        object_classes = class_scores.mean(dim=1).topk(vc.num_objects, dim=-1).indices  # (batch, objects)
        index = object_classes[:, None, :, None, None].expand(batch, frames, vc.num_objects, height, width)
        weights = attention_map.gather(2, index)
        weights = weights / weights.sum(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
        spatial = spatial.view(batch, frames, -1, height, width)
        features = torch.einsum("bfohw,bfdhw->bfod", weights, spatial).flatten(1, 2)  # (batch, F*O, D)

        if bool_masked_pos is None and self.training:
            # Drawn even when mask_probability is 0, so the mask embedding is always part of the training graph
            # (DistributedDataParallel needs every parameter to take part in every step).
            bool_masked_pos = torch.rand(features.shape[:2], device=features.device) < vc.mask_probability
        if bool_masked_pos is not None:
            if tuple(bool_masked_pos.shape) != tuple(features.shape[:2]):
                raise ValueError(
                    f"`bool_masked_pos` must have shape (batch, frames * objects) = {tuple(features.shape[:2])}, "
                    f"got {tuple(bool_masked_pos.shape)}."
                )
            bool_masked_pos = bool_masked_pos.bool()
            features = torch.where(bool_masked_pos[..., None], self.mask_embedding.to(features.dtype), features)

        frame_ids = torch.arange(frames, device=features.device).repeat_interleave(vc.num_objects)
        object_ids = torch.arange(vc.num_objects, device=features.device).repeat(frames)
        tokens = self.projection(features) + self.frame_embeddings(frame_ids) + self.object_embeddings(object_ids)
        tokens = torch.cat([self.sos_embedding.expand(batch, -1, -1).to(tokens.dtype), tokens], dim=1)
        embeddings = self.dropout(self.layer_norm(tokens))
        token_mask = torch.ones(embeddings.shape[:2], dtype=torch.long, device=embeddings.device)
        return embeddings, token_mask, class_scores, object_classes, bool_masked_pos


class TriBertGraphConvolution(nn.Module):
    """Spatial graph convolution over the K adjacency partitions (ST-GCN), with learnable edge importance."""

    def __init__(self, in_channels: int, out_channels: int, num_partitions: int, num_joints: int):
        super().__init__()
        self.num_partitions = num_partitions
        self.conv = nn.Conv2d(in_channels, out_channels * num_partitions, kernel_size=1)
        self.edge_importance = nn.Parameter(torch.ones(num_partitions, num_joints, num_joints))

    def forward(self, hidden: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        # hidden: (N, C, T, V); adjacency: (K, V, V) with [k, v, w] = weight of joint v into joint w.
        n, _, t, v = hidden.shape
        hidden = self.conv(hidden).view(n, self.num_partitions, -1, t, v)
        return torch.einsum("nkctv,kvw->nctw", hidden, adjacency * self.edge_importance)


class TriBertGraphBlock(nn.Module):
    """One ST-GCN unit: spatial graph conv -> BN -> ReLU -> temporal conv -> BN -> dropout, plus residual, ReLU."""

    def __init__(self, in_channels, out_channels, stride, kernel_size, dropout, num_partitions, num_joints, residual):
        super().__init__()
        self.gcn = TriBertGraphConvolution(in_channels, out_channels, num_partitions, num_joints)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (kernel_size, 1), (stride, 1), ((kernel_size - 1) // 2, 0)),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout),
        )
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)), nn.BatchNorm2d(out_channels)
            )

    def forward(self, hidden: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(hidden, adjacency))
        if self.residual is not None:
            out = out + self.residual(hidden)
        return F.relu(out)


class TriBertPoseGraphNetwork(nn.Module):
    """ST-GCN (Yan et al., 2018) over the skeleton: `(N, T, V, C)` keypoints -> `(N, C_out, T', V)` features."""

    def __init__(self, config):
        super().__init__()
        pc = config
        self.layout = pc.graph_layout
        adjacency = torch.from_numpy(spatial_partition_adjacency(pc.graph_layout))
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.input_norm = nn.BatchNorm1d(pc.in_channels * pc.num_joints)
        blocks, in_channels = [], pc.in_channels
        for index, (channels, stride) in enumerate(zip(pc.gcn_channels, pc.gcn_strides)):
            blocks.append(
                TriBertGraphBlock(
                    in_channels, channels, stride, pc.temporal_kernel_size, pc.gcn_dropout,
                    adjacency.shape[0], pc.num_joints, residual=index > 0,
                )
            )  # fmt: skip
            in_channels = channels
        self.blocks = nn.ModuleList(blocks)

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        n, t, v, c = keypoints.shape
        hidden = self.input_norm(keypoints.permute(0, 2, 3, 1).reshape(n, v * c, t))
        # (N, C, T, V); contiguous, or the backward of the view above fails under torch.compile (aot_eager)
        hidden = hidden.view(n, v, c, t).permute(0, 2, 3, 1).contiguous()
        adjacency = self.adjacency.to(hidden.dtype)
        for block in self.blocks:
            hidden = block(hidden, adjacency)
        return hidden


class TriBertPoseEmbeddings(nn.Module):
    """Keypoints -> ST-GCN (over every `gcn_frame_stride`-th frame) -> per person, features pooled into `num_segments`
    time segments -> tokens."""

    def __init__(self, config: TriBertConfig):
        super().__init__()
        pc = config.pose_config
        self.config = pc
        self.graph_network = TriBertPoseGraphNetwork(pc)
        self.feature_size = pc.gcn_channels[-1] * pc.num_joints
        self.projection = nn.Linear(self.feature_size, pc.hidden_size)
        self.segment_embeddings = nn.Embedding(pc.num_segments, pc.hidden_size)
        self.person_embeddings = nn.Embedding(pc.num_persons, pc.hidden_size)
        self.sos_embedding = nn.Parameter(torch.zeros(1, 1, pc.hidden_size))
        self.layer_norm = nn.LayerNorm(pc.hidden_size, eps=pc.layer_norm_eps)
        self.dropout = nn.Dropout(pc.hidden_dropout_prob)

    def forward(self, pose_keypoints: torch.Tensor, pose_mask: torch.Tensor | None = None, return_frame_features: bool = False):
        """-> token embeddings, token mask and, with `return_frame_features`, the ST-GCN's output averaged over the
        joints `(batch, persons, channels, T')` (its frames before the pooling into segments)."""
        pc = self.config
        batch, persons, frames, joints, channels = pose_keypoints.shape
        if pose_mask is None:
            pose_mask = torch.ones(batch, persons, dtype=torch.long, device=pose_keypoints.device)
        # Zero the absent persons so that nothing about them reaches the network (batch-norm statistics included).
        # (a `where`, not a product: NaN x 0 would still be NaN)
        keypoints = torch.where(pose_mask[:, :, None, None, None] != 0, pose_keypoints, 0.0)
        if pc.gcn_frame_stride > 1:  # the ST-GCN sees every k-th frame (the pose timeline, all of them)
            keypoints = keypoints[:, :, :: pc.gcn_frame_stride]
            frames = keypoints.shape[2]
        hidden_frames = self.graph_network(keypoints.reshape(batch * persons, frames, joints, channels))  # (B*P, C, T', V)
        hidden = F.adaptive_avg_pool2d(hidden_frames, (pc.num_segments, joints))  # (B*P, C, S, V)
        features = hidden.view(batch, persons, -1, pc.num_segments, joints).permute(0, 3, 1, 2, 4)
        features = features.reshape(batch, pc.num_segments * persons, self.feature_size)  # segment-major tokens

        segment_ids = torch.arange(pc.num_segments, device=features.device).repeat_interleave(persons)
        person_ids = torch.arange(persons, device=features.device).repeat(pc.num_segments)
        tokens = self.projection(features) + self.segment_embeddings(segment_ids) + self.person_embeddings(person_ids)
        tokens = torch.cat([self.sos_embedding.expand(batch, -1, -1).to(tokens.dtype), tokens], dim=1)
        embeddings = self.dropout(self.layer_norm(tokens))
        token_mask = torch.cat(
            [torch.ones(batch, 1, dtype=torch.long, device=features.device), pose_mask.long().repeat(1, pc.num_segments)],
            dim=1,
        )
        if return_frame_features:
            return embeddings, token_mask, hidden_frames.mean(dim=-1).view(batch, persons, *hidden_frames.shape[1:3])
        return embeddings, token_mask


class TriBertPoseTimeline(nn.Module):
    """Per-frame pose features of a video, the timeline of the separation U-Net's per-frame FiLM
    (`config.separation_conditioning = "temporal"`; not in the paper): *when* each player strikes, bows and presses.

    Per person and keypoint frame: the velocity of every joint (central difference of x, y over the neighbouring
    keypoint frames; 0 where a joint is missing in either of them) and the ST-GCN's output averaged over the joints,
    brought back from its strided frames to the keypoint frames (linear interpolation: ST-GCN frame t' lies at
    keypoint frame t' * T / T'); two temporal convolutions (`temporal_kernel_size`); then the mean over the present
    persons: an absent person contributes nothing (their keypoints are never read), and a video without one gives
    zeros. With `config.separation_timeline_maps`, every joint's position relative to the person's centre (the mean of
    its seen joints over the crop; 0 where a joint is missing) joins the velocities: where the hand is along the
    instrument, i.e. the note's pitch. The result is on the keypoint frames, which the processor resamples over
    exactly the audio crop's time window (`TriBertProcessor._pose_window`: keypoint frame i at `crop start + i *
    crop length / T`), so the timeline is aligned with the spectrogram's frames (`separation.unet.timeline_to_frames`).
    """

    def __init__(self, config: TriBertConfig):
        super().__init__()
        pc = config.pose_config
        self.hidden_size = pc.gcn_channels[-1]
        self.motion_norm = nn.BatchNorm1d(2 * pc.num_joints)
        self.position_norm = nn.BatchNorm1d(2 * pc.num_joints) if config.separation_timeline_maps else None
        inputs = (4 if config.separation_timeline_maps else 2) * pc.num_joints + pc.gcn_channels[-1]
        padding = pc.temporal_kernel_size // 2
        self.temporal = nn.Sequential(
            nn.Conv1d(inputs, self.hidden_size, pc.temporal_kernel_size, padding=padding),
            nn.ReLU(),
            nn.Conv1d(self.hidden_size, self.hidden_size, pc.temporal_kernel_size, padding=padding),
        )

    def forward(self, pose_keypoints: torch.Tensor, pose_mask: torch.Tensor, frame_features: torch.Tensor) -> torch.Tensor:
        """`pose_keypoints` `(M, persons, T, joints, 3)`, `pose_mask` `(M, persons)` (0: absent) and the ST-GCN's
        `frame_features` `(M, persons, C, T')` -> the timeline `(M, hidden_size, T)`."""
        batch, persons, frames, joints, _ = pose_keypoints.shape
        present = pose_mask[:, :, None, None] != 0
        seen = present & (pose_keypoints[..., 2] > 0)  # (M, P, T, J); a `where`, not a product: NaN x 0 is NaN
        xy = torch.where(seen[..., None], pose_keypoints[..., :2], 0.0)
        velocity = torch.zeros_like(xy)
        if frames > 2:
            both = (seen[:, :, 2:] & seen[:, :, :-2])[..., None]
            velocity[:, :, 1:-1] = torch.where(both, (xy[:, :, 2:] - xy[:, :, :-2]) / 2, 0.0)
        motion = self.motion_norm(velocity.permute(0, 1, 3, 4, 2).reshape(batch * persons, joints * 2, frames))
        positions = torch.arange(frames, device=frame_features.device) * (frame_features.shape[-1] / frames)
        graph = interpolate_frames(frame_features.flatten(0, 1), positions).to(motion.dtype)
        parts = [motion, graph]
        if self.position_norm is not None:
            count = seen.sum(dim=(2, 3)).clamp_min(1)[..., None]  # (M, P, 1)
            centre = xy.sum(dim=(2, 3)) / count  # the mean of the seen joints over the crop, (M, P, 2)
            relative = torch.where(seen[..., None], xy - centre[:, :, None, None], 0.0)
            relative = relative.permute(0, 1, 3, 4, 2).reshape(batch * persons, joints * 2, frames)
            parts.append(self.position_norm(relative))
        hidden = self.temporal(torch.cat(parts, dim=1)).view(batch, persons, self.hidden_size, frames)
        present = present.to(hidden.dtype)
        return (hidden * present).sum(dim=1) / present.sum(dim=1).clamp_min(1)


class TriBertAudioEmbeddings(nn.Module):
    """Log-frequency magnitude -> VGGish-style CNN -> global average pooling -> FC + LayerNorm -> repeated tokens."""

    def __init__(self, config: TriBertConfig):
        super().__init__()
        ac = config.audio_config
        self.config = ac
        self.input_norm = nn.BatchNorm2d(1)
        layers, in_channels = [], 1
        for item in ac.cnn_layers:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers.append(nn.Conv2d(in_channels, item, kernel_size=3, padding=1))
            if ac.use_batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU(inplace=True))
            in_channels = item
        self.cnn = nn.Sequential(*layers)
        # LayerNorm: the global feature reaches the projection at unit scale, not drowned by the position embeddings
        self.fc = nn.Sequential(nn.Linear(in_channels, ac.feature_size), nn.ReLU(inplace=True), nn.LayerNorm(ac.feature_size))
        self.projection = nn.Linear(ac.feature_size, ac.hidden_size)
        self.position_embeddings = nn.Embedding(ac.sequence_length, ac.hidden_size)
        self.sos_embedding = nn.Parameter(torch.zeros(1, 1, ac.hidden_size))
        self.layer_norm = nn.LayerNorm(ac.hidden_size, eps=ac.layer_norm_eps)
        self.dropout = nn.Dropout(ac.hidden_dropout_prob)

    def forward(self, audio_spectrogram: torch.Tensor):
        ac = self.config
        if ac.apply_log:  # in float32: float16 cannot hold log_eps (1e-10 would round to 0 and log(0) = -inf)
            hidden = torch.log(audio_spectrogram.float() + ac.log_eps).to(audio_spectrogram.dtype)
        else:
            hidden = audio_spectrogram
        hidden = self.cnn(self.input_norm(hidden))
        feature = self.fc(hidden.mean(dim=(-2, -1)))  # (batch, feature_size): the global audio feature
        position_ids = torch.arange(ac.sequence_length, device=feature.device)
        tokens = self.projection(feature)[:, None, :] + self.position_embeddings(position_ids)[None]
        tokens = torch.cat([self.sos_embedding.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens], dim=1)
        embeddings = self.dropout(self.layer_norm(tokens))
        token_mask = torch.ones(embeddings.shape[:2], dtype=torch.long, device=embeddings.device)
        return embeddings, token_mask


# ----------------------------------------------------------------------------------------------------------------
# Transformer layers
# ----------------------------------------------------------------------------------------------------------------


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
):
    """Reference attention: query `(B, H, Lq, d)`, key/value `(B, H, Lk, d)`, additive mask `(B, 1, 1, Lk)`."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


def _attend(module, query, key, value, attention_mask, config, dropout):
    """Run the configured attention implementation; inputs `(B, L, H * d)` -> output `(B, Lq, H * d)`."""
    head_dim = module.head_dim
    q = query.view(*query.shape[:-1], -1, head_dim).transpose(1, 2)
    k = key.view(*key.shape[:-1], -1, head_dim).transpose(1, 2)
    v = value.view(*value.shape[:-1], -1, head_dim).transpose(1, 2)
    attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
        config._attn_implementation, eager_attention_forward
    )
    output, weights = attention_interface(
        module, q, k, v, attention_mask, dropout=dropout if module.training else 0.0, scaling=head_dim**-0.5
    )
    return output.reshape(*query.shape[:-1], -1).contiguous(), weights


class TriBertSelfAttention(nn.Module):
    def __init__(self, config: TriBertConfig, stream: str):
        super().__init__()
        sc = config.streams[stream]
        self.config = config
        self.is_causal = False
        self.head_dim = sc.hidden_size // sc.num_attention_heads
        self.dropout = sc.attention_probs_dropout_prob
        self.query = nn.Linear(sc.hidden_size, sc.hidden_size)
        self.key = nn.Linear(sc.hidden_size, sc.hidden_size)
        self.value = nn.Linear(sc.hidden_size, sc.hidden_size)

    def forward(self, hidden_states, attention_mask=None):
        return _attend(
            self, self.query(hidden_states), self.key(hidden_states), self.value(hidden_states),
            attention_mask, self.config, self.dropout,
        )  # fmt: skip


class TriBertResidualOutput(nn.Module):
    """Dense -> dropout -> residual -> LayerNorm (BERT's post-norm sub-layer output)."""

    def __init__(self, in_size: int, hidden_size: int, dropout: float, eps: float):
        super().__init__()
        self.dense = nn.Linear(in_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, hidden_states, residual):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class TriBertFeedForward(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, act: str, dropout: float, eps: float):
        super().__init__()
        self.intermediate = nn.Linear(hidden_size, intermediate_size)
        self.activation = ACT2FN[act]
        self.output = TriBertResidualOutput(intermediate_size, hidden_size, dropout, eps)

    def forward(self, hidden_states):
        return self.output(self.activation(self.intermediate(hidden_states)), hidden_states)


class TriBertLayer(GradientCheckpointingLayer):
    """A standard (post-norm) transformer block of one stream: self-attention, then feed-forward."""

    def __init__(self, config: TriBertConfig, stream: str):
        super().__init__()
        sc = config.streams[stream]
        self.attention = TriBertSelfAttention(config, stream)
        self.attention_output = TriBertResidualOutput(sc.hidden_size, sc.hidden_size, sc.hidden_dropout_prob, sc.layer_norm_eps)
        self.feed_forward = TriBertFeedForward(
            sc.hidden_size, sc.intermediate_size, sc.hidden_act, sc.hidden_dropout_prob, sc.layer_norm_eps
        )

    def forward(self, hidden_states, attention_mask=None):
        context, weights = self.attention(hidden_states, attention_mask)
        hidden_states = self.attention_output(context, hidden_states)
        return self.feed_forward(hidden_states), weights


class TriBertCoAttentionLayer(GradientCheckpointingLayer):
    """Tri-modal co-attention (paper Sec. 3.2): each stream computes Q, K, V at the co-attention width; the queries of
    a stream attend over the keys/values of the other two streams concatenated along the sequence; then, per stream,
    an output projection back to its hidden size with residual + LayerNorm and a feed-forward block."""

    def __init__(self, config: TriBertConfig):
        super().__init__()
        self.config = config
        self.is_causal = False
        width = config.co_attention_hidden_size
        self.head_dim = width // config.co_attention_num_heads
        self.query = nn.ModuleDict({s: nn.Linear(config.streams[s].hidden_size, width) for s in STREAMS})
        self.key = nn.ModuleDict({s: nn.Linear(config.streams[s].hidden_size, width) for s in STREAMS})
        self.value = nn.ModuleDict({s: nn.Linear(config.streams[s].hidden_size, width) for s in STREAMS})
        self.attention_output = nn.ModuleDict(
            {
                s: TriBertResidualOutput(
                    width, config.streams[s].hidden_size, config.streams[s].hidden_dropout_prob,
                    config.streams[s].layer_norm_eps,
                )
                for s in STREAMS
            }
        )  # fmt: skip
        self.feed_forward = nn.ModuleDict(
            {
                s: TriBertFeedForward(
                    config.streams[s].hidden_size, config.co_attention_intermediate_size, config.streams[s].hidden_act,
                    config.streams[s].hidden_dropout_prob, config.streams[s].layer_norm_eps,
                )
                for s in STREAMS
            }
        )  # fmt: skip

    def forward(self, vision, pose, audio, vision_mask, pose_mask, audio_mask):
        """Hidden states `(B, L_s, hidden_s)` and 1/0 token masks `(B, L_s)` per stream -> new hidden states and
        co-attention weights (keys of the other two streams in the order vision, pose, audio)."""
        states = {"vision": vision, "pose": pose, "audio": audio}
        masks = {"vision": vision_mask, "pose": pose_mask, "audio": audio_mask}
        keys = {s: self.key[s](states[s]) for s in STREAMS}
        values = {s: self.value[s](states[s]) for s in STREAMS}
        outputs, weights = [], []
        for stream in STREAMS:
            others = [s for s in STREAMS if s != stream]
            key = torch.cat([keys[s] for s in others], dim=1)
            value = torch.cat([values[s] for s in others], dim=1)
            key_mask = _additive_mask(torch.cat([masks[s] for s in others], dim=1), key.dtype)
            context, attn = _attend(
                self, self.query[stream](states[stream]), key, value, key_mask, self.config,
                self.config.co_attention_dropout,
            )  # fmt: skip
            hidden = self.attention_output[stream](context, states[stream])
            outputs.append(self.feed_forward[stream](hidden))
            weights.append(attn)
        return (*outputs, *weights)


class TriBertEncoder(nn.Module):
    """Per-stream self-attention layers interleaved with tri-modal co-attention layers (ViLBERT's `biattention_id`
    plan: co-attention layer i runs once every stream has run its layers before `co_attention_ids[i]`)."""

    def __init__(self, config: TriBertConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleDict(
            {s: nn.ModuleList([TriBertLayer(config, s) for _ in range(config.streams[s].num_hidden_layers)]) for s in STREAMS}
        )
        num_co = len(config.vision_config.co_attention_ids)
        self.co_attention_layers = nn.ModuleList([TriBertCoAttentionLayer(config) for _ in range(num_co)])

    def forward(self, states: dict, token_masks: dict, output_attentions: bool = False, output_hidden_states: bool = False):
        states = dict(states)
        additive = {s: _additive_mask(token_masks[s], states[s].dtype) for s in STREAMS}
        hidden = {s: [states[s]] for s in STREAMS} if output_hidden_states else None
        attentions = {s: [] for s in STREAMS}
        cross_attentions = {s: [] for s in STREAMS}
        start = dict.fromkeys(STREAMS, 0)

        def run_self_layers(stream, end):
            for layer in self.layers[stream][start[stream] : end]:
                states[stream], weights = layer(states[stream], additive[stream])
                if output_hidden_states:
                    hidden[stream].append(states[stream])
                if output_attentions:
                    attentions[stream].append(weights)
            start[stream] = max(start[stream], end)

        for index, co_layer in enumerate(self.co_attention_layers):
            for stream in STREAMS:
                run_self_layers(stream, self.config.streams[stream].co_attention_ids[index])
            result = co_layer(
                states["vision"], states["pose"], states["audio"],
                token_masks["vision"], token_masks["pose"], token_masks["audio"],
            )  # fmt: skip
            for offset, stream in enumerate(STREAMS):
                states[stream] = result[offset]
                if output_hidden_states:
                    hidden[stream].append(states[stream])
                if output_attentions:
                    cross_attentions[stream].append(result[3 + offset])
        for stream in STREAMS:
            run_self_layers(stream, len(self.layers[stream]))

        return {
            "states": states,
            "hidden_states": {s: tuple(v) for s, v in hidden.items()} if output_hidden_states else None,
            "attentions": {s: tuple(v) for s, v in attentions.items()} if output_attentions else None,
            "cross_attentions": {s: tuple(v) for s, v in cross_attentions.items()} if output_attentions else None,
        }


class TriBertPooler(nn.Module):
    """Dense + tanh on the `<SOS>` token (BERT's pooler)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


# Fields of `TriBertModelOutput` that the heads pass on (LXMERT-style per-stream tuples), in dataclass order.
ENCODER_OUTPUT_FIELDS = tuple(f"{s}_{kind}" for kind in ("hidden_states", "attentions", "cross_attentions") for s in STREAMS)


def encoder_fields(outputs: "TriBertModelOutput") -> dict:
    """The hidden states and attention fields of an encoder output, for a head's output dataclass."""
    return {name: getattr(outputs, name) for name in ENCODER_OUTPUT_FIELDS if getattr(outputs, name) is not None}


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


class TriBertPreTrainedModel(RemoteCodeMixin, PreTrainedModel):
    config: TriBertConfig
    base_model_prefix = "tribert"
    main_input_name = "pixel_values"
    input_modalities = ("video", "audio")
    supports_gradient_checkpointing = True
    _no_split_modules = [
        "TriBertVisionEmbeddings",
        "TriBertPoseEmbeddings",
        "TriBertAudioEmbeddings",
        "TriBertLayer",
        "TriBertCoAttentionLayer",
    ]
    _supports_sdpa = True
    # `forward(**kwargs)` only to name unknown arguments: no loss keyword arguments for `Trainer` to pass.
    accepts_loss_kwargs = False

    def freeze_vision_backbone(self, freeze: bool = True) -> None:
        """Keep the frame backbone fixed (e.g. an ImageNet ResNet loaded with `vision_config.backbone`, as the
        paper's ResNet-50): no gradients for its weights, and its batch-norm layers in inference mode whatever
        `train()` asks, so their pretrained statistics are kept. What follows it (V_e, the segmentation attention,
        the streams) still trains. `freeze_vision_backbone(False)` makes it trainable again."""
        embeddings = self.base_model.vision_embeddings
        embeddings.backbone.requires_grad_(not freeze)
        embeddings.backbone_frozen = freeze
        embeddings.train(embeddings.training)

    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            # Convolution stacks (ST-GCN, VGGish, V_e) keep their signal with He init, as torchvision's CNNs do; the
            # transformers default (normal, std 0.02) would shrink it layer after layer.
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if isinstance(module, (TriBertVisionEmbeddings, TriBertPoseEmbeddings, TriBertAudioEmbeddings)):
            init.normal_(module.sos_embedding, mean=0.0, std=std)
        if isinstance(module, TriBertVisionEmbeddings):
            init.normal_(module.mask_embedding, mean=0.0, std=std)
        elif isinstance(module, TriBertGraphConvolution):
            init.ones_(module.edge_importance)
        elif isinstance(module, (TriBertFiLM, TriBertTimelineMaps, TriBertTimelineSpectrumOutput)):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, TriBertPoseGraphNetwork):
            # Non-persistent buffer: rebuilt from the layout (the model may have been created on the meta device).
            init.copy_(module.adjacency, torch.from_numpy(spatial_partition_adjacency(module.layout)))

    def set_attn_implementation(self, attn_implementation, *args, **kwargs):
        """Set the attention of the three streams; the CNN backbone has no attention and stays on `"eager"`."""
        if isinstance(attn_implementation, str):
            # The stream sub-configs have no sub-model of their own (every layer reads the top-level config): keep
            # them in step so that transformers does not warn about sub-configs it cannot check.
            for sub_config in self.config.streams.values():
                sub_config._attn_implementation_internal = attn_implementation
            attn_implementation = {
                "": attn_implementation,
                "vision_config": {"": attn_implementation, "backbone_config": "eager"},
                "pose_config": attn_implementation,
                "audio_config": attn_implementation,
            }
        return super().set_attn_implementation(attn_implementation, *args, **kwargs)

    # Auto classes that a saved folder's `auto_map` names besides the class's own (`register_for_auto_class`, done on
    # `import tribert_hf`): Auto class -> a class of this module, e.g. `AutoModel` -> the bare encoder in a
    # pre-training folder.
    _extra_auto_map: dict[str, str] = {}

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; the folder also loads without tribert_hf (`trust_remote_code=True`):
        its `auto_map` names this class and `_extra_auto_map`, and the code files are copied next to the weights."""
        config = self.config
        # The saved weights contain the backbone: a reloaded checkpoint must not fetch the backbone again.
        vision_config = config.vision_config
        use_pretrained = vision_config.use_pretrained_backbone
        vision_config.use_pretrained_backbone = False
        # Only this class's Auto classes: a head loaded from another head's folder must not keep that one's entries.
        previous = getattr(config, "auto_map", None)
        module = __name__.rpartition(".")[2]
        config.auto_map = {auto: f"{module}.{name}" for auto, name in self._extra_auto_map.items()}
        pipelines, previous_pipelines = self._custom_pipelines(), getattr(config, "custom_pipelines", None)
        if pipelines or previous_pipelines is not None:  # e.g. an encoder loaded from a pre-training folder: none
            config.custom_pipelines = pipelines
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            vision_config.use_pretrained_backbone = use_pretrained
            config.auto_map = previous
            if previous_pipelines is not None:
                config.custom_pipelines = previous_pipelines

    def _remote_code_classes(self) -> list[type]:
        """The model's code, and the pipeline's where the folder names it (`custom_pipelines`)."""
        if not self._custom_pipelines():
            return [type(self)]
        from .pipeline_tribert import TriBertSourceSeparationPipeline

        return [type(self), TriBertSourceSeparationPipeline]

    # The Auto class under which a saved folder's `"audio-source-separation"` pipeline loads the model (the models
    # with a separation U-Net), or None.
    _pipeline_auto_class: str | None = None

    def _custom_pipelines(self) -> dict:
        """`custom_pipelines` of a saved folder's config: `pipeline("audio-source-separation", model=folder,
        trust_remote_code=True)` runs the folder's own `pipeline_tribert.py`."""
        if self._pipeline_auto_class is None:
            return {}
        impl = "pipeline_tribert.TriBertSourceSeparationPipeline"
        return {"audio-source-separation": {"impl": impl, "pt": [self._pipeline_auto_class], "type": "multimodal"}}


class TriBertModel(TriBertPreTrainedModel):
    r"""The bare TriBERT encoder: three stream embeddings, the tri-modal co-attention encoder and `<SOS>` poolers.

    Args:
        config ([`TriBertConfig`]): the architecture; `from_pretrained` loads the weights.

    Example:

    ```python
    >>> from tribert_hf import TriBertConfig, TriBertModel
    >>> model = TriBertModel(TriBertConfig())  # or TriBertModel.from_pretrained(folder)
    >>> outputs = model(pixel_values, pose_keypoints, audio_spectrogram, pose_mask=pose_mask)
    >>> outputs.vision_last_hidden_state.shape  # (batch, 1 + 3 frames x 2 objects, 1024)
    ```
    """

    def __init__(self, config: TriBertConfig):
        super().__init__(config)
        self.vision_embeddings = TriBertVisionEmbeddings(config)
        self.pose_embeddings = TriBertPoseEmbeddings(config)
        self.audio_embeddings = TriBertAudioEmbeddings(config)
        self.encoder = TriBertEncoder(config)
        self.poolers = nn.ModuleDict({s: TriBertPooler(config.streams[s].hidden_size) for s in STREAMS})
        self.post_init()

    def parameter_counts(self) -> dict[str, int]:
        """Number of parameters per component (front ends, stream layers, co-attention, poolers) and in total."""

        def count(*modules):
            return sum(p.numel() for m in modules for p in m.parameters())

        vision, pose, audio = self.vision_embeddings, self.pose_embeddings, self.audio_embeddings
        counts = {
            "vision_backbone": count(vision.backbone),
            "vision_segmentation": count(vision.feature_conv, vision.segmentation),
            "vision_token_embeddings": count(vision) - count(vision.backbone, vision.feature_conv, vision.segmentation),
            "pose_st_gcn": count(pose.graph_network),
            "pose_token_embeddings": count(pose) - count(pose.graph_network),
            "audio_vggish": count(audio.input_norm, audio.cnn, audio.fc),
            "audio_token_embeddings": count(audio) - count(audio.input_norm, audio.cnn, audio.fc),
            **{f"{s}_self_attention_layers": count(self.encoder.layers[s]) for s in STREAMS},
            "co_attention_layers": count(self.encoder.co_attention_layers),
            "poolers": count(self.poolers),
        }
        counts["total"] = count(self)
        assert sum(v for k, v in counts.items() if k != "total") == counts["total"]
        return counts

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        pose_keypoints: torch.FloatTensor,
        audio_spectrogram: torch.FloatTensor,
        pose_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.BoolTensor | None = None,
        audio_repeats: int = 1,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TriBertModelOutput | tuple:
        r"""
        The input contract (checked here, see `docs/input_contract.md`): a batch of at least one clip, floating
        point inputs, finite values (an absent person's keypoints excepted), shapes matching the config.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, frames, 3, height, width)`):
                normalised RGB frames (see [`TriBertVideoProcessor`]).
            pose_keypoints (`torch.FloatTensor` of shape `(batch, persons, T, joints, 3)`):
                x, y normalised by the frame size, and confidence.
            audio_spectrogram (`torch.FloatTensor` of shape `(batch / audio_repeats, 1, 256, time)`):
                log-frequency STFT magnitude (non-negative; see [`TriBertFeatureExtractor`]).
            pose_mask (`torch.LongTensor` of shape `(batch, persons)`, *optional*):
                1 for a present person, 0 for an absent one (its tokens are masked from every attention and its
                keypoints ignored). Defaults to all present.
            bool_masked_pos (`torch.BoolTensor` of shape `(batch, frames * objects)`, *optional*):
                visual region tokens to mask. In training, `config.vision_config.mask_probability` of them are
                masked at random when this is not given.
            audio_repeats (`int`, defaults to 1):
                each `audio_spectrogram` row is shared by this many consecutive examples (the N videos of one
                mixture): the audio embeddings are computed once and repeated.
            output_attentions (`bool`, *optional*):
                return the self- and co-attention weights of every layer (eager attention only; other
                implementations warn and return none). Defaults to `config.output_attentions`.
            output_hidden_states (`bool`, *optional*):
                return every stream's hidden states. Defaults to `config.output_hidden_states`.
            return_dict (`bool`, *optional*):
                a [`TriBertModelOutput`] (True) or a plain tuple of its non-None fields. Defaults to
                `config.return_dict`.

        Floating inputs are cast to the model's dtype; an unknown keyword argument raises a `TypeError`.

        Returns:
            [`TriBertModelOutput`] or `tuple`: per stream, `*_last_hidden_state` `(batch, length, hidden)`,
            `*_pooler_output` `(batch, hidden)`, `*_embeddings`, `*_attention_mask` `(batch, length)`; the
            segmentation attention's `vision_class_scores` `(batch, frames, num_labels)`; and on request
            `*_hidden_states`, `*_attentions`, `*_cross_attentions` (tuples, one entry per layer); with
            `config.separation_conditioning="temporal"`, `pose_frame_features` (the separation heads' timeline input).
        """
        reject_unknown_kwargs(self, kwargs)
        output_attentions = resolve_output_attentions(self, output_attentions)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        check_inputs(self.config, pixel_values, pose_keypoints, audio_spectrogram, pose_mask, audio_repeats)
        pixel_values, pose_keypoints, audio_spectrogram = cast_floating(
            self.dtype, pixel_values, pose_keypoints, audio_spectrogram
        )

        vision, vision_mask, class_scores, object_classes, masked = self.vision_embeddings(pixel_values, bool_masked_pos)
        if not self.config.use_pose_input:  # the "without pose" ablation: nobody is seen
            pose_mask = torch.zeros(pose_keypoints.shape[:2], dtype=torch.long, device=pose_keypoints.device)
        fields = {}
        if self.config.separation_conditioning == "temporal":  # the separation heads' timeline needs the frames
            pose, pose_token_mask, fields["pose_frame_features"] = self.pose_embeddings(
                pose_keypoints, pose_mask, return_frame_features=True
            )
        else:
            pose, pose_token_mask = self.pose_embeddings(pose_keypoints, pose_mask)
        audio, audio_mask = self.audio_embeddings(audio_spectrogram)
        if audio_repeats != 1:
            audio, audio_mask = audio.repeat_interleave(audio_repeats, dim=0), audio_mask.repeat_interleave(audio_repeats, dim=0)
        embeddings = {"vision": vision, "pose": pose, "audio": audio}
        token_masks = {"vision": vision_mask, "pose": pose_token_mask, "audio": audio_mask}

        encoded = self.encoder(embeddings, token_masks, output_attentions, output_hidden_states)
        states = encoded["states"]
        for stream in STREAMS:
            fields[f"{stream}_last_hidden_state"] = states[stream]
            fields[f"{stream}_pooler_output"] = self.poolers[stream](states[stream])
            fields[f"{stream}_embeddings"] = embeddings[stream]
            fields[f"{stream}_attention_mask"] = token_masks[stream]
            for key in ("hidden_states", "attentions", "cross_attentions"):
                if encoded[key] is not None:
                    fields[f"{stream}_{key}"] = encoded[key][stream]
        output = TriBertModelOutput(
            vision_class_scores=class_scores, vision_object_classes=object_classes, vision_masked_positions=masked, **fields
        )
        return output if return_dict else output.to_tuple()


# ----------------------------------------------------------------------------------------------------------------
# Separation: the attention U-Net (`separation.unet`) conditioned at its bottleneck on the streams' <SOS> outputs
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TriBertSeparationOutput(ModelOutput):
    r"""
    loss (`()`): weighted per-pixel BCE (binary masks) or L1 (ratio masks) against `labels`, when given.
    logits (`(batch, num_videos, frequency_bins, frames)`): mask logits on the log-frequency grid, one per video.
    masks (`(batch, num_videos, frequency_bins, frames)`): the masks (sigmoid, or 2 * sigmoid for ratio masks).
    vision_hidden_states ... audio_cross_attentions: the encoder's, as in [`TriBertModelOutput`], with
        `output_hidden_states=True` / `output_attentions=True`; the encoder sees every (mixture, video) pair, so
        their leading dimension is `batch * num_videos` (mixture-major).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    masks: torch.FloatTensor | None = None
    vision_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    pose_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    audio_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    vision_attentions: tuple[torch.FloatTensor, ...] | None = None
    pose_attentions: tuple[torch.FloatTensor, ...] | None = None
    audio_attentions: tuple[torch.FloatTensor, ...] | None = None
    vision_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    pose_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    audio_cross_attentions: tuple[torch.FloatTensor, ...] | None = None


def _separation_head(config: TriBertConfig) -> TriBertSeparationHead:
    """The attention U-Net of `config`, conditioned on each video's fused `<SOS>` outputs (and, with
    `separation_class_conditioning`, the segmentation attention's class scores: see `_encode_videos`; with
    `separation_conditioning="temporal"`, also frame by frame on the pose timeline: `_pose_timeline`)."""
    condition_size = sum(config.streams[s].hidden_size for s in STREAMS)
    if config.separation_class_conditioning:
        condition_size += config.num_labels
    timeline_size = config.pose_config.gcn_channels[-1] if config.separation_conditioning == "temporal" else None
    spectrum_bins = 0
    if config.separation_timeline_spectrum:  # the bins of the mask logits before upsampling
        spectrum_bins = config.audio_config.num_frequency_bins // config.separation_output_stride
    return TriBertSeparationHead(
        condition_size, config.separation_base_channels, config.separation_num_downs, config.separation_fusion_heads,
        config.separation_film, condition_maps=config.separation_condition_maps, timeline_size=timeline_size,
        timeline_maps=config.separation_timeline_maps, output_stride=config.separation_output_stride,
        timeline_spectrum_bins=spectrum_bins,
    )  # fmt: skip


def _pose_timeline(config: TriBertConfig) -> "TriBertPoseTimeline | None":
    """The per-frame pose features of `separation_conditioning="temporal"`, else None (the paper's pooled `<SOS>`
    conditioning only)."""
    return TriBertPoseTimeline(config) if config.separation_conditioning == "temporal" else None


def _video_timelines(pose_timeline, outputs, pose_keypoints, batch: int, videos: int):
    """Each video's pose timeline `(B, N, size, T)` from the encoder `outputs` of its `(B * N)` videos and their
    keypoints `(B, N, persons, T, joints, 3)`; None without a `pose_timeline`. The persons present are those the
    pose stream saw (its token mask: none in the "without pose" ablation)."""
    if pose_timeline is None:
        return None
    (pose_keypoints,) = cast_floating(outputs.pose_frame_features.dtype, pose_keypoints)
    persons, frames = pose_keypoints.shape[2:4]
    person_mask = outputs.pose_attention_mask[:, 1 : 1 + persons]  # segment-major tokens: segment 0's persons
    timelines = pose_timeline(pose_keypoints.flatten(0, 1), person_mask, outputs.pose_frame_features)
    return timelines.view(batch, videos, -1, frames)


def _encode_videos(
    tribert, pixel_values, pose_keypoints, audio_spectrogram, pose_mask=None, bool_masked_pos=None,
    output_attentions=False, output_hidden_states=False, class_labels=None, class_teacher_forcing=0.0,
):  # fmt: skip
    """Run the encoder for every (mixture, video) pair, each video with the mixture's spectrogram.

    Returns the condition of the separation U-Net, the concatenated pooled `<SOS>` outputs of the three streams
    (and, with `config.separation_class_conditioning`, the frames' mean class scores) `(B, N, D)`, and the encoder
    output (a `TriBertModelOutput` whatever `config.return_dict` says, batch flattened to B * N).

    `class_teacher_forcing` p > 0 with `class_labels` `(B, N, num_labels)` (training only; class conditioning only):
    each video's class scores in the condition are replaced by its labels with probability p (drawn per video from
    torch's global generator), so that the U-Net learns to use the class before the segmentation attention has
    learnt to tell it.
    """
    batch, videos = pixel_values.shape[:2]
    outputs = tribert(
        pixel_values=pixel_values.flatten(0, 1),
        pose_keypoints=pose_keypoints.flatten(0, 1),
        audio_spectrogram=audio_spectrogram,
        audio_repeats=videos,  # the mixture's audio embeddings are computed once for its N videos
        pose_mask=None if pose_mask is None else pose_mask.flatten(0, 1),
        bool_masked_pos=None if bool_masked_pos is None else bool_masked_pos.flatten(0, 1),
        output_attentions=output_attentions,
        output_hidden_states=output_hidden_states,
        return_dict=True,
    )
    parts = [outputs[f"{s}_pooler_output"] for s in STREAMS]
    if tribert.config.separation_class_conditioning:
        scores = outputs.vision_class_scores.mean(dim=1).to(parts[0].dtype)
        if class_teacher_forcing > 0 and class_labels is not None:
            told = torch.rand(batch * videos, 1, device=scores.device) < class_teacher_forcing
            scores = torch.where(told, class_labels.flatten(0, 1).to(scores.dtype), scores)
        parts.append(scores)
    return torch.cat(parts, dim=-1).view(batch, videos, -1), outputs


class TriBertForSourceSeparation(TriBertPreTrainedModel):
    r"""TriBERT + attention U-Net: separates a mixture of N videos' audio into one mask per video (mix-and-separate).

    Each video is encoded by `TriBertModel` from its own frames and keypoints together with the mixture's
    spectrogram; the concatenated pooled `<SOS>` outputs (dense + tanh) of the three streams condition the U-Net at
    its bottleneck. With `config.separation_conditioning="temporal"` (not in the paper) each video's pose timeline
    (`TriBertPoseTimeline`: per keypoint frame, aligned with the spectrogram's frames) also scales and shifts the
    decoder frame by frame: when each player plays, not only which instrument.

    Args:
        config ([`TriBertConfig`]): the architecture (`separation_*` fields for the U-Net, `mask_type`).

    Example:

    ```python
    >>> from tribert_hf import TriBertForSourceSeparation, TriBertProcessor
    >>> model = TriBertForSourceSeparation.from_pretrained(folder)
    >>> processor = TriBertProcessor.from_pretrained(folder)
    >>> clips = processor([audio_a, audio_b], videos=[frames_a, frames_b], sampling_rate=11025, return_tensors="pt")
    >>> inputs = processor.group_videos(clips, num_videos=2)  # (1 mixture, 2 videos, ...)
    >>> masks = model(**inputs).masks  # (1, 2, 256, 256)
    >>> waveforms = processor.post_process_source_separation(masks, mixture)  # (1, 2, samples)
    ```

    Audio of any length, segment by segment: `tribert_hf.separation.apply.separate(model, waveform,
    processor.feature_extractor, pixel_values, pose_keypoints)` (the model itself takes no feature extractor).
    """

    _pipeline_auto_class = "AutoModel"  # a separation folder's AutoModel is this class (see `tribert_hf._register`)

    def __init__(self, config: TriBertConfig):
        super().__init__(config)
        self.tribert = TriBertModel(config)
        self.pose_timeline = _pose_timeline(config)
        self.separation = _separation_head(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        pose_keypoints: torch.FloatTensor,
        audio_spectrogram: torch.FloatTensor,
        pose_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        loss_weight: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TriBertSeparationOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, videos, frames, 3, height, width)`):
                each video's frames ([`TriBertProcessor.group_videos`] groups the processor's clips).
            pose_keypoints (`torch.FloatTensor` of shape `(batch, videos, persons, T, 68, 3)`):
                each video's keypoints.
            audio_spectrogram (`torch.FloatTensor` of shape `(batch, 1, 256, frames)`):
                the mixture's log-frequency magnitude.
            pose_mask (`torch.LongTensor` of shape `(batch, videos, persons)`, *optional*):
                1 for a present person, 0 for an absent one. Defaults to all present.
            labels (`torch.FloatTensor` of shape `(batch, videos, 256, frames)`, *optional*):
                mask targets (binary: the video's sources dominate; or ratios).
            loss_weight (`torch.FloatTensor` of shape `(batch, 1, 256, frames)`, *optional*):
                per-pixel weight of the loss; defaults to log1p(mixture) clamped to [1e-3, 10].
            bool_masked_pos (`torch.BoolTensor` of shape `(batch, videos, frames * objects)`, *optional*):
                visual region tokens to mask.
            class_labels (*optional*): ignored; taken so that one mix-and-separate batch fits every head.
            output_attentions, output_hidden_states, return_dict (`bool`, *optional*):
                as in [`TriBertModel.forward`]; default to the config's.

        Returns:
            [`TriBertSeparationOutput`] or `tuple`: `loss` (with `labels`), `logits` and `masks`
            `(batch, videos, 256, frames)`, and on request the encoder's hidden states and attentions.
        """
        reject_unknown_kwargs(self, kwargs)
        output_attentions = resolve_output_attentions(self, output_attentions)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        check_video_inputs(pixel_values, pose_keypoints, pose_mask)
        (audio_spectrogram,) = cast_floating(self.dtype, audio_spectrogram)  # the U-Net's input too
        conditions, outputs = _encode_videos(
            self.tribert, pixel_values, pose_keypoints, audio_spectrogram, pose_mask, bool_masked_pos,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        timelines = _video_timelines(self.pose_timeline, outputs, pose_keypoints, *pixel_values.shape[:2])
        logits = self.separation(audio_spectrogram, conditions, self.config.audio_config.log_eps, timelines=timelines)
        mask_type, activation = self.config.mask_type, self.config.mask_activation
        loss = None if labels is None else mask_loss(logits, labels, audio_spectrogram, loss_weight, mask_type, activation)
        output = TriBertSeparationOutput(
            loss=loss, logits=logits, masks=activate_masks(logits, mask_type, activation), **encoder_fields(outputs)
        )
        return output if return_dict else output.to_tuple()


# ----------------------------------------------------------------------------------------------------------------
# Pre-training: weakly supervised classification (vision, pose), audio classification, separation
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TriBertForPreTrainingOutput(ModelOutput):
    r"""
    loss: the weighted sum of the terms below (those that could be computed).
    vision_classification_loss / pose_classification_loss: BCE of the WSDDN clip scores against each video's labels.
    audio_classification_loss: BCE of the audio logits against the labels of every video in the mixture (the
        audio stream hears the mixture).
    segmentation_loss: BCE of the segmentation attention's clip-level class scores against the video's labels.
    separation_loss: weighted per-pixel mask loss.
    vision_scores / pose_scores (`(batch, videos, num_labels)`): WSDDN clip scores in (0, 1).
    audio_logits (`(batch, videos, num_labels)`), mask_logits (`(batch, videos, 256, frames)`).
    vision_hidden_states ... audio_cross_attentions: the encoder's, as in [`TriBertSeparationOutput`] (leading
        dimension `batch * videos`).
    """

    loss: torch.FloatTensor | None = None
    vision_classification_loss: torch.FloatTensor | None = None
    pose_classification_loss: torch.FloatTensor | None = None
    audio_classification_loss: torch.FloatTensor | None = None
    segmentation_loss: torch.FloatTensor | None = None
    separation_loss: torch.FloatTensor | None = None
    vision_scores: torch.FloatTensor | None = None
    pose_scores: torch.FloatTensor | None = None
    audio_logits: torch.FloatTensor | None = None
    mask_logits: torch.FloatTensor | None = None
    vision_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    pose_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    audio_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    vision_attentions: tuple[torch.FloatTensor, ...] | None = None
    pose_attentions: tuple[torch.FloatTensor, ...] | None = None
    audio_attentions: tuple[torch.FloatTensor, ...] | None = None
    vision_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    pose_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    audio_cross_attentions: tuple[torch.FloatTensor, ...] | None = None


class TriBertWeaklySupervisedHead(nn.Module):
    """WSDDN (Bilen & Vedaldi): a class branch (softmax over classes) and a detection branch (softmax over regions),
    multiplied and summed over regions -> clip-level class scores in (0, 1). Masked regions take no part."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.classification = nn.Linear(hidden_size, num_labels)
        self.detection = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden_states: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        regions, mask = hidden_states[:, 1:], token_mask[:, 1:, None].bool()  # drop <SOS>
        class_probabilities = self.classification(regions).softmax(dim=-1)
        detection = self.detection(regions)
        detection = detection.masked_fill(~mask, torch.finfo(detection.dtype).min).softmax(dim=1)
        return (class_probabilities * detection).sum(dim=1).clamp(1e-6, 1 - 1e-6)


class TriBertForPreTraining(TriBertPreTrainedModel):
    _extra_auto_map = {"AutoModel": "TriBertModel"}
    _pipeline_auto_class = "AutoModelForPreTraining"

    r"""TriBERT with the paper's joint pre-training objective: weakly supervised vision and pose classification,
    audio classification, the segmentation attention's class scores and mix-and-separate mask prediction.

    Args:
        config ([`TriBertConfig`]): the architecture; `*_loss_weight` fields weight the terms of the loss.

    Example:

    ```python
    >>> from tribert_hf import TriBertForPreTraining
    >>> model = TriBertForPreTraining.from_pretrained(folder)
    >>> outputs = model(**batch)  # a MixAndSeparateCollator batch: class_labels and labels give every loss term
    >>> outputs.loss.backward()
    ```
    """

    def __init__(self, config: TriBertConfig):
        super().__init__(config)
        self.tribert = TriBertModel(config)
        self.vision_classifier = TriBertWeaklySupervisedHead(config.vision_config.hidden_size, config.num_labels)
        self.pose_classifier = TriBertWeaklySupervisedHead(config.pose_config.hidden_size, config.num_labels)
        self.audio_classifier = nn.Linear(config.audio_config.hidden_size, config.num_labels)
        self.pose_timeline = _pose_timeline(config)
        self.separation = _separation_head(config)
        # Training only, not saved (not part of the model): the probability that a video's class scores in the U-Net's
        # condition are replaced by its labels (`_encode_videos`); the training recipe anneals it
        # (`--class_teacher_forcing`). 0: the model's own scores, as at inference.
        self.class_teacher_forcing = 0.0
        self.post_init()

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        pose_keypoints: torch.FloatTensor,
        audio_spectrogram: torch.FloatTensor,
        pose_mask: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        loss_weight: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TriBertForPreTrainingOutput | tuple:
        r"""
        Args:
            pixel_values, pose_keypoints, audio_spectrogram, pose_mask, labels, loss_weight, bool_masked_pos:
                as in [`TriBertForSourceSeparation.forward`] (`(batch, videos, ...)` video inputs, one mixture
                spectrogram `(batch, 1, 256, frames)` per example).
            class_labels (`torch.FloatTensor` of shape `(batch, videos, num_labels)`, *optional*):
                multi-hot instrument labels of each video; give the classification and segmentation terms.
            output_attentions, output_hidden_states, return_dict (`bool`, *optional*):
                as in [`TriBertModel.forward`]; default to the config's.

        Returns:
            [`TriBertForPreTrainingOutput`] or `tuple`: `loss` (the weighted sum of the terms that could be
            computed) and each term, `vision_scores` / `pose_scores` / `audio_logits` `(batch, videos,
            num_labels)`, `mask_logits` `(batch, videos, 256, frames)`, and on request the encoder's hidden states
            and attentions.
        """
        reject_unknown_kwargs(self, kwargs)
        output_attentions = resolve_output_attentions(self, output_attentions)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        check_video_inputs(pixel_values, pose_keypoints, pose_mask)
        (audio_spectrogram,) = cast_floating(self.dtype, audio_spectrogram)  # the U-Net's input too
        batch, videos = pixel_values.shape[:2]
        if class_labels is not None and tuple(class_labels.shape) != (batch, videos, self.config.num_labels):
            raise ValueError(
                f"`class_labels` must have shape (batch, videos, num_labels) = ({batch}, {videos}, "
                f"{self.config.num_labels}), got {tuple(class_labels.shape)}."
            )
        sos, outputs = _encode_videos(
            self.tribert, pixel_values, pose_keypoints, audio_spectrogram, pose_mask, bool_masked_pos,
            output_attentions, output_hidden_states, class_labels, self.class_teacher_forcing if self.training else 0.0,
        )  # fmt: skip
        shape = (batch, videos, -1)
        vision_scores = self.vision_classifier(outputs.vision_last_hidden_state, outputs.vision_attention_mask).view(shape)
        pose_scores = self.pose_classifier(outputs.pose_last_hidden_state, outputs.pose_attention_mask).view(shape)
        audio_logits = self.audio_classifier(outputs.audio_last_hidden_state.mean(dim=1)).view(shape)
        segmentation_scores = outputs.vision_class_scores.mean(dim=1).clamp(1e-6, 1 - 1e-6).view(shape)
        timelines = _video_timelines(self.pose_timeline, outputs, pose_keypoints, batch, videos)
        mask_logits = self.separation(audio_spectrogram, sos, self.config.audio_config.log_eps, timelines=timelines)

        terms = {}
        if class_labels is not None:
            # BCE on probabilities is not autocast-safe (CUDA's autocast refuses F.binary_cross_entropy whatever the
            # dtype): the classification terms are computed in float32 with autocast off.
            vision_scores, pose_scores, audio_logits = vision_scores.float(), pose_scores.float(), audio_logits.float()
            segmentation_scores = segmentation_scores.float()
            targets = class_labels.float()
            heard = targets.amax(dim=1, keepdim=True).expand_as(targets)  # every instrument of the mixture
            with torch.autocast(device_type=vision_scores.device.type, enabled=False):
                terms["vision_classification_loss"] = F.binary_cross_entropy(vision_scores, targets)
                # Videos in which nobody was detected (every person masked) have no pose evidence: left out.
                has_person = outputs.pose_attention_mask[:, 1:].any(dim=1).view(batch, videos, 1).to(targets.dtype)
                pose_terms = F.binary_cross_entropy(pose_scores, targets, reduction="none") * has_person
                terms["pose_classification_loss"] = pose_terms.sum() / (has_person.sum() * targets.shape[-1]).clamp_min(1)
                terms["audio_classification_loss"] = F.binary_cross_entropy_with_logits(audio_logits, heard)
                terms["segmentation_loss"] = F.binary_cross_entropy(segmentation_scores, targets)
        if labels is not None:
            terms["separation_loss"] = mask_loss(
                mask_logits, labels, audio_spectrogram, loss_weight, self.config.mask_type, self.config.mask_activation
            )
        weights = {
            "vision_classification_loss": self.config.vision_classification_loss_weight,
            "pose_classification_loss": self.config.pose_classification_loss_weight,
            "audio_classification_loss": self.config.audio_classification_loss_weight,
            "segmentation_loss": self.config.segmentation_loss_weight,
            "separation_loss": self.config.separation_loss_weight,
        }
        loss = sum(weights[name] * value for name, value in terms.items()) if terms else None
        output = TriBertForPreTrainingOutput(
            loss=loss, vision_scores=vision_scores, pose_scores=pose_scores, audio_logits=audio_logits,
            mask_logits=mask_logits, **terms, **encoder_fields(outputs),
        )  # fmt: skip
        return output if return_dict else output.to_tuple()


__all__ = [
    "TriBertForPreTraining",
    "TriBertForPreTrainingOutput",
    "TriBertForSourceSeparation",
    "TriBertModel",
    "TriBertModelOutput",
    "TriBertPreTrainedModel",
    "TriBertSeparationOutput",
]

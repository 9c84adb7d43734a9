"""TriBERT's retrieval heads (paper Table 3): the joint n-way multiple-choice scorer (`TriBertForRetrieval`) and one
embedding per clip and modality in a shared space (`TriBertForContrastiveRetrieval`, CLIP/CLAP-style), with the
helpers that compose their inputs, their losses and top-k accuracy. Both sit on `TriBertModel` (`modeling_tribert`).
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_tribert import RETRIEVAL_VARIANTS, TriBertConfig
from .input_checks import cast_floating, check_inputs, reject_unknown_kwargs, resolve_output_attentions
from .modeling_tribert import STREAMS, TriBertModel, TriBertPreTrainedModel, encoder_fields


# ----------------------------------------------------------------------------------------------------------------
# Retrieval (paper Table 3): n-way multiple choice between a query and candidates of another modality
# ----------------------------------------------------------------------------------------------------------------

_MODALITY_INPUTS = {
    "vision": ("pixel_values",),
    "pose": ("pose_keypoints", "pose_mask"),
    "audio": ("audio_spectrogram",),
}


def stream_token_counts(config: TriBertConfig) -> dict[str, int]:
    """Tokens of each stream's sequence, `<SOS>` included (what a retrieval head flattens): frames x objects,
    segments x persons, and the audio CNN's sequence."""
    vc, pc, ac = config.vision_config, config.pose_config, config.audio_config
    return {"vision": 1 + vc.num_frames * vc.num_objects, "pose": 1 + pc.num_segments * pc.num_persons, "audio": 1 + ac.sequence_length}


class TriBertFrozenEncoderMixin:
    """`freeze_encoder` for the retrieval heads: the pre-trained `TriBertModel` (`self.tribert`) kept fixed while the
    head trains. `_after_freeze_change` lets a head re-apply its own rules (e.g. parameters that never train)."""

    def freeze_encoder(self, freeze: bool = True) -> None:
        """Keep the pre-trained `TriBertModel` fixed (train only the head): no gradients, and the encoder stays in eval
        mode under `model.train()` (BatchNorm statistics, dropout and region masking frozen too).
        `freeze_encoder(False)` makes the encoder trainable again."""
        self._encoder_frozen = freeze
        for parameter in self.tribert.parameters():
            parameter.requires_grad_(not freeze)
        self._after_freeze_change()
        self.train(self.training)

    def _after_freeze_change(self) -> None:
        pass

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "_encoder_frozen", False):
            self.tribert.eval()
        return self


def compose_retrieval_pairs(variant: str, query: dict, candidates: dict) -> dict:
    """Model inputs for scoring one query against `n` candidates.

    Args:
        variant: a key of `RETRIEVAL_VARIANTS` (e.g. `"audio_to_vision"`).
        query: one clip's inputs without a batch dimension (`pixel_values` `(F, 3, H, W)`, `pose_keypoints`
            `(P, T, J, 3)`, `pose_mask` `(P,)`, `audio_spectrogram` `(1, 256, frames)`); only the query streams
            are read.
        candidates: the same keys with a leading dimension `n`; only the candidate stream is read.
    Returns:
        Inputs with a leading `n`: pair i holds the query's streams and candidate i's stream; the stream that is
        neither (e.g. pose for audio -> vision) is blank (zeros, and every person masked).
    """
    query_streams, candidate_stream, _ = RETRIEVAL_VARIANTS[variant]
    reference = candidates[_MODALITY_INPUTS[candidate_stream][0]]
    n = reference.shape[0]
    pairs = {}
    for stream, names in _MODALITY_INPUTS.items():
        for name in names:
            if stream == candidate_stream:
                pairs[name] = candidates[name]
            elif stream in query_streams:
                pairs[name] = query[name].unsqueeze(0).expand(n, *query[name].shape)
            elif name in query:  # the blank stream: zeros shaped like the query's (and every person absent)
                pairs[name] = torch.zeros(n, *query[name].shape, dtype=query[name].dtype)
            elif name in candidates:
                pairs[name] = torch.zeros_like(candidates[name])
            else:
                raise ValueError(f"compose_retrieval_pairs needs `{name}` in the query or the candidates (for its shape).")
    return pairs


@dataclass
class TriBertRetrievalOutput(ModelOutput):
    r"""
    loss (`()`): cross entropy of the n-way choice, when `labels` are given.
    logits (`(batch, n)`): one score per (query, candidate) pair.
    vision_hidden_states ... audio_cross_attentions: the encoder's, as in [`TriBertModelOutput`], with
        `output_hidden_states=True` / `output_attentions=True`; leading dimension `batch * n` (query-major).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    vision_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    pose_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    audio_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    vision_attentions: tuple[torch.FloatTensor, ...] | None = None
    pose_attentions: tuple[torch.FloatTensor, ...] | None = None
    audio_attentions: tuple[torch.FloatTensor, ...] | None = None
    vision_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    pose_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    audio_cross_attentions: tuple[torch.FloatTensor, ...] | None = None


class TriBertForRetrieval(TriBertFrozenEncoderMixin, TriBertPreTrainedModel):
    """Cross-modal retrieval as n-way multiple choice (paper Sec. 4.2): the query's and the candidate's embeddings
    are projected to `retrieval_hidden_size`, multiplied element-wise and scored by an MLP; softmax over the n.

    `config.retrieval_variant` picks the query and candidate streams; `config.retrieval_embeddings` picks the
    transformer's hidden states (`"transformer"`) or the stream embeddings before it (`"pre_transformer"`, the
    paper's baseline). Each stream's embedding is its token sequence flattened (masked tokens zeroed).

    Args:
        config ([`TriBertConfig`]): the architecture; `retrieval_variant`, `retrieval_embeddings` and
            `retrieval_hidden_size` define the head.

    Example:

    ```python
    >>> from tribert_hf import TriBertForRetrieval, compose_retrieval_pairs
    >>> model = TriBertForRetrieval.from_pretrained(folder, retrieval_variant="audio_to_vision")
    >>> scores = model.score_pool(query, pool)  # (pool size,): one clip's inputs against every clip of a pool
    ```
    """

    _extra_auto_map = {"AutoModel": "TriBertModel"}

    def __init__(self, config: TriBertConfig):
        super().__init__(config)
        self.tribert = TriBertModel(config)
        self.query_streams, self.candidate_stream, self.num_choices = RETRIEVAL_VARIANTS[config.retrieval_variant]
        lengths = stream_token_counts(config)
        size = config.retrieval_hidden_size
        query_size = sum(lengths[s] * config.streams[s].hidden_size for s in self.query_streams)
        candidate_size = lengths[self.candidate_stream] * config.streams[self.candidate_stream].hidden_size
        self.query_projection = nn.Linear(query_size, size)
        self.candidate_projection = nn.Linear(candidate_size, size)
        self.scorer = nn.Sequential(nn.Linear(size, size), nn.GELU(), nn.LayerNorm(size), nn.Linear(size, 1))
        self.post_init()
        self._freeze_unreachable()

    def unreachable_parameter_names(self) -> list[str]:
        """Encoder parameters that cannot change the score of this variant, so they never get a gradient.

        The head reads only some outputs of `TriBertModel`: never the `<SOS>` poolers; with `"pre_transformer"`
        embeddings nothing of the transformer layers, nor the embeddings of the stream the variant leaves blank;
        with `"transformer"` embeddings, the last hidden states of the query and candidate streams only, so the
        blank stream's part of the last co-attention layer (its queries, output and feed-forward: its keys and
        values are read by the others) and its self-attention layers after it count for nothing.
        """
        config, read = self.config, set(self.query_streams) | {self.candidate_stream}
        unread = [s for s in STREAMS if s not in read]
        prefixes = ["tribert.poolers."]
        if config.retrieval_embeddings == "pre_transformer":
            prefixes += ["tribert.encoder."] + [f"tribert.{s}_embeddings." for s in unread]
        else:
            last = len(self.tribert.encoder.co_attention_layers) - 1
            for stream in unread:
                if last < 0:  # no co-attention: the stream never meets the others
                    prefixes += [f"tribert.{stream}_embeddings.", f"tribert.encoder.layers.{stream}."]
                    continue
                prefixes += [
                    f"tribert.encoder.co_attention_layers.{last}.{part}.{stream}."
                    for part in ("query", "attention_output", "feed_forward")
                ]
                after = config.streams[stream].co_attention_ids[last]
                prefixes += [
                    f"tribert.encoder.layers.{stream}.{i}." for i in range(after, len(self.tribert.encoder.layers[stream]))
                ]
        return [name for name, _ in self.named_parameters() if name.startswith(tuple(prefixes))]

    def _freeze_unreachable(self) -> None:
        """No gradient for `unreachable_parameter_names()`: optimisers skip them and DistributedDataParallel needs
        no `find_unused_parameters` (they keep the values they were loaded with)."""
        unreachable = set(self.unreachable_parameter_names())
        for name, parameter in self.named_parameters():
            if name in unreachable:
                parameter.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        # loading gives the parameters new tensors with requires_grad=True
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model._freeze_unreachable()
        return loaded

    def _after_freeze_change(self) -> None:
        # `freeze_encoder(False)` makes the encoder trainable again, except `unreachable_parameter_names()`
        self._freeze_unreachable()

    def _embedding(self, outputs, streams):
        key = "last_hidden_state" if self.config.retrieval_embeddings == "transformer" else "embeddings"
        parts = []
        for stream in streams:
            tokens = outputs[f"{stream}_{key}"] * outputs[f"{stream}_attention_mask"][..., None].to(outputs[f"{stream}_{key}"].dtype)
            parts.append(tokens.flatten(1))
        return torch.cat(parts, dim=-1)

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        pose_keypoints: torch.FloatTensor,
        audio_spectrogram: torch.FloatTensor,
        pose_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TriBertRetrievalOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, n, frames, 3, height, width)`),
            pose_keypoints (`torch.FloatTensor` of shape `(batch, n, persons, T, 68, 3)`),
            audio_spectrogram (`torch.FloatTensor` of shape `(batch, n, 1, 256, frames)`),
            pose_mask (`torch.LongTensor` of shape `(batch, n, persons)`, *optional*):
                pair j of example b holds the query's streams and candidate j's stream (see
                [`compose_retrieval_pairs`]).
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*): the index of the right candidate.
            output_attentions, output_hidden_states, return_dict (`bool`, *optional*):
                as in [`TriBertModel.forward`]; default to the config's.

        Returns:
            [`TriBertRetrievalOutput`] or `tuple`: `loss` (with `labels`), `logits` `(batch, n)`, and on request
            the encoder's hidden states and attentions.
        """
        reject_unknown_kwargs(self, kwargs)
        output_attentions = resolve_output_attentions(self, output_attentions)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if pixel_values.ndim != 6:
            raise ValueError(
                f"`pixel_values` must have shape (batch, n, frames, 3, H, W) (n candidate pairs per query), got "
                f"{tuple(pixel_values.shape)}."
            )
        batch, n = pixel_values.shape[:2]
        outputs = self.tribert(
            pixel_values=pixel_values.flatten(0, 1),
            pose_keypoints=pose_keypoints.flatten(0, 1),
            audio_spectrogram=audio_spectrogram.flatten(0, 1),
            pose_mask=None if pose_mask is None else pose_mask.flatten(0, 1),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        query = self.query_projection(self._embedding(outputs, self.query_streams))
        candidate = self.candidate_projection(self._embedding(outputs, (self.candidate_stream,)))
        logits = self.scorer(query * candidate).view(batch, n)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        output = TriBertRetrievalOutput(loss=loss, logits=logits, **encoder_fields(outputs))
        return output if return_dict else output.to_tuple()

    @torch.no_grad()
    def score_pool(self, query: dict, pool: dict, batch_size: int = 16) -> torch.Tensor:
        """Scores `(pool size,)` of one query (a clip's inputs, no batch dimension) against every clip of `pool`
        (inputs with a leading pool dimension)."""
        pairs = compose_retrieval_pairs(self.config.retrieval_variant, query, pool)
        size = pairs["pixel_values"].shape[0]
        scores = []
        for start in range(0, size, batch_size):
            chunk = {k: v[start : start + batch_size].unsqueeze(0).to(self.device) for k, v in pairs.items()}
            scores.append(self(**chunk, return_dict=True).logits[0])
        return torch.cat(scores)


def retrieval_top_k(scores: torch.Tensor, targets: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """Top-k accuracy (a fraction) of a `(queries, pool)` score matrix whose right answers are `targets` `(queries,)`.

    Ties are broken at random, in expectation: an answer with `g` better candidates and `t` others tied with it is
    at rank `g + U{0..t}`, so a constant scorer gets chance level (k / pool), not 100 %.
    """
    if scores.ndim != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(f"scores must be (queries, pool) and targets (queries,); got {tuple(scores.shape)}, {tuple(targets.shape)}.")
    target = scores.gather(1, targets[:, None])
    better = (scores > target).sum(dim=1).double()
    tied = (scores == target).sum(dim=1).double()  # includes the answer itself
    return {f"top{k}": float(((k - better).clamp(min=0).minimum(tied) / tied).mean()) for k in ks}


# ----------------------------------------------------------------------------------------------------------------
# Embedding retrieval: one embedding per clip and modality in a shared space (CLIP/CLAP-style `get_*_features`)
# ----------------------------------------------------------------------------------------------------------------

# CLIP's initial temperature: logit scale ln(1 / 0.07)
CONTRASTIVE_LOGIT_SCALE_INIT = 2.6592
# The pairs of modalities aligned by the contrastive loss (query rows, candidate columns); "vision_audio" is the
# paper's vision + audio -> pose query
CONTRASTIVE_PAIRS = (("vision", "audio"), ("vision", "pose"), ("audio", "pose"), ("vision_audio", "pose"))


def contrastive_embedding_query(variant: str, embeds: dict) -> torch.Tensor:
    """The query embedding of a retrieval variant from per-modality embeddings (each `(batch, dim)`, L2-normalised):
    the stream's own embedding, or for `vision_audio_to_pose` the normalised sum of the vision and audio ones."""
    streams = RETRIEVAL_VARIANTS[variant][0]
    query = torch.stack([embeds[s] for s in streams]).sum(dim=0)
    return F.normalize(query, dim=-1) if len(streams) > 1 else query


def contrastive_loss(logits: torch.Tensor, num_choices: int | None = None) -> torch.Tensor:
    """Symmetric InfoNCE of a `(batch, batch)` similarity matrix whose right answers are the diagonal.

    With `num_choices = n`, the paper's n-way multiple choice instead: each row (and column) is a choice between its
    positive and its n - 1 highest-scoring negatives of the batch (hard distractors, nearest neighbours)."""
    targets = torch.arange(logits.shape[0], device=logits.device)

    def one_way(scores):
        if num_choices is None or num_choices >= scores.shape[1]:
            return F.cross_entropy(scores, targets)
        positive = scores.diagonal()[:, None]
        eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
        negatives = scores.masked_fill(eye, float("-inf")).topk(num_choices - 1, dim=1).values
        choices = torch.cat([positive, negatives], dim=1)
        return F.cross_entropy(choices, torch.zeros_like(targets))

    return (one_way(logits) + one_way(logits.t())) / 2


@dataclass
class TriBertContrastiveOutput(ModelOutput):
    r"""
    loss (`()`): the mean of the symmetric InfoNCE losses over `CONTRASTIVE_PAIRS`, with `return_loss=True`.
    logits_vision_audio (`(batch, batch)`): scaled cosine similarities, vision rows against audio columns.
    logits_vision_pose, logits_audio_pose, logits_vision_audio_pose (`(batch, batch)`): the same for the other
        pairs (the last one: the vision + audio query against pose).
    vision_embeds, pose_embeds, audio_embeds (`(batch, retrieval_hidden_size)`): L2-normalised embeddings.
    """

    loss: torch.FloatTensor | None = None
    logits_vision_audio: torch.FloatTensor | None = None
    logits_vision_pose: torch.FloatTensor | None = None
    logits_audio_pose: torch.FloatTensor | None = None
    logits_vision_audio_pose: torch.FloatTensor | None = None
    vision_embeds: torch.FloatTensor | None = None
    pose_embeds: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None


class TriBertProjectionHead(nn.Module):
    """A stream's flattened tokens `(batch, tokens * hidden)` -> LayerNorm -> Linear -> GELU -> Linear ->
    `(batch, projection size)`."""

    def __init__(self, in_features: int, size: int):
        super().__init__()
        self.layer_norm = nn.LayerNorm(in_features)
        self.dense = nn.Linear(in_features, size)
        self.activation = nn.GELU()
        self.projection = nn.Linear(size, size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(self.activation(self.dense(self.layer_norm(features))))


class TriBertForContrastiveRetrieval(TriBertFrozenEncoderMixin, TriBertPreTrainedModel):
    """Cross-modal retrieval with one embedding per clip and modality (CLIP/CLAP-style), for an index that is built
    once and searched with a dot product.

    Each modality is encoded alone: the clip's stream, the other two streams blank (zeros; every person absent;
    a silent spectrogram), as `compose_retrieval_pairs` blanks the third stream, so a vision embedding depends on
    the frames only. The stream's tokens (after the encoder with `config.retrieval_embeddings="transformer"`, its
    input embeddings with `"pre_transformer"`; masked tokens zeroed) are flattened and projected by a per-stream
    `TriBertProjectionHead` to `config.retrieval_hidden_size`. `get_vision_features` / `get_pose_features` /
    `get_audio_features` return the projections, unnormalised (as CLIP's `get_*_features`); `forward` normalises
    them and returns the similarity matrices and the symmetric InfoNCE loss. The paper's five retrieval variants are
    dot products of these embeddings (`contrastive_embedding_query`); the joint `TriBertForRetrieval` can re-rank the
    top-k.

    Example:

    ```python
    >>> model = TriBertForContrastiveRetrieval.from_pretrained(folder)  # any TriBERT checkpoint: its encoder
    >>> audio = model.get_audio_features(audio_spectrogram=spectrograms).pooler_output  # (batch, retrieval_hidden_size)
    >>> vision = model.get_vision_features(pixel_values=frames).pooler_output
    >>> scores = F.normalize(audio, dim=-1) @ F.normalize(vision, dim=-1).T  # audio -> vision
    ```

    A saved folder's `AutoModel` (with `trust_remote_code=True`, where tribert_hf is not installed) is this class,
    as CLIP's folder's `AutoModel` is `CLIPModel`.
    """

    def __init__(self, config: TriBertConfig):
        super().__init__(config)
        self.tribert = TriBertModel(config)
        self.token_counts = stream_token_counts(config)
        size = config.retrieval_hidden_size
        self.projections = nn.ModuleDict(
            {s: TriBertProjectionHead(self.token_counts[s] * config.streams[s].hidden_size, size) for s in STREAMS}
        )
        self.logit_scale = nn.Parameter(torch.tensor(CONTRASTIVE_LOGIT_SCALE_INIT))
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if module is self:
            init.constant_(module.logit_scale, CONTRASTIVE_LOGIT_SCALE_INIT)

    # -- encoding one modality ------------------------------------------------------------------------------------

    def _blank_inputs(self, batch: int, device, dtype) -> dict:
        """Zero inputs (broadcast views: no memory) of every stream: every person absent, a silent spectrogram of the
        shortest length the audio CNN takes."""
        vc, pc, ac = self.config.vision_config, self.config.pose_config, self.config.audio_config
        frames = 2 ** sum(1 for item in ac.cnn_layers if item == "M")
        shapes = {
            "pixel_values": (vc.num_frames, vc.num_channels, vc.image_size, vc.image_size),
            "pose_keypoints": (pc.num_persons, pc.num_pose_frames, pc.num_joints, pc.in_channels),
            "audio_spectrogram": (1, ac.num_frequency_bins, frames),
        }
        blank = {k: torch.zeros((1, *s), device=device, dtype=dtype).expand(batch, *s) for k, s in shapes.items()}
        blank["pose_mask"] = torch.zeros(batch, pc.num_persons, dtype=torch.long, device=device)
        return blank

    def _stream_embeddings(self, stream: str, inputs: dict):
        """A stream's input embeddings and token mask, `(batch, tokens, hidden)` and `(batch, tokens)`."""
        if stream == "vision":
            embeddings, mask, *_ = self.tribert.vision_embeddings(inputs["pixel_values"])
        elif stream == "pose":
            embeddings, mask = self.tribert.pose_embeddings(inputs["pose_keypoints"], inputs["pose_mask"])
        else:
            embeddings, mask = self.tribert.audio_embeddings(inputs["audio_spectrogram"])
        return embeddings, mask

    def encode_modality(self, stream: str, **inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """One modality through the encoder, the other streams blank: `(flattened tokens (batch, tokens * hidden),
        last hidden state (batch, tokens, hidden))` of `stream` (its input embeddings with
        `retrieval_embeddings="pre_transformer"`). The blank streams' embeddings are computed once (one example)
        and broadcast."""
        if stream not in STREAMS:
            raise ValueError(f"Unknown modality {stream!r}; use one of {STREAMS}.")
        names = _MODALITY_INPUTS[stream]
        if names[0] not in inputs or inputs[names[0]] is None:
            raise ValueError(f"The {stream} features need `{names[0]}`.")
        reference = inputs[names[0]]
        if not isinstance(reference, torch.Tensor):
            raise TypeError(f"`{names[0]}` must be a torch.Tensor, got {type(reference).__name__}.")
        batch, device = reference.shape[0], self.device
        full = self._blank_inputs(batch, device, self.dtype)
        for name in names:
            if inputs.get(name) is not None:
                full[name] = inputs[name].to(device)
        if stream == "pose" and inputs.get("pose_mask") is None:
            full["pose_mask"] = torch.ones_like(full["pose_mask"])
        check_inputs(self.config, full["pixel_values"], full["pose_keypoints"], full["audio_spectrogram"], full["pose_mask"])
        full["pixel_values"], full["pose_keypoints"], full["audio_spectrogram"] = cast_floating(
            self.dtype, full["pixel_values"], full["pose_keypoints"], full["audio_spectrogram"]
        )
        embeddings, masks = {}, {}
        for s in STREAMS:
            if s == stream:
                embeddings[s], masks[s] = self._stream_embeddings(s, full)
            else:
                one = {k: v[:1] for k, v in full.items()}
                e, m = self._stream_embeddings(s, one)
                embeddings[s], masks[s] = e.expand(batch, *e.shape[1:]), m.expand(batch, *m.shape[1:])
        if self.config.retrieval_embeddings == "transformer":
            tokens = self.tribert.encoder(embeddings, masks)["states"][stream]
        else:
            tokens = embeddings[stream]
        tokens = tokens * masks[stream][..., None].to(tokens.dtype)
        return tokens.flatten(1), tokens

    def _features(self, stream: str, inputs: dict, return_dict: bool | None):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        flat, tokens = self.encode_modality(stream, **inputs)
        output = BaseModelOutputWithPooling(last_hidden_state=tokens, pooler_output=self.projections[stream](flat))
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if return_dict else output.to_tuple()

    def get_vision_features(self, pixel_values: torch.FloatTensor, return_dict: bool | None = None):
        """Vision embeddings of clips (the frames alone). `pixel_values` `(batch, frames, 3, H, W)`.

        Returns `BaseModelOutputWithPooling`: `pooler_output` the projected embedding `(batch,
        retrieval_hidden_size)` (unnormalised), `last_hidden_state` the vision tokens it came from."""
        return self._features("vision", {"pixel_values": pixel_values}, return_dict)

    def get_pose_features(self, pose_keypoints: torch.FloatTensor, pose_mask: torch.Tensor | None = None, return_dict: bool | None = None):
        """Pose embeddings (the keypoints alone). `pose_keypoints` `(batch, persons, T, 68, 3)`, `pose_mask`
        `(batch, persons)` (default: everyone present). Returns as `get_vision_features`."""
        return self._features("pose", {"pose_keypoints": pose_keypoints, "pose_mask": pose_mask}, return_dict)

    def get_audio_features(self, audio_spectrogram: torch.FloatTensor, return_dict: bool | None = None):
        """Audio embeddings (the sound alone). `audio_spectrogram` `(batch, 1, 256, time)`. Returns as
        `get_vision_features`."""
        return self._features("audio", {"audio_spectrogram": audio_spectrogram}, return_dict)

    # -- training -------------------------------------------------------------------------------------------------

    def contrastive_outputs(self, embeds: dict, return_loss: bool = True, num_choices: int | None = None, hard_negative_weight: float = 0.0):
        """From projected embeddings `{stream: (batch, dim)}` (e.g. cached `encode_modality` outputs through
        `projections`): the normalised embeddings, the scaled similarity matrices of `CONTRASTIVE_PAIRS` and the
        loss: InfoNCE over the batch, plus `hard_negative_weight` x the n-way multiple choice against the
        `num_choices - 1` nearest negatives of the batch."""
        normed = {s: F.normalize(e, dim=-1) for s, e in embeds.items()}
        normed["vision_audio"] = F.normalize(normed["vision"] + normed["audio"], dim=-1)
        scale = self.logit_scale.exp().clamp(max=100.0)
        logits = {f"{a}_{b}": scale * normed[a] @ normed[b].t() for a, b in CONTRASTIVE_PAIRS}
        loss = None
        if return_loss:
            loss = torch.stack([contrastive_loss(x) for x in logits.values()]).mean()
            if hard_negative_weight and num_choices is not None:
                loss = loss + hard_negative_weight * torch.stack([contrastive_loss(x, num_choices) for x in logits.values()]).mean()
        return TriBertContrastiveOutput(
            loss=loss, logits_vision_audio=logits["vision_audio"], logits_vision_pose=logits["vision_pose"],
            logits_audio_pose=logits["audio_pose"], logits_vision_audio_pose=logits["vision_audio_pose"],
            vision_embeds=normed["vision"], pose_embeds=normed["pose"], audio_embeds=normed["audio"],
        )  # fmt: skip

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        pose_keypoints: torch.FloatTensor,
        audio_spectrogram: torch.FloatTensor,
        pose_mask: torch.Tensor | None = None,
        return_loss: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TriBertContrastiveOutput | tuple:
        r"""
        Args:
            pixel_values (`(batch, frames, 3, H, W)`), pose_keypoints (`(batch, persons, T, 68, 3)`),
            audio_spectrogram (`(batch, 1, 256, time)`), pose_mask (`(batch, persons)`, *optional*): the clips;
                clip i's three modalities are each other's positives, the other clips of the batch the negatives.
            return_loss (`bool`, *optional*): compute the contrastive loss (default: in training mode).

        Returns:
            [`TriBertContrastiveOutput`] or `tuple`.
        """
        reject_unknown_kwargs(self, kwargs)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return_loss = self.training if return_loss is None else return_loss
        inputs = {"pixel_values": pixel_values, "pose_keypoints": pose_keypoints, "pose_mask": pose_mask, "audio_spectrogram": audio_spectrogram}
        embeds = {s: self.projections[s](self.encode_modality(s, **inputs)[0]) for s in STREAMS}
        output = self.contrastive_outputs(embeds, return_loss=return_loss)
        return output if return_dict else output.to_tuple()


__all__ = [
    "CONTRASTIVE_LOGIT_SCALE_INIT",
    "CONTRASTIVE_PAIRS",
    "TriBertContrastiveOutput",
    "TriBertForContrastiveRetrieval",
    "TriBertForRetrieval",
    "TriBertRetrievalOutput",
    "compose_retrieval_pairs",
    "contrastive_embedding_query",
    "contrastive_loss",
    "retrieval_top_k",
]

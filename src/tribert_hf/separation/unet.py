"""The attention U-Net of mask-based separation (TriBERT's separation head; the baselines' sound network).

The mixture's log-frequency magnitude goes through `num_downs` 4x4 / stride-2 down-convolutions and as many
upsample + 3x3 up-convolutions, with skips through additive attention gates (Oktay et al., Attention U-Net). A
condition vector per output (TriBERT: a video's fused `<SOS>` outputs; the audio-only baseline: a learned source
embedding) is fused with the bottleneck by self-attention (`TriBertBottleneckFusion`) and, optionally, scales and
shifts every decoder level (FiLM); the encoder runs once per mixture, the decoder once per condition. Optionally
(`timeline_size`, TriBERT's `separation_conditioning="temporal"`) each output also has a timeline, features per
time step aligned with the spectrogram's frames, that scales and shifts every decoder level frame by frame
(per-frame FiLM) and, with `timeline_maps`, also weights the K condition maps frame by frame; with
`timeline_spectrum_bins`, a small network of the timeline and the condition adds a spectrum to the mask logits at
every frame (a pose-driven prior over the frequency bins). Without a condition
(`condition_size=None`, Sound of Pixels' sound network) the decoder runs once and gives `out_channels` maps. Built
from explicit sizes; the models map their configs onto them.
"""

import torch
from torch import nn
from torch.nn import functional as F


def unet_channels(base_channels: int, num_downs: int) -> list[int]:
    """Channels of each level of the U-Net: doubling from `base_channels`, at most 8x; the last is the bottleneck."""
    return [min(base_channels * 2**k, base_channels * 8) for k in range(num_downs)]


def bottleneck_channels(base_channels: int, num_downs: int) -> int:
    """Channels of the U-Net's deepest level (the width of the bottleneck fusion)."""
    return unet_channels(base_channels, num_downs)[-1]


def interpolate_frames(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """`values` `(..., T)`, samples at positions 0 .. T - 1, linearly interpolated at the fractional `positions`
    `(L,)` (clamped to [0, T - 1]: the first / last sample beyond the ends) -> `(..., L)`."""
    last = values.shape[-1] - 1
    positions = positions.to(values.dtype).clamp(0, last)
    low = positions.floor().long().clamp(max=last)
    high = (low + 1).clamp(max=last)
    weight = positions - low.to(values.dtype)
    return values[..., low] * (1 - weight) + values[..., high] * weight


def timeline_to_frames(timeline: torch.Tensor, num_frames: int) -> torch.Tensor:
    """A timeline `(..., T)` whose sample i lies at time i / T of the window -> `(..., num_frames)` on the grid of a
    spectrogram of `num_frames` frames over the same window (frame m at time m / num_frames: the STFT frames of a
    crop, `center=True`, one hop apart, so that a crop of num_frames hops has its frame m at m hops)."""
    positions = torch.arange(num_frames, device=timeline.device) * (timeline.shape[-1] / num_frames)
    return interpolate_frames(timeline, positions)


class TriBertAttentionGate(nn.Module):
    """Additive attention gate (Oktay et al., Attention U-Net): the decoder signal `g` weights the skip features."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 2, 1)
        self.gate = nn.Sequential(nn.Conv2d(channels, inner, 1), nn.BatchNorm2d(inner))
        self.skip = nn.Sequential(nn.Conv2d(channels, inner, 1), nn.BatchNorm2d(inner))
        self.psi = nn.Sequential(nn.Conv2d(inner, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x * self.psi(F.relu(self.gate(g) + self.skip(x)))


class TriBertBottleneckFusion(nn.Module):
    """Self-attention early fusion of the U-Net bottleneck with a condition vector (paper Sec. 3.2).

    The projected condition is added to every bottleneck position and also kept as one extra token; one post-norm
    transformer block (self-attention + MLP) mixes the tokens and the positions go back to the decoder. Ours: the
    paper says only "self-attention based early fusion", and the authors' code tiles its condition over a 16 x 16
    bottleneck (a gated sum, then an MLP) without attention. Adding it everywhere gives every position a direct
    path to the condition: with the condition as a lone extra token, training settled on masks that ignore it
    (identical masks for every video).
    """

    def __init__(self, condition_size: int, channels: int, num_heads: int):
        super().__init__()
        self.condition = nn.Linear(condition_size, channels)
        self.attention = nn.MultiheadAttention(channels, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))
        self.mlp_norm = nn.LayerNorm(channels)

    def forward(self, bottleneck: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        n, c, h, w = bottleneck.shape
        condition = self.condition(condition)[:, None]
        tokens = torch.cat([condition, bottleneck.flatten(2).transpose(1, 2) + condition], dim=1)
        tokens = self.norm(tokens + self.attention(tokens, tokens, tokens, need_weights=False)[0])
        tokens = self.mlp_norm(tokens + self.mlp(tokens))
        return tokens[:, 1:].transpose(1, 2).reshape(n, c, h, w)


class TriBertFiLM(nn.Linear):
    """Condition -> per-channel (scale, shift) of a decoder level. The models zero-initialise it in `_init_weights`
    (it starts as the identity: training starts from the bottleneck-only conditioning)."""


class TriBertTimelineFiLM(TriBertFiLM):
    """Timeline features of one time step -> per-channel (scale, shift) of a decoder level at that step (per-frame
    FiLM; not in the paper). Zero-initialised like `TriBertFiLM`: a temporal model starts as the pooled one."""


class TriBertConditionMaps(nn.Linear):
    """Condition -> the weights (and a bias) of the decoder's last `K` feature maps: the mask logits are their
    condition-weighted sum (Sound of Pixels' audio-visual synthesizer, here after the conditioned decoder)."""


class TriBertTimelineMaps(nn.Linear):
    """Timeline features of one time step -> weights (and a bias) of the decoder's `K` condition maps at that step,
    added to the condition's (not in the paper). Zero-initialised by the models: it starts as the pooled maps."""


class TriBertTimelineSpectrumOutput(nn.Linear):
    """The last layer of `TriBertTimelineSpectrum`: hidden features -> a value per frequency bin. Zero-initialised by
    the models."""


class TriBertTimelineSpectrum(nn.Module):
    """Timeline features of one time step and the output's condition -> a value per frequency bin added to the
    mask logits at that step (not in the paper): what the player's pose at t says is sounding, e.g. where the hand
    is along the instrument -> which pitch, hence which bins. Two layers (ReLU between); the models
    zero-initialise the last (`output`): a model starts as one without it."""

    def __init__(self, timeline_size: int, condition_size: int, bins: int, hidden_size: int = 256):
        super().__init__()
        self.hidden = nn.Linear(timeline_size + condition_size, hidden_size)
        self.output = TriBertTimelineSpectrumOutput(hidden_size, bins)

    def forward(self, timelines: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """`timelines` `(n, timeline_size, T)` and `conditions` `(n, condition_size)` -> `(n, bins, T)`."""
        frames = timelines.transpose(1, 2)  # (n, T, timeline_size)
        inputs = torch.cat([frames, conditions[:, None].to(frames.dtype).expand(-1, frames.shape[1], -1)], dim=-1)
        return self.output(torch.relu(self.hidden(inputs))).transpose(1, 2)


class TriBertSeparationHead(nn.Module):
    """The attention U-Net (see the module docstring).

    Args:
        condition_size: width of the condition vectors fused at the bottleneck; None for a U-Net without
            conditioning (no fusion, no FiLM).
        base_channels: channels of the first level (doubling per level, at most 8x: `unet_channels`).
        num_downs: down-convolutions (and up-convolutions); the spectrogram's frequency bins and frames must be
            divisible by 2 ** num_downs.
        fusion_heads: heads of the bottleneck self-attention fusion (they must divide the bottleneck width).
        film: also scale and shift every decoder level by the condition (FiLM; not in the paper).
        out_channels: maps of the last up-convolution: 1 (a mask per condition), or K feature maps.
        condition_maps: 0 (the paper): the last up-convolution gives the mask logits. K > 0 (ours, not in the
            paper): it gives K maps, and the mask logits are their sum weighted by `TriBertConditionMaps` of the
            condition (plus a bias); measured to learn faster than the single map (docs/training.md).
        timeline_size: None (the paper): conditioning by vectors only. An int (ours, not in the paper): `forward`
            also takes each output's timeline `(B, N, timeline_size, T)` (e.g. TriBERT's per-frame pose features)
            whose sample i lies at time i / T of the spectrogram's window; every decoder level but the last is
            scaled and shifted frame by frame (`TriBertTimelineFiLM`) by the timeline brought to the spectrogram's
            frames (linear interpolation) and averaged over the frames each of the level's frames spans.
        timeline_maps: with `timeline_size` and `condition_maps` K > 0 (ours, not in the paper): the K maps' weights
            (and bias) at spectrogram frame t also get a linear map of the timeline at t (`TriBertTimelineMaps`):
            the mask at each time frame is made of the maps the timeline selects there.
        timeline_spectrum_bins: 0 (default): nothing more. B > 0, with `timeline_size` (ours, not in the paper): the
            mask logits at every time frame also get B values, one per frequency bin of the output before its
            upsampling (the spectrogram's bins / `output_stride`), from the timeline at that frame and the
            condition (`TriBertTimelineSpectrum`, zero-initialised): a prior over the bins from the player's pose.
        output_stride: 1 (the paper): the last up-convolution works at the spectrogram's full resolution, on the
            level above upsampled x2. 2 (ours, not in the paper): it works at half resolution, on that level as it
            is, and only the finished output (the mask logits, after the condition maps' weighting; or the
            `out_channels` maps) is upsampled x2 (bilinear). The same parameters (a checkpoint loads either way);
            the last layer, the U-Net's dearest (a 3x3 convolution at full resolution, once per condition), costs a
            quarter. Measured on the class-told head: the same validation SDR per step, 1.7x faster steps
            (docs/training.md).
    """

    def __init__(
        self,
        condition_size: int | None,
        base_channels: int = 64,
        num_downs: int = 7,
        fusion_heads: int = 8,
        film: bool = False,
        out_channels: int = 1,
        condition_maps: int = 0,
        timeline_size: int | None = None,
        timeline_maps: bool = False,
        output_stride: int = 1,
        timeline_spectrum_bins: int = 0,
    ):
        super().__init__()
        if output_stride not in (1, 2):
            raise ValueError(f"output_stride must be 1 (the last up-convolution at full resolution) or 2 (at half), got {output_stride!r}.")
        self.output_stride = output_stride
        if timeline_maps and (timeline_size is None or not condition_maps):
            raise ValueError("timeline_maps weights the condition maps by the timeline: it needs timeline_size and condition_maps > 0.")
        if timeline_spectrum_bins and timeline_size is None:
            raise ValueError("timeline_spectrum_bins maps the timeline to the frequency bins: it needs timeline_size.")
        if timeline_size is not None and condition_size is None:
            raise ValueError("timeline_size needs a condition (condition_size): the timeline adds to it.")
        if condition_maps and (condition_size is None or out_channels != 1):
            raise ValueError("condition_maps needs a condition (condition_size) and a single output map (out_channels=1).")
        self.condition_maps = None
        if condition_maps:
            self.condition_maps = TriBertConditionMaps(condition_size, condition_maps + 1)
            out_channels = condition_maps
        self.depth = num_downs
        channels = unet_channels(base_channels, num_downs)
        self.input_norm = nn.BatchNorm2d(1)
        downs, in_channels = [], 1
        for k, level_channels in enumerate(channels):
            layers = [nn.Conv2d(in_channels, level_channels, 4, stride=2, padding=1)]
            if 0 < k < num_downs - 1:
                layers.append(nn.BatchNorm2d(level_channels))
            layers.append(nn.LeakyReLU(0.2, inplace=True) if k < num_downs - 1 else nn.ReLU(inplace=True))
            downs.append(nn.Sequential(*layers))
            in_channels = level_channels
        self.downs = nn.ModuleList(downs)
        self.fusion = None
        if condition_size is not None:
            self.fusion = TriBertBottleneckFusion(condition_size, channels[-1], fusion_heads)
        ups, gates = [], []
        for k in reversed(range(num_downs)):
            in_up = channels[k] if k == num_downs - 1 else 2 * channels[k]
            out_up = channels[k - 1] if k > 0 else out_channels
            upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            if k == 0 and output_stride == 2:  # the last layer at half resolution: its output is upsampled instead
                upsample = nn.Identity()  # (in the Upsample's place: the same parameter names as at stride 1)
            layers = [upsample, nn.Conv2d(in_up, out_up, 3, padding=1)]
            if k > 0:
                layers += [nn.BatchNorm2d(out_up), nn.ReLU(inplace=True)]
                gates.append(TriBertAttentionGate(out_up))
            ups.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList(ups)
        self.gates = nn.ModuleList(gates)
        # Optional FiLM (not in the paper): every decoder level's channels scaled and shifted by the condition.
        self.films = None
        if film and condition_size is not None:
            self.films = nn.ModuleList(TriBertFiLM(condition_size, 2 * gate.gate[0].in_channels) for gate in gates)
        # Optional per-frame FiLM (not in the paper): every decoder level (but the last) scaled and shifted per time
        # frame by the timeline.
        self.timeline_films = None
        if timeline_size is not None:
            self.timeline_films = nn.ModuleList(
                TriBertTimelineFiLM(timeline_size, 2 * gate.gate[0].in_channels) for gate in gates
            )
        self.timeline_maps = TriBertTimelineMaps(timeline_size, condition_maps + 1) if timeline_maps else None
        self.timeline_spectrum = None
        if timeline_spectrum_bins:
            self.timeline_spectrum = TriBertTimelineSpectrum(timeline_size, condition_size, timeline_spectrum_bins)

    def encode(self, mixture_magnitude: torch.Tensor, log_eps: float = 1e-10) -> list[torch.Tensor]:
        """The encoder path: the output of every down-convolution (the last one is the bottleneck)."""
        size = 2**self.depth
        if mixture_magnitude.shape[-2] % size or mixture_magnitude.shape[-1] % size:
            raise ValueError(
                f"The separation U-Net needs frequency bins and frames divisible by 2 ** separation_num_downs = "
                f"{size}; got a spectrogram of shape {tuple(mixture_magnitude.shape)}."
            )
        hidden = self.input_norm(torch.log(mixture_magnitude + log_eps))
        skips = []
        for down in self.downs:
            hidden = down(hidden)
            skips.append(hidden)
        return skips

    def decode(
        self,
        hidden: torch.Tensor,
        skips: list[torch.Tensor],
        conditions: torch.Tensor | None = None,
        timelines: torch.Tensor | None = None,
    ):
        """The decoder path from the (fused) bottleneck, with the encoder's other outputs as skips; `timelines`
        `(n, timeline_size, frames)` on the spectrogram's frame grid (`timeline_to_frames`), for `timeline_films`."""
        for index, up in enumerate(self.ups):
            hidden = up(hidden)
            if self.films is not None and index < len(self.films):
                scale, shift = self.films[index](conditions)[:, :, None, None].chunk(2, dim=1)
                hidden = hidden * (1 + scale) + shift
            if timelines is not None and index < len(self.timeline_films):
                # Frame j of this level spans spectrogram frames [j * s, (j + 1) * s) (stride-2 convolutions): the
                # timeline averaged over them.
                level = F.avg_pool1d(timelines, timelines.shape[-1] // hidden.shape[-1])
                scale, shift = self.timeline_films[index](level.transpose(1, 2)).transpose(1, 2)[:, :, None].chunk(2, dim=1)
                hidden = hidden * (1 + scale) + shift
            if index < len(self.gates):
                skip = skips[-1 - index]
                hidden = torch.cat([hidden, self.gates[index](hidden, skip)], dim=1)
        return hidden

    def forward(
        self,
        mixture_magnitude: torch.Tensor,
        conditions: torch.Tensor | None = None,
        log_eps: float = 1e-10,
        timelines: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`mixture_magnitude` `(B, 1, F, T)` and `conditions` `(B, N, D)` (and, with `timeline_size`, `timelines`
        `(B, N, timeline_size, T')`) -> mask logits `(B, N, F, T)`; without conditioning (`condition_size=None`):
        -> `(B, out_channels, F, T)`."""
        if (timelines is None) != (self.timeline_films is None):
            raise ValueError(
                "This U-Net takes per-frame `timelines` (timeline_size)." if timelines is None
                else "This U-Net was built without timelines (timeline_size=None): pass no `timelines`."
            )
        skips = self.encode(mixture_magnitude, log_eps)
        if self.fusion is None:
            if conditions is not None:
                raise ValueError("This U-Net was built without conditioning (condition_size=None): pass no conditions.")
            return self.to_full_resolution(self.decode(skips[-1], skips[:-1]))
        if conditions is None:
            raise ValueError(f"This U-Net fuses a condition of size {self.fusion.condition.in_features}: pass `conditions`.")
        batch, videos = conditions.shape[:2]
        # The encoder runs once per mixture; the decoder once per video of the mixture.
        conditions = conditions.flatten(0, 1)
        if timelines is not None:
            if timelines.shape[:2] != (batch, videos):
                raise ValueError(f"`timelines` must be (batch, videos, size, frames) = ({batch}, {videos}, ...), got {tuple(timelines.shape)}.")
            timelines = timeline_to_frames(timelines.flatten(0, 1).to(conditions.dtype), mixture_magnitude.shape[-1])
        hidden = self.fusion(skips[-1].repeat_interleave(videos, dim=0), conditions)
        skips = [skip.repeat_interleave(videos, dim=0) for skip in skips[:-1]]
        hidden = self.decode(hidden, skips, conditions, timelines)
        if self.condition_maps is not None:
            weights = self.condition_maps(conditions).to(hidden.dtype)
            if self.timeline_maps is None:
                hidden = torch.einsum("nkft,nk->nft", hidden, weights[:, :-1]) + weights[:, -1, None, None]
            else:  # the weights at frame t: the condition's plus the timeline's at t, (n, K + 1, T)
                weights = weights[:, :, None] + self.timeline_maps(timelines.transpose(1, 2)).transpose(1, 2).to(hidden.dtype)
                if self.output_stride > 1:  # the maps' frame j spans spectrogram frames 2j, 2j + 1: their mean weight
                    weights = F.avg_pool1d(weights, self.output_stride)
                hidden = torch.einsum("nkft,nkt->nft", hidden, weights[:, :-1]) + weights[:, -1, None, :]
            hidden = hidden[:, None]
        if self.timeline_spectrum is not None:  # (n, 1, F', T') + the pose's spectrum at each of the T' frames
            bins = self.timeline_spectrum.output.out_features
            if bins != hidden.shape[-2]:
                raise ValueError(
                    f"The timeline spectrum has {bins} frequency bins, the mask logits {hidden.shape[-2]}: "
                    f"the spectrogram must have {bins * self.output_stride} bins for this U-Net."
                )
            frames = F.avg_pool1d(timelines, self.output_stride) if self.output_stride > 1 else timelines
            hidden = hidden + self.timeline_spectrum(frames, conditions).to(hidden.dtype)[:, None]
        hidden = self.to_full_resolution(hidden)  # (n, 1, F, T)
        return hidden.view(batch, videos, *hidden.shape[-2:])

    def to_full_resolution(self, output: torch.Tensor) -> torch.Tensor:
        """The decoder's finished output `(n, C, F', T')` at the spectrogram's resolution: as it is at
        `output_stride` 1, upsampled x`output_stride` (bilinear, corners aligned as the decoder's own upsampling)."""
        if self.output_stride == 1:
            return output
        return F.interpolate(output, scale_factor=self.output_stride, mode="bilinear", align_corners=True)


__all__ = [
    "TriBertAttentionGate",
    "TriBertBottleneckFusion",
    "TriBertConditionMaps",
    "TriBertFiLM",
    "TriBertSeparationHead",
    "TriBertTimelineFiLM",
    "TriBertTimelineMaps",
    "TriBertTimelineSpectrum",
    "TriBertTimelineSpectrumOutput",
    "bottleneck_channels",
    "interpolate_frames",
    "timeline_to_frames",
    "unet_channels",
]

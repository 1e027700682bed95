"""The generator G(y; psi) and the one-person generator that export and the live loop run.

G maps a landmark sketch y to an image: down-sampling residual blocks with (affine) instance norm,
AdaIN residual blocks at the bottleneck, AdaIN up-sampling residual blocks, ReLU + conv + tanh.
Self-attention after the down block that reaches cfg.attn_down and the up block that reaches
cfg.attn_up (32 and 64 in the paper's 256x256 config).

The AdaIN parameters are person-specific: psi = P e_hat, with P a learned (n_adain x emb_dim) matrix.
psi is laid out layer by layer as [scale offsets (C), shifts (C)]; a layer's scale is 1 + its offsets, so
psi = 0 is plain instance norm (a gentle start for training).

With cfg.appearance == "warp" G also takes the reference picture warped to the driving landmarks
(`warped`, same size as the output). It sees it beside the sketch and returns warped + delta, clipped to
[-1, 1]: delta is what the warp gets wrong (the inside of the mouth, closing eyes, disocclusions, shading).
The delta head is a plain convolution that starts at zero, so an untrained G gives exactly the warp, and its
weights still get full gradients from the first step (its input is not zero). Not a sigmoid mask blending the
warp with a generated colour image: started near "all warp", a mask scales the colour branch's gradients by
1 - m = 0.02, and 800 CPU steps of meta-learning leave the output equal to the warp. This is the
idea of the authors' follow-up (Zakharov et al. 2020, bi-layer model: a warped high-frequency texture
beside a generated layer), kept inside the 2019 generator: AdaIN with psi = P e_hat is unchanged.

With cfg.net_size < cfg.image_size G works at net_size inside: its inputs are resized down (area),
delta is resized up (bilinear) and added to the full-size warp.

With cfg.correction == "regions" delta acts only around the eyes and the mouth, where a warp fails (it
can't open a mouth or close a lid), and with "mouth" only around the mouth: a soft mask read off the sketch
itself (`RegionGate`: the eye and lip lines by their colours, dilated and feathered), so the output is
exactly the warp everywhere else and no caller passes anything new. A full-frame correction learnt in
minutes of GPU adds a faint haze over the whole face that costs more SSIM than the mouth gains
(BENCHMARKS.md, "Meta-learning on a GPU").
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBlock, ResBlockUp, SelfAttention, conv, down_path
from .config import ModelConfig, get_config
from .spectral import has_spectral_norm, remove_spectral_norm


class RegionGate(nn.Module):
    """Sketch (B, 3, S, S) in [-1, 1] -> a soft mask (B, 1, n, n) at the network's size n: 1 around the eyes
    and the mouth, 0 elsewhere. The rasteriser (puppet.faces.sketch) draws the eyes red and blue, the outer
    lips magenta and the inner lips cyan; the other parts are white, yellow, green, orange and azure, none of
    which has both a channel near 0 and the other two's pattern. Max-pooling the full-size line mask down
    keeps 1-2 px lines; a separable max pool grows it over the lids and an open mouth; average pools
    feather its edge. Only element-wise ops and pools: it exports to ONNX and runs in well under a ms."""

    # Dilation radii across and down the frame, in units of the network's side (the crop's eye distance is
    # about 0.3 of it): down reaches over the lids and across an open mouth from its lip lines.
    GROW_X, GROW_Y = 0.04, 0.08
    FEATHER = 0.03

    def __init__(self, io_size: int, net_size: int, eyes: bool = True):
        super().__init__()
        self.eyes = eyes  # False: the mouth alone
        self.down = max(1, io_size // net_size)
        self.grow = (max(1, round(self.GROW_X * net_size)), max(1, round(self.GROW_Y * net_size)))
        self.feather = max(1, round(self.FEATHER * net_size))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        r, g, b = ((y[:, k : k + 1] + 1) * 0.5 for k in range(3))
        # A line's core is near 1; anti-aliased edges and the orange/azure brows (one product term 0.5) fall
        # below the threshold. Magenta and cyan: the lips; red and blue: the eyes.
        strongest = torch.maximum(r * b * (1 - g), g * b * (1 - r))
        if self.eyes:
            strongest = torch.maximum(strongest, torch.maximum(r * (1 - g) * (1 - b), b * (1 - r) * (1 - g)))
        lines = torch.clamp((strongest - 0.55) / 0.3, 0.0, 1.0)
        if self.down > 1:
            lines = F.max_pool2d(lines, self.down)
        gx, gy = self.grow
        m = F.max_pool2d(lines, (1, 2 * gx + 1), stride=1, padding=(0, gx))
        m = F.max_pool2d(m, (2 * gy + 1, 1), stride=1, padding=(gy, 0))
        f = 2 * self.feather + 1
        m = F.avg_pool2d(m, (1, f), stride=1, padding=(0, self.feather), count_include_pad=False)
        return F.avg_pool2d(m, (f, 1), stride=1, padding=(self.feather, 0), count_include_pad=False)


class _Body(nn.Module):
    """G without P: the shared weights. The forward takes the per-layer AdaIN (scale, shift) pairs."""

    def __init__(self, cfg: ModelConfig, spectral: bool):
        super().__init__()
        size = cfg.inner_size
        self.io_size = cfg.image_size
        self.net_size = size
        self.appearance = cfg.takes_warp
        cin = 6 if self.appearance else 3
        self.down, size = down_path(cin, list(cfg.g_down_channels), size, list(cfg.attn_down), "in", spectral)
        c = cfg.g_down_channels[-1]
        self.up = nn.ModuleList(ResBlock(c, "adain", spectral) for _ in range(cfg.g_res_blocks))
        for cout in cfg.g_up_channels:
            self.up.append(ResBlockUp(c, cout, spectral))
            size *= 2
            if size in cfg.attn_up:
                self.up.append(SelfAttention(cout, spectral))
            c = cout
        if self.appearance:
            # Instance norm before the head's ReLU keeps about half of its inputs alive. Without it,
            # meta-learning found that killing every feature (ReLU'd to zero) is the quickest way to output
            # the warp, which L1 favours, and dead units get no gradient back: the correction froze at 0.
            self.head_norm = nn.InstanceNorm2d(c, affine=True, eps=1e-5) if cfg.head_norm else None
            # No spectral norm: a zero matrix has no spectral norm to divide by.
            self.delta = nn.Conv2d(c, 3, 3, padding=1)
            nn.init.zeros_(self.delta.weight)
            nn.init.zeros_(self.delta.bias)
            kind = cfg.correction
            self.gate = None if kind == "full" else RegionGate(self.io_size, self.net_size, kind == "regions")
        else:
            self.out = conv(c, 3, 3, spectral)
        self.adain_channels = [ch for blk in self.up for ch in getattr(blk, "adain_channels", [])]

    def _to_net(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == self.net_size:
            return x
        return F.interpolate(x, size=(self.net_size, self.net_size), mode="area")

    def _to_io(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == self.io_size:
            return x
        return F.interpolate(x, size=(self.io_size, self.io_size), mode="bilinear", align_corners=False)

    def forward(self, y: torch.Tensor, params: list, warped: torch.Tensor | None = None) -> torch.Tensor:
        if self.appearance:
            if warped is None:
                raise ValueError("this generator has the appearance path: pass the warped reference too")
            x = torch.cat([self._to_net(y), self._to_net(warped)], dim=1)
        else:
            x = self._to_net(y)
        for blk in self.down:
            x = blk(x)
        i = 0
        for blk in self.up:
            n = getattr(blk, "n_adain_layers", 0)
            if n:
                x = blk(x, params[i:i + n])
                i += n
            else:
                x = blk(x)
        if self.appearance and self.head_norm is not None:
            x = self.head_norm(x)
        h = F.relu(x)
        if not self.appearance:
            return self._to_io(torch.tanh(self.out(h)))
        delta = self.delta(h)
        if self.gate is not None:
            delta = delta * self.gate(y)
        return torch.clamp(warped + self._to_io(delta), -1.0, 1.0)


class Generator(nn.Module):
    """G(y, psi) -> (B, 3, S, S) in [-1, 1]; psi = G.psi_from_embedding(e_hat), or a free parameter when
    fine-tuning.

    `spectral=False` builds it without spectral norm, e.g. to load a state dict saved after
    `remove_spectral_norm` (targets store the generator that way).
    """

    def __init__(self, cfg: ModelConfig | dict | str, spectral: bool = True):
        super().__init__()
        self.cfg = get_config(cfg)
        self.body = _Body(self.cfg, spectral)
        self.appearance = self.body.appearance
        self.adain_channels = self.body.adain_channels
        self.n_adain = 2 * sum(self.adain_channels)
        # P is a plain projection (no spectral norm): its scale sets the AdaIN parameters' range.
        self.P = nn.Linear(self.cfg.emb_dim, self.n_adain, bias=False)

    def psi_from_embedding(self, e_hat: torch.Tensor) -> torch.Tensor:
        """psi = P e_hat: (B, emb_dim) -> (B, n_adain)."""
        return self.P(e_hat)

    def adain_params(self, psi: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per AdaIN layer, in network order: (scale, shift), each (B, C) for psi (B, n_adain), or (C,) for
        a 1-D psi."""
        if psi.shape[-1] != self.n_adain:
            raise ValueError(f"psi has {psi.shape[-1]} values, this generator needs {self.n_adain}")
        out, i = [], 0
        for c in self.adain_channels:
            scale = 1.0 + psi[..., i:i + c]
            shift = psi[..., i + c:i + 2 * c]
            out.append((scale, shift))
            i += 2 * c
        return out

    def forward(self, y: torch.Tensor, psi: torch.Tensor, warped: torch.Tensor | None = None) -> torch.Tensor:
        """y: sketches (B, 3, S, S); psi (B, n_adain); warped (B, 3, S, S): the reference warped to y's
        landmarks (appearance generators only). S = cfg.image_size."""
        return self.body(y, self.adain_params(psi), warped)


class PersonGenerator(nn.Module):
    """One person's generator: forward(sketch (B,3,S,S)[, warped (B,3,S,S)]) -> image, with psi folded into
    per-layer buffers. `appearance` says whether it takes the warped reference as a second input.

    Holds a copy of G's shared weights with spectral norm removed (G itself is untouched) and no P, so it
    exports to ONNX as plain Conv / InstanceNormalization / Resize / MatMul / Softmax / Tanh / Relu ops.
    """

    def __init__(self, generator: Generator, psi: torch.Tensor):
        super().__init__()
        psi = psi.detach()
        if psi.dim() == 2:
            if psi.shape[0] != 1:
                raise ValueError(f"PersonGenerator takes one psi (1, n_adain), not {tuple(psi.shape)}")
            psi = psi[0]
        self.cfg = generator.cfg
        body = copy.deepcopy(generator.body)
        if has_spectral_norm(body):
            remove_spectral_norm(body)
        self.body = body.eval()
        self.appearance = body.appearance
        self.n_layers = len(generator.adain_channels)
        for k, (scale, shift) in enumerate(generator.adain_params(psi)):
            self.register_buffer(f"scale{k}", scale.clone().contiguous())
            self.register_buffer(f"shift{k}", shift.clone().contiguous())
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, sketch: torch.Tensor, warped: torch.Tensor | None = None) -> torch.Tensor:
        params = [(getattr(self, f"scale{k}"), getattr(self, f"shift{k}")) for k in range(self.n_layers)]
        return self.body(sketch, params, warped)

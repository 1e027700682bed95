"""The generator G(y; psi) and the one-person generator that export and the live loop run.

G maps a landmark sketch y to an image: down-sampling residual blocks with (affine) instance norm,
AdaIN residual blocks at the bottleneck, AdaIN up-sampling residual blocks, ReLU + conv + tanh.
Self-attention after the down block that reaches cfg["attn_down"] and the up block that reaches
cfg["attn_up"] (32 and 64 in the paper's 256x256 config).

The AdaIN parameters are person-specific: psi = P e_hat, with P a learned (n_adain x emb_dim) matrix.
psi is laid out layer by layer as [scale offsets (C), shifts (C)]; a layer's scale is 1 + its offsets, so
psi = 0 is plain instance norm (a gentle start for training).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBlock, ResBlockUp, SelfAttention, conv, down_path
from .config import get_config
from .spectral import has_spectral_norm, remove_spectral_norm


class _Body(nn.Module):
    """G without P: the shared weights. The forward takes the per-layer AdaIN (scale, shift) pairs."""

    def __init__(self, cfg: dict, spectral: bool):
        super().__init__()
        size = cfg["image_size"]
        self.down, size = down_path(3, cfg["g_down_channels"], size, cfg["attn_down"], "in", spectral)
        c = cfg["g_down_channels"][-1]
        self.up = nn.ModuleList(ResBlock(c, "adain", spectral) for _ in range(cfg["g_res_blocks"]))
        for cout in cfg["g_up_channels"]:
            self.up.append(ResBlockUp(c, cout, spectral))
            size *= 2
            if size in cfg["attn_up"]:
                self.up.append(SelfAttention(cout, spectral))
            c = cout
        self.out = conv(c, 3, 3, spectral)
        self.adain_channels = [ch for blk in self.up for ch in getattr(blk, "adain_channels", [])]

    def forward(self, y: torch.Tensor, params: list) -> torch.Tensor:
        x = y
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
        return torch.tanh(self.out(F.relu(x)))


class Generator(nn.Module):
    """G(y, psi) -> (B, 3, S, S) in [-1, 1]; psi = G.psi_from_embedding(e_hat), or a free parameter when
    fine-tuning.

    `spectral=False` builds it without spectral norm, e.g. to load a state dict saved after
    `remove_spectral_norm` (targets store the generator that way).
    """

    def __init__(self, cfg: dict | str, spectral: bool = True):
        super().__init__()
        self.cfg = get_config(cfg)
        self.body = _Body(self.cfg, spectral)
        self.adain_channels = self.body.adain_channels
        self.n_adain = 2 * sum(self.adain_channels)
        # P is a plain projection (no spectral norm): its scale sets the AdaIN parameters' range.
        self.P = nn.Linear(self.cfg["emb_dim"], self.n_adain, bias=False)

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

    def forward(self, y: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        return self.body(y, self.adain_params(psi))


class PersonGenerator(nn.Module):
    """One person's generator: forward(sketch (B,3,S,S)) -> image, with psi folded into per-layer buffers.

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
        self.cfg = copy.deepcopy(generator.cfg)
        body = copy.deepcopy(generator.body)
        if has_spectral_norm(body):
            remove_spectral_norm(body)
        self.body = body.eval()
        self.n_layers = len(generator.adain_channels)
        for k, (scale, shift) in enumerate(generator.adain_params(psi)):
            self.register_buffer(f"scale{k}", scale.clone().contiguous())
            self.register_buffer(f"shift{k}", shift.clone().contiguous())
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        params = [(getattr(self, f"scale{k}"), getattr(self, f"shift{k}")) for k in range(self.n_layers)]
        return self.body(sketch, params)

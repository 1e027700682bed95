"""Building blocks shared by E, G and D: residual down/up-sampling blocks, residual blocks, AdaIN and
SAGAN-style self-attention (BigGAN-style pre-activation residual blocks, spectral norm on every conv).

Blocks that hold AdaIN layers take their per-layer (scale, shift) pairs as an argument: a list with one pair
per AdaIN layer, in order (`n_adain_layers` of them; `adain_channels` lists their widths). A pair is either
(B, C) tensors (G's forward: one person per batch element) or 1-D (C,) tensors (PersonGenerator: one person
folded into buffers, which exports as a single ONNX InstanceNormalization with scale/bias).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .spectral import sn

EPS = 1e-5


def conv(cin: int, cout: int, k: int, spectral: bool = True) -> nn.Module:
    return sn(nn.Conv2d(cin, cout, k, padding=k // 2), spectral)


class AdaIN(nn.Module):
    """Instance norm without its own affine; the scale and shift come from psi (person-specific)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        if scale.dim() == 1:  # one person, folded: a plain InstanceNormalization node in ONNX
            return F.instance_norm(x, weight=scale, bias=shift, eps=EPS)
        return F.instance_norm(x, eps=EPS) * scale[:, :, None, None] + shift[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN self-attention: x + gamma * h(x) softmax(f(x)^T g(x)); gamma starts at 0 (identity)."""

    def __init__(self, channels: int, spectral: bool = True):
        super().__init__()
        k = max(1, channels // 8)
        self.f = conv(channels, k, 1, spectral)
        self.g = conv(channels, k, 1, spectral)
        self.h = conv(channels, channels, 1, spectral)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        q = self.f(x).flatten(2)  # (B, k, N)
        key = self.g(x).flatten(2)  # (B, k, N)
        v = self.h(x).flatten(2)  # (B, C, N)
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), key), dim=-1)  # (B, N, N): row n attends to all
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, c, hgt, wid)
        return x + self.gamma * out


class ResBlockDown(nn.Module):
    """Residual block that halves the resolution. `norm`: None (E, D) or "in" (G's down path, affine IN).

    `preact=False` for the first block of a network: its input is an image, not features, so no norm/ReLU.
    """

    n_adain_layers = 0

    def __init__(self, cin: int, cout: int, norm: str | None = None, preact: bool = True,
                 spectral: bool = True):
        super().__init__()
        self.preact = preact
        use_in = norm == "in"
        self.norm1 = nn.InstanceNorm2d(cin, affine=True, eps=EPS) if use_in and preact else nn.Identity()
        self.conv1 = conv(cin, cout, 3, spectral)
        self.norm2 = nn.InstanceNorm2d(cout, affine=True, eps=EPS) if use_in else nn.Identity()
        self.conv2 = conv(cout, cout, 3, spectral)
        self.skip = conv(cin, cout, 1, spectral)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(x)) if self.preact else x
        h = self.conv1(h)
        h = self.conv2(F.relu(self.norm2(h)))
        return F.avg_pool2d(h, 2) + F.avg_pool2d(self.skip(x), 2)


class ResBlock(nn.Module):
    """Residual block at constant resolution and width. `norm`: None (D), or "adain" (G's bottleneck)."""

    def __init__(self, channels: int, norm: str | None = None, spectral: bool = True):
        super().__init__()
        self.adain = norm == "adain"
        self.n_adain_layers = 2 if self.adain else 0
        self.adain_channels = [channels, channels] if self.adain else []
        self.norm1 = AdaIN(channels) if self.adain else nn.Identity()
        self.conv1 = conv(channels, channels, 3, spectral)
        self.norm2 = AdaIN(channels) if self.adain else nn.Identity()
        self.conv2 = conv(channels, channels, 3, spectral)

    def forward(self, x: torch.Tensor, params: list | None = None) -> torch.Tensor:
        if self.adain:
            (s1, b1), (s2, b2) = params
            h = self.conv1(F.relu(self.norm1(x, s1, b1)))
            h = self.conv2(F.relu(self.norm2(h, s2, b2)))
        else:
            h = self.conv1(F.relu(x))
            h = self.conv2(F.relu(h))
        return x + h


class ResBlockUp(nn.Module):
    """Residual block that doubles the resolution (nearest up-sampling), with AdaIN (G's up path)."""

    n_adain_layers = 2

    def __init__(self, cin: int, cout: int, spectral: bool = True):
        super().__init__()
        self.adain_channels = [cin, cout]
        self.norm1 = AdaIN(cin)
        self.conv1 = conv(cin, cout, 3, spectral)
        self.norm2 = AdaIN(cout)
        self.conv2 = conv(cout, cout, 3, spectral)
        self.skip = conv(cin, cout, 1, spectral)

    def forward(self, x: torch.Tensor, params: list) -> torch.Tensor:
        (s1, b1), (s2, b2) = params
        h = F.interpolate(F.relu(self.norm1(x, s1, b1)), scale_factor=2.0, mode="nearest")
        h = self.conv1(h)
        h = self.conv2(F.relu(self.norm2(h, s2, b2)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def down_path(cin: int, channels: list[int], size: int, attn_at: list[int], norm: str | None,
              spectral: bool) -> tuple[nn.ModuleList, int]:
    """ResBlockDown per entry of `channels`, with self-attention after the block that reaches a resolution
    in `attn_at`. Returns the blocks and the final resolution."""
    blocks = nn.ModuleList()
    for i, cout in enumerate(channels):
        blocks.append(ResBlockDown(cin, cout, norm=norm, preact=i > 0, spectral=spectral))
        size //= 2
        if size in attn_at:
            blocks.append(SelfAttention(cout, spectral))
        cin = cout
    return blocks, size

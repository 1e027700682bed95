"""The projection discriminator D(x, y, i) = V(x, y)^T (W_i + w0) + b.

V: residual down-sampling blocks (no normalisation, spectral norm) on the frame and sketch concatenated,
self-attention at cfg.attn_down, residual block(s) at the lowest resolution, global sum pooling and ReLU.
W holds one emb_dim vector per training video (an nn.Embedding: DDP-friendly, rows looked up by index);
fine-tuning passes an explicit w = w0 + e_hat instead. D also returns every block's output for the
feature-matching loss. Inputs larger than cfg.net_size are resized to it first.

Fine-tuning from a meta-learned model starts w' at w0 + e_hat (the paper); from random weights it starts
at w0 alone: a random embedder's e_hat is large and meaningless, the projection term then swamps D's score
(+38 real / +40 fake measured) and the hinge loss kills D's features within a few hundred steps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBlock, down_path
from .config import ModelConfig, get_config


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig | dict | str, num_videos: int, spectral: bool = True):
        super().__init__()
        self.cfg = get_config(cfg)
        self.net_size = self.cfg.inner_size
        self.num_videos = num_videos
        c = self.cfg.emb_dim
        self.blocks, _ = down_path(6, list(self.cfg.d_channels), self.net_size, list(self.cfg.attn_down),
                                   None, spectral)
        for _ in range(self.cfg.d_res_blocks):
            self.blocks.append(ResBlock(c, None, spectral))
        # Small init: with N(0, 1) rows the initial scores would be huge (emb_dim-long dot products).
        self.W = nn.Embedding(num_videos, c)
        nn.init.normal_(self.W.weight, std=0.02)
        self.w0 = nn.Parameter(torch.randn(c) * 0.02)
        self.b = nn.Parameter(torch.zeros(1))

    def features(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """V(x, y) (B, emb_dim) and the blocks' outputs."""
        h = torch.cat([x, y], dim=1)
        if h.shape[-1] != self.net_size:
            h = F.interpolate(h, size=(self.net_size, self.net_size), mode="area")
        feats = []
        for blk in self.blocks:
            h = blk(h)
            feats.append(h)
        return F.relu(h.sum(dim=(2, 3))), feats

    def forward(self, x: torch.Tensor, y: torch.Tensor, i: torch.Tensor | None = None,
                w: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Score (B,) and features. `i` (B,) video indices -> W_i + w0; or `w` (B or 1, emb_dim), used as is
        (fine-tuning: w = w0 + e_hat)."""
        if w is None:
            if i is None:
                raise TypeError("Discriminator needs the video indices i or an explicit w")
            w = self.W(i) + self.w0
        v, feats = self.features(x, y)
        return (v * w).sum(dim=1) + self.b, feats

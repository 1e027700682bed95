"""The embedder E(x, y) -> e in R^emb_dim: a frame and its landmark sketch, concatenated (6 channels), through
residual down-sampling blocks (no normalisation, spectral norm) with self-attention, then global sum pooling
and ReLU, as in the paper. A video's embedding e_hat is the mean over its K frames (`embed_frames`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import down_path
from .config import get_config


class Embedder(nn.Module):
    def __init__(self, cfg: dict | str, spectral: bool = True):
        super().__init__()
        self.cfg = get_config(cfg)
        self.blocks, _ = down_path(6, self.cfg["e_channels"], self.cfg["image_size"], self.cfg["attn_down"],
                                   None, spectral)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: (B, 3, S, S) in [-1, 1] -> (B, emb_dim)."""
        h = torch.cat([x, y], dim=1)
        for blk in self.blocks:
            h = blk(h)
        return F.relu(h.sum(dim=(2, 3)))

    def embed_frames(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: (B, K, 3, S, S), K frames of each of B videos -> e_hat (B, emb_dim), the mean over K."""
        b, k = x.shape[:2]
        e = self(x.flatten(0, 1), y.flatten(0, 1))
        return e.view(b, k, -1).mean(dim=1)

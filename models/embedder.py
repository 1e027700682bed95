"""The embedder E(x, y) -> e in R^emb_dim: a frame and its landmark sketch, concatenated (6 channels), through
residual down-sampling blocks (no normalisation, spectral norm) with self-attention, then global sum pooling.
A video's embedding e_hat is the mean over its K frames (`embed_frames`).

Unlike the paper, no ReLU follows the pooling. With it, the embedding-match term (weight 80, pulling e_hat
towards W_i, which starts near 0) drives the pooled sums negative, the ReLU then outputs exactly 0 with no
gradient, and every video's embedding, and so every person's psi = P e_hat, collapses to 0 for good
(reproduced: e_hat all zeros after 500 steps). A linear output can still move back. Inputs larger than
cfg.net_size are resized to it first."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import down_path
from .config import ModelConfig, get_config


class Embedder(nn.Module):
    def __init__(self, cfg: ModelConfig | dict | str, spectral: bool = True):
        super().__init__()
        self.cfg = get_config(cfg)
        self.net_size = self.cfg.inner_size
        self.blocks, _ = down_path(6, list(self.cfg.e_channels), self.net_size, list(self.cfg.attn_down),
                                   None, spectral)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: (B, 3, S, S) in [-1, 1] -> (B, emb_dim)."""
        h = torch.cat([x, y], dim=1)
        if h.shape[-1] != self.net_size:
            h = F.interpolate(h, size=(self.net_size, self.net_size), mode="area")
        for blk in self.blocks:
            h = blk(h)
        return h.sum(dim=(2, 3))

    def frame_embeddings(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: (B, K, 3, S, S), K frames of each of B videos -> (B, K, emb_dim), one per frame."""
        b, k = x.shape[:2]
        return self(x.flatten(0, 1), y.flatten(0, 1)).view(b, k, -1)

    def embed_frames(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: (B, K, 3, S, S) -> e_hat (B, emb_dim), the mean over the K frames."""
        return self.frame_embeddings(x, y).mean(dim=1)

"""The paper's losses. Every function returns its term already weighted as in the paper's objective
(the weights are the constants below; pass `weight=` to change one), so an objective is the sum of its terms.

Meta-learning, E and G (and P): content + adversarial + feature matching + embedding match
(`generator_losses`). D: hinge loss (`discriminator_losses`). Fine-tuning uses the same functions with an
explicit w = w0 + e_hat and no embedding match.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .vgg import (
    VGG19_LAYERS,
    VGGFACE_LAYERS,
    layer_outputs,
    load_vgg19,
    load_vggface,
    normalize_vgg19,
    normalize_vggface,
)

VGG19_WEIGHT = 1e-2  # content loss: L1 over VGG19 relu1_1..relu5_1 (summed over layers)
VGGFACE_WEIGHT = 2e-3  # content loss: L1 over VGGFace relu1_1..relu5_1
ADV_WEIGHT = 1.0  # -D(x_hat)
FM_WEIGHT = 10.0  # feature matching: L1 between D's features of the real and the generated image
MCH_WEIGHT = 80.0  # embedding match: L1 between W_i and e_hat_i


class ContentLoss(nn.Module):
    """L1 between VGG19 and VGGFace features of the generated and the real image, each network fed the input
    normalisation its weights were trained with. `vgg19`, `vggface`: a weights path, None (torch's hub
    cache: see models.vgg) or "random" (tests and smoke runs only; warns)."""

    def __init__(self, vgg19: str | os.PathLike | None = None, vggface: str | os.PathLike | None = None,
                 vgg19_weight: float = VGG19_WEIGHT, vggface_weight: float = VGGFACE_WEIGHT):
        super().__init__()
        self.vgg19 = load_vgg19(vgg19)
        self.vggface = load_vggface(vggface)
        self.vgg19_weight = vgg19_weight
        self.vggface_weight = vggface_weight

    @staticmethod
    def _l1(net, layers, fake, real) -> torch.Tensor:
        with torch.no_grad():
            target = layer_outputs(net, real, layers)
        return sum(F.l1_loss(f, t) for f, t in zip(layer_outputs(net, fake, layers), target))

    def terms(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted VGG19 and VGGFace terms. fake, real: (B, 3, S, S) RGB in [-1, 1]."""
        t19 = self._l1(self.vgg19, VGG19_LAYERS, normalize_vgg19(fake), normalize_vgg19(real))
        tface = self._l1(self.vggface, VGGFACE_LAYERS, normalize_vggface(fake), normalize_vggface(real))
        return self.vgg19_weight * t19, self.vggface_weight * tface

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        t19, tface = self.terms(fake, real)
        return t19 + tface


def adversarial_loss(score_fake: torch.Tensor, weight: float = ADV_WEIGHT) -> torch.Tensor:
    """-D(x_hat), averaged over the batch."""
    return -weight * score_fake.mean()


def feature_matching_loss(feats_real: list[torch.Tensor], feats_fake: list[torch.Tensor],
                          weight: float = FM_WEIGHT) -> torch.Tensor:
    """Sum over D's layers of the mean L1 between real and generated features (real ones are targets)."""
    return weight * sum(F.l1_loss(f, r.detach()) for r, f in zip(feats_real, feats_fake))


def embedding_match_loss(w_i: torch.Tensor, e_hat: torch.Tensor, weight: float = MCH_WEIGHT) -> torch.Tensor:
    """Mean L1 between W_i and e_hat_i; gradients reach both W and E, as in the paper."""
    return weight * F.l1_loss(w_i, e_hat)


def hinge_d_loss(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    """D's hinge loss: relu(1 - D(x)) + relu(1 + D(x_hat)), averaged over the batch."""
    return F.relu(1.0 - score_real).mean() + F.relu(1.0 + score_fake).mean()


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)  # DistributedDataParallel keeps the model in .module


def generator_losses(D: nn.Module, content: ContentLoss, fake: torch.Tensor, real: torch.Tensor,
                     y: torch.Tensor, i: torch.Tensor | None = None, w: torch.Tensor | None = None,
                     e_hat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """E/G's objective for one batch: {"content", "adv", "fm", ["mch"], "total"}.

    fake = G(y, P e_hat), real the true frame for sketch y. Meta-learning passes the video indices `i` and
    `e_hat` (adds the embedding match W_i ~ e_hat); fine-tuning passes w = w0 + e_hat instead.
    D's parameters also receive gradients here; step only E/G/P (and psi) with this total.
    """
    score_fake, feats_fake = D(fake, y, i=i, w=w)
    with torch.no_grad():
        _, feats_real = D(real, y, i=i, w=w)
    terms = {
        "content": content(fake, real),
        "adv": adversarial_loss(score_fake),
        "fm": feature_matching_loss(feats_real, feats_fake),
    }
    if i is not None and e_hat is not None:
        terms["mch"] = embedding_match_loss(_unwrap(D).W(i), e_hat)
    terms["total"] = sum(terms.values())
    return terms


def discriminator_losses(D: nn.Module, fake: torch.Tensor, real: torch.Tensor, y: torch.Tensor,
                         i: torch.Tensor | None = None,
                         w: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """D's hinge objective for one batch (the generated images are detached): {"real", "fake", "total"},
    where "real"/"fake" are the mean scores (for logging)."""
    score_real, _ = D(real, y, i=i, w=w)
    score_fake, _ = D(fake.detach(), y, i=i, w=w)
    return {"real": score_real.mean().detach(), "fake": score_fake.mean().detach(),
            "total": hinge_d_loss(score_real, score_fake)}

"""The paper's losses. Every function returns its term already weighted as in the paper's objective
(the weights are the constants below; pass `weight=` to change one), so an objective is the sum of its terms.

Meta-learning, E and G (and P): content + adversarial + feature matching + embedding match
(`generator_losses`). D: hinge loss (`discriminator_losses`). Fine-tuning uses the same functions with an
explicit w = w0 + e_hat and no embedding match.
"""

from __future__ import annotations

import os
from pathlib import Path

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
# The paper's weights were set for Caffe networks fed 0-255 inputs. torchvision's VGG19 takes
# ImageNet-normalised [0, 1] inputs, 1/(255 * 0.226) = 1/57.8 of that scale, and its ReLU features scale
# about linearly with the input: its L1 is multiplied back to the Caffe scale. (VGGFace is fed 0-255.)
VGG19_INPUT_SCALE = 255.0 * 0.226
VGGFACE_WEIGHT = 2e-3  # content loss: L1 over VGGFace relu1_1..relu5_1
ADV_WEIGHT = 1.0  # -D(x_hat)
FM_WEIGHT = 10.0  # feature matching: L1 between D's features of the real and the generated image
MCH_WEIGHT = 80.0  # embedding match: L1 between W_i (detached) and each frame's embedding
# Pixel L1 inside the mouth and eye regions (not in the paper): those are a few percent of the crop, so the
# whole-image terms barely see them, yet they are exactly what an appearance generator must draw.
REGION_WEIGHT = 5.0


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
        # fp32 even under autocast: VGGFace's 0-255 inputs give activations past fp16's range.
        with torch.autocast(fake.device.type, enabled=False):
            fake, real = fake.float(), real.float()
            t19 = self._l1(self.vgg19, VGG19_LAYERS, normalize_vgg19(fake), normalize_vgg19(real))
            tface = self._l1(self.vggface, VGGFACE_LAYERS, normalize_vggface(fake), normalize_vggface(real))
        return self.vgg19_weight * VGG19_INPUT_SCALE * t19, self.vggface_weight * tface

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        t19, tface = self.terms(fake, real)
        return t19 + tface


# The face inside the project's crop (whole head, jaw width 0.44 of the side, eyes at 40 % of the height),
# as a fraction of the side: about the framing of the face chips face-api's net was trained on.
FACE_BOX = (0.17, 0.20, 0.83, 0.86)  # x0, y0, x1, y1


def face_region(images: torch.Tensor) -> torch.Tensor:
    """The face part of crops (N, 3, S, S): what the identity descriptor should look at."""
    s = images.shape[-1]
    x0, y0, x1, y1 = (round(v * s) for v in FACE_BOX)
    return images[..., y0:y1, x0:x1]


class FaceContentLoss(nn.Module):
    """A perceptual content loss that needs no download: the vendored face-recognition net (models.facerec).

    Pixel L1 + the mean over the net's stages of the L1 between features (each stage's divided by the real
    features' mean magnitude, so every stage counts alike) + identity (1 - cosine of the descriptors of the
    face regions). Used where the paper's VGG19/VGGFace weights are absent.
    """

    def __init__(self, weights: str | os.PathLike | None = None, pixel_weight: float = 1.0,
                 feature_weight: float = 1.0, identity_weight: float = 5.0):
        super().__init__()
        from .facerec import load_face_recognition

        self.net = load_face_recognition(weights)
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.pixel_weight, self.feature_weight = pixel_weight, feature_weight
        self.identity_weight = identity_weight

    def terms(self, fake: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(fake.device.type, enabled=False):
            fake, real = fake.float(), real.float()
            with torch.no_grad():
                f_real = self.net.features(real)
                d_real = self.net.descriptor(face_region(real))
            f_fake = self.net.features(fake)
            feat = sum(F.l1_loss(f, r) / (r.abs().mean() + 1e-3)
                       for f, r in zip(f_fake, f_real)) / len(f_real)
            ident = 1.0 - F.cosine_similarity(self.net.descriptor(face_region(fake)), d_real, dim=-1).mean()
            return {"pixel": self.pixel_weight * F.l1_loss(fake, real), "feature": self.feature_weight * feat,
                    "identity": self.identity_weight * ident}

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return sum(self.terms(fake, real).values())


class PixelLoss(nn.Module):
    """L1 in pixels: the quickest content loss, for smoke runs and tests."""

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(fake, real)


CONTENT_KINDS = ("auto", "vgg", "face", "l1")


def make_content_loss(kind: str = "auto", vgg19: str | os.PathLike | None = None,
                      vggface: str | os.PathLike | None = None) -> nn.Module:
    """The content loss by name: "vgg" (the paper's VGG19 + VGGFace; user-supplied weights), "face" (the
    vendored face-recognition net), "l1" (pixels), or "auto": "vgg" where both VGG weight files are found
    (given or in torch's hub cache), else "face"."""
    if kind not in CONTENT_KINDS:
        raise ValueError(f"content loss {kind!r}: use one of {', '.join(CONTENT_KINDS)}")
    if kind == "auto":
        from .vgg import VGG19_FILE, VGGFACE_FILE, default_weights_dir

        def found(given, name):
            path = Path(given).expanduser() if given else default_weights_dir() / name
            return given == "random" or path.is_file()

        kind = "vgg" if found(vgg19, VGG19_FILE) and found(vggface, VGGFACE_FILE) else "face"
    if kind == "vgg":
        return ContentLoss(vgg19, vggface)
    if kind == "face":
        return FaceContentLoss()
    return PixelLoss()


def adversarial_loss(score_fake: torch.Tensor, weight: float = ADV_WEIGHT) -> torch.Tensor:
    """-D(x_hat), averaged over the batch."""
    return -weight * score_fake.mean()


def feature_matching_loss(feats_real: list[torch.Tensor], feats_fake: list[torch.Tensor],
                          weight: float = FM_WEIGHT) -> torch.Tensor:
    """Mean over D's blocks of the mean L1 between real and generated features (real ones are targets).
    The mean, not the sum, keeps the paper's weight meaning the same for D's of different depths."""
    pairs = list(zip(feats_real, feats_fake))
    return weight * sum(F.l1_loss(f, r.detach()) for r, f in pairs) / max(1, len(pairs))


def embedding_match_loss(w_i: torch.Tensor, e_frames: torch.Tensor,
                         weight: float = MCH_WEIGHT) -> torch.Tensor:
    """Mean L1 between W_i and each of video i's frame embeddings: w_i (B, C), e_frames (B, K, C) or (B, C).

    W is detached: it trains only through D's hinge loss, as D minimises nothing else in the paper (and the
    authors' code detaches it too). Letting this term move W dragged W to 0 together with the embeddings,
    and D lost its per-video conditioning. Per-frame, as in the authors' code: every frame, not only the
    K-frame mean, must carry the video's identity."""
    w_i = w_i.detach()
    if e_frames.dim() == 3:
        w_i = w_i[:, None, :].expand_as(e_frames)
    return weight * F.l1_loss(e_frames, w_i)


def region_loss(fake: torch.Tensor, real: torch.Tensor, region: torch.Tensor,
                weight: float = REGION_WEIGHT) -> torch.Tensor:
    """Mean L1 over the pixels inside `region` (B, 1, S, S) in [0, 1]; images (B, 3, S, S)."""
    region = region.to(fake.dtype)
    return weight * ((fake - real).abs() * region).sum() / (3.0 * region.sum() + 1.0)


def hinge_d_loss(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    """D's hinge loss: relu(1 - D(x)) + relu(1 + D(x_hat)), averaged over the batch."""
    return F.relu(1.0 - score_real).mean() + F.relu(1.0 + score_fake).mean()


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)  # DistributedDataParallel keeps the model in .module


def generator_losses(D: nn.Module | None, content: nn.Module, fake: torch.Tensor, real: torch.Tensor,
                     y: torch.Tensor, i: torch.Tensor | None = None, w: torch.Tensor | None = None,
                     e_frames: torch.Tensor | None = None, region: torch.Tensor | None = None,
                     region_weight: float = REGION_WEIGHT) -> dict[str, torch.Tensor]:
    """E/G's objective for one batch: {"content", ["adv", "fm"], ["mch"], ["region"], "total"}.

    fake = G(y, P e_hat), real the true frame for sketch y. Meta-learning passes the video indices `i` and
    the per-frame embeddings `e_frames` (B, K, C) (adds the embedding match W_i ~ e); fine-tuning passes
    w = w0 + e_hat instead. D=None leaves out the adversarial and feature-matching terms (content-only
    training). `region` (B, 1, S, S) adds the region term with `region_weight` (0 leaves it out).
    D's parameters also receive gradients here; step only E/G/P (and psi) with this total.
    """
    terms = {"content": content(fake, real)}
    if D is not None:
        score_fake, feats_fake = D(fake, y, i=i, w=w)
        with torch.no_grad():
            _, feats_real = D(real, y, i=i, w=w)
        terms["adv"] = adversarial_loss(score_fake)
        terms["fm"] = feature_matching_loss(feats_real, feats_fake)
    if region is not None and region_weight > 0:
        terms["region"] = region_loss(fake, real, region, region_weight)
    if i is not None and e_frames is not None:
        terms["mch"] = embedding_match_loss(_unwrap(D).W(i), e_frames)
    terms["total"] = sum(terms.values())
    return terms


def discriminator_losses(D: nn.Module, fake: torch.Tensor, real: torch.Tensor, y: torch.Tensor,
                         i: torch.Tensor | None = None,
                         w: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """D's hinge objective for one batch (the generated images are detached): {"real", "fake", "margin",
    "total"}, where "real"/"fake" are the mean scores and "margin" their mean difference (for logging)."""
    score_real, _ = D(real, y, i=i, w=w)
    score_fake, _ = D(fake.detach(), y, i=i, w=w)
    return {"real": score_real.mean().detach(), "fake": score_fake.mean().detach(),
            "margin": (score_real - score_fake).mean().detach(),
            "total": hinge_d_loss(score_real, score_fake)}

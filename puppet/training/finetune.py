"""Few-shot fine-tuning (paper section 3.3): photos of one person -> a target file (mona.pt).

    python -m puppet.finetune PHOTO [PHOTO ...] --out mona.pt        (--help lists the options)

The T frames are cropped with the shared tracker and crop and sketched with the one rasteriser. Then, as in
the paper: e_hat = mean of E over the T frames, psi' = P e_hat; G (all of its weights, with psi' a free
parameter) and D (with its projection vector w') are trained on those frames alone, content + adversarial
+ feature matching for G, hinge for D, two D steps per G step as in meta-learning. psi' is then a constant
of the person's generator, which is saved with spectral norm removed.

Where it starts: the meta-learned model that ships with puppet (models/weights/, see MODEL_CARD.md) unless
--checkpoint names another or --from-scratch asks for random weights. w' starts at w0 + e_hat from a
meta-learned model (the paper); from scratch at w0 alone, because a random embedder's e_hat is large and
meaningless and would swamp D's score (models.discriminator).

Appearance generators (config appearance "warp") also get a reference warped to each training sketch's
landmarks, as the live loop gives them: a target keeps all T frames as references and warps the one nearest
in shape to the driving landmarks (puppet.feed.Feeder.warped); for frame i of training that is the nearest
of the other frames (with T = 1, the frame itself).

Warp augmentation (on by default for one photo, off for several, which train on each other; --no-augment
turns it off): besides the T frames, every batch holds landmark-driven warps of them (puppet.data.motion:
perturbed pose, mouth and eyes), so even one photo teaches the generator how the face moves under a new
sketch. For appearance generators the target stays the real frame and the warped input takes a detour
through the perturbed pose (there and back), so they learn to mend a warp's artifacts against the truth.

Content loss (--content): auto (default) takes the paper's VGG19 + VGGFace where both weight files are found,
else the vendored face-recognition net's features and identity (perceptual, no download); l1 is a pixel
loss for quick smoke runs. Adam uses the same betas as meta-learning (PyTorch's defaults).
Learning rates: from a meta-learned model, the rates it was meta-learned with (the paper's 5e-5 for G and
2e-4 for D when its checkpoint doesn't say; the shipped model's are 5e-4 and 1e-3). A model from
--from-scratch has everything to learn from a handful of frames and needs a higher G rate to get anywhere in
a few hundred steps: its default is FROM_SCRATCH_LR_G (override with --lr / --lr-d).

Threads: on a CPU, torch's default (one thread per core, spinning at barriers) makes small convolutions
10-100x slower when other programs use the cores. Fine-tuning takes one thread per idle core (from the load
average), and the command sets OpenMP's passive wait policy before torch loads (puppet/finetune.py).
"""

from __future__ import annotations

import copy
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.config import CONFIGS
from puppet.cli import Parser
from puppet.devices import resolve_device
from puppet.errors import PuppetError, run_cli
from puppet.target import Target, default_face_size, make_metadata, save_target
from puppet.training.batches import Batches
from puppet.training.photos import load_photos, load_video_frames

log = logging.getLogger(__name__)

# From a meta-learned model, fine-tuning takes the learning rates it was meta-learned with (its checkpoint's
# "train" record), else the paper's. The shipped model was meta-learned at 10x the paper's rates (a CPU
# budget of ~2k steps, not days), and at the paper's 5e-5 its correction head barely moves in a few dozen
# steps.
PAPER_LR_G = 5e-5
PAPER_LR_D = 2e-4
FROM_SCRATCH_LR_G = 1e-3
FROM_SCRATCH_LR_D = 2e-4
# From the shipped model, one photo: 0, the paper's feed-forward model (psi' = P e_hat, nothing trained). A
# photo's only truth is its own mouth, so fine-tuning teaches the learned mouth correction to vanish: measured
# on the 10 dev-eval people (BENCHMARKS.md), 25 steps bring every T = 1 row back to the warp's, below the
# feed-forward model's mouth. With several photos each trains against the nearest other one warped to it
# (real pairs, what the live loop feeds), without warp augmentation: at T = 8, 25 steps give the
# nearest-of-T warp's quality (mouth PSNR 26.23 dB against the feed-forward model's 24.74; everything else
# equal or better), 100 steps no more.
DEFAULT_STEPS_META = 0
DEFAULT_STEPS_FEW_SHOT = 25
DEFAULT_STEPS_SCRATCH = 600  # tiny, one photo: held-out warp L1 0.115 (identity 0.196); ~3 min on a CPU core
PIXEL_WEIGHT = 10.0  # the pixel-only content loss (--content l1); like feature matching's weight 10
D_STEPS = 2  # D updates per G update, as in meta-learning



# ----------------------------------------------------------------------------------------------- losses
CONTENT_CHOICES = ("auto", "vgg", "face", "l1", "paper")  # paper: another name for vgg (kept for scripts)


def _content_loss(kind: str, vgg19, vggface) -> nn.Module:
    """The content term of G's fine-tuning loss (models.losses.make_content_loss; see the docstring)."""
    from models.losses import make_content_loss

    kind = "vgg" if kind == "paper" else kind
    if kind not in CONTENT_CHOICES:
        raise PuppetError(f"--content {kind}: unknown; use one of {', '.join(CONTENT_CHOICES[:-1])}")
    if kind == "l1":
        log.warning("content loss: pixel L1 only: fine for a smoke run; auto or face give a perceptual loss "
                    "with no download")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loss = make_content_loss(kind, vgg19, vggface)
        except PuppetError as e:
            raise PuppetError(f"{e}; or fine-tune with --content face (no downloads)") from None
    for w in caught:  # as our own one-line warnings, not Python's two-line file:line form
        log.warning(str(w.message))
    log.info("content loss: %s", type(loss).__name__)
    if kind == "l1":
        return _Scaled(loss, PIXEL_WEIGHT)
    return loss


class _Scaled(nn.Module):
    def __init__(self, loss: nn.Module, weight: float):
        super().__init__()
        self.loss, self.weight = loss, weight

    def forward(self, fake, real):
        return self.weight * self.loss(fake, real)


def _config_diff(asked, stored) -> str:
    """The fields two configs (models.config.ModelConfig) differ in, as `key: asked vs stored` (e.g. a
    checkpoint made before a field)."""
    asked, stored = asked.to_dict(), stored.to_dict()
    keys = sorted(k for k in asked if asked[k] != stored[k])
    return ", ".join(f"{k}: {asked.get(k)!r} vs {stored.get(k)!r}" for k in keys)


def discriminator_start(D: nn.Module, e_hat: torch.Tensor, meta_learned: bool) -> torch.Tensor:
    """w' at the start of fine-tuning, (1, emb_dim): w0 + e_hat from a meta-learned model (the paper), w0
    from random weights (see the module docstring)."""
    w0 = D.w0.detach().reshape(1, -1)
    return (w0 + e_hat.detach() if meta_learned else w0).clone()


def cpu_threads() -> int:
    """Threads for torch on this CPU: one per core that other programs leave idle (1-minute load average)."""
    from puppet.live.runtime import physical_cores

    cores = physical_cores()
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


# ------------------------------------------------------------------------------------------ fine-tuning
def _load_checkpoint(checkpoint) -> dict:
    if isinstance(checkpoint, dict):
        return checkpoint
    from puppet.training.checkpoint import load_meta

    return load_meta(checkpoint)


@dataclass(frozen=True)
class FinetuneOptions:
    """How fine-tuning trains (the data and the starting model are finetune's own arguments)."""

    # None: DEFAULT_STEPS_META from a checkpoint, DEFAULT_STEPS_SCRATCH from scratch; 0: feed-forward
    steps: int | None = None
    # train on fresh warps of the frames too (AUG_FRACTION of each batch); None: for one photo only
    augment: bool | None = None
    batch_size: int = 4
    # None: the checkpoint's own rates, else the paper's (FROM_SCRATCH_* from scratch)
    lr_g: float | None = None
    lr_d: float | None = None
    content: str = "auto"  # CONTENT_CHOICES
    vgg19: str | None = None  # weights for content="vgg"/"auto" (a path, "random", or None: the cache)
    vggface: str | None = None
    adversarial: bool = True  # False: G on the content loss alone (no D): the ablation of what D adds
    device: str = "auto"
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: cpu_threads())
    progress: bool = True


def finetune(
    frames_bgr: list[np.ndarray],
    landmarks: list[np.ndarray],
    config: str | dict | None = None,
    *,
    checkpoint=None,
    options: FinetuneOptions = FinetuneOptions(),
    sources=(),
    picture: np.ndarray | None = None,
    crop_box=None,
) -> Target:
    """Fine-tune on T already-cropped frames (uint8 BGR (S, S, 3)) and their landmarks (68, 2, crop pixels).

    checkpoint: a meta.pt path (or the dict checkpoint.load_meta returns); None means from scratch
    (randomly initialised E, G, D; then `config` names the networks). options: how it trains
    (FinetuneOptions). sources: names of the frames' files, for the target's metadata. picture, crop_box: the
    whole source picture of frame 0 and its crop's box (puppet.faces.crop.Crop), kept in the target for the
    live paste-back.
    Returns the Target (not yet saved: puppet.target.save_target).
    """
    o = options
    from models.config import get_config
    from models.discriminator import Discriminator
    from models.embedder import Embedder
    from models.generator import Generator
    from models.losses import REGION_WEIGHT, discriminator_losses, generator_losses
    from models.spectral import remove_spectral_norm

    t0 = time.time()
    if len(frames_bgr) == 0 or len(frames_bgr) != len(landmarks):
        raise ValueError(f"need T >= 1 frames and as many landmark sets, got {len(frames_bgr)} and "
                         f"{len(landmarks)}")
    meta = _load_checkpoint(checkpoint) if checkpoint is not None else None
    if meta is not None:
        cfg = get_config(meta["config"])
        if config is not None and get_config(config) != cfg:
            name = config if isinstance(config, str) else "<dict>"
            diff = _config_diff(get_config(config), cfg)
            raise PuppetError(f"--config {name}: differs from the checkpoint's config '{cfg.name}' "
                              f"({diff}); leave --config out with --checkpoint")
    else:
        if config is None:
            raise PuppetError("--from-scratch: needs --config tiny|small|cpu|paper")
        cfg = get_config(config)
    S = cfg.image_size
    for f in frames_bgr:
        if f.dtype != np.uint8 or f.shape != (S, S, 3):
            raise ValueError(f"frames must be uint8 BGR crops of {S}x{S}x3 (config image_size), got "
                             f"{f.dtype} {f.shape}")
    steps = o.steps
    if steps is None:
        few = DEFAULT_STEPS_META if len(frames_bgr) == 1 else DEFAULT_STEPS_FEW_SHOT
        steps = few if meta is not None else DEFAULT_STEPS_SCRATCH
    augment = len(frames_bgr) == 1 if o.augment is None else bool(o.augment)
    lr_g, lr_d = o.lr_g, o.lr_d
    if lr_g is None:
        lr_g = float(meta.get("train", {}).get("lr_g", PAPER_LR_G)) if meta is not None else FROM_SCRATCH_LR_G
    if lr_d is None:
        lr_d = float(meta.get("train", {}).get("lr_d", PAPER_LR_D)) if meta is not None else FROM_SCRATCH_LR_D
    # The region term as the model was meta-learned with it (none where the checkpoint records none);
    # from scratch, the default for appearance generators, whose job those regions are.
    if meta is not None:
        region_weight = float(meta.get("train", {}).get("region_weight", 0.0))
    else:
        region_weight = REGION_WEIGHT if cfg.takes_warp else 0.0
    dev = resolve_device(o.device)
    if dev.type == "cpu":
        torch.set_num_threads(o.threads or cpu_threads())

    torch.manual_seed(o.seed)
    rng = np.random.default_rng(o.seed)
    E = Embedder(cfg)
    G = Generator(cfg)
    D = Discriminator(cfg, num_videos=int(meta["num_videos"]) if meta is not None else 1)
    if meta is not None:
        E.load_state_dict(meta["embedder"])
        G.load_state_dict(meta["generator"])
        D.load_state_dict(meta["discriminator"])
    E, G, D = E.to(dev).eval(), G.to(dev), D.to(dev)

    batches = Batches(frames_bgr, landmarks, S, augment and steps > 0, rng, cfg.takes_warp)
    x_all, y_all = batches.x.to(dev), batches.y.to(dev)
    with torch.no_grad():
        e_hat = E(x_all, y_all).mean(0, keepdim=True)  # (1, emb_dim): the person's embedding
        psi = nn.Parameter(G.psi_from_embedding(e_hat).detach().clone())
        w = nn.Parameter(discriminator_start(D, e_hat, meta is not None))
    del E  # E only initialises psi' and w'

    content_loss = _content_loss(o.content, o.vgg19, o.vggface).to(dev) if steps > 0 else None
    from puppet.training.train import BETAS

    opt_g = torch.optim.Adam([*G.parameters(), psi], lr=lr_g, betas=BETAS)
    opt_d = torch.optim.Adam([*D.parameters(), w], lr=lr_d, betas=BETAS)

    from tqdm import tqdm

    losses = {}
    G.train()
    D.train()
    bar = tqdm(range(steps), desc="fine-tune", unit="step", disable=not o.progress or steps == 0,
               dynamic_ncols=True)
    for _ in bar:
        x, y, warped, region = batches.sample(o.batch_size)
        x, y, region = x.to(dev), y.to(dev), region.to(dev)
        warped = warped.to(dev) if warped is not None else None
        B = x.shape[0]
        # G step: the meta-learning objective with w' in place of W_i (models.losses.generator_losses)
        fake = G(y, psi.expand(B, -1), warped)
        terms = generator_losses(D if o.adversarial else None, content_loss, fake, x, y, w=w.expand(B, -1),
                                 region=region, region_weight=region_weight)
        opt_g.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt_g.step()
        losses = {"content": terms["content"].item(), "g": terms["total"].item()}
        if o.adversarial:
            # D steps: hinge on the real frames and G's (detached) outputs
            for _ in range(D_STEPS):
                d_terms = discriminator_losses(D, fake, x, y, w=w)
                opt_d.zero_grad(set_to_none=True)
                d_terms["total"].backward()
                opt_d.step()
            losses.update({"d": d_terms["total"].item(), "d_margin": float(d_terms["margin"])})
        bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
    bar.close()

    G_out = copy.deepcopy(G).cpu().eval()
    remove_spectral_norm(G_out)
    ref = 0
    extra = len(frames_bgr) > 1 and cfg.takes_warp  # every frame a reference, the nearest warped
    info = make_metadata(
        sources or [f"frame{i}" for i in range(len(frames_bgr))],
        steps,
        frames=len(frames_bgr),
        augment=augment,
        checkpoint=str(checkpoint) if isinstance(checkpoint, (str, Path)) else None,
        from_scratch=meta is None,
        content=o.content,
        adversarial=bool(o.adversarial),
        region_weight=region_weight,
        lr_g=float(lr_g),
        lr_d=float(lr_d),
        batch_size=int(o.batch_size),
        seed=int(o.seed),
        device=str(dev),
        final_losses=losses,
        seconds=round(time.time() - t0, 2),
    )
    return Target(
        config=cfg,
        generator={k: v.detach().clone() for k, v in G_out.state_dict().items()},
        psi=psi.detach().cpu().clone(),
        ref_landmarks=np.asarray(landmarks[ref], dtype=np.float32).copy(),
        ref_image=np.ascontiguousarray(frames_bgr[ref]).copy(),
        extra_images=np.stack(frames_bgr[1:]).copy() if extra else None,
        extra_landmarks=np.stack(landmarks[1:]).astype(np.float32) if extra else None,
        meta=info,
        picture=picture,
        crop_box=crop_box,
        face_size=default_face_size(cfg, picture),
    )


# ------------------------------------------------------------------------------------------------- CLI
def _parser() -> Parser:
    p = Parser(
        prog="python -m puppet.finetune",
        description="Fine-tune a talking-head generator on photos (or a clip) of one person -> target file.",
    )
    p.add_argument("photos", nargs="*", metavar="PHOTO", help="photos of the person (T = their number)")
    p.add_argument("--video", metavar="CLIP", help="take the frames from this clip instead of photos")
    p.add_argument("--frames", type=int, default=8, metavar="T",
                   help="frames to take from --video (default 8)")
    p.add_argument("--out", required=True, metavar="FILE", help="the target file to write (e.g. mona.pt)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", metavar="META",
                     help="meta-learned checkpoint (meta.pt) to start from (default: the one puppet ships)")
    src.add_argument("--from-scratch", action="store_true", help="no meta checkpoint: random E, G, D")
    p.add_argument("--config", choices=sorted(CONFIGS), help="networks, with --from-scratch")
    p.add_argument("--steps", type=int, default=None,
                   help=f"fine-tuning steps (default from a checkpoint: {DEFAULT_STEPS_META} for one photo, "
                        f"{DEFAULT_STEPS_FEW_SHOT} for several; "
                        f"{DEFAULT_STEPS_SCRATCH} from scratch; 0: the feed-forward model)")
    p.add_argument("--no-augment", action="store_true",
                   help="train on the frames only, no warps of them (the default for several photos)")
    p.add_argument("--content-only", action="store_true",
                   help="G on the content loss alone: no discriminator, adversarial or feature-matching term")
    p.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    p.add_argument("--lr", type=float, default=None,
                   help=f"G learning rate (default: the meta-learned model's own, the paper's {PAPER_LR_G:g} "
                        f"when it doesn't say; {FROM_SCRATCH_LR_G:g} "
                        f"from scratch)")
    p.add_argument("--lr-d", type=float, default=None,
                   help=f"D learning rate (default: the meta-learned model's own, else {PAPER_LR_D:g})")
    p.add_argument("--content", choices=CONTENT_CHOICES, default="auto",
                   help="content loss: auto (default: vgg where its weights are found, else face), vgg (the "
                        "paper's VGG19+VGGFace), face (the vendored face-recognition net), l1 (pixels)")
    p.add_argument("--vgg19", metavar="PATH|random", default=None, help="VGG19 weights (default: the cache)")
    p.add_argument("--vggface", metavar="PATH|random", default=None,
                   help="VGGFace weights (default: the cache)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: one per idle core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from puppet.files import check_output

    check_output(args.out, [*args.photos, args.video, args.checkpoint, args.vgg19, args.vggface])
    for p in [*args.photos, args.video]:
        if p is not None and Path(p).is_dir():
            raise PuppetError(f"{p}: is a folder, not a photo or clip; pass the files in it, e.g. {p}/*.jpg")
    if bool(args.photos) == bool(args.video):
        raise PuppetError("finetune: give either photos or --video CLIP; e.g. "
                          "`python -m puppet.finetune mona.jpg --out mona.pt --from-scratch --config tiny`")
    if args.steps is not None and args.steps < 0:
        raise PuppetError(f"--steps {args.steps}: must be >= 0")
    if args.frames < 1:
        raise PuppetError(f"--frames {args.frames}: must be >= 1")
    if args.from_scratch and args.config is None:
        raise PuppetError("--from-scratch: needs --config tiny|small|cpu|paper")
    if args.from_scratch and args.steps == 0:
        log.warning("--from-scratch with --steps 0: the generator is untrained noise")
    from models.config import get_config
    from puppet.training.checkpoint import shipped_meta

    checkpoint = None if args.from_scratch else (args.checkpoint or shipped_meta())
    meta = _load_checkpoint(checkpoint) if checkpoint else None
    if meta is not None and args.config is not None and get_config(args.config) != get_config(meta["config"]):
        diff = _config_diff(get_config(args.config), get_config(meta["config"]))
        raise PuppetError(f"--config {args.config}: differs from {checkpoint}'s config "
                          f"'{get_config(meta['config']).name}' ({diff}); leave --config out, "
                          f"or add --from-scratch")
    S = get_config(meta["config"] if meta is not None else args.config).image_size
    if args.video:
        crops, lms, sources, (picture, box) = load_video_frames(args.video, args.frames, S)
    else:
        crops, lms, sources, (picture, box) = load_photos(args.photos, S)
    log.info("fine-tuning on %d frame(s) at %dx%d from %s", len(crops), S, S,
             checkpoint if checkpoint else "scratch")
    options = FinetuneOptions(
        steps=args.steps, augment=False if args.no_augment else None, batch_size=args.batch, lr_g=args.lr,
        lr_d=args.lr_d,
        content=args.content, vgg19=args.vgg19, vggface=args.vggface, adversarial=not args.content_only,
        device=args.device, seed=args.seed, threads=args.threads, progress=not args.quiet)
    target = finetune(crops, lms, None if meta is not None else args.config, checkpoint=meta, options=options,
                      sources=sources, picture=picture, crop_box=box)
    if checkpoint:
        target.meta["checkpoint"] = str(checkpoint)
    save_target(args.out, target)
    log.info("wrote %s (%.1f s)", args.out, target.meta["seconds"])
    return 0


if __name__ == "__main__":
    run_cli(main)

"""Meta-learning (paper section 3.2): a prepared dataset -> meta.pt (E, G with P, D with W).

    python -m puppet.train --data DATA --config NAME --out meta.pt      (--help lists the options)
    torchrun --nproc_per_node N -m puppet.train ...        (and multi-node: torchrun's --nnodes/--rdzv_*)

Each step, per video i of the batch: K frames and their sketches go to the embedder, e_hat_i = mean of
E(x_k, y_k); the generator draws a different frame t of the same video (never one of the K) from its sketch
with psi = P e_hat_i (an appearance generator also gets the first of the K frames warped to frame t's
landmarks). E, G and P minimise content + adversarial (-D) + feature matching + embedding match
|W_i - e_k| over the K frames; D minimises the hinge loss alone. Weights of every term: models.losses.
Adam, lr 5e-5 for E/G, 2e-4 for D.

Choices the paper leaves open, and where this follows the authors' code over the paper's text:
- Adam's betas: PyTorch's defaults (0.9, 0.999), as in the public reproductions (the paper names none).
- D steps per E/G step: 2 (--d-steps), as both public reproductions do.
- The embedding match trains E only (W detached), per frame, as in the authors' code: D minimises only its
  hinge loss. Moving W with it drags W to 0 together with the embeddings (models.losses).
- The unit of W is the video (--group folder, the default): a folder of clips is one row. Files directly in
  DATA and synthetic clips are rows of their own.
- Content loss (--content): the paper's VGG19 + VGGFace where their weight files are found, else the
  vendored face-recognition net's features and identity (models.losses.make_content_loss): perceptual either
  way, no download needed.

Scale: under torchrun every rank runs this same script; E+G and D are DistributedDataParallel (NCCL on GPU,
gloo on CPU); each rank takes its own share of every epoch's shuffled videos (puppet.data.EpochSampler, split
like torch's DistributedSampler). D's W is an nn.Embedding (dense gradients) inside the DDP'd D, so every
rank's W_i gradients are all-reduced and W stays identical everywhere. Mixed precision on GPU (bf16 where
supported, else fp16 with loss scaling).

Checkpoints (rank 0, every --ckpt-every steps and at the end) go to --out atomically; they hold plain tensors
and values only (weights_only loadable), including both optimisers, the loss scalers and the RNG states.
--resume continues from --out exactly: same step, optimiser state, RNG and data order (the data order is a
function of seed, epoch and step), so an interrupted run (even by kill -9) ends with the weights an
uninterrupted one would have. SIGTERM/SIGINT save a checkpoint at the end of the current step and stop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from models.config import CONFIGS, ModelConfig, get_config
from models.losses import CONTENT_KINDS, REGION_WEIGHT
from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.faces.images import from_uint8
from puppet.training.checkpoint import FORMAT, VERSION, load_meta, rng_state, set_rng_state, weights_digest
from puppet.training.dist import Dist

log = logging.getLogger(__name__)

LR_EG = 5e-5  # the paper's learning rate for E and G (and P)
LR_D = 2e-4  # the paper's learning rate for D
BETAS = (0.9, 0.999)  # PyTorch's defaults: the paper doesn't name any; public reproductions use these
D_STEPS = 2  # D updates per E/G update, as in the public reproductions


# ------------------------------------------------------------------------------------------ the networks


class MetaEG(nn.Module):
    """E and G (with P) as one module, so that DDP sees one forward per step: (frames, sketches of the K
    frames, target sketch[, warped reference]) -> (generated target frame, per-frame embeddings (B, K, C))."""

    def __init__(self, E: nn.Module, G: nn.Module):
        super().__init__()
        self.E, self.G = E, G

    def forward(self, x: torch.Tensor, y: torch.Tensor, y_t: torch.Tensor,
                warped: torch.Tensor | None = None):
        e_frames = self.E.frame_embeddings(x, y)  # (B, K, 3, S, S) -> (B, K, emb_dim)
        e_hat = e_frames.mean(dim=1)  # the video's embedding: the mean over its K frames
        return self.G(y_t, self.G.psi_from_embedding(e_hat), warped), e_frames


def _unwrap(m: nn.Module) -> nn.Module:
    return getattr(m, "module", m)


# ------------------------------------------------------------------------------------------ the command


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="python -m puppet.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a prepared dataset folder (python -m puppet.prepare)")
    p.add_argument("--config", help=f"{'|'.join(CONFIGS)} (new runs; --resume takes the checkpoint's)")
    p.add_argument("--image-size", type=int, help="override the config's image_size (e.g. 32: smoke tests)")
    p.add_argument("--out", required=True, help="the checkpoint meta.pt (written every --ckpt-every steps)")
    p.add_argument("--steps", type=int, default=100_000, help="total steps to train to (default 100000)")
    p.add_argument("--resume", action="store_true", help="continue from --out where it stopped")
    p.add_argument("--init", metavar="META",
                   help="a new run starting from this meta-learned model's weights (e.g. the shipped form of "
                        "an earlier run): its config; fresh optimisers, step 0, a fresh W for this dataset")
    p.add_argument("--batch", type=int, default=None, help="videos per step per rank (default 2; 8 on GPU)")
    p.add_argument("--K", type=int, help="frames per video for the embedder (default: the paper's 8)")
    p.add_argument("--group", choices=("clip", "folder"),
                   help="what one video is: a folder of clips (default; VoxCeleb2's speaker/video/*.mp4: the "
                        "paper's unit, one W row per YouTube video), or each prepared clip")
    p.add_argument("--content", choices=CONTENT_KINDS,
                   help="content loss: auto (default: vgg where both VGG weight files are found, else "
                        "face), vgg (the paper's), face (the vendored face-recognition net), l1 (pixels)")
    p.add_argument("--ckpt-every", type=int, default=1000, help="steps between checkpoints (default 1000)")
    p.add_argument("--logdir", help="TensorBoard folder (default: --out with .tb instead of .pt)")
    p.add_argument("--seed", type=int, help="seed of the initial weights and the data order (default 0)")
    p.add_argument("--vgg19", help="VGG19 weights file (torchvision's ImageNet), or 'random' (tests only)")
    p.add_argument("--vggface", help="VGGFace weights file (vgg_face_dag.pth), or 'random' (tests only)")
    p.add_argument("--lr-g", type=float, help=f"E/G learning rate (default: the paper's {LR_EG})")
    p.add_argument("--lr-d", type=float, help=f"D learning rate (default: the paper's {LR_D})")
    p.add_argument("--d-steps", type=int, help=f"D updates per E/G update (default {D_STEPS})")
    p.add_argument("--region-weight", type=float,
                   help=f"weight of the pixel L1 inside the mouth and eye regions (default {REGION_WEIGHT} "
                        f"for appearance configs, 0 for the paper's pure generator)")
    p.add_argument("--contrast", type=float,
                   help="share of samples whose target frame differs most from the reference in how open the "
                        "eyes and mouth are (default 0.5 for appearance configs, else 0: random pairs)")
    p.add_argument("--minutes", type=float,
                   help="wall-clock budget: checkpoint and stop after this many minutes (--resume continues)")
    p.add_argument("--ship-to", help="also write the shipped form (fp16 weights, puppet.training.ship) here, "
                                     "every --ship-every minutes and at the end")
    p.add_argument("--ship-every", type=float, default=1.0,
                   help="minutes between shipped-form writes (default 1)")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default="auto",
                   help="mixed precision (auto: bf16 on GPUs that have it, else fp16; off on CPU)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N (torchrun: one GPU per rank)")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads per rank (default: torch's choice on GPU machines, 1 per rank on "
                        "CPU: small convolutions on a busy CPU are many times slower with more)")
    p.add_argument("--workers", type=int, default=2, help="data loader processes per rank (0: in-process)")
    p.add_argument("--log-every", type=int, default=10, help="steps between logged losses (default 10)")
    p.add_argument("--image-every", type=int, default=500, help="steps between TensorBoard image grids")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    for name in ("steps", "K", "ckpt_every", "log_every", "image_every", "d_steps"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            raise PuppetError(f"--{name.replace('_', '-')} {getattr(a, name)}: must be at least 1")
    if a.batch is not None and a.batch < 1:
        raise PuppetError(f"--batch {a.batch}: must be at least 1")
    if a.workers < 0:
        raise PuppetError(f"--workers {a.workers}: must be 0 or more")
    for name in ("minutes", "ship_every"):
        if getattr(a, name) is not None and getattr(a, name) <= 0:
            raise PuppetError(f"--{name.replace('_', '-')} {getattr(a, name)}: must be more than 0")
    if a.region_weight is not None and a.region_weight < 0:
        raise PuppetError(f"--region-weight {a.region_weight}: must be 0 or more")
    if a.contrast is not None and not 0 <= a.contrast <= 1:
        raise PuppetError(f"--contrast {a.contrast}: must be between 0 and 1")
    if a.init and a.resume:
        raise PuppetError("--init: starts a new run; leave it out with --resume")
    if not a.resume and a.config is None and not a.init:
        raise PuppetError("--config: needed for a new run (tiny|small|cpu|paper); or pass --resume")
    return a


def _amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for float32. auto: bf16 on GPUs that have it, else fp16; float32 on CPU.
    An explicit bf16/fp16 is honoured on CPU too (slow there; it exercises the same code path)."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _image_grid(y_t: torch.Tensor, x_t: torch.Tensor, fake: torch.Tensor, n: int = 4) -> torch.Tensor:
    """(3, H, W) in [0, 1]: one row per sample, sketch | real | generated."""
    rows = [torch.cat([y_t[k], x_t[k], fake[k]], dim=2) for k in range(min(n, len(fake)))]
    return ((torch.cat(rows, dim=1).detach().float().cpu() + 1) / 2).clamp(0, 1)


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    from puppet.files import check_output

    check_output(a.out, [a.data, a.vgg19, a.vggface])
    dist_ = Dist(a.device)
    try:
        return _train(a, dist_)
    finally:
        dist_.close()


@dataclass(frozen=True)
class Settings:
    """What a run trains with beyond its networks: each the flag given, else the resumed checkpoint's (its
    "train" record), else the default (`settings`)."""

    seed: int
    K: int
    lr_g: float
    lr_d: float
    d_steps: int
    content: str
    group: str
    region_weight: float
    contrast: float
    batch: int


def settings(a: argparse.Namespace, old: dict, takes_warp: bool, resumed: bool, cuda: bool) -> Settings:
    """The run's Settings from the command's flags and `old`, the checkpoint's record (empty for a new run).
    The region term and contrast pairs are on by default for a new run of an appearance config; a resumed
    run without them in its record trained without them."""
    region, contrast = (REGION_WEIGHT, 0.5) if takes_warp and not resumed else (0.0, 0.0)
    defaults = {"seed": 0, "K": 8, "lr_g": LR_EG, "lr_d": LR_D, "d_steps": D_STEPS, "content": "auto",
                "group": "folder", "region_weight": region, "contrast": contrast, "batch": 8 if cuda else 2}
    given = {k: getattr(a, k) for k in defaults}
    return Settings(**{k: given[k] if given[k] is not None else old.get(k, v) for k, v in defaults.items()})


@dataclass
class Run:
    """Everything a training run holds: what a checkpoint saves and the loop steps."""

    a: argparse.Namespace
    s: Settings
    d: Dist
    cfg: ModelConfig
    data: object  # puppet.data.dataset.VideoDataset
    eg: nn.Module  # MetaEG, DDP-wrapped under torchrun
    D: nn.Module
    content: nn.Module
    opt_eg: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_eg: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    step: int = 0

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.d.device.type, dtype=self.amp_dtype)


def _resume_checkpoint(a: argparse.Namespace) -> dict | None:
    out = Path(a.out)
    if not a.resume:
        if out.exists():
            raise PuppetError(f"{out}: exists; pass --resume to continue it, or another --out")
        return None
    if not out.is_file():
        raise PuppetError(f"{out}: no checkpoint to resume; run without --resume to start training")
    ckpt = load_meta(out)
    if "opt_eg" not in ckpt:
        raise PuppetError(f"{out}: holds weights only (no optimiser state), so it can't be resumed; "
                          f"start a new run with another --out")
    return ckpt


def _run_config(a: argparse.Namespace, ckpt: dict | None) -> ModelConfig:

    out = Path(a.out)
    if ckpt is None:
        cfg = get_config(a.config)
        if a.image_size:
            return cfg.replace(image_size=a.image_size)  # validated: it must suit the widths
        return cfg
    cfg = get_config(ckpt["config"])
    if a.config is not None and get_config(a.config).name != cfg.name:
        raise PuppetError(f"--config {a.config}: differs from {a.init or out}'s config '{cfg.name}'; "
                          f"leave --config out with --resume or --init")
    if a.image_size and a.image_size != cfg.image_size:
        raise PuppetError(f"--image-size {a.image_size}: {a.init or out} was trained at {cfg.image_size}; "
                          f"leave --image-size out with --resume or --init")
    return cfg


def _setup(a: argparse.Namespace, d: Dist) -> Run:
    """Config, data, networks, optimisers: new, or exactly as the checkpoint left them (--resume)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from models.discriminator import Discriminator
    from models.embedder import Embedder
    from models.generator import Generator
    from models.losses import make_content_loss
    from puppet.data.dataset import VideoDataset

    ckpt = _resume_checkpoint(a)
    init = load_meta(a.init) if a.init else None
    # --init with --config: that config (its weights must fit the model's: e.g. a new `correction`).
    cfg = _run_config(a, ckpt or (init if a.config is None else None))
    old = ckpt["train"] if ckpt else {}
    s = settings(a, old, cfg.takes_warp, ckpt is not None, d.device.type == "cuda")
    torch.set_num_threads(a.threads or (1 if d.device.type == "cpu" else torch.get_num_threads()))

    # The content loss first: missing weights are the most likely setup error, and the cheapest to find.
    # (Seeded: "random" VGGs must be the same on every rank and in a resumed run.)
    torch.manual_seed(s.seed)
    content = make_content_loss(s.content, a.vgg19, a.vggface).to(d.device)
    data = VideoDataset(a.data, cfg.image_size, K=s.K, seed=s.seed, group=s.group, warped=cfg.takes_warp,
                        regions=s.region_weight > 0, contrast=s.contrast, uint8=True)
    if ckpt is not None:
        same = ckpt.get("data_fingerprint") in (None, data.fingerprint())
        if int(ckpt["num_videos"]) != len(data) or not same:
            raise PuppetError(f"{a.data}: not the dataset {a.out} was trained on ({len(data)} videos now, "
                              f"{ckpt['num_videos']} then); resume with the same --data, or start a new run")

    torch.manual_seed(s.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    E, G, D = Embedder(cfg), Generator(cfg), Discriminator(cfg, num_videos=len(data))
    if ckpt is not None:
        E.load_state_dict(ckpt["embedder"])
        G.load_state_dict(ckpt["generator"])
        D.load_state_dict(ckpt["discriminator"])
    elif init is not None:  # W is per video of that run's data: this dataset's rows start fresh
        if d.main:
            log.info("starting from the weights of %s (its step %d)", a.init, int(init.get("step", 0)))
        try:
            E.load_state_dict(init["embedder"])
            G.load_state_dict(init["generator"])
            D.load_state_dict({k: v for k, v in init["discriminator"].items() if k != "W.weight"},
                              strict=False)
        except RuntimeError:
            raise PuppetError(f"--init {a.init}: its weights don't fit config '{cfg.name}' (config "
                              f"'{init['config'].get('name')}'); leave --config out") from None
    eg = MetaEG(E, G).to(d.device).train()
    D = D.to(d.device).train()
    opt_eg = torch.optim.Adam(eg.parameters(), lr=s.lr_g, betas=BETAS)
    opt_d = torch.optim.Adam(D.parameters(), lr=s.lr_d, betas=BETAS)
    amp_dtype = _amp(a.amp, d.device)
    use_scaler = amp_dtype == torch.float16  # fp16 only: bf16 needs no loss scaling
    scaler_eg = torch.amp.GradScaler(d.device.type, enabled=use_scaler)
    scaler_d = torch.amp.GradScaler(d.device.type, enabled=use_scaler)
    step = 0
    if ckpt is not None:
        opt_eg.load_state_dict(ckpt["opt_eg"])
        opt_d.load_state_dict(ckpt["opt_d"])
        for g in opt_eg.param_groups:
            g["lr"] = s.lr_g
        for g in opt_d.param_groups:
            g["lr"] = s.lr_d
        if use_scaler and ckpt.get("scaler_eg"):
            scaler_eg.load_state_dict(ckpt["scaler_eg"])
            scaler_d.load_state_dict(ckpt["scaler_d"])
        step = int(ckpt["step"])
        changed = (old["batch"], old["world_size"], old["seed"], old["K"]) != (s.batch, d.world, s.seed, s.K)
        if changed and d.main:
            log.warning("resuming with batch %d, %d ranks, seed %d, K %d (the run used %d, %d, %d, %d): "
                        "training goes on, but not with the data order an uninterrupted run would have had",
                        s.batch, d.world, s.seed, s.K, old["batch"], old["world_size"], old["seed"], old["K"])
        set_rng_state(ckpt["rng"])
    if d.enabled:
        # find_unused_parameters stays off: every parameter takes part in every forward.
        ids = [d.device.index] if d.device.type == "cuda" else None
        eg = DDP(eg, device_ids=ids)
        D = DDP(D, device_ids=ids)
    return Run(a, s, d, cfg, data, eg, D, content, opt_eg, opt_d, scaler_eg, scaler_d, amp_dtype, step)


def _loader(r: Run):
    from torch.utils.data import DataLoader

    from puppet.data.dataset import EpochSampler

    per_rank = math.ceil(len(r.data) / r.d.world)
    epoch, start = EpochSampler.position(r.step, r.s.batch, per_rank)
    sampler = EpochSampler(len(r.data), rank=r.d.rank, world_size=r.d.world, seed=r.s.seed, epoch=epoch,
                           start=start)
    workers = r.a.workers
    return DataLoader(r.data, batch_size=r.s.batch, sampler=sampler, num_workers=workers,
                      pin_memory=r.d.device.type == "cuda", persistent_workers=workers > 0,
                      prefetch_factor=4 if workers > 0 else None, worker_init_fn=_quiet_worker)


def _eg_step(r: Run, b: dict) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """E, G (and P): content + adversarial + feature matching + embedding match. D's parameters get
    gradients here too; they stay local (no_sync) and are dropped before D's own step."""
    from models.losses import generator_losses

    r.opt_eg.zero_grad(set_to_none=True)
    no_sync = r.D.no_sync() if r.d.enabled else contextlib.nullcontext()
    with no_sync:
        with r.autocast():
            fake, e_frames = r.eg(b["x"], b["y"], b["y_t"], b.get("warped"))
            terms = generator_losses(r.D, r.content, fake, b["x_t"], b["y_t"], i=b["i"], e_frames=e_frames,
                                     region=b.get("region"), region_weight=r.s.region_weight)
        r.scaler_eg.scale(terms["total"]).backward()
    r.scaler_eg.step(r.opt_eg)
    r.scaler_eg.update()
    return terms, fake.detach(), e_frames.detach()


def _d_steps(r: Run, b: dict, fake: torch.Tensor) -> dict:
    """D: the hinge loss on real vs generated, --d-steps times (one forward of both per step, so DDP sees
    one forward per backward). Returns the last step's hinge and mean scores."""
    from models.losses import hinge_d_loss

    i, n = b["i"], len(b["i"])
    for _ in range(r.s.d_steps):
        r.opt_d.zero_grad(set_to_none=True)
        with r.autocast():
            score, _ = r.D(torch.cat([b["x_t"], fake]), torch.cat([b["y_t"], b["y_t"]]), i=torch.cat([i, i]))
            score_real, score_fake = score[:n].float(), score[n:].float()
            hinge = hinge_d_loss(score_real, score_fake)
        r.scaler_d.scale(hinge).backward()
        r.scaler_d.step(r.opt_d)
        r.scaler_d.update()
    return {"d_hinge": float(hinge.detach()), "d_real": float(score_real.mean().detach()),
            "d_fake": float(score_fake.mean().detach()),
            "d_margin": float((score_real - score_fake).mean().detach())}


def embedding_stats(e_frames: torch.Tensor) -> dict:
    """How alive the embedding is: the fraction of non-zero entries of the videos' e_hat, their mean |e|,
    and the mean distance between different videos' e_hat relative to their size (0: all alike)."""
    e_hat = e_frames.float().mean(dim=1)
    size = float(e_hat.abs().mean())
    spread = float(torch.pdist(e_hat).mean() / (e_hat.norm(dim=1).mean() + 1e-8)) if len(e_hat) > 1 else 0.0
    return {"emb_nonzero": float((e_hat.abs() > 1e-6).float().mean()), "emb_abs": size, "emb_spread": spread}


def _train(a: argparse.Namespace, d: Dist) -> int:
    from puppet.files import torch_save_atomic

    r = _setup(a, d)
    out = Path(a.out)
    it = iter(_loader(r))
    writer, log_file, bar = None, None, None
    logdir = Path(a.logdir) if a.logdir else out.with_suffix(".tb")
    if d.main:
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        writer = SummaryWriter(str(logdir))
        log_file = open(logdir / "losses.jsonl", "a", encoding="utf-8")
        bar = tqdm(total=a.steps, initial=min(r.step, a.steps), unit="step", dynamic_ncols=True, desc="train",
                   disable=a.no_progress)
        amp_name = f", {str(r.amp_dtype).split('.')[-1]}" if r.amp_dtype else ""
        log.info("%d videos, config %s (%d px), content %s, batch %d x %d rank(s), K %d, %s%s, "
                 "steps %d -> %d",
                 len(r.data), r.cfg.name, r.cfg.image_size, type(r.content).__name__, r.s.batch, d.world,
                 r.s.K, d.device, amp_name, r.step, a.steps)

    def save() -> None:
        if d.main:
            torch_save_atomic(_checkpoint(r), out)

    def ship() -> None:  # the small fp16 form, so that a run cut short still leaves a usable model
        if d.main and a.ship_to:
            from puppet.training.ship import shipped

            torch_save_atomic(shipped(_checkpoint(r, optimisers=False)), a.ship_to)

    stop = {"flag": False}

    def on_signal(signum, frame):  # finish the step, checkpoint, stop (all ranks at the same step)
        stop["flag"] = True

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    t_last = t_start = time.time()
    next_ship = t_start + a.ship_every * 60
    try:
        while r.step < a.steps:
            b = {k: v.to(d.device, non_blocking=True) for k, v in next(it).items()}
            b = {k: from_uint8(v) if v.dtype == torch.uint8 else v for k, v in b.items()}  # the images
            terms, fake, e_frames = _eg_step(r, b)
            d_vals = _d_steps(r, b, fake)
            r.step += 1
            if d.main:
                bar.update(1)
                if r.step % a.log_every == 0 or r.step == a.steps:
                    now = time.time()
                    vals = {k: float(v.detach()) for k, v in terms.items()}
                    vals.update(d_vals)
                    vals.update(embedding_stats(e_frames))
                    vals["sec_per_step"] = (now - t_last) / a.log_every
                    t_last = now
                    for k, v in vals.items():
                        group = "d" if k.startswith("d_") else "emb" if k.startswith("emb_") else "eg"
                        writer.add_scalar(f"{group}/{k}", v, r.step)
                    log_file.write(json.dumps({"step": r.step, **vals}) + "\n")
                    log_file.flush()
                    bar.set_postfix({"cnt": f"{vals['content']:.3f}", "adv": f"{vals['adv']:.2f}",
                                     "fm": f"{vals['fm']:.2f}", "margin": f"{vals['d_margin']:.2f}"},
                                    refresh=False)
                if r.step % a.image_every == 0 or r.step == 1:
                    writer.add_image("samples/sketch_real_generated", _image_grid(b["y_t"], b["x_t"], fake),
                                     r.step)
            if r.step % a.ckpt_every == 0 and r.step < a.steps:
                save()
            if a.ship_to and time.time() >= next_ship:
                ship()
                next_ship = time.time() + a.ship_every * 60
            if a.minutes is not None and time.time() - t_start >= a.minutes * 60:
                stop["flag"] = True
            if d.any(stop["flag"]):
                break
        save()
        ship()
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)
        if d.main:
            bar.close()
            writer.close()
            log_file.close()

    eg, D = _unwrap(r.eg), _unwrap(r.D)
    digest = weights_digest(eg.E.state_dict(), eg.G.state_dict(), D.state_dict())
    # Every rank reports its own weights' digest: the ranks of a healthy DDP run print the same one.
    print(f"rank {d.rank}/{d.world}: step {r.step}, weights sha256 {digest}", file=sys.stderr, flush=True)
    if d.main:
        msg = "stopped" if r.step < a.steps else "done"
        log.info("%s at step %d; checkpoint %s%s", msg, r.step, out,
                 "; rerun with --resume to continue" if r.step < a.steps else "")
    return 0


def _quiet_worker(_worker_id: int) -> None:
    """Data workers ignore Ctrl-C and SIGTERM: the main process decides when to stop (after a checkpoint),
    and shuts them down itself. One thread each: many workers with a thread pool per core each would fight
    over the cores (OpenCV's decode and warp, torch's conversions)."""
    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _checkpoint(r: Run, optimisers: bool = True) -> dict:
    """What --out holds: the weights, and (optimisers=True) everything --resume needs."""
    eg, D, a = _unwrap(r.eg), _unwrap(r.D), r.a
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "config": r.cfg.to_dict(),
        "num_videos": len(r.data),
        "data_fingerprint": r.data.fingerprint(),
        "step": int(r.step),
        "embedder": eg.E.state_dict(),
        "generator": eg.G.state_dict(),
        "discriminator": D.state_dict(),
        "train": {**asdict(r.s), "world_size": int(r.d.world), "data": str(a.data)},
    }
    if optimisers:
        ckpt.update({"opt_eg": r.opt_eg.state_dict(), "opt_d": r.opt_d.state_dict(),
                     "scaler_eg": r.scaler_eg.state_dict(), "scaler_d": r.scaler_d.state_dict(),
                     "rng": rng_state()})
    return ckpt


if __name__ == "__main__":
    run_cli(main)

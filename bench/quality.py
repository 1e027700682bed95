"""Self-reenactment quality, the paper's protocol, on one clip or a corpus of clips, scored at 256x256:

    python -m bench.quality (--corpus DIR [--split dev_eval] | --clip CLIP [--clip CLIP ...])
        [--frames 1,8] [--steps 0,20] [--config cpu-warp] [--checkpoint meta.pt|scratch ...]
        [--baselines-only] [--eval-frames 16] [--seed 0] [--threads 1] [--json out.json] [--save DIR]
    python -m bench.quality --cross ...   # cross-reenactment: see bench/cross.py
    python -m bench.quality --face-size 512 ...   # at the size the face is shown: bench/quality_size.py

Each clip is tracked (the shared tracker, video mode, every frame); frames without a face are left out. Face
frame 0 is the reference. Held-out frames: `--eval-frames` evenly spaced among the face frames after the
first max(--frames) ones (the same for every row, and for a `--baselines-only` run with the same --frames).

Every row is scored at EVAL_SIZE = 256: the real frames are cropped at 256 with the shared crop smoothed over
the clip (CropSmoother at each face frame's time, as puppet.faces.frames.crop_clip crops a clip for
meta-learning and fine-tuning and the live driver crops the camera; face frame 0's box is its own), and a
model's output at a smaller image size is upscaled bicubically to 256. Rows:
- `static`: the reference (face frame 0) for every held-out frame: learns nothing, moves nothing;
- `warp`: the reference warped piecewise-affinely to each held-out frame's landmarks (puppet.faces.warp.warp,
  at 256), no learning;
- `warp, nearest of T` (each T > 1 in --frames): of the first T face frames, the one nearest in shape to each
  held-out frame (as a few-shot target picks its reference live) warped to it, no learning: what having T
  references gives before any network; and its control `warp, frame T-1`: the last of those frames warped,
  the reference nearest in time to the held-out frames (how much of the gain is a later frame, not the
  choice by shape);
- a model row per (--checkpoint, T in --frames, steps in --steps): fine-tune (puppet.training.finetune) on
  the first T face frames cropped at the config's image size (an appearance config keeps them all as
  references and warps the nearest), then drive the person's generator with each held-out frame's
  landmarks (absolute: the clip's own, in the crop; an appearance generator also gets
  puppet.feed of them).
Metrics, per held-out frame and then averaged per clip:
- SSIM and PSNR against the real crop (bench.metrics, scikit-image);
- landmark NME: mediapipe (image mode) re-detects the output; its landmarks vs the driving landmarks, over the
  inter-ocular distance (outer eye corners). Frames where no face is found are counted (face-found rate),
  not scored. The `real` row re-detects the real crops: NME's floor (the tracker's own disagreement);
- CSIM: cosine between the vendored face-recognition net's descriptors (models.facerec, face-api's 128-d
  net) of models.losses.face_region(output) and face_region(real). Any two faces score ~0.86-0.88 with this
  net, same-person pairs ~0.96-0.975 (models/weights/FACE_RECOGNITION_CARD.md): read differences of a few
  hundredths as large.
- the same SSIM and PSNR, and L1 (mean absolute difference, 0..255), inside the mouth and inside the eyes:
  puppet.faces.regions.region_masks of the real frame's landmarks (the inner-lip polygon 60-67, the eye
  polygons 36-41 and 42-47, each dilated by a tenth of the inter-ocular distance so a closed mouth or eye
  keeps a region), where expression acts and the whole 256² crop hardly looks.
The table gives, per row, the mean ± std over clips of the per-clip means; --json keeps every clip's numbers
(and every frame's). FID is not computed: on 16 frames a clip it means nothing, and no Inception weights ship.
A run is deterministic for a fixed --seed and --threads (fine-tuning on the CPU).
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.corpus import CORPUS_CLIP, SPLIT_FILE, Clip, clip_names, corpus_clips, load_clip
from bench.metrics import nme, psnr, region_scores, ssim
from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.faces.regions import REGION_DILATE, region_masks
from puppet.files import write_json

log = logging.getLogger(__name__)

EVAL_SIZE = 256  # every row is scored at 256x256
SCRATCH = "scratch"  # --checkpoint scratch: fine-tune from randomly initialised networks of --config
STRIP_FRAMES = 6  # held-out frames in a --save strip
REGIONS = ("mouth", "eyes")  # puppet.faces.regions.region_masks
REGION_METRICS = tuple(f"{r}_{k}" for r in REGIONS for k in ("ssim", "psnr", "l1"))
CSIM_RANGE = "any two faces ~0.86-0.88, same person ~0.96-0.975 (FACE_RECOGNITION_CARD.md)"


# ------------------------------------------------------------------------------------------ metrics
class Scorer:
    """Scores outputs against real crops at EVAL_SIZE: SSIM, PSNR, NME (mediapipe re-detection), CSIM."""

    def __init__(self):
        from models.facerec import load_face_recognition
        from puppet.faces.track import Tracker

        self.tracker = Tracker(mode="image")
        self.facerec = load_face_recognition()  # the vendored weights; a one-line error if missing/altered

    def close(self) -> None:
        self.tracker.close()

    @torch.inference_mode()
    def descriptors(self, crops: list[np.ndarray]) -> torch.Tensor:
        from models.losses import face_region
        from puppet.faces.images import to_tensor

        x = to_tensor(np.stack(crops))
        return self.facerec.descriptor(face_region(x))

    def redetect(self, crop: np.ndarray) -> np.ndarray | None:
        pts = self.tracker(crop)
        return None if pts is None else np.asarray(pts, np.float32)

    def score(self, outputs: list[np.ndarray], reals: list[np.ndarray], driving: list[np.ndarray],
              real_desc: torch.Tensor) -> dict:
        """Per-frame values and the clip's means. NME is None for frames without a face found."""
        for o in outputs:
            if o.shape != (EVAL_SIZE, EVAL_SIZE, 3):
                raise ValueError(f"outputs are scored at {EVAL_SIZE}x{EVAL_SIZE}, got {o.shape}")
        ssims = [ssim(o, r) for o, r in zip(outputs, reals)]
        psnrs = [psnr(o, r) for o, r in zip(outputs, reals)]
        nmes = []
        for o, d in zip(outputs, driving):
            p = self.redetect(o)
            nmes.append(None if p is None else nme(p, d))
        csims = torch.nn.functional.cosine_similarity(self.descriptors(outputs), real_desc, dim=-1).tolist()
        found = [v for v in nmes if v is not None]
        finite = [v for v in psnrs if np.isfinite(v)]
        out = {
            "ssim": float(np.mean(ssims)),
            "psnr": float(np.mean(finite)) if finite else None,
            "nme": float(np.mean(found)) if found else None,
            "face_found": len(found) / len(outputs),
            "csim": float(np.mean(csims)),
            "frames": {"ssim": _round(ssims, 4), "psnr": _round(psnrs, 3), "nme": _round(nmes, 4),
                       "csim": _round(csims, 4)},
        }
        # The same pictures inside the mouth and the eyes, masked from the real frame's landmarks (which
        # drive the output): where expression acts and whole-face scores barely look.
        per = [(region_masks(d, EVAL_SIZE), o, r) for o, r, d in zip(outputs, reals, driving)]
        for region in REGIONS:
            vals = [region_scores(o, r, m[region]) for m, o, r in per]
            for k, nd in (("ssim", 4), ("psnr", 3), ("l1", 3)):
                v = [x[k] for x in vals]
                fin = [x for x in v if np.isfinite(x)]
                out[f"{region}_{k}"] = float(np.mean(fin)) if fin else None
                out["frames"][f"{region}_{k}"] = _round(v, nd)
        return out


def _round(values, nd):
    """Per-frame values for the JSON: rounded; None for no face found and for PSNR's inf (equal images)."""
    return [None if v is None or not np.isfinite(v) else round(float(v), nd) for v in values]


def to_eval_size(img: np.ndarray) -> np.ndarray:
    """An output at its config's size -> EVAL_SIZE (bicubic up; area down, should a config be larger)."""
    s = img.shape[0]
    if s == EVAL_SIZE:
        return img
    interp = cv2.INTER_CUBIC if s < EVAL_SIZE else cv2.INTER_AREA
    return cv2.resize(img, (EVAL_SIZE, EVAL_SIZE), interpolation=interp)


# ------------------------------------------------------------------------------------------ rows
@dataclass(frozen=True)
class ModelRow:
    source: str  # SCRATCH or a checkpoint path
    T: int
    steps: int

    def label(self, names: dict[str, str]) -> str:
        return names[self.source]

    def slug(self, names: dict[str, str]) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{names[self.source]}_T{self.T}_steps{self.steps}")


def generate(target, driving: list[np.ndarray]) -> list[np.ndarray]:
    """The person's generator driven by landmarks in its crop (config size): uint8 BGR at the config's size.
    An appearance generator also gets the reference warped to the landmarks (as the live loop feeds it)."""
    from puppet.faces.images import to_bgr
    from puppet.feed import Feeder

    pg = target.person_generator("cpu")
    feeder = Feeder(target)
    out = []
    with torch.inference_mode():
        for d in driving:
            out.append(to_bgr(pg(*feeder(d).tensors)[0]))
    return out


def warp_baseline(ref: np.ndarray, ref_lms: np.ndarray, driving: list[np.ndarray]) -> list[np.ndarray]:
    """The reference warped piecewise-affinely to each set of driving landmarks (no learning)."""
    from puppet.faces.warp import warp

    return [ref.copy() if np.array_equal(d, ref_lms) else warp(ref, ref_lms, d) for d in driving]


def nearest_warp_baseline(refs: list[tuple[np.ndarray, np.ndarray]],
                          driving: list[np.ndarray]) -> list[np.ndarray]:
    """With T references: for each set of driving landmarks the reference nearest in shape, chosen as a
    few-shot target chooses it live (puppet.faces.warp.nearest_shape, with its hysteresis), warped to them.
    No learning: what the choice of reference alone gives."""
    from puppet.faces.warp import nearest_shape

    out, current = [], None
    for d in driving:
        current = nearest_shape([p for _, p in refs], d, current)
        out += warp_baseline(*refs[current], [d])
    return out


def save_strip(path: Path, reals, driving, warps, outputs, n: int = STRIP_FRAMES) -> None:
    """Rows of real | sketch | warp | output (all at EVAL_SIZE) for a few held-out frames, to look at."""
    from puppet.faces.sketch import draw_sketch
    from puppet.files import atomic_path

    idx = np.linspace(0, len(reals) - 1, min(n, len(reals))).round().astype(int)
    rows = [np.hstack([reals[i], draw_sketch(driving[i], EVAL_SIZE), warps[i], outputs[i]]) for i in idx]
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", np.vstack(rows))
        tmp.write_bytes(buf.tobytes())


# ------------------------------------------------------------------------------------------ protocol
def _sources(a: argparse.Namespace) -> tuple[dict[str, dict], dict[str, str]]:
    """Each --checkpoint (or scratch): its meta dict (None for scratch) and config; and short row names."""
    from models.config import get_config

    metas, names = {}, {}
    for src in a.checkpoint:
        if src == SCRATCH:
            cfg = get_config(a.config)
            metas[src] = {"meta": None, "config": cfg}
            names[src] = f"scratch {cfg.name}"
        else:
            from puppet.training.checkpoint import load_meta

            meta = load_meta(src)
            metas[src] = {"meta": meta, "config": get_config(meta["config"])}
            names[src] = Path(src).stem
    if len(set(names.values())) < len(names):  # two checkpoints with one file name: use the paths
        names = {s: (n if s == SCRATCH else s) for s, n in names.items()}
    if a.content_only:  # the ablation: its rows are named apart from the full objective's
        names = {s: f"{n} content-only" for s, n in names.items()}
    return metas, names


def run(a: argparse.Namespace) -> dict:
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    reserve = max(a.frames)
    metas, names = ({}, {}) if a.baselines_only else _sources(a)
    rows = [] if a.baselines_only else [ModelRow(s, T, k) for s in a.checkpoint for T in a.frames
                                        for k in a.steps]
    sizes = sorted({m["config"].image_size for m in metas.values()})

    # Track every clip first: a clip that can't be used stops the run before any fine-tuning.
    clips = []
    for name, path in a.clips:
        t0 = time.perf_counter()
        clips.append(load_clip(name, path, reserve, a.eval_frames, a.max_frames))
        c = clips[-1]
        log.info(f"{name}: face in {len(c.lms)} of {c.frames_read} frames, held-out face frames "
                 f"{c.held[0]}..{c.held[-1]} ({len(c.held)}), tracked in {time.perf_counter() - t0:.1f} s")

    if a.jobs > 1 and len(clips) > 1:
        # One process per job, each with its own tracker and torch threads; a clip's numbers don't depend on
        # which process scored it (every fine-tune is seeded), so the table equals a serial run's.
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(a.jobs, len(clips)),
                                 mp_context=mp.get_context("spawn")) as pool:
            per_clip = list(pool.map(_clip_job, [(a, c, rows, metas, names) for c in clips]))
    else:
        scorer = Scorer()
        per_clip = []
        try:
            for clip in clips:
                per_clip.append(_run_clip(a, clip, scorer, rows, metas, names))
        finally:
            scorer.close()

    table = [_aggregate("real", None, None, [c["real"] for c in per_clip]),
             _aggregate("static", None, None, [c["rows"]["static"] for c in per_clip]),
             _aggregate("warp", None, None, [c["rows"]["warp"] for c in per_clip])]
    for T in nearest_rows(a.frames):
        table.append(_aggregate(NEAREST_ROW, T, None, [c["rows"][f"warp_T{T}"] for c in per_clip]))
        table.append(_aggregate(LAST_ROW, T, None, [c["rows"][f"warp_last{T}"] for c in per_clip]))
    for r in rows:
        table.append(_aggregate(r.label(names), r.T, r.steps, [c["rows"][r.slug(names)] for c in per_clip]))
    return {
        "eval_size": EVAL_SIZE,
        "clips": [{"name": c.name, "path": str(c.path)} for c in clips],
        "split": a.split, "corpus": a.corpus,
        "frames": a.frames, "steps": a.steps, "baselines_only": a.baselines_only,
        "sources": {names[s]: {"checkpoint": None if s == SCRATCH else s, "config": m["config"].name,
                               "image_size": m["config"].image_size} for s, m in metas.items()},
        "config_sizes": sizes, "eval_frames": a.eval_frames, "seed": a.seed, "content": a.content,
        "augment": not a.no_augment, "content_only": a.content_only, "batch": a.batch,
        "threads": torch.get_num_threads(),
        "table": table, "per_clip": per_clip,
        "seconds": round(time.perf_counter() - t_start, 1),
    }


NEAREST_ROW = "warp, nearest of T"
LAST_ROW = "warp, frame T-1"


def nearest_rows(frames: list[int]) -> list[int]:
    """The T values that get the 'warp, nearest of T' and 'warp, frame T-1' baseline rows (T > 1)."""
    return [T for T in frames if T > 1]


def _clip_job(job) -> dict:
    """One clip in a worker process (--jobs)."""
    from puppet.log import configure

    a, clip, rows, metas, names = job
    configure()
    torch.set_num_threads(a.threads)
    scorer = Scorer()
    try:
        return _run_clip(a, clip, scorer, rows, metas, names)
    finally:
        scorer.close()


def fit_row(a, m: dict, crops: list[tuple[np.ndarray, np.ndarray]], steps: int, **where):
    """A model row's target: fine-tuned from m (a source of _sources: its meta-learned checkpoint, or a config
    from scratch) on `crops` ((frame, landmarks) at its size) with the protocol's flags in `a`; `where`:
    finetune's picture and crop_box."""
    from puppet.training.finetune import FinetuneOptions, finetune

    extra = {k: getattr(a, k) for k in ("content", "vgg19", "vggface")
             if getattr(a, k, None) is not None}  # unset: puppet.finetune's own defaults
    options = FinetuneOptions(steps=steps, augment=False if a.no_augment else None, device=a.device,
                              seed=a.seed, batch_size=a.batch, threads=a.threads, progress=not a.quiet,
                              adversarial=not getattr(a, "content_only", False), **extra)
    start = None if m["meta"] is not None else m["config"]
    frames, landmarks = [f for f, _ in crops], [p for _, p in crops]
    return finetune(frames, landmarks, start, checkpoint=m["meta"], options=options, **where)


def _run_clip(a, clip: Clip, scorer: Scorer, rows: list[ModelRow], metas: dict, names: dict) -> dict:
    ref, ref_lms = clip.crop(0, EVAL_SIZE)
    reals, driving = zip(*(clip.crop(i, EVAL_SIZE) for i in clip.held))
    reals, driving = list(reals), list(driving)
    real_desc = scorer.descriptors(reals)
    warps = warp_baseline(ref, ref_lms, driving)
    out: dict = {"name": clip.name, "path": str(clip.path), "frames_read": clip.frames_read,
                 "face_frames": len(clip.lms), "held_out": clip.held,
                 "held_out_video_frames": [clip.video_index[i] for i in clip.held], "rows": {}}

    # The measurement's floor: re-detection on the real crops themselves.
    out["real"] = scorer.score(reals, reals, driving, real_desc)
    save = Path(a.save) / re.sub(r"[^A-Za-z0-9._-]+", "-", clip.name) if a.save else None
    baselines = [("static", [ref] * len(reals)), ("warp", warps)]
    for T in nearest_rows(a.frames):
        refs = [clip.crop(i, EVAL_SIZE) for i in range(T)]
        baselines.append((f"warp_T{T}", nearest_warp_baseline(refs, driving)))
        baselines.append((f"warp_last{T}", warp_baseline(*refs[-1], driving)))
    for label, outputs in baselines:
        out["rows"][label] = scorer.score(outputs, reals, driving, real_desc)
        _log_row(clip.name, label, out["rows"][label])
        if save:
            save_strip(save / f"{label}.png", reals, driving, warps, outputs)

    for r in rows:
        m = metas[r.source]
        size = m["config"].image_size
        ft = [clip.crop(i, size) for i in range(r.T)]
        drive_s = [clip.crop(i, size)[1] for i in clip.held]
        log.info(f"{clip.name}: {r.label(names)} T={r.T}: fine-tuning {r.steps} steps")
        t0 = time.perf_counter()
        target = fit_row(a, m, ft, r.steps)
        ft_s = time.perf_counter() - t0
        outputs = [to_eval_size(o) for o in generate(target, drive_s)]
        s = scorer.score(outputs, reals, driving, real_desc)
        s.update({"T": r.T, "steps": r.steps, "source": r.label(names), "image_size": size,
                  "finetune_s": ft_s, "content": target.meta.get("content"),
                  "final_losses": target.meta.get("final_losses")})
        out["rows"][r.slug(names)] = s
        _log_row(clip.name, f"{r.label(names)} T={r.T} steps={r.steps}", s)
        if save:
            save_strip(save / f"{r.slug(names)}.png", reals, driving, warps, outputs)
    return out


def _log_row(clip: str, label: str, s: dict) -> None:
    log.info(f"{clip}: {label}: " + ", ".join(
        f"{k} {s[k]:.4f}" for k in METRICS if s.get(k) is not None))


METRICS = ("ssim", "psnr", "nme", "face_found", "csim", "finetune_s", *REGION_METRICS)


def _aggregate(row: str, T, steps, clips: list[dict]) -> dict:
    """Mean and std over clips of each per-clip mean; `n` counts the clips that have a value (NME: a face
    found in at least one output)."""
    out = {"row": row, "T": T, "steps": steps}
    for k in METRICS:
        vals = [c[k] for c in clips if c.get(k) is not None]
        if vals:
            out[k] = {"mean": round(float(np.mean(vals)), 4),
                      "std": round(float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, 4), "n": len(vals)}
        else:
            out[k] = None
    return out


# ------------------------------------------------------------------------------------------ report
def _cell(v, nd: int, pct: bool = False, n_clips: int | None = None) -> str:
    if v is None:
        return "-"
    k = 100.0 if pct else 1.0
    spread = f" ± {v['std'] * k:.{nd}f}" if v["n"] > 1 else ""  # one clip: no spread to show
    s = f"{v['mean'] * k:.{nd}f}" + ("%" if pct else "") + spread
    if n_clips is not None and v["n"] < n_clips:
        s += f" ({v['n']} clips)"
    return s


def markdown(r: dict) -> str:
    n = len(r["clips"])
    where = (f"the {r['split']} split of {r['corpus']} ({n} people, {CORPUS_CLIP} each)" if r["corpus"]
             else f"{n} clip{'s' if n != 1 else ''} ({', '.join(c['name'] for c in r['clips'])})")
    srcs = "; ".join(f"{k}: config {v['config']} ({v['image_size']}px)" for k, v in r["sources"].items())
    lines = [
        f"Self-reenactment on {where}: {r['eval_frames']} held-out frames a clip after the first "
        f"{max(r['frames'])}; every row scored at {r['eval_size']}x{r['eval_size']} (real crops cropped at "
        f"{r['eval_size']} with the shared crop, smoothed over the clip; outputs of smaller configs upscaled "
        f"bicubic). Mean ± std over clips of each clip's mean.",
    ]
    if srcs:
        lines.append(f"Model rows: {srcs}; content loss {r['content'] or 'puppet.finetune default'}, "
                     f"{'warp augmentation' if r['augment'] else 'no augmentation'}, batch {r['batch']}, "
                     f"seed {r['seed']}.")
    lines += [
        "",
        "| row | T | steps | SSIM ↑ | PSNR dB ↑ | NME ↓ | face found ↑ | CSIM ↑ | fine-tune s "
        "| mouth SSIM ↑ | mouth PSNR ↑ | mouth L1 ↓ | eyes SSIM ↑ | eyes PSNR ↑ | eyes L1 ↓ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["table"]:
        real = row["row"] == "real"
        name = "real crops (floor)" if real else row["row"]
        psnr_cell = "inf" if real else _cell(row["psnr"], 2)
        regions = " | ".join(
            "inf" if real and k.endswith("psnr") else _cell(row[k], 2 if k.endswith("psnr") else 3)
            for k in REGION_METRICS)
        lines.append(
            f"| {name} | {row['T'] or ''} | {'' if row['steps'] is None else row['steps']} | "
            f"{_cell(row['ssim'], 3)} | {psnr_cell} | {_cell(row['nme'], 4, n_clips=n)} | "
            f"{_cell(row['face_found'], 0, pct=True)} | {_cell(row['csim'], 3)} | "
            f"{_cell(row['finetune_s'], 0)} | {regions} |")
    lines += [
        "",
        f"NME: mediapipe re-detection on the output vs the driving landmarks, over the inter-ocular "
        f"distance, on the outputs where a face is found. CSIM: cosine of the face-recognition net's "
        f"descriptors (models.facerec) of the face region, output vs real; {CSIM_RANGE}. Mouth and eyes: "
        f"SSIM (the SSIM map's mean), PSNR and L1 (mean absolute difference, 0..255) inside the real frame's "
        f"inner-lip and eye polygons dilated by {REGION_DILATE} inter-ocular distances. Run took "
        f"{r['seconds']:.0f} s.",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ command line
def _int_list(flag: str, text: str, minimum: int) -> list[int]:
    try:
        vals = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise PuppetError(f"{flag} {text}: expected comma-separated integers such as 1,8") from None
    if not vals or vals[0] < minimum:
        raise PuppetError(f"{flag} {text}: need at least one value, each >= {minimum}")
    return vals


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="python -m bench.quality",
               description="Self-reenactment quality on talking-head clips, every row scored at 256x256.")
    p.add_argument("--clip", action="append", default=[], help="a video of one person talking (repeatable)")
    p.add_argument("--corpus", metavar="DIR", help="the faces corpus (videos/<person>/NN.mp4): one clip "
                   f"({CORPUS_CLIP}) of each person of --split")
    p.add_argument("--split", default="dev_eval", help="the corpus split (default dev_eval)")
    p.add_argument("--split-file", default=str(SPLIT_FILE), help="the split file (default "
                   "bench/corpus_split.json)")
    p.add_argument("--frames", default="1,8", help="the T values, comma-separated (default 1,8); the "
                   "held-out frames follow the first max(T) face frames")
    p.add_argument("--steps", default="0,20", help="fine-tuning steps, comma-separated (default 0,20; 0: the "
                   "feed-forward model)")
    p.add_argument("--config", default="cpu-warp",
                   help="networks for --checkpoint scratch (default cpu-warp)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="META|scratch",
                   help="meta-learned checkpoint to fine-tune from (repeatable); 'scratch': randomly "
                        "initialised --config (the default when no --checkpoint is given)")
    p.add_argument("--baselines-only", action="store_true", help="only the static and warp rows")
    p.add_argument("--batch", type=int, default=4, help="fine-tuning batch size (default 4)")
    p.add_argument("--eval-frames", type=int, default=16, help="held-out frames per clip (default 16)")
    p.add_argument("--max-frames", type=int, help="read at most this many frames of each clip")
    p.add_argument("--content", help="fine-tuning content loss, passed to puppet.finetune (default: its "
                   "default, auto)")
    p.add_argument("--vgg19", help="VGG19 weights for the VGG content loss (passed to puppet.finetune)")
    p.add_argument("--vggface", help="VGGFace weights for the VGG content loss (passed to puppet.finetune)")
    p.add_argument("--no-augment", action="store_true",
                   help="fine-tune on the T frames only, no warps (puppet.finetune's default for T > 1)")
    p.add_argument("--content-only", action="store_true",
                   help="fine-tune on the content loss alone (no D: the adversarial and feature-matching "
                        "terms' ablation); rows are named '... content-only'")
    p.add_argument("--device", default="auto", help="fine-tuning device: cpu, cuda or auto (default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the results depend "
                   "on it, and a shared machine's other work stays unstarved)")
    p.add_argument("--jobs", type=int, default=1,
                   help="clips scored in parallel, one process each (default 1; e.g. the number of cores)")
    p.add_argument("--json", metavar="OUT.json", help="write the results (every clip's, every frame's) here")
    p.add_argument("--save", metavar="DIR",
                   help="write real | sketch | warp | output strips per clip and row (--cross: driver | "
                        "each retargeting mode's output, on the driver's deepest blink and widest mouth)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--cross", action="store_true",
                   help="cross-reenactment instead (bench/cross.py): each person's photo driven by other "
                        "people's clips through the live loop's driving, scored by how the output follows "
                        "the driver's eyes and mouth; model rows only for a given --checkpoint")
    p.add_argument("--cross-frames", type=int, default=150, help="--cross: frames of each driving clip "
                   "(default 150)")
    p.add_argument("--drivers", type=int, default=2, help="--cross: clips driving each person's photo, the "
                   "next people in the list (default 2)")
    p.add_argument("--warmup", type=float, default=1.0, help="--cross: seconds at the start of each drive "
                   "left unscored, while the live driving calibrates and blends in (default 1)")
    p.add_argument("--still-head", action="store_true",
                   help="--cross: also the warp with the driven head held still (the expression alone): the "
                        "head jitter the re-detection reads from the lids and lips")
    p.add_argument("--face-size", type=int, default=None, metavar="F",
                   help="score at F x F instead (bench/quality_size.py): the warp and each model row made at "
                        "the generator's size and upscaled, and made at F as puppet.live makes a face shown "
                        "that large, against the real frame cut at F")
    p.add_argument("--retarget", default=None, help="--cross: retargeting modes, comma-separated (default: "
                   "all of bench.cross.RETARGET_MODES)")
    a = p.parse_args(argv)
    if bool(a.clip) == bool(a.corpus):
        raise PuppetError("python -m bench.quality: pass either --corpus DIR (with --split) or one or more "
                          "--clip CLIP")
    if a.corpus:
        a.clips = corpus_clips(a.corpus, a.split, a.split_file)
    else:
        for c in a.clip:
            if not Path(c).is_file():
                raise PuppetError(f"--clip {c}: no such video file; pass a clip of one person talking (.mp4)")
        paths = [Path(c) for c in a.clip]
        a.clips = list(zip(clip_names(paths), paths))
        a.split = None
    a.frames = _int_list("--frames", a.frames, 1)
    a.steps = _int_list("--steps", a.steps, 0)
    if a.jobs < 1:
        raise PuppetError(f"--jobs {a.jobs}: must be at least 1")
    if a.eval_frames < 1 or a.batch < 1 or a.threads < 1 or (a.max_frames is not None and a.max_frames < 2):
        raise PuppetError(f"--eval-frames {a.eval_frames} --batch {a.batch} --threads {a.threads} "
                          f"--max-frames {a.max_frames}: need eval-frames >= 1, batch >= 1, threads >= 1, "
                          f"max-frames >= 2")
    if a.face_size is not None and (a.cross or a.save or not EVAL_SIZE <= a.face_size <= 1024):
        raise PuppetError(f"--face-size {a.face_size}: give a side from {EVAL_SIZE} to 1024 pixels, e.g. "
                          f"512, without --cross or --save")
    if a.still_head and not a.cross:
        raise PuppetError("--still-head: a cross-reenactment option; add --cross")
    if a.cross:
        from bench.cross import RETARGET_MODES

        a.retarget = RETARGET_MODES if a.retarget is None else tuple(
            m.strip() for m in a.retarget.split(",") if m.strip())
        bad = [m for m in a.retarget if m not in RETARGET_MODES]
        if bad or not a.retarget:
            raise PuppetError(f"--retarget {','.join(a.retarget)}: use one or more of "
                              f"{', '.join(RETARGET_MODES)}")
        if a.cross_frames < 10 or a.drivers < 1 or a.warmup < 0:
            raise PuppetError(f"--cross-frames {a.cross_frames} --drivers {a.drivers} --warmup {a.warmup}: "
                              f"need cross-frames >= 10, drivers >= 1, warmup >= 0")
        if a.baselines_only:
            a.checkpoint = []
    elif not a.checkpoint:
        a.checkpoint = [SCRATCH]
    if len(set(a.checkpoint)) < len(a.checkpoint):
        raise PuppetError(f"--checkpoint: {', '.join(a.checkpoint)} names one more than once; pass each once")
    if a.config.endswith(".json"):
        from bench.generator import parse_config

        a.config = parse_config(a.config)
    return a


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    if a.cross:
        from bench.cross import markdown as cross_markdown
        from bench.cross import run_cross

        r = run_cross(a)
        print(cross_markdown(r))
    elif a.face_size is not None:
        from bench.quality_size import markdown as size_markdown
        from bench.quality_size import run_face_size

        r = run_face_size(a)
        print(size_markdown(r))
    else:
        r = run(a)
        print(markdown(r))
    if a.json:
        write_json(a.json, r)
        log.info(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)

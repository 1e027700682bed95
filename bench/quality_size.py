"""The quality protocol scored at the size the face is shown (`python -m bench.quality --face-size 512`):

    python -m bench.quality (--corpus DIR [--split dev_eval] | --clip CLIP ...) --face-size 512
        [--frames 1] [--steps 0] [--checkpoint meta.pt|scratch ...] [--baselines-only] [--eval-frames 16]
        [--json OUT.json]

(clips one after another: --jobs is not used; no --save strips: see bench.facesize --strip).

The self-reenactment protocol of bench.quality (the same clips, held-out frames and fine-tuning), but every
row is scored against the real frame cropped at the face size F (the shared crop, smoothed over the clip),
each row two ways:
- `S² upscaled`: the face as the live loop makes it at the generator's size S (the warp row: at 256),
  upscaled bicubic to F (what a face shown at F pixels was before the face size followed the shown size);
- `F²`: the face as the live loop makes it at face size F (puppet.feed.Feeder: the reference cut
  from the frame at F and warped at F, the generator fed that warp resized to its size, its correction
  resized back onto the full-size warp).
Rows: `warp` (the reference warped to each held-out frame's landmarks, no learning) and each model row of
bench.quality (fine-tuned on the first T face frames, with face frame 0 as the target's picture, as
puppet.finetune makes a target from a photo). A generator without the appearance path has no F² row (the
live loop keeps such a face at its own size).

Metrics at F: SSIM and PSNR against the real crop, SSIM inside the mouth and eye regions
(puppet.faces.regions.region_masks), and sharpness: the variance of the Laplacian over the face (the hull
of the driving jaw and brows) over the real crop's there (1: as sharp as the real frame). `native px` is the
crop box's side in the video's own pixels: a real crop cut larger than that is itself upscaled, so a clip
scored at F shows what a sharper face buys only where the video has those pixels.
"""

from __future__ import annotations

import argparse
import logging
import time

import cv2
import numpy as np
import torch

from bench.metrics import psnr, region_scores, ssim
from puppet.faces.regions import region_masks

log = logging.getLogger(__name__)

METRICS = ("ssim", "psnr", "mouth_ssim", "eyes_ssim", "sharpness")
WAYS = ("upscaled", "native")  # the face at the generator's size upscaled to F; the face made at F


def sharpness(img: np.ndarray, mask: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image inside a boolean mask (higher: more fine detail)."""
    lap = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F)
    return float(lap[mask].var())


def face_region(lms: np.ndarray, size: int) -> np.ndarray:
    """Boolean (size, size) mask: the convex hull of the jaw and the brows (landmarks 0-26)."""
    m = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(m, cv2.convexHull(np.round(lms[:27]).astype(np.int32)), 1)
    return m.astype(bool)


def score(outputs: list[np.ndarray], reals: list[np.ndarray], driving: list[np.ndarray]) -> dict:
    """The clip's means of the per-frame metrics at the real crops' size (driving: landmarks there)."""
    size = reals[0].shape[0]
    vals = {k: [] for k in METRICS}
    for o, r, d in zip(outputs, reals, driving):
        if o.shape != r.shape:
            raise ValueError(f"an output of {o.shape} against a real crop of {r.shape}")
        vals["ssim"].append(ssim(o, r))
        vals["psnr"].append(psnr(o, r))
        masks = region_masks(d, size)
        vals["mouth_ssim"].append(region_scores(o, r, masks["mouth"])["ssim"])
        vals["eyes_ssim"].append(region_scores(o, r, masks["eyes"])["ssim"])
        face = face_region(d, size)
        vals["sharpness"].append(sharpness(o, face) / max(sharpness(r, face), 1e-9))
    return {k: float(np.mean([x for x in v if np.isfinite(x)])) for k, v in vals.items()}


def upscale(img: np.ndarray, size: int) -> np.ndarray:
    return img if img.shape[0] == size else cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def live_faces(target, driving: list[np.ndarray], face: int) -> list[np.ndarray]:
    """The face crop puppet.live pastes for each set of driving landmarks (pixels of the generator's crop)
    at face size `face`: the feeder's inputs (puppet.feed), the person's generator, the feeder's face."""
    from puppet.faces.images import to_bgr
    from puppet.feed import Feeder

    feeder = Feeder(target, face)
    pg = target.person_generator("cpu")
    out = []
    with torch.inference_mode():
        for d in driving:
            feed = feeder(d)
            out.append(feeder.face(to_bgr(pg(*feed.tensors)[0]), feed))
    return out


def _run_clip(a: argparse.Namespace, clip, rows, metas: dict, names: dict) -> dict:
    from bench.quality import EVAL_SIZE, fit_row, warp_baseline

    F = a.face_size
    reals, drive_f = map(list, zip(*(clip.crop(i, F) for i in clip.held)))
    box = clip.boxes[0]
    out = {"name": clip.name, "native_px": round(float(np.mean([clip.boxes[i].size for i in clip.held])), 1),
           "rows": {}}
    ref_s, ref_lms_s = clip.crop(0, EVAL_SIZE)
    drive_s = [clip.crop(i, EVAL_SIZE)[1] for i in clip.held]
    warps = [upscale(w, F) for w in warp_baseline(ref_s, ref_lms_s, drive_s)]
    faces = {"warp": (EVAL_SIZE, {"upscaled": warps, "native": warp_baseline(*clip.crop(0, F), drive_f)})}
    for r in rows:
        m = metas[r.source]
        size = m["config"].image_size
        ft = [clip.crop(i, size) for i in range(r.T)]
        log.info(f"{clip.name}: {r.label(names)} T={r.T}: fine-tuning {r.steps} steps")
        target = fit_row(a, m, ft, r.steps, picture=clip.frames[0], crop_box=box)
        drive = [clip.crop(i, size)[1] for i in clip.held]
        ways = {"upscaled": [upscale(f, F) for f in live_faces(target, drive, size)]}
        if target.config.takes_warp:
            ways["native"] = live_faces(target, drive, F)
        faces[f"{r.label(names)} T={r.T} steps={r.steps}"] = (size, ways)
    for label, (size, ways) in faces.items():
        out["rows"][label] = {"size": size}
        out["rows"][label].update({way: score(imgs, reals, drive_f) for way, imgs in ways.items()})
        log.info(f"{clip.name}: {label}: " + "; ".join(
            f"{way} " + ", ".join(f"{k} {v:.4f}" for k, v in s.items())
            for way, s in out["rows"][label].items() if way in WAYS))
    return out


def _mean_std(vals: list[float]) -> dict:
    return {"mean": round(float(np.mean(vals)), 4),
            "std": round(float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, 4), "n": len(vals)}


def run_face_size(a: argparse.Namespace) -> dict:
    """bench.quality's clips and model rows, scored at --face-size (see the module doc)."""
    from bench.corpus import load_clip
    from bench.quality import ModelRow, _sources

    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    metas, names = ({}, {}) if a.baselines_only else _sources(a)
    rows = [] if a.baselines_only else [ModelRow(s, T, k) for s in a.checkpoint for T in a.frames
                                        for k in a.steps]
    clips = [load_clip(name, path, max(a.frames), a.eval_frames, a.max_frames) for name, path in a.clips]
    per_clip = [_run_clip(a, c, rows, metas, names) for c in clips]
    table = []
    for label in per_clip[0]["rows"]:
        for way in WAYS:
            vals = [c["rows"][label][way] for c in per_clip if way in c["rows"][label]]
            if vals:
                table.append({"row": label, "way": way, "size": per_clip[0]["rows"][label]["size"],
                              **{k: _mean_std([v[k] for v in vals]) for k in METRICS}})
    return {"face_size": a.face_size, "clips": [{"name": c.name, "path": str(c.path)} for c in clips],
            "split": a.split, "corpus": a.corpus, "frames": a.frames, "steps": a.steps,
            "eval_frames": a.eval_frames, "seed": a.seed, "threads": torch.get_num_threads(),
            "table": table, "per_clip": per_clip, "seconds": round(time.perf_counter() - t_start, 1)}


def markdown(r: dict) -> str:
    F = r["face_size"]
    native = ", ".join(f"{c['name']} {c['native_px']:.0f}" for c in r["per_clip"])
    lines = [
        f"Self-reenactment scored at {F}x{F}: {r['eval_frames']} held-out frames a clip, real crops cut "
        f"at {F} (the crop box's side in the video's pixels: {native}). `S² upscaled`: the face made at "
        f"the generator's size S (the warp: at 256), upscaled bicubic; `{F}²`: the face made at {F} as "
        f"puppet.live makes it. Sharpness: variance of the Laplacian over the face / the real crop's. "
        f"Mean ± std over clips.",
        "",
        "| row | face | SSIM ↑ | PSNR dB ↑ | mouth SSIM ↑ | eyes SSIM ↑ | sharpness (real = 1) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["table"]:
        way = f"{row['size']}² upscaled" if row["way"] == "upscaled" else f"{F}²"
        cells = " | ".join(f"{row[k]['mean']:.{nd}f} ± {row[k]['std']:.{nd}f}"
                           for k, nd in zip(METRICS, (3, 2, 3, 3, 2)))
        lines.append(f"| {row['row']} | {way} | {cells} |")
    lines += ["", f"Run took {r['seconds']:.0f} s."]
    return "\n".join(lines)

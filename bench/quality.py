"""Self-reenactment quality, the paper's protocol on any talking-head clip:

    python -m bench.quality --clip CLIP [--frames 1,8,32] [--config small] [--steps N] [--checkpoint meta.pt]
        [--eval-frames 32] [--json out.json] [--save DIR] [--inception PATH] [--arcface PATH]

The clip is tracked (the shared tracker, video mode) and every frame cropped with the shared crop at the
config's image size. For each T: fine-tune (puppet.finetune, from scratch unless --checkpoint) on the first
T frames, then drive the person's generator with the landmarks of held-out frames (absolute mode: the
clip's own landmarks, in the crop), and compare each output with the real crop:
- SSIM (Gaussian window) and PSNR against the real crop;
- landmark NME: landmarks re-detected on the output vs the driving landmarks, over the inter-ocular
  distance (outer eye corners 36-45). Outputs where no face is found are counted, not scored. The same
  re-detection on the real crops gives the measurement's floor (the tracker's own disagreement).
- FID (--inception: a TorchScript Inception-v3, e.g. the `inception-2015-12-05.pt` of NVIDIA's StyleGAN
  metrics) and CSIM (--arcface: an ArcFace ONNX model with a 112x112 input, e.g. insightface's) when the
  user has the weights; they are skipped with a message otherwise.
The held-out frames are the same for every T: evenly spaced among the frames after the largest T.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.metrics import nme, psnr, ssim
from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.files import write_json

log = logging.getLogger(__name__)

DETECT_SIZE = 256  # outputs are upscaled to this before re-detection: mediapipe misses faces in tiny crops



# ------------------------------------------------------------------------------------------ the clip
def load_clip(path, image_size: int, max_frames: int | None = None) -> tuple[list, list, int]:
    """Track every frame (video mode) and crop it with the shared crop: (crops uint8 BGR (S,S,3), landmarks
    (68,2) in crop pixels, frames read). Frames without a face are left out."""
    from puppet.faces.track import Tracker
    from puppet.live.sources import FileSource
    from puppet.training.finetune import crop_face

    src = FileSource(path)
    crops, lms, n = [], [], 0
    try:
        with Tracker(mode="video") as tracker:
            while max_frames is None or n < max_frames:
                c = src.read()
                if c is None:
                    break
                n += 1
                pts = tracker(c.frame)
                if pts is None:
                    continue
                crop, pc = crop_face(c.frame, pts, image_size)
                crops.append(crop)
                lms.append(pc)
    finally:
        src.close()
    return crops, lms, n


def eval_indices(n: int, start: int, count: int) -> list[int]:
    """`count` evenly spaced indices in [start, n)."""
    if n - start < 1:
        return []
    return sorted(set(np.linspace(start, n - 1, min(count, n - start)).round().astype(int).tolist()))


# ------------------------------------------------------------------------------------------ metrics
class Redetector:
    """Landmarks of a crop, found again with the shared tracker (image mode) on an upscaled copy."""

    def __init__(self):
        from puppet.faces.track import Tracker

        self.tracker = Tracker(mode="image")

    def __call__(self, crop: np.ndarray) -> np.ndarray | None:
        s = crop.shape[0]
        k = max(1.0, DETECT_SIZE / s)
        big = cv2.resize(crop, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC) if k > 1 else crop
        pts = self.tracker(big)
        # crop pixel centres: (x + 0.5) * k - 0.5 in the big image
        return None if pts is None else ((pts + 0.5) / k - 0.5).astype(np.float32)

    def close(self) -> None:
        self.tracker.close()


def score(outputs: list[np.ndarray], reals: list[np.ndarray], driving: list[np.ndarray],
          redetect: Redetector) -> dict:
    """Mean SSIM, PSNR over the pairs; NME over the outputs where a face is found, and that rate."""
    ssims = [ssim(o, r) for o, r in zip(outputs, reals)]
    psnrs = [psnr(o, r) for o, r in zip(outputs, reals)]
    nmes = []
    for o, d in zip(outputs, driving):
        p = redetect(o)
        if p is not None:
            nmes.append(nme(p, d))
    finite = [p for p in psnrs if np.isfinite(p)]
    return {
        "ssim": round(float(np.mean(ssims)), 4),
        "psnr": round(float(np.mean(finite)), 3) if finite else None,
        "nme": round(float(np.mean(nmes)), 4) if nmes else None,
        "face_found": round(len(nmes) / len(outputs), 3),
    }


# --------------------------------------------------------------------------------- FID and CSIM (optional)
class Inception:
    """FID features from a TorchScript Inception-v3 (StyleGAN metrics' `inception-2015-12-05.pt`: takes
    uint8-range NCHW RGB of any size, resizes to 299 itself, `return_features=True` gives pool3 (2048))."""

    def __init__(self, path):
        p = Path(path)
        if not p.is_file():
            raise PuppetError(f"--inception {p}: no such file; pass the TorchScript Inception-v3 "
                              f"(inception-2015-12-05.pt) or leave --inception out to skip FID")
        try:
            with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the file is TorchScript
                warnings.simplefilter("ignore", DeprecationWarning)
                self.net = torch.jit.load(str(p), map_location="cpu").eval()
        except Exception as e:  # noqa: BLE001 - torch.jit raises several kinds
            raise PuppetError(f"--inception {p}: not a TorchScript model ({type(e).__name__}); pass the "
                              f"TorchScript Inception-v3 (inception-2015-12-05.pt)") from None

    @torch.no_grad()
    def features(self, crops: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack([c[..., ::-1] for c in crops]).copy()).permute(0, 3, 1, 2).float()
        return self.net(x, return_features=True).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets: |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(s_a @ s_b))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2.0 * covmean))


# ArcFace's 5-point template at 112x112 (insightface): eye centres (image left, right), nose tip,
# mouth corners.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def five_points(lms: np.ndarray) -> np.ndarray:
    """iBUG-68 -> ArcFace's five points."""
    lms = np.asarray(lms, np.float32)
    return np.stack([lms[36:42].mean(0), lms[42:48].mean(0), lms[30], lms[48], lms[54]])


class ArcFace:
    """CSIM: cosine similarity of ArcFace embeddings (an ONNX model with a (1|N, 3, 112, 112) input, RGB,
    (x - 127.5) / 127.5), faces aligned to ArcFace's template with the driving landmarks."""

    def __init__(self, path):
        import onnxruntime as ort

        p = Path(path)
        if not p.is_file():
            raise PuppetError(f"--arcface {p}: no such file; pass an ArcFace ONNX model (e.g. insightface's "
                              f"w600k_r50.onnx) or leave --arcface out to skip CSIM")
        try:
            self.sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise PuppetError(f"--arcface {p}: onnxruntime can't load it ({type(e).__name__}); pass an "
                              f"ArcFace ONNX model") from None
        inp = self.sess.get_inputs()[0]
        self.input = inp.name
        if list(inp.shape[-2:]) != [112, 112]:
            raise PuppetError(f"--arcface {p}: input shape {inp.shape}, expected (N, 3, 112, 112); pass an "
                              f"ArcFace model with a 112x112 input")

    def embed(self, crop: np.ndarray, lms: np.ndarray) -> np.ndarray:
        m, _ = cv2.estimateAffinePartial2D(five_points(lms), ARCFACE_TEMPLATE)
        face = cv2.warpAffine(crop, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        x = (face[..., ::-1].astype(np.float32) - 127.5) / 127.5
        e = self.sess.run(None, {self.input: x.transpose(2, 0, 1)[None]})[0][0].astype(np.float64)
        return e / max(np.linalg.norm(e), 1e-12)

    def csim(self, outputs, reals, driving) -> float:
        sims = [self.embed(o, d) @ self.embed(r, d) for o, r, d in zip(outputs, reals, driving)]
        return float(np.mean(sims))


# ------------------------------------------------------------------------------------------ protocol
def generate_all(target, driving: list[np.ndarray]) -> list[np.ndarray]:
    from puppet.faces.images import to_bgr
    from puppet.faces.sketch import sketch_tensor

    pg = target.person_generator("cpu")
    with torch.inference_mode():
        return [to_bgr(pg(sketch_tensor(d, target.image_size))[0]) for d in driving]


def run(a: argparse.Namespace) -> dict:
    from models.config import get_config
    from puppet.training.finetune import finetune

    meta = None
    if a.checkpoint:
        from puppet.training.train import load_meta

        meta = load_meta(a.checkpoint)
        cfg = get_config(meta["config"])
    else:
        cfg = get_config(a.config)
    size = cfg["image_size"]
    t_max = max(a.frames)
    log.info(f"tracking and cropping {a.clip} at {size}px")
    crops, lms, n_read = load_clip(a.clip, size, a.max_frames)
    if len(crops) < t_max + 1:
        raise PuppetError(f"{a.clip}: a face in only {len(crops)} of {n_read} frames, need more than "
                          f"T = {t_max} (the largest of --frames) plus held-out frames; pass a longer clip "
                          f"or smaller --frames")
    held = eval_indices(len(crops), t_max, a.eval_frames)
    reals = [crops[i] for i in held]
    driving = [lms[i] for i in held]
    log.info(f"{len(crops)} face frames of {n_read}; held-out frames {held[0]}..{held[-1]} ({len(held)})")

    redetect = Redetector()
    inception = Inception(a.inception) if a.inception else None
    arcface = ArcFace(a.arcface) if a.arcface else None
    real_feats = inception.features(reals) if inception else None
    result = {
        "clip": str(a.clip), "config": cfg.get("name"), "image_size": size,
        "checkpoint": str(a.checkpoint) if a.checkpoint else None, "steps": a.steps, "batch": a.batch,
        "content": a.content,
        "augment": not a.no_augment, "frames_read": n_read, "face_frames": len(crops),
        "held_out": held, "rows": [],
    }
    # The measurement's floor: the tracker re-detecting the real crops, against the same driving landmarks.
    floor = [redetect(r) for r in reals]
    floor_nme = [nme(p, d) for p, d in zip(floor, driving) if p is not None]
    result["real_crops_nme"] = round(float(np.mean(floor_nme)), 4) if floor_nme else None
    result["real_crops_face_found"] = round(len(floor_nme) / len(reals), 3)
    try:
        for T in a.frames:
            start = f"from {a.checkpoint}" if meta else "from scratch"
            log.info(f"T={T}: fine-tuning {a.steps} steps ({start})")
            t0 = time.perf_counter()
            target = finetune(
                crops[:T], lms[:T], None if meta is not None else cfg, steps=a.steps,
                augment=not a.no_augment, checkpoint=meta, device=a.device, seed=a.seed, batch_size=a.batch,
                content=a.content, vgg19=a.vgg19, vggface=a.vggface, progress=not a.quiet,
            )
            ft_s = time.perf_counter() - t0
            outputs = generate_all(target, driving)
            row = {"T": T, **score(outputs, reals, driving, redetect), "finetune_s": round(ft_s, 1)}
            if inception:
                row["fid"] = round(frechet_distance(real_feats, inception.features(outputs)), 2)
            if arcface:
                row["csim"] = round(arcface.csim(outputs, reals, driving), 4)
            result["rows"].append(row)
            log.info(f"T={T}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "T"))
            if a.save:
                save_strip(Path(a.save) / f"T{T}.png", reals, driving, outputs, size)
    finally:
        redetect.close()
    result["fid_note"] = (f"FID over {len(held)} held-out frames (few samples: biased upwards, compare runs "
                          f"of the same size only)" if inception else
                          "FID skipped: pass --inception PATH (TorchScript Inception-v3) to compute it")
    result["csim_note"] = ("CSIM: ArcFace cosine similarity, output vs real frame" if arcface else
                           "CSIM skipped: pass --arcface PATH (ArcFace ONNX, 112x112 input) to compute it")
    return result


def save_strip(path: Path, reals, driving, outputs, size: int, n: int = 6) -> None:
    """Rows of real | sketch | output for a few held-out frames, to look at."""
    from puppet.faces.sketch import draw_sketch
    from puppet.files import atomic_path

    idx = np.linspace(0, len(reals) - 1, min(n, len(reals))).round().astype(int)
    rows = [np.hstack([reals[i], draw_sketch(driving[i], size), outputs[i]]) for i in idx]
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", np.vstack(rows))
        tmp.write_bytes(buf.tobytes())


def markdown(r: dict) -> str:
    lines = [
        f"Self-reenactment on {r['clip']}: config {r['config']} ({r['image_size']}px), {r['steps']} steps "
        f"{'from ' + r['checkpoint'] if r['checkpoint'] else 'from scratch'}, content {r['content']}, "
        f"{len(r['held_out'])} held-out frames (face in {r['face_frames']} of {r['frames_read']} frames).",
        "",
        "| T | SSIM ↑ | PSNR dB ↑ | NME ↓ | face found | FID ↓ | CSIM ↑ | fine-tune s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['T']} | {row['ssim']:.3f} | {_f(row['psnr'], 2)} | {_f(row['nme'], 4)} | "
            f"{row['face_found'] * 100:.0f}% | {_f(row.get('fid'), 1)} | {_f(row.get('csim'), 3)} | "
            f"{row['finetune_s']:.0f} |")
    lines += [
        f"| real crops (floor) | 1.000 | inf | {_f(r['real_crops_nme'], 4)} | "
        f"{r['real_crops_face_found'] * 100:.0f}% | | | |",
        "",
        r["fid_note"] + ". " + r["csim_note"] + ".",
    ]
    return "\n".join(lines)


def _f(v, nd) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="python -m bench.quality", description="Self-reenactment quality on a talking-head clip.")
    p.add_argument("--clip", required=True, help="a video of one person talking")
    p.add_argument("--frames", default="1,8,32", help="the T values, comma-separated (default 1,8,32)")
    p.add_argument("--config", default="small", help="networks when training from scratch (default small)")
    p.add_argument("--checkpoint", metavar="META", help="meta-learned checkpoint (meta.pt) to fine-tune from")
    p.add_argument("--steps", type=int, default=200, help="fine-tuning steps per T (default 200)")
    p.add_argument("--batch", type=int, default=4, help="fine-tuning batch size (default 4)")
    p.add_argument("--eval-frames", type=int, default=32, help="held-out frames to score (default 32)")
    p.add_argument("--max-frames", type=int, help="read at most this many frames of the clip")
    p.add_argument("--content", choices=["l1", "paper"], default="l1",
                   help="fine-tuning content loss: pixel L1 (default, no weights) or the paper's VGG losses")
    p.add_argument("--vgg19", help="VGG19 weights for --content paper")
    p.add_argument("--vggface", help="VGGFace weights for --content paper")
    p.add_argument("--no-augment", action="store_true", help="fine-tune on the T frames only, no warps")
    p.add_argument("--device", default="auto", help="fine-tuning device: cpu, cuda or auto (default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inception", metavar="PATH", help="TorchScript Inception-v3 for FID (optional)")
    p.add_argument("--arcface", metavar="PATH", help="ArcFace ONNX model for CSIM (optional)")
    p.add_argument("--json", metavar="OUT.json", help="write the results here")
    p.add_argument("--save", metavar="DIR", help="write real | sketch | output strips per T here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    if not Path(a.clip).is_file():
        raise PuppetError(f"--clip {a.clip}: no such video file; pass a clip of one person talking (.mp4)")
    try:
        a.frames = sorted({int(t) for t in a.frames.split(",") if t.strip()})
    except ValueError:
        raise PuppetError(f"--frames {a.frames}: expected comma-separated integers such as 1,8,32") from None
    if not a.frames or a.frames[0] < 1:
        raise PuppetError(f"--frames {a.frames}: each T must be at least 1")
    if a.steps < 0 or a.eval_frames < 1 or a.batch < 1:
        raise PuppetError(f"--steps {a.steps} --eval-frames {a.eval_frames} --batch {a.batch}: "
                          f"need steps >= 0, eval-frames >= 1 and batch >= 1")
    if a.config.endswith(".json"):
        from bench.generator import parse_config

        a.config = parse_config(a.config)
    return a


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    r = run(a)
    print(markdown(r))
    if a.json:
        write_json(a.json, r)
        log.info(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)

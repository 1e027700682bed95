"""The live loop at several face sizes side by side, in one run, and a strip of the face they give:

    python -m bench.facesize --target FILE.pt [--clip CLIP] [--sizes 256,512] [--fps 25,30] [--frames 150]
                             [--fit fit] [--backend auto] [--json OUT.json] [--strip OUT.jpg [--no-live]]

For each source rate, the clip's frames are played like a camera (stale frames dropped, bench.live) through
puppet.live's threaded loop once per face size (its --face-size), the sizes taking turns so that load from
other processes falls on all alike. Each run reports what puppet.live's own statistics say: frames in / out
/ dropped, output fps, end-to-end latency p50 / p95 and every stage's p50 / p95. The face size is what
puppet.live picks for the target in the frame (puppet.live.framing.face_size): the size asked for only when
the face is shown that large and the photo has the pixels.

--strip: the face's box in the output frame, for one driven pose (mouth open, head turned a little), at each
face size, beside the picture itself (what the face is pasted into), at frame scale; below, the middle of
each at 2x (nearest). Uncompressed (the loop's mp4 would blur both alike).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import cv2
import numpy as np

from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.files import write_json

log = logging.getLogger(__name__)


def _ints(flag: str, text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PuppetError(f"{flag} {text}: give comma-separated whole numbers, e.g. 256,512") from None
    if not out or min(out) < 1:
        raise PuppetError(f"{flag} {text}: give comma-separated whole numbers, e.g. 256,512")
    return out


def run(target, backend, frames: list, sizes: list[int], rates: list[int], framing, tmp: Path,
        repeats: int = 1) -> list[dict]:
    """One row per (round, source rate, face size): puppet.live's statistics of the paced run."""
    from bench.live import run_live
    from puppet.live.sources import FramesSource

    rows = []
    for fps in [f for _ in range(repeats) for f in rates]:
        for cap in sizes:
            source = FramesSource(frames, fps=float(fps), name=f"paced {fps}")
            s = run_live(source, target, backend, len(frames), tmp / f"live-{fps}-{cap}.mp4", cap, framing)
            rows.append({"source_fps": fps, "face_cap": cap, "face_size": s["face_size"],
                         "image_size": s["image_size"], "frames_in": s["frames_in"],
                         "frames_out": s["frames_out"], "dropped": s["dropped"], "no_face": s["no_face"],
                         "fps": s["fps"], "latency_ms": s["latency_ms"],
                         "stages_ms": {k: v for k, v in s["stages_ms"].items() if v["n"]}})
    return rows


def strip(target, backend, sizes: list[int], framing) -> np.ndarray:
    """The face's box in the output frame at each face size, and the picture there (see the module doc)."""
    import torch

    from puppet.faces.images import to_bgr
    from puppet.faces.pose import Motion, move
    from puppet.live.app import live_target

    panels, names = [], []
    for cap in sorted(sizes):
        t = live_target("strip", target, backend, framing, cap)
        pose = move(t.ref, Motion(mouth=0.5, yaw=6.0))
        feed = t.feeder(pose)
        with torch.inference_mode():
            img = backend.generate(*feed.tensors)
        face = t.feeder.face(to_bgr(torch.as_tensor(np.asarray(img))[0]), feed)
        frame = t.compositor(face)
        box = t.compositor.bbox  # the largest face's (last): the same frame region for every panel
        panels.append(frame)
        names.append(f"face {t.face}px (generator {t.size}px)")
        background = t.compositor.background
    panels.append(background)
    names.append("the picture")
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    top, bottom = [], []
    for frame, name in zip(panels, names):
        part = np.ascontiguousarray(frame[y0:y1, x0:x1])
        mid = part[h // 4:h // 4 + h // 2, w // 4:w // 4 + w // 2]
        zoom = cv2.resize(mid, (2 * (w // 2), 2 * (h // 2)), interpolation=cv2.INTER_NEAREST)
        for img in (part, zoom):
            cv2.putText(img, name, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, name, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        top.append(part)
        bottom.append(zoom[:h, :w])
    pad = lambda rows: [np.pad(r, ((0, h - r.shape[0]), (0, w - r.shape[1]), (0, 0))) for r in rows]  # noqa: E731
    return np.vstack([np.hstack(pad(top)), np.hstack(pad(bottom))])


def markdown(rows: list[dict]) -> str:
    stages = [s for s in ("track", "warp", "generate", "correction", "compose", "output")
              if any(s in r["stages_ms"] for r in rows)]
    head = "| source fps | face | fps out | dropped | latency p50 / p95 ms | " + " | ".join(
        f"{s} p50 / p95" for s in stages) + " |"
    lines = [head, "|" + "---|" * (5 + len(stages))]
    for r in rows:
        cells = [f"{r['stages_ms'][s]['p50']:.1f} / {r['stages_ms'][s]['p95']:.1f}" if s in r["stages_ms"]
                 else "-" for s in stages]
        lines.append(f"| {r['source_fps']} | {r['face_size']}² | {r['fps']:.1f} | {r['dropped']} / "
                     f"{r['frames_in']} | {r['latency_ms']['p50']:.0f} / {r['latency_ms']['p95']:.0f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from bench.stages import demo_clip, read_frames
    from puppet.live.framing import FITS, Framing
    from puppet.live.runtime import BACKENDS, load_backend
    from puppet.target import load_target

    p = Parser(prog="python -m bench.facesize", description=__doc__.split("\n")[0])
    p.add_argument("--target", required=True, metavar="FILE.pt", help="a target file (puppet.finetune)")
    p.add_argument("--clip", help="driving clip (default: a synthetic talking head, bench.stages.demo_clip)")
    p.add_argument("--sizes", default="256,512", help="face sizes (--face-size caps), default 256,512")
    p.add_argument("--fps", default="25,30", help="source rates, default 25,30")
    p.add_argument("--frames", type=int, default=150, help="clip frames per run (default 150)")
    p.add_argument("--repeats", type=int, default=1, help="rounds of every run, taking turns (default 1)")
    p.add_argument("--fit", default="fit", choices=FITS, help="how the picture fills 1280x720 (default fit)")
    p.add_argument("--backend", default="auto", help=f"{'|'.join(BACKENDS)} (default auto)")
    p.add_argument("--json", metavar="OUT.json", help="write every number here")
    p.add_argument("--strip", metavar="OUT.jpg", help="write the face strip here")
    p.add_argument("--no-live", action="store_true", help="only the strip: no live-loop runs")
    a = p.parse_args(argv)
    sizes, rates = _ints("--sizes", a.sizes), _ints("--fps", a.fps)
    if a.frames < 2 or a.repeats < 1:
        raise PuppetError(f"--frames {a.frames} --repeats {a.repeats}: at least 2 frames and 1 round")
    target = load_target(a.target)
    backend = load_backend(a.backend, target, verbose=False)
    framing = Framing(1280, 720, a.fit)
    if a.strip:
        cv2.imwrite(a.strip, strip(target, backend, sizes, framing), [cv2.IMWRITE_JPEG_QUALITY, 88])
        log.info(f"wrote {a.strip}")
    if a.no_live:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        clip = a.clip or demo_clip(Path(tmp) / "clip.mp4", a.frames)
        frames, _, _ = read_frames(clip, a.frames)
        rows = run(target, backend, frames, sizes, rates, framing, Path(tmp), a.repeats)
    print(markdown(rows))
    if a.json:
        write_json(a.json, {"target": str(a.target), "backend": getattr(backend, "name", a.backend),
                            "fit": a.fit, "frames": len(frames), "rows": rows})
    return 0


if __name__ == "__main__":
    run_cli(main)

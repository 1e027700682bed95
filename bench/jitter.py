"""Landmark jitter and lag of the live driving path, per One Euro setting:
`python -m bench.jitter --clip talking.mp4 [--clip ...] [--settings 1.0:0.05,0.5:0.05] [--json out.json]`.

Each clip is tracked once (mediapipe, video mode, as live), its neutral found as the live loop finds it
(puppet.live.retarget.NeutralCalibrator) and every frame retargeted onto a target's reference landmarks
(the packaged astronaut photo in a 256 px crop). Then, per filter setting (min_cutoff Hz : beta, in the
units puppet.live.driver gives it: landmarks scaled to a 256 px crop), the driving landmarks are filtered
with the clip's own timestamps, and:

- jitter: on *still* frames (the driver's head still: its face frame's centre moved less than 0.03 IOD over
  the surrounding 9 frames), the mean size of the second difference (x[i+1] - 2 x[i] + x[i-1]: the shake,
  without a steady drift) of the output's rigid points (eye corners and nose, which talking doesn't move),
  in pixels of the 256 px crop;
- lag: the time shift of the raw (unfiltered) driving landmarks that best matches the filtered ones (least
  squares over the rigid points of every frame after the first second, in 2.5 ms steps): how far the output
  trails the driver.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np

from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.files import write_json
from puppet.live.driver import FILTER_BETA, FILTER_MIN_CUTOFF

log = logging.getLogger(__name__)

SIZE = 256
STILL_WINDOW = 4  # frames each side
STILL_IOD = 0.03
DEFAULT = f"{FILTER_MIN_CUTOFF:g}:{FILTER_BETA:g}"  # puppet.live.driver's One Euro setting
DEFAULT_SETTINGS = f"{DEFAULT},0.5:0.05,0.3:0.05,1.0:0.0,2.0:0.05,0.5:0.2,0.5:0.1,0.7:0.1,0.3:0.1"


def track_clip(path: str | os.PathLike, max_frames: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """(landmarks (n, 68, 2) with NaN where no face, times (n,) in seconds, fps) of a video file."""
    import cv2

    from puppet.faces.track import Tracker

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise PuppetError(f"{path}: can't open it as a video; pass an .mp4")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if 1.0 <= fps <= 240.0 else 25.0
    out = []
    with Tracker(mode="video") as tracker:
        while max_frames is None or len(out) < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            lms = tracker(frame)
            out.append(np.full((68, 2), np.nan, np.float32) if lms is None else lms)
    cap.release()
    if not out:
        raise PuppetError(f"{path}: no frames decoded; pass a video OpenCV can read")
    return np.asarray(out), np.arange(len(out)) / fps, fps


def reference_landmarks() -> np.ndarray:
    from puppet.assets import astronaut
    from puppet.faces.crop import Crop
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    lms = detect(read_image(astronaut()))
    return Crop.from_landmarks(lms).to_crop(lms, SIZE)


def retargeted(lms: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The driving landmarks of every frame (NaN without a face), as puppet.live.driver retargets them."""
    from puppet.live.retarget import NeutralCalibrator, RelativeRetargeter

    cal, rt = NeutralCalibrator(), RelativeRetargeter(ref)
    out = np.full(lms.shape, np.nan, np.float64)
    for i, x in enumerate(lms):
        if np.isnan(x).any():
            cal.run.clear()
            continue
        n = cal.update(x)
        if n is not None:
            rt.set_neutral(n)
        out[i] = rt(x)
    return out


def still_frames(lms: np.ndarray) -> np.ndarray:
    """Frames whose surrounding 2 * STILL_WINDOW + 1 frames all have a face whose frame centre stays within
    STILL_IOD inter-ocular distances."""
    from puppet.faces.pose import FaceFrame

    n = len(lms)
    centres = np.full((n, 2), np.nan)
    scales = np.full(n, np.nan)
    for i, x in enumerate(lms):
        if not np.isnan(x).any():
            f = FaceFrame.of(x)
            centres[i], scales[i] = f.centre, f.scale
    still = np.zeros(n, bool)
    for i in range(STILL_WINDOW, n - STILL_WINDOW):
        w = centres[i - STILL_WINDOW:i + STILL_WINDOW + 1]
        if np.isnan(w).any():
            continue
        still[i] = float(np.hypot(*(w.max(0) - w.min(0)))) < STILL_IOD * scales[i]
    return still


def filtered(drive: np.ndarray, times: np.ndarray, min_cutoff: float, beta: float) -> np.ndarray:
    """The One Euro filter over the driving landmarks as puppet.live.driver runs it (reset on a lost face)."""
    from puppet.faces.filter import OneEuroFilter
    from puppet.live.driver import FILTER_UNITS

    f = OneEuroFilter(min_cutoff=min_cutoff, beta=beta)
    k = FILTER_UNITS / SIZE
    out = np.full(drive.shape, np.nan)
    for i, (x, t) in enumerate(zip(drive, times)):
        if np.isnan(x).any():
            f.reset()
            continue
        out[i] = f(x * k, t) / k
    return out


def jitter_px(out: np.ndarray, still: np.ndarray) -> float:
    """Mean size of the rigid points' second difference x[i+1] - 2 x[i] + x[i-1] on still frames: what the
    points shake by, with any steady drift (a filter still catching up, a slow sway) taken out."""
    from puppet.faces.pose import STABLE

    acc = np.linalg.norm(out[2:, STABLE] - 2 * out[1:-1, STABLE] + out[:-2, STABLE], axis=2).mean(1)
    mid = still[1:-1]
    return float(np.nanmean(acc[mid])) if mid.any() else float("nan")


def lag_ms(raw: np.ndarray, out: np.ndarray, times: np.ndarray, max_ms: float = 200.0) -> float:
    """The delay d minimising |out(t) - raw(t - d)|² over the rigid points (raw linearly interpolated)."""
    from puppet.faces.pose import STABLE

    ok = ~np.isnan(raw[:, 0, 0]) & ~np.isnan(out[:, 0, 0])
    t = times[ok]
    r = raw[ok][:, STABLE].reshape(ok.sum(), -1)
    o = out[ok][:, STABLE].reshape(ok.sum(), -1)
    use = t >= t[0] + 1.0
    best, best_err = 0.0, float("inf")
    for d in np.arange(0.0, max_ms + 1e-9, 2.5):
        shifted = np.stack([np.interp(t[use] - d / 1000.0, t, r[:, j]) for j in range(r.shape[1])], 1)
        err = float(((o[use] - shifted) ** 2).mean())
        if err < best_err:
            best, best_err = float(d), err
    return best


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="python -m bench.jitter", description=__doc__.split("\n")[0])
    p.add_argument("--clip", action="append", required=True, help="a talking-head video (repeatable)")
    p.add_argument("--settings", default=DEFAULT_SETTINGS,
                   help=f"comma-separated min_cutoff:beta pairs (default {DEFAULT_SETTINGS})")
    p.add_argument("--frames", type=int, help="frames per clip at most")
    p.add_argument("--json", metavar="OUT.json", help="write the numbers here")
    a = p.parse_args(argv)
    try:
        a.settings = [tuple(float(v) for v in s.split(":")) for s in a.settings.split(",")]
        assert all(len(s) == 2 for s in a.settings)
    except (ValueError, AssertionError):
        raise PuppetError(f"--settings {a.settings}: give min_cutoff:beta pairs, "
                          f"e.g. 1.0:0.05,0.5:0.05") from None
    for c in a.clip:
        if not Path(c).is_file():
            raise PuppetError(f"{c}: no such video file; pass a talking-head .mp4")
    return a


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    ref = reference_landmarks()
    rows: dict[str, dict] = {}
    clips = []
    for clip in a.clip:
        lms, times, fps = track_clip(clip, a.frames)
        raw = retargeted(lms, ref)
        still = still_frames(lms)
        clips.append({"clip": str(clip), "frames": len(lms), "fps": fps, "still_frames": int(still.sum()),
                      "no_face": int(np.isnan(lms[:, 0, 0]).sum())})
        log.info(f"{clip}: {len(lms)} frames at {fps:g} fps, {int(still.sum())} still")
        for name, (mc, beta) in [("raw", (None, None))] + [(f"{mc:g}:{beta:g}", (mc, beta))
                                                           for mc, beta in a.settings]:
            out = raw if mc is None else filtered(raw, times, mc, beta)
            row = rows.setdefault(name, {"jitter": [], "weights": [], "lag": []})
            row["jitter"].append(jitter_px(out, still))
            row["weights"].append(int(still.sum()))
            row["lag"].append(lag_ms(raw, out, times))
    # A clip with few still frames says little about jitter: the per-clip comparison keeps those with 5+.
    counted = np.array([c["still_frames"] >= 5 for c in clips])
    base = np.asarray(rows[DEFAULT]["jitter"]) if DEFAULT in rows else None
    print("| One Euro min_cutoff:beta | jitter, px (256 crop) | jitter / default's, median over clips "
          "| clips steadier (>3 %) | lag, ms (mean, median over clips) |")
    print("|---|---|---|---|---|")
    summary = {}
    for name, r in rows.items():
        w = np.asarray(r["weights"], float)
        j = np.asarray(r["jitter"])
        ok = ~np.isnan(j) & (w > 0)
        jit = float((j[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")
        lags = np.asarray(r["lag"])
        ratio = j[counted] / base[counted] if base is not None and counted.any() else np.array([np.nan])
        summary[name] = {"jitter_px": jit, "jitter_vs_default_median": float(np.median(ratio)),
                         "clips_steadier": int((ratio < 0.97).sum()), "lag_ms": float(lags.mean()),
                         "lag_ms_median": float(np.median(lags)),
                         "per_clip": list(zip(r["jitter"], r["lag"]))}
        label = name + (" (default)" if name == DEFAULT else "")
        print(f"| {label} | {jit:.3f} | {np.median(ratio):.2f} | {int((ratio < 0.97).sum())} of "
              f"{int(counted.sum())} | {lags.mean():.0f}, {np.median(lags):.0f} |")
    if a.json:
        write_json(a.json, {"clips": clips, "settings": summary})
    return 0


if __name__ == "__main__":
    run_cli(main)

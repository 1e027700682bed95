"""Cross-reenactment: each person's photo driven by other people's clips, the way the app is used.

    python -m bench.quality --cross (--corpus DIR [--split dev_eval] | --clip CLIP --clip CLIP ...)
        [--cross-frames 150] [--drivers 2] [--warmup 1] [--retarget offsets,openness] [--still-head]
        [--checkpoint META --steps 0]

Each clip is tracked (the shared tracker, video mode, as the live loop tracks a camera) over its first
--cross-frames frames. A person's photo is the first frame with a face and the eyes open (not mid-blink),
cropped with the shared crop (puppet.training.finetune.crop_face, as puppet.finetune crops a photo). Person
i is driven by the clips of the --drivers people after it in the list (cyclically), through the live loop's
own driving (puppet.live.driver.Driver: neutral calibration, relative retargeting, One Euro filters,
face-lost continuity), once per --retarget mode. Rows:
- `warp`: the photo warped piecewise-affinely to the driven landmarks at 256 (no learning);
- `warp, head held still` with --still-head: the same, drawn from the driven landmarks with the head's
  motion taken out (hold_head: the expression alone). Its head jitter is what the re-detection reads into
  a head that doesn't move, from the lids and lips moving beside it;
- a model row per (--checkpoint, --steps) when a --checkpoint is given: fine-tuned on the photo alone
  (T = 1), driven at its config's size, upscaled to 256.
Scored from mediapipe (image mode) on each output at 256, against the driver's own tracked landmarks,
after the first --warmup seconds (default 1: the live driving's calibration of the driver's neutral and its
blend-in from the photo, where the output is meant to be the photo whatever the driver does):
- r eye, r mouth: Pearson correlation of the output's eye opening (both eyes' mean aspect ratio,
  puppet.faces.regions.eye_openness) and mouth opening (inner lips over the inter-ocular distance,
  mouth_openness) with the driver's, over frames where both have a face; the table's mean is over the pairs
  whose driver blinks (r eye) or opens its mouth (r mouth) at least once: a driver's still eyes give a
  signal of tracker noise whose r means nothing (the JSON has the mean over all pairs too);
- blink recall: of the driver's blinks (runs of frames whose eye opening is under BLINK of its neutral,
  the median over the clip), those the output follows (its eye opening under BLINK of its own median)
  within FOLLOW frames of the blink;
- mouth-open recall: of the driver's mouth openings (runs of frames open at least MOUTH_OPEN inter-ocular
  distances above its closed level, the clip's 5th percentile), those the output follows (open at least
  MOUTH_OPEN / 2 above its own closed level) within FOLLOW frames;
- face found: the share of outputs where mediapipe finds a face;
- CSIM to the photo: the face-recognition net's cosine (models.facerec), output vs photo;
- jitter: the median over frames of the re-detected landmarks' mean frame-to-frame acceleration
  (|p[t+1] - 2 p[t] + p[t-1]|) over the inter-ocular distance: steady motion scores ~0, flicker does not;
  a median, so the few frames of a blink don't count as flicker. Twice: over the points expressions
  barely move (`head`: eye corners and nose, puppet.live.retarget.STABLE), the face's steadiness; and over
  all 68, where lids and lips that follow a talking driver more closely also score higher.
Recalls are pooled over pairs (followed / all events); the other columns are means over pairs. The
recalls are also counted on the driven landmarks themselves (`landmarks`): what the retargeting delivers
before any picture is drawn, so a miss there is the retargeting's and a miss only in the picture is the
renderer's (or mediapipe's reading of it).
--save DIR writes, per pair and row, a strip of driver | each --retarget mode's output on the driver's
deepest blink and its widest-open mouth.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

BLINK = 0.5  # eye opening under this fraction of the face's own neutral: a blink
MOUTH_OPEN = 0.15  # inner-lip opening above the closed level, in inter-ocular distances: an open mouth
FOLLOW = 2  # frames either side of a driver's event within which the output must follow it
# The eyes and mouth moved by the driver's offsets like the rest of the face, or by openness:
# RelativeRetargeter's openness False / True (puppet.live's --no-openness / its default).
RETARGET_MODES = ("offsets", "openness")
STRIP_CAPTIONS = {"offsets": "offsets (--no-openness)", "openness": "openness (default)"}
STILL_ROW = "warp, head held still"  # --still-head's row
PHOTO_EYES = 0.8  # a person's photo: the first frame whose eyes are at least this open (of the median)


@dataclass
class Performance:
    """One clip, tracked: every frame's landmarks (None without a face), its frame rate, and its person's
    photo (see load_performance)."""

    name: str
    path: Path
    fps: float
    lms: list  # (68, 2) float32 in frame pixels, or None
    frame0: np.ndarray  # the photo's frame, whole (uint8 BGR)
    lms0: np.ndarray  # its landmarks in frame pixels
    photo_index: int  # its frame number

    def photo(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        from puppet.training.photos import crop_face

        return crop_face(self.frame0, self.lms0, size)


def load_performance(name: str, path, max_frames: int) -> Performance:
    """Track the clip's first `max_frames` frames; the photo is its first face frame with the eyes open (at
    least PHOTO_EYES of the clip's median eye opening: nobody picks a photo taken mid-blink)."""
    import cv2

    from puppet.errors import PuppetError
    from puppet.faces.track import Tracker
    from puppet.live.sources import FileSource

    src = FileSource(path)  # a missing or unreadable file: one line
    lms = []
    try:
        with Tracker(mode="video") as tracker:
            while len(lms) < max_frames:
                c = src.read()
                if c is None:
                    break
                pts = tracker(c.frame)
                lms.append(None if pts is None else np.asarray(pts, np.float32))
    finally:
        src.close()
    if sum(p is not None for p in lms) < 2:
        raise PuppetError(f"{path}: a face in {sum(p is not None for p in lms)} of its first {len(lms)} "
                          f"frames; pass a clip of one person talking, face in view")
    eye, _ = signals(lms)
    k = int(np.flatnonzero(eye >= PHOTO_EYES * np.nanmedian(eye))[0])
    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(k + 1):
            ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None:
        raise PuppetError(f"{path}: the video decoded differently on a second read; re-encode it (e.g. "
                          f"ffmpeg -i IN -c:v libx264 OUT.mp4)")
    return Performance(name, Path(path), src.fps, lms, frame, lms[k], k)


@dataclass(frozen=True)
class _Face:
    """What puppet.live.driver.Driver needs of a target: its crop size and reference landmarks."""

    size: int
    ref: np.ndarray


def drive(perf: Performance, size: int, ref: np.ndarray, mode: str) -> list[np.ndarray]:
    """The target's landmarks (in its crop of `size`) for each frame of the performance, through the live
    loop's driving with retargeting `mode`."""
    from puppet.live.driver import Driver

    if mode not in RETARGET_MODES:
        raise ValueError(f"retarget mode {mode!r}: use one of {RETARGET_MODES}")
    driver = Driver(_Face(size, np.asarray(ref, np.float32)), absolute=False, fps=perf.fps,
                    openness=mode == "openness")
    return [driver(p, k / perf.fps) for k, p in enumerate(perf.lms)]


def hold_head(driven: list[np.ndarray], ref: np.ndarray) -> list[np.ndarray]:
    """The driven landmarks with the head's motion taken out: each frame's face frame (FaceFrame: shift,
    scale, roll) put on the photo's, and the points the frame is taken from (STABLE: eye corners, nose)
    exactly at the photo's, so that only the expression moves."""
    from puppet.faces.pose import STABLE, FaceFrame

    ref = np.asarray(ref, np.float64)
    frame = FaceFrame.of(ref)
    out = []
    for d in driven:
        d = np.asarray(d, np.float64)
        d = frame.from_local(FaceFrame.of(d).to_local(d))
        d[STABLE] = ref[STABLE]
        out.append(d.astype(np.float32))
    return out


# ------------------------------------------------------------------------------------------ scoring
def runs(mask) -> list[tuple[int, int]]:
    """(first, last) of each run of True."""
    out, start = [], None
    for k, v in enumerate(list(mask) + [False]):
        if v and start is None:
            start = k
        elif not v and start is not None:
            out.append((start, k - 1))
            start = None
    return out


def followed(events: list[tuple[int, int]], hit, window: int = FOLLOW) -> int:
    """How many events have a hit within `window` frames of them."""
    hit = np.asarray(hit, bool)
    return sum(bool(hit[max(0, a - window):b + window + 1].any()) for a, b in events)


def pearson(a, b) -> float | None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() < 1e-9 or b[ok].std() < 1e-9:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def signals(lms: list) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: eye opening (both eyes' mean) and mouth opening; NaN without a face."""
    from puppet.faces.regions import eye_openness, mouth_openness

    eye = np.array([np.nan if p is None else float(eye_openness(p).mean()) for p in lms])
    mouth = np.array([np.nan if p is None else mouth_openness(p) for p in lms])
    return eye, mouth


def jitter(lms: list, points=slice(None)) -> float | None:
    """Median over frames of the landmarks' (`points`') mean |p[t+1] - 2 p[t] + p[t-1]| over the
    inter-ocular distance (frames with a face in all three)."""
    from puppet.faces.pose import FaceFrame

    vals = [float(np.linalg.norm((c - 2 * b + a)[points], axis=1).mean() / FaceFrame.of(b).scale)
            for a, b, c in zip(lms, lms[1:], lms[2:]) if a is not None and b is not None and c is not None]
    return float(np.median(vals)) if vals else None


def _events(eye: np.ndarray, mouth: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: eyes shut (under BLINK of the median) and mouth open (`threshold` above the 5th
    percentile); all False for a signal with no face at all."""
    if not np.isfinite(eye).any():
        return np.zeros(len(eye), bool), np.zeros(len(eye), bool)
    return eye < BLINK * np.nanmedian(eye), mouth - np.nanpercentile(mouth, 5) >= threshold


def score_pair(scorer, outputs: list[np.ndarray], photo_desc: torch.Tensor, perf: Performance,
               driven: list[np.ndarray] | None = None, start: int = 0) -> dict:
    """An output sequence scored against its driver (see the module's docstring) from frame `start` on
    (the series in the result are whole): each side's blinks and mouth openings are found by the same rule
    on its own signal. `driven`: the landmarks the output was drawn from, whose blinks and mouth openings
    are counted too (the retargeting alone, before any picture)."""
    from puppet.faces.pose import STABLE

    found = [scorer.redetect(o) for o in outputs]
    o_eye, o_mouth = signals(found)
    d_eye, d_mouth = signals(perf.lms)
    s = slice(start, None)
    d_shut, d_open = _events(d_eye[s], d_mouth[s], MOUTH_OPEN)
    blinks, opens = runs(d_shut), runs(d_open)
    o_shut, o_open = _events(o_eye[s], o_mouth[s], MOUTH_OPEN / 2)
    extra = {}
    if driven is not None:
        l_shut, l_open = _events(*signals(driven[s]), MOUTH_OPEN / 2)
        extra = {"landmarks_blinks_followed": followed(blinks, l_shut),
                 "landmarks_mouth_opens_followed": followed(opens, l_open)}
    csim = torch.nn.functional.cosine_similarity(scorer.descriptors(outputs[s]), photo_desc, dim=-1)
    return {
        "r_eye": pearson(d_eye[s], o_eye[s]),
        "r_mouth": pearson(d_mouth[s], o_mouth[s]),
        "blinks": len(blinks), "blinks_followed": followed(blinks, o_shut),
        "mouth_opens": len(opens), "mouth_opens_followed": followed(opens, o_open),
        "face_found": sum(f is not None for f in found[s]) / len(found[s]),
        "csim": float(csim.mean()),
        "jitter": jitter(found[s]),
        "jitter_head": jitter(found[s], STABLE),
        "frames": len(outputs), "scored_from": start,
        "driver_frames_with_face": int(np.isfinite(d_eye).sum()),
        **extra,
        "series": {k: [None if not np.isfinite(v) else round(float(v), 4) for v in s]
                   for k, s in (("driver_eye", d_eye), ("output_eye", o_eye), ("driver_mouth", d_mouth),
                                ("output_mouth", o_mouth))},
    }


def real_jitter(scorer, perf: Performance, size: int, start: int) -> dict:
    """The jitter of a real face talking and blinking, measured as the outputs' is: the driver's own frames
    (from `start`, as scored), each cut with one fixed box (its photo's: the head moves inside the crop, as
    in an output) at `size` and re-detected."""
    import cv2

    from puppet.faces.crop import Crop
    from puppet.faces.pose import STABLE

    box = Crop.from_landmarks(perf.lms0)
    found = []
    cap = cv2.VideoCapture(str(perf.path))
    try:
        for k in range(len(perf.lms)):
            ok, frame = cap.read()
            if not ok:
                break
            if k >= start:
                found.append(scorer.redetect(box.apply(frame, size)))
    finally:
        cap.release()
    return {"jitter": jitter(found), "jitter_head": jitter(found, STABLE)}


def aggregate(pairs: list[dict]) -> dict:
    def mean(k, where=None):
        vals = [p[k] for p in pairs if p[k] is not None and (where is None or p[where])]
        return round(float(np.mean(vals)), 4) if vals else None

    b, bf = sum(p["blinks"] for p in pairs), sum(p["blinks_followed"] for p in pairs)
    m, mf = sum(p["mouth_opens"] for p in pairs), sum(p["mouth_opens_followed"] for p in pairs)
    lb = sum(p.get("landmarks_blinks_followed", 0) for p in pairs)
    lm = sum(p.get("landmarks_mouth_opens_followed", 0) for p in pairs)
    landmarks = all("landmarks_blinks_followed" in p for p in pairs)
    # r where the driver's signal carries something (a blink, a mouth opening): a driver that never blinks
    # has an eye signal of tracker noise, and its r measures nothing. Over all pairs too, in the JSON.
    return {"r_eye": mean("r_eye", "blinks"), "r_mouth": mean("r_mouth", "mouth_opens"),
            "r_eye_all": mean("r_eye"), "r_mouth_all": mean("r_mouth"),
            "blinks": b, "blinks_followed": bf, "blink_recall": round(bf / b, 4) if b else None,
            "mouth_opens": m, "mouth_opens_followed": mf,
            "mouth_open_recall": round(mf / m, 4) if m else None,
            "landmarks_blink_recall": round(lb / b, 4) if b and landmarks else None,
            "landmarks_mouth_open_recall": round(lm / m, 4) if m and landmarks else None,
            "face_found": mean("face_found"), "face_found_min": min(p["face_found"] for p in pairs),
            "csim": mean("csim"), "jitter": mean("jitter"), "jitter_head": mean("jitter_head"),
            "pairs": len(pairs)}


# ------------------------------------------------------------------------------------------ protocol
def pairs_of(n: int, drivers: int) -> list[tuple[int, int]]:
    """(target, driver) index pairs: each person driven by the `drivers` people after it, cyclically."""
    k = min(drivers, n - 1)
    return [(i, (i + j) % n) for i in range(n) for j in range(1, k + 1)]


def run_cross(a) -> dict:
    from bench.quality import EVAL_SIZE, Scorer, _sources, generate, to_eval_size, warp_baseline
    from puppet.errors import PuppetError

    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    if len(a.clips) < 2:
        raise PuppetError("--cross: needs at least two people (one drives the other); pass two or more "
                          "--clip, or a --corpus split with two or more people")
    perfs = []
    for name, path in a.clips:
        perfs.append(load_performance(name, path, a.cross_frames))
        found = sum(p is not None for p in perfs[-1].lms)
        log.info(f"{name}: face in {found} of {len(perfs[-1].lms)} frames")
    metas, names = _sources(a) if a.checkpoint else ({}, {})
    pairs = pairs_of(len(perfs), a.drivers)
    rows: dict[tuple[str, str], list[dict]] = {}
    per_pair = []
    scorer = Scorer()
    try:
        for ti in sorted({t for t, _ in pairs}):
            tgt = perfs[ti]
            photo, photo_lms = tgt.photo(EVAL_SIZE)
            photo_desc = scorer.descriptors([photo])
            models = {}
            for src, m in metas.items():
                size = m["config"].image_size
                for steps in a.steps:
                    from bench.quality import fit_row

                    models[(names[src], steps)] = fit_row(a, m, [tgt.photo(size)], steps)
            for t2, di in pairs:
                if t2 != ti:
                    continue
                drv = perfs[di]
                warmup = min(int(round(a.warmup * drv.fps)), len(drv.lms) - 3)
                entry = {"target": tgt.name, "driver": drv.name, "rows": {}}
                shown: dict[str, dict[str, list]] = {}
                for mode in a.retarget:
                    driven = drive(drv, EVAL_SIZE, photo_lms, mode)
                    outs = {"warp": (warp_baseline(photo, photo_lms, driven), driven)}
                    if a.still_head:
                        still = hold_head(driven, photo_lms)
                        outs[STILL_ROW] = (warp_baseline(photo, photo_lms, still), still)
                    for (label, steps), target in models.items():
                        d = drive(drv, target.image_size, target.ref_landmarks, mode)
                        outs[f"{label} steps={steps}"] = ([to_eval_size(o) for o in generate(target, d)], d)
                    for label, (outputs, d) in outs.items():
                        if a.save:
                            shown.setdefault(label, {})[mode] = outputs
                        s = score_pair(scorer, outputs, photo_desc, drv, d, warmup)
                        entry["rows"][f"{label} | {mode}"] = s
                        rows.setdefault((label, mode), []).append(s)
                        log.info(f"{tgt.name} driven by {drv.name}: {label}, {mode}: r eye "
                                 f"{_f(s['r_eye'])}, r mouth {_f(s['r_mouth'])}, blinks "
                                 f"{s['blinks_followed']}/{s['blinks']}, mouth "
                                 f"{s['mouth_opens_followed']}/{s['mouth_opens']}, "
                                 f"found {s['face_found']:.2f}")
                per_pair.append(entry)
                for label, by_mode in shown.items():
                    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{tgt.name}_by_{drv.name}_{label}")
                    save_strip(Path(a.save) / f"{name}.png", drv, by_mode)
        # The drivers' own frames, scored from the same frame as their pairs.
        used = sorted({d for _, d in pairs})
        reals = [real_jitter(scorer, perfs[d], EVAL_SIZE,
                             min(int(round(a.warmup * perfs[d].fps)), len(perfs[d].lms) - 3)) for d in used]
    finally:
        scorer.close()
    table = [{"row": label, "retarget": mode, **aggregate(v)} for (label, mode), v in rows.items()]
    drivers_real = {k: (round(float(np.mean(v)), 4) if v else None)
                    for k in ("jitter_head", "jitter") for v in [[r[k] for r in reals if r[k] is not None]]}
    return {"mode": "cross", "eval_size": EVAL_SIZE,
            "clips": [{"name": p.name, "path": str(p.path), "photo_frame": p.photo_index} for p in perfs],
            "split": a.split, "corpus": a.corpus, "cross_frames": a.cross_frames, "drivers": a.drivers,
            "warmup_s": a.warmup,
            "retarget": a.retarget, "pairs": [[perfs[t].name, perfs[d].name] for t, d in pairs],
            "thresholds": {"blink": BLINK, "mouth_open": MOUTH_OPEN, "follow_frames": FOLLOW},
            "table": table, "drivers_real": {**drivers_real, "drivers": len(used)}, "per_pair": per_pair,
            "seconds": round(time.perf_counter() - t_start, 1)}


def _read_frame(path, k: int) -> np.ndarray | None:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        frame = None
        for _ in range(k + 1):
            ok, frame = cap.read()
            if not ok:
                return None
        return frame
    finally:
        cap.release()


def strip_frames(perf: Performance) -> dict[str, int]:
    """The frames a strip shows: the driver's deepest blink and its widest-open mouth, after the first second
    (while the live driving calibrates and blends in, the output is the photo)."""
    eye, mouth = signals(perf.lms)
    start = min(int(round(perf.fps)), len(eye) - 1)
    eye[:start] = mouth[:start] = np.nan
    return {"blink": int(np.nanargmin(eye)), "mouth": int(np.nanargmax(mouth))}


def save_strip(path: Path, perf: Performance, outputs: dict[str, list[np.ndarray]]) -> None:
    """Rows (the driver's deepest blink, its widest-open mouth) of driver | one output per retargeting
    mode, all at EVAL_SIZE with a caption, to look at."""
    import cv2

    from bench.quality import EVAL_SIZE
    from puppet.faces.crop import Crop
    from puppet.files import atomic_path

    def caption(img, text):
        img = img.copy()
        cv2.putText(img, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        return img

    rows = []
    for what, k in strip_frames(perf).items():
        frame = _read_frame(perf.path, k)
        if frame is None:
            continue
        driver = Crop.from_landmarks(perf.lms[k]).apply(frame, EVAL_SIZE)
        rows.append(np.hstack([caption(driver, f"driver, {what} ({k})")]
                              + [caption(o[k], STRIP_CAPTIONS.get(m, m)) for m, o in outputs.items()]))
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(Path(path).suffix or ".png", np.vstack(rows))
        tmp.write_bytes(buf.tobytes())


def _f(v, nd: int = 3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def markdown(r: dict) -> str:
    n = len(r["clips"])
    where = (f"the {r['split']} split of {r['corpus']} ({n} people)" if r["corpus"]
             else f"{n} clips ({', '.join(c['name'] for c in r['clips'])})")
    lines = [
        f"Cross-reenactment on {where}: each person's photo (first face frame with the eyes open) driven by "
        f"the next {min(r['drivers'], n - 1)} people's clips ({len(r['pairs'])} pairs, the first "
        f"{r['cross_frames']} frames each) through the live loop's driving, scored after its first "
        f"{r['warmup_s']:g} s (calibration, blend-in); mediapipe on each output at "
        f"{r['eval_size']}x{r['eval_size']} against the driver's tracked landmarks.",
        "",
        "| row | retarget | r eye ↑ | r mouth ↑ | blink recall ↑ | mouth-open recall ↑ | face found ↑ "
        "| CSIM to photo ↑ | jitter, head ↓ | jitter, all ↓ | landmarks: blink, mouth-open recall ↑ |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    def pct(v):
        return "-" if v is None else f"{100 * v:.0f}%"

    def rec(row, k, n, f):
        return "-" if row[k] is None else f"{100 * row[k]:.0f}% ({row[f]}/{row[n]})"

    for row in r["table"]:
        found = f"{100 * row['face_found']:.1f}% (min {100 * row['face_found_min']:.0f}%)"
        lines.append(f"| {row['row']} | {row['retarget']} | {_f(row['r_eye'])} | {_f(row['r_mouth'])} | "
                     f"{rec(row, 'blink_recall', 'blinks', 'blinks_followed')} | "
                     f"{rec(row, 'mouth_open_recall', 'mouth_opens', 'mouth_opens_followed')} | {found} | "
                     f"{_f(row['csim'])} | {_f(row['jitter_head'], 4)} | {_f(row['jitter'], 4)} | "
                     f"{pct(row['landmarks_blink_recall'])}, {pct(row['landmarks_mouth_open_recall'])} |")
    if any(row["row"] == STILL_ROW for row in r["table"]):
        lines += ["", f"`{STILL_ROW}`: the warp drawn from the driven landmarks with the head's motion "
                      f"taken out (eye corners and nose exactly the photo's in every frame): its head jitter "
                      f"is what the re-detection reads into a head that does not move."]
    real = r.get("drivers_real")
    if real:
        lines += ["", f"The drivers' own frames ({real['drivers']} clips, each cut with one fixed box at "
                      f"{r['eval_size']}x{r['eval_size']} and re-detected the same way): jitter, head "
                      f"{_f(real['jitter_head'], 4)}, all {_f(real['jitter'], 4)}."]
    lines += [
        "",
        f"Blink: the driver's eye opening under {BLINK} of its median, followed when the output's is under "
        f"{BLINK} of its own median within {FOLLOW} frames. Mouth open: {MOUTH_OPEN} inter-ocular distances "
        f"above the driver's closed level (5th percentile), followed at half that above the output's. r: "
        f"Pearson over frames, mean over the pairs whose driver blinks / opens its mouth. Jitter: median "
        f"frame-to-frame landmark acceleration over the inter-ocular distance, of the points expressions "
        f"barely move (head: eye corners, nose) and of all 68 (faster lids and lips raise it). Landmarks: "
        f"the same recalls on the landmarks the output is drawn from (the retargeting before any picture). "
        f"Run took "
        f"{r['seconds']:.0f} s.",
    ]
    return "\n".join(lines)

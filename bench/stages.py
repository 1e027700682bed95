"""The live loop's stages one at a time, on the frames of a clip, with the live loop's own components:
decode (FileSource), track (Tracker video mode), filter + retarget (puppet.live.Driver), rasterise
(draw_sketch + to_tensor), warp (puppet.feed.Feeder.warped: the reference picture warped to the driving
landmarks at the config's image size, appearance targets only), compose (puppet.live.compose: the face
pasted back into the picture, framed at 1280x720; always with a 256² face, see COMPOSE_FACE), output (to_bgr +
FileSink.write of the 1280x720 frame). The generator has its own module.
Each stage is timed per frame, in milliseconds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.timing import summary


def demo_clip(path: str | Path, n_frames: int, height: int = 480, fps: float = 25.0) -> Path:
    """A synthetic talking clip of the packaged portrait (puppet.live.sources.demo_frames), written as mp4."""
    from puppet.data.clips import write_video
    from puppet.live.sources import demo_frames

    return write_video(path, demo_frames(n_frames, seed=0, height=height), fps)


def reference(frame, lms, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A face as a target's reference: its landmarks and image in the shared crop at `size`."""
    from puppet.faces.crop import Crop

    box = Crop.from_landmarks(lms)
    return box.to_crop(lms, size), box.apply(frame, size)


# The compose stage pastes a face of this size, whatever the config: its cost is the resize and blend over
# the face's box in the 1280x720 frame, which depends on how big the face is there, hardly on the crop's size.
COMPOSE_FACE = 256


def with_picture(target, frame: np.ndarray, lms: np.ndarray):
    """`target` with `frame` as its picture (the shared crop of the face `lms` as its crop_box), as
    puppet.finetune makes targets: the live loop then pastes the face back into it."""
    import dataclasses

    from puppet.faces.crop import Crop

    return dataclasses.replace(target, picture=frame, crop_box=Crop.from_landmarks(lms))


def compose(frame: np.ndarray, lms: np.ndarray, size: int = COMPOSE_FACE, n: int = 200
            ) -> tuple[list[float], dict]:
    """puppet.live.compose.Compositor per frame (the colour affine, the resize into the mask's box and the
    blend there, on a copy of the framed picture): a size² face pasted back into `frame`, framed at the
    default 1280x720. Milliseconds per frame (after a warm-up), and where it ran: the face size, the frame
    size and the mask's box in the frame."""
    from puppet.faces.crop import Crop
    from puppet.live.compose import Compositor
    from puppet.live.framing import Framing

    crop = Crop.from_landmarks(lms)
    ref = crop.apply(frame, size)
    framing = Framing()
    comp = Compositor(frame, crop, size, crop.to_crop(lms, size), framing, neutral=ref)
    faces = [np.ascontiguousarray(np.roll(ref, k, axis=1)) for k in range(8)]  # a new face every frame
    for f in faces:
        comp(f)
    ms = []
    for i in range(n):
        t0 = time.perf_counter()
        comp(faces[i % len(faces)])
        ms.append((time.perf_counter() - t0) * 1000.0)
    x0, y0, x1, y1 = comp.bbox or (0, 0, 0, 0)
    return ms, {"face": size, "frame": list(framing.size), "mask_box": [x1 - x0, y1 - y0]}


def read_frames(path: str | Path, max_frames: int | None = None) -> tuple[list, list[float], float]:
    """The frames of a video (up to max_frames), the milliseconds each took to decode, and its fps."""
    from puppet.live.sources import FileSource

    src = FileSource(path)
    frames, ms = [], []
    try:
        while max_frames is None or len(frames) < max_frames:
            c = src.read()
            if c is None:
                break
            frames.append(c.frame)
            ms.append(c.read_s * 1000.0)
    finally:
        src.close()
    return frames, ms[1:], src.fps  # the first frame was decoded when the file was opened


def track(frames: list[np.ndarray]) -> tuple[list[np.ndarray | None], list[float]]:
    """mediapipe in video mode over the frames in order: landmarks per frame and ms per frame
    (the first call, which builds the graph and runs the face detector, is left out of the times)."""
    from puppet.faces.track import Tracker

    lms, ms = [], []
    with Tracker(mode="video") as tracker:
        for i, f in enumerate(frames):
            t0 = time.perf_counter()
            pts = tracker(f)
            if i > 0:
                ms.append((time.perf_counter() - t0) * 1000.0)
            lms.append(pts)
    return lms, ms


def drive(lms: list[np.ndarray | None], target, fps: float) -> tuple[list[np.ndarray], list[float]]:
    """puppet.live.Driver (neutral calibration, One Euro filter, relative retargeting) per frame."""
    from puppet.feed import Feeder
    from puppet.live.driver import Driver
    from puppet.live.loop import LiveTarget

    driver = Driver(LiveTarget("bench", target, None, Feeder(target)), absolute=False, fps=fps)
    out, ms = [], []
    for i, p in enumerate(lms):
        t0 = time.perf_counter()
        q = driver(p, i / fps)
        ms.append((time.perf_counter() - t0) * 1000.0)
        out.append(q)
    return out, ms


def rasterise(lms: list[np.ndarray], size: int) -> tuple[list, list[float]]:
    """draw_sketch + to_tensor (what the live loop's process thread does) per frame."""
    from puppet.faces.images import to_tensor
    from puppet.faces.sketch import draw_sketch

    out, ms = [], []
    for p in lms:
        t0 = time.perf_counter()
        out.append(to_tensor(draw_sketch(p, size)))
        ms.append((time.perf_counter() - t0) * 1000.0)
    return out, ms


def warp(lms: list[np.ndarray], target) -> tuple[list, list[float]]:
    """The reference warped to each frame's landmarks and made a tensor (puppet.feed, what the live loop's
    process thread does for an appearance target) per frame, at the target's image size."""
    from puppet.faces.images import to_tensor
    from puppet.feed import Feeder

    feeder = Feeder(target)
    out, ms = [], []
    for p in lms:
        t0 = time.perf_counter()
        out.append(to_tensor(feeder.warped(p)))
        ms.append((time.perf_counter() - t0) * 1000.0)
    return out, ms


def output(images, path: str | Path, fps: float, compositor=None) -> list[float]:
    """to_bgr + FileSink.write (an mp4 of the output) per frame; with a compositor (puppet.live.compose), of
    the output frame it makes of each image (composed outside the timing: that is the compose stage)."""
    from puppet.faces.images import to_bgr
    from puppet.live.sinks import FileSink

    size = images[0].shape[-1] if compositor is None else compositor.framing.size
    sink = FileSink(path, size, fps)
    ms = []
    try:
        for img in images:
            t0 = time.perf_counter()
            bgr = to_bgr(img[0])
            if compositor is not None:
                t1 = time.perf_counter()
                bgr = compositor(bgr)
                t0 += time.perf_counter() - t1
            sink.write(bgr)
            ms.append((time.perf_counter() - t0) * 1000.0)
    finally:
        sink.close()
    return ms


def run_stages(frames: list[np.ndarray], decode_ms: list[float], fps: float, target, generate,
               out_path: str | Path) -> dict:
    """Median/p95 of each stage on this clip for `target` (its image size and reference landmarks);
    `generate(*inputs) -> image` produces the images the output stage writes (not timed here).
    A target with the appearance path adds the `warp` stage, and its generator gets the warps."""
    import torch

    lms, track_ms = track(frames)
    found = sum(p is not None for p in lms)
    if found < 2:
        raise RuntimeError(f"the tracker found a face in only {found} of {len(frames)} frames")
    driven, drive_ms = drive(lms, target, fps)
    sketches, raster_ms = rasterise(driven, target.image_size)
    extra = {}
    if target.config.takes_warp:
        warps, warp_ms = warp(driven, target)
        extra["warp"] = summary(warp_ms)
        inputs = list(zip(sketches, warps))
    else:
        inputs = [(s,) for s in sketches]
    with torch.inference_mode():
        images = [generate(*x) for x in inputs[:30]]
    from puppet.live.compose import Compositor

    first = next(i for i, p in enumerate(lms) if p is not None)
    compose_ms, where = compose(frames[first], lms[first])
    out_ms = output(images, out_path, fps, Compositor.for_target(target, quiet=True))
    return {
        "frames": len(frames),
        "frame_shape": list(frames[0].shape),
        "face_found": round(found / len(lms), 3),
        "decode": summary(decode_ms),
        "track": summary(track_ms),
        "filter_retarget": summary(drive_ms),
        "rasterise": summary(raster_ms),
        **extra,
        "compose": {**summary(compose_ms), **where},
        "output": summary(out_ms),
    }

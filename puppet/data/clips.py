"""Synthetic talking-head clips on disk: packaged portraits animated (puppet.data.motion) and written as mp4.

The warped landmarks are known exactly, so synthetic clips need no re-detection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from puppet.data.motion import animate
from puppet.errors import PuppetError
from puppet.files import VideoWriter


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 25.0) -> Path:
    """Write uint8 BGR frames to an mp4 (MPEG-4 Part 2 through OpenCV's FFmpeg), atomically.

    The frames must all have the same size. The codec needs even sides: an odd width or height is padded by
    one pixel on the right or bottom (a copy of the edge), so pixel coordinates don't change. Returns the
    path.
    """
    path = Path(path)
    if not frames:
        raise PuppetError(f"{path}: no frames to write; pass at least one frame")
    h, w = frames[0].shape[:2]
    pad_h, pad_w = h % 2, w % 2
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        video = VideoWriter(path, w + pad_w, h + pad_h, fps)
    except PuppetError:
        raise PuppetError(f"{path}: OpenCV can't write this video; use an .mp4 or .avi path") from None
    ok = False
    try:
        for f in frames:
            if f.shape[:2] != (h, w) or f.dtype != np.uint8:
                raise PuppetError(f"{path}: frames differ in size or type; pass uint8 frames of one size")
            if pad_h or pad_w:
                f = cv2.copyMakeBorder(f, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
            video.write(np.ascontiguousarray(f))
        ok = True
    finally:
        video.close(keep=ok)
    return path


def default_portraits() -> list[Path]:
    """Real portraits that ship inside installed packages (matplotlib's, and scikit-image's if present)."""
    from puppet.assets import astronaut, grace_hopper

    out = [grace_hopper()]
    a = astronaut()
    if a is not None:
        out.append(a)
    return out


def load_portraits(
    paths: Sequence[str | os.PathLike] | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, bgr, landmarks) for each portrait (default: `default_portraits()`); detects each face once.

    A file that isn't an image, or has no face, is a one-line PuppetError.
    """
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    out = []
    for p in paths or default_portraits():
        img = read_image(p)
        lms = detect(img)
        if lms is None:
            raise PuppetError(
                f"{p}: no face found in this portrait; pass a photo with one clear, frontal face"
            )
        out.append((Path(p).stem, img, np.asarray(lms, np.float32)))
    return out


def synthetic_clips(
    n: int,
    portraits: Sequence[tuple[str, np.ndarray, np.ndarray]],
    n_frames: int = 32,
    seed: int = 0,
    fps: float = 25.0,
) -> Iterator[tuple[str, list[np.ndarray], list[np.ndarray]]]:
    """N synthetic clips (name, frames, exact landmarks), cycling through the portraits.

    Clip i depends only on (seed, i), so a resumed run makes the same clips.
    """
    if not portraits:
        raise PuppetError("synthetic clips: no portraits; pass at least one portrait image")
    for i in range(int(n)):
        name, img, lms = portraits[i % len(portraits)]
        rng = np.random.default_rng([int(seed), i])
        frames, out_lms = animate(img, lms, n_frames, rng, fps=fps)
        yield f"{name}_{i:05d}", frames, out_lms


def write_synthetic_videos(
    out_dir: str | os.PathLike,
    n: int,
    portraits: Sequence[str | os.PathLike] | None = None,
    n_frames: int = 32,
    seed: int = 0,
    fps: float = 25.0,
    size: int | None = None,
) -> list[Path]:
    """Write N synthetic talking-head mp4s into `out_dir` (speaker/clip layout: one folder per portrait).

    `size` optionally scales each portrait first so that its longer side is `size` pixels (smaller files).
    """
    loaded = load_portraits(portraits)
    if size:
        scaled = []
        for name, img, lms in loaded:
            k = size / max(img.shape[:2])
            img2 = cv2.resize(
                img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_AREA
            )
            scaled.append((name, img2, lms * np.float32(k)))
        loaded = scaled
    paths = []
    for name, frames, _ in synthetic_clips(n, loaded, n_frames=n_frames, seed=seed, fps=fps):
        speaker = name.rsplit("_", 1)[0]
        paths.append(write_video(Path(out_dir) / speaker / f"{name}.mp4", frames, fps))
    return paths

"""The output frame and where the target's picture and face go in it.

`Framing` is the frame's size and fit: `fit` scales the whole picture into the frame, centred, black bars
where the aspect differs; `fill` fills the frame and crops the picture's overflow, keeping the face as
central as the picture allows (frame_geometry, frame_picture). `face_size` is the side of the face crop
that the live loop warps and pastes at: as many pixels as the face covers in the frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

FITS = ("fit", "fill")
DEFAULT_SIZE = (1280, 720)  # what Zoom, Meet, Teams and OBS expect; macOS's virtual camera requires it


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720); ValueError for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT")
    w, h = int(m.group(1)), int(m.group(2))
    if not (16 <= w <= 7680 and 16 <= h <= 7680):
        raise ValueError(f"{w}x{h} is outside 16x16 .. 7680x7680")
    return w, h


@dataclass(frozen=True)
class Framing:
    """The output frame: width x height, and how the picture goes into it (`fit` or `fill`)."""

    width: int = DEFAULT_SIZE[0]
    height: int = DEFAULT_SIZE[1]
    fit: str = "fit"

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {self.fit!r}")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"bad frame size {self.width}x{self.height}")

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def frame_geometry(shape: tuple[int, int], framing: Framing, focus: tuple[float, float] | None = None
                   ) -> tuple[float, float, float, tuple[int, int, int, int]]:
    """Where a picture of `shape` (h, w) goes in the frame: (scale f, offset x, offset y, footprint).

    A picture pixel x maps to the frame pixel f * (x + 0.5) - 0.5 + offset (pixel centres, as cv2.resize).
    `fit`: the whole picture, centred; `fill`: the frame covered, `focus` (picture pixels; default the centre)
    as central as the picture allows. The footprint (x0, y0, x1, y1) is the frame pixels whose centres lie on
    the picture."""
    h, w = shape[:2]
    W, H = framing.size
    f = (min if framing.fit == "fit" else max)(W / w, H / h)

    def offset(n: float, N: int, c: float | None) -> float:
        if n <= N or c is None:
            return (N - n) / 2
        return float(np.clip(N / 2 - f * (c + 0.5), N - n, 0.0))

    ox = offset(w * f, W, None if focus is None else focus[0])
    oy = offset(h * f, H, None if focus is None else focus[1])
    return f, ox, oy, _footprint(w * f, h * f, ox, oy, W, H)


def _footprint(nw: float, nh: float, ox: float, oy: float, W: int, H: int) -> tuple[int, int, int, int]:
    """Frame pixels x whose centre x + 0.5 lies in [ox, ox + nw] (and the same in y), clipped to the frame."""
    x0, y0 = max(0, int(np.ceil(ox - 0.5))), max(0, int(np.ceil(oy - 0.5)))
    x1, y1 = min(W, int(np.floor(ox + nw - 0.5)) + 1), min(H, int(np.floor(oy + nh - 0.5)) + 1)
    return x0, y0, max(x0, x1), max(y0, y1)


def frame_picture(picture: np.ndarray, framing: Framing, f: float, ox: float, oy: float) -> np.ndarray:
    """The picture framed (uint8 BGR (H, W, 3)): scaled by f, placed at (ox, oy) (see frame_geometry), black
    outside its footprint. Downscaling averages (INTER_AREA) and then places the result with a Lanczos
    sub-pixel shift; upscaling is one bilinear warp, like the face's."""
    h, w = picture.shape[:2]
    W, H = framing.size
    if f >= 1.0:
        F = np.array([[f, 0.0, 0.5 * f - 0.5 + ox], [0.0, f, 0.5 * f - 0.5 + oy]])
        out = cv2.warpAffine(picture, F, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    else:
        small = cv2.resize(picture, (0, 0), fx=f, fy=f, interpolation=cv2.INTER_AREA)  # x -> f(x+.5)-.5
        T = np.array([[1.0, 0.0, ox], [0.0, 1.0, oy]])
        whole = ox == round(ox) and oy == round(oy)
        out = cv2.warpAffine(small, T, (W, H), flags=cv2.INTER_NEAREST if whole else cv2.INTER_LANCZOS4,
                             borderMode=cv2.BORDER_REPLICATE)
    x0, y0, x1, y1 = _footprint(w * f, h * f, ox, oy, W, H)
    canvas = np.zeros_like(out)
    canvas[y0:y1, x0:x1] = out[y0:y1, x0:x1]
    return canvas


FACE_STEP = 16  # face sizes are rounded up to a multiple of this


def face_size(target, framing: Framing | None, cap: int | None = None) -> int:
    """The side of the face crop to warp and paste at for `target` in `framing`: about as many pixels as the
    face's crop covers in the output frame (rounded up to a multiple of FACE_STEP), at most the target's
    face_size and `cap`, never under the generator's image_size. The image_size itself for a target without
    a face_size, for the square crop output (framing None) and for a
    generator without the appearance path."""
    S = int(target.image_size)
    top = int(target.face_size or S)
    if cap is not None:
        top = min(top, int(cap))
    if framing is None or top <= S or target.picture is None or not target.config.takes_warp:
        return S
    crop = target.crop
    f = frame_geometry(target.picture.shape, framing, focus=(crop.cx, crop.cy))[0]
    shown = int(np.ceil(f * crop.size / FACE_STEP)) * FACE_STEP
    return max(S, min(top, shown))

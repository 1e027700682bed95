"""The ONE sketch rasteriser: 68 iBUG points -> a landmark drawing, the generator's input.

Every facial part is an anti-aliased polyline in its own colour on black, drawn in PARTS order. Prepare,
train, finetune and the live loop all call this function; tests/test_sketch.py pins its pixels, so a change
here is deliberate (and means retraining).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from puppet.faces.images import to_tensor
from puppet.faces.landmarks import PARTS

# BGR colour per part: distinct hues so the generator can tell the parts (and left from right) apart.
COLORS: dict[str, tuple[int, int, int]] = {
    "jaw": (255, 255, 255),  # white
    "right_brow": (0, 128, 255),  # orange (subject's right = image left)
    "left_brow": (255, 128, 0),  # azure
    "nose_bridge": (0, 255, 255),  # yellow
    "nose_lower": (0, 255, 0),  # green
    "right_eye": (0, 0, 255),  # red
    "left_eye": (255, 0, 0),  # blue
    "outer_lips": (255, 0, 255),  # magenta
    "inner_lips": (255, 255, 0),  # cyan
}

_SHIFT = 4  # fractional bits for cv2.polylines: points at 1/16 pixel precision
_SCALE = float(1 << _SHIFT)


def thickness(size: int) -> int:
    """Line width in pixels: 1 up to 191 px, 2 at 192-319 (256), 4 at 512; lines scale with the image."""
    return max(1, round(size / 128))


def draw_sketch(lms: np.ndarray, size: int) -> np.ndarray:
    """(68, 2) points in output pixel coords -> uint8 (size, size, 3) BGR sketch."""
    pts = np.asarray(lms, dtype=np.float32)
    if pts.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {pts.shape}")
    img = np.zeros((size, size, 3), dtype=np.uint8)
    fixed = np.round(pts * _SCALE).astype(np.int32)
    t = thickness(size)
    for name, (idx, closed) in PARTS.items():
        cv2.polylines(img, [fixed[idx]], closed, COLORS[name], t, cv2.LINE_AA, _SHIFT)
    return img


def sketch_tensor(lms: np.ndarray, size: int) -> torch.Tensor:
    """The sketch as the generator takes it: (1, 3, size, size) float32 RGB in [-1, 1]."""
    return to_tensor(draw_sketch(lms, size))


def bench_sketch(lms: np.ndarray, size: int = 256, n: int = 200) -> float:
    """Median milliseconds of one draw_sketch(lms, size) call over n calls."""
    import time

    draw_sketch(lms, size)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        draw_sketch(lms, size)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000.0

"""The ONE crop geometry: a square box around the face, as in VoxCeleb (head and some background).

Box from landmarks (after FFHQ's alignment rule, without its rotation, so the box stays axis-aligned):
  eye = mean of the four eye corners (36, 39, 42, 45), mouth = mean of the mouth corners (48, 54)
  centre = eye + 0.1 * (mouth - eye)                  (a little below the eyes: the head's middle)
  size   = max(4.0 * |eye_right - eye_left|, 3.6 * |mouth - eye|)
For a frontal face that is about 1.8-1.9x the width of the landmarks (jaw to jaw): the whole head with hair,
some neck and background, like VoxCeleb's frames. Only eye and mouth CORNERS are used because they stay put
when the subject blinks or talks; a landmark bounding box would grow and shrink with every opened mouth,
making the crop zoom in time with speech. The max of two distances keeps the size steady when the head
turns (the eye distance shrinks with yaw, the eye-mouth distance with pitch).

Coordinates follow OpenCV: integer values are pixel centres. The box (cx, cy, size) covers source
[cx - size/2, cx + size/2] and maps it onto the output's full extent [-0.5, out_size - 0.5].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from puppet.filter import OneEuroFilter

EYE_CORNERS = [36, 39, 42, 45]
MOUTH_CORNERS = [48, 54]
CENTRE_SHIFT = 0.45  # towards the mouth, in eye-to-mouth distances
EYE_SCALE = 5.0  # box size in eye-to-eye distances
MOUTH_SCALE = 4.5  # box size in eye-to-mouth distances


@dataclass(frozen=True)
class Crop:
    """A square box in source pixels: centre (cx, cy) and side `size`."""

    cx: float
    cy: float
    size: float

    @classmethod
    def from_landmarks(cls, lms: np.ndarray) -> Crop:
        p = np.asarray(lms, dtype=np.float64)
        if p.shape != (68, 2):
            raise ValueError(f"expected (68, 2) landmarks, got {p.shape}")
        eye_l = p[[36, 39]].mean(axis=0)  # image-left eye
        eye_r = p[[42, 45]].mean(axis=0)
        eye = (eye_l + eye_r) / 2
        mouth = p[MOUTH_CORNERS].mean(axis=0)
        e2m = mouth - eye
        c = eye + CENTRE_SHIFT * e2m
        size = max(EYE_SCALE * np.hypot(*(eye_r - eye_l)), MOUTH_SCALE * np.hypot(*e2m))
        return cls(float(c[0]), float(c[1]), float(max(size, 1.0)))

    def scale(self, out_size: int) -> float:
        return out_size / self.size

    def matrix(self, out_size: int) -> np.ndarray:
        """2x3 float64 affine from source pixels to crop pixels (for cv2.warpAffine and paste-back)."""
        s = self.scale(out_size)
        x0, y0 = self.cx - self.size / 2, self.cy - self.size / 2
        return np.array([[s, 0.0, -s * x0 - 0.5], [0.0, s, -s * y0 - 0.5]])

    def inverse_matrix(self, out_size: int) -> np.ndarray:
        """2x3 affine from crop pixels back to source pixels."""
        return cv2.invertAffineTransform(self.matrix(out_size))

    def to_crop(self, points: np.ndarray, out_size: int) -> np.ndarray:
        """Source pixel coords (N, 2) -> crop pixel coords (N, 2) float32."""
        p = np.asarray(points, dtype=np.float64)
        s = self.scale(out_size)
        x0, y0 = self.cx - self.size / 2, self.cy - self.size / 2
        return ((p - [x0, y0]) * s - 0.5).astype(np.float32)

    def from_crop(self, points: np.ndarray, out_size: int) -> np.ndarray:
        """Crop pixel coords (N, 2) -> source pixel coords (N, 2) float32 (inverse of to_crop)."""
        p = np.asarray(points, dtype=np.float64)
        s = self.scale(out_size)
        x0, y0 = self.cx - self.size / 2, self.cy - self.size / 2
        return ((p + 0.5) / s + [x0, y0]).astype(np.float32)

    def apply(self, bgr: np.ndarray, out_size: int, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
        """The box of `bgr` resampled to (out_size, out_size, 3); parts outside the frame replicate its edge.

        When shrinking by more than 2x, the box is first area-averaged (cv2.INTER_AREA) so that the result
        doesn't alias; the final sub-pixel placement is one bilinear cv2.warpAffine.
        """
        m = self.matrix(out_size)
        s = self.scale(out_size)
        h, w = bgr.shape[:2]
        if s < 0.5:
            # Cut the box (plus a margin) out of the frame, area-resize it, then warp the small residual.
            pad = int(np.ceil(2.0 / s)) + 2
            x0 = max(0, int(np.floor(self.cx - self.size / 2)) - pad)
            y0 = max(0, int(np.floor(self.cy - self.size / 2)) - pad)
            x1 = min(w, int(np.ceil(self.cx + self.size / 2)) + pad)
            y1 = min(h, int(np.ceil(self.cy + self.size / 2)) + pad)
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                roi = bgr[y0:y1, x0:x1]
                rw, rh = max(1, round((x1 - x0) * s * 2)), max(1, round((y1 - y0) * s * 2))
                small = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
                fx, fy = rw / (x1 - x0), rh / (y1 - y0)
                # frame -> small: x_s = (x - x0 + 0.5) * fx - 0.5 (cv2.resize's pixel-centre mapping)
                to_small = np.array(
                    [[fx, 0, (0.5 - x0) * fx - 0.5], [0, fy, (0.5 - y0) * fy - 0.5], [0, 0, 1]]
                )
                m = (np.vstack([m, [0, 0, 1]]) @ np.linalg.inv(to_small))[:2]
                bgr = small
        return cv2.warpAffine(bgr, m, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=border)


class CropSmoother:
    """Smooths the crop box over a video so the crop doesn't jitter: `smoother(lms, t=None) -> Crop`.

    A One Euro filter on (cx, cy, size) measured in units of the first box's size (so its parameters don't
    depend on the resolution). `t` is in seconds; without it frames are taken to come at `fps`.
    lms=None (no face this frame) holds the last box (None before the first face).
    """

    def __init__(self, min_cutoff: float = 0.3, beta: float = 5.0, d_cutoff: float = 1.0, fps: float = 30.0):
        self._filter = OneEuroFilter(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
        self.fps = fps
        self.reset()

    def reset(self) -> None:
        self._filter.reset()
        self._unit: float | None = None
        self._frame = 0
        self.last: Crop | None = None

    def __call__(self, lms: np.ndarray | None, t: float | None = None) -> Crop | None:
        if t is None:
            t = self._frame / self.fps
        self._frame += 1
        if lms is None:
            return self.last
        raw = Crop.from_landmarks(lms)
        if self._unit is None:
            self._unit = raw.size
        v = self._filter(np.array([raw.cx, raw.cy, raw.size]) / self._unit, t) * self._unit
        self.last = Crop(float(v[0]), float(v[1]), float(v[2]))
        return self.last

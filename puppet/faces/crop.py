"""The ONE crop geometry: a square box around the face, as in VoxCeleb (head and some background).

Box from landmarks, axis-aligned:
  size   = max(2.25 * |p16 - p0|, 5.6 * |eye - p33|)
  centre = eye + 0.1 * size * down
where eye = mean of the four eye corners (36, 39, 42, 45), p0/p16 the jaw's ends beside the ears, p33 the
subnasale and `down` the unit normal of the eye line (towards the mouth). The head fills about the middle
half of the box: hair and forehead above, chin at ~3/4 of the height, some neck and background, like
VoxCeleb's frames (checked by eye on grace_hopper, astronaut, mona_lisa, einstein and the talking_* clips).

Why these points: they don't move when the subject talks, blinks or pulls faces. A landmark bounding box
grows with every opened mouth (the chin drops), which makes the crop zoom in time with speech; mouth
corners move with every smile. Measured on the talking_* clips, the jaw width (mediapipe's smooth face
oval) jitters 0.1-0.4 % of its length per frame against 0.5-0.9 % for the eye distance and up to 1.7 % for
eye-to-mouth. The second term takes over when the head turns (the jaw width shrinks with yaw; the
eye-to-nose distance doesn't): for a frontal face |eye - p33| is about 0.34 of the jaw width, so 5.6 x that
is ~85 % of the first term and only wins past ~30 degrees of yaw.

Coordinates follow OpenCV: integer values are pixel centres. The box (cx, cy, size) covers source
[cx - size/2, cx + size/2] and maps it onto the output's full extent [-0.5, out_size - 0.5].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from puppet.faces.filter import OneEuroFilter

EYE_CORNERS = [36, 39, 42, 45]
JAW_WIDTH_SCALE = 2.25  # box size in jaw widths (p0 to p16)
NOSE_SCALE = 5.6  # box size in eye-line-to-subnasale distances
CENTRE_DROP = 0.1  # box centre below the eye line, in box sizes (eyes at 40 % of the height)


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
        eye = p[EYE_CORNERS].mean(axis=0)
        across = p[[42, 45]].mean(axis=0) - p[[36, 39]].mean(axis=0)  # image-left eye -> image-right eye
        down = np.array([-across[1], across[0]]) / max(np.hypot(*across), 1e-6)  # +90 degrees, y down
        size = max(JAW_WIDTH_SCALE * np.hypot(*(p[16] - p[0])), NOSE_SCALE * np.hypot(*(p[33] - eye)), 1.0)
        c = eye + CENTRE_DROP * size * down
        return cls(float(c[0]), float(c[1]), float(size))

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

        When shrinking by more than 2x, the box is first halved with cv2.pyrDown (a Gaussian, so the result
        doesn't alias) until the rest is under 2x; the final sub-pixel placement is one bilinear warpAffine.
        """
        m = self.matrix(out_size)
        s = self.scale(out_size)
        h, w = bgr.shape[:2]
        if s < 0.5:
            # Cut the box (plus a margin for the filters) out of the frame, halve it n times, warp the rest.
            pad = int(np.ceil(4.0 / s)) + 2
            x0 = max(0, int(np.floor(self.cx - self.size / 2)) - pad)
            y0 = max(0, int(np.floor(self.cy - self.size / 2)) - pad)
            x1 = min(w, int(np.ceil(self.cx + self.size / 2)) + pad)
            y1 = min(h, int(np.ceil(self.cy + self.size / 2)) + pad)
            if x1 - x0 >= 8 and y1 - y0 >= 8:
                small, n = bgr[y0:y1, x0:x1], 0
                while s * 2 ** (n + 1) <= 1.0 and min(small.shape[:2]) >= 4:
                    small, n = cv2.pyrDown(small), n + 1
                # pyrDown's pixel i is centred on pixel 2i of its input: frame x -> (x - x0) / 2^n
                # so the small image's warp is m after (x_small * 2^n + x0); written out, no matrix inverse
                m = np.hstack([m[:, :2] * 2.0**n, (m[:, :2] @ [x0, y0] + m[:, 2])[:, None]])
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

"""Head pose and expression on the 68 landmarks: `Motion` + `move(lms, motion)`.

`move` gives new landmarks for a head pose (yaw, pitch, roll, shift, scale) and an expression (mouth opening,
blink). Yaw and pitch rotate the landmarks in 3D with a generic per-point depth and project them back
(orthographic), so the nose moves more than the cheeks and the far side foreshortens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Points whose motion says where the head as a whole went (brows, nose, eye corners; not the jaw, lips or
# lids, which an expression moves).
_RIGID = list(range(17, 36)) + [36, 39, 42, 45]
_INNER_LIPS = list(range(60, 68))


def _face_frame(lms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Centre, unit right and down vectors along the face (the eye line), and the half width."""
    lms = np.asarray(lms, np.float64)
    right = lms[42:48].mean(0) - lms[36:42].mean(0)
    norm = np.linalg.norm(right)
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("landmarks are degenerate: the two eyes coincide")
    ex = right / norm
    ey = np.array([-ex[1], ex[0]])  # 90 degrees clockwise on screen (image y points down) = down the face
    half_width = max(float(np.linalg.norm(lms[16] - lms[0])) / 2.0, 1.5 * norm / 2.0)
    centre = lms[27:36].mean(0)  # the nose: the middle of the face in both directions
    return centre, ex, ey, half_width


# Generic depth (towards the camera) of each iBUG point, in units of the face's half width (jaw 0 to 16, / 2),
# with the jaw's ends (beside the ears) at 0. Rough values read off a mean 3D face: the nose tip is the most
# forward point, the eyes sit back in their sockets, the jaw curves back towards the ears.
_DEPTH = np.array(
    [0.9 * math.cos(abs(i - 8) / 8 * math.pi / 2) for i in range(17)]  # jaw 0-16
    + [0.45, 0.65, 0.8, 0.85, 0.85, 0.85, 0.85, 0.8, 0.65, 0.45]  # brows 17-26
    + [0.85, 0.95, 1.05, 1.15]  # nose bridge 27-30
    + [0.85, 0.95, 1.0, 0.95, 0.85]  # lower nose 31-35
    + [0.55, 0.7, 0.72, 0.7, 0.72, 0.7]  # eye 36-41
    + [0.7, 0.72, 0.7, 0.55, 0.7, 0.72]  # eye 42-47
    + [0.75, 0.9, 0.97, 1.0, 0.97, 0.9, 0.75, 0.9, 0.97, 1.0, 0.97, 0.9]  # outer lips 48-59
    + [0.78, 0.92, 0.95, 0.92, 0.78, 0.92, 0.95, 0.92],  # inner lips 60-67
    dtype=np.float32,
)

# Yaw and pitch turn the face about a point this far behind the jaw-end plane (half widths): a head is a ball
# whose centre sits behind the face.
_PIVOT_DEPTH = 0.3

# Mouth opening: how far each point drops (fraction of the full opening) when the jaw opens. The lower lip and
# chin move with the jaw; the corners half as much; the upper lip barely lifts.
_MOUTH_DROP = np.zeros(68, np.float32)
_MOUTH_DROP[[65, 66, 67, 56, 57, 58]] = 1.0
_MOUTH_DROP[[55, 59]] = 0.85
_MOUTH_DROP[[60, 64]] = 0.45
_MOUTH_DROP[[48, 54]] = 0.35
_MOUTH_DROP[8] = 0.85
_MOUTH_DROP[[7, 9]] = 0.75
_MOUTH_DROP[[6, 10]] = 0.55
_MOUTH_DROP[[5, 11]] = 0.3
_MOUTH_DROP[[4, 12]] = 0.1
_MOUTH_DROP[[61, 62, 63]] = -0.08
_MOUTH_OPEN = 0.3  # full opening, in half widths (a wide-open jaw)

# Blink: upper-lid point, matching lower-lid point. A closing eye's upper lid comes most of the way down.
_LIDS = [(37, 41), (38, 40), (43, 47), (44, 46)]
_LID_MEET = 0.75  # where the lids meet: this fraction of the way from the upper lid to the lower lid



@dataclass(frozen=True)
class Motion:
    """A head pose and expression relative to the portrait's own.

    Angles in degrees (yaw > 0 turns the face towards the image's right, pitch > 0 tilts it down, roll > 0
    rotates it clockwise on screen); mouth in [0, 1] (1 = wide open); blink in [0, 1] (1 = eyes shut);
    dx, dy a shift in face half-widths; scale a size factor.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    mouth: float = 0.0
    blink: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0


def move(lms: np.ndarray, motion: Motion) -> np.ndarray:
    """The landmarks of the same face after `motion`, (68, 2) float32 in the same pixel coordinates."""
    lms = np.asarray(lms, np.float32)
    if lms.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lms.shape}")
    c, ex, ey, w = _face_frame(lms)
    d = lms.astype(np.float64) - c
    u = d @ ex / w
    v = d @ ey / w
    z = _DEPTH.astype(np.float64) + _PIVOT_DEPTH

    # Expression first, in the face's own frame.
    v = v + motion.mouth * _MOUTH_OPEN * _MOUTH_DROP
    u[[48, 60]] += 0.06 * motion.mouth  # the corners come in a little as the jaw drops
    u[[54, 64]] -= 0.06 * motion.mouth
    for up, lo in _LIDS:
        meet_u = u[up] + _LID_MEET * (u[lo] - u[up])
        meet_v = v[up] + _LID_MEET * (v[lo] - v[up])
        u[up] += motion.blink * (meet_u - u[up])
        v[up] += motion.blink * (meet_v - v[up])
        u[lo] += motion.blink * (meet_u - u[lo])
        v[lo] += motion.blink * (meet_v - v[lo])

    # Yaw about the vertical axis, then pitch about the horizontal one, both through the pivot behind the
    # face.
    # The pivot's own projection doesn't move, so the face slides within the head's outline as it turns.
    a, b = math.radians(motion.yaw), math.radians(motion.pitch)
    u, z = u * math.cos(a) + z * math.sin(a), -u * math.sin(a) + z * math.cos(a)
    v = v * math.cos(b) + z * math.sin(b)

    # Roll, scale and shift on screen.
    r = math.radians(motion.roll)
    u, v = u * math.cos(r) - v * math.sin(r), u * math.sin(r) + v * math.cos(r)
    u = u * motion.scale + motion.dx
    v = v * motion.scale + motion.dy
    out = c + w * (u[:, None] * ex + v[:, None] * ey)
    return out.astype(np.float32)


# Points whose image positions say where the face is, its size and roll, and that expressions barely move:
# the eye corners and the nose (iBUG-68, puppet/faces/landmarks.py).
STABLE = [36, 39, 42, 45, 27, 28, 29, 30, 31, 33, 35]
LEFT_EYE = list(range(36, 42))
RIGHT_EYE = list(range(42, 48))


@dataclass(frozen=True)
class FaceFrame:
    """A face's similarity frame: image point p <-> normalised q = R(-angle) (p - centre) / scale."""

    centre: np.ndarray  # (2,)
    scale: float
    angle: float  # radians, roll of the eye line

    @classmethod
    def of(cls, lms: np.ndarray) -> FaceFrame:
        lms = np.asarray(lms, dtype=np.float64)
        left, right = lms[LEFT_EYE].mean(0), lms[RIGHT_EYE].mean(0)
        d = right - left
        scale = float(np.hypot(*d))
        if not np.isfinite(scale) or scale < 1e-6:
            # Degenerate (all points on top of each other): fall back to the RMS spread.
            scale = max(float(np.sqrt(((lms - lms.mean(0)) ** 2).sum(1).mean())), 1e-6)
        return cls(lms[STABLE].mean(0), scale, float(np.arctan2(d[1], d[0])))

    def to_local(self, pts: np.ndarray) -> np.ndarray:
        return (np.asarray(pts, np.float64) - self.centre) @ _rot(-self.angle).T / self.scale

    def from_local(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(q, np.float64) * self.scale @ _rot(self.angle).T + self.centre


def _rot(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s], [s, c]])

"""Retargeting: map the driver's 68 landmarks onto the target's face (pure numpy).

Relative motion transfer (the live default). A face's *frame* is a similarity (centre, scale, roll) taken
from points that expressions barely move: centre = mean of the eye corners and nose, scale = inter-ocular
distance (between the eye centres), roll = angle of the eye line. Each driver frame is split into
  - head motion relative to the driver's neutral: shift (in neutral inter-ocular units, image axes),
    scale ratio and roll difference, and
  - expression: the frame's landmarks in its own normalised frame minus the neutral's.
Both are applied to the target's reference landmarks, so a driver whose face is larger, elsewhere in the
picture, tilted at rest or shaped differently produces the same target motion: only the *change* from the
neutral transfers.

Also here: the steady-neutral calibrator and the face-lost hold/ease/resume logic, so the live loop is
plumbing and this math is unit-tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# iBUG-68 indices (see puppet/faces/landmarks.py): eye corners and the nose move little with expressions.
LEFT_EYE = list(range(36, 42))
RIGHT_EYE = list(range(42, 48))
STABLE = [36, 39, 42, 45, 27, 28, 29, 30, 31, 33, 35]


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


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


class RelativeRetargeter:
    """Driver landmarks -> target landmarks, relative to a recorded driver neutral.

    ref: the target's reference landmarks (68, 2) in its crop pixels.
    max_shift: head translation limit, in inter-ocular distances (keeps the face inside the crop).
    scale_range: limits on the head's scale ratio to the neutral (leaning in/out).
    roll: transfer head roll (False removes it; the target keeps its own).
    """

    def __init__(self, ref: np.ndarray, max_shift: float = 0.6, scale_range=(0.75, 1.33), roll: bool = True):
        self.ref = np.asarray(ref, np.float64)
        self.ref_frame = FaceFrame.of(self.ref)
        self.ref_local = self.ref_frame.to_local(self.ref)
        self.max_shift = max_shift
        self.scale_range = scale_range
        self.roll = roll
        self.neutral: np.ndarray | None = None

    def set_neutral(self, neutral: np.ndarray) -> None:
        self.neutral = np.asarray(neutral, np.float64)
        self._nf = FaceFrame.of(self.neutral)
        self._n_local = self._nf.to_local(self.neutral)

    def __call__(self, lms: np.ndarray) -> np.ndarray:
        if self.neutral is None:
            raise RuntimeError("set_neutral() first")
        cf = FaceFrame.of(lms)
        expression = cf.to_local(lms) - self._n_local
        # Head translation in image axes (sideways stays sideways even if the neutral head is tilted),
        # in units of the neutral's inter-ocular distance.
        shift = (cf.centre - self._nf.centre) / self._nf.scale
        norm = float(np.hypot(*shift))
        if norm > self.max_shift:
            shift *= self.max_shift / norm
        ratio = float(np.clip(cf.scale / self._nf.scale, *self.scale_range))
        droll = _wrap(cf.angle - self._nf.angle) if self.roll else 0.0
        rf = self.ref_frame
        out_frame = FaceFrame(
            centre=rf.centre + shift * rf.scale,
            scale=rf.scale * ratio,
            angle=rf.angle + droll,
        )
        return out_frame.from_local(self.ref_local + expression).astype(np.float32)


def motion(a: np.ndarray, b: np.ndarray) -> float:
    """How much a face moved between two landmark sets, in inter-ocular distances (RMS over points)."""
    s = FaceFrame.of(a).scale
    return float(np.sqrt(((np.asarray(a, np.float64) - b) ** 2).sum(1).mean()) / s)


class NeutralCalibrator:
    """Finds the driver's neutral: the mean of the first `n_steady` consecutive steady frames.

    A frame is steady when the face moved less than `threshold` (inter-ocular distances, RMS) since the
    previous one. Until then, `provisional` (the first face seen) serves so the output starts at once.
    """

    def __init__(self, n_steady: int = 8, threshold: float = 0.02):
        self.n_steady = n_steady
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self.run: list[np.ndarray] = []
        self.provisional: np.ndarray | None = None
        self.neutral: np.ndarray | None = None

    @property
    def done(self) -> bool:
        return self.neutral is not None

    def update(self, lms: np.ndarray) -> np.ndarray | None:
        """Feed a face; returns a (new) neutral when it changes (the provisional one, then the steady one)."""
        if self.done:
            return None
        lms = np.asarray(lms, np.float64)
        if self.run and motion(self.run[-1], lms) > self.threshold:
            self.run = []
        self.run.append(lms)
        if len(self.run) >= self.n_steady:
            self.neutral = np.mean(self.run, axis=0)
            return self.neutral
        if self.provisional is None:
            self.provisional = lms
            return lms
        return None


def smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


class Continuity:
    """Keeps the driving landmarks continuous when the face comes and goes, or the neutral is reset.

    - before any face: the target's reference (its neutral);
    - face lost: hold the last pose, then ease to the reference over `ease_s` (smoothstep, so it starts
      as a hold);
    - face back (or `jump()` after a recalibration): blend from where the output was to the live pose over
      `resume_s`.
    Times are seconds (the frame's capture timestamp).
    """

    def __init__(self, ref: np.ndarray, ease_s: float = 0.75, resume_s: float = 0.3):
        self.ref = np.asarray(ref, np.float64)
        self.ease_s = ease_s
        self.resume_s = resume_s
        self.last = self.ref.copy()
        self._lost: tuple[float, np.ndarray] | None = (float("-inf"), self.ref.copy())
        self._resume: tuple[float, np.ndarray] | None = None

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def jump(self, t: float) -> None:
        """The live pose is about to jump (new neutral, new target): blend over it."""
        self._resume = (t, self.last.copy())

    def __call__(self, lms: np.ndarray | None, t: float) -> np.ndarray:
        if lms is None:
            if self._lost is None:
                self._lost = (t, self.last.copy())
                self._resume = None
            t0, held = self._lost
            w = smoothstep((t - t0) / self.ease_s) if self.ease_s > 0 else 1.0
            out = (1 - w) * held + w * self.ref
        else:
            if self._lost is not None:
                self._lost = None
                self._resume = (t, self.last.copy())
            out = np.asarray(lms, np.float64)
            if self._resume is not None:
                t0, start = self._resume
                w = smoothstep((t - t0) / self.resume_s) if self.resume_s > 0 else 1.0
                out = (1 - w) * start + w * out
                if w >= 1.0:
                    self._resume = None
        self.last = out
        return out.astype(np.float32)

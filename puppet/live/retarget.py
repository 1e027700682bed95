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
The eyes and the mouth are the exception (transfer_openness, on by default): they move by how open they
are, each eye as a fraction of the driver's own neutral opening, the mouth in mouth widths, so a blink
closes any target's eyes and no lid or lip crosses its partner.

Also here: the steady-neutral calibrator and the face-lost hold/ease/resume logic, so the live loop is
plumbing and this math is unit-tested on its own.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from puppet.faces.pose import FaceFrame
from puppet.faces.regions import (
    EYE_LIDS,
    INNER_LIPS,
    MOUTH_CORNERS,
    eye_openness,
    face_up,
    gaps,
)


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


class RelativeRetargeter:
    """Driver landmarks -> target landmarks, relative to a recorded driver neutral.

    ref: the target's reference landmarks (68, 2) in its crop pixels.
    max_shift: head translation limit, in inter-ocular distances (keeps the face inside the crop).
    scale_range: limits on the head's scale ratio to the neutral (leaning in/out).
    roll: transfer head roll (False removes it; the target keeps its own).
    openness: the eyes and the mouth follow how open the driver's are (transfer_openness), and no lid or lip
        crosses its partner (uncross); False: they move by the driver's offsets like the rest of the face.
    """

    def __init__(self, ref: np.ndarray, max_shift: float = 0.6, scale_range=(0.75, 1.33), roll: bool = True,
                 openness: bool = True):
        self.ref = np.asarray(ref, np.float64)
        self.ref_frame = FaceFrame.of(self.ref)
        self.ref_local = self.ref_frame.to_local(self.ref)
        self.max_shift = max_shift
        self.scale_range = scale_range
        self.roll = roll
        self.openness = openness
        self.neutral: np.ndarray | None = None
        self._eyes_seen: deque = deque(maxlen=EYE_HISTORY)

    def set_neutral(self, neutral: np.ndarray) -> None:
        self.neutral = np.asarray(neutral, np.float64)
        self._nf = FaceFrame.of(self.neutral)
        self._n_local = self._nf.to_local(self.neutral)
        self._n_eyes = eye_openness(self._n_local)

    def __call__(self, lms: np.ndarray) -> np.ndarray:
        if self.neutral is None:
            raise RuntimeError("set_neutral() first")
        cf = FaceFrame.of(lms)
        local = cf.to_local(lms)
        expression = local - self._n_local
        if self.openness:
            # The neutral's eyes may have been caught mid-blink or squinting: an eye open wider than that for
            # most of the last frames is the open eye.
            self._eyes_seen.append(eye_openness(local))
            eyes = self._n_eyes
            if len(self._eyes_seen) >= EYE_HISTORY // 4:
                eyes = np.maximum(eyes, np.median(self._eyes_seen, axis=0))
            expression = transfer_openness(expression, self.ref_local, local, self._n_local, eyes)
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
        out = out_frame.from_local(self.ref_local + expression)
        if self.openness:
            out = uncross(out)
        return out.astype(np.float32)


# How an opening that changes is shared between the two sides: the upper lid does most of a blink (as
# puppet.faces.pose draws one), the jaw most of a mouth opening.
UPPER_LID_SHARE = 0.75
UPPER_LIP_SHARE = 0.3
UPPER_LIP = [61, 62, 63, 49, 50, 51, 52, 53]  # inner and outer upper lip, between the corners
LOWER_LIP = [65, 66, 67, 55, 56, 57, 58, 59]
# A tracker never sees a shut eye fully shut (mediapipe reads a blink's closed lids at 0-25 % of the open
# eye): at or under this fraction of its neutral opening an eye is shut, and the fractions above it are
# stretched to keep neutral at neutral.
EYE_SHUT = 0.2
EYE_MAX = 1.5  # the widest an eye opens, as a multiple of its neutral opening (a surprised stare)
EYE_HISTORY = 60  # frames of the driver's eye openings kept to check its neutral's (about 2 s)


def _set_gap(shape: np.ndarray, up: np.ndarray, upper, lower, change: float, upper_share: float) -> None:
    """Open the points `upper` away from `lower` by `change` along `up` (negative: close), in place."""
    shape[upper] += up * change * upper_share
    shape[lower] -= up * change * (1.0 - upper_share)


def transfer_openness(expression: np.ndarray, ref: np.ndarray, driver: np.ndarray, neutral: np.ndarray,
                      neutral_eyes: np.ndarray | None = None) -> np.ndarray:
    """The expression with the eyes and the mouth moved by how open the driver's are, on the target's scale.

    All four are (68, 2) in normalised face frames (FaceFrame.to_local): `expression` the driver's offsets
    from its neutral, `ref` the target's reference, `driver` the driver's frame, `neutral` its neutral.
    - Each eye: its opening (eye_openness) as a fraction of the driver's neutral opening (EYE_SHUT and
      under: shut), applied to the same eye of the target (each lid pair's own opening times that
      fraction, at most EYE_MAX): a driver with narrow eyes shuts a wide-eyed target's fully, a wide-eyed
      one doesn't push its lids through.
    - The mouth: the inner lips' mean opening in units of each face's own neutral mouth width (corner to
      corner), so closed is closed and half open is half open on any face (a mouth's neutral is usually
      shut, so a fraction of it would mean nothing); the lips keep the shape the offsets gave them.
    Everything else is the expression as given. `neutral_eyes`: the driver's neutral eye openings, where
    known better than from `neutral` alone (RelativeRetargeter's)."""
    shape = ref + expression
    if neutral_eyes is None:
        neutral_eyes = eye_openness(neutral)
    fraction = eye_openness(driver) / np.maximum(neutral_eyes, 1e-6)
    fraction = np.where(fraction < 1.0, (fraction - EYE_SHUT) / (1.0 - EYE_SHUT), fraction)
    fraction = np.clip(fraction, 0.0, EYE_MAX)
    eyes = np.concatenate([np.maximum(gaps(ref, pairs), 0.0) * f for pairs, f in zip(EYE_LIDS, fraction)])
    width = max(float(np.linalg.norm(neutral[MOUTH_CORNERS[0]] - neutral[MOUTH_CORNERS[1]])), 1e-6)
    ref_width = float(np.linalg.norm(ref[MOUTH_CORNERS[0]] - ref[MOUTH_CORNERS[1]]))
    mouth = max(float(gaps(driver, INNER_LIPS).mean()), 0.0) / width * ref_width
    # The lips' opening profile from the offsets, uncrossed: shifted to open further, scaled to close.
    lips = np.maximum(gaps(shape, INNER_LIPS), 0.0)
    m = float(lips.mean())
    lips = lips + (mouth - m) if mouth >= m else lips * (mouth / m)
    return with_openings(shape, np.concatenate([eyes, lips])) - ref


OPENINGS = (*EYE_LIDS[0], *EYE_LIDS[1], *INNER_LIPS)  # the pairs whose opening carries a blink or a word


def openings(lms: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """The OPENINGS pairs' openings (gaps), in pixels."""
    return gaps(lms, OPENINGS, up)


def with_openings(lms: np.ndarray, want: np.ndarray) -> np.ndarray:
    """The landmarks with each OPENINGS pair opened or closed to `want` (the lids and lips split the change
    by their shares, the outer lips following the inner ones' mean), then uncrossed."""
    out = np.array(lms, np.float64)
    up = face_up(out)
    change = np.asarray(want, np.float64) - openings(out, up)
    for (u, lo), c in zip(OPENINGS[:4], change[:4]):
        _set_gap(out, up, [u], [lo], c, UPPER_LID_SHARE)
    for (u, lo), c in zip(OPENINGS[4:], change[4:]):
        _set_gap(out, up, [u], [lo], c, UPPER_LIP_SHARE)
    _set_gap(out, up, UPPER_LIP[3:], LOWER_LIP[3:], float(change[4:].mean()), UPPER_LIP_SHARE)
    return uncross(out, up)


def uncross(lms: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """The landmarks with no upper lid below its lower lid and no inner upper lip below the lower one: a
    crossed pair meets where it crossed (split by the same shares as an opening)."""
    out = np.array(lms, np.float64)
    if up is None:
        up = face_up(out)
    for pairs, share in ((EYE_LIDS[0], UPPER_LID_SHARE), (EYE_LIDS[1], UPPER_LID_SHARE),
                         (INNER_LIPS, UPPER_LIP_SHARE)):
        for (u, lo), g in zip(pairs, gaps(out, pairs, up)):
            if g < 0:
                _set_gap(out, up, [u], [lo], -g, share)
    return out


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

"""Motion strength per part: how strongly the eyes, brows, mouth and head follow the driver.

Applied to the target's driving landmarks (after retargeting and the One Euro filter), relative to the
target's own neutral (its reference landmarks). The landmarks are split the way the retargeter splits the
driver: a head frame (centre, scale, roll; puppet.faces.pose.FaceFrame) and an expression (each point in
that frame, minus the neutral's). Each part's gain scales its share:

    eyes 36-47, brows 17-26, mouth 48-67 with the lower jaw 4-12: the expression of those points
    position, scale, roll: the head frame's shift, log scale ratio and roll relative to the neutral
The nose and the upper jaw line always follow (in 2D landmarks they carry the head's turns and nods).

0 freezes a part at the target's neutral, 1 follows the driver (exactly: the landmarks pass unchanged),
above 1 exaggerates. Exaggeration is limited smoothly: each limit below is a bound that a tanh approaches,
with the landmarks unchanged well inside it and always between the neutral and what gain 1 gives (so a gain
of at most 1 is never limited, and the driver's own pose is never cut). Lengths are in the target's
inter-ocular distances (IOD):

    head position    shift at most 0.8 IOD (unchanged up to 0.6, the retargeter's own limit)
    head scale       0.7x to 1.4x the neutral (unchanged in 0.75-1.33x, the retargeter's range)
    head roll        at most 45 degrees (unchanged up to 30)
    eyes             each eye's lid gap between 0 (shut: the lids never cross) and 2x the neutral's
    brows            0.08 to 0.6 IOD above the upper lids (never into the eyes)
    mouth            inner-lip gap 0 to 0.8 IOD (the lips never cross); the lower lip at least 0.15 IOD
                     above the chin and the upper lip 0.05 IOD below the nose; width 0.5-1.5x the neutral's;
                     the chin drops at most 0.6 IOD

A part whose exaggeration hits a limit is scaled as a whole by the largest gain that keeps it (its shape is
the driver's expression, stretched less), so points within a part never fold over each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from puppet.faces.pose import STABLE, FaceFrame
from puppet.faces.regions import EYE_LIDS, INNER_LIPS
from puppet.faces.warp import _control_points, _mesh
from puppet.live.retarget import _wrap

EYES = list(range(36, 48))
BROWS = list(range(17, 27))
MOUTH = list(range(48, 68))
JAW = list(range(4, 13))  # the lower jaw: it opens the mouth
WEIGHTS = {part: np.zeros(68) for part in ("eyes", "brows", "mouth")}
WEIGHTS["eyes"][EYES] = 1.0
WEIGHTS["brows"][BROWS] = 1.0
WEIGHTS["mouth"][MOUTH] = 1.0
WEIGHTS["mouth"][JAW] = 1.0
PARTS = ("eyes", "brows", "mouth", "position", "scale", "roll")
MAX_GAIN = 3.0
STEP = 0.1



@dataclass(frozen=True)
class Gains:
    eyes: float = 1.0
    brows: float = 1.0
    mouth: float = 1.0
    position: float = 1.0
    scale: float = 1.0
    roll: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v <= MAX_GAIN):
                raise ValueError(f"{f.name} gain {v!r}: must be a number from 0 to {MAX_GAIN:g}")
            object.__setattr__(self, f.name, float(v))

    @property
    def unity(self) -> bool:
        return all(getattr(self, p) == 1.0 for p in PARTS)

    def as_dict(self) -> dict[str, float]:
        return {p: getattr(self, p) for p in PARTS}

    def set(self, part: str, value: float) -> Gains:
        """A copy with `part` at `value`, brought into [0, MAX_GAIN] (keys step past the ends)."""
        return replace(self, **{part: min(max(round(value, 3), 0.0), MAX_GAIN)})

    def describe(self, selected: str | None = None) -> str:
        """One line for the preview: `eyes 1.0  brows 1.0  [mouth 1.3]  ...`, the selected part bracketed."""
        return "  ".join(f"[{p} {getattr(self, p):.1f}]" if p == selected else f"{p} {getattr(self, p):.1f}"
                         for p in PARTS)


def parse_gain(text: str) -> dict[str, float]:
    """`PART=VALUE` of --gain: PART one of PARTS, or `head` for position, scale and roll together.
    Raises ValueError with the reason."""
    part, sep, value = text.partition("=")
    part = part.strip().lower()
    names = (*PARTS, "head")
    if not sep or part not in names:
        raise ValueError(f"give PART=VALUE with PART one of {', '.join(names)}")
    try:
        v = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not (math.isfinite(v) and 0.0 <= v <= MAX_GAIN):
        raise ValueError(f"the gain must be from 0 to {MAX_GAIN:g} (0 freezes, 1 follows)")
    return {p: v for p in (("position", "scale", "roll") if part == "head" else (part,))}


def soft_limit(x: float, lo: float, hi: float, soft: float, keep: tuple[float, ...] = ()) -> float:
    """`x` limited to [lo, hi]: unchanged in [lo + soft, hi - soft], approaching the bound along a tanh
    beyond (continuous, with a continuous slope). The values in `keep` (what gain 0 and gain 1 give) are
    always inside the unchanged range: the bounds widen to take them, so a gain of at most 1 is never cut."""
    a, b = lo + soft, hi - soft
    if keep:
        lo, hi = min(lo, *keep), max(hi, *keep)
        a, b = min(a, *keep), max(b, *keep)
    if x > b:
        return b + (hi - b) * math.tanh((x - b) / (hi - b)) if hi > b else b
    if x < a:
        return a - (a - lo) * math.tanh((a - x) / (a - lo)) if a > lo else a
    return x


def _limited_gain(g: float, m0: float, m1: float, lo: float, hi: float, soft: float) -> float:
    """The gain that keeps a measure m(g) = m0 + g (m1 - m0) (linear in the part's gain) within its soft
    limit: at most g. An infinite bound is no bound."""
    if math.isinf(hi):
        hi = max(m0, m1, lo + soft) + 1e6
    slope = m1 - m0
    x = m0 + g * slope
    y = soft_limit(x, lo, hi, soft, keep=(m0, m1))
    if abs(slope) < 1e-9 or y == x:
        return g
    return min(g, max((y - m0) / slope, 0.0))


def _frame(lms: np.ndarray) -> FaceFrame:
    """The face frame the gains work in: FaceFrame's centre, with the scale and roll taken from the eye
    corners (which blinks don't move) rather than the eye centres."""
    left, right = lms[[36, 39]].mean(0), lms[[42, 45]].mean(0)
    d = right - left
    return FaceFrame(lms[STABLE].mean(0), max(float(np.hypot(*d)), 1e-6), float(np.arctan2(d[1], d[0])))


class PartGains:
    """Applies Gains to a target's driving landmarks: `PartGains(ref, size)(lms, gains) -> lms`.

    Beyond the limits of each part (see the module's docstring) a last guard checks the warp's mesh
    (puppet.faces.warp: the landmarks, the forehead, the rings round the head, the crop's fixed border):
    when the gains would fold a triangle that the driver's own pose (gain 1) leaves unfolded, they are brought
    back towards 1 just as far as it takes (to 1/1000 of the way): the expression's gains as far as they fold
    on their own, then the head's.
    """

    def __init__(self, ref: np.ndarray, size: int):
        self.ref = np.asarray(ref, np.float64)
        self.shape = (int(size), int(size))
        self.ref_frame = _frame(self.ref)
        self.ref_local = q = self.ref_frame.to_local(self.ref)
        src, _ = _control_points(self.shape, self.ref, self.ref)
        self._tris = _mesh(self.shape, src, self.ref.astype(np.float32))
        self._orient = np.sign(self._areas(src))
        eye0 = [float((q[[b for _, b in lids], 1] - q[[a for a, _ in lids], 1]).mean()) for lids in EYE_LIDS]
        width0 = float(q[54, 0] - q[48, 0])

        def gap(pairs):
            return lambda x: float((x[[b for _, b in pairs], 1] - x[[a for a, _ in pairs], 1]).mean())

        def above(upper, lower):  # how far the points `upper` are above `lower` (local y points down)
            return lambda x: float(x[lower, 1].mean() - x[upper, 1].mean())

        # Per part: (measure of the local landmarks, lower bound, upper bound, soft zone), in IOD.
        self.limits = {
            "eyes": [(gap(lids), 0.0, 2.0 * g0, 0.4 * g0) for lids, g0 in zip(EYE_LIDS, eye0)],
            "brows": [(above([18, 19, 20], [37, 38]), 0.08, 0.6, 0.1),
                      (above([23, 24, 25], [43, 44]), 0.08, 0.6, 0.1)],
            "mouth": [(gap(INNER_LIPS), 0.0, 0.8, 0.3),
                      (above([57], [8]), 0.15, math.inf, 0.15),  # the lower lip above the chin
                      (above([33], [51]), 0.05, math.inf, 0.05),  # the upper lip below the nose
                      (lambda x: float(x[54, 0] - x[48, 0]), 0.5 * width0, 1.5 * width0, 0.2 * width0),
                      (lambda x: float(x[8, 1] - q[8, 1]), -0.3, 0.6, 0.2)],  # the chin's drop
        }

    def _areas(self, points: np.ndarray) -> np.ndarray:
        a, b, c = (points[self._tris[:, k]] for k in range(3))
        return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    def folded(self, lms: np.ndarray) -> np.ndarray:
        """Which of the mesh's triangles these landmarks turn over (bool per triangle)."""
        _, dst = _control_points(self.shape, self.ref, np.asarray(lms, np.float64))
        return self._areas(dst) * self._orient < -1e-3

    def __call__(self, lms: np.ndarray, gains: Gains) -> np.ndarray:
        if gains.unity:
            return lms
        lms = np.asarray(lms, np.float64)
        out = self._apply(lms, gains)
        own = self.folded(lms)
        if (self.folded(out) & ~own).any():
            # The expression's share first (with the head's gains at 1), then the head's on top of that: what
            # the head folds is at the crop's edge, and shouldn't cost the mouth its exaggeration.
            head = {p: getattr(gains, p) for p in ("position", "scale", "roll") if getattr(gains, p) != 1.0}
            still = replace(gains, **dict.fromkeys(head, 1.0))
            ok = self._apply(lms, still)
            if (self.folded(ok) & ~own).any():
                face = {p: getattr(gains, p) for p in ("eyes", "brows", "mouth") if getattr(gains, p) != 1.0}
                ok, still = self._bisect(lms, still, face, lms, own)
            out = self._bisect(lms, replace(still, **head), head, ok, own)[0] if head else ok
        return out.astype(np.float32)

    def _bisect(self, lms: np.ndarray, gains: Gains, changed: dict[str, float], ok: np.ndarray,
                own: np.ndarray) -> tuple[np.ndarray, Gains]:
        """The landmarks and gains at the largest share t of the `changed` gains' way from 1 (1 + t (g - 1),
        to 1/1000) that folds nothing the driver's pose doesn't; `ok`: the landmarks at t = 0."""
        lo, hi, best = 0.0, 1.0, replace(gains, **dict.fromkeys(changed, 1.0))
        for _ in range(10):
            mid = 0.5 * (lo + hi)
            trial_gains = replace(gains, **{p: 1.0 + mid * (g - 1.0) for p, g in changed.items()})
            trial = self._apply(lms, trial_gains)
            if (self.folded(trial) & ~own).any():
                hi = mid
            else:
                ok, best, lo = trial, trial_gains, mid
        return ok, best

    def _apply(self, lms: np.ndarray, gains: Gains) -> np.ndarray:
        rf = self.ref_frame
        cf = _frame(lms)
        local = cf.to_local(lms)
        expression = local - self.ref_local
        out = local.copy()
        # Expression, part by part: the part's points move by g times their expression. Every limit's
        # measure is linear in g: known from the part at g = 0 and g = 1. The parts done earlier count as
        # they came out (the brows' limit sees the eyes as gained).
        for part in ("eyes", "brows", "mouth"):
            g = getattr(gains, part)
            w = WEIGHTS[part][:, None]
            if g > 1.0:
                frozen = out - w * expression
                for measure, lo, hi, soft in self.limits[part]:
                    g = _limited_gain(g, measure(frozen), measure(out), lo, hi, soft)
            out = out + (g - 1.0) * w * expression

        # Head: shift (in the neutral's IOD, image axes), log scale ratio and roll, each scaled and limited.
        shift = (cf.centre - rf.centre) / rf.scale
        norm = float(np.hypot(*shift))
        if norm > 1e-9:
            shift = shift / norm * soft_limit(gains.position * norm, 0.0, 0.8, 0.2, keep=(0.0, norm))
        log_ratio = math.log(cf.scale / rf.scale)
        log_ratio = soft_limit(gains.scale * log_ratio, math.log(0.7), math.log(1.4), 0.05,
                               keep=(0.0, log_ratio))
        roll = _wrap(cf.angle - rf.angle)
        roll = soft_limit(gains.roll * roll, -math.radians(45), math.radians(45), math.radians(15),
                          keep=(0.0, roll))
        frame = FaceFrame(rf.centre + shift * rf.scale, rf.scale * math.exp(log_ratio), rf.angle + roll)
        return frame.from_local(out)

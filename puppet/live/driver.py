"""Landmark driving: per frame, the driver's landmarks (or None) -> the target's landmarks in its crop pixels
(neutral calibration, relative retargeting or the absolute crop, One Euro filter, per-part gains, face-lost
continuity, idle motion while nobody drives)."""

from __future__ import annotations

import numpy as np

from puppet.live.gains import Gains, PartGains
from puppet.live.idle import Idle
from puppet.live.retarget import Continuity, NeutralCalibrator, RelativeRetargeter, openings, with_openings

# The One Euro filter works on the target's landmarks scaled to this size, so its parameters
# (min_cutoff in Hz, beta per pixel/s) mean the same at every image_size.
FILTER_UNITS = 256.0
# Its cutoff at rest (Hz) and speed coefficient: bench.jitter compares them with other settings on real clips
# (BENCHMARKS.md).
FILTER_MIN_CUTOFF = 1.0
FILTER_BETA = 0.05
# The openings' One Euro filters (same units): the lids' lets a blink (2-4 frames) through; the inner lips'
# is a little steadier (syllables last longer, and lips flicker more in the tracker).
OPEN_FILTERS = ({"min_cutoff": 1.0, "beta": 0.3, "d_cutoff": 4.0},
                {"min_cutoff": 1.0, "beta": 0.15, "d_cutoff": 4.0})


class Driver:
    """Per frame: driver landmarks (or None) -> the target's landmarks (filter, retarget, face-lost logic).

    `gains` (puppet.live.gains) may be replaced between frames; they act in relative mode (in absolute mode
    the landmarks are the driver's own face, not motion relative to the target's neutral). `idle`: the idle
    motion (puppet.live.idle) while the face is lost, or None for a still neutral. `openness`: the eyes and
    the mouth follow how open the driver's are (RelativeRetargeter), else its offsets.
    """

    def __init__(self, target, absolute: bool, fps: float, gains: Gains | None = None, idle: bool = True,
                 openness: bool = True):
        from puppet.faces.crop import CropSmoother
        from puppet.faces.filter import OneEuroFilter

        self.absolute = absolute
        self.openness = openness  # eyes and mouth by how open they are (RelativeRetargeter)
        self.calibrator = NeutralCalibrator()
        self.crop = CropSmoother(fps=fps)
        self.filter = OneEuroFilter(min_cutoff=FILTER_MIN_CUTOFF, beta=FILTER_BETA)
        # Blinks and syllables last a few frames, which the landmarks' filter would smooth away: in openness
        # mode the eyes' and lips' openings take a filter of their own that lets fast changes through.
        self.open_filters = [OneEuroFilter(**f) for f in OPEN_FILTERS]
        self.neutral: np.ndarray | None = None
        self._blend = False
        self.gains = gains or Gains()
        self.idle = Idle() if idle else None
        self.set_target(target)

    def set_target(self, target) -> None:
        self.size = target.size
        self.retarget = RelativeRetargeter(target.ref, openness=self.openness)
        self.part_gains = PartGains(target.ref, target.size)
        if self.neutral is not None:
            self.retarget.set_neutral(self.neutral)
        # A fresh Continuity starts from the new target's neutral and blends into the live pose.
        self.continuity = Continuity(target.ref)
        self.filter.reset()
        for f in self.open_filters:
            f.reset()

    def recalibrate(self) -> None:
        """Record a new neutral (relative) / start a new crop (absolute) from the next frames."""
        self.calibrator.reset()
        self.crop.reset()
        self._blend = True

    def __call__(self, lms: np.ndarray | None, t: float) -> np.ndarray:
        out = self._drive(lms, t)
        return out if self.idle is None else self.idle(out, lms is None, t)

    def _drive(self, lms: np.ndarray | None, t: float) -> np.ndarray:
        if lms is None:
            self.filter.reset()
            for f in self.open_filters:
                f.reset()
            self.calibrator.run.clear()  # steadiness has to be consecutive frames of a face
            return self.continuity(None, t)
        if self._blend:  # after a recalibration the pose may jump: blend into it instead
            self._blend = False
            self.continuity.jump(t)
        if self.absolute:
            mapped = self.crop(lms, t).to_crop(lms, self.size)
        else:
            neutral = self.calibrator.update(lms)
            if neutral is not None:
                if self.neutral is not None:
                    self.continuity.jump(t)  # the new neutral moves the pose: blend, don't jump
                self.neutral = neutral
                self.retarget.set_neutral(neutral)
            mapped = self.retarget(lms)
        k = FILTER_UNITS / self.size
        smooth = self.filter(mapped * k, t) / k
        if self.openness and not self.absolute:
            g = openings(mapped) * k
            lids, lips = self.open_filters
            smooth = with_openings(smooth, np.concatenate([lids(g[:4], t), lips(g[4:], t)]) / k)
        if not self.absolute:  # the gains act on the retargeted expression, openness included
            smooth = self.part_gains(smooth, self.gains)
        return self.continuity(smooth, t)

"""Landmark driving: per frame, the driver's landmarks (or None) -> the target's landmarks in its crop pixels
(neutral calibration, relative retargeting or the absolute crop, One Euro filter, face-lost continuity)."""

from __future__ import annotations

import numpy as np

from puppet.live.retarget import Continuity, NeutralCalibrator, RelativeRetargeter, openings, with_openings

# The One Euro filter works on the target's landmarks scaled to this size, so its parameters
# (min_cutoff in Hz, beta per pixel/s) mean the same at every image_size.
FILTER_UNITS = 256.0
# The openings' One Euro filters (same units): the lids' lets a blink (2-4 frames) through; the inner lips'
# is a little steadier (syllables last longer, and lips flicker more in the tracker).
OPEN_FILTERS = ({"min_cutoff": 1.0, "beta": 0.3, "d_cutoff": 4.0},
                {"min_cutoff": 1.0, "beta": 0.15, "d_cutoff": 4.0})


class Driver:
    """Per frame: driver landmarks (or None) -> the target's landmarks (filter, retarget, face-lost logic)."""

    def __init__(self, target, absolute: bool, fps: float, openness: bool = True):
        from puppet.faces.crop import CropSmoother
        from puppet.faces.filter import OneEuroFilter

        self.absolute = absolute
        self.openness = openness  # eyes and mouth by how open they are (RelativeRetargeter)
        self.calibrator = NeutralCalibrator()
        self.crop = CropSmoother(fps=fps)
        self.filter = OneEuroFilter(min_cutoff=1.0, beta=0.05)
        # Blinks and syllables last a few frames, which the landmarks' filter would smooth away: in openness
        # mode the eyes' and lips' openings take a filter of their own that lets fast changes through.
        self.open_filters = [OneEuroFilter(**f) for f in OPEN_FILTERS]
        self.neutral: np.ndarray | None = None
        self._blend = False
        self.set_target(target)

    def set_target(self, target) -> None:
        self.size = target.size
        self.retarget = RelativeRetargeter(target.ref, openness=self.openness)
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
        return self.continuity(smooth, t)

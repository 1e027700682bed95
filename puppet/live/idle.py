"""The avatar stays alive while nobody drives it: blinks at a human rate and breathes, around its neutral.

When the face has been lost (or absent) for `delay_s`, by which time puppet.live.retarget.Continuity has
eased the output to the target's neutral, the idle motion fades in over `fade_s`: blinks at random
intervals of 2-6 s (about 15 a minute, a resting person's rate), each 150-250 ms, closing faster than it
opens; and a slow breathing motion (the head nods about a degree and rises a little, one breath every
4.5 s) with a slower sway. When the face comes back the motion fades out over `handback_s` (a few frames),
while Continuity blends into the live pose: the landmarks never jump. The motion is puppet.faces.pose's
`move` (blink, pitch, roll, shift), the same model the synthetic clips use.
"""

from __future__ import annotations

import math

import numpy as np

from puppet.faces.pose import Motion, move
from puppet.live.retarget import smoothstep

BLINK_EVERY_S = (2.0, 6.0)
BLINK_S = (0.15, 0.25)
BLINK_CLOSING = 0.4  # the share of a blink spent closing
BREATH_S = 4.5
SWAY_S = 9.0


class Idle:
    """Per frame: (landmarks, whether the face is lost, time in seconds) -> landmarks with the idle motion."""

    def __init__(self, delay_s: float = 1.0, fade_s: float = 0.6, handback_s: float = 0.2,
                 seed: int | None = None):
        self.delay_s, self.fade_s, self.handback_s = delay_s, fade_s, handback_s
        self.rng = np.random.default_rng(seed)
        self.level = 0.0  # 0 = none of the motion .. 1 = all of it (eased through smoothstep)
        self._since: float | None = None  # when the face was lost
        self._t: float | None = None
        self._start = 0.0  # when the motion last started fading in: the breath's phase
        self._next_blink: float | None = None
        self._blink: tuple[float, float] | None = None  # (start, duration)
        self.blinks = 0

    @property
    def active(self) -> bool:
        return self.level > 0.0

    def __call__(self, lms: np.ndarray, lost: bool, t: float) -> np.ndarray:
        dt = 0.0 if self._t is None else min(max(t - self._t, 0.0), 0.5)
        self._t = t
        if lost:
            if self._since is None:
                self._since = t
            if t - self._since >= self.delay_s:
                if self.level == 0.0:
                    self._start = t
                    self._next_blink = t + self.rng.uniform(0.5, 1.5)  # the first soon: it looks alive
                self.level = min(1.0, self.level + (dt / self.fade_s if self.fade_s > 0 else 1.0))
        else:
            self._since = None
            self.level = max(0.0, self.level - (dt / self.handback_s if self.handback_s > 0 else 1.0))
        if self.level == 0.0:
            self._blink = None
            return lms
        motion = Motion(blink=self._blink_amount(t), **self._breath(t))
        w = smoothstep(self.level)
        lms = np.asarray(lms, np.float32)
        return (lms + w * (move(lms, motion) - lms)).astype(np.float32)

    def _blink_amount(self, t: float) -> float:
        if self._blink is None and self._next_blink is not None and t >= self._next_blink:
            self._blink = (t, self.rng.uniform(*BLINK_S))
            self._next_blink = t + self.rng.uniform(*BLINK_EVERY_S)
            self.blinks += 1
        if self._blink is None:
            return 0.0
        t0, d = self._blink
        x = (t - t0) / d
        if x >= 1.0:
            self._blink = None
            return 0.0
        if x < BLINK_CLOSING:
            return smoothstep(x / BLINK_CLOSING)
        return 1.0 - smoothstep((x - BLINK_CLOSING) / (1.0 - BLINK_CLOSING))

    def _breath(self, t: float) -> dict[str, float]:
        s = t - self._start
        breath = math.sin(2 * math.pi * s / BREATH_S)
        sway = math.sin(2 * math.pi * s / SWAY_S)
        # pitch in degrees, dy in face half-widths (negative: up), roll in degrees
        return {"pitch": 1.2 * breath, "dy": -0.012 * breath, "roll": 0.8 * sway}

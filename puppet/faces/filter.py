"""One Euro filter (Casiez, Roussel, Vogel, CHI 2012) for landmark and crop smoothing.

A low-pass filter whose cutoff rises with the signal's speed: still landmarks are smoothed hard (no jitter),
fast motion gets a high cutoff (little lag). Parameters:
  min_cutoff (Hz): the cutoff at rest; lower = less jitter, more lag when slow.
  beta (1 / signal unit): how fast the cutoff rises with speed; higher = less lag on fast motion.
  d_cutoff (Hz): the cutoff of the speed estimate itself.
Works element-wise on any array shape (e.g. (68, 2) pixel coords); timestamps are in seconds.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff, dt: float):
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("OneEuroFilter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter sample `x` taken at time `t` (seconds); returns the same shape (float32 stays float32)."""
        x = np.asarray(x)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        x = x.astype(np.float64)  # state in float64: pixel coords of a 4K frame keep sub-pixel precision
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.astype(dtype)
        dt = float(t) - self._t
        if dt <= 0:  # a repeated or out-of-order timestamp: no new information about time, keep the output
            return self._x.astype(dtype)
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = float(t)
        return self._x.astype(dtype)

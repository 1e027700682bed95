"""Synthetic head motion for the 68 landmarks, and talking-head animation of one still portrait.

- `random_motion` draws one `puppet.faces.pose.Motion` (a head pose and expression);
- `perturb(lms, rng)` (one random motion: warp augmentation for fine-tuning) and `animate(bgr, lms, n_frames,
  rng)` (a smooth random talking-head clip through `puppet.faces.warp`: the demo's driving video, and
  training data with no camera).
"""

from __future__ import annotations

import numpy as np

from puppet.faces.pose import Motion, move
from puppet.faces.warp import warp


def random_motion(
    rng: np.random.Generator,
    max_yaw: float = 20.0,
    max_pitch: float = 12.0,
    max_roll: float = 12.0,
    max_mouth: float = 1.0,
    blink_prob: float = 0.2,
    max_shift: float = 0.08,
    max_scale: float = 0.06,
) -> Motion:
    """One random pose and expression, each uniform within its range."""
    return Motion(
        yaw=float(rng.uniform(-max_yaw, max_yaw)),
        pitch=float(rng.uniform(-max_pitch, max_pitch)),
        roll=float(rng.uniform(-max_roll, max_roll)),
        mouth=float(rng.uniform(0.0, max_mouth)),
        blink=float(rng.uniform(0.5, 1.0)) if rng.random() < blink_prob else 0.0,
        dx=float(rng.uniform(-max_shift, max_shift)),
        dy=float(rng.uniform(-max_shift, max_shift)),
        scale=float(1.0 + rng.uniform(-max_scale, max_scale)),
    )


def perturb(lms: np.ndarray, rng: np.random.Generator, **ranges) -> np.ndarray:
    """Landmarks after one random head motion and expression (`random_motion`'s keyword ranges apply).

    With `warp(bgr, lms, perturb(lms, rng))` this is a warp augmentation: the same face in a new pose.
    """
    return move(lms, random_motion(rng, **ranges))


# ------------------------------------------------------------------------------------------ animation


def _smooth(rng: np.random.Generator, n: int, fps: float, lo_hz: float, hi_hz: float, terms: int = 3):
    """A smooth random signal in [-1, 1]: a sum of sinusoids with random frequencies, phases and weights."""
    t = np.arange(n) / fps
    f = rng.uniform(lo_hz, hi_hz, terms)
    ph = rng.uniform(0, 2 * np.pi, terms)
    amp = rng.uniform(0.5, 1.0, terms)
    s = (amp[:, None] * np.sin(2 * np.pi * f[:, None] * t + ph[:, None])).sum(0)
    return s / amp.sum()


def _blinks(rng: np.random.Generator, n: int, fps: float, rate_hz: float = 0.35) -> np.ndarray:
    """Blink curve in [0, 1]: events at random (Poisson) times, each a quick close-and-open of ~0.3 s."""
    out = np.zeros(n)
    dur = max(3, int(round(0.3 * fps)))
    t = rng.exponential(1.0 / rate_hz) * fps * 0.5  # the first can come early
    while t < n:
        start = int(t)
        k = np.arange(dur)
        out[start : start + dur] = np.maximum(
            out[start : start + dur], np.sin(np.pi * (k + 1) / (dur + 1))[: n - start]
        )
        t += dur + rng.exponential(1.0 / rate_hz) * fps
    return out


def trajectory(
    n_frames: int,
    rng: np.random.Generator,
    fps: float = 25.0,
    max_yaw: float = 18.0,
    max_pitch: float = 10.0,
    max_roll: float = 8.0,
    max_mouth: float = 0.8,
    max_shift: float = 0.06,
) -> list[Motion]:
    """A smooth random head motion for `n_frames` frames: slow head turns, talking, blinks."""
    n = int(n_frames)
    yaw = max_yaw * _smooth(rng, n, fps, 0.05, 0.4)
    pitch = max_pitch * _smooth(rng, n, fps, 0.05, 0.5)
    roll = max_roll * _smooth(rng, n, fps, 0.05, 0.3)
    # Talking: syllables at 2-5 Hz, modulated by a slow envelope so that there are pauses.
    syll = 0.5 + 0.5 * _smooth(rng, n, fps, 2.0, 5.0)
    env = np.clip(0.5 + 0.8 * _smooth(rng, n, fps, 0.1, 0.4), 0.0, 1.0)
    mouth = max_mouth * np.clip(syll * env, 0.0, 1.0)
    # Blinks come from their own generator: how many a clip has depends on its length, and the other
    # signals' draws must not (the first k frames of a longer clip are the k-frame clip).
    blink = _blinks(np.random.default_rng(rng.integers(2**63)), n, fps)
    dx = max_shift * _smooth(rng, n, fps, 0.05, 0.3)
    dy = max_shift * _smooth(rng, n, fps, 0.05, 0.3)
    scale = 1.0 + 0.5 * max_shift * _smooth(rng, n, fps, 0.05, 0.2)
    return [
        Motion(
            float(yaw[i]),
            float(pitch[i]),
            float(roll[i]),
            float(mouth[i]),
            float(blink[i]),
            float(dx[i]),
            float(dy[i]),
            float(scale[i]),
        )
        for i in range(n)
    ]


def animate(
    bgr: np.ndarray, lms: np.ndarray, n_frames: int, rng: np.random.Generator, fps: float = 25.0, **ranges
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A talking-head clip from one portrait: (frames: uint8 BGR like `bgr`, landmarks: (68, 2) float32 each).

    `lms` are the portrait's landmarks (e.g. `puppet.faces.track.detect(bgr)`); the returned landmarks are
    exact (they drove the warp). `ranges` go to `trajectory` (max_yaw, max_pitch, max_roll, max_mouth,
    max_shift).
    """
    lms = np.asarray(lms, np.float32)
    frames, out_lms = [], []
    for m in trajectory(n_frames, rng, fps=fps, **ranges):
        dst = move(lms, m)
        frames.append(warp(bgr, lms, dst))
        out_lms.append(dst)
    return frames, out_lms

"""One Euro filter: smooths still noise, follows steps and fast motion with bounded lag."""

import numpy as np
import pytest

from puppet.faces.filter import OneEuroFilter

FPS = 30.0


def _run(f, xs):
    return np.stack([f(x, i / FPS) for i, x in enumerate(xs)])


def test_first_sample_passes_and_shape_kept():
    f = OneEuroFilter()
    x = np.random.default_rng(0).normal(size=(68, 2)).astype(np.float32)
    y = f(x, 0.0)
    assert y.shape == (68, 2) and y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


def test_smooths_noise_on_a_still_face():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 256, (68, 2))
    xs = base + rng.normal(0, 1.0, (120, 68, 2))
    ys = _run(OneEuroFilter(min_cutoff=1.0, beta=0.05), xs)
    raw_var, out_var = xs[30:].var(axis=0).mean(), ys[30:].var(axis=0).mean()
    assert out_var < 0.25 * raw_var, (out_var, raw_var)
    assert np.abs(ys[30:].mean(0) - base).max() < 0.5  # no bias


def test_follows_a_step_with_bounded_lag():
    xs = np.zeros((60, 68, 2))
    xs[10:] = 50.0  # a 50 px jump at frame 10
    ys = _run(OneEuroFilter(min_cutoff=1.0, beta=0.05), xs)
    assert ys[10].max() < 50.0  # smoothed, not copied
    reached = np.argmax(ys[:, 0, 0] > 45.0)  # 90 % of the step
    assert 10 < reached <= 15, reached  # within 5 frames (~170 ms at 30 fps)
    assert np.abs(ys[-1] - 50.0).max() < 0.5


def test_beta_cuts_lag_on_fast_motion():
    xs = (np.arange(60) * 10.0)[:, None, None] * np.ones((1, 68, 2))  # 300 px/s ramp
    lag = {b: xs[-1, 0, 0] - _run(OneEuroFilter(min_cutoff=1.0, beta=b), xs)[-1, 0, 0] for b in (0.0, 0.1)}
    assert lag[0.1] < 0.3 * lag[0.0], lag


def test_reset_and_odd_timestamps():
    f = OneEuroFilter()
    f(np.zeros(3), 0.0)
    a = f(np.ones(3), 1 / FPS)
    np.testing.assert_array_equal(f(np.full(3, 9.0), 1 / FPS), a)  # repeated timestamp: output held
    f.reset()
    np.testing.assert_array_equal(f(np.full(3, 7.0), 5.0), np.full(3, 7.0))
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0.0)

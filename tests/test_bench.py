"""bench/: the metrics against their formulas, `python -m bench --quick` and bench.quality on a tiny clip."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import nme, psnr, ssim


def _image(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth structure plus texture, so SSIM has something to compare
    base = np.linspace(0, 255, size)[None, :, None] * np.ones((size, 1, 3))
    return np.clip(base + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)


def test_ssim_identical_is_one_and_drops_with_noise():
    a = _image()
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(1)
    b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    c = np.clip(a + rng.normal(0, 60, a.shape), 0, 255).astype(np.uint8)
    assert 0.0 < ssim(a, c) < ssim(a, b) < 1.0
    assert ssim(a[..., 0], a[..., 0]) == pytest.approx(1.0, abs=1e-12)  # grayscale too


def test_ssim_matches_scikit_image_gaussian_ssim():
    skm = pytest.importorskip("skimage.metrics")
    a = _image(2)
    b = np.clip(a.astype(int) + np.random.default_rng(3).normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    ref = skm.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2
    )
    assert ssim(a, b) == pytest.approx(ref, abs=1e-9)


def test_psnr_of_known_error_matches_formula():
    a = np.full((32, 32, 3), 100, np.uint8)
    assert psnr(a, a) == float("inf")
    b = a.copy()
    b[::2] += 10  # half the pixels off by 10: MSE = 50
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 50.0), abs=1e-9)
    rng = np.random.default_rng(4)
    noise = rng.integers(-20, 21, a.shape)
    c = (a.astype(int) + noise).astype(np.uint8)
    mse = float(np.mean(noise.astype(float) ** 2))
    assert psnr(a, c) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)


def test_nme_zero_for_identical_and_offset_over_interocular():
    rng = np.random.default_rng(5)
    ref = rng.uniform(20, 100, (68, 2)).astype(np.float32)
    ref[36] = (30, 50)
    ref[45] = (90, 50)  # inter-ocular distance 60
    assert nme(ref, ref) == 0.0
    assert nme(ref + np.array([3.0, 4.0]), ref) == pytest.approx(5.0 / 60.0, rel=1e-6)
    with pytest.raises(ValueError):
        nme(ref[:10], ref)

"""Image and landmark metrics of the self-reenactment protocol: SSIM, PSNR and landmark NME.

Images are uint8 BGR (H, W, 3) or (H, W), compared on the 0..255 scale, as the paper's evaluation does.
"""

from __future__ import annotations

import cv2
import numpy as np

# Wang et al. 2004: an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03.
_SIGMA = 1.5
_WIN = 11
_K1, _K2 = 0.01, 0.03


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")


def _blur(x: np.ndarray) -> np.ndarray:
    # BORDER_REFLECT is scipy's 'reflect' (d c b a | a b c d), so this matches skimage's gaussian SSIM.
    return cv2.GaussianBlur(x, (_WIN, _WIN), _SIGMA, borderType=cv2.BORDER_REFLECT)


def _ssim_channel(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    mu_a, mu_b = _blur(a), _blur(b)
    # Population (not sample) covariances, as in Wang et al.
    var_a = _blur(a * a) - mu_a * mu_a
    var_b = _blur(b * b) - mu_b * mu_b
    cov = _blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    # Leave out the border where the window hangs over the edge.
    pad = (_WIN - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean(dtype=np.float64))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean structural similarity (Gaussian window, Wang et al.), averaged over channels; 1.0 when equal."""
    _check_pair(a, b)
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if a.ndim == 2:
        return _ssim_channel(a, b, data_range)
    return float(np.mean([_ssim_channel(a[..., c], b[..., c], data_range) for c in range(a.shape[2])]))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(range² / MSE); inf when the images are equal."""
    _check_pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


# Outer eye corners in the 68-point iBUG layout: the inter-ocular normaliser of 300-W's NME.
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45


def nme(pred: np.ndarray, ref: np.ndarray) -> float:
    """Normalised mean error: mean point-to-point distance / the reference's inter-ocular distance."""
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != (68, 2) or ref.shape != (68, 2):
        raise ValueError(f"expected two (68, 2) landmark arrays, got {pred.shape} and {ref.shape}")
    iod = float(np.linalg.norm(ref[LEFT_EYE_OUTER] - ref[RIGHT_EYE_OUTER]))
    if iod <= 0:
        raise ValueError("reference landmarks have zero inter-ocular distance")
    return float(np.linalg.norm(pred - ref, axis=1).mean() / iod)

"""Image and landmark metrics of the self-reenactment protocol: SSIM, PSNR, landmark NME, and SSIM, PSNR
and L1 inside the mouth and eye regions.

Images are uint8 BGR (H, W, 3) or (H, W), compared on the 0..255 scale, as the paper's evaluation does.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from puppet.faces.regions import LEFT_EYE_OUTER, RIGHT_EYE_OUTER


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean structural similarity as Wang et al. 2004 define it (an 11x11 Gaussian window of sigma 1.5,
    population covariances), averaged over channels; 1.0 when equal. scikit-image computes it."""
    _check_pair(a, b)
    return float(structural_similarity(
        a.astype(np.float64), b.astype(np.float64), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=data_range, channel_axis=2 if a.ndim == 3 else None,
    ))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(range² / MSE); inf when the images are equal."""
    _check_pair(a, b)
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(a.astype(np.float64), b.astype(np.float64), data_range=data_range))




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


def region_scores(a: np.ndarray, b: np.ndarray, mask: np.ndarray, data_range: float = 255.0) -> dict:
    """SSIM (the mean of the SSIM map inside the mask), PSNR (of the MSE inside the mask; inf where equal)
    and L1 (mean absolute difference inside the mask, 0..255 scale) of two images over a boolean mask."""
    _check_pair(a, b)
    mask = np.asarray(mask, bool)
    if mask.shape != a.shape[:2] or not mask.any():
        raise ValueError(f"mask must be a non-empty boolean {a.shape[:2]} array, got {mask.shape}")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    _, smap = structural_similarity(a64, b64, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=data_range, channel_axis=2 if a.ndim == 3 else None, full=True)
    diff = (a64 - b64)[mask]
    mse = float(np.mean(diff ** 2))
    return {"ssim": float(smap[mask].mean()),
            "psnr": float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse)),
            "l1": float(np.abs(diff).mean())}

"""The one place where OpenCV's uint8 HWC BGR meets the float32 NCHW RGB [-1, 1] tensors used inside.

Sources, sinks and file I/O speak BGR uint8; every module boundary in between speaks tensors.
"""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    """uint8 BGR image (H, W, 3) or batch (N, H, W, 3) -> float32 RGB (N, 3, H, W) in [-1, 1]."""
    return from_uint8(to_uint8_tensor(bgr))


def to_uint8_tensor(bgr: np.ndarray) -> torch.Tensor:
    """uint8 BGR image (H, W, 3) or batch (N, H, W, 3) -> uint8 RGB (N, 3, H, W): to_tensor's layout at a
    quarter of the bytes, for the training loader's workers (from_uint8 finishes it on the device)."""
    if bgr.dtype != np.uint8 or bgr.shape[-1] != 3 or bgr.ndim not in (3, 4):
        raise ValueError(f"expected uint8 BGR (H, W, 3) or (N, H, W, 3), got {bgr.dtype} {bgr.shape}")
    arr = bgr[None] if bgr.ndim == 3 else bgr
    return torch.from_numpy(np.ascontiguousarray(arr[..., ::-1])).permute(0, 3, 1, 2)


def from_uint8(t: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (..., 3, H, W) -> float32 in [-1, 1], on t's device."""
    return t.float().div_(127.5).sub_(1.0)


def to_bgr(t: torch.Tensor) -> np.ndarray:
    """float RGB tensor (3, H, W) or (N, 3, H, W) in [-1, 1] -> uint8 BGR (H, W, 3) or (N, H, W, 3)."""
    single = t.dim() == 3
    t = t[None] if single else t
    arr = ((t.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    out = arr.permute(0, 2, 3, 1).cpu().numpy()[..., ::-1]
    out = np.ascontiguousarray(out)
    return out[0] if single else out


def read_image(path) -> np.ndarray:
    """Read an image file as uint8 BGR; a one-line PuppetError when it can't be read."""
    import cv2

    from puppet.errors import PuppetError

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise PuppetError(f"{path}: not a readable image file; pass a JPEG or PNG photo")
    return img

"""Where a warp fails first: how open the eyes and mouth are, and masks of the mouth and eye regions.

A piecewise-affine warp can move lips and lids but can't draw what the photo doesn't show (the inside of an
opening mouth, a closing eyelid). The training objective weights its content loss inside these regions, the
meta-learning data picks pairs whose openness differs, and the quality protocol scores inside them.
"""

from __future__ import annotations

import cv2
import numpy as np

LEFT_EYE = list(range(36, 42))
RIGHT_EYE = list(range(42, 48))
OUTER_LIPS = list(range(48, 60))
INNER_LIPS = list(range(60, 68))
# Upper/lower pairs whose distance is the opening.
_EYE_LIDS = ((37, 41), (38, 40)), ((43, 47), (44, 46))
_LIP_GAPS = ((61, 67), (62, 66), (63, 65))
REGION_GROW = 0.12  # each region grows by this fraction of the inter-ocular distance (lids, lip edges)


def inter_ocular(lms: np.ndarray) -> float:
    """Distance between the outer eye corners (36, 45): the face's scale."""
    return float(np.linalg.norm(np.asarray(lms, np.float64)[45] - np.asarray(lms, np.float64)[36]))


def openness(lms: np.ndarray) -> np.ndarray:
    """(left eye, right eye, mouth): each eye's lid gap over its width, the inner lips' gap over the
    inter-ocular distance. 0 is closed; a relaxed open eye is about 0.3, a wide-open mouth about 0.5."""
    p = np.asarray(lms, np.float64)
    eyes = []
    for (a, b), (c, d) in _EYE_LIDS:
        corners = (36, 39) if a < 42 else (42, 45)
        width = max(np.linalg.norm(p[corners[1]] - p[corners[0]]), 1e-6)
        eyes.append((np.linalg.norm(p[a] - p[b]) + np.linalg.norm(p[c] - p[d])) / (2 * width))
    mouth = np.mean([np.linalg.norm(p[a] - p[b]) for a, b in _LIP_GAPS]) / max(inter_ocular(p), 1e-6)
    return np.array([eyes[0], eyes[1], mouth], np.float32)


def region_mask(lms: np.ndarray, size: int | tuple[int, int], part: str = "both",
                grow: float = REGION_GROW) -> np.ndarray:
    """A (H, W) float32 mask in {0, 1}: the outer-lip polygon ("mouth"), both eye polygons ("eyes") or
    all three ("both"), each grown by `grow` inter-ocular distances so that a closed eye or mouth still
    covers its lids and lips."""
    h, w = (size, size) if isinstance(size, int) else size
    parts = {"mouth": [OUTER_LIPS], "eyes": [LEFT_EYE, RIGHT_EYE],
             "both": [OUTER_LIPS, LEFT_EYE, RIGHT_EYE]}.get(part)
    if parts is None:
        raise ValueError(f"region {part!r}: use mouth, eyes or both")
    p = np.asarray(lms, np.float32)
    mask = np.zeros((h, w), np.uint8)
    for idx in parts:
        cv2.fillPoly(mask, [np.round(p[idx] * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    r = int(round(grow * inter_ocular(p)))
    if r > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask.astype(np.float32)

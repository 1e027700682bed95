"""Where a warp fails first: how open the eyes and the mouth are, and masks of the mouth and eye regions.

A piecewise-affine warp can move lips and lids but can't draw what the photo doesn't show (the inside of an
opening mouth, a closing eyelid). The live retargeting moves the eyes and mouth by these openness measures
(puppet.live.retarget), meta-learning picks pairs whose openness differs and weights its content loss
inside the region masks (puppet.data.dataset, models.losses.region_loss), and the quality protocol scores
inside them (bench.quality).
"""

from __future__ import annotations

import cv2
import numpy as np

from puppet.faces.pose import FaceFrame

# Polygons (iBUG-68): each eye, and the outer and inner lips.
EYE_POINTS = (tuple(range(36, 42)), tuple(range(42, 48)))
OUTER_LIP_POINTS = tuple(range(48, 60))
INNER_LIP_POINTS = tuple(range(60, 68))
# How open the eyes and the mouth are: (upper, lower) point pairs across each eye and the inner lips, and the
# corners that span them.
EYE_LIDS = (((37, 41), (38, 40)), ((43, 47), (44, 46)))
EYE_CORNERS = ((36, 39), (42, 45))
INNER_LIPS = ((61, 67), (62, 66), (63, 65))
MOUTH_CORNERS = (48, 54)  # the outer corners: the mouth's width, which opening the jaw hardly changes
CHIN = 8
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45  # the inter-ocular distance of the masks (300-W's NME normaliser)
REGION_DILATE = 0.1  # the quality protocol's masks: a closed mouth or eye still has a band around it
TRAIN_DILATE = 0.12  # the training masks: the lids and the lips' edges too


def face_up(lms: np.ndarray) -> np.ndarray:
    """The face's up direction: perpendicular to the eye line, away from the chin (so it holds for a
    mirrored face too)."""
    f = FaceFrame.of(lms)
    u = np.array([np.sin(f.angle), -np.cos(f.angle)])  # the eye line turned a quarter towards image-up
    return u if float(np.dot(f.centre - lms[CHIN], u)) >= 0 else -u


def gaps(lms: np.ndarray, pairs, up: np.ndarray | None = None) -> np.ndarray:
    """Each (upper, lower) pair's opening along the face's up direction (`up`, or face_up's), in pixels:
    positive when open, negative when the upper point has crossed below the lower one."""
    lms = np.asarray(lms, np.float64)
    if up is None:
        up = face_up(lms)
    a, b = np.asarray(pairs).T
    return (lms[a] - lms[b]) @ up


def eye_openness(lms: np.ndarray) -> np.ndarray:
    """Each eye's opening over its width (the eye aspect ratio; the left of the image first): about 0.3 open,
    0 closed, on any face size."""
    lms = np.asarray(lms, np.float64)
    up = face_up(lms)
    return np.array([gaps(lms, pairs, up).mean() / max(float(np.linalg.norm(lms[a] - lms[b])), 1e-6)
                     for pairs, (a, b) in zip(EYE_LIDS, EYE_CORNERS)])


def mouth_openness(lms: np.ndarray) -> float:
    """The inner lips' mean opening over the inter-ocular distance (eye centres): 0 closed."""
    lms = np.asarray(lms, np.float64)
    return float(gaps(lms, INNER_LIPS).mean() / FaceFrame.of(lms).scale)


def openness(lms: np.ndarray) -> np.ndarray:
    """(left eye, right eye, mouth) of the image: eye_openness and mouth_openness in one array."""
    return np.array([*eye_openness(lms), mouth_openness(lms)], np.float32)


def region_masks(lms: np.ndarray, size: int | tuple[int, int], dilate: float = REGION_DILATE,
                 mouth: str = "inner") -> dict[str, np.ndarray]:
    """Boolean (H, W) masks {"mouth", "eyes"}: the inner-lip polygon 60-67 (mouth="outer": the outer lips
    48-59, lips included) and the eye polygons 36-41 and 42-47, each dilated by `dilate` inter-ocular
    distances (outer eye corners), so a closed mouth or eye still covers the lips' or lids' seam.
    lms: (68, 2) pixels of an image of `size` (S or (H, W))."""
    lms = np.asarray(lms, np.float64)
    if lms.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lms.shape}")
    if mouth not in ("inner", "outer"):
        raise ValueError(f"mouth {mouth!r}: use inner or outer")
    h, w = (size, size) if np.isscalar(size) else size
    r = max(1, int(round(dilate * float(np.linalg.norm(lms[LEFT_EYE_OUTER] - lms[RIGHT_EYE_OUTER])))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

    def mask(polys) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        for p in polys:
            pts = np.round(lms[list(p)]).astype(np.int32)
            cv2.fillPoly(m, [cv2.convexHull(pts)], 1)
            cv2.polylines(m, [pts], True, 1)  # a collapsed polygon (closed lids, lips) still marks its line
        return cv2.dilate(m, kernel).astype(bool)

    lips = INNER_LIP_POINTS if mouth == "inner" else OUTER_LIP_POINTS
    return {"mouth": mask([lips]), "eyes": mask(EYE_POINTS)}


def region_mask(lms: np.ndarray, size: int | tuple[int, int], part: str = "both",
                grow: float = TRAIN_DILATE) -> np.ndarray:
    """What the training objective weights: a (H, W) float32 mask in {0, 1} of the mouth with its lips
    ("mouth"), the eyes ("eyes") or both ("both"), grown by `grow` inter-ocular distances."""
    if part not in ("mouth", "eyes", "both"):
        raise ValueError(f"region {part!r}: use mouth, eyes or both")
    m = region_masks(lms, size, grow, mouth="outer")
    out = m["mouth"] | m["eyes"] if part == "both" else m[part]
    return out.astype(np.float32)

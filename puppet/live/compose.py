"""The output frame: each generated face pasted back into the target's whole picture, framed for a call.

    comp = Compositor.for_target(target, Framing(1280, 720, "fit"), neutral=generated_at_ref_landmarks)
    frame = comp(face)          # face: the generator's uint8 BGR (S, S, 3) -> uint8 BGR (720, 1280, 3)

Once per target (the constructor, a few ms):
- the picture framed into the output size: `fit` scales the whole picture into the frame, centred, black
  bars where the aspect differs; `fill` fills the frame and crops the picture's overflow, keeping the face
  as central as the picture allows. This is `background`, the frame every output starts from.
- the one map from crop pixels to frame pixels (`matrix`): the exact inverse of the crop (puppet.faces.crop.
  Crop's inverse_matrix) followed by the framing's scale and offset, a single 2x3 affine.
- a soft mask in crop pixels: the face and hair region from the reference landmarks (the convex hull of the
  jaw and brows, with the brows raised for the forehead and hair), grown by a margin for the head's motion,
  feathered, and faded to zero before the crop's edge. Warped into the frame once and clamped to the picture's
  footprint there, so parts of the crop that lie outside the picture (Crop.apply replicated the picture's
  border there) are never shown, and an output pixel is either the picture's or blended inside it: no bands.
- the colour match (`calibrate`): mean/std transfer in Lab (Reinhard et al. 2001) of the generator's face at
  the reference landmarks (the neutral) to the picture, measured on a ring just inside the mask's edge, then
  fitted as the 3x4 BGR affine that best reproduces that transfer on the face's pixels.

Why the colour match is measured once, on the neutral, and not on every frame: the ring is fixed in crop
pixels, but the content under it is not. When the driver turns or moves the head, the generated frame has
hair where the picture has background (and the other way round), so per-frame statistics would follow the
pose and the face's colour would pump with every movement. At the neutral, and only there, the generated
frame and the picture show the same thing under the ring, so their difference is the generator's own colour
cast, which is a property of the fine-tuned generator and does not change with the pose.

Per frame (`__call__`), on a copy of the background: one cv2.transform (the colour affine) on the part of the
S x S face under the mask, one cv2.resize of it to frame scale (crop and frame are both axis-aligned, so the
crop's inverse is a scale and an offset per axis; the framing's offset is moved by under half a frame pixel,
once, so that the resized face lands exactly on frame pixels, 4-5x cheaper than a general warp), then a copy
where the mask is 1 (its largest rectangle) and cv2.blendLinear with the precomputed weights over the rest of
the mask's bounding box. Every pixel outside the mask's support is the framed picture, byte for byte.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from puppet.live.framing import Framing, frame_geometry, frame_picture

log = logging.getLogger(__name__)


# The mask, in units of the crop's side S.
FOREHEAD = 0.55  # brows raised by this many brow-to-chin distances: the forehead up to the hairline
HAIR = 0.95  # ... and by this many, spread sideways by HAIR_SPREAD: the hair above it
HAIR_SPREAD = 1.2
GROW = 0.05  # the hull grown by this much (S): room for the head to move before the mask clips it
FEATHER = 0.08  # then faded to zero over this distance (S)
EDGE = 0.03  # the mask is zero this close to the crop's edge, whatever the face does (S)
# Colour match: how far the std ratio may go (a random or broken generator can't turn the face into noise).
STD_RATIO = (0.5, 2.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def face_mask(ref_landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The soft face-and-hair mask in crop pixels: (alpha float32 (S, S) in [0, 1], ring bool (S, S)).

    The convex hull of the jaw, the brows, the brows raised for the forehead and, spread sideways, for the
    hair; grown by GROW, feathered over FEATHER (smoothstep), zero within EDGE of the crop's edge. `ring`:
    the band just inside the mask's edge (outside the hull, alpha >= 0.5), where the colour match is measured.
    """
    p = np.asarray(ref_landmarks, np.float64)
    S = int(size)
    jaw, brows = p[0:17], p[17:27]
    chin, brow = p[8], brows.mean(axis=0)
    up = brow - chin
    face_h = max(float(np.hypot(*up)), 1.0)
    up /= face_h
    axis = (jaw.mean(axis=0) + brow) / 2  # the face's middle, for the sideways spread
    across = np.array([-up[1], up[0]])

    def spread(q: np.ndarray, k: float) -> np.ndarray:
        side = (q - axis) @ across
        return q + np.outer(side * (k - 1.0), across)

    pts = np.vstack([jaw, brows, brows + FOREHEAD * face_h * up,
                     spread(brows + HAIR * face_h * up, HAIR_SPREAD)])
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))  # 4 fractional bits
    inside = np.zeros((S, S), np.uint8)
    cv2.fillConvexPoly(inside, hull, 255, lineType=cv2.LINE_8, shift=4)
    d = cv2.distanceTransform(255 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # px outside the hull
    alpha = _smoothstep(1.0 - (d - GROW * S) / (FEATHER * S))
    yy, xx = np.mgrid[0:S, 0:S]
    edge = np.minimum(np.minimum(xx, yy), np.minimum(S - 1 - xx, S - 1 - yy)) + 0.5  # px from the crop's edge
    alpha *= _smoothstep((edge - EDGE * S) / (FEATHER * S))
    ring = (d > 0) & (alpha >= 0.5)
    return alpha.astype(np.float32), ring


def core_rectangle(core: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest axis-aligned rectangle (r0, c0, r1, c1) whose pixels are all True in `core` (bool (h, w)),
    or None. Exact for a convex region (each row one run, as the mask's alpha == 1 region is); anything else
    gets a smaller rectangle that is still all True, or None."""
    h, w = core.shape
    rows = core.any(axis=1)
    if not rows.any():
        return None
    left = np.where(rows, core.argmax(axis=1), w)  # first True of each row (w: none)
    right = np.where(rows, w - core[:, ::-1].argmax(axis=1), 0)  # one past the last
    best, rect = 0, None
    for r0 in np.nonzero(rows)[0]:
        lo = np.maximum.accumulate(left[r0:])
        hi = np.minimum.accumulate(right[r0:])
        area = (hi - lo) * np.arange(1, h - r0 + 1)
        i = int(area.argmax())
        if area[i] > best:
            best, rect = int(area[i]), (int(r0), int(lo[i]), int(r0 + i + 1), int(hi[i]))
    if rect is not None and not core[rect[0]:rect[2], rect[1]:rect[3]].all():
        return None  # not convex after all: blend everything
    return rect


def _strips(shape: tuple[int, int], rect: tuple[int, int, int, int] | None) -> list[tuple[slice, slice]]:
    """The parts of an (h, w) box outside `rect`: top, bottom, left, right (empty ones left out)."""
    h, w = shape
    if rect is None:
        return [(slice(0, h), slice(0, w))]
    r0, c0, r1, c1 = rect
    parts = [(slice(0, r0), slice(0, w)), (slice(r1, h), slice(0, w)),
             (slice(r0, r1), slice(0, c0)), (slice(r0, r1), slice(c1, w))]
    return [(a, b) for a, b in parts if a.stop > a.start and b.stop > b.start]


def _lab(bgr: np.ndarray) -> np.ndarray:
    """uint8 or float BGR pixels (N, 3) -> float32 Lab (N, 3) (L 0..100)."""
    x = np.asarray(bgr, np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(x, cv2.COLOR_BGR2Lab).reshape(-1, 3)


def _bgr(lab: np.ndarray) -> np.ndarray:
    x = cv2.cvtColor(np.asarray(lab, np.float32).reshape(-1, 1, 3), cv2.COLOR_Lab2BGR)
    return x.reshape(-1, 3) * 255.0


def colour_transfer(face: np.ndarray, picture: np.ndarray, ring: np.ndarray, region: np.ndarray
                    ) -> np.ndarray | None:
    """The 3x4 float32 BGR affine that matches `face`'s colours to `picture`'s (both uint8 BGR (S, S, 3)).

    Mean/std transfer per Lab channel, from the statistics of both on `ring` (bool (S, S)); fitted by least
    squares as a BGR affine over `region`'s pixels of `face` (the pixels it will be applied to). None when the
    ring is too small to measure on."""
    if int(ring.sum()) < 32:
        return None
    g, p = _lab(face[ring]), _lab(picture[ring])
    mu_g, mu_p = g.mean(axis=0), p.mean(axis=0)
    k = np.clip(p.std(axis=0) / np.maximum(g.std(axis=0), 1e-3), *STD_RATIO)
    src = face[region].reshape(-1, 3).astype(np.float32)
    if len(src) < 32:
        return None
    if len(src) > 20000:  # a least-squares fit needs no more
        src = src[np.random.default_rng(0).choice(len(src), 20000, replace=False)]
    dst = _bgr((_lab(src) - mu_g) * k + mu_p)
    X = np.hstack([src, np.ones((len(src), 1), np.float32)])
    M, *_ = np.linalg.lstsq(X, dst, rcond=None)  # (4, 3): dst ~ X @ M
    return np.ascontiguousarray(M.T, dtype=np.float32)


@dataclass(frozen=True)
class Placement:
    """Where the S x S face crop lands in the output frame (see Compositor)."""

    matrix: np.ndarray  # 2x3: crop pixels -> frame pixels
    scale: float  # the picture's scale in the frame
    offset: tuple[float, float]  # the picture's offset in the frame (frame_geometry), snapped
    zoom: tuple[float, float]  # crop pixels -> frame pixels, per axis
    src: tuple[int, int, int, int]  # (u0, u1, v0, v1): the part of the crop that is resized each frame
    at: tuple[int, int] | None  # the frame pixel the resized part's first pixel lands on; None: not shown
    footprint: tuple[int, int, int, int]  # the picture's pixels in the frame (x0, y0, x1, y1)


def place(picture_shape, crop, size: int, framing: Framing, support: np.ndarray) -> Placement:
    """The crop's placement in the frame: the crop's exact inverse (crop pixels -> picture pixels), then the
    framing. `support`: the crop pixels that may be shown (the mask's), the part resized each frame.

    Per axis the map is x -> a x + t (the crop and the frame are both axis-aligned), which cv2.resize with
    fx = a computes 4-5x faster than a general warp, as long as the resized face lands on whole frame
    pixels. So the framing's offset moves by under half a frame pixel to put it there; the background is
    framed with that same offset, so face and picture stay exactly registered."""
    S = int(size)
    f, ox, oy, foot = frame_geometry(picture_shape, framing, focus=(crop.cx, crop.cy))
    C = crop.inverse_matrix(S)  # crop pixels -> picture pixels

    def crop_to_frame(ox: float, oy: float) -> np.ndarray:
        F = np.array([[f, 0.0, 0.5 * f - 0.5 + ox], [0.0, f, 0.5 * f - 0.5 + oy]])
        return np.hstack([F[:, :2] @ C[:, :2], (F[:, :2] @ C[:, 2] + F[:, 2])[:, None]])

    A = crop_to_frame(ox, oy)
    a = (A[0, 0], A[1, 1])
    # The part of the crop to resize each frame: the mask's support, within what the frame shows.
    ys, xs = np.nonzero(support)
    if not len(xs):  # (degenerate landmarks)
        xs = ys = np.array([S // 2, S // 2 - 1])
    margin = 2 + int(np.ceil(1.0 / min(a)))
    src = []
    for axis, (lo, hi), (flo, fhi) in ((0, (xs.min(), xs.max()), (foot[0], foot[2] - 1)),
                                       (1, (ys.min(), ys.max()), (foot[1], foot[3] - 1))):
        t = A[axis, 2]
        lo = max(lo, int(np.floor((flo - t) / a[axis])))
        hi = min(hi, int(np.ceil((fhi - t) / a[axis])))
        src.append((max(0, lo - margin), min(S, hi + 1 + margin)))
    (u0, u1), (v0, v1) = src
    at = None
    if u0 < u1 and v0 < v1:
        # resize maps sub-image pixel x to a (x + 0.5) - 0.5: frame pixel a (u0 + x) + t = that + k
        k = [A[0, 2] + a[0] * u0 - 0.5 * a[0] + 0.5, A[1, 2] + a[1] * v0 - 0.5 * a[1] + 0.5]
        ox, oy = ox + round(k[0]) - k[0], oy + round(k[1]) - k[1]
        A = crop_to_frame(ox, oy)
        at = (round(k[0]), round(k[1]))
    return Placement(A, f, (ox, oy), a, (u0, u1, v0, v1), at, foot)


def frame_alpha(crop_alpha: np.ndarray, p: Placement, framing: Framing) -> np.ndarray:
    """The face mask in the frame (float32 (H, W)): warped once, clamped to the picture's footprint and to
    the resized face, and made crisp at 0 and 1 (exactly the picture outside its support)."""
    W, H = framing.size
    alpha = cv2.warpAffine(crop_alpha, p.matrix, (W, H), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    keep = np.zeros_like(alpha)
    if p.at is not None:
        u0, u1, v0, v1 = p.src
        rh, rw = cv2.resize(np.zeros((v1 - v0, u1 - u0), np.uint8), (0, 0), fx=p.zoom[0], fy=p.zoom[1]).shape
        x0, y0, x1, y1 = p.footprint
        x0, y0 = max(x0, p.at[0]), max(y0, p.at[1])
        x1, y1 = min(x1, p.at[0] + rw), min(y1, p.at[1] + rh)
        keep[y0:y1, x0:x1] = 1.0
    alpha *= keep
    alpha[alpha < 1.0 / 512] = 0.0
    alpha[alpha > 1.0 - 1.0 / 512] = 1.0
    return alpha


class Compositor:
    """Pastes generated faces back into a picture through the exact inverse of its crop (see the module doc).

    picture: uint8 BGR (H, W, 3); crop: the puppet.faces.crop.Crop the reference crop was cut with, in picture
    pixels; size: the side S of the faces it pastes; ref_landmarks: (68, 2) in their pixels; neutral: the
    face at ref_landmarks (uint8 BGR (S, S, 3)), for the colour match (none: colours as generated until
    calibrate()).
    """

    def __init__(self, picture: np.ndarray, crop, size: int, ref_landmarks: np.ndarray,
                 framing: Framing | None = None, neutral: np.ndarray | None = None):
        framing = framing or Framing()
        picture = np.ascontiguousarray(picture)
        if picture.dtype != np.uint8 or picture.ndim != 3 or picture.shape[2] != 3:
            raise ValueError(f"picture must be uint8 (H, W, 3) BGR, got {picture.dtype} {picture.shape}")
        self.size = S = int(size)
        self.framing = framing
        self.crop = crop
        self.crop_alpha, ring = face_mask(ref_landmarks, S)
        p = self.placement = place(picture.shape, crop, S, framing, self.crop_alpha)
        self.matrix, self.offset, self.scale = p.matrix, p.offset, p.scale
        self.background = frame_picture(picture, framing, p.scale, *p.offset)
        self.background.setflags(write=False)
        self._blend_layout(frame_alpha(self.crop_alpha, p, framing))
        # For the colour match: the picture as the crop sees it, and where that is really the picture.
        self._picture_crop = crop.apply(picture, S)
        valid = cv2.warpAffine(np.ones(picture.shape[:2], np.uint8), crop.matrix(S), (S, S),
                               flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        self._ring = ring & (valid > 0)
        self.colour: np.ndarray | None = None
        if neutral is not None:
            self.calibrate(neutral)

    def _blend_layout(self, alpha: np.ndarray) -> None:
        """Per-frame blending over the mask's bounding box: where alpha is 1 the face is copied, not blended
        (the largest rectangle there), and the strips around it keep their weights, contiguous, for
        cv2.blendLinear."""
        ys, xs = np.nonzero(alpha)
        if not len(xs):  # the face is entirely outside the frame (fill cropped it away): the picture alone
            self.bbox = None
            self.alpha = self.beta = None
            log.warning("the target's face is outside the output frame; use --fit fit")
            return
        self.bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        bx0, by0, bx1, by1 = self.bbox
        self.alpha = np.ascontiguousarray(alpha[by0:by1, bx0:bx1])
        self.beta = 1.0 - self.alpha
        kx, ky = self.placement.at
        self._layer = (by0 - ky, by1 - ky, bx0 - kx, bx1 - kx)  # in the resized face
        self.core = core_rectangle(self.alpha == 1.0)
        self._strips = [(sl, np.ascontiguousarray(self.alpha[sl]), np.ascontiguousarray(self.beta[sl]))
                        for sl in _strips(self.alpha.shape, self.core)]

    notice: str | None = None  # why the output isn't the whole picture (a target without one)

    @classmethod
    def for_target(cls, target, framing: Framing | None = None, neutral: np.ndarray | None = None,
                   quiet: bool = False, size: int | None = None) -> Compositor:
        """A target's compositor: into its picture, or, for a target without one (format version 1), onto its
        reference crop, with a one-line notice (logged as a warning, or, with quiet, left in .notice for the
        caller to log when it suits it: puppet.live logs it once its start can no longer fail). `size`: the
        side of the faces it will paste (default the generator's image_size; see face_size)."""
        from puppet.faces.crop import Crop
        from puppet.target import to_size

        S = target.image_size if size is None else int(size)
        notice = None
        if target.picture is not None:
            picture, crop = target.picture, target.crop
        else:
            name = target.meta.get("path", "target")
            notice = (f"{name}: has no source picture (made before puppet kept one); the face is pasted onto "
                      f"its reference crop: re-make it with puppet.finetune for the whole picture")
            picture, crop = target.ref_image, Crop((S - 1) / 2, (S - 1) / 2, float(S))  # the identity
        comp = cls(picture, crop, S, to_size(target.ref_landmarks, target.image_size, S), framing, neutral)
        comp.notice = notice
        if notice and not quiet:
            log.warning(notice)
        return comp

    def calibrate(self, neutral: np.ndarray) -> None:
        """The colour match from the generator's image at the reference landmarks (uint8 BGR (S, S, 3))."""
        self._check(neutral)
        self.colour = colour_transfer(neutral, self._picture_crop, self._ring, self.crop_alpha > 0)

    def _check(self, face: np.ndarray) -> None:
        if face.shape != (self.size, self.size, 3) or face.dtype != np.uint8:
            raise ValueError(f"expected a uint8 BGR ({self.size}, {self.size}, 3) face, "
                             f"got {face.dtype} {face.shape}")

    def face_layer(self, face: np.ndarray) -> np.ndarray | None:
        """The colour-matched face at frame scale over the mask's bounding box (what gets blended there);
        None when the face is outside the frame."""
        self._check(face)
        if self.bbox is None:
            return None
        u0, u1, v0, v1 = self.placement.src
        part = face[v0:v1, u0:u1]
        if self.colour is not None:
            part = cv2.transform(part, self.colour)
        zx, zy = self.placement.zoom
        big = cv2.resize(part, (0, 0), fx=zx, fy=zy, interpolation=cv2.INTER_LINEAR)
        y0, y1, x0, x1 = self._layer
        return big[y0:y1, x0:x1]

    def __call__(self, face: np.ndarray) -> np.ndarray:
        """The output frame for one generated face: uint8 BGR (H, W, 3), a new array."""
        layer = self.face_layer(face)
        out = self.background.copy()
        if layer is not None:
            x0, y0, x1, y1 = self.bbox
            region = out[y0:y1, x0:x1]
            for sl, a, b in self._strips:
                region[sl] = cv2.blendLinear(layer[sl], region[sl], a, b)
            if self.core is not None:
                r0, c0, r1, c1 = self.core
                region[r0:r1, c0:c1] = layer[r0:r1, c0:c1]
        return out

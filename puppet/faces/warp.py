"""The piecewise-affine face warp: move a face so that its 68 landmarks go from `src_lms` to `dst_lms`.

The image is cut into triangles (Delaunay over the landmarks, a few forehead points, rings around the head and
the frame's border) and each triangle is mapped by its own affine transform, through one dense `cv2.remap`.
The border stays put, so the background follows smoothly; an opening mouth gets a dark inside. Synthetic
clips, warp augmentation and the quality protocol's `warp` baseline all use it.
"""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np

from puppet.faces.pose import _RIGID, FaceFrame, Motion, _face_frame, move
from puppet.faces.regions import EYE_LIDS, EYE_POINTS, INNER_LIP_POINTS, INNER_LIPS, OUTER_LIP_POINTS


def _fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + shift taking src to dst (2x3), no RANSAC: deterministic."""
    s = src[:, 0] + 1j * src[:, 1]
    d = dst[:, 0] + 1j * dst[:, 1]
    sm, dm = s.mean(), d.mean()
    s0, d0 = s - sm, d - dm
    a = (np.conj(s0) @ d0) / max(float(np.real(np.conj(s0) @ s0)), 1e-12)
    t = dm - a * sm
    return np.array([[a.real, -a.imag, t.real], [a.imag, a.real, t.imag]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _forehead(lms: np.ndarray) -> np.ndarray:
    """Six points above the brows that move with them (the 68 points stop at the brows)."""
    _, _, ey, w = _face_frame(lms)
    return np.asarray(lms, np.float64)[[17, 19, 21, 22, 24, 26]] - 0.55 * w * ey


def _ring(c, ex, ey, w, radius: float) -> np.ndarray:
    """Points on an ellipse around the head (hair, ears, neck), centred a little above the nose."""
    ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    centre = c - 0.35 * w * ey
    return (
        centre
        + (radius * 1.25 * w) * np.cos(ang)[:, None] * ex
        + (radius * 1.45 * w) * np.sin(ang)[:, None] * ey
    )


def _control_points(shape: tuple[int, int], src_lms: np.ndarray, dst_lms: np.ndarray):
    """Matching source and destination control points: landmarks, forehead, two head rings, frame border."""
    h, wd = shape
    src_lms = np.asarray(src_lms, np.float64)
    dst_lms = np.asarray(dst_lms, np.float64)
    c, ex, ey, w = _face_frame(src_lms)
    fh_src, fh_dst = _forehead(src_lms), _forehead(dst_lms)
    # The head ring follows the head's overall motion (a similarity fitted to the rigid points); the neck
    # (below the chin) follows less, and an outer ring less still, so the warp fades out into the background.
    sim = _fit_similarity(src_lms[_RIGID], dst_lms[_RIGID])
    src, dst = [src_lms, fh_src], [dst_lms, fh_dst]
    for radius, strength in ((1.25, 1.0), (2.1, 0.35)):
        ring = _ring(c, ex, ey, w, radius)
        below = np.clip(((ring - c) @ ey / w - 0.8) / 1.0, 0.0, 1.0)  # 0 above the chin, 1 well below it
        weight = strength * (1.0 - 0.6 * below)
        src.append(ring)
        dst.append(ring + weight[:, None] * (_apply(sim, ring) - ring))
    src = np.concatenate(src)
    dst = np.concatenate(dst)
    # Keep the extra anchors that lie inside the frame (landmarks always stay: they are the point).
    keep = np.ones(len(src), bool)
    inside = (src[:, 0] > 1) & (src[:, 0] < wd - 2) & (src[:, 1] > 1) & (src[:, 1] < h - 2)
    keep[68:] = inside[68:]
    src, dst = src[keep], dst[keep]
    # The frame's border is fixed: corners and points along each edge.
    xs = np.linspace(0, wd - 1, 5)
    ys = np.linspace(0, h - 1, 5)[1:-1]
    border = np.concatenate(
        [
            np.stack([xs, np.zeros_like(xs)], 1),
            np.stack([xs, np.full_like(xs, h - 1)], 1),
            np.stack([np.zeros_like(ys), ys], 1),
            np.stack([np.full_like(ys, wd - 1), ys], 1),
        ]
    )
    return np.concatenate([src, border]), np.concatenate([dst, border])


def shape_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How far two faces' landmarks are apart once a similarity (shift, rotation, scale) is taken out: the
    mean point distance over the face width of `b`. Pose-in-depth and expression remain, which is what
    decides how much a warp from one to the other has to invent."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    m = _fit_similarity(a, b)
    width = max(float(np.linalg.norm(b[16] - b[0])), 1e-6)
    return float(np.linalg.norm(_apply(m, a) - b, axis=1).mean() / width)


# Another reference than the current one is taken when it is this much nearer in shape: live, the warped
# reference then doesn't flicker between two photos that fit a pose about equally well.
SWITCH_MARGIN = 0.9


def nearest_shape(candidates, landmarks: np.ndarray, current: int | None = None) -> int:
    """Index of the candidate landmark set nearest in shape to `landmarks` (shape_distance). With
    `current`, another is taken only when it is nearer by SWITCH_MARGIN (hysteresis for video)."""
    d = [shape_distance(c, landmarks) for c in candidates]
    best = int(np.argmin(d))
    if current is not None and 0 <= current < len(d) and d[best] >= SWITCH_MARGIN * d[current]:
        return current
    return best


def triangulate(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Delaunay triangles (n, 3) of point indices, with OpenCV's Subdiv2D.

    Points are nudged into the frame for the triangulation only; exact duplicates keep the first index.
    """
    h, w = shape
    pts = np.asarray(points, np.float32).copy()
    lo = min(float(pts[:, 0].min()), 0.0) - 1, min(float(pts[:, 1].min()), 0.0) - 1
    hi = max(float(pts[:, 0].max()), w - 1.0) + 2, max(float(pts[:, 1].max()), h - 1.0) + 2
    subdiv = cv2.Subdiv2D(
        (
            int(math.floor(lo[0])),
            int(math.floor(lo[1])),
            int(math.ceil(hi[0] - lo[0])) + 1,
            int(math.ceil(hi[1] - lo[1])) + 1,
        )
    )
    index = {}
    for i, (x, y) in enumerate(pts):
        key = (float(x), float(y))
        if key not in index:
            index[key] = i
            subdiv.insert(key)
    tris = []
    for t in subdiv.getTriangleList().reshape(-1, 3, 2):
        ids = [index.get((float(x), float(y))) for x, y in t]
        if None not in ids:
            tris.append(ids)
    return np.asarray(tris, np.int32).reshape(-1, 3)


def _open_for_topology(lms: np.ndarray) -> np.ndarray:
    """The landmarks with the mouth a little open: a closed mouth's inner lips nearly coincide, and the
    triangulation must connect upper to lower lip (not across), so that an opening mouth stretches the gap."""
    return move(lms, Motion(mouth=0.4))


def warp(bgr: np.ndarray, src_lms: np.ndarray, dst_lms: np.ndarray, mouth_fill: bool = True) -> np.ndarray:
    """Warp a portrait so that its landmarks move from `src_lms` to `dst_lms` (both (68, 2) pixels).

    Piecewise affine over a Delaunay mesh of the landmarks, forehead points, rings around the head and the
    frame border (fixed). Every output pixel is looked up through its triangle's inverse affine map in one
    `cv2.remap` (bilinear, border reflected). `mouth_fill` paints a mouth opened wider and lids closed
    further than in the source (`paint`).
    """
    if bgr.ndim != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 BGR image (H, W, 3), got {bgr.dtype} {bgr.shape}")
    h, w = bgr.shape[:2]
    src, dst = _control_points((h, w), src_lms, dst_lms)
    tris = _mesh((h, w), src, np.asarray(src_lms, np.float32))
    map_x, map_y = _dense_map((h, w), src, dst, tris)
    out = cv2.remap(bgr, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    if mouth_fill:
        paint(out, np.asarray(src_lms, np.float32), np.asarray(dst_lms, np.float32))
    return out


def paint(img: np.ndarray, src_lms: np.ndarray, dst_lms: np.ndarray) -> None:
    """What a warp can't show, painted in place: the inside of a mouth opened wider than in the source and
    the lids of an eye closed further than in the source."""
    _fill_mouth(img, src_lms, dst_lms)
    _close_lids(img, src_lms, dst_lms)


_MESHES: dict[bytes, np.ndarray] = {}


def _mesh(shape: tuple[int, int], src: np.ndarray, src_lms: np.ndarray) -> np.ndarray:
    """The triangles for these source control points (cached: a clip warps one portrait many times)."""
    key = np.asarray(shape, np.int64).tobytes() + src.tobytes()
    if key not in _MESHES:
        if len(_MESHES) > 16:
            _MESHES.clear()
        topo = src.copy()  # the landmarks come first in the control points
        topo[:68] = _open_for_topology(src_lms)
        _MESHES[key] = triangulate(topo, shape)
    return _MESHES[key]


_UNCOVERED = 255  # the label of pixels outside every triangle

# Crops up to this side get their map computed at every pixel. Larger ones get it at every second pixel,
# upsampled bilinearly: the map is affine inside each triangle, so that is exact wherever the four samples
# around a pixel share its triangle. It differs only within a pixel or two of triangle edges (by the change
# of slope across the edge: at 512², 99 % of all pixels within 0.2 px, at most 1-2 px) and of folds (triangles
# turned over by an extreme motion, where no map is right). A 512² map then costs about what a 256² one does.
FULL_MAP_MAX = 256


def _dense_map(shape, src: np.ndarray, dst: np.ndarray, tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 maps x and y (cv2.remap's map1, map2): for each output pixel, where to sample the
    source.

    Each pixel gets the label of the destination triangle it lies in (rasterised with fillConvexPoly into a
    uint8 image), and its source position is that triangle's inverse affine map applied to the pixel: the
    six coefficients are looked up per pixel with cv2.LUT (a table of 256 entries; numpy's fancy-index
    gather of (H, W, 6) floats took half of a 512² warp) and combined in place. Above FULL_MAP_MAX this is
    done on a grid of every second pixel and resized up. The maps are this thread's work buffers
    (_buffers), valid until its next warp of that size.
    """
    h, w = shape
    step = 1 if max(h, w) <= FULL_MAP_MAX else 2
    gh, gw = -(-h // step), -(-w // step)
    # At most 2n - 5 Delaunay triangles for n <= 118 control points: the labels fit a byte, with a spare
    # value for the pixels no triangle covers (the identity map).
    if len(tris) >= _UNCOVERED:
        raise ValueError(f"{len(tris)} triangles: more than a uint8 label image holds")
    label, planes = _buffers(gh, gw)
    label.fill(_UNCOVERED)
    coef = np.zeros((6, 1, 256), np.float64)
    coef[:, 0, _UNCOVERED] = [1, 0, 0, 0, 1, 0]
    # Inverse maps dst -> src for all triangles at once, in closed form: the linear part takes the
    # destination triangle's edges from its first corner onto the source's, the shift puts that corner in
    # place. A collapsed destination triangle (e.g. a shut eyelid) covers no
    # pixels and is left out.
    d_tri, s_tri = dst[tris], src[tris]  # (T, 3, 2)
    e1, e2 = d_tri[:, 1] - d_tri[:, 0], d_tri[:, 2] - d_tri[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) > 1e-6
    idx = np.flatnonzero(ok)
    e1, e2, det, p0, q0 = e1[idx], e2[idx], det[idx, None, None], d_tri[idx, 0], s_tri[idx, 0]
    f1, f2 = s_tri[idx, 1] - q0, s_tri[idx, 2] - q0
    # [f1 f2] [e1 e2]^-1, the inverse's rows (e2y, -e2x) / det and (-e1y, e1x) / det
    lin = (f1[:, :, None] * np.stack([e2[:, 1], -e2[:, 0]], 1)[:, None]
           + f2[:, :, None] * np.stack([-e1[:, 1], e1[:, 0]], 1)[:, None]) / det
    shift = q0 - np.einsum("trc,tc->tr", lin, p0)
    coef[:, 0, idx] = np.concatenate([lin, shift[:, :, None]], 2).reshape(-1, 6).T
    if step > 1:
        # Grid pixel (i, j) is the output position (sx j + ox, sy i + oy), where cv2.resize (INTER_LINEAR,
        # half-pixel centres) puts it: the triangles are drawn in grid pixels and the maps taken there.
        sx, sy = w / gw, h / gh
        ox, oy = sx / 2 - 0.5, sy / 2 - 0.5
        a, b, c, d, e, f = coef
        coef = np.stack([a * sx, b * sy, c + a * ox + b * oy, d * sx, e * sy, f + d * ox + e * oy])
        d_tri = (d_tri - [ox, oy]) / [sx, sy]
    fixed = np.round(d_tri * 16).astype(np.int32)
    for poly, k in zip(list(fixed[idx]), idx.tolist()):
        cv2.fillConvexPoly(label, poly, k, cv2.LINE_8, 4)  # 4 fractional bits
    a, b, c, d, e, f = (cv2.LUT(label, t, dst=p) for t, p in zip(coef.astype(np.float32), planes))
    ys, xs = _grid(gh, gw)
    a *= xs
    b *= ys
    a += b
    a += c  # x: a x + b y + c
    d *= xs
    e *= ys
    d += e
    d += f  # y: d x + e y + f
    if step == 1:
        return a, d
    map_x, map_y = _buffers(h, w, planes=2)[1]
    cv2.resize(a, (w, h), dst=map_x, interpolation=cv2.INTER_LINEAR)
    cv2.resize(d, (w, h), dst=map_y, interpolation=cv2.INTER_LINEAR)
    # The frame's edge is fixed (border control points), so there the map is the identity; resizing would
    # hold the outermost grid samples, half a step inside.
    map_x[:, 0], map_x[:, -1], map_y[0], map_y[-1] = 0, w - 1, 0, h - 1
    map_x[[0, -1]] = np.arange(w, dtype=np.float32)
    map_y[:, [0, -1]] = np.arange(h, dtype=np.float32)[:, None]
    return map_x, map_y


_LOCAL = threading.local()


def _buffers(h: int, w: int, planes: int = 6) -> tuple[np.ndarray, list[np.ndarray]]:
    """This thread's work buffers for an (h, w) map: a uint8 label image and `planes` float32 planes.
    Reused across calls: fresh multi-megabyte arrays each frame cost more in page faults than the
    arithmetic."""
    cache = getattr(_LOCAL, "buffers", None)
    if cache is None:
        cache = _LOCAL.buffers = {}
    if (h, w, planes) not in cache:
        if len(cache) > 4:
            cache.clear()
        cache[(h, w, planes)] = (np.empty((h, w), np.uint8),
                                 [np.empty((h, w), np.float32) for _ in range(planes)])
    return cache[(h, w, planes)]


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinate grids (float32), cached per size: a clip warps many frames of one size."""
    if (h, w) not in _GRIDS:
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        ys, xs = np.indices((h, w), dtype=np.float32)
        _GRIDS[(h, w)] = (ys, xs)
    return _GRIDS[(h, w)]


def _span(lms: np.ndarray, pairs) -> float:
    """The mean distance between the points of each (upper, lower) pair: how far a lid or lip pair is open."""
    return float(np.mean([np.linalg.norm(lms[u] - lms[lo]) for u, lo in pairs]))


def _polygon_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


# The inside of an open mouth, painted: the lips' own colour times this (a shadowed mouth on any skin and
# light). A flat band of teeth under the upper lip lowered every mouth score in self-reenactment and read as
# white lips on a slightly open mouth (BENCHMARKS.md, "Inside the mouth and the eyes").
MOUTH_SHADE = 0.5


def _fill_mouth(img: np.ndarray, src_lms: np.ndarray, dst_lms: np.ndarray) -> None:
    """Paint the inside of a mouth that opened: the warp can only stretch lip pixels across the gap.

    The lips' median colour darkened (MOUTH_SHADE), with a soft edge, faded in with how much wider the mouth
    is than in the source (a mouth open in the portrait already keeps its own inside), each measured against
    its face's size, so that a head leaning in paints nothing.
    """
    inner = dst_lms[list(INNER_LIP_POINTS)].astype(np.float64)
    outer = dst_lms[list(OUTER_LIP_POINTS)].astype(np.float64)
    zoom = FaceFrame.of(dst_lms).scale / FaceFrame.of(src_lms).scale
    a_src, a_dst = _polygon_area(src_lms[list(INNER_LIP_POINTS)]) * zoom**2, _polygon_area(inner)
    if a_dst < 4.0 or a_dst <= a_src * 1.05:
        return
    alpha = min(1.0, 1.0 - a_src / a_dst)
    gap = _span(dst_lms.astype(np.float64), INNER_LIPS)
    both = np.concatenate([inner, outer])
    x0, y0 = np.floor(both.min(0)).astype(int) - 4
    x1, y1 = np.ceil(both.max(0)).astype(int) + 5
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, img.shape[1]), min(y1, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    off = np.array([x0, y0], np.float64)

    def poly_mask(pts: np.ndarray) -> np.ndarray:
        m = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillPoly(m, [np.round((pts - off) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
        return m

    roi = img[y0:y1, x0:x1].astype(np.float32)
    inside = poly_mask(inner)
    lips = (poly_mask(outer) > 0.5) & (inside < 0.5)
    if not lips.any():  # lips under a pixel thick: nothing to take a colour from
        return
    colour = np.median(roi[lips], axis=0) * MOUTH_SHADE
    cavity = cv2.GaussianBlur(inside, (0, 0), max(0.6, 0.08 * gap))[..., None] * alpha
    img[y0:y1, x0:x1] = np.clip(roi * (1 - cavity) + colour * cavity, 0, 255).astype(np.uint8)


# The lid fades in between these fractions of the eye's closing (lid gap lost against the source's); tuned
# on the dev-eval cross-reenactment (BENCHMARKS.md).
LID_START, LID_FULL = 0.2, 0.6
# The painted lid, in eye widths: how far it reaches above the upper lid line and below the lower one (the
# squeezed lid margins and lashes of the open eye lie there), and the lash line's thickness. mediapipe reads
# a thin, dark lash line under plain lid skin as a shut eye; a faint or thick one as an eye partly open.
LID_UP, LID_DOWN, LASH = 0.12, 0.05, 0.06
LASH_SHADE = 0.15  # the lash line's colour: the lid skin's times this


def _close_lids(img: np.ndarray, src_lms: np.ndarray, dst_lms: np.ndarray) -> None:
    """Paint the lid over an eye that closed: the warp can only squeeze the open eye (iris, white, both lid
    margins) into a dark slit. Lid skin (the colour just above the eye) covers the eye's opening and the
    squeezed margins around it, with a thin dark lash line along where the lids meet, faded in from a fifth
    closed to fully painted at three fifths closed (against the face's size: a head leaning back doesn't
    close its eyes)."""
    down = _face_frame(dst_lms)[2]
    zoom = FaceFrame.of(dst_lms).scale / FaceFrame.of(src_lms).scale
    for points, lids in zip(EYE_POINTS, EYE_LIDS):
        idx = list(points)
        src_gap, dst_gap = _span(src_lms, lids) * zoom, _span(dst_lms, lids)
        if src_gap < 1.0:
            continue
        alpha = float(np.clip((1.0 - dst_gap / src_gap - LID_START) / (LID_FULL - LID_START), 0.0, 1.0))
        if alpha <= 0.0:
            continue
        eye = dst_lms[idx].astype(np.float64)
        width = float(np.linalg.norm(eye[3] - eye[0]))
        if width < 2.0:
            continue
        pad = int(np.ceil(0.5 * width))
        x0, y0 = np.floor(eye.min(0)).astype(int) - pad
        x1, y1 = np.ceil(eye.max(0)).astype(int) + pad + 1
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, img.shape[1]), min(y1, img.shape[0])
        if x1 - x0 < 3 or y1 - y0 < 3:
            continue
        eye -= np.array([x0, y0], np.float64)
        roi = img[y0:y1, x0:x1].astype(np.float32)
        # Lid skin: the median colour of a band just above the upper lid (the brow's side of the eye).
        upper = eye[[0, 1, 2, 3]]
        band = np.zeros(roi.shape[:2], np.uint8)
        lift = 0.22 * width * down
        above = np.concatenate([upper - lift, (upper - 2 * lift)[::-1]])
        cv2.fillPoly(band, [np.round(above).astype(np.int32)], 1)
        if not band.any():
            continue
        skin = np.median(roi[band.astype(bool)], axis=0)
        # The eye's opening, grown up over the upper lid's margin and down over the lower one's, softened.
        up, dn = LID_UP * width * down, LID_DOWN * width * down
        lid = np.array([eye[0], eye[1] - up, eye[2] - up, eye[3], eye[4] + dn, eye[5] + dn])
        cover = np.zeros(roi.shape[:2], np.float32)
        cv2.fillPoly(cover, [np.round(lid * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
        cover = cv2.GaussianBlur(cover, (0, 0), max(0.5, 0.05 * width))
        a = (alpha * cover)[..., None]
        out = roi * (1 - a) + skin * a
        # The lash line: where the lids meet (the corners and the middle of each lid pair).
        meet = np.array([eye[0], *[(eye[u - idx[0]] + eye[lo - idx[0]]) / 2 for u, lo in lids], eye[3]])
        lash = np.zeros(roi.shape[:2], np.float32)
        # Its thickness (whole pixels) from the source's eye, which doesn't change from frame to frame:
        # from the driven eye's width it would flicker between two thicknesses as the head moves.
        thick = max(1, int(round(LASH * float(np.linalg.norm(src_lms[idx[3]] - src_lms[idx[0]])))))
        cv2.polylines(lash, [np.round(meet * 16).astype(np.int32)], False, 1.0, thick, cv2.LINE_AA, shift=4)
        t = (alpha * lash)[..., None]
        out = out * (1 - t) + (skin * LASH_SHADE) * t
        img[y0:y1, x0:x1] = np.clip(out, 0, 255).astype(np.uint8)

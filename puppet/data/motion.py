"""Synthetic talking heads from one still portrait: landmark-driven piecewise-affine warps (OpenCV).

Three layers, each usable alone:
- `warp(bgr, src_lms, dst_lms)`: move the face so that its 68 landmarks go from `src_lms` to `dst_lms`. The
  image is cut into triangles (Delaunay over the landmarks, a few forehead points, rings around the head and
  the frame's border) and each triangle is mapped by its own affine transform, through one dense `cv2.remap`.
  The border stays put, so the background follows smoothly; an opening mouth gets a dark inside.
- `Motion` + `move(lms, motion)`: new landmarks for a head pose (yaw, pitch, roll, shift, scale) and an
  expression (mouth opening, blink). Yaw and pitch rotate the landmarks in 3D with a generic per-point depth
  and project them back (orthographic), so the nose moves more than the cheeks and the far side foreshortens.
- `perturb(lms, rng)` (one random motion: warp augmentation for fine-tuning) and `animate(bgr, lms, n_frames,
  rng)` (a smooth random talking-head clip: the demo's driving video, and training data with no camera).

The warped landmarks are known exactly, so synthetic clips need no re-detection. `write_video` writes real
mp4 files (cv2.VideoWriter) for anything that needs a clip on disk.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from puppet.errors import PuppetError

# Generic depth (towards the camera) of each iBUG point, in units of the face's half width (jaw 0 to 16, / 2),
# with the jaw's ends (beside the ears) at 0. Rough values read off a mean 3D face: the nose tip is the most
# forward point, the eyes sit back in their sockets, the jaw curves back towards the ears.
_DEPTH = np.array(
    [0.9 * math.cos(abs(i - 8) / 8 * math.pi / 2) for i in range(17)]  # jaw 0-16
    + [0.45, 0.65, 0.8, 0.85, 0.85, 0.85, 0.85, 0.8, 0.65, 0.45]  # brows 17-26
    + [0.85, 0.95, 1.05, 1.15]  # nose bridge 27-30
    + [0.85, 0.95, 1.0, 0.95, 0.85]  # lower nose 31-35
    + [0.55, 0.7, 0.72, 0.7, 0.72, 0.7]  # eye 36-41
    + [0.7, 0.72, 0.7, 0.55, 0.7, 0.72]  # eye 42-47
    + [0.75, 0.9, 0.97, 1.0, 0.97, 0.9, 0.75, 0.9, 0.97, 1.0, 0.97, 0.9]  # outer lips 48-59
    + [0.78, 0.92, 0.95, 0.92, 0.78, 0.92, 0.95, 0.92],  # inner lips 60-67
    dtype=np.float32,
)

# Yaw and pitch turn the face about a point this far behind the jaw-end plane (half widths): a head is a ball
# whose centre sits behind the face.
_PIVOT_DEPTH = 0.3

# Mouth opening: how far each point drops (fraction of the full opening) when the jaw opens. The lower lip and
# chin move with the jaw; the corners half as much; the upper lip barely lifts.
_MOUTH_DROP = np.zeros(68, np.float32)
_MOUTH_DROP[[65, 66, 67, 56, 57, 58]] = 1.0
_MOUTH_DROP[[55, 59]] = 0.85
_MOUTH_DROP[[60, 64]] = 0.45
_MOUTH_DROP[[48, 54]] = 0.35
_MOUTH_DROP[8] = 0.85
_MOUTH_DROP[[7, 9]] = 0.75
_MOUTH_DROP[[6, 10]] = 0.55
_MOUTH_DROP[[5, 11]] = 0.3
_MOUTH_DROP[[4, 12]] = 0.1
_MOUTH_DROP[[61, 62, 63]] = -0.08
_MOUTH_OPEN = 0.3  # full opening, in half widths (a wide-open jaw)

# Blink: upper-lid point, matching lower-lid point. A closing eye's upper lid comes most of the way down.
_LIDS = [(37, 41), (38, 40), (43, 47), (44, 46)]
_LID_MEET = 0.75  # where the lids meet: this fraction of the way from the upper lid to the lower lid

# Points whose motion says where the head as a whole went (brows, nose, eye corners; not the jaw, lips or
# lids, which an expression moves).
_RIGID = list(range(17, 36)) + [36, 39, 42, 45]
_INNER_LIPS = list(range(60, 68))


@dataclass(frozen=True)
class Motion:
    """A head pose and expression relative to the portrait's own.

    Angles in degrees (yaw > 0 turns the face towards the image's right, pitch > 0 tilts it down, roll > 0
    rotates it clockwise on screen); mouth in [0, 1] (1 = wide open); blink in [0, 1] (1 = eyes shut);
    dx, dy a shift in face half-widths; scale a size factor.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    mouth: float = 0.0
    blink: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0


def _face_frame(lms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Centre, unit right and down vectors along the face (the eye line), and the half width."""
    lms = np.asarray(lms, np.float64)
    right = lms[42:48].mean(0) - lms[36:42].mean(0)
    norm = np.linalg.norm(right)
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("landmarks are degenerate: the two eyes coincide")
    ex = right / norm
    ey = np.array([-ex[1], ex[0]])  # 90 degrees clockwise on screen (image y points down) = down the face
    half_width = max(float(np.linalg.norm(lms[16] - lms[0])) / 2.0, 1.5 * norm / 2.0)
    centre = lms[27:36].mean(0)  # the nose: the middle of the face in both directions
    return centre, ex, ey, half_width


def move(lms: np.ndarray, motion: Motion) -> np.ndarray:
    """The landmarks of the same face after `motion`, (68, 2) float32 in the same pixel coordinates."""
    lms = np.asarray(lms, np.float32)
    if lms.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lms.shape}")
    c, ex, ey, w = _face_frame(lms)
    d = lms.astype(np.float64) - c
    u = d @ ex / w
    v = d @ ey / w
    z = _DEPTH.astype(np.float64) + _PIVOT_DEPTH

    # Expression first, in the face's own frame.
    v = v + motion.mouth * _MOUTH_OPEN * _MOUTH_DROP
    u[[48, 60]] += 0.06 * motion.mouth  # the corners come in a little as the jaw drops
    u[[54, 64]] -= 0.06 * motion.mouth
    for up, lo in _LIDS:
        meet_u = u[up] + _LID_MEET * (u[lo] - u[up])
        meet_v = v[up] + _LID_MEET * (v[lo] - v[up])
        u[up] += motion.blink * (meet_u - u[up])
        v[up] += motion.blink * (meet_v - v[up])
        u[lo] += motion.blink * (meet_u - u[lo])
        v[lo] += motion.blink * (meet_v - v[lo])

    # Yaw about the vertical axis, then pitch about the horizontal one, both through the pivot behind the
    # face.
    # The pivot's own projection doesn't move, so the face slides within the head's outline as it turns.
    a, b = math.radians(motion.yaw), math.radians(motion.pitch)
    u, z = u * math.cos(a) + z * math.sin(a), -u * math.sin(a) + z * math.cos(a)
    v = v * math.cos(b) + z * math.sin(b)

    # Roll, scale and shift on screen.
    r = math.radians(motion.roll)
    u, v = u * math.cos(r) - v * math.sin(r), u * math.sin(r) + v * math.cos(r)
    u = u * motion.scale + motion.dx
    v = v * motion.scale + motion.dy
    out = c + w * (u[:, None] * ex + v[:, None] * ey)
    return out.astype(np.float32)


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


# ---------------------------------------------------------------------------------------------- the warp


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
    `cv2.remap` (bilinear, border reflected). `mouth_fill` darkens a mouth opened wider than in the source.
    """
    if bgr.ndim != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 BGR image (H, W, 3), got {bgr.dtype} {bgr.shape}")
    h, w = bgr.shape[:2]
    src, dst = _control_points((h, w), src_lms, dst_lms)
    tris = _mesh((h, w), src, np.asarray(src_lms, np.float32))
    map_xy = _dense_map((h, w), src, dst, tris)
    out = cv2.remap(bgr, map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    if mouth_fill:
        _fill_mouth(out, np.asarray(src_lms, np.float32), np.asarray(dst_lms, np.float32))
    return out


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


def _dense_map(shape, src: np.ndarray, dst: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 map: for each output pixel, where to sample the source.

    Each pixel gets the label of the destination triangle it lies in (rasterised with fillConvexPoly), and
    its source position is that triangle's inverse affine map applied to the pixel (one gather + 4 mults).
    """
    h, w = shape
    label = np.full((h, w), len(tris), np.int32)  # uncovered pixels: the identity row at the end
    coef = np.zeros((len(tris) + 1, 6), np.float64)
    coef[-1] = [1, 0, 0, 0, 1, 0]
    d_tri = dst[tris]  # (T, 3, 2)
    m = np.concatenate([d_tri, np.ones((len(tris), 3, 1))], axis=2)  # rows [x y 1]
    # Inverse maps dst -> src, all at once; a collapsed destination triangle (e.g. a shut eyelid) covers no
    # pixels and is left out.
    ok = np.abs(np.linalg.det(m)) > 1e-6
    coef[:-1][ok] = np.linalg.solve(m[ok], src[tris][ok]).transpose(0, 2, 1).reshape(-1, 6)
    fixed = np.round(d_tri * 16).astype(np.int32)
    for k in np.flatnonzero(ok):
        cv2.fillConvexPoly(label, fixed[k], int(k), lineType=cv2.LINE_8, shift=4)
    c = coef.astype(np.float32)[label]  # (H, W, 6)
    ys, xs = _grid(h, w)
    out = np.empty((h, w, 2), np.float32)
    out[..., 0] = c[..., 0] * xs + c[..., 1] * ys + c[..., 2]
    out[..., 1] = c[..., 3] * xs + c[..., 4] * ys + c[..., 5]
    return out


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinate grids (float32), cached per size: a clip warps many frames of one size."""
    if (h, w) not in _GRIDS:
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        ys, xs = np.indices((h, w), dtype=np.float32)
        _GRIDS[(h, w)] = (ys, xs)
    return _GRIDS[(h, w)]


def _polygon_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _fill_mouth(img: np.ndarray, src_lms: np.ndarray, dst_lms: np.ndarray) -> None:
    """Paint the inside of a mouth that opened: the warp can only stretch lip pixels across the gap.

    A dark mouth cavity with a soft edge, and a band of upper teeth under the upper lip, faded in with how
    much wider the mouth is than in the source (a mouth open in the portrait already keeps its own inside).
    """
    inner = dst_lms[_INNER_LIPS].astype(np.float64)
    a_src, a_dst = _polygon_area(src_lms[_INNER_LIPS]), _polygon_area(inner)
    if a_dst < 4.0 or a_dst <= a_src * 1.05:
        return
    alpha = min(1.0, 1.0 - a_src / a_dst)
    gap = float(np.mean(np.linalg.norm(inner[[7, 6, 5]] - inner[[1, 2, 3]], axis=1)))  # lower minus upper lip
    x0, y0 = np.floor(inner.min(0)).astype(int) - 4
    x1, y1 = np.ceil(inner.max(0)).astype(int) + 5
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, img.shape[1]), min(y1, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    off = np.array([x0, y0], np.float64)

    def poly_mask(pts: np.ndarray) -> np.ndarray:
        m = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillPoly(m, [np.round((pts - off) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
        return m

    sigma = max(0.6, 0.08 * gap)
    cavity = cv2.GaussianBlur(poly_mask(inner), (0, 0), sigma)
    # Upper teeth: the band between the upper inner lip and the same line a quarter of the gap lower.
    down = _face_frame(dst_lms)[2]
    upper = inner[[0, 1, 2, 3, 4]]
    teeth = cv2.GaussianBlur(
        poly_mask(np.concatenate([upper, upper[::-1] + 0.28 * gap * down])), (0, 0), sigma
    )
    teeth = np.minimum(teeth, cavity)
    roi = img[y0:y1, x0:x1].astype(np.float32)
    cav_colour = np.array([30, 25, 60], np.float32)  # BGR: the dark red of a mouth's inside
    teeth_colour = np.array([190, 205, 215], np.float32)
    out = roi * (1 - alpha * cavity[..., None]) + cav_colour * (alpha * cavity[..., None])
    t = alpha * 0.8 * teeth[..., None]
    out = out * (1 - t) + teeth_colour * t
    img[y0:y1, x0:x1] = np.clip(out, 0, 255).astype(np.uint8)


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

    `lms` are the portrait's landmarks (e.g. `puppet.track.detect(bgr)`); the returned landmarks are exact
    (they drove the warp). `ranges` go to `trajectory` (max_yaw, max_pitch, max_roll, max_mouth, max_shift).
    """
    lms = np.asarray(lms, np.float32)
    frames, out_lms = [], []
    for m in trajectory(n_frames, rng, fps=fps, **ranges):
        dst = move(lms, m)
        frames.append(warp(bgr, lms, dst))
        out_lms.append(dst)
    return frames, out_lms


# ------------------------------------------------------------------------------------------ clips on disk


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 25.0) -> Path:
    """Write uint8 BGR frames to an mp4 (MPEG-4 Part 2 through OpenCV's FFmpeg), atomically.

    The frames must all have the same size. The codec needs even sides: an odd width or height is padded by
    one pixel on the right or bottom (a copy of the edge), so pixel coordinates don't change. Returns the
    path.
    """
    path = Path(path)
    if not frames:
        raise PuppetError(f"{path}: no frames to write; pass at least one frame")
    h, w = frames[0].shape[:2]
    pad_h, pad_w = h % 2, w % 2
    path.parent.mkdir(parents=True, exist_ok=True)
    # VideoWriter picks the container from the extension, so the temporary file keeps it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix or '.mp4'}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w + pad_w, h + pad_h))
    try:
        if not writer.isOpened():
            raise PuppetError(f"{path}: OpenCV can't write this video; use an .mp4 or .avi path")
        for f in frames:
            if f.shape[:2] != (h, w) or f.dtype != np.uint8:
                raise PuppetError(f"{path}: frames differ in size or type; pass uint8 frames of one size")
            if pad_h or pad_w:
                f = cv2.copyMakeBorder(f, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
            writer.write(np.ascontiguousarray(f))
    finally:
        writer.release()
    try:
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def default_portraits() -> list[Path]:
    """Real portraits that ship inside installed packages (matplotlib's, and scikit-image's if present)."""
    from puppet.assets import astronaut, grace_hopper

    out = [grace_hopper()]
    a = astronaut()
    if a is not None:
        out.append(a)
    return out


def load_portraits(
    paths: Sequence[str | os.PathLike] | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, bgr, landmarks) for each portrait (default: `default_portraits()`); detects each face once.

    A file that isn't an image, or has no face, is a one-line PuppetError.
    """
    from puppet.images import read_image
    from puppet.track import detect

    out = []
    for p in paths or default_portraits():
        img = read_image(p)
        lms = detect(img)
        if lms is None:
            raise PuppetError(
                f"{p}: no face found in this portrait; pass a photo with one clear, frontal face"
            )
        out.append((Path(p).stem, img, np.asarray(lms, np.float32)))
    return out


def synthetic_clips(
    n: int,
    portraits: Sequence[tuple[str, np.ndarray, np.ndarray]],
    n_frames: int = 32,
    seed: int = 0,
    fps: float = 25.0,
) -> Iterator[tuple[str, list[np.ndarray], list[np.ndarray]]]:
    """N synthetic clips (name, frames, exact landmarks), cycling through the portraits.

    Clip i depends only on (seed, i), so a resumed run makes the same clips.
    """
    if not portraits:
        raise PuppetError("synthetic clips: no portraits; pass at least one portrait image")
    for i in range(int(n)):
        name, img, lms = portraits[i % len(portraits)]
        rng = np.random.default_rng([int(seed), i])
        frames, out_lms = animate(img, lms, n_frames, rng, fps=fps)
        yield f"{name}_{i:05d}", frames, out_lms


def write_synthetic_videos(
    out_dir: str | os.PathLike,
    n: int,
    portraits: Sequence[str | os.PathLike] | None = None,
    n_frames: int = 32,
    seed: int = 0,
    fps: float = 25.0,
    size: int | None = None,
) -> list[Path]:
    """Write N synthetic talking-head mp4s into `out_dir` (speaker/clip layout: one folder per portrait).

    `size` optionally scales each portrait first so that its longer side is `size` pixels (smaller files).
    """
    loaded = load_portraits(portraits)
    if size:
        scaled = []
        for name, img, lms in loaded:
            k = size / max(img.shape[:2])
            img2 = cv2.resize(
                img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_AREA
            )
            scaled.append((name, img2, lms * np.float32(k)))
        loaded = scaled
    paths = []
    for name, frames, _ in synthetic_clips(n, loaded, n_frames=n_frames, seed=seed, fps=fps):
        speaker = name.rsplit("_", 1)[0]
        paths.append(write_video(Path(out_dir) / speaker / f"{name}.mp4", frames, fps))
    return paths


__all__ = [
    "Motion",
    "animate",
    "default_portraits",
    "load_portraits",
    "move",
    "perturb",
    "random_motion",
    "synthetic_clips",
    "trajectory",
    "triangulate",
    "warp",
    "write_synthetic_videos",
    "write_video",
]

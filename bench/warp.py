"""The piecewise-affine warp's cost by crop size, against a reference implementation, in one run:

    python -m bench.warp [--sizes 256,512] [--runs 30] [--json out.json]

The reference builds the same map the direct way: the per-pixel coefficients gathered with numpy fancy
indexing into a fresh (H, W, 6) array, where puppet.faces.warp looks them up with cv2.LUT into reused
buffers. Both run on a real face (matplotlib's grace_hopper.jpg, the shared crop at each size) over the same
driving poses, taking turns (one round of the poses each) so that load from other processes falls on all
alike. Prints median / p95 ms per size and the ratios to the reference at the smallest size, and how far
the warp's map is from the reference's at each size (above puppet.faces.warp.FULL_MAP_MAX the map is built at
every second pixel and upsampled); tests/test_warp.py checks the two agree pixel for pixel up to
FULL_MAP_MAX and bounds the difference above it.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from bench.timing import summary
from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.files import write_json


def reference_map(shape, src: np.ndarray, dst: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32: each pixel's source position through its destination triangle's inverse affine
    (labels rasterised in triangle order like puppet.faces.warp; uncovered pixels map to themselves). The
    inverses are vectorised as in puppet.faces.warp; the per-pixel coefficients are gathered with numpy
    fancy indexing into an (H, W, 6) array (puppet.faces.warp uses cv2.LUT instead)."""
    h, w = shape
    label = np.full((h, w), len(tris), np.int32)
    coef = np.zeros((len(tris) + 1, 6), np.float64)
    coef[-1] = [1, 0, 0, 0, 1, 0]
    d_tri = dst[tris]
    m = np.concatenate([d_tri, np.ones((len(tris), 3, 1))], axis=2)
    r0, r1, r2 = m[:, 0], m[:, 1], m[:, 2]
    adj = np.stack([np.cross(r1, r2), np.cross(r2, r0), np.cross(r0, r1)], axis=2)
    det = np.einsum("ti,ti->t", r0, adj[:, :, 0])
    ok = np.abs(det) > 1e-6
    inv = adj[ok] / det[ok, None, None]
    coef[:-1][ok] = (inv @ src[tris][ok]).transpose(0, 2, 1).reshape(-1, 6)
    fixed = np.round(d_tri * 16).astype(np.int32)
    for k in np.flatnonzero(ok):
        cv2.fillConvexPoly(label, fixed[k], int(k), lineType=cv2.LINE_8, shift=4)
    c = coef.astype(np.float32)[label]
    ys, xs = np.indices((h, w), dtype=np.float32)
    out = np.empty((h, w, 2), np.float32)
    out[..., 0] = c[..., 0] * xs + c[..., 1] * ys + c[..., 2]
    out[..., 1] = c[..., 3] * xs + c[..., 4] * ys + c[..., 5]
    return out


def reference_warp(img: np.ndarray, src_lms: np.ndarray, dst_lms: np.ndarray) -> np.ndarray:
    """puppet.faces.warp.warp with reference_map in place of its map (same control points, mesh, paint)."""
    from puppet.faces import warp as W

    h, w = img.shape[:2]
    src_lms = np.asarray(src_lms, np.float32)
    dst_lms = np.asarray(dst_lms, np.float32)
    src, dst = W._control_points((h, w), src_lms, dst_lms)
    tris = W._mesh((h, w), src, src_lms)
    out = cv2.remap(img, reference_map((h, w), src, dst, tris), None, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REFLECT101)
    W.paint(out, src_lms, dst_lms)
    return out


def poses(lms: np.ndarray, n: int = 10) -> list[np.ndarray]:
    """n driving poses of a face: turns, nods, an opening mouth, blinks."""
    from puppet.faces.pose import Motion, move

    return [move(lms, Motion(yaw=8.0 * (k % 3 - 1), pitch=5.0 * (k % 2), mouth=0.15 * (k % 5),
                             blink=0.5 * (k % 4 == 3))) for k in range(n)]


def map_error(img: np.ndarray, src_lms: np.ndarray, dsts: list[np.ndarray]) -> dict:
    """The warp's map against reference_map over the poses: the fraction of pixels within 1e-3 px, the
    99th percentile and the largest distance (px, the worst pose), and the warped images' mean and largest
    difference (grey levels)."""
    from puppet.faces import warp as W

    h, w = img.shape[:2]
    exact, p99, worst, mean_diff, max_diff = [], [], [], [], []
    for d in dsts:
        src, dst = W._control_points((h, w), src_lms, d)
        tris = W._mesh((h, w), src, src_lms)
        got = np.stack(W._dense_map((h, w), src, dst, tris), 2)
        err = np.linalg.norm(got - reference_map((h, w), src, dst, tris), axis=2)
        exact.append(float((err < 1e-3).mean()))
        p99.append(float(np.percentile(err, 99)))
        worst.append(float(err.max()))
        diff = np.abs(W.warp(img, src_lms, d).astype(int) - reference_warp(img, src_lms, d).astype(int))
        mean_diff.append(float(diff.mean()))
        max_diff.append(int(diff.max()))
    return {"exact_fraction": round(min(exact), 4), "p99_px": round(max(p99), 3),
            "max_px": round(max(worst), 3),
            "image_mean_diff": round(float(np.mean(mean_diff)), 4), "image_max_diff": max(max_diff)}


def run(sizes: list[int], runs: int) -> dict:
    import matplotlib.cbook

    from puppet.faces.crop import Crop
    from puppet.faces.track import detect
    from puppet.faces.warp import warp

    img = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    lms = detect(img)
    if lms is None:
        raise RuntimeError("the tracker found no face in grace_hopper.jpg")
    box = Crop.from_landmarks(lms)
    cases = []
    for s in sizes:
        ref_lms = box.to_crop(lms, s)
        cases.append((s, box.apply(img, s), ref_lms, poses(ref_lms)))
    calls = [(f"{impl}_{s}", fn, ref, ref_lms, dsts) for s, ref, ref_lms, dsts in cases
             for impl, fn in (("warp", warp), ("reference", reference_warp))]
    ms = {name: [] for name, *_ in calls}
    for r in range(runs + 1):  # the first round warms up (meshes, buffers)
        for name, fn, ref, ref_lms, dsts in calls:
            for d in dsts:
                t0 = time.perf_counter()
                fn(ref, ref_lms, d)
                if r:
                    ms[name].append((time.perf_counter() - t0) * 1000.0)
    out = {name: summary(v) for name, v in ms.items()}
    base = out[f"reference_{sizes[0]}"]["median_ms"]
    out["ratio_to_reference_" + str(sizes[0])] = {
        name: round(out[name]["median_ms"] / base, 3) for name in ms}
    out["map_error"] = {str(s): map_error(ref, ref_lms, dsts) for s, ref, ref_lms, dsts in cases}
    out["threads"] = {"opencv": cv2.getNumThreads()}
    return out


def main(argv: list[str]) -> int:
    p = Parser(prog="python -m bench.warp", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="256,512", help="crop sizes, comma-separated (default 256,512)")
    p.add_argument("--runs", type=int, default=30, help="rounds over the 10 poses (default 30)")
    p.add_argument("--json", metavar="OUT.json", help="write the numbers here")
    a = p.parse_args(argv)
    try:
        sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    except ValueError:
        raise PuppetError(f"--sizes {a.sizes}: give sizes in pixels, e.g. 256,512") from None
    if not sizes or min(sizes) < 16 or a.runs < 1:
        raise PuppetError(f"--sizes {a.sizes} --runs {a.runs}: sizes of at least 16 px and at least 1 run")
    r = run(sizes, a.runs)
    ratio = r[f"ratio_to_reference_{sizes[0]}"]
    print(f"| warp | size | median ms | p95 ms | / reference at {sizes[0]}² |")
    print("|---|---|---|---|---|")
    for s in sizes:
        for impl in ("reference", "warp"):
            k = f"{impl}_{s}"
            print(f"| {impl} | {s}² | {r[k]['median_ms']:.2f} | {r[k]['p95_ms']:.2f} | {ratio[k]:.2f} |")
    print("\n| size | map pixels within 1e-3 px (worst pose) | map p99 / max px | image mean / max diff |")
    print("|---|---|---|---|")
    for s in sizes:
        e = r["map_error"][str(s)]
        print(f"| {s}² | {100 * e['exact_fraction']:.1f} % | {e['p99_px']:.3f} / {e['max_px']:.2f} | "
              f"{e['image_mean_diff']:.3f} / {e['image_max_diff']} |")
    if a.json:
        write_json(a.json, r)
    return 0


if __name__ == "__main__":
    run_cli(main)

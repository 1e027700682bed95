"""Crop geometry: exact inverse, the warp agrees with the point mapping, VoxCeleb-like framing, smoothing."""

import cv2
import numpy as np
import pytest

from puppet.faces.crop import Crop, CropSmoother
from puppet.faces.track import detect


@pytest.fixture(scope="module")
def hopper(grace_hopper_path):
    img = cv2.imread(str(grace_hopper_path))
    return img, detect(img)


@pytest.mark.parametrize("crop,out", [(Crop(100.3, 80.7, 150.9), 256), (Crop(640.0, 360.0, 700.0), 64),
                                      (Crop(-20.5, 10.0, 33.3), 512)])
def test_round_trip_subpixel(crop, out):
    pts = np.random.default_rng(0).uniform(-200, 900, (500, 2)).astype(np.float32)
    back = crop.from_crop(crop.to_crop(pts, out), out)
    assert np.abs(back - pts).max() < 1e-3  # float32 at coordinates up to ~1000 px
    m, inv = crop.matrix(out), crop.inverse_matrix(out)
    np.testing.assert_allclose(pts @ m[:, :2].T + m[:, 2], crop.to_crop(pts, out), atol=1e-3)
    np.testing.assert_allclose(pts @ inv[:, :2].T + inv[:, 2], crop.from_crop(pts, out), atol=1e-3)


def test_box_edges_map_to_output_edges():
    c = Crop(50.0, 60.0, 40.0)
    edges = c.to_crop(np.array([[30.0, 40.0], [70.0, 80.0]]), 128)
    np.testing.assert_allclose(edges, [[-0.5, -0.5], [127.5, 127.5]], atol=1e-5)
    # a box that is exactly the frame is the identity
    img_box = Crop(99.5, 99.5, 200.0)
    np.testing.assert_allclose(img_box.matrix(200), [[1, 0, 0], [0, 1, 0]], atol=1e-12)


@pytest.mark.parametrize("size", [120.0, 700.0])  # upscaling, and the area-averaged > 2x shrink
def test_warp_agrees_with_point_mapping(size):
    """A bright dot drawn in the frame lands where to_crop says (intensity centroid, sub-pixel)."""
    frame = np.zeros((900, 1200, 3), np.uint8)
    dot = np.array([[611.3, 402.7]], np.float32)
    cv2.circle(frame, (int(dot[0, 0] * 16), int(dot[0, 1] * 16)), 9, (255, 255, 255), -1, cv2.LINE_AA, 4)
    crop = Crop(600.0, 420.0, size)
    out = crop.apply(frame, 256)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    w = out[..., 1].astype(np.float64)
    ys, xs = np.mgrid[:256, :256]
    centroid = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
    assert np.abs(centroid - crop.to_crop(dot, 256)[0]).max() < 0.25, (centroid, crop.to_crop(dot, 256))


def test_area_path_does_not_alias():
    """Shrinking a fine stripe pattern 8x gives its mean grey, not moire."""
    frame = np.zeros((1600, 1600, 3), np.uint8)
    frame[:, ::2] = 255
    out = Crop(800.0, 800.0, 1024.0).apply(frame, 128)
    assert abs(out.mean() - 127.5) < 3 and out.std() < 4


def test_paste_back_with_the_inverse(hopper):
    img, lms = hopper
    crop = Crop.from_landmarks(lms)
    face = crop.apply(img, 256)
    back = cv2.warpAffine(face, crop.inverse_matrix(256), (img.shape[1], img.shape[0]))
    x0, y0 = int(crop.cx - crop.size / 4), int(crop.cy - crop.size / 4)
    x1, y1 = int(crop.cx + crop.size / 4), int(crop.cy + crop.size / 4)
    diff = np.abs(back[y0:y1, x0:x1].astype(int) - img[y0:y1, x0:x1].astype(int))
    assert diff.mean() < 6  # the resampled face is back where it came from (blur only)


def test_voxceleb_like_framing(hopper):
    img, lms = hopper
    crop = Crop.from_landmarks(lms)
    p = crop.to_crop(lms, 256) / 256
    # every landmark inside, with margin: head and background around the face
    assert p.min() > 0.15 and p.max() < 0.85, (p.min(0), p.max(0))
    extent = (lms.max(0) - lms.min(0)).max()
    assert 1.8 < crop.size / extent < 2.6, crop.size / extent
    assert 0.35 < p[36:48, 1].mean() < 0.45  # eyes a little above the middle
    assert 0.4 < p[:, 0].mean() < 0.6  # centred left-right
    assert p[8, 1] < 0.85  # the chin well inside: some neck shows


def test_crop_ignores_expression(hopper):
    """Opening the mouth (chin and lower lip down) or closing the eyes does not move or zoom the box."""
    _, lms = hopper
    moved = lms.copy()
    moved[list(range(5, 12)) + list(range(55, 60)) + [65, 66, 67], 1] += 25  # jaw drop
    moved[[37, 38, 43, 44], 1] += 6  # blink
    a, b = Crop.from_landmarks(lms), Crop.from_landmarks(moved)
    assert (a.cx, a.cy, a.size) == pytest.approx((b.cx, b.cy, b.size), abs=1e-3)


def test_crop_follows_translation_and_scale(hopper):
    _, lms = hopper
    a = Crop.from_landmarks(lms)
    b = Crop.from_landmarks(lms * 2 + np.float32([10, -5]))
    assert (b.cx, b.cy, b.size) == pytest.approx((2 * a.cx + 10, 2 * a.cy - 5, 2 * a.size), rel=1e-5)


def test_smoother_reduces_jitter_and_follows_motion(hopper):
    _, lms = hopper
    rng = np.random.default_rng(0)
    raw, smooth = [], []
    sm = CropSmoother(fps=30)
    for k in range(90):
        drift = np.float32([2.0 * k, 0.0])  # 60 px/s pan
        noisy = lms + drift + rng.normal(0, 1.5, lms.shape).astype(np.float32)
        raw.append(Crop.from_landmarks(noisy))
        smooth.append(sm(noisy))
    r = np.array([[c.cx, c.cy, c.size] for c in raw])
    s = np.array([[c.cx, c.cy, c.size] for c in smooth])
    jitter = lambda a: np.abs(np.diff(a[30:, 1:], axis=0)).mean()  # cy and size should stay still
    assert jitter(s) < 0.3 * jitter(r), (jitter(s), jitter(r))
    true_cx = Crop.from_landmarks(lms + np.float32([2.0 * 89, 0.0])).cx
    assert abs(s[-1, 0] - true_cx) < 0.03 * s[-1, 2], (s[-1, 0], true_cx)  # keeps up with the pan


def test_smoother_holds_without_a_face_and_resets(hopper):
    _, lms = hopper
    sm = CropSmoother()
    assert sm(None) is None
    first = sm(lms)
    assert first == Crop.from_landmarks(lms)  # the first box passes through
    assert sm(None) == first
    sm.reset()
    assert sm(lms + 100) == Crop.from_landmarks(lms + 100)

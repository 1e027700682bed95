"""puppet.faces.warp's dense map against a plain reference implementation of the same piecewise-affine
map (bench.warp: the six coefficients gathered per pixel with numpy fancy indexing, as the warp computed
them before its maps were built with cv2.LUT), on real faces at 256² and 512²."""

from __future__ import annotations

import numpy as np
import pytest

from bench.warp import reference_map, reference_warp
from puppet.faces import warp as W
from puppet.faces.crop import Crop
from puppet.faces.pose import Motion, move


@pytest.fixture(scope="module")
def faces(grace_hopper_path, astronaut_path):
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    out = []
    for p in (grace_hopper_path, astronaut_path):
        img = read_image(p)
        lms = detect(img)
        assert lms is not None
        out.append((img, lms))
    return out


MOTIONS = [Motion(yaw=15, pitch=-6, roll=8), Motion(mouth=0.8, dx=0.05), Motion(blink=1.0, mouth=0.3),
           Motion(yaw=-12, pitch=8, mouth=0.5, scale=1.1)]


@pytest.mark.parametrize("size", [256, 512])
def test_warp_equals_thereference_map(faces, size):
    """Same pixels as the reference piecewise-affine warp, within a grey level."""
    diffs = []
    for img, lms in faces:
        crop = Crop.from_landmarks(lms)
        ref, ref_lms = crop.apply(img, size), crop.to_crop(lms, size)
        for m in MOTIONS:
            dst = move(ref_lms, m)
            out = W.warp(ref, ref_lms, dst)
            expected = reference_warp(ref, ref_lms, dst)
            assert np.abs(out.astype(int) - ref.astype(int)).mean() > 1.0  # the motion is visible
            diffs.append(np.abs(out.astype(int) - expected.astype(int)))
    assert max(d.max() for d in diffs) <= 1
    assert np.mean([d.mean() for d in diffs]) < 0.01


def test_maps_equal_thereference_map(faces):
    """The x and y maps themselves, pixel by pixel, at 512²: the same source positions within 1e-3 px."""
    img, lms = faces[0]
    crop = Crop.from_landmarks(lms)
    ref_lms = crop.to_crop(lms, 512)
    dst_lms = move(ref_lms, Motion(mouth=0.6, yaw=10))
    src, dst = W._control_points((512, 512), ref_lms, dst_lms)
    tris = W._mesh((512, 512), src, ref_lms)
    mx, my = (m.copy() for m in W._dense_map((512, 512), src, dst, tris))
    np.testing.assert_allclose(np.stack([mx, my], 2), reference_map((512, 512), src, dst, tris), atol=1e-3)


def test_a_closing_eye_gets_a_lid_that_the_tracker_reads_as_shut(astronaut_path):
    """The warp squeezes a closing eye into a dark slit that mediapipe still reads as partly open; painting
    the lid (skin from above the eye over the slit, a thin dark lash line) makes both eyes read as shut. An
    open eye is left alone."""
    from puppet.faces.images import read_image
    from puppet.faces.regions import eye_openness
    from puppet.faces.track import detect

    img = read_image(astronaut_path)
    lms = detect(img)
    crop = Crop.from_landmarks(lms)
    face, pts = crop.apply(img, 256), crop.to_crop(lms, 256)

    def unpainted(d):
        out = W.warp(face, pts, d, mouth_fill=False)
        W._fill_mouth(out, pts, d)  # the mouth as warp paints it, the eyes not
        return out

    still = move(pts, Motion(yaw=5.0))
    np.testing.assert_array_equal(W.warp(face, pts, still), unpainted(still))
    painted, plain = [], []
    for blink in (0.8, 1.0):
        d = move(pts, Motion(blink=blink))
        painted.append(eye_openness(detect(W.warp(face, pts, d))))
        plain.append(eye_openness(detect(unpainted(d))))
    painted, plain = np.array(painted), np.array(plain)
    assert painted.sum() < 0.75 * plain.sum(), (painted, plain)
    # Each eye on its own, against the same eye open: both shut, not one shut and one read half open (a lid
    # of faint skin over a thick grey lash line left one of this photo's eyes reading a third open).
    assert (painted < 0.25 * eye_openness(detect(face))).all(), (painted, eye_openness(detect(face)))

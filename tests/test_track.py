"""Tracker on real faces (mediapipe FaceMesh from its wheel; nothing downloaded) and the 478 -> 68 table."""

import importlib.util

import cv2
import numpy as np
import pytest

from puppet.errors import PuppetError
from puppet.faces.crop import Crop
from puppet.faces.landmarks import FLIP, MP_TO_IBUG, PARTS, mediapipe_to_ibug
from puppet.faces.track import Tracker, detect, largest

# Hand-checked on the photos (zoomed, with a pixel grid): the face from ear to ear and brow to chin, the
# eye centres (pupils), the middle of the mouth and the chin, in (x, y) pixels, with a tolerance.
HAND = {
    "grace_hopper": dict(box=(155, 140, 375, 350), eye_l=(220, 190), eye_r=(305, 190), mouth=(265, 285),
                         chin=(270, 338), tol=12),
    "astronaut": dict(box=(165, 75, 285, 190), eye_l=(203, 100), eye_r=(247, 102), mouth=(222, 143),
                      chin=(222, 178), tol=6),
}


@pytest.fixture(scope="module")
def tracker():
    with Tracker("image") as t:
        yield t


@pytest.fixture(scope="module")
def photos(grace_hopper_path, astronaut_path):
    return {"grace_hopper": cv2.imread(str(grace_hopper_path)), "astronaut": cv2.imread(str(astronaut_path))}


@pytest.fixture(scope="module")
def found(tracker, photos):
    return {name: tracker(img) for name, img in photos.items()}


def test_table_is_well_formed():
    assert len(MP_TO_IBUG) == 68
    assert all(0 <= i < 478 for src in MP_TO_IBUG for i in src)
    covered = sorted(i for idx, _ in PARTS.values() for i in idx)
    assert covered == list(range(68))  # every point drawn, once
    assert sorted(FLIP.tolist()) == list(range(68)) and (FLIP[FLIP] == np.arange(68)).all()
    pts = np.random.default_rng(0).uniform(0, 100, (478, 2)).astype(np.float32)
    out = mediapipe_to_ibug(pts)
    assert out.shape == (68, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[3], pts[list(MP_TO_IBUG[3])].mean(0), rtol=1e-6)


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_real_face_found_inside_the_face(found, name):
    lms = found[name]
    assert lms is not None and lms.shape == (68, 2) and lms.dtype == np.float32
    x0, y0, x1, y1 = HAND[name]["box"]
    assert (lms[:, 0] > x0).all() and (lms[:, 0] < x1).all(), lms[:, 0]
    assert (lms[:, 1] > y0).all() and (lms[:, 1] < y1).all(), lms[:, 1]
    tol = HAND[name]["tol"]
    for part, idx in [("eye_l", slice(36, 42)), ("eye_r", slice(42, 48)), ("mouth", slice(48, 68)),
                      ("chin", 8)]:
        got = lms[idx].reshape(-1, 2).mean(0)
        assert np.linalg.norm(got - HAND[name][part]) < tol, (part, got, HAND[name][part])


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_left_right_order_and_layout(found, name):
    lms = found[name]
    # iBUG 36-41 (subject's right eye) on the image left; 48 the image-left mouth corner; 0 the left jaw end
    assert lms[36:42, 0].mean() < lms[42:48, 0].mean()
    assert lms[48, 0] < lms[54, 0] and lms[60, 0] < lms[64, 0]
    assert lms[0, 0] < lms[8, 0] < lms[16, 0]
    assert lms[36, 0] < lms[39, 0] < lms[42, 0] < lms[45, 0]  # outer, inner | inner, outer
    assert lms[17, 0] < lms[21, 0] < lms[22, 0] < lms[26, 0]
    # top to bottom: brows, eyes, nose tip, mouth, chin
    ys = [lms[17:27, 1].mean(), lms[36:48, 1].mean(), lms[30, 1], lms[48:60, 1].mean(), lms[8, 1]]
    assert ys == sorted(ys), ys
    assert lms[27, 1] < lms[30, 1] < lms[33, 1]  # bridge runs down to the tip, then the subnasale


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_jaw_symmetric_about_nose_line(found, name):
    lms = found[name]
    a, d = lms[27], lms[33] - lms[27]
    normal = np.array([-d[1], d[0]]) / np.linalg.norm(d)
    side = (lms - a) @ normal  # signed distance from the nose line
    width = np.linalg.norm(lms[16] - lms[0])
    for i in range(8):
        assert np.sign(side[i]) != np.sign(side[16 - i])
        assert abs(side[i] + side[16 - i]) < 0.08 * width, (i, side[i], side[16 - i])


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_mirrored_photo_gives_mirrored_points(tracker, photos, found, name):
    """The table's left/right pairing is consistent: tracking the mirror image and flipping back agrees."""
    img = photos[name]
    w = img.shape[1]
    back = tracker(np.ascontiguousarray(img[:, ::-1]))[FLIP]
    back[:, 0] = w - 1 - back[:, 0]
    err = np.linalg.norm(back - found[name], axis=1)
    width = np.linalg.norm(found[name][16] - found[name][0])
    assert err.mean() < 0.03 * width and err.max() < 0.08 * width, (err.mean(), err.max())


def test_no_face_returns_none(tracker):
    rng = np.random.default_rng(0)
    assert tracker(np.full((240, 320, 3), 128, np.uint8)) is None
    assert tracker(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) is None
    assert tracker.faces(np.zeros((64, 64, 3), np.uint8)) == []


def test_largest_rule_is_deterministic():
    small = np.zeros((68, 2), np.float32) + np.linspace(0, 10, 68, dtype=np.float32)[:, None]
    big = small * 3
    assert largest([small, big]) is big and largest([big, small]) is big
    twin = big.copy()
    assert largest([big, twin]) is big and largest([twin, big]) is twin  # tie: the first listed
    assert largest([]) is None


@pytest.mark.parametrize("big_left", [True, False])
def test_two_faces_pick_the_larger(tracker, photos, found, big_left):
    img = photos["grace_hopper"]
    crop = Crop.from_landmarks(found["grace_hopper"])
    canvas = np.full((400, 720, 3), 127, np.uint8)
    if big_left:
        canvas[:, :400], canvas[:300, 420:] = crop.apply(img, 400), crop.apply(img, 300)
    else:
        canvas[:300, :300], canvas[:, 320:] = crop.apply(img, 300), crop.apply(img, 400)
    assert len(tracker.faces(canvas)) == 2
    lms = tracker(canvas)
    big_x = (0, 400) if big_left else (320, 720)
    assert (lms[:, 0] > big_x[0]).all() and (lms[:, 0] < big_x[1]).all()
    # and it is the same face, mapped into the big copy
    expect = crop.to_crop(found["grace_hopper"], 400) + [big_x[0], 0]
    assert np.linalg.norm(lms - expect, axis=1).mean() < 4.0


def test_video_mode_follows_motion(photos, found):
    img = photos["astronaut"]
    with Tracker("video") as t:
        for k in range(6):
            dx, dy = 4.0 * k, -3.0 * k
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            frame = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REPLICATE)
            lms = t(frame)
            assert lms is not None
            shift = (lms - found["astronaut"]).mean(0)
            assert np.linalg.norm(shift - [dx, dy]) < 1.5, (k, shift)


def test_detect_one_shot(photos, found):
    np.testing.assert_allclose(detect(photos["astronaut"]), found["astronaut"], atol=1e-3)


def test_bad_input_and_options():
    with pytest.raises(PuppetError, match="mode"):
        Tracker("photo")
    with pytest.raises(PuppetError, match="backend"):
        Tracker(backend="dlib")
    with Tracker("image") as t:
        with pytest.raises(ValueError, match="uint8 BGR"):
            t(np.zeros((32, 32, 3), np.float32))
        with pytest.raises(ValueError, match="uint8 BGR"):
            t(np.zeros((32, 32), np.uint8))


@pytest.mark.skipif(importlib.util.find_spec("face_alignment") is not None,
                    reason="face-alignment installed: its weights would download")
def test_fan_not_installed_error():
    with pytest.raises(PuppetError, match=r'face-alignment is not installed; pip install "puppet\[fan\]"'):
        Tracker("image", backend="fan")

"""puppet.data.clips: landmark motion, the piecewise-affine warp (checked by re-detecting the warped face with
the real tracker), animation and real mp4 files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from puppet.data.clips import write_video
from puppet.data.motion import animate, perturb
from puppet.faces.pose import Motion, move
from puppet.faces.warp import triangulate, warp


@pytest.fixture(scope="module")
def portrait(grace_hopper_path):
    """Grace Hopper at 320 px high and her landmarks (the real tracker)."""
    from puppet.faces.track import detect

    img = cv2.imread(str(grace_hopper_path))
    k = 320 / img.shape[0]
    img = cv2.resize(img, (round(img.shape[1] * k), 320), interpolation=cv2.INTER_AREA)
    lms = detect(img)
    assert lms is not None
    return img, lms


def _width(lms):
    return float(np.linalg.norm(lms[16] - lms[0]))


def test_motion_geometry(portrait):
    _, lms = portrait
    np.testing.assert_allclose(move(lms, Motion()), lms, atol=1e-3)
    w = _width(lms)

    # Roll is a rotation on screen: distances stay, the eye line tilts by the angle.
    rolled = move(lms, Motion(roll=10))
    np.testing.assert_allclose(np.linalg.norm(rolled[45] - rolled[36]), np.linalg.norm(lms[45] - lms[36]),
                               rtol=1e-4)
    tilt = lambda p: np.degrees(np.arctan2(*(p[45] - p[36])[::-1]))  # noqa: E731
    assert tilt(rolled) - tilt(lms) == pytest.approx(10, abs=0.2)

    # Yaw: the nose tip (forward) moves further than the jaw's ends (back), towards the turn.
    turned = move(lms, Motion(yaw=20))
    nose_dx = turned[30, 0] - lms[30, 0]
    assert nose_dx > 0.2 * w
    assert nose_dx > abs(turned[0, 0] - lms[0, 0]) and nose_dx > abs(turned[16, 0] - lms[16, 0])
    assert _width(turned) < w  # foreshortened
    # Pitch: tilting down moves the nose tip down more than the brows.
    down = move(lms, Motion(pitch=12))
    assert down[30, 1] - lms[30, 1] > down[19, 1] - lms[19, 1] + 0.02 * w

    # Mouth: the inner lips part, the chin drops, the eyes stay.
    opened = move(lms, Motion(mouth=1.0))
    assert opened[66, 1] - opened[62, 1] > (lms[66, 1] - lms[62, 1]) + 0.12 * w
    assert opened[8, 1] > lms[8, 1] + 0.1 * w
    np.testing.assert_allclose(opened[36:48], lms[36:48], atol=1e-3)
    # Blink: the lids meet.
    shut = move(lms, Motion(blink=1.0))
    for up, lo in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert np.linalg.norm(shut[up] - shut[lo]) < 0.1 * np.linalg.norm(lms[up] - lms[lo]) + 1e-3

    # perturb is a random motion, reproducible from the rng.
    a = perturb(lms, np.random.default_rng(5))
    b = perturb(lms, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - lms).max() > 1.0


def test_identity_warp_keeps_the_image(portrait):
    img, lms = portrait
    out = warp(img, lms, lms)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 0.5


@pytest.mark.parametrize("motion", [
    Motion(yaw=15, pitch=-6, roll=8),
    Motion(mouth=0.7, dx=0.05),
    Motion(yaw=-12, pitch=8, mouth=0.4, scale=1.05),
])
def test_warped_face_is_where_its_landmarks_say(portrait, motion):
    """The real tracker, run on the warped portrait, finds the face at the warped landmarks."""
    from puppet.faces.track import detect

    img, lms = portrait
    dst = move(lms, motion)
    out = warp(img, lms, dst)
    found = detect(out)
    assert found is not None, "the warped portrait doesn't look like a face to the tracker"
    err = np.linalg.norm(found - dst, axis=1).mean() / _width(dst)
    moved = np.linalg.norm(dst - lms, axis=1).mean() / _width(dst)
    # The detector's own error on a real face is a few % of the width; the motion is larger than that.
    assert err < 0.05, (err, moved)
    assert moved > 2 * err, (err, moved)


def test_triangulation_uses_every_point(portrait):
    img, lms = portrait
    pts = np.concatenate([lms, [[0, 0], [img.shape[1] - 1, 0], [0, img.shape[0] - 1],
                                [img.shape[1] - 1, img.shape[0] - 1]]])
    tris = triangulate(pts, img.shape[:2])
    assert tris.shape[1] == 3 and len(tris) > 68
    assert set(np.unique(tris)) == set(range(len(pts)))


def test_animate_is_a_smooth_talking_head(portrait, tmp_path):
    img, lms = portrait
    frames, out_lms = animate(img, lms, 30, np.random.default_rng(0))
    assert len(frames) == len(out_lms) == 30
    assert all(f.shape == img.shape and f.dtype == np.uint8 for f in frames)
    traj = np.stack(out_lms)
    w = _width(lms)
    step = np.linalg.norm(np.diff(traj, axis=0), axis=2).max()
    assert step < 0.12 * w  # smooth: no point jumps far between frames at 25 fps
    assert np.ptp(traj[:, 30, 0]) > 0.05 * w  # the head moves
    assert np.ptp(traj[:, 66, 1] - traj[:, 62, 1]) > 0.05 * w  # the mouth opens and closes
    # Same rng seed, same clip.
    again, again_lms = animate(img, lms, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(again[2], frames[2])
    np.testing.assert_array_equal(again_lms[2], out_lms[2])

    # Real mp4 on disk, read back by OpenCV.
    path = write_video(tmp_path / "clip.mp4", frames, fps=25)
    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        # The codec needs even sides: an odd width comes back padded by one pixel, the rest unchanged.
        assert f.shape == (img.shape[0] + img.shape[0] % 2, img.shape[1] + img.shape[1] % 2, 3)
        h, w = img.shape[:2]
        assert np.abs(f[:h, :w].astype(int) - frames[n].astype(int)).mean() < 8  # lossy, but the same frame
        n += 1
    cap.release()
    assert n == 30
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_write_video_refuses_bad_input(tmp_path):
    from puppet.errors import PuppetError

    with pytest.raises(PuppetError, match="no frames"):
        write_video(tmp_path / "a.mp4", [])
    frames = [np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)]
    with pytest.raises(PuppetError, match="differ in size"):
        write_video(tmp_path / "b.mp4", frames)
    assert not (tmp_path / "b.mp4").exists()

"""Retargeting math (puppet/live/retarget.py): relative motion transfer, calibration, face-lost continuity."""

import numpy as np
import pytest

from puppet.faces.pose import FaceFrame
from puppet.faces.regions import EYE_LIDS, INNER_LIPS, MOUTH_CORNERS, eye_openness, gaps
from puppet.live.retarget import (
    LOWER_LIP,
    UPPER_LIP,
    Continuity,
    NeutralCalibrator,
    RelativeRetargeter,
    motion,
    uncross,
)


def _rot(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def similarity(lms, scale=1.0, deg=0.0, shift=(0.0, 0.0)):
    """Apply a similarity about the origin: what a driver further away / elsewhere / tilted looks like."""
    return (np.asarray(lms, np.float64) @ _rot(deg).T * scale + shift).astype(np.float32)


@pytest.fixture(scope="module")
def faces(grace_hopper_path):
    """Real landmarks: the driver's neutral (Grace Hopper) and a target's reference (the astronaut's)."""
    from puppet.faces.crop import Crop
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    driver = detect(read_image(grace_hopper_path))
    assert driver is not None
    from puppet.assets import astronaut

    target_photo = read_image(astronaut())
    t = detect(target_photo)
    assert t is not None
    ref = Crop.from_landmarks(t).to_crop(t, 64)  # reference landmarks in a 64 px crop, like a tiny target
    return driver.astype(np.float64), ref


def motion_clip(neutral):
    """A short performance: mouth opens, head moves right and tilts, brows go up: (n, 68, 2)."""
    f = FaceFrame.of(neutral)
    frames = []
    for k in range(12):
        lms = neutral.copy()
        a = k / 11
        jaw_and_lower_lip = list(range(5, 12)) + [55, 56, 57, 58, 59, 64, 65, 66, 67]
        lms[jaw_and_lower_lip] += [0, 0.35 * a * f.scale]
        lms[17:27] += [0, -0.15 * a * f.scale]  # brows up
        lms = (lms - f.centre) @ _rot(8 * a).T + f.centre + [0.3 * a * f.scale, 0.05 * a * f.scale]
        frames.append(lms)
    return np.array(frames)


def test_face_frame_round_trip(faces):
    driver, _ = faces
    f = FaceFrame.of(similarity(driver, 1.3, 25, (10, -4)))
    q = f.to_local(driver)
    np.testing.assert_allclose(f.from_local(q), driver, atol=1e-6)
    # normalised: stable points centred, eye centres 1 apart and level
    g = FaceFrame.of(driver)
    local = g.to_local(driver)
    assert np.abs(local[[36, 39, 42, 45, 27, 28, 29, 30, 31, 33, 35]].mean(0)).max() < 1e-9
    eyes = local[42:48].mean(0) - local[36:42].mean(0)
    np.testing.assert_allclose(eyes, [1.0, 0.0], atol=1e-9)


def test_neutral_maps_to_reference(faces):
    """The driver's neutral gives the target's reference; with openness, the eyes too, and the mouth as open
    as the driver's (in each face's mouth widths)."""
    driver, ref = faces
    r = RelativeRetargeter(ref, openness=False)
    r.set_neutral(driver)
    np.testing.assert_allclose(r(driver), ref, atol=1e-4)
    o = RelativeRetargeter(ref)
    o.set_neutral(driver)
    out = o(driver)
    lips = UPPER_LIP + LOWER_LIP
    rest = [i for i in range(68) if i not in lips]
    np.testing.assert_allclose(out[rest], ref[rest], atol=1e-3)
    assert _mouth_in_widths(out) == pytest.approx(max(_mouth_in_widths(driver), 0.0), abs=1e-3)


@pytest.mark.parametrize("scale,shift", [(1.8, (230, 90)), (0.45, (-40, 15)), (1.0, (-300, 0))])
def test_shifted_scaled_driver_drives_like_the_original(faces, scale, shift):
    """A driver whose whole performance (neutral included) is shifted and scaled gives the same output."""
    driver, ref = faces
    clip = motion_clip(driver)
    a, b = RelativeRetargeter(ref), RelativeRetargeter(ref)
    a.set_neutral(driver)
    b.set_neutral(similarity(driver, scale, 0, shift))
    outs_a = np.array([a(f) for f in clip])
    outs_b = np.array([b(similarity(f, scale, 0, shift)) for f in clip])
    np.testing.assert_allclose(outs_b, outs_a, atol=1e-3)
    # and the motion really is transferred (not a constant output)
    assert np.abs(outs_a[-1] - ref).max() > 3.0


def test_expression_transfers_in_target_units(faces):
    driver, ref = faces
    fd, fr = FaceFrame.of(driver), FaceFrame.of(ref)
    r = RelativeRetargeter(ref, openness=False)  # the offsets themselves (openness replaces the lips')
    r.set_neutral(driver)
    open_mouth = driver.copy()
    lower = [56, 57, 58, 65, 66]
    open_mouth[lower] += [0, 0.3 * fd.scale]
    out = r(open_mouth)
    moved = out - ref
    # the lower lip of the target moves down by 0.3 of the *target's* inter-ocular distance
    # (expressions live in the face's own axes: the image-vertical move of the driver's lip is turned by
    # the difference of the two faces' roll)
    expected = _rot(np.rad2deg(fr.angle - fd.angle)) @ [0, 0.3 * fr.scale]
    assert np.allclose(moved[lower], expected, atol=0.15)
    # a change of lip points alone barely moves the eyes (the face frame uses eyes and nose)
    assert np.abs(moved[36:48]).max() < 0.05


def test_head_motion_transfers_and_is_limited(faces):
    driver, ref = faces
    fd, fr = FaceFrame.of(driver), FaceFrame.of(ref)
    r = RelativeRetargeter(ref, max_shift=0.6)
    r.set_neutral(driver)
    out = r(driver + [0.25 * fd.scale, 0])  # head 1/4 eye distance to the right
    np.testing.assert_allclose(FaceFrame.of(out).centre - fr.centre, [0.25 * fr.scale, 0], atol=1e-3)
    far = r(driver + [5 * fd.scale, 0])  # far away: clamped to max_shift
    np.testing.assert_allclose(np.hypot(*(FaceFrame.of(far).centre - fr.centre)), 0.6 * fr.scale, atol=0.05)
    near = r(similarity(driver - fd.centre, 3.0) + fd.centre)  # leaning in 3x: clamped scale
    assert FaceFrame.of(near).scale == pytest.approx(fr.scale * 1.33, rel=1e-3)


def test_roll_transfers_unless_removed(faces):
    driver, ref = faces
    fd, fr = FaceFrame.of(driver), FaceFrame.of(ref)
    tilted = similarity(driver - fd.centre, 1.0, 15) + fd.centre
    on, off = RelativeRetargeter(ref), RelativeRetargeter(ref, roll=False, openness=False)
    on.set_neutral(driver)
    off.set_neutral(driver)
    assert np.rad2deg(FaceFrame.of(on(tilted)).angle - fr.angle) == pytest.approx(15, abs=0.1)
    np.testing.assert_allclose(off(tilted), ref, atol=1e-3)


def test_calibrator_takes_the_first_steady_stretch(faces):
    driver, _ = faces
    rng = np.random.default_rng(0)
    s = FaceFrame.of(driver).scale
    cal = NeutralCalibrator(n_steady=5, threshold=0.02)
    moving = [driver + rng.normal(0, 0.2 * s, driver.shape) for _ in range(4)]
    assert cal.update(moving[0]) is not None  # provisional: the first face, so the output starts at once
    assert not cal.done
    for m in moving[1:]:
        assert cal.update(m) is None
    steady = [driver + rng.normal(0, 0.002 * s, driver.shape) for _ in range(5)]
    results = [cal.update(x) for x in steady]
    assert results[:4] == [None] * 4 and cal.done
    np.testing.assert_allclose(results[4], np.mean(steady, 0))
    assert motion(results[4], driver) < 0.002
    cal.reset()
    assert not cal.done and cal.update(driver) is not None


def test_continuity_holds_eases_and_resumes(faces):
    _, ref = faces
    c = Continuity(ref, ease_s=0.8, resume_s=0.3)
    np.testing.assert_allclose(c(None, 0.0), ref)  # before any face: the target's neutral
    live = ref + 6.0
    out = c(live, 1.0)  # first face: blends in from the neutral (no jump)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_allclose(c(live, 1.15), ref + 3.0, atol=1e-4)  # halfway
    np.testing.assert_allclose(c(live, 1.3), live, atol=1e-5)
    np.testing.assert_allclose(c(live, 1.4), live, atol=1e-5)
    # face lost at t=2: hold, then ease to the neutral over 0.8 s, monotonically
    dist = [np.abs(c(None, 2.0 + dt) - ref).max() for dt in np.linspace(0, 1.0, 11)]
    assert dist[0] == pytest.approx(6.0, abs=1e-4)
    assert dist[1] > 5.5  # smoothstep: starts as a hold
    assert all(x >= y - 1e-6 for x, y in zip(dist, dist[1:]))
    assert dist[-1] < 1e-5
    # face back mid-ease: starts from where the output was, reaches the live pose after resume_s
    c2 = Continuity(ref, ease_s=0.8, resume_s=0.3)
    c2(live, 0.0)
    c2(live, 0.5)
    c2(None, 1.0)
    mid = c2(None, 1.4)
    assert 0.5 < np.abs(mid - ref).max() < 5.5
    back = c2(live + 1.0, 1.5)
    np.testing.assert_allclose(back, mid, atol=1e-5)
    np.testing.assert_allclose(c2(live + 1.0, 1.8), live + 1.0, atol=1e-5)


# ------------------------------------------------------------------------------------------ openness
def _mouth_in_widths(lms):
    lms = np.asarray(lms, np.float64)
    return gaps(lms, INNER_LIPS).mean() / np.linalg.norm(lms[MOUTH_CORNERS[0]] - lms[MOUTH_CORNERS[1]])


def _width(lms):
    return np.linalg.norm(np.asarray(lms, np.float64)[MOUTH_CORNERS[0]] - lms[MOUTH_CORNERS[1]])


def _eyes_scaled(lms, k):
    """The same face with each eye opened k times as wide (lids moved apart about the eye's middle line)."""
    out = np.array(lms, np.float64)
    for pairs in EYE_LIDS:
        for u, lo in pairs:
            mid = (out[u] + out[lo]) / 2
            out[u], out[lo] = mid + k * (out[u] - mid), mid + k * (out[lo] - mid)
    return out


def _lid_gaps(lms):
    return gaps(np.asarray(lms, np.float64), EYE_LIDS[0] + EYE_LIDS[1])


@pytest.mark.parametrize("driver_eyes,target_eyes", [(0.6, 1.0), (1.0, 1.6), (0.5, 1.5), (1.5, 0.6)])
def test_a_shut_driver_shuts_any_target(faces, driver_eyes, target_eyes):
    """A driver that shuts its eyes shuts the target's, whatever the two faces' eye sizes; half shut is
    partly shut. Relative offsets alone leave a wide-eyed target's eyes open under a narrow-eyed driver, or
    push a narrow-eyed target's lids through each other under a wide-eyed one."""
    from puppet.faces.pose import Motion, move

    driver, ref = faces
    driver, ref = _eyes_scaled(driver, driver_eyes), _eyes_scaled(ref, target_eyes)
    shut = move(driver, Motion(blink=1.0))
    half = move(driver, Motion(blink=0.5))
    assert np.abs(_lid_gaps(shut)).max() < 1e-3 * FaceFrame.of(driver).scale
    new, old = RelativeRetargeter(ref), RelativeRetargeter(ref, openness=False)
    new.set_neutral(driver)
    old.set_neutral(driver)
    open_gaps, scale = _lid_gaps(ref), FaceFrame.of(ref).scale
    assert np.abs(_lid_gaps(new(shut))).max() < 0.01 * scale  # shut
    assert (0.1 * open_gaps < _lid_gaps(new(half))).all() and (_lid_gaps(new(half)) < 0.7 * open_gaps).all()
    np.testing.assert_allclose(_lid_gaps(new(driver)), open_gaps, atol=1e-3 * scale)  # open is open
    was = _lid_gaps(old(shut))
    assert was.max() > 0.05 * scale or was.min() < -0.05 * scale  # the offsets: left open, or crossed


def test_the_mouth_opens_in_mouth_widths_and_closes_on_any_face(faces):
    """The target's mouth opens as far as the driver's in each face's mouth widths, and shuts when the
    driver's does, even where the driver's neutral was open (offsets would cross the target's lips)."""
    from puppet.faces.pose import Motion, move

    driver, ref = faces
    talking = move(driver, Motion(mouth=0.5))  # a neutral caught mid-word
    wide, shut = move(driver, Motion(mouth=1.0)), driver
    new, old = RelativeRetargeter(ref), RelativeRetargeter(ref, openness=False)
    new.set_neutral(talking)
    old.set_neutral(talking)
    def opening(lms, neutral):  # in the neutral's mouth widths
        return _mouth_in_widths(lms) * _width(lms) / _width(neutral)

    for f in (wide, talking, shut):
        assert opening(new(f), ref) == pytest.approx(max(opening(f, talking), 0.0), abs=0.005)
    assert gaps(new(shut), INNER_LIPS).min() >= -1e-6  # never crossed
    assert gaps(old(shut), INNER_LIPS).min() < -0.02 * FaceFrame.of(ref).scale  # offsets cross them


def test_no_crossing_under_an_exaggerating_driver(faces):
    """A driver whose lids and lips move far past the neutral (an exaggerated squeeze, lips pressed through
    each other): the target's upper lids stay above the lower ones and its inner lips never cross."""
    from puppet.faces.pose import Motion, move

    driver, ref = faces
    squeeze = _eyes_scaled(driver, -0.8)  # the lids pushed through each other
    lips = driver.copy()
    lips[[61, 62, 63]], lips[[67, 66, 65]] = driver[[67, 66, 65]] + [0, 4], driver[[61, 62, 63]] - [0, 4]
    r = RelativeRetargeter(_eyes_scaled(ref, 0.5))
    r.set_neutral(_eyes_scaled(driver, 1.8))
    for f in (squeeze, lips, _eyes_scaled(driver, 3.0)):
        out = r(f)
        assert _lid_gaps(out).min() >= -1e-6 and gaps(out, INNER_LIPS).min() >= -1e-6
        assert (eye_openness(out) <= 1.52 * eye_openness(r.ref)).all()  # at most EYE_MAX as open
    crossed = driver.copy()
    crossed[[37, 38, 61]], crossed[[41, 40, 67]] = driver[[41, 40, 67]], driver[[37, 38, 61]]
    fixed = uncross(crossed)
    assert _lid_gaps(fixed).min() >= -1e-3 and gaps(fixed, INNER_LIPS).min() >= -1e-3  # pixels
    talking = move(driver, Motion(mouth=0.5))
    assert _lid_gaps(talking).min() > 0 and gaps(talking, INNER_LIPS).min() > 0
    np.testing.assert_allclose(uncross(talking), talking)  # nothing crossed: unchanged


def test_a_neutral_caught_mid_blink_is_outgrown(faces):
    """A neutral recorded with the eyes half shut: after a second of open eyes the open eye is the neutral
    again (not an EYE_MAX stare), and a blink still shuts the target's."""
    from puppet.faces.pose import Motion, move

    driver, ref = faces
    r = RelativeRetargeter(ref)
    r.set_neutral(move(driver, Motion(blink=0.5)))
    first = r(driver)
    assert (eye_openness(first) > 1.3 * eye_openness(ref)).all()  # at first: wider than the target's own
    for _ in range(30):
        out = r(driver)
    np.testing.assert_allclose(eye_openness(out), eye_openness(ref), rtol=0.02)
    assert np.abs(_lid_gaps(r(move(driver, Motion(blink=1.0))))).max() < 0.01 * FaceFrame.of(ref).scale


def test_the_live_driving_lets_a_blink_through(faces):
    """Through the live loop's Driver (calibration, One Euro filter, continuity) at 25 fps: a blink of three
    frames shuts the target's eyes to under a fifth of their opening; the landmarks' filter alone (the
    offsets, no openness) leaves them more than half open."""
    from puppet.faces.pose import Motion, move
    from puppet.live.driver import Driver

    driver, ref = faces

    class Face:
        size = 64

    Face.ref = ref.astype(np.float32)
    blink = [0.0] * 12 + [0.6, 1.0, 0.6] + [0.0] * 5
    least = {}
    for openness in (True, False):
        d = Driver(Face, absolute=False, fps=25.0, openness=openness)
        out = [d(move(driver, Motion(blink=b)).astype(np.float32), k / 25) for k, b in enumerate(blink)]
        least[openness] = min(eye_openness(o).mean() for o in out[12:17]) / eye_openness(ref).mean()
        np.testing.assert_allclose(eye_openness(out[-1]), eye_openness(ref), rtol=0.15)  # open again
    assert least[True] < 0.2 and least[False] > 0.5, least

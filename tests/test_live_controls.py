"""The live avatar's controls on their own: per-part gains and their limits, the settings file that remembers
them, the idle motion and its hand-back, and the audio-delay figure of the statistics. Real landmarks
(mediapipe on the packaged astronaut photo, in a 256 px crop); the loop itself is in test_live.py."""

import json
import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest

from puppet.faces.pose import FaceFrame, Motion, move
from puppet.live.gains import BROWS, EYES, JAW, MOUTH, PARTS, Gains, PartGains, _frame, parse_gain, soft_limit

SIZE = 256


@pytest.fixture(scope="module")
def ref(astronaut_path):
    from puppet.faces.crop import Crop
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    lms = detect(read_image(astronaut_path))
    assert lms is not None
    return Crop.from_landmarks(lms).to_crop(lms, SIZE)


def local(lms, ref):
    """Landmarks in their own face frame, in the reference's inter-ocular distances."""
    return FaceFrame.of(lms).to_local(lms)


def gaps(lms):
    """Lid gaps of the two eyes, the inner-lip gap, lower lip to chin, upper lip to nose (local, IOD)."""
    q = FaceFrame.of(lms).to_local(lms)
    return {"eyes": [float((q[[41, 40], 1] - q[[37, 38], 1]).mean()),
                     float((q[[47, 46], 1] - q[[43, 44], 1]).mean())],
            "mouth": float((q[[67, 66, 65], 1] - q[[61, 62, 63], 1]).mean()),
            "chin": float(q[8, 1] - q[57, 1]), "nose": float(q[51, 1] - q[33, 1])}


def brows_up(lms, amount):
    """The brows raised by `amount` inter-ocular distances (what a surprised driver's retargeting gives)."""
    f = FaceFrame.of(lms)
    q = f.to_local(lms)
    q[BROWS, 1] -= amount
    return f.from_local(q).astype(np.float32)


def expressions(ref):
    """Retargeted landmarks a driver can give: a wide-open mouth, a blink, wide eyes, raised brows, a head
    moved, turned and leaning in, and all of it at once."""
    return {
        "open mouth": move(ref, Motion(mouth=1.0)),
        "half open": move(ref, Motion(mouth=0.4)),
        "blink": move(ref, Motion(blink=1.0)),
        "wide eyes": move(ref, Motion(blink=-0.6)),
        "brows up": brows_up(ref, 0.12),
        "brows down": brows_up(ref, -0.08),
        "head": move(ref, Motion(roll=25, dx=0.5, dy=-0.2, scale=1.25, yaw=15)),
        "everything": brows_up(move(ref, Motion(mouth=1.0, blink=-0.5, roll=-28, dx=-0.5, scale=0.78,
                                                pitch=10)), 0.1),
    }


def test_gain_one_passes_the_landmarks_unchanged_and_zero_freezes_every_part(ref):
    pg = PartGains(ref, SIZE)
    for name, lms in expressions(ref).items():
        assert pg(lms, Gains()) is lms, name  # all 1: nothing computed
        # one part at 0.999 goes the whole way through the decomposition: the rest comes back exactly
        np.testing.assert_allclose(pg(lms, Gains(eyes=1.0, mouth=0.999)), lms, atol=0.02, err_msg=name)
        if name not in ("head", "everything"):  # (a turned or nodding head also moves the nose and jaw line)
            np.testing.assert_allclose(pg(lms, Gains(**dict.fromkeys(PARTS, 0.0))), ref, atol=1e-3,
                                       err_msg=name)


def test_each_gain_moves_its_own_part_only(ref):
    pg = PartGains(ref, SIZE)
    lms = brows_up(move(ref, Motion(mouth=0.6, blink=0.5, roll=12, dx=0.2, scale=1.1)), 0.06)
    q_ref, q_in = _frame(ref).to_local(ref), _frame(lms).to_local(lms)
    frame = _frame(lms)  # the frame the gains work in
    for part, idx in (("eyes", EYES), ("brows", BROWS), ("mouth", MOUTH + JAW)):
        out = pg(lms, Gains(**{part: 0.0}))
        q = frame.to_local(out)
        np.testing.assert_allclose(q[idx], q_ref[idx], atol=1e-3, err_msg=part)  # frozen at the neutral
        rest = [i for i in range(68) if i not in idx]
        np.testing.assert_allclose(q[rest], q_in[rest], atol=0.02, err_msg=part)  # the rest follows
    rf, f_in = _frame(ref), _frame(lms)
    frozen = _frame(pg(lms, Gains(position=0.0, scale=0.0, roll=0.0)))
    assert np.hypot(*(frozen.centre - rf.centre)) < 0.01 * rf.scale
    assert frozen.scale == pytest.approx(rf.scale, rel=1e-3)
    assert frozen.angle == pytest.approx(rf.angle, abs=1e-3)
    np.testing.assert_allclose(_frame(ref).to_local(pg(lms, Gains(position=0.0, scale=0.0, roll=0.0))), q_in,
                               atol=1e-3)
    half = _frame(pg(lms, Gains(roll=0.5)))
    assert half.angle - rf.angle == pytest.approx(0.5 * (f_in.angle - rf.angle), abs=2e-3)


def test_exaggeration_inside_the_limits_is_linear(ref):
    pg = PartGains(ref, SIZE)
    small = move(ref, Motion(mouth=0.2))  # opens the lips by ~0.07 IOD: 2x stays far inside every limit
    g0, g1, g2 = gaps(ref)["mouth"], gaps(small)["mouth"], gaps(pg(small, Gains(mouth=2.0)))["mouth"]
    assert g2 - g0 == pytest.approx(2 * (g1 - g0), rel=1e-3)
    moved = move(ref, Motion(dx=0.15, roll=6))  # 2x stays inside where the limits start
    rf = _frame(ref)
    out = _frame(pg(moved, Gains(position=2.0, roll=2.0)))
    assert out.angle - rf.angle == pytest.approx(2 * (_frame(moved).angle - rf.angle), abs=1e-3)
    assert np.hypot(*(out.centre - rf.centre)) == pytest.approx(
        2 * np.hypot(*(_frame(moved).centre - rf.centre)), rel=1e-3)


def test_exaggeration_is_limited_smoothly(ref):
    """At 3x on the extremes: lids never cross, eyes at most twice as open, the lips never cross nor reach
    the chin or the nose, the head within its limits; and the limit is approached without a kink."""
    pg = PartGains(ref, SIZE)
    e = expressions(ref)
    g3 = Gains(**dict.fromkeys(PARTS, 3.0))
    neutral = gaps(ref)
    for name, lms in e.items():
        o = gaps(pg(lms, g3))
        for eye, eye0 in zip(o["eyes"], neutral["eyes"]):
            assert -1e-6 <= eye <= 2.0 * eye0 + 1e-6, name
        assert -1e-6 <= o["mouth"] <= 0.8 + 1e-6, name
        assert o["chin"] >= 0.15 - 1e-6 and o["nose"] >= 0.05 - 1e-6, name
        # the head: within its limits, or where the driver itself is (gain 1 is never cut)
        rf, f1, f = _frame(ref), _frame(lms), _frame(pg(lms, Gains(position=3.0, scale=3.0, roll=3.0)))
        shift1 = np.hypot(*(f1.centre - rf.centre)) / rf.scale
        assert np.hypot(*(f.centre - rf.centre)) / rf.scale <= max(0.8, shift1) + 1e-6, name
        ratio1 = f1.scale / rf.scale
        assert min(0.7, ratio1) - 1e-6 <= f.scale / rf.scale <= max(1.4, ratio1) + 1e-6, name
        assert abs(math.degrees(f.angle - rf.angle)) <= max(45, abs(math.degrees(f1.angle - rf.angle))) + 1e-6
    # without the limit the same gain would have crossed the lids and pushed the lower lip into the chin
    q0, q1 = local(ref, ref), local(e["blink"], ref)
    naive = q0 + 3 * (q1 - q0)
    assert (naive[[41, 40], 1] - naive[[37, 38], 1]).mean() < -0.1
    q1 = local(e["open mouth"], ref)
    naive = q0 + 3 * (q1 - q0)
    naive[8] = q1[8]
    assert naive[8, 1] - naive[57, 1] < 0.15
    # smooth: the mouth's opening grows with the gain, each step a small one, and stops short of the limit
    # (where the mesh guard decides, to within its bisection: 1/1000 of an IOD, a twentieth of a pixel)
    # A wide-open mouth can't open much further: the chin would cross the neck's ring of the warp's mesh.
    opening = [gaps(pg(e["open mouth"], Gains(mouth=g)))["mouth"] for g in np.linspace(0, 3, 61)]
    steps = np.diff(opening)
    assert (steps >= -1e-3).all() and steps.max() < 0.02 and steps[-1] < 0.25 * steps[0]
    # A mouth half open opens about twice as wide at 2x before the limit comes in.
    opening = [gaps(pg(e["half open"], Gains(mouth=g)))["mouth"] for g in np.linspace(0, 3, 61)]
    steps = np.diff(opening)
    assert (steps >= -1e-3).all() and steps.max() < 0.02 and steps[-1] < 0.5 * steps[0]
    assert opening[40] - opening[0] > 1.6 * (opening[20] - opening[0])
    # soft_limit itself: unchanged inside, continuous at the knee, never past the bound
    assert soft_limit(0.5, 0.0, 1.0, 0.2) == 0.5
    assert soft_limit(0.8 + 1e-6, 0.0, 1.0, 0.2) == pytest.approx(0.8 + 1e-6)
    assert soft_limit(50.0, 0.0, 1.0, 0.2) <= 1.0 and soft_limit(-50.0, 0.0, 1.0, 0.2) >= 0.0
    assert soft_limit(1.7, 0.0, 1.0, 0.2, keep=(1.7,)) == 1.7  # what gain 1 gives is never cut


def test_no_folded_triangles_at_any_gain(ref):
    """The warp's mesh (landmarks, forehead, rings round the head, the crop's fixed border) folds no
    triangle at gains from 0 to 3 that the driver's own pose (gain 1) leaves unfolded, for every expression.
    (A driver's pose itself can fold a sliver at the crop's edge: raised brows push the forehead's ring point
    past the top border; that is the warp's, not the gains'.)"""
    from puppet.faces.warp import _control_points, _mesh

    pg = PartGains(ref, SIZE)
    src, _ = _control_points((SIZE, SIZE), ref, ref)
    tris = _mesh((SIZE, SIZE), src, np.asarray(ref, np.float32))

    def folded(lms):
        _, dst = _control_points((SIZE, SIZE), ref, np.asarray(lms, np.float64))
        area = [((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
                for a, b, c in ((p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]) for p in (src, dst))]
        return np.sign(area[0]) * area[1] < -1e-3

    naive_folds = 0
    for name, lms in expressions(ref).items():
        own = folded(lms)
        for g in (0.0, 0.5, 1.5, 2.0, 3.0):
            for gains in (Gains(**dict.fromkeys(PARTS, g)), Gains(eyes=g, brows=g, mouth=g)):
                new = folded(pg(lms, gains)) & ~own
                assert not new.any(), (name, gains, tris[new])
        # (the check can fail: 3x the expression, without the limits, folds the mesh)
        f = _frame(lms)
        q0, q1 = _frame(ref).to_local(ref), f.to_local(lms)
        naive_folds += int((folded(f.from_local(q0 + 3 * (q1 - q0))) & ~own).any())
    assert naive_folds >= 3
    # The head's exaggeration folds the mesh at the crop's edge here, and gives way; the mouth's doesn't.
    lms = move(ref, Motion(mouth=0.35, roll=10, dx=0.2))
    assert folded(pg._apply(lms.astype(np.float64), Gains(position=3.0, scale=3.0, roll=3.0))).any()
    both, mouth = pg(lms, Gains(**dict.fromkeys(PARTS, 3.0))), pg(lms, Gains(mouth=3.0))
    assert gaps(both)["mouth"] == pytest.approx(gaps(mouth)["mouth"], abs=1e-3)
    assert gaps(mouth)["mouth"] > gaps(lms)["mouth"] + 0.1
    rf = _frame(ref)
    assert abs(_frame(both).angle - rf.angle) > abs(_frame(lms).angle - rf.angle)  # the head's, partly


def test_gain_values_and_flags():
    assert parse_gain("mouth=1.5") == {"mouth": 1.5}
    assert parse_gain("head=0") == {"position": 0.0, "scale": 0.0, "roll": 0.0}
    for bad in ("mouth", "nose=1", "mouth=x", "mouth=-1", "mouth=3.5", "mouth=nan"):
        with pytest.raises(ValueError):
            parse_gain(bad)
    with pytest.raises(ValueError):
        Gains(eyes=4.0)
    g = Gains().set("eyes", 3.05).set("mouth", -0.1).set("brows", 1.1)
    assert (g.eyes, g.mouth, g.brows) == (3.0, 0.0, 1.1)  # steps past the ends stop there
    assert "[mouth 0.0]" in g.describe("mouth") and "eyes 3.0" in g.describe("mouth")


# -- settings ---------------------------------------------------------------------------------------------

def test_settings_remembered_per_target_in_the_config_folder(tmp_path, monkeypatch):
    from puppet.live.settings import Settings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    s = Settings()
    assert s.path == tmp_path / "cfg" / "puppet" / "live.json"
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    assert s.gains(a) == Gains()  # no file yet: the defaults
    s.remember(a, Gains(mouth=1.4, eyes=0.0))
    s.remember(b, Gains(roll=0.5))
    again = Settings()
    assert again.gains(a) == Gains(mouth=1.4, eyes=0.0) and again.gains(b) == Gains(roll=0.5)
    assert again.gains(tmp_path / "other.pt") == Gains()
    monkeypatch.chdir(tmp_path)
    assert again.gains("a.pt") == Gains(mouth=1.4, eyes=0.0)  # by the file's absolute path
    data = json.loads(s.path.read_text())
    assert data["format"] == "puppet-live-settings" and data["version"] == 1
    assert data["targets"][str(a.resolve())]["gains"]["mouth"] == 1.4
    assert [p.name for p in s.path.parent.iterdir()] == ["live.json"]  # written atomically: no temp left


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage", b'{"format": "other"}',
                                     b'[1, 2]', b""])
def test_a_corrupt_settings_file_is_a_warning_and_the_defaults(tmp_path, caplog, content):
    from puppet.live.settings import Settings

    path = tmp_path / "live.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        s = Settings(path)
    assert s.gains(tmp_path / "a.pt") == Gains()
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(msgs) == 1 and str(path) in msgs[0] and "\n" not in msgs[0] and "defaults" in msgs[0]
    s.remember(tmp_path / "a.pt", Gains(brows=2.0))  # the next change writes a good file
    assert Settings(path).gains(tmp_path / "a.pt") == Gains(brows=2.0)


def test_bad_remembered_gains_and_an_unwritable_folder_are_warnings(tmp_path, caplog):
    from puppet.live.settings import Settings, target_key

    path = tmp_path / "live.json"
    a = tmp_path / "a.pt"
    path.write_text(json.dumps({"format": "puppet-live-settings", "version": 1,
                                "targets": {target_key(a): {"gains": {"mouth": 9}}}}))
    with caplog.at_level(logging.WARNING):
        assert Settings(path).gains(a) == Gains()
    assert any("mouth gain 9" in r.getMessage() for r in caplog.records)
    caplog.clear()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    s = Settings(blocker / "live.json")  # its folder can't be made: a file is in the way
    with caplog.at_level(logging.WARNING):
        s.remember(a, Gains(mouth=2.0))
    assert any("can't save" in r.getMessage() for r in caplog.records)
    assert s.gains(a) == Gains(mouth=2.0)  # kept for the run


# -- idle -------------------------------------------------------------------------------------------------

def lid_gap(lms):
    return gaps(lms)["eyes"][0]


def test_idle_blinks_at_a_human_rate_and_breathes_around_the_neutral(ref):
    from puppet.live.idle import Idle

    idle = Idle(seed=1)
    fps = 25.0
    assert idle(ref, False, 0.0) is ref  # a face drives: nothing added
    out = [idle(ref, True, i / fps) for i in range(int(60 * fps))]  # a minute away
    assert all(o is ref for o in out[:int(fps)])  # the first second: still (the ease to neutral's time)
    gap0 = lid_gap(ref)
    closed = np.array([lid_gap(o) < 0.5 * gap0 for o in out])
    starts = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
    assert 10 <= len(starts) <= 25, len(starts)  # 2-6 s apart: 10-30 a minute
    assert np.diff(starts).min() >= 2.0 * fps - 1
    runs = [np.argmax(~closed[s:]) for s in starts[:-1]]  # frames each blink is more than half shut
    assert all(1 <= r <= 6 for r in runs), runs  # 150-250 ms blinks
    assert min(lid_gap(o) for o in out) < 0.3 * gap0
    # breathing: small, slow motion of the whole head, around the neutral
    rf = FaceFrame.of(ref)
    ys = np.array([FaceFrame.of(o).centre[1] for o in out[int(2 * fps):]])
    assert 0.005 * rf.scale < ys.max() - ys.min() < 0.1 * rf.scale
    assert abs(ys.mean() - rf.centre[1]) < 0.02 * rf.scale
    assert max(np.abs(o - ref).max() for o in out) < 0.25 * rf.scale


def test_idle_fades_out_over_a_few_frames_even_mid_blink(ref):
    from puppet.live.idle import Idle

    idle, fps, t = Idle(seed=2), 25.0, 0.0
    gap0 = lid_gap(ref)
    out = ref
    while lid_gap(out) > 0.3 * gap0:  # away until a blink is nearly shut
        t += 1 / fps
        out = idle(ref, True, t)
        assert t < 10
    offset = float(np.abs(out - ref).max())
    back = [out] + [idle(ref, False, t + k / fps) for k in range(1, 8)]  # the face is back: at the neutral
    steps = [float(np.abs(b - a).max()) for a, b in zip(back, back[1:])]
    assert max(steps) < 0.45 * offset, (steps, offset)  # spread over frames: no jump
    assert back[6] is ref and not idle.active  # gone after 0.2 s (5 frames)


def test_idle_hands_back_to_the_driver_without_a_jump(ref):
    """Through the Driver: a face, 4 s without one (eased to the neutral, then the idle motion), the face
    back: no frame moves much more than the idle motion itself moves in a frame, and the live pose is
    reached within a few frames. --no-idle: the still neutral."""
    from puppet.live.driver import Driver

    target = SimpleNamespace(size=SIZE, ref=ref)
    live = move(ref, Motion(mouth=0.5, dx=0.2, roll=6)) * 1.1 + 5  # a driver elsewhere in its own frame
    fps = 25.0
    times = [i / fps for i in range(200)]
    feed = [live if t < 1.0 or t >= 5.0 else None for t in times]
    for idle in (True, False):
        d = Driver(target, absolute=False, fps=fps, idle=idle)
        d.idle and setattr(d.idle, "rng", np.random.default_rng(3))
        out = [d(x, t) for x, t in zip(feed, times)]
        step = [float(np.abs(b - a).max()) for a, b in zip(out, out[1:])]
        away = out[int(2.2 * fps):125]  # eased to the neutral, idle faded in
        if not idle:
            for o in away:
                np.testing.assert_allclose(o, ref, atol=1e-4)
            continue
        assert max(float(np.abs(o - ref).max()) for o in away) > 0.05 * FaceFrame.of(ref).scale  # alive
        idle_step = max(step[int(2.2 * fps):124])
        back = step[124:135]  # the face returns at frame 125
        assert max(back) < 1.5 * idle_step + 0.02 * FaceFrame.of(ref).scale, (max(back), idle_step)
        np.testing.assert_allclose(out[140], out[199], atol=1e-4)  # following the driver again
        assert not d.idle.active


# -- latency ----------------------------------------------------------------------------------------------

def test_audio_delay_is_the_median_latency_from_a_paced_source():
    from puppet.live.stats import Stats

    paced, unpaced = Stats(paced=True), Stats(paced=False)
    for s in (paced, unpaced):
        for ms in [40, 42, 44, 46, 120]:
            s.frame_out(0.0, ms / 1000)
    p = paced.summary()
    assert p["latency_ms"]["p50"] == pytest.approx(44) and p["audio_delay_ms"] == 40
    assert unpaced.summary()["audio_delay_ms"] is None  # a file: not the latency a call sees
    assert "delay the microphone by 40 ms" in paced.table() and "Sync Offset" in paced.table()
    assert "sound in sync" not in unpaced.table()
    assert any("40 ms" in line for line in paced.overlay_lines())

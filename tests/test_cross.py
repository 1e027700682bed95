"""bench.cross (python -m bench.quality --cross): cross-reenactment scored by how the output follows the
driver's eyes and mouth, on short synthetic talking clips of the packaged portraits (never ../shared)."""

from __future__ import annotations

import numpy as np
import pytest

FRAMES = 40


def _clip(folder, img_path, seed):
    import cv2

    from puppet.data.clips import write_video
    from puppet.data.motion import animate
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    img = read_image(img_path)
    img = cv2.resize(img, (img.shape[1] * 256 // img.shape[0], 256), interpolation=cv2.INTER_AREA)
    frames, _ = animate(img, detect(img), FRAMES, np.random.default_rng(seed), fps=25.0)
    return write_video(folder / f"talk{seed}.mp4", frames, 25.0)


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory, grace_hopper_path, astronaut_path):
    """Two people talking and blinking (puppet.data.motion.animate: blinks of ~0.3 s, syllables)."""
    folder = tmp_path_factory.mktemp("cross")
    return _clip(folder, grace_hopper_path, 1), _clip(folder, astronaut_path, 10)


def test_runs_followed_pearson_jitter():
    from bench.cross import followed, jitter, pairs_of, pearson, runs

    assert runs([0, 1, 1, 0, 0, 1, 0, 1]) == [(1, 2), (5, 5), (7, 7)]
    assert runs([]) == [] and runs([1, 1]) == [(0, 1)]
    ev = [(3, 4), (10, 10)]
    hit = np.zeros(16, bool)
    hit[6] = True  # 2 frames after the first event ends: followed; the second event: nothing near
    assert followed(ev, hit) == 1
    hit[13] = True  # 3 frames after the second: too late
    assert followed(ev, hit) == 1 and followed(ev, hit, window=3) == 2
    a = np.arange(10.0)
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0) and pearson(a, -a) == pytest.approx(-1.0)
    assert pearson(a, np.ones(10)) is None  # a flat signal has no correlation
    b = a.copy()
    b[[2, 5]] = np.nan  # frames without a face are left out
    assert pearson(a, b) == pytest.approx(1.0)
    base = np.stack([np.linspace(0, 60, 68), np.linspace(0, 30, 68)], 1)
    base[36:42] = [[0, 0], [5, -3], [10, -3], [15, 0], [10, 3], [5, 3]]
    base[42:48] = base[36:42] + [40, 0]
    steady = [base + [t, 0] for t in range(6)]  # constant speed: no acceleration
    assert jitter(steady) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    shaky = [p + rng.normal(0, 1, p.shape) for p in steady]
    assert jitter(shaky) > 0.02 and jitter([None, base, base]) is None
    assert pairs_of(3, 1) == [(0, 1), (1, 2), (2, 0)]
    assert pairs_of(3, 5) == [(0, 1), (0, 2), (1, 2), (1, 0), (2, 0), (2, 1)]  # at most everyone else


def test_openness_measures_on_a_real_face(grace_hopper_path):
    """Eye and mouth opening of real landmarks: eyes ~0.2-0.4 of their width open, shut by a blink; the
    mouth opens with puppet.faces.pose's jaw; both the same on the mirrored face and at any scale."""
    from puppet.faces.images import read_image
    from puppet.faces.pose import Motion, move
    from puppet.faces.regions import eye_openness, gaps, mouth_openness
    from puppet.faces.track import detect

    lms = detect(read_image(grace_hopper_path)).astype(np.float64)
    eyes = eye_openness(lms)
    assert eyes.shape == (2,) and (0.15 < eyes).all() and (eyes < 0.45).all()
    assert (eye_openness(move(lms, Motion(blink=1.0))) < 0.05).all()
    m0, m1 = mouth_openness(lms), mouth_openness(move(lms, Motion(mouth=1.0)))
    assert m1 > m0 + 0.2
    mirrored = lms * [-1, 1]  # the same labels on a flipped picture
    np.testing.assert_allclose(eye_openness(mirrored), eyes, atol=1e-9)
    assert mouth_openness(mirrored) == pytest.approx(m0) and mouth_openness(3 * lms) == pytest.approx(m0)
    crossed = lms.copy()
    crossed[[37, 38]], crossed[[41, 40]] = lms[[41, 40]], lms[[37, 38]]  # upper lid below the lower lid
    assert (gaps(crossed, ((37, 41), (38, 40))) < 0).all()


def test_cross_reenactment_end_to_end(two_clips, tmp_path, capsys):
    """Each portrait's photo driven by the other's clip through the live driving: one row per retargeting
    mode in the table and the JSON, every series a frame long, the driver's blinks and mouth openings
    found and (mostly) followed by the warp, the identity kept, a face in every output."""
    import json

    import cv2

    from bench.quality import main

    a, b = two_clips
    out = tmp_path / "cross.json"
    assert main(["--cross", "--clip", str(a), "--clip", str(b), "--cross-frames", str(FRAMES),
                 "--drivers", "1", "--json", str(out), "--save", str(tmp_path / "strips")]) == 0
    text = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["mode"] == "cross" and r["pairs"] == [["talk1", "talk10"], ["talk10", "talk1"]]
    assert "| warp | offsets |" in text and "| warp | openness |" in text and "blink recall" in text
    row, new = r["table"]
    assert row["row"] == "warp" and row["retarget"] == "offsets" and row["pairs"] == 2
    assert new["row"] == "warp" and new["retarget"] == "openness" and new["pairs"] == 2
    assert new["face_found"] == 1.0 and new["csim"] > 0.9
    assert 0.0 <= new["landmarks_mouth_open_recall"] <= 1.0 and "landmarks, blink" not in text
    assert "landmarks: blink, mouth-open recall" in text
    # Strips: driver | offsets | openness, on the driver's deepest blink and widest mouth.
    strips = sorted(p.name for p in (tmp_path / "strips").iterdir())
    assert strips == ["talk10_by_talk1_warp.png", "talk1_by_talk10_warp.png"]
    assert cv2.imread(str(tmp_path / "strips" / strips[0])).shape == (2 * 256, 3 * 256, 3)
    # The warp-drawn synthetic blinks read as half-closed to mediapipe, so they are not counted as blinks
    # here (score_pair's counting is tested on landmarks below); the mouths open.
    assert row["mouth_opens"] >= 1 and row["blinks"] == sum(p["rows"]["warp | offsets"]["blinks"]
                                                            for p in r["per_pair"])
    # r eye over the pairs whose driver blinks (a pair without a blink correlates tracker noise)
    assert row["face_found"] == 1.0 and row["csim"] > 0.9 and row["r_eye"] > 0.5
    assert row["r_mouth"] is not None and 0 <= row["jitter_head"] < 0.05
    assert 0 <= row["jitter"] < 0.05
    assert r["warmup_s"] == 1.0
    # the drivers' own frames, re-detected as the outputs are: a real face's jitter for reference
    real = r["drivers_real"]
    assert real["drivers"] == 2 and 0 < real["jitter_head"] < 0.05 and 0 < real["jitter"] < 0.05
    assert "The drivers' own frames (2 clips" in text
    for pair in r["per_pair"]:
        s = pair["rows"]["warp | offsets"]
        assert s["frames"] == FRAMES and all(len(v) == FRAMES for v in s["series"].values())
        assert s["scored_from"] == 25  # the first second (25 fps) is the live driving's warm-up
    assert r["clips"][0]["photo_frame"] >= 0


class _Seen:
    """A stand-in scorer: 'detects' the landmarks each output was drawn from (outputs are indices)."""

    def __init__(self, lms):
        self.lms = lms

    def redetect(self, k):
        return self.lms[k]

    def descriptors(self, outputs):
        import torch

        return torch.ones(len(outputs), 4)


def test_score_pair_counts_blinks_and_mouth_openings_the_output_follows(grace_hopper_path):
    """Landmark sequences made with puppet.faces.pose: the driver blinks three times and opens its mouth
    twice; an output that follows the first blink a frame late, misses the second, follows the third only
    halfway, and follows one mouth opening, scores 1 of 3 and 1 of 2."""
    import torch

    from bench.cross import Performance, score_pair
    from puppet.faces.images import read_image
    from puppet.faces.pose import Motion, move
    from puppet.faces.track import detect

    face = detect(read_image(grace_hopper_path)).astype(np.float32)
    n = 40
    blink, mouth = np.zeros(n), np.zeros(n)
    blink[[5, 6, 15, 16, 25, 26]] = 1.0
    mouth[30:33] = mouth[36:39] = 1.0
    driver = [move(face, Motion(blink=b, mouth=m)) for b, m in zip(blink, mouth)]
    out_blink, out_mouth = np.zeros(n), np.zeros(n)
    out_blink[[7, 8]] = 1.0  # one frame late: followed
    out_blink[[25, 26]] = 0.3  # barely: not followed
    out_mouth[31:34] = 1.0
    output = [move(face, Motion(blink=b, mouth=m)) for b, m in zip(out_blink, out_mouth)] + [face]
    perf = Performance("d", None, 25.0, driver, None, face, 0)
    s = score_pair(_Seen(output), list(range(n)), torch.ones(1, 4), perf)
    assert (s["blinks"], s["blinks_followed"]) == (3, 1)
    assert (s["mouth_opens"], s["mouth_opens_followed"]) == (2, 1)
    assert s["face_found"] == 1.0 and s["csim"] == pytest.approx(1.0)
    assert s["r_eye"] < 0.5 and s["r_mouth"] < 0.9
    drawn = score_pair(_Seen(output), list(range(n)), torch.ones(1, 4), perf, driven=output[:n])
    assert (drawn["landmarks_blinks_followed"], drawn["landmarks_mouth_opens_followed"]) == (1, 1)
    same = score_pair(_Seen(driver + [face]), list(range(n)), torch.ones(1, 4), perf)  # a perfect follower
    assert same["r_eye"] == pytest.approx(1.0) and same["r_mouth"] == pytest.approx(1.0)
    assert same["blinks_followed"] == 3 and same["mouth_opens_followed"] == 2
    assert s["jitter"] == pytest.approx(0.0, abs=1e-6)  # most frames stand still
    late = score_pair(_Seen(output), list(range(n)), torch.ones(1, 4), perf, start=10)
    assert (late["blinks"], late["blinks_followed"]) == (2, 0)  # the first blink is before `start`
    output[10] = None  # no face found in an output
    assert score_pair(_Seen(output), list(range(n)), torch.ones(1, 4), perf)["face_found"] == (n - 1) / n


def test_cross_model_rows_drive_a_fine_tuned_generator(two_clips, tmp_path):
    """With --checkpoint: each photo fine-tuned (T = 1, tiny-warp from a random tiny-warp checkpoint, 0
    steps), driven at its config's size through the same live driving, upscaled to 256 and scored beside
    the warp; the landmark recalls come from the landmarks it was driven with."""
    import json

    from _util import random_meta

    from bench.quality import main

    meta = random_meta(tmp_path / "meta.pt", "tiny-warp")[0]
    a, b = two_clips
    out = tmp_path / "cross.json"
    assert main(["--cross", "--clip", str(a), "--clip", str(b), "--cross-frames", "16", "--drivers", "1",
                 "--retarget", "openness", "--checkpoint", str(meta), "--steps", "0", "--device", "cpu",
                 "--quiet", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    rows = {(t["row"], t["retarget"]): t for t in r["table"]}
    assert set(rows) == {("warp", "openness"), ("meta steps=0", "openness")}
    model = rows[("meta steps=0", "openness")]
    assert model["pairs"] == 2 and 0.0 <= model["face_found"] <= 1.0 and -1.0 <= model["csim"] <= 1.0
    for pair in r["per_pair"]:
        s = pair["rows"]["meta steps=0 | openness"]
        assert s["frames"] == 16 and "landmarks_mouth_opens_followed" in s


def test_cross_one_line_errors(two_clips):
    from bench.quality import main, parse_args
    from puppet.errors import PuppetError

    a, _ = two_clips
    with pytest.raises(PuppetError, match="--retarget nope: use one or more of"):
        parse_args(["--cross", "--clip", str(a), "--retarget", "nope"])
    with pytest.raises(PuppetError, match="--warmup -1.0"):
        parse_args(["--cross", "--clip", str(a), "--warmup", "-1"])
    with pytest.raises(PuppetError, match="--cross-frames 3"):
        parse_args(["--cross", "--clip", str(a), "--cross-frames", "3"])
    with pytest.raises(PuppetError, match="at least two people"):
        main(["--cross", "--clip", str(a)])


def test_hold_head_keeps_the_expression_and_takes_out_the_head(grace_hopper_path):
    """A blink and an open mouth on a head that moved, turned on screen and came closer: held still, the
    eye corners and nose are the photo's exactly, the lids and lips keep the blink and the mouth (within a
    hundredth of a pixel of the same expression on the unmoved head), and the head's jitter is zero."""
    from bench.cross import hold_head, jitter
    from puppet.faces.images import read_image
    from puppet.faces.pose import STABLE, Motion, move
    from puppet.faces.regions import eye_openness, mouth_openness
    from puppet.faces.track import detect

    ref = detect(read_image(grace_hopper_path)).astype(np.float32)
    still_face = move(ref, Motion(blink=1.0, mouth=0.8))
    moved = [move(ref, Motion(blink=b, mouth=m, roll=r, dx=x, scale=s))
             for b, m, r, x, s in ((0, 0, 0, 0, 1), (1.0, 0.8, 8, 0.3, 1.15), (0.5, 0.4, -5, -0.2, 0.9))]
    held = hold_head(moved, ref)
    for h in held:
        np.testing.assert_array_equal(h[STABLE], ref[STABLE])
    assert jitter(held, STABLE) == 0.0 and jitter(moved, STABLE) > 0.01
    # the expression is kept: the shut, open-mouthed frame held still is that expression on the photo's head
    moving = [i for i in range(68) if i not in STABLE]
    frame_only = hold_head([still_face], ref)[0]
    np.testing.assert_allclose(held[1][moving], frame_only[moving], atol=0.01)
    assert (eye_openness(held[1]) < 0.05).all() and mouth_openness(held[1]) > mouth_openness(ref) + 0.2
    np.testing.assert_allclose(held[0], ref, atol=1e-3)


def test_cross_still_head_row(two_clips, tmp_path, capsys):
    """--still-head: beside each mode's warp, the warp of the same drive with the head held still, scored
    the same way (the same driver's blinks and mouth openings to follow) and explained under the table;
    --still-head without --cross: one line."""
    import json

    from bench.cross import STILL_ROW
    from bench.quality import main, parse_args
    from puppet.errors import PuppetError

    a, b = two_clips
    out = tmp_path / "cross.json"
    assert main(["--cross", "--clip", str(a), "--clip", str(b), "--cross-frames", "16", "--drivers", "1",
                 "--retarget", "openness", "--still-head", "--warmup", "0", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    r = json.loads(out.read_text())
    rows = {(t["row"], t["retarget"]): t for t in r["table"]}
    assert set(rows) == {("warp", "openness"), (STILL_ROW, "openness")}
    still, warp = rows[(STILL_ROW, "openness")], rows[("warp", "openness")]
    assert still["pairs"] == warp["pairs"] == 2 and still["blinks"] == warp["blinks"]
    assert still["mouth_opens"] == warp["mouth_opens"] and still["face_found"] == 1.0
    assert 0 <= still["jitter_head"] < 0.05 and f"| {STILL_ROW} | openness |" in text
    assert "reads into a head that does not move" in text
    with pytest.raises(PuppetError, match="--still-head: a cross-reenactment option; add --cross"):
        parse_args(["--clip", str(a), "--still-head"])

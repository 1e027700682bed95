"""The output frame: paste-back into the target's picture (puppet.live.compose), framing, colour match, and
the live loop and command with it.

Geometry and colour run on real photos (Grace Hopper, the astronaut) with mediapipe's real landmarks and the
shared crop; the live tests use tiny random-weight targets (tests/_util.random_target) on a real face, so
they check the plumbing and the guarantees, not the picture quality.
"""

import json

import cv2
import numpy as np
import pytest
import torch
from _util import Recorder, count_frames, random_target

from puppet.errors import run_cli

FPS = 25.0


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """puppet.live's main() sets torch's thread count; give the rest of the suite its own back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def hopper(grace_hopper_path):
    """(picture, its landmarks, its crop) of a real photo."""
    from puppet.faces.crop import Crop
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    img = read_image(grace_hopper_path)
    lms = detect(img)
    assert lms is not None
    return img, lms, Crop.from_landmarks(lms)


def compositor(picture, lms, crop, size=256, framing=None, neutral="ref"):
    from puppet.live.compose import Compositor
    from puppet.live.framing import Framing

    ref = crop.apply(picture, size)
    c = Compositor(picture, crop, size, crop.to_crop(lms, size), framing or Framing(),
                   neutral=ref if isinstance(neutral, str) else neutral)
    return c, ref


def outside_support(c) -> np.ndarray:
    """bool (H, W): the frame pixels where the mask is exactly zero."""
    H, W = c.background.shape[:2]
    out = np.ones((H, W), bool)
    x0, y0, x1, y1 = c.bbox
    out[y0:y1, x0:x1] = c.alpha == 0
    return out


def core(c) -> tuple[tuple[slice, slice], np.ndarray]:
    x0, y0, x1, y1 = c.bbox
    return (slice(y0, y1), slice(x0, x1)), c.alpha == 1


# ------------------------------------------------------------------------------------------ geometry
def test_paste_back_goes_through_the_exact_inverse_of_the_crop(hopper):
    """The crop's landmarks land where the picture's landmarks land in the frame, and a face pasted back is
    the picture again (to the generator's resolution) with no sub-pixel shift; outside the mask, the frame is
    the framed picture byte for byte."""
    from puppet.live.framing import Framing

    img, lms, crop = hopper
    for framing in (Framing(), Framing(1280, 720, "fill"), Framing(480, 640, "fit")):
        c, ref = compositor(img, lms, crop, 512, framing)
        f, (ox, oy) = c.scale, c.offset
        in_frame = f * (lms.astype(np.float64) + 0.5) - 0.5 + [ox, oy]
        via_crop = crop.to_crop(lms, 512).astype(np.float64) @ c.matrix[:, :2].T + c.matrix[:, 2]
        np.testing.assert_allclose(via_crop, in_frame, atol=1e-3)

        out = c(ref)
        assert out.shape == (framing.height, framing.width, 3) and out.dtype == np.uint8
        assert np.array_equal(out[outside_support(c)], c.background[outside_support(c)])
        box, inner = core(c)
        err = np.abs(out[box].astype(np.int16) - c.background[box])[inner]
        assert err.mean() < 2.5, (framing, err.mean())  # the same picture, resampled twice
        # the per-frame resize is the crop's inverse map: the same as a general warp with c.matrix
        warped = cv2.warpAffine(cv2.transform(ref, c.colour), c.matrix, (framing.width, framing.height),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        assert np.abs(c.face_layer(ref).astype(np.int16) - warped[box]).max() <= 4

    # sub-pixel registration, on crisp dots: the pasted dots sit where the picture's are
    dots = np.zeros_like(img)
    for x, y in ((230, 200), (300, 260), (200, 300)):
        cv2.circle(dots, (x, y), 5, (255, 255, 255), -1, cv2.LINE_AA)
    dots = cv2.GaussianBlur(dots, (0, 0), 2)
    for framing in (Framing(), Framing(1280, 720, "fill")):
        c, ref = compositor(dots, lms, crop, 256, framing, neutral=None)
        box, inner = core(c)

        np.testing.assert_allclose(_centroid(c.face_layer(ref), inner), _centroid(c.background[box], inner),
                                   atol=0.1)  # (an off-by-half-pixel bug: 0.5)


def _centroid(img, weight):
    m = img[..., 0].astype(np.float64) * weight
    yy, xx = np.mgrid[0:m.shape[0], 0:m.shape[1]]
    return (xx * m).sum() / m.sum(), (yy * m).sum() / m.sum()


def test_framing_fit_keeps_the_whole_picture_and_fill_fills_the_frame(hopper):
    from puppet.live.framing import Framing

    img, lms, crop = hopper  # 512 x 600, portrait
    c, _ = compositor(img, lms, crop, 64, Framing())
    bg = c.background
    cols = np.nonzero(bg.any(axis=(0, 2)))[0]
    w = cols[-1] - cols[0] + 1
    assert abs(w - 512 * 720 / 600) <= 1 and abs((cols[0] + cols[-1]) / 2 - 639.5) <= 1  # fitted, centred
    assert not bg[:, :cols[0]].any() and not bg[:, cols[-1] + 1:].any()  # bars at the sides only
    small = cv2.resize(img, (round(512 * 1.2), 720), interpolation=cv2.INTER_AREA)
    assert np.abs(bg[:, cols[0]:cols[-1] + 1].astype(np.int16) - small).mean() < 3

    c, _ = compositor(img, lms, crop, 64, Framing(1280, 720, "fill"))
    assert (c.background.max(axis=2) > 0).mean() > 0.999  # no bars: the picture covers the frame
    x0, y0, x1, y1 = c.bbox
    assert x0 > 0 and x1 < 1280  # the face is in view, left to right


def test_crop_beyond_the_picture_shows_no_bands(hopper):
    """A photo cut close to the face: its crop reaches outside the picture (Crop.apply replicated the border
    there). The face is pasted only onto the picture, and nothing changes outside it."""
    from puppet.faces.crop import Crop
    from puppet.live.framing import Framing

    img, lms, _ = hopper
    tight = np.ascontiguousarray(img[120:420, 150:420])  # the crop box is ~412 px: it overhangs every side
    lms = lms - [150, 120]
    crop = Crop.from_landmarks(lms)
    assert crop.cx - crop.size / 2 < 0 and crop.cy - crop.size / 2 < 0 and crop.cx + crop.size / 2 > 270
    magenta = np.zeros((256, 256, 3), np.uint8)
    magenta[:] = (255, 0, 255)
    for framing in (Framing(), Framing(1280, 720, "fill")):
        c, _ = compositor(tight, lms, crop, 256, framing, neutral=None)
        out = c(magenta)
        x0, y0, x1, y1 = c.bbox
        foot = np.zeros(out.shape[:2], bool)
        fcols = np.nonzero(c.background.any(axis=(0, 2)))[0]
        frows = np.nonzero(c.background.any(axis=(1, 2)))[0]
        foot[frows[0]:frows[-1] + 1, fcols[0]:fcols[-1] + 1] = True
        assert np.array_equal(out[~foot], c.background[~foot])  # outside the picture: untouched
        assert not out[~foot].any() or framing.fit == "fill"  # (fit: black bars, and only bars)
        changed = np.any(out != c.background, axis=2)
        assert changed[foot].any() and not changed[~foot].any()
        if framing.fit == "fill":
            assert foot.all()  # the picture covers the frame: no band anywhere


def test_colour_match_takes_out_the_generators_cast(hopper):
    """A generator whose neutral comes out with a colour cast: the compositor matches it back to the picture
    (measured on the ring inside the mask's edge), so the pasted face's colour meets the picture's."""
    from puppet.live.framing import Framing

    img, lms, crop = hopper
    ref = crop.apply(img, 256)
    cast = np.clip(ref.astype(np.int16) + [24, -12, 8], 0, 255).astype(np.uint8)
    plain, _ = compositor(img, lms, crop, 256, Framing(), neutral=None)
    matched, _ = compositor(img, lms, crop, 256, Framing(), neutral=cast)
    assert plain.colour is None and matched.colour.shape == (3, 4)
    box, inner = core(matched)

    def bias(c):
        d = c(cast)[box].astype(np.float64) - c.background[box]
        return np.abs(d[inner].mean(axis=0))

    before, after = bias(plain), bias(matched)
    print(f"per-channel colour bias B, G, R: {before.round(2)} -> {after.round(2)}")
    assert before.max() > 7 and after.max() < 2.5
    # an honest generator (its neutral is the picture) is left as it is
    honest, _ = compositor(img, lms, crop, 256, Framing())
    np.testing.assert_allclose(honest.colour[:, :3], np.eye(3), atol=0.03)
    assert np.abs(honest.colour[:, 3]).max() < 3


def test_mask_covers_face_and_hair_and_fades_before_the_crop_edge(hopper):
    from puppet.live.compose import face_mask

    img, lms, crop = hopper
    S = 128
    alpha, ring = face_mask(crop.to_crop(lms, S), S)
    p = crop.to_crop(lms, S)
    for i in (8, 30, 36, 45, 48, 54, 19, 24):  # chin, nose, eye corners, mouth corners, brows: all inside
        x, y = np.round(p[i]).astype(int)
        assert alpha[y, x] == 1.0, i
    brow_y = p[17:27, 1].mean()
    forehead = (int(p[27, 0]), int(brow_y - 0.3 * (p[8, 1] - brow_y)))
    assert alpha[forehead[1], forehead[0]] == 1.0  # forehead and hairline
    assert alpha[0].max() == 0 and alpha[-1].max() == 0 and alpha[:, 0].max() == 0 and alpha[:, -1].max() == 0
    soft = (alpha > 0) & (alpha < 1)
    assert soft.sum() > 0.05 * S * S  # feathered, not a hard edge
    assert ring.any() and (alpha[ring] >= 0.5).all()


@pytest.mark.parametrize("fit", ["fit", "fill"])
def test_compose_cost_at_720p_with_a_256_face(hopper, fit):
    """The per-frame work (colour affine, resize, blend in the mask's box) is a few ms at 1280x720 with a 256²
    face: the bench's `compose` stage measures it properly; this is a loose guard on 2 shared cores."""
    import time

    from puppet.live.framing import Framing

    img, lms, crop = hopper
    c, ref = compositor(img, lms, crop, 256, Framing(1280, 720, fit))
    for _ in range(5):
        c(ref)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        c(ref)
        times.append(time.perf_counter() - t0)
    print(f"compose {fit}: p50 {np.median(times) * 1000:.2f} ms")
    assert np.median(times) < 0.015


def test_bench_compose_stage(hopper):
    """`python -m bench`'s compose stage: a 256² face into 1280x720, timed per frame, with where it ran."""
    from bench.stages import compose

    img, lms, _ = hopper
    ms, where = compose(img, lms, n=20)
    assert len(ms) == 20 and 0 < np.median(ms) < 15
    assert where["face"] == 256 and where["frame"] == [1280, 720] and min(where["mask_box"]) > 100


# ------------------------------------------------------------------------------------------- the target
def test_target_keeps_its_picture_and_crop_box(tmp_path, grace_hopper_path):
    from puppet.faces.crop import Crop
    from puppet.target import PICTURE_MAX_SIDE, Target, load_target, save_target

    t = random_target(photo=grace_hopper_path)
    assert t.picture.shape == (600, 512, 3) and isinstance(t.crop, Crop)
    save_target(tmp_path / "t.pt", t)
    back = load_target(tmp_path / "t.pt")
    assert np.array_equal(back.picture, t.picture) and back.crop_box == t.crop_box
    np.testing.assert_array_equal(back.crop.apply(back.picture, 64), back.ref_image)

    # a big photo is kept downscaled, its box with it: the crop still comes out the same
    big = cv2.resize(t.picture, (2560, 3000), interpolation=cv2.INTER_CUBIC)
    s = 2560 / 512
    box = Crop((t.crop.cx + 0.5) * s - 0.5, (t.crop.cy + 0.5) * s - 0.5, t.crop.size * s)
    kept = Target(t.config, t.generator, t.psi, t.ref_landmarks, box.apply(big, 64), picture=big,
                  crop_box=box)
    assert kept.picture.shape == (PICTURE_MAX_SIDE, 1638, 3)
    pts = np.array([[100.0, 200.0], [2000.0, 2900.0], [1280.0, 1500.0]])  # big-photo pixels
    sx, sy = 1638 / 2560, PICTURE_MAX_SIDE / 3000
    small = (pts + 0.5) * [sx, sy] - 0.5  # the same points in the kept picture (cv2.resize's geometry)
    np.testing.assert_allclose(kept.crop.to_crop(small, 64), box.to_crop(pts, 64), atol=0.02)
    assert np.abs(kept.crop.apply(kept.picture, 64).astype(np.int16) - kept.ref_image).mean() < 4

    with pytest.raises(ValueError, match="crop_box"):
        Target(t.config, t.generator, t.psi, t.ref_landmarks, t.ref_image, picture=t.picture)


def test_version_1_targets_still_load_without_a_picture(tmp_path):
    from puppet.errors import PuppetError
    from puppet.target import load_target, save_target

    save_target(tmp_path / "new.pt", random_target())
    obj = torch.load(tmp_path / "new.pt", weights_only=True)
    assert obj["version"] == 3 and "picture" not in obj
    torch.save({**obj, "version": 1}, tmp_path / "v1.pt")
    old = load_target(tmp_path / "v1.pt")
    assert old.picture is None and old.crop is None

    torch.save({**obj, "picture": torch.zeros(10, 10, 3, dtype=torch.uint8)}, tmp_path / "nobox.pt")
    with pytest.raises(PuppetError, match="incomplete or malformed"):
        load_target(tmp_path / "nobox.pt")


def test_target_without_picture_is_pasted_onto_its_reference_crop_with_a_notice(astronaut_path, logs):
    from puppet.live.compose import Compositor
    from puppet.live.framing import Framing

    t = random_target(photo=astronaut_path, picture=False)
    t.meta["path"] = "old.pt"
    c = Compositor.for_target(t, Framing())
    notices = [r for r in logs.records if "old.pt: has no source picture" in r.getMessage()]
    assert notices and all(r.levelname == "WARNING" for r in notices)  # (caplog may see it twice)
    assert len({r.getMessage() for r in notices}) == 1 and "\n" not in notices[0].getMessage()
    # the reference crop, framed: 720 x 720 in the middle of 1280 x 720
    expect = cv2.resize(t.ref_image, (720, 720), interpolation=cv2.INTER_LINEAR)
    assert np.abs(c.background[:, 280:1000].astype(np.int16) - expect).mean() < 2
    assert not c.background[:, :280].any() and not c.background[:, 1000:].any()
    face = np.full((64, 64, 3), 77, np.uint8)
    out = c(face)
    assert np.array_equal(out[outside_support(c)], c.background[outside_support(c)])
    box, inner = core(c)
    assert (out[box][inner] == 77).all()  # inside: the generator's pixels (no neutral: no colour match)


# -------------------------------------------------------------------------------------- the live loop
@pytest.fixture(scope="module")
def face_frames(grace_hopper_path):
    """A synthetic talking clip of Grace Hopper, small so that it runs fast."""
    from puppet.data.motion import animate
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    img = cv2.resize(read_image(grace_hopper_path), (200, 234), interpolation=cv2.INTER_AREA)
    frames, _ = animate(img, detect(img), 16, np.random.default_rng(0), fps=FPS)
    return frames


@pytest.fixture(scope="module")
def face_clip(face_frames, tmp_path_factory):
    from puppet.data.clips import write_video

    return write_video(tmp_path_factory.mktemp("clip") / "drive.mp4", face_frames, FPS)


@pytest.fixture(scope="module")
def picture_target(tmp_path_factory, astronaut_path):
    from puppet.target import save_target

    path = tmp_path_factory.mktemp("target") / "astronaut.pt"
    save_target(path, random_target(seed=3, photo=astronaut_path))
    return path


class Spy:
    """Wraps a backend and keeps every image it generated (uint8 BGR, as the output stage gets it)."""

    def __init__(self, backend):
        self.backend, self.name, self.images = backend, backend.name, []

    def generate(self, *inputs):
        from puppet.faces.images import to_bgr

        y = self.backend.generate(*inputs)
        self.images.append(to_bgr(y[0]))
        return y


def run_composed(target_path, source, framing=None):
    from puppet.live.app import load_targets
    from puppet.live.framing import Framing
    from puppet.live.loop import Live
    from puppet.live.stats import Stats

    targets = load_targets([str(target_path)], "torch", None, framing or Framing())
    targets[0].backend = Spy(targets[0].backend)
    rec, stats = Recorder(), Stats()
    Live(targets, source, [rec], None, stats).run()
    source.close()
    return targets[0], rec.frames, stats


def test_loop_sends_the_face_pasted_into_the_picture(picture_target, face_clip):
    """Every output frame is the framed picture outside the mask (byte for byte) and, inside, the compositor's
    paste of an image the generator made."""
    from puppet.live.sources import FileSource

    t, frames, stats = run_composed(picture_target, FileSource(face_clip))
    comp = t.compositor
    assert comp is not None and t.target.picture is not None
    assert len(frames) == stats.frames_out == 16
    outside = outside_support(comp)
    made = {comp(g).tobytes() for g in t.backend.images}
    for f in frames:
        assert f.shape == (720, 1280, 3)
        assert np.array_equal(f[outside], comp.background[outside])
        assert f.tobytes() in made
    moved = [np.abs(a.astype(np.int16) - b).mean() for a, b in zip(frames, frames[1:])]
    assert max(moved) > 0  # the face moves
    s = stats.summary()
    assert s["stages_ms"]["compose"]["n"] == 16 - s["reused"] and s["stages_ms"]["compose"]["p50"] > 0


def test_face_lost_hold_never_shows_a_camera_pixel(picture_target, face_frames, tmp_path):
    from puppet.data.clips import write_video
    from puppet.live.sources import FileSource

    h, w = face_frames[0].shape[:2]
    stripes = np.zeros((h, w, 3), np.uint8)
    stripes[:, ::8] = (255, 0, 255)
    clip = face_frames[:6] + [stripes] * 24 + face_frames[6:12]  # ~1 s without a face
    path = write_video(tmp_path / "gap.mp4", clip, FPS)
    t, frames, stats = run_composed(picture_target, FileSource(path))
    assert len(frames) == len(clip) and stats.no_face == 24
    comp = t.compositor
    made = {comp(g).tobytes() for g in t.backend.images}
    assert all(f.tobytes() in made for f in frames)  # only pastes of generated faces into the picture
    assert stats.reused > 0  # held at the neutral: the same frame again


def test_live_command_writes_1280x720_frames(picture_target, face_clip, tmp_path, monkeypatch, logs):
    """A clip through the live command with `--output out.mp4`: 1280x720, one frame per input frame; the mp4
    (lossy) is the framed picture outside the face."""
    from puppet.live.app import main
    from puppet.live.compose import Compositor
    from puppet.target import load_target

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the remembered gains: the test's own
    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    assert main(["--target", str(picture_target), "--source", str(face_clip), "--backend", "torch",
                 "--output", str(out), "--stats", str(stats_path)]) == 0
    assert "1280x720 picture (fit)" in logs.text
    assert count_frames(out) == 16
    cap = cv2.VideoCapture(str(out))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1280, 720)
    ok, first = cap.read()
    cap.release()
    comp = Compositor.for_target(load_target(picture_target))
    far = outside_support(comp)
    far = cv2.erode(far.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)  # away from the seam
    assert np.abs(first.astype(np.int16) - comp.background)[far].mean() < 3  # mp4v is lossy
    s = json.loads(stats_path.read_text())
    assert s["frames_out"] == 16 and s["output"] == "1280x720 picture (fit)"


def test_flags_size_fit_crop_mode_and_old_targets(picture_target, face_clip, tmp_path, astronaut_path, logs):
    from puppet.live.app import main
    from puppet.target import save_target

    base = ["--source", str(face_clip), "--backend", "torch", "--max-frames", "3"]
    out = tmp_path / "fill.mp4"
    assert main(["--target", str(picture_target), *base, "--size", "640x360", "--fit", "fill",
                 "--output", str(out)]) == 0
    cap = cv2.VideoCapture(str(out))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 360)
    cap.release()

    out = tmp_path / "crop.mp4"  # today's square output
    assert main(["--target", str(picture_target), *base, "--output-mode", "crop", "--output", str(out)]) == 0
    cap = cv2.VideoCapture(str(out))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (64, 64)
    cap.release()

    old = tmp_path / "old.pt"  # a target without a picture (an older file): runs, with a notice
    save_target(old, random_target(photo=astronaut_path, picture=False))
    out = tmp_path / "old.mp4"
    assert main(["--target", str(old), *base, "--pad-720p", "--output", str(out)]) == 0
    assert count_frames(out) == 3
    cap = cv2.VideoCapture(str(out))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1280, 720)
    cap.release()
    text = logs.text
    assert "old.pt: has no source picture" in text and "--pad-720p is deprecated" in text


@pytest.mark.parametrize("args,expect", [
    (["--size", "12x"], "--size 12x: "),
    (["--size", "1281x720"], "must be even"),
    (["--size", "8x8"], "outside"),
    (["--fit", "stretch"], "invalid choice: 'stretch'"),
    (["--output-mode", "face"], "invalid choice: 'face'"),
])
def test_bad_output_flags_are_one_line_errors(picture_target, face_clip, capsys, args, expect):
    from puppet.live.app import main

    with pytest.raises(SystemExit) as e:
        run_cli(main, ["--target", str(picture_target), "--source", str(face_clip), *args])
    assert e.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], lines


def test_preview_panel_keeps_the_output_frames_aspect():
    from puppet.live.sinks import fit, preview_panel

    cam = np.full((480, 640, 3), 100, np.uint8)
    frame = np.full((720, 1280, 3), 200, np.uint8)
    panel = preview_panel(cam, np.zeros((64, 64, 3), np.uint8), frame, 180)
    assert panel.shape == (180, 240 + 180 + 320, 3)
    np.testing.assert_array_equal(panel[:, 420:], fit(frame, 320, 180))

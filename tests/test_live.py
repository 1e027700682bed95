"""The live loop end to end: real mp4 clips through mediapipe, a tiny target's generator and the real sinks.

The target is built here: models' tiny config with random weights (seeded) and a real face's reference
landmarks and crop (the astronaut), saved with puppet.target.save_target. No fine-tuning: these tests
check the loop's plumbing, timing and guarantees, not the picture quality.
"""

import importlib.util
import json
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from _util import Recorder, count_frames

from puppet.errors import run_cli

FPS = 25.0


@pytest.fixture(autouse=True)
def own_config_folder(tmp_path, monkeypatch):
    """The remembered live settings go to a folder of the test's own, never the user's ~/.config."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """main() sets torch's thread count for the live loop; give the rest of the suite its own back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def make_tiny_target(path, photo_path, seed, config="tiny"):
    """A target file: tiny config (or another small one: `tiny-warp`), random weights (seeded, untrained:
    an appearance generator's mask at its 0.98 start), a real face's reference crop and landmarks."""
    from models.config import get_config
    from models.generator import Generator
    from models.spectral import remove_spectral_norm
    from puppet.faces.crop import Crop
    from puppet.faces.images import read_image
    from puppet.faces.track import detect
    from puppet.target import Target, save_target

    torch.manual_seed(seed)
    cfg = get_config(config)
    size = cfg.image_size
    g = Generator(cfg)
    remove_spectral_norm(g)
    psi = 0.5 * torch.randn(1, g.n_adain)
    photo = read_image(photo_path)
    lms = detect(photo)
    assert lms is not None
    crop = Crop.from_landmarks(lms)
    ref_lms, ref_img = crop.to_crop(lms, size), crop.apply(photo, size)
    save_target(path, Target(cfg, g.state_dict(), psi, ref_lms, ref_img, {"test": True}))
    return path


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory, astronaut_path):
    return make_tiny_target(tmp_path_factory.mktemp("target") / "tiny.pt", astronaut_path, 0)


@pytest.fixture(scope="module")
def face_frames(grace_hopper_path):
    """A synthetic talking-head clip of Grace Hopper (puppet.data.clips), small so that it runs fast."""
    from puppet.data.motion import animate
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    img = read_image(grace_hopper_path)
    img = cv2.resize(img, (200, 234), interpolation=cv2.INTER_AREA)
    lms = detect(img)
    assert lms is not None
    frames, _ = animate(img, lms, 24, np.random.default_rng(0), fps=FPS)
    return frames


@pytest.fixture(scope="module")
def face_clip(face_frames, tmp_path_factory):
    from puppet.data.clips import write_video

    return write_video(tmp_path_factory.mktemp("clip") / "drive.mp4", face_frames, FPS)


def test_clip_gives_one_output_frame_per_input_frame_and_stats(tiny_target, face_clip, tmp_path, capsys):
    from puppet.live.app import main
    from puppet.live.stats import STAGES

    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    # the default backend (auto: onnxruntime on a CPU-only machine, exported beside the target on first use)
    code = main(["--target", str(tiny_target), "--source", str(face_clip), "--output", str(out),
                 "--stats", str(stats_path)])
    assert code == 0
    n = count_frames(face_clip)
    assert n == 24
    assert count_frames(out) == n
    cap = cv2.VideoCapture(str(out))
    # the face pasted back into the target's picture, framed for a call (tests/test_compose.py)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1280, 720)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    cap.release()

    s = json.loads(stats_path.read_text())
    assert s["frames_in"] == s["frames_out"] == n
    assert s["dropped"] == 0  # a file: every frame, no drops
    assert s["no_face"] == 0  # a real face in every frame
    assert s["fps"] > 0 and s["source_fps"] == pytest.approx(FPS)
    assert set(s["stages_ms"]) == set(STAGES)
    for name in ("capture", "track", "filter_retarget", "rasterise", "output"):
        st = s["stages_ms"][name]
        assert st["n"] == n and 0 < st["p50"] <= st["p95"], name
    gen = s["stages_ms"]["generate"]
    assert gen["n"] + s["reused"] == n and 0 < gen["p50"] <= gen["p95"]
    lat = s["latency_ms"]
    assert lat["n"] == n and 0 < lat["p50"] <= lat["p95"]
    # end-to-end covers at least tracking and generating one frame
    assert lat["p50"] >= s["stages_ms"]["track"]["p50"] + gen["p50"] * 0.5
    assert s["mode"] == "relative" and s["image_size"] == 64
    # the table printed at exit
    printed = capsys.readouterr().out
    assert "end-to-end" in printed and f"frames in {n}" in printed


def stripes(h, w):
    """Saturated magenta/green stripes: pixels no face generator output should ever show."""
    img = np.zeros((h, w, 3), np.uint8)
    for x in range(0, w, 8):
        img[:, x:x + 4] = (255, 0, 255) if (x // 8) % 2 == 0 else (0, 255, 0)
    return img


class Spy:
    """Wraps the real backend and keeps every image it generated (as the uint8 BGR the sinks get)."""

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name
        self.inputs = backend.inputs
        self.images = []
        self.sketch_of = {}  # output image bytes -> the sketch it was generated from
        self.warps = []  # the warped references it was given (appearance targets), as uint8 BGR
        self.given = []  # the input tensors as given, each call's tuple

    def generate(self, *inputs):
        from puppet.faces.images import to_bgr

        y = self.backend.generate(*inputs)
        img = to_bgr(y[0])
        self.images.append(img)
        self.sketch_of[img.tobytes()] = to_bgr(inputs[0][0])
        if len(inputs) == 2:
            self.warps.append(to_bgr(inputs[1][0]))
        self.given.append(inputs)
        return y


def run_live(target_path, source, outputs, **kw):
    from puppet.live.app import load_targets
    from puppet.live.loop import Live
    from puppet.live.stats import Stats

    targets = load_targets([str(target_path)], "torch", None)
    targets[0].backend = Spy(targets[0].backend)
    stats = Stats()
    live = Live(targets, source, outputs, None, stats, **kw)
    live.run()
    source.close()
    return targets, stats


def diff(a, b):
    return float(np.abs(a.astype(np.int16) - b).mean())


def test_face_lost_holds_eases_to_neutral_and_never_shows_the_camera(tiny_target, face_frames, tmp_path):
    from puppet.data.clips import write_video
    from puppet.faces.sketch import sketch_tensor
    from puppet.live.sources import FileSource

    h, w = face_frames[0].shape[:2]
    blank = [stripes(h, w) for _ in range(30)]  # 1.2 s without a face: longer than the 0.75 s ease
    clip = face_frames[:10] + blank + face_frames[10:20]
    path = write_video(tmp_path / "gap.mp4", clip, FPS)
    rec = Recorder()
    targets, stats = run_live(tiny_target, FileSource(path), [rec], idle=False)  # --no-idle: a still neutral
    out = rec.frames
    assert len(out) == len(clip) == stats.frames_out == stats.frames_in
    assert stats.no_face == 30

    # The camera's pixels never reach an output: every output frame is, bit for bit, an image the
    # generator made, and none resembles any clip frame (as a sink would get it, scaled to 64x64).
    from puppet.live.sinks import fit

    generated = {g.tobytes() for g in targets[0].backend.images}
    small = [fit(f, 64, 64).astype(np.int16) for f in _read_all(path)]
    assert len(small) == len(clip)
    for o in out:
        assert o.shape == (64, 64, 3) and o.tobytes() in generated
        assert min(np.abs(o.astype(np.int16) - c).mean() for c in small) > 20

    # Face lost: the first faceless frame holds the last face frame's output (the ease starts as a hold)...
    motion = np.mean([diff(out[i], out[i + 1]) for i in range(9)])
    assert diff(out[9], out[10]) < max(0.5, 0.5 * motion)
    # ...and within ~0.75 s it is exactly the target's neutral: the generator on its reference landmarks.
    with torch.no_grad():
        neutral = targets[0].backend.backend.generate(sketch_tensor(targets[0].ref, 64))
    from puppet.faces.images import to_bgr

    neutral = to_bgr(neutral[0])
    assert diff(out[12], neutral) > 0  # still on the way
    for i in range(10 + 20, 40):  # 0.8 s in and after
        np.testing.assert_array_equal(out[i], neutral)
    assert stats.reused >= 9  # the held neutral isn't regenerated
    # Face back: resumes from the neutral smoothly, then follows the face again.
    np.testing.assert_array_equal(out[40], neutral)
    assert diff(out[41], neutral) < diff(out[49], neutral)
    assert diff(out[49], neutral) > 1.0


def test_warp_target_through_the_loop(astronaut_path, face_frames, tmp_path, monkeypatch):
    """A target with the appearance path: every frame the generator gets the sketch and the reference picture
    warped to the same landmarks, the warp is its own timed stage, and a lost face still eases back to the
    neutral, whose warp is the reference picture itself. Untrained (mask 0.98), the output is the warp."""
    from puppet.data.clips import write_video
    from puppet.faces.images import to_bgr, to_tensor
    from puppet.faces.sketch import sketch_tensor
    from puppet.feed import Feeder
    from puppet.live.sources import FileSource

    made = []  # (the warp tensor, the landmarks it was warped to), kept alive so that ids stay unique
    real = Feeder.__call__

    def recording(self, landmarks):
        out = real(self, landmarks)
        made.append((out.tensors[1], np.array(landmarks)))
        return out

    monkeypatch.setattr(Feeder, "__call__", recording)
    path = make_tiny_target(tmp_path / "warp.pt", astronaut_path, 0, config="tiny-warp")
    h, w = face_frames[0].shape[:2]
    clip = face_frames[:10] + [stripes(h, w) for _ in range(25)] + face_frames[10:14]
    rec = Recorder()
    source = FileSource(write_video(tmp_path / "gap.mp4", clip, FPS))
    targets, stats = run_live(path, source, [rec], idle=False)
    t, spy = targets[0], targets[0].backend
    assert spy.backend.inputs == ("sketch", "warped")
    out = rec.frames
    assert len(out) == len(clip) == stats.frames_out and all(o.shape == (64, 64, 3) for o in out)
    s = stats.summary()
    assert s["stages_ms"]["warp"]["n"] == len(clip) and 0 < s["stages_ms"]["warp"]["p50"]
    # one warp per generator call, each a moved copy of the reference picture (or the picture itself)
    assert len(spy.warps) == len(spy.images) == len(clip) - s["reused"]
    warped_to = {id(w): lms for w, lms in made}
    assert all(len(given) == 2 for given in spy.given)
    for sketch, warped in spy.given:  # the sketch and the warp of the same driving landmarks
        assert torch.equal(sketch, sketch_tensor(warped_to[id(warped)], 64))
    ref = t.target.ref_image
    assert max(diff(wp, ref) for wp in spy.warps[:10]) > 1.0  # the driven face moves the warp
    # the untrained generator gives back (nearly) its warped input: the detail of the photo
    assert max(diff(img, wp) for img, wp in zip(spy.images, spy.warps)) < 3.0
    # face lost: eased back to the neutral = the generator on the reference sketch and the picture itself
    with torch.no_grad():
        neutral = to_bgr(spy.backend.generate(sketch_tensor(t.ref, 64), to_tensor(ref))[0])
    for i in range(10 + 20, 35):
        np.testing.assert_array_equal(out[i], neutral)
    assert any(np.array_equal(wp, ref) for wp in spy.warps)


def test_idle_avatar_blinks_while_away_and_takes_the_face_back_smoothly(tiny_target, face_frames, tmp_path,
                                                                          monkeypatch):
    """The default: 3 s without a face. The first second eases to the neutral as with --no-idle, then the
    avatar moves on its own (new images, its eyes closing at least once), and when the face comes back the
    output changes no faster than it did while the face was driving it."""
    from puppet.data.clips import write_video
    from puppet.faces.sketch import sketch_tensor
    from puppet.live.idle import Idle
    from puppet.live.sources import FileSource

    drives = []  # the driving landmarks the idle step gave the loop
    real = Idle.__call__
    monkeypatch.setattr(Idle, "__call__", lambda self, *a: drives.append(real(self, *a)) or drives[-1])

    h, w = face_frames[0].shape[:2]
    clip = face_frames[:12] + [stripes(h, w) for _ in range(75)] + face_frames[12:24]
    rec = Recorder()
    targets, stats = run_live(tiny_target, FileSource(write_video(tmp_path / "away.mp4", clip, FPS)), [rec])
    out = rec.frames
    assert len(out) == len(clip) and stats.no_face == 75
    from puppet.faces.images import to_bgr

    with torch.no_grad():
        neutral = to_bgr(targets[0].backend.backend.generate(sketch_tensor(targets[0].ref, 64))[0])
    np.testing.assert_array_equal(out[12 + 24], neutral)  # ~1 s away: eased to the neutral, still
    away = out[12 + 40:12 + 75]  # 1.6-3 s away: alive
    assert sum(not np.array_equal(o, neutral) for o in away) > 30
    assert len({o.tobytes() for o in away}) > 20  # not one held picture: it keeps moving
    # while away the eyes shut at least once (a blink) and open again
    assert len(drives) == len(clip)
    lids = [float((d[[41, 40, 47, 46], 1] - d[[37, 38, 43, 44], 1]).mean()) for d in drives]
    open_ = float((targets[0].ref[[41, 40, 47, 46], 1] - targets[0].ref[[37, 38, 43, 44], 1]).mean())
    shut = 12 + 25 + int(np.argmin(lids[12 + 25:12 + 75]))  # (the first blink comes 0.5-1.5 s in)
    assert lids[shut] < 0.4 * open_ and max(lids[shut:12 + 75]) > 0.6 * open_
    # the hand-back: no bigger step than the face itself made while driving
    driving = max(diff(out[i], out[i + 1]) for i in range(12 + 75, len(clip) - 1))
    steps = [diff(out[i], out[i + 1]) for i in range(12 + 74, 12 + 80)]
    assert max(steps) <= 1.5 * driving, (steps, driving)


def test_paced_source_reports_latency_and_the_audio_delay(tiny_target, tmp_path, capsys):
    """The demo source runs in real time, like a camera: --stats has the latency's median and p95 and the
    audio delay that matches them; the exit table says what to set, in one line."""
    from puppet.live.app import main

    stats_path = tmp_path / "stats.json"
    assert main(["--target", str(tiny_target), "--source", "demo", "--backend", "torch", "--output",
                 str(tmp_path / "o.mp4"), "--max-frames", "40", "--stats", str(stats_path),
                 "--gain", "mouth=1.5", "--gain", "head=0.5"]) == 0
    s = json.loads(stats_path.read_text())
    lat = s["latency_ms"]
    assert s["paced"] is True and lat["n"] == s["frames_out"] > 10 and 0 < lat["p50"] <= lat["p95"]
    assert s["audio_delay_ms"] == round(lat["p50"] / 10) * 10
    assert s["gains"] == {str(tiny_target): {"eyes": 1.0, "brows": 1.0, "mouth": 1.5, "position": 0.5,
                                             "scale": 0.5, "roll": 0.5}}
    tip = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sound in sync")]
    assert len(tip) == 1 and f"by {s['audio_delay_ms']} ms" in tip[0] and "OBS Sync Offset" in tip[0]


def test_gain_keys_change_the_drive_and_are_remembered_per_target(tiny_target, face_clip, tmp_path):
    """g picks a part, + and - change it, 0 resets it: the loop's Driver gets the new gains, the preview's
    status line shows them, and the settings file keeps them for this target file."""
    from puppet.live.app import load_targets
    from puppet.live.gains import Gains
    from puppet.live.loop import Live
    from puppet.live.settings import Settings
    from puppet.live.sources import FileSource
    from puppet.live.stats import Stats

    settings = Settings(tmp_path / "live.json")
    targets = load_targets([str(tiny_target)], "torch", None)
    live = Live(targets, FileSource(face_clip), [Recorder()], None, Stats(), settings=settings)
    for action in ["gain_part", "gain_part", "gain_up", "gain_up", "gain_up", "gain_part", "gain_down",
                   "gain_down", "gain_down"]:  # brows, mouth 1.3, position 0.7
        assert live._hotkey(action) is False
    assert targets[0].gains == Gains(mouth=1.3, position=0.7)
    assert "[position 0.7]" in live.status_lines()[0] and "mouth 1.3" in live.status_lines()[0]
    assert Settings(tmp_path / "live.json").gains(tiny_target) == Gains(mouth=1.3, position=0.7)
    live._hotkey("gain_reset")
    assert Settings(tmp_path / "live.json").gains(tiny_target) == Gains(mouth=1.3)
    for _ in range(40):
        live._hotkey("gain_down")  # stops at 0
    assert targets[0].gains.position == 0.0
    live.run()  # the process stage hands the target's gains to the Driver
    assert live.driver.gains == Gains(mouth=1.3, position=0.0)


class ScriptedWindow:
    """OpenCV's window calls stood in for (no display here), so that the real PreviewWindow reads keys from a
    script: `press(key)` queues a key for the next poll, or `at[n] = key` for the first poll after the n-th
    shown frame; `shown` keeps the (camera, panel) of every imshow; `closed` makes the window report itself
    closed."""

    def __init__(self, monkeypatch):
        from puppet.live import sinks

        self.keys, self.at, self.shown, self.closed, self.calls = [], {}, [], False, []
        monkeypatch.setattr(sinks, "display_available", lambda: (True, ""))
        monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
        monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
        monkeypatch.setattr(cv2, "imshow", lambda title, panel: self.shown.append(panel.copy()))
        monkeypatch.setattr(cv2, "waitKey", self._key)
        monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 0.0 if self.closed else 1.0)
        real_show = sinks.PreviewWindow.show

        def show(window, camera, *rest, **kw):
            self.calls.append(None if camera is None else camera.copy())
            real_show(window, camera, *rest, **kw)

        monkeypatch.setattr(sinks.PreviewWindow, "show", show)
        self.window = sinks.PreviewWindow()

    def press(self, key):
        self.keys.append(key)

    def _key(self, _ms=0):
        if not self.keys and len(self.calls) in self.at:
            self.keys.append(self.at.pop(len(self.calls)))
        if not self.keys:
            return -1  # no key
        k = self.keys.pop(0)
        return k if isinstance(k, int) else ord(k)


def test_preview_keys_each_change_what_the_readme_says(tiny_target, grace_hopper_path, face_clip, tmp_path,
                                                         monkeypatch, logs):
    """Every key of the preview (README: c, m, n/p, g, +/-, 0, l, s, q/Esc) read by the real PreviewWindow and
    applied by the loop's handler: the state each one changes, and nothing else."""
    from puppet.live.app import load_targets
    from puppet.live.gains import PARTS, Gains
    from puppet.live.loop import Live
    from puppet.live.sources import FileSource
    from puppet.live.stats import Stats

    w = ScriptedWindow(monkeypatch)
    second = make_tiny_target(tmp_path / "second.pt", grace_hopper_path, 1)
    targets = load_targets([str(tiny_target), str(second)], "torch", None)
    live = Live(targets, FileSource(face_clip), [Recorder()], w.window, Stats())
    c = live.controls

    def press(key):
        w.press(key)
        return live._hotkey(w.window.poll(1))

    assert press("x") is False and press(-1) is False  # a key of no meaning, no key: nothing changes
    assert (c.mirror, c.target_index, c.part, c.calibrate.is_set()) == (False, 0, 0, False)
    assert press("c") is False and c.calibrate.is_set() and "recalibrating" in logs.text
    assert press("m") is False and c.mirror is True
    assert press("m") is False and c.mirror is False
    seen = []
    for key in "nnpp":  # two targets: n and p step through them and wrap round
        press(key)
        seen.append(c.target_index)
    assert seen == [1, 0, 1, 0]
    # g steps through the parts (the status line brackets the one +/-/0 change) and wraps round
    for part in [*PARTS, PARTS[0]]:
        assert f"[{part} 1.0]" in live.status_lines()[0]
        press("g")
    assert c.part == 1
    press("g")  # mouth
    values = []
    for key in "+=+-_0":
        press(key)
        values.append(targets[0].gains.mouth)
    assert values == pytest.approx([1.1, 1.2, 1.3, 1.2, 1.1, 1.0])
    press("n")
    press("+")  # the gains belong to the current target
    assert targets[1].gains == Gains(mouth=1.1) and targets[0].gains == Gains()
    assert (c.mirror, c.target_index) == (False, 1)

    # l and s switch the overlays off and on in what the window shows; the gains line always stays
    camera = next(_read_all(face_clip))
    lms = np.array([[20.0 + 4 * i, 40.0 + (i % 5)] for i in range(68)], np.float32)
    sketch, out = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 90, np.uint8)

    def shown():
        w.window.show(camera, sketch, out, lms, ["stats line"], live.status_lines())
        return w.shown[-1]

    def green(panel):  # the landmark dots: pure green, which the photo doesn't have
        return int(np.all(panel == (0, 255, 0), axis=2).sum())

    both = shown()
    assert green(both) > 0
    press("l")
    no_dots = shown()
    assert green(no_dots) == 0
    w.window.show(camera, sketch, out, lms, None, live.status_lines())
    status_only = w.shown[-1]
    press("s")
    np.testing.assert_array_equal(shown(), status_only)  # s hides exactly the stats lines
    press("l")
    press("s")
    np.testing.assert_array_equal(shown(), both)  # and pressed again, both are back

    assert press("q") is True and press(27) is True  # q and Esc quit
    w.closed = True
    assert press(-1) is True  # so does closing the window


def test_preview_keys_through_the_loop(tiny_target, face_clip, monkeypatch):
    """Keys pressed while the loop runs a clip: c and m make the process stage take a new neutral, m mirrors
    the frames from then on, q ends the run before the clip does."""
    from puppet.live.app import load_targets
    from puppet.live.driver import Driver
    from puppet.live.loop import Live
    from puppet.live.sources import FileSource
    from puppet.live.stats import Stats

    recalibrated = []
    real = Driver.recalibrate
    monkeypatch.setattr(Driver, "recalibrate", lambda d: (recalibrated.append(1), real(d)))
    w = ScriptedWindow(monkeypatch)
    w.at = {3: "c", 8: "m", 16: "q"}  # after the 3rd, 8th and 16th frame shown
    targets = load_targets([str(tiny_target)], "torch", None)
    rec = Recorder()
    stats = Stats()
    live = Live(targets, FileSource(face_clip), [rec], w.window, stats)
    live.run()
    frames = list(_read_all(face_clip))
    assert len(rec.frames) == len(w.calls) == 16 < len(frames)  # q: no frame sent after it
    assert live.controls.mirror is True and not live.controls.calibrate.is_set()
    assert len(recalibrated) == 2  # c, then m (the neutral was taken the other way round)
    # The window shows each frame as driven: as read before m, mirrored after it (a few were in flight).
    mirrored = [np.array_equal(cam, frames[k][:, ::-1]) for k, cam in enumerate(w.calls)]
    assert all(m or np.array_equal(cam, frames[k]) for k, (m, cam) in enumerate(zip(mirrored, w.calls)))
    first = mirrored.index(True)
    assert 8 <= first <= 14 and all(mirrored[first:]) and not any(mirrored[:first]), mirrored


def test_gains_flags_override_the_remembered_ones(tiny_target, face_clip, tmp_path, monkeypatch, capsys):
    from puppet.live.app import main
    from puppet.live.gains import Gains
    from puppet.live.settings import Settings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    Settings().remember(tiny_target, Gains(eyes=0.5, mouth=2.0))
    stats_path = tmp_path / "s.json"
    assert main(["--target", str(tiny_target), "--source", str(face_clip), "--backend", "torch", "--output",
                 str(tmp_path / "o.mp4"), "--max-frames", "2", "--gain", "mouth=0.8", "--no-idle",
                 "--stats", str(stats_path)]) == 0
    s = json.loads(stats_path.read_text())
    gains = s["gains"][str(tiny_target)]
    assert gains["eyes"] == 0.5 and gains["mouth"] == 0.8 and s["idle"] is False
    assert s["paced"] is False and s["audio_delay_ms"] is None  # a file: no tip
    assert "sound in sync" not in capsys.readouterr().out
    assert Settings().gains(tiny_target) == Gains(eyes=0.5, mouth=2.0)  # flags are for this run


def _read_all(path):
    cap = cv2.VideoCapture(str(path))
    while True:
        ok, f = cap.read()
        if not ok:
            break
        yield f
    cap.release()


def test_live_source_drops_stale_frames_instead_of_lagging(tiny_target, face_frames):
    """A camera-like source faster than the loop: frames are dropped, latency stays bounded."""
    from puppet.live.sources import FramesSource

    source = FramesSource(face_frames, fps=200.0, name="fast camera")
    rec = Recorder()
    _, stats = run_live(tiny_target, source, [rec], max_frames=80)
    s = stats.summary()
    assert s["frames_in"] == 80
    assert s["dropped"] > 0
    assert s["frames_out"] + s["dropped"] == s["frames_in"] == 80
    assert len(rec.frames) == s["frames_out"] >= 2
    # Without drops 80 frames queued behind a ~10-50 ms/frame loop would lag by seconds; with one-deep
    # slots a frame waits at most for the frames already in the stages.
    per_frame = s["stages_ms"]["track"]["p95"] + s["stages_ms"]["generate"]["p95"]
    assert s["latency_ms"]["p50"] < 4 * per_frame + 100


def test_relative_mode_ignores_where_the_driver_sits(tiny_target, face_frames):
    """The same performance, shifted and enlarged in the frame, drives the target the same way.

    Real mediapipe on both clips, then the live loop's Driver (One Euro, calibration, retarget,
    continuity); compared on the target landmarks that get rasterised.
    """
    from puppet.faces.track import Tracker
    from puppet.feed import Feeder
    from puppet.live.driver import Driver
    from puppet.live.loop import LiveTarget
    from puppet.target import load_target

    h, w = face_frames[0].shape[:2]
    big = np.full((h * 2, w * 2, 3), 90, np.uint8)
    m = np.float32([[1.4, 0, 0.7 * w], [0, 1.4, 0.5 * h]])  # 1.4x larger, off to the lower right
    moved = [cv2.warpAffine(f, m, (w * 2, h * 2), dst=big.copy(), borderMode=cv2.BORDER_TRANSPARENT)
             for f in face_frames]
    target = LiveTarget("tiny", t := load_target(tiny_target), None, Feeder(t))

    def drive(frames):
        d = Driver(target, absolute=False, fps=FPS)
        with Tracker("video") as tracker:
            return np.array([d(tracker(f), i / FPS) for i, f in enumerate(frames)])

    # Like a user: still for a moment first (the neutral is calibrated), then the performance.
    a, b = drive([face_frames[0]] * 10 + face_frames), drive([moved[0]] * 10 + moved)
    change = np.abs(a[18:] - a[0]).mean()  # pixels of the 64 px target crop
    same = np.abs(a - b).mean()
    print(f"target landmarks move {change:.3f} px; shifted driver vs original {same:.3f} px")
    assert change > 1.0  # the performance really moves the target
    assert same < 0.1 * change  # the shifted, enlarged driver moves it the same way (tracker noise aside)


class FlakyCamera:
    """A live source that stops delivering after 12 frames (unplugged) and comes back on the 2nd reopen."""

    live = True
    fps = FPS
    name = "flaky camera"

    def __init__(self, frames):
        from puppet.live.sources import FramesSource

        self.inner = FramesSource(frames, fps=FPS)
        self.n = 0
        self.unplugged = False
        self.reopens = 0

    def read(self):
        if self.unplugged:
            return None
        self.n += 1
        if self.n == 13:
            self.unplugged = True
            return None
        return self.inner.read()

    def reopen(self):
        self.reopens += 1
        if self.reopens >= 2:
            self.unplugged = False
        return not self.unplugged

    def close(self):
        pass


class KeepaliveRecorder(Recorder):
    keepalive = True  # like the virtual camera: fed the held frame while the source stalls


def test_unplugged_camera_retries_and_the_virtual_camera_keeps_the_held_frame(tiny_target, face_frames,
                                                                                logs):
    source = FlakyCamera(face_frames)
    rec = KeepaliveRecorder()
    targets, stats = run_live(tiny_target, source, [rec], max_frames=24)
    assert "flaky camera: no frames" in logs.text and "retrying" in logs.text
    assert "flaky camera: back" in logs.text
    assert source.reopens == 2
    s = stats.summary()
    assert s["frames_in"] == 24 and s["frames_out"] + s["dropped"] == 24
    # ~2 s without frames at 25 fps: the held frame went out again and again (not counted as output)
    assert s["held"] >= 20
    assert len(rec.frames) == 1 + s["frames_out"] + s["held"]
    # First the target's reference image, then only generated images (held ones included).
    np.testing.assert_array_equal(rec.frames[0], targets[0].target.ref_image)
    generated = {g.tobytes() for g in targets[0].backend.images}
    assert all(f.tobytes() in generated for f in rec.frames[1:])
    # the held stretch: one image repeated
    runs, longest = 1, 1
    for x, y in zip(rec.frames[1:], rec.frames[2:]):
        runs = runs + 1 if np.array_equal(x, y) else 1
        longest = max(longest, runs)
    assert longest >= s["held"]


def test_ctrl_c_exits_cleanly(tiny_target, tmp_path):
    """The demo source (no webcam) runs until Ctrl-C; then threads stop, files close, stats are written."""
    out, stats_path = tmp_path / "demo.mp4", tmp_path / "stats.json"
    p = _cli(["--target", str(tiny_target), "--source", "demo", "--backend", "torch", "--output", str(out),
              "--stats", str(stats_path)])
    started = time.monotonic()
    for line in p.stderr:  # wait for the startup line, then let it run a little
        if line.startswith("puppet: ") and "<- demo" in line:
            break
        assert time.monotonic() - started < 120, "no startup line"
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    stdout, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "puppet: stopped" in err and "end-to-end" in stdout
    s = json.loads(stats_path.read_text())
    assert s["frames_out"] >= 3 and s["source"] == "demo"
    # every frame read is accounted for: sent, dropped as stale, or in flight when Ctrl-C stopped the run
    assert s["frames_in"] == s["frames_out"] + s["dropped"] + s["discarded"], s
    assert f"frames in {s['frames_in']} = out {s['frames_out']} + dropped {s['dropped']}" in stdout
    assert count_frames(out) == s["frames_out"]
    assert not list(tmp_path.glob(".*.tmp*"))  # the mp4 was renamed into place, no temporary file left


def test_sigterm_while_recording_a_video_file_exits_cleanly(tiny_target, face_frames, tmp_path):
    """SIGTERM (a service stop, `kill`) to a real `python -m puppet.live` driving from a video file into an
    mp4: it stops mid-clip, exits 0, and the recording is a finalised, playable file of every frame sent."""
    from puppet.data.clips import write_video

    clip = write_video(tmp_path / "long.mp4", face_frames * 40, FPS)  # 960 frames: far longer than the wait
    out, stats_path = tmp_path / "rec" / "out.mp4", tmp_path / "stats.json"
    out.parent.mkdir()
    p = _cli(["--target", str(tiny_target), "--source", str(clip), "--backend", "torch", "--output", str(out),
              "--stats", str(stats_path)])
    try:
        started = time.monotonic()
        for line in p.stderr:  # the startup line, then let it record a little
            if line.startswith("puppet: ") and "<- " in line and "long.mp4" in line:
                break
            assert time.monotonic() - started < 120, "no startup line"
        time.sleep(0.5)
        assert p.poll() is None, "the clip ended before the signal"
        p.send_signal(signal.SIGTERM)
        stdout, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "puppet: stopped" in err and "Traceback" not in err and "end-to-end" in stdout
    s = json.loads(stats_path.read_text())
    assert 1 <= s["frames_out"] and s["frames_in"] < 40 * len(face_frames)  # stopped mid-clip
    assert s["frames_in"] == s["frames_out"] + s["dropped"] + s["discarded"], s
    assert count_frames(out) == s["frames_out"]  # every frame sent, in a file with its index written
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == s["frames_out"]
    cap.release()
    assert [f.name for f in out.parent.iterdir()] == ["out.mp4"]  # renamed into place, no hidden file left


def test_switching_targets_mid_run(tiny_target, face_clip, grace_hopper_path, tmp_path):
    """n/p: the next frames come from the other target's generator, from its own neutral."""
    from puppet.live.app import load_targets
    from puppet.live.loop import Live
    from puppet.live.sources import FileSource
    from puppet.live.stats import Stats

    second = make_tiny_target(tmp_path / "second.pt", grace_hopper_path, 1)
    targets = load_targets([str(tiny_target), str(second)], "torch", None)
    for t in targets:
        t.backend = Spy(t.backend)

    class Switcher(Recorder):
        def write(self, img):
            super().write(img)
            if len(self.frames) == 8:
                live.controls.target_index = 1  # what the window's n key does

    rec = Switcher()
    live = Live(targets, FileSource(face_clip), [rec], None, Stats())
    live.run()
    first, other = ({g.tobytes() for g in t.backend.images} for t in targets)
    assert len(rec.frames) == 24
    assert all(f.tobytes() in first for f in rec.frames[:8])
    assert all(f.tobytes() in other for f in rec.frames[-12:])  # a few frames were already in flight


def test_a_failing_stage_stops_the_loop_with_its_error(tiny_target, face_clip):
    """An error in a worker thread (here the generator, on its 5th frame) ends the run with that error,
    every thread stopped, instead of a hang or a silent half-run."""
    from puppet.errors import PuppetError
    from puppet.live.app import load_targets
    from puppet.live.loop import Live
    from puppet.live.sources import FileSource
    from puppet.live.stats import Stats

    targets = load_targets([str(tiny_target)], "torch", None)
    real = targets[0].backend

    class Failing:
        name = "failing"
        calls = 0

        inputs = real.inputs

        def generate(self, *inputs):
            Failing.calls += 1
            if Failing.calls == 5:
                raise PuppetError("gpu: lost; restart")
            return real.generate(*inputs)

    targets[0].backend = Failing()
    rec = Recorder()
    live = Live(targets, FileSource(face_clip), [rec], None, Stats())
    before = threading.active_count()
    with pytest.raises(PuppetError, match="gpu: lost"):
        live.run()
    assert 3 <= len(rec.frames) <= 4
    assert threading.active_count() <= before  # capture, process and generate threads are gone


def test_slots_drop_for_live_and_block_for_files():
    from puppet.live.slots import Slot

    stop = threading.Event()
    live = Slot(True, stop)
    assert live.put(1) is False
    assert live.put(2) is True  # the stale 1 is dropped
    assert live.get(0.1) == 2 and live.get(0.01) is None

    f = Slot(False, stop)
    f.put(1)
    got = []
    th = threading.Thread(target=lambda: got.append(f.put(2)))
    th.start()
    time.sleep(0.1)
    assert th.is_alive()  # waits for the consumer: no frame of a file is lost
    assert f.get(1.0) == 1
    th.join(1.0)
    assert got == [False] and f.get(1.0) == 2
    stop.set()
    assert f.get(1.0) is None


def _default_sigint() -> None:
    # As in a terminal: a shell's background job (e.g. CI started with `&`) ignores SIGINT, its children
    # inherit that, and Python then installs no KeyboardInterrupt handler at all.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "puppet.live", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint)


def test_bad_inputs_give_one_line_errors(tiny_target, face_clip, tmp_path):
    """Run as the user would (subprocesses, side by side): exit 2 and exactly one line on stderr.

    These are the cases where a library (OpenCV, FFmpeg, pyvirtualcam) could add its own lines.
    """
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    t, clip = str(tiny_target), str(face_clip)
    ok = ["--backend", "torch", "--output", str(tmp_path / "o.mp4")]
    cases = {
        "garbage.mp4: can't read any video frame": ["--target", t, "--source", str(garbage), *ok],
        "camera 7: can't open": ["--target", t, "--source", "7", *ok],
        "modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=puppet":
            ["--target", t, "--source", clip, "--backend", "torch", "--output", "virtualcam"],
    }
    procs = {k: _cli(v) for k, v in cases.items()}
    for expect, p in procs.items():
        out, err = p.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert p.returncode == 2, (expect, err)
        assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], (expect, err)
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("args,expect", [
    (["--target", "MISSING"], "missing.pt: no such target file"),
    (["--target", "BAD"], "bad.pt: not a readable target file"),
    (["--source", "nope.mp4"], "nope.mp4: no such video file"),
    (["--backend", "foo"], "--backend foo: unknown"),
    pytest.param(["--backend", "tensorrt"], "tensorrt: not installed",
                 marks=pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                                          reason="TensorRT is installed here")),
    (["--output", "x.txt"], "--output x.txt: unknown output"),
    (["--max-frames", "0"], "--max-frames 0: must be at least 1"),
    (["--gain", "mouth=5"], "--gain mouth=5: the gain must be from 0 to 3"),
    (["--gain", "nose=1"], "--gain nose=1: give PART=VALUE with PART one of eyes, brows, mouth"),
    (["--vcam-backend", "nonesuch", "--output", "virtualcam"], "--vcam-backend nonesuch: not available"),
    (["--output", "window"], "window: "),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_in_process(tiny_target, face_clip, tmp_path, monkeypatch, capsys, args, expect):
    """The same errors through run_cli in this process (cheaper than a subprocess each)."""
    from puppet.live.app import main

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    args = [{"BAD": str(bad), "MISSING": str(tmp_path / "missing.pt")}.get(a, a) for a in args]
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    base = ["--source", str(face_clip), "--backend", "torch"]
    if args[0] != "--target":  # a good target unless the case is about the target
        base = ["--target", str(tiny_target)] + base
    with pytest.raises(SystemExit) as e:
        run_cli(main, base + args)
    assert e.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], lines


def test_window_dropped_with_a_warning_when_another_output_exists(tiny_target, face_clip, tmp_path,
                                                                    monkeypatch, logs):
    from puppet.live.app import main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    out = tmp_path / "o.mp4"
    assert main(["--target", str(tiny_target), "--source", str(face_clip), "--backend", "torch",
                 "--output", "window", "--output", str(out), "--max-frames", "3"]) == 0
    assert "window: no display" in logs.text and "without the preview" in logs.text
    assert count_frames(out) == 3


def test_vcam_setup_hint_names_the_os_fix():
    from puppet.live.sinks import vcam_setup_hint

    hint = vcam_setup_hint()
    if sys.platform.startswith("linux"):
        assert "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=puppet" in hint
    else:
        assert "OBS" in hint



def test_absolute_mode_drives_with_the_drivers_own_landmarks(tiny_target, face_frames, face_clip, tmp_path):
    """--absolute: the driver's landmarks in its (smoothed) crop, as in the paper. End to end through the
    CLI, and the Driver against the crop geometry."""
    from puppet.faces.crop import Crop
    from puppet.faces.track import Tracker
    from puppet.feed import Feeder
    from puppet.live.app import main
    from puppet.live.driver import Driver
    from puppet.live.loop import LiveTarget
    from puppet.target import load_target

    out = tmp_path / "abs.mp4"
    assert main(["--target", str(tiny_target), "--source", str(face_clip), "--backend", "torch", "--absolute",
                 "--output", str(out), "--max-frames", "6"]) == 0
    assert count_frames(out) == 6

    target = LiveTarget("tiny", t := load_target(tiny_target), None, Feeder(t))
    d = Driver(target, absolute=True, fps=FPS)
    with Tracker("video") as tracker:
        lms = tracker(face_frames[0])
        for i in range(12):  # a still driver: the crop and the filter settle on its landmarks
            got = d(lms, i / FPS)
    expected = Crop.from_landmarks(lms).to_crop(lms, 64)
    np.testing.assert_allclose(got, expected, atol=0.05)


def test_preview_panel_shows_camera_sketch_and_output_side_by_side():
    from puppet.live.sinks import fit
    from puppet.live.sinks import preview_panel as compose

    cam = np.full((480, 640, 3), 100, np.uint8)
    sketch = np.zeros((64, 64, 3), np.uint8)
    out = np.full((64, 64, 3), 200, np.uint8)
    lms = np.full((68, 2), 240.0)
    panel = compose(cam, sketch, out, 120, landmarks=lms, lines=["12.0 fps"])
    assert panel.shape == (120, 160 + 120 + 120, 3)
    np.testing.assert_array_equal(panel[:, 280:], fit(out, 120, 120))
    assert (panel[55:65, 55:65, 1] == 255).any()  # the landmark dots on the camera pane
    plain = compose(cam, sketch, out, 120)
    assert not (plain[:, :160, 1] == 255).any()


def test_a_face_crop_larger_than_the_generator_end_to_end(astronaut_path, face_clip, tmp_path):
    """An appearance target whose photo has more pixels than its 64² generator: puppet.live warps and pastes
    the face at the size it is shown in the 1280x720 frame (up to --face-size: 512² here), the generator
    still runs at 64 (onnxruntime and torch), through a real mp4. The face in the output is much sharper
    than the 64² path's, and keeps most of the detail of the picture around it."""
    from _util import random_target

    from puppet.faces.images import read_image
    from puppet.live.app import main
    from puppet.live.compose import Compositor
    from puppet.live.framing import Framing, face_size
    from puppet.target import default_face_size, save_target

    # a 1536² photo with detail at its own resolution (a 3-pixel grain over the upscaled astronaut)
    photo = cv2.resize(read_image(astronaut_path), (1536, 1536), interpolation=cv2.INTER_CUBIC)
    grain = cv2.resize(np.random.default_rng(0).normal(0.0, 12.0, (512, 512)), (1536, 1536),
                       interpolation=cv2.INTER_CUBIC)[..., None]
    photo = np.clip(photo + grain, 0, 255).astype(np.uint8)
    t = random_target(config="tiny-warp", photo=photo, delta=None)  # correction 0: the output is the warp
    t.face_size = default_face_size(t.config, t.picture)
    assert t.face_size == 512
    path = tmp_path / "sharp.pt"
    save_target(path, t)
    framing = Framing(1280, 720, "fill")  # the face as large as a close portrait shows it
    assert face_size(t, framing) == 512 and face_size(t, framing, cap=300) == 300
    assert face_size(t, Framing(1280, 720, "fit")) < 512  # shown smaller: a smaller crop
    assert face_size(t, None) == 64  # the square crop output: the generator's own
    runs = {}
    for cap, backend in ((512, "onnxruntime"), (64, "torch")):
        out, stats = tmp_path / f"out{cap}.mp4", tmp_path / f"stats{cap}.json"
        assert main(["--target", str(path), "--source", str(face_clip), "--output", str(out), "--backend",
                     backend, "--fit", "fill", "--face-size", str(cap), "--stats", str(stats)]) == 0
        runs[cap] = json.loads(stats.read_text()), list(_read_all(out))
    (s, frames), (s64, frames64) = runs[512], runs[64]
    assert s["face_size"] == 512 and s64["face_size"] == 64 and s["image_size"] == s64["image_size"] == 64
    assert len(frames) == len(frames64) == s["frames_out"] == 24
    assert all(f.shape == (720, 1280, 3) for f in frames)
    # the generator's correction resized onto the full-size warp, once per generated frame
    assert s["stages_ms"]["correction"]["n"] == s["stages_ms"]["generate"]["n"] > 0
    assert s64["stages_ms"]["correction"]["n"] == 0
    comp = Compositor.for_target(t, framing, size=512)
    r0, c0, r1, c1 = comp.core  # where the mask is 1: the face alone
    x0, y0 = comp.bbox[:2]

    def sharpness(img):  # variance of the Laplacian there
        part = img[y0 + r0:y0 + r1, x0 + c0:x0 + c1]
        return cv2.Laplacian(cv2.cvtColor(part, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()

    big, small = np.median([sharpness(f) for f in frames]), np.median([sharpness(f) for f in frames64])
    assert big > 3 * small, (big, small)
    # the picture itself through the same video encoder (which smooths the finest grain away)
    from puppet.data.clips import write_video

    encoded = write_video(tmp_path / "picture.mp4", [comp.background] * 3, FPS)
    picture = np.median([sharpness(f) for f in _read_all(encoded)])
    # within a factor 3 of it (the crop, the warp and the paste-back each resample it, bilinear); the 64²
    # path's is under a tenth of it
    assert big > picture / 3, (big, picture)


def test_face_carries_the_generators_correction_onto_the_full_size_warp(astronaut_path):
    """At a face size above the generator's, the face is the full-size warp plus the generator's correction
    (its image minus the warp it was given) resized: where it corrects nothing, the full-size warp itself;
    shrunk back to the generator's size, its image within rounding."""
    from _util import random_target

    from puppet.faces.images import to_tensor
    from puppet.faces.pose import Motion, move
    from puppet.feed import Feeder

    t = random_target(config="tiny-warp", photo=astronaut_path)
    feeder = Feeder(t, 200)
    assert (feeder.size, feeder.face_size) == (64, 200)
    feed = feeder(move(t.ref_landmarks, Motion(mouth=0.6, yaw=8)))
    big, small = feed.warped, feed.warped_small
    assert big.shape == (200, 200, 3) and small.shape == (64, 64, 3)
    assert len(feed.tensors) == 2 and torch.equal(feed.tensors[1], to_tensor(small))
    assert set(feed.seconds) == {"rasterise", "warp"}
    np.testing.assert_array_equal(small, cv2.resize(big, (64, 64), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(feeder.face(small, feed), big)
    ramp = np.linspace(-40, 40, 64)[None, :, None]  # a smooth correction, bright on the right
    generated = np.clip(small + ramp, 0, 255).astype(np.uint8)
    face = feeder.face(generated, feed)
    assert face.shape == (200, 200, 3) and face.dtype == np.uint8
    back = cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(back.astype(int) - generated).mean() < 2.0
    assert face[:, 150:].astype(int).mean() - big[:, 150:].astype(int).mean() > 20
    at_size = Feeder(t)  # at the generator's size the face is its image itself
    assert at_size.face(generated, at_size(t.ref_landmarks)) is generated

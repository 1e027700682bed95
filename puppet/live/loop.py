"""The live loop: webcam -> landmarks -> sketch -> generator -> virtual camera / window / file.

Threads (each stage overlaps the others):
    capture ─slot─▶ process (track, One Euro, retarget, rasterise[, warp]) ─slot─▶ generate ─slot─▶ output
    (the output stage is the main thread: GUI toolkits want the window there)
The process stage builds the generator's inputs with the target's feeder (puppet.feed: the sketch, and for
a generator with the appearance path the target's reference picture warped to the driving landmarks), the
generate stage runs the backend on them as they come. The warp runs at the target's face size (chosen from
how large the face is shown in the output frame: puppet.live.framing.face_size), the generator at its own
size; the feeder carries the generator's correction onto the full-size warp.
A slot holds one item. For a live source (camera, demo) a new item replaces a waiting one, so a slow stage
skips stale frames instead of building up latency (each skip counts as dropped). For a file, slots block:
every frame is processed, in order, one output frame per input frame.

The output stage composes each generated face into the output frame (puppet.live.compose: pasted back
into the target's whole picture, framed at 1280x720 by default), or passes the square crop through as it is
(`--output-mode crop`: targets without a compositor). The outputs only ever get those frames, or, before the
first one, the target's own picture (its reference crop in crop mode): the camera frame travels with each
item for the local preview window alone.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from puppet.live.driver import Driver
from puppet.live.gains import PARTS, STEP, Gains
from puppet.live.sinks import PreviewWindow
from puppet.live.slots import EOS, Slot
from puppet.live.sources import Captured, Source
from puppet.live.stats import Stats

log = logging.getLogger(__name__)


@dataclass
class Item:
    index: int
    cap: Captured
    target_index: int = 0  # which of Live.targets drives this frame
    frame: np.ndarray | None = None  # the (mirrored) camera frame: for the preview window only
    landmarks: np.ndarray | None = None  # driver landmarks in frame pixels (None: no face)
    drive: np.ndarray | None = None  # landmarks in the target's crop pixels
    sketch: np.ndarray | None = None  # uint8 BGR: for the preview window
    feed: object = None  # puppet.feed.Feed: the generator's inputs for `drive`
    output: np.ndarray | None = None  # uint8 BGR generated image


@dataclass
class LiveTarget:
    path: str
    target: object  # puppet.target.Target
    backend: object  # puppet.live.runtime backend
    feeder: object  # puppet.feed.Feeder: the generator's inputs, the face crop at its size
    compositor: object = None  # puppet.live.compose.Compositor; None: the square crop goes out as it is
    gains: Gains = field(default_factory=Gains)  # motion strength per part (puppet.live.gains)

    @property
    def size(self) -> int:
        """The generator's image size (its sketch, its input warp and its output)."""
        return int(self.target.image_size)

    @property
    def face(self) -> int:
        """The side of the face crop that is warped and pasted into the output."""
        return self.feeder.face_size

    @property
    def ref(self) -> np.ndarray:
        return np.asarray(self.target.ref_landmarks, np.float32)


@dataclass
class Controls:
    """Hotkey state, set by the window (main thread), read by the process thread."""

    calibrate: threading.Event = field(default_factory=threading.Event)
    mirror: bool = False
    target_index: int = 0
    part: int = 0  # the gain the +/- keys change: an index into puppet.live.gains.PARTS


class Live:
    def __init__(self, targets: list[LiveTarget], source: Source, outputs: list, window: PreviewWindow | None,
                 stats: Stats, mirror: bool = False, absolute: bool = False, max_frames: int | None = None,
                 idle: bool = True, settings=None, openness: bool = True):
        """idle: the idle motion while no face drives (puppet.live.idle); settings: a
        puppet.live.settings.Settings that remembers the gains changed with the keys (None: not kept);
        openness: the eyes and mouth follow how open the driver's are (puppet.live.retarget)."""
        from puppet.faces.track import Tracker

        self.targets = targets
        self.source = source
        self.outputs = outputs
        self.window = window
        self.stats = stats
        self.max_frames = max_frames
        self.controls = Controls(mirror=mirror)
        self.stop = threading.Event()
        live = source.live
        self.q_frames = Slot(live, self.stop)
        self.q_sketch = Slot(live, self.stop)
        self.q_out = Slot(live, self.stop)
        self.tracker = Tracker(mode="video")
        self.driver = Driver(targets[0], absolute, source.fps, gains=targets[0].gains, idle=idle,
                             openness=openness)
        self.settings = settings
        self.error: BaseException | None = None
        first = targets[0]  # what the outputs show until the first generated frame: the target's picture
        self.held = first.target.ref_image if first.compositor is None else first.compositor.background
        self._composed = (None, None)  # (generated image, its output frame): a reused image isn't redone
        self._mirror = mirror
        self._target_index = 0

    # -- threads -------------------------------------------------------------------------------------
    def _guard(self, fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - handed to the main thread, which re-raises it
                self.error = e
                self.stop.set()

        return run

    def _capture(self) -> None:
        n = 0
        last_t = None
        fps_ema = None
        while not self.stop.is_set():
            if self.max_frames is not None and n >= self.max_frames:
                break
            cap = self.source.read()
            if cap is None:
                if not self.source.live:
                    break
                self._camera_lost()
                continue
            self.stats.frame_in(cap.t)
            self.stats.stage("capture", cap.read_s)
            if self.source.live:
                if last_t is not None and cap.t > last_t:
                    fps = 1.0 / (cap.t - last_t)
                    fps_ema = fps if fps_ema is None else 0.9 * fps_ema + 0.1 * fps
                    self.stats.source_fps(fps_ema)
                last_t = cap.t
            if self.q_frames.put(Item(n, cap)):
                self.stats.count("dropped")
            n += 1
        if not self.source.live:
            self.stats.source_fps(self.source.fps)
        self._put_eos(self.q_frames)

    def _put_eos(self, slot: Slot) -> None:
        if slot.put(EOS):
            self.stats.count("dropped")

    def _camera_lost(self) -> None:
        log.info(f"{self.source.name}: no frames (unplugged?); retrying every second, "
            f"the outputs hold the last frame")
        while not self.stop.is_set():
            self.stop.wait(1.0)
            if self.stop.is_set():
                return
            if self.source.reopen():
                log.info(f"{self.source.name}: back")
                return

    def _process(self) -> None:
        from puppet.faces.track import Tracker

        while not self.stop.is_set():
            item = self.q_frames.get(0.1)
            if item is None:
                continue
            if item is EOS:
                self._put_eos(self.q_sketch)
                return
            c = self.controls
            if c.mirror != self._mirror:
                self._mirror = c.mirror
                self.driver.recalibrate()  # the neutral was recorded the other way round
                self.tracker.close()  # video-mode tracking follows the last face, now mirrored: start over
                self.tracker = Tracker(mode="video")
            if c.calibrate.is_set():
                c.calibrate.clear()
                self.driver.recalibrate()
            if c.target_index != self._target_index:
                self._target_index = c.target_index
                self.driver.set_target(self.targets[self._target_index])
            frame = item.cap.frame
            if self._mirror:
                frame = cv2.flip(frame, 1)
            # (the keys replace the gains: read them once a frame)
            self.driver.gains = self.targets[self._target_index].gains
            t0 = time.perf_counter()
            lms = self.tracker(frame)
            t1 = time.perf_counter()
            if lms is None:
                self.stats.count("no_face")
            drive = self.driver(lms, item.cap.media_t)
            t2 = time.perf_counter()
            feed = self.targets[self._target_index].feeder(drive)
            self.stats.stage("track", t1 - t0)
            self.stats.stage("filter_retarget", t2 - t1)
            for stage, seconds in feed.seconds.items():  # rasterise, warp
                self.stats.stage(stage, seconds)
            item.target_index, item.frame, item.landmarks = self._target_index, frame, lms
            item.drive, item.sketch, item.feed = drive, feed.sketch, feed
            if self.q_sketch.put(item):
                self.stats.count("dropped")

    def _generate(self) -> None:
        import torch

        # inference_mode is per thread: set it here, whatever the backend does itself
        with torch.inference_mode():
            self._generate_loop()

    def _generate_loop(self) -> None:
        import torch

        from puppet.faces.images import to_bgr

        last_key, last_out = None, None
        while not self.stop.is_set():
            item = self.q_sketch.get(0.1)
            if item is None:
                continue
            if item is EOS:
                self._put_eos(self.q_out)
                return
            key = (item.target_index, item.drive.tobytes())
            if key == last_key:
                # Same landmarks (e.g. eased all the way back to neutral): same image, no need to run G.
                item.output = last_out
                self.stats.count("reused")
            else:
                t0 = time.perf_counter()
                lt = self.targets[item.target_index]
                img = lt.backend.generate(*item.feed.tensors)
                if not isinstance(img, torch.Tensor):  # e.g. a numpy array from onnxruntime
                    img = torch.from_numpy(np.asarray(img))
                item.output = to_bgr(img[0] if img.dim() == 4 else img)
                t1 = time.perf_counter()
                self.stats.stage("generate", t1 - t0)
                if lt.face != lt.size:
                    item.output = lt.feeder.face(item.output, item.feed)
                    self.stats.stage("correction", time.perf_counter() - t1)
                last_key, last_out = key, item.output
            item.feed = None
            if self.q_out.put(item):
                self.stats.count("dropped")

    # -- main thread: outputs and the window -----------------------------------------------------------
    def _compose(self, item: Item) -> np.ndarray:
        """The output frame for a generated image: composed into its target's picture, or the crop itself."""
        comp = self.targets[item.target_index].compositor
        if comp is None:
            return item.output
        face, frame = self._composed
        if face is item.output:  # the generator reused its last image (the same landmarks)
            return frame
        t0 = time.perf_counter()
        frame = comp(item.output)
        self.stats.stage("compose", time.perf_counter() - t0)
        self._composed = (item.output, frame)
        return frame

    def _send(self, img: np.ndarray) -> None:
        for sink in self.outputs:
            sink.write(img)

    def _hotkey(self, action: str | None) -> bool:
        """Apply a hotkey; True means quit."""
        c = self.controls
        if action == "quit":
            return True
        if action == "calibrate":
            c.calibrate.set()
            log.info("recalibrating: hold still with a neutral face")
        elif action == "mirror":
            c.mirror = not c.mirror
            log.info(f"mirror {'on' if c.mirror else 'off'}")
        elif action in ("next", "previous") and len(self.targets) > 1:
            c.target_index = (c.target_index + (1 if action == "next" else -1)) % len(self.targets)
            log.info(f"target {self.targets[c.target_index].path}")
        elif action == "gain_part":
            c.part = (c.part + 1) % len(PARTS)
        elif action in ("gain_up", "gain_down", "gain_reset"):
            t, part = self.targets[c.target_index], PARTS[c.part]
            value = {"gain_up": getattr(t.gains, part) + STEP, "gain_down": getattr(t.gains, part) - STEP,
                     "gain_reset": 1.0}[action]
            gains = t.gains.set(part, value)
            if gains != t.gains:
                t.gains = gains
                log.info(f"{part} gain {getattr(gains, part):.1f}")
                if self.settings is not None:
                    self.settings.remember(t.path, gains)
        return False

    def status_lines(self) -> list[str]:
        """The preview's always-shown line: the current target's gains, the selected one bracketed."""
        c = self.controls
        gains = self.targets[c.target_index].gains.describe(PARTS[c.part])
        return [f"{gains}   (g part, +/- change, 0 reset)"]

    def _output_loop(self) -> None:
        vcams = [s for s in self.outputs if getattr(s, "keepalive", False)]
        for v in vcams:  # the apps see the target's face straight away, not a blank camera
            v.write(self.held)
        interval = 1.0 / max(self.source.fps, 1.0)
        last_sent = time.perf_counter()
        lines, lines_t = None, 0.0
        while not self.stop.is_set():
            item = self.q_out.get(0.01 if self.window else 0.05)
            now = time.perf_counter()
            if item is EOS:
                return
            if item is None:
                # No new frame (camera stalled or unplugged, or still starting): keep the virtual camera fed
                # with the held frame so the call shows the face, not a frozen or black picture.
                if vcams and now - last_sent > max(0.5, 2 * interval):
                    for v in vcams:
                        v.write(self.held)
                    self.stats.count("held")
                    last_sent = now - 0.5 + interval
                if self.window and self._hotkey(self.window.poll(1)):
                    return
                continue
            frame = self._compose(item)
            t0 = time.perf_counter()
            self._send(frame)
            t_out = time.perf_counter()
            self.stats.frame_out(item.cap.t, t_out)
            self.held = frame
            last_sent = t_out
            if self.window:
                if self.window.show_stats and t_out - lines_t > 0.5:
                    lines, lines_t = self.stats.overlay_lines(), t_out
                self.window.show(item.frame, item.sketch, frame, item.landmarks, lines, self.status_lines())
                if self._hotkey(self.window.poll(1)):
                    return
            self.stats.stage("output", time.perf_counter() - t0)

    def run(self) -> int | None:
        """Run until the source ends, q, an error (re-raised here) or a signal: returns the signal (SIGINT,
        SIGTERM) that stopped it, else None.

        Ctrl-C and SIGTERM (a service stop, `kill`) only set the stop flag, the one way every thread stops:
        a KeyboardInterrupt raised at a random point of the main thread could leave a slot's lock held (the
        other threads then block until their join times out) or split a frame's writing from its counting."""
        got: list[int] = []
        saved = {}
        if threading.current_thread() is threading.main_thread():
            def on_signal(signum, _frame):
                got.append(signum)
                self.stop.set()

            # (a signal the process ignores, as a shell's background job ignores SIGINT, stays ignored)
            saved = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)
                     if signal.getsignal(s) is not signal.SIG_IGN}
        threads = [threading.Thread(target=self._guard(fn), name=name, daemon=True)
                   for name, fn in (("capture", self._capture), ("process", self._process),
                                    ("generate", self._generate))]
        try:
            for t in threads:
                t.start()
            self._output_loop()
        finally:
            self.stop.set()
            for t in threads:
                if t.ident is not None:  # started
                    t.join(timeout=15)
            # Frames read but neither sent nor dropped: in flight when the run stopped, discarded
            slots = (self.q_frames, self.q_sketch, self.q_out)
            self.stats.count("discarded", sum(q.lost + q.drain() for q in slots))
            self.tracker.close()
            for s, h in saved.items():
                signal.signal(s, h)
        if self.error is not None:
            raise self.error
        return got[0] if got else None

"""The live loop: webcam -> landmarks -> sketch -> generator -> virtual camera / window / file.

    python -m puppet.live --target mona.pt [--target other.pt ...] [--source 0|/dev/videoN|clip.mp4|demo]
        [--output virtualcam|window|out.mp4 ...] [--backend auto|tensorrt|torch|onnxruntime] [--mirror]
        [--absolute] [--stats stats.json] [--max-frames N] [--vcam-device DEV] [--vcam-backend NAME]
        [--pad-720p]

Threads (each stage overlaps the others):
    capture ─slot─▶ process (track, One Euro, retarget, rasterise) ─slot─▶ generate ─slot─▶ output
    (the output stage is the main thread: GUI toolkits want the window there)
A slot holds one item. For a live source (camera, demo) a new item replaces a waiting one, so a slow stage
skips stale frames instead of building up latency (each skip counts as dropped). For a file, slots block:
every frame is processed, in order, one output frame per input frame.

The outputs only ever get generated images, or the target's reference image before the first one: the
camera frame travels with each item for the local preview window alone.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from puppet.errors import PuppetError, run_cli
from puppet.retarget import Continuity, NeutralCalibrator, RelativeRetargeter
from puppet.sinks import VIDEO_EXTS, FileSink, PreviewWindow, VirtualCamSink
from puppet.sources import Captured, Source, open_source
from puppet.stats import Stats

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")
# The One Euro filter works on the target's landmarks scaled to this size, so its parameters
# (min_cutoff in Hz, beta per pixel/s) mean the same at every image_size.
FILTER_UNITS = 256.0
EOS = object()  # end of stream: the file ended, --max-frames reached or stop requested


def log(msg: str) -> None:
    print(f"puppet: {msg}", file=sys.stderr, flush=True)


class Slot:
    """A one-deep queue between two threads.

    drop=True (live sources): put() replaces a waiting item and returns True (the stale one was dropped).
    drop=False (files): put() waits until the slot is free. Both give up when `stop` is set.
    """

    def __init__(self, drop: bool, stop: threading.Event):
        self.drop = drop
        self.stop = stop
        self._item = None
        self._full = False
        self._cond = threading.Condition()

    def put(self, item) -> bool:
        with self._cond:
            dropped = False
            if self._full:
                if self.drop:
                    dropped = self._item is not EOS
                else:
                    while self._full and not self.stop.is_set():
                        self._cond.wait(0.05)
                    if self.stop.is_set():
                        return False
            self._item, self._full = item, True
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float):
        """The item, or None after `timeout` seconds with nothing (or when stopping)."""
        with self._cond:
            end = time.perf_counter() + timeout
            while not self._full:
                left = end - time.perf_counter()
                if left <= 0 or self.stop.is_set():
                    return None
                self._cond.wait(min(left, 0.05))
            item, self._item, self._full = self._item, None, False
            self._cond.notify_all()
            return item


@dataclass
class Item:
    index: int
    cap: Captured
    target: int = 0
    frame: np.ndarray | None = None  # the (mirrored) camera frame: for the preview window only
    landmarks: np.ndarray | None = None  # driver landmarks in frame pixels (None: no face)
    drive: np.ndarray | None = None  # landmarks in the target's crop pixels
    sketch: np.ndarray | None = None  # uint8 BGR
    sketch_t: object = None  # (1, 3, S, S) tensor
    output: np.ndarray | None = None  # uint8 BGR generated image


@dataclass
class LiveTarget:
    path: str
    target: object  # puppet.target.Target
    backend: object  # export.runtime backend

    @property
    def size(self) -> int:
        return int(self.target.image_size)

    @property
    def ref(self) -> np.ndarray:
        return np.asarray(self.target.ref_landmarks, np.float32)


@dataclass
class Controls:
    """Hotkey state, set by the window (main thread), read by the process thread."""

    calibrate: threading.Event = field(default_factory=threading.Event)
    mirror: bool = False
    target: int = 0


class Driver:
    """Per frame: driver landmarks (or None) -> the target's landmarks (filter, retarget, face-lost logic)."""

    def __init__(self, target: LiveTarget, absolute: bool, fps: float):
        from puppet.crop import CropSmoother
        from puppet.filter import OneEuroFilter

        self.absolute = absolute
        self.calibrator = NeutralCalibrator()
        self.crop = CropSmoother(fps=fps)
        self.filter = OneEuroFilter(min_cutoff=1.0, beta=0.05)
        self.neutral: np.ndarray | None = None
        self._blend = False
        self.set_target(target)

    def set_target(self, target: LiveTarget) -> None:
        self.size = target.size
        self.retarget = RelativeRetargeter(target.ref)
        if self.neutral is not None:
            self.retarget.set_neutral(self.neutral)
        # A fresh Continuity starts from the new target's neutral and blends into the live pose.
        self.continuity = Continuity(target.ref)
        self.filter.reset()

    def recalibrate(self) -> None:
        """Record a new neutral (relative) / start a new crop (absolute) from the next frames."""
        self.calibrator.reset()
        self.crop.reset()
        self._blend = True

    def __call__(self, lms: np.ndarray | None, t: float) -> np.ndarray:
        if lms is None:
            self.filter.reset()
            self.calibrator.run.clear()  # steadiness has to be consecutive frames of a face
            return self.continuity(None, t)
        if self._blend:  # after a recalibration the pose may jump: blend into it instead
            self._blend = False
            self.continuity.jump(t)
        if self.absolute:
            mapped = self.crop(lms, t).to_crop(lms, self.size)
        else:
            neutral = self.calibrator.update(lms)
            if neutral is not None:
                if self.neutral is not None:
                    self.continuity.jump(t)  # the new neutral moves the pose: blend, don't jump
                self.neutral = neutral
                self.retarget.set_neutral(neutral)
            mapped = self.retarget(lms)
        k = FILTER_UNITS / self.size
        smooth = self.filter(mapped * k, t) / k
        return self.continuity(smooth, t)


class Live:
    def __init__(self, targets: list[LiveTarget], source: Source, outputs: list, window: PreviewWindow | None,
                 stats: Stats, mirror: bool = False, absolute: bool = False, max_frames: int | None = None):
        from puppet.track import Tracker

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
        self.driver = Driver(targets[0], absolute, source.fps)
        self.error: BaseException | None = None
        self.held = targets[0].target.ref_image  # what the outputs show until the first generated frame
        self._mirror = mirror
        self._target = 0

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
        log(f"{self.source.name}: no frames (unplugged?); retrying every second, "
            f"the outputs hold the last frame")
        while not self.stop.is_set():
            self.stop.wait(1.0)
            if self.stop.is_set():
                return
            if self.source.reopen():
                log(f"{self.source.name}: back")
                return

    def _process(self) -> None:
        from puppet.images import to_tensor
        from puppet.sketch import draw_sketch
        from puppet.track import Tracker

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
            if c.target != self._target:
                self._target = c.target
                self.driver.set_target(self.targets[self._target])
            frame = item.cap.frame
            if self._mirror:
                frame = cv2.flip(frame, 1)
            t0 = time.perf_counter()
            lms = self.tracker(frame)
            t1 = time.perf_counter()
            if lms is None:
                self.stats.count("no_face")
            drive = self.driver(lms, item.cap.media_t)
            t2 = time.perf_counter()
            size = self.targets[self._target].size
            sketch = draw_sketch(drive, size)
            sketch_t = to_tensor(sketch)
            t3 = time.perf_counter()
            self.stats.stage("track", t1 - t0)
            self.stats.stage("filter_retarget", t2 - t1)
            self.stats.stage("rasterise", t3 - t2)
            item.target, item.frame, item.landmarks = self._target, frame, lms
            item.drive, item.sketch, item.sketch_t = drive, sketch, sketch_t
            if self.q_sketch.put(item):
                self.stats.count("dropped")

    def _generate(self) -> None:
        import torch

        # inference_mode is per thread: set it here, whatever the backend does itself
        with torch.inference_mode():
            self._generate_loop()

    def _generate_loop(self) -> None:
        import torch

        from puppet.images import to_bgr

        last_key, last_out = None, None
        while not self.stop.is_set():
            item = self.q_sketch.get(0.1)
            if item is None:
                continue
            if item is EOS:
                self._put_eos(self.q_out)
                return
            key = (item.target, item.drive.tobytes())
            if key == last_key:
                # Same landmarks (e.g. eased all the way back to neutral): same image, no need to run G.
                item.output = last_out
                self.stats.count("reused")
            else:
                t0 = time.perf_counter()
                img = self.targets[item.target].backend.generate(item.sketch_t)
                if not isinstance(img, torch.Tensor):  # e.g. a numpy array from onnxruntime
                    img = torch.from_numpy(np.asarray(img))
                item.output = to_bgr(img[0] if img.dim() == 4 else img)
                self.stats.stage("generate", time.perf_counter() - t0)
                last_key, last_out = key, item.output
            item.sketch_t = None
            if self.q_out.put(item):
                self.stats.count("dropped")

    # -- main thread: outputs and the window -----------------------------------------------------------
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
            log("recalibrating: hold still with a neutral face")
        elif action == "mirror":
            c.mirror = not c.mirror
            log(f"mirror {'on' if c.mirror else 'off'}")
        elif action in ("next", "previous") and len(self.targets) > 1:
            c.target = (c.target + (1 if action == "next" else -1)) % len(self.targets)
            log(f"target {self.targets[c.target].path}")
        return False

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
            t0 = time.perf_counter()
            self._send(item.output)
            t_out = time.perf_counter()
            self.held = item.output
            last_sent = t_out
            self.stats.frame_out(item.cap.t, t_out)
            if self.window:
                if self.window.show_stats and t_out - lines_t > 0.5:
                    lines, lines_t = self.stats.overlay_lines(), t_out
                self.window.show(item.frame, item.sketch, item.output, item.landmarks, lines)
                if self._hotkey(self.window.poll(1)):
                    return
            self.stats.stage("output", time.perf_counter() - t0)

    def run(self) -> None:
        threads = [threading.Thread(target=self._guard(fn), name=name, daemon=True)
                   for name, fn in (("capture", self._capture), ("process", self._process),
                                    ("generate", self._generate))]
        for t in threads:
            t.start()
        try:
            self._output_loop()
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=15)
            self.tracker.close()
        if self.error is not None:
            raise self.error


def parse_args(argv: list[str]) -> argparse.Namespace:
    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line, exit 2, like every other bad input
            raise PuppetError(f"{self.prog}: {message}; see --help")

    p = Parser(prog="python -m puppet.live", description="Drive a target face with your webcam, live.",
               epilog="Preview window keys: c recalibrate the neutral face, m mirror, n/p next/previous "
                      "target, l landmarks, s stats, q or Esc quit.")
    p.add_argument("--target", action="append", required=True, metavar="FILE.pt",
                   help="target file from puppet.finetune; repeat it to switch with n/p")
    p.add_argument("--source", default="0",
                   help="camera index, /dev/videoN, a video file, or demo (default 0)")
    p.add_argument("--output", action="append", metavar="virtualcam|window|FILE.mp4",
                   help="repeatable (default: virtualcam and window)")
    p.add_argument("--backend", default="auto", metavar="NAME",
                   help="auto|tensorrt|torch|onnxruntime (default auto)")
    p.add_argument("--device", default=None,
                   help="where the generator runs: cuda, cuda:1 or cpu (default: the GPU if there is one)")
    p.add_argument("--mirror", action="store_true", help="mirror the camera (like a mirror)")
    p.add_argument("--absolute", action="store_true",
                   help="drive with the raw landmarks in the driver's crop (as the paper does) "
                        "instead of relative motion")
    p.add_argument("--stats", metavar="FILE.json", help="write the run's statistics here at exit")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N source frames")
    p.add_argument("--vcam-device", metavar="DEV",
                   help="virtual camera device, e.g. /dev/video2 or 'OBS Virtual Camera'")
    p.add_argument("--vcam-backend", metavar="NAME",
                   help="pyvirtualcam backend: v4l2loopback, obs, unitycapture")
    p.add_argument("--pad-720p", action="store_true",
                   help="send 1280x720 to the virtual camera (macOS needs it)")
    a = p.parse_args(argv)
    if a.backend not in BACKENDS:
        raise PuppetError(f"--backend {a.backend}: unknown; use one of {', '.join(BACKENDS)}")
    if a.max_frames is not None and a.max_frames < 1:
        raise PuppetError(f"--max-frames {a.max_frames}: must be at least 1")
    a.output = a.output or ["virtualcam", "window"]
    for o in a.output:
        if o not in ("virtualcam", "window") and Path(o).suffix.lower() not in VIDEO_EXTS:
            raise PuppetError(f"--output {o}: unknown output; "
                              f"use virtualcam, window or a file ending in .mp4")
    return a


def load_targets(paths: list[str], backend: str, device: str | None) -> list[LiveTarget]:
    """Every target and its generator backend, loaded up front: n/p switch instantly, errors come first."""
    from export.runtime import load_backend
    from puppet.sketch import sketch_tensor
    from puppet.target import load_target

    out = []
    for path in paths:
        target = load_target(path)
        # The path, not the object: exports (mona.onnx, the engine) are cached beside the target file.
        t = LiveTarget(path, target, load_backend(backend, path, device=device, verbose=False))
        # Warm-up: the first call of a backend (allocation, kernel selection) would stall the first frame.
        t.backend.generate(sketch_tensor(t.ref, t.size))
        out.append(t)
    return out


def open_outputs(a: argparse.Namespace, size: int, fps: float) -> tuple[list, PreviewWindow | None]:
    outputs, window = [], None
    try:
        for o in dict.fromkeys(a.output):  # each once
            if o == "virtualcam":
                outputs.append(VirtualCamSink(size, fps, a.vcam_device, a.vcam_backend, a.pad_720p))
            elif o == "window":
                try:
                    window = PreviewWindow()
                except PuppetError as e:
                    if len(a.output) == 1:
                        raise
                    log(f"{e}; carrying on without the preview")
            else:
                outputs.append(FileSink(o, size, fps))
    except BaseException:
        for s in outputs:
            s.close()
        raise
    return outputs, window


def _interrupt(*_):
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        # Tracking and generation run at the same time: leave the tracker a core, or torch's threads and
        # mediapipe's fight over the CPU (on 2 cores, 2 torch threads made a tiny generator 20x slower).
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    targets = load_targets(a.target, a.backend, a.device)
    source = open_source(a.source)
    outputs, window = [], None
    try:
        outputs, window = open_outputs(a, targets[0].size, source.fps)
        stats = Stats(source=source.name, targets=[t.path for t in targets],
                      backend=getattr(targets[0].backend, "name", a.backend),
                      mode="absolute" if a.absolute else "relative", image_size=targets[0].size)
        live = Live(targets, source, outputs, window, stats, mirror=a.mirror, absolute=a.absolute,
                    max_frames=a.max_frames)
        for t in targets:  # (only now: a failed start prints its one error line and nothing else)
            describe = getattr(t.backend, "describe", None)
            log(f"{t.path}: {describe() if describe else t.backend.name}")
        names = [getattr(s, "device", None) or str(getattr(s, "path", s.name)) for s in outputs]
        log(f"{targets[0].path} ({stats.info['backend']}, {targets[0].size}px) <- {source.name} "
            f"({source.fps:.0f} fps) -> {', '.join(names + (['window'] if window else []))}"
            + ("; q or Ctrl-C to quit" if source.live else ""))
        # SIGTERM (a service stop, `kill`) ends the run as cleanly as Ctrl-C does.
        prev = signal.signal(signal.SIGTERM, _interrupt)
        interrupted = False
        try:
            live.run()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            signal.signal(signal.SIGTERM, prev)
    finally:
        for s in outputs:
            s.close()
        if window:
            window.close()
        source.close()
    print(stats.table())
    if a.stats:
        stats.write_json(a.stats)
    if interrupted:
        log("stopped")
    return 0


if __name__ == "__main__":
    run_cli(main)

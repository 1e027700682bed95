"""Where the driving frames come from: a webcam, a video file, or the built-in demo clip.

Every source gives uint8 BGR frames through `read() -> Captured | None`. A *live* source (camera, demo)
runs in real time: the live loop drops its stale frames. A file is processed frame by frame, in order.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from puppet.errors import PuppetError

log = logging.getLogger(__name__)

# We report problems in our own words (one line, with the fix); OpenCV's and FFmpeg's own log lines on
# stderr ("can't open camera by index", "moov atom not found") would only repeat them, less clearly.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.setLogLevel(0)

_SOURCES = "pass a camera index (--source 0), /dev/videoN, a video file or demo"


@dataclass
class Captured:
    frame: np.ndarray  # uint8 BGR
    t: float  # time.perf_counter() when the frame became available (end-to-end latency starts here)
    media_t: float  # the frame's time in the stream, seconds (file: index / fps; live: == t)
    read_s: float  # seconds spent reading/decoding it


class Source:
    name: str = "source"
    live: bool = True
    fps: float = 30.0

    def read(self) -> Captured | None:
        """The next frame; None at the end of a file, or when a camera fails."""
        raise NotImplementedError

    def reopen(self) -> bool:
        """Try to open a failed camera again; True when it works."""
        return False

    def close(self) -> None:
        pass


class CameraSource(Source):
    """A webcam via cv2.VideoCapture: a buffer of one frame (no backlog), MJPG where the camera offers it."""

    live = True

    def __init__(self, spec: int | str):
        self.spec = spec
        if isinstance(spec, int):
            self.name = f"camera {spec}"
            self._fix = f"is another app using it? try --source {spec + 1}"
            if sys.platform.startswith("linux") and not list(Path("/dev").glob("video*")):
                self._fix = "no camera on this machine (no /dev/video*); plug one in, or use --source demo"
        else:
            self.name = str(spec)
            if not Path(spec).exists():
                raise PuppetError(f"{spec}: no such camera device; plug it in, or list cameras with "
                                  f"`v4l2-ctl --list-devices` and pass one with --source /dev/videoN")
            self._fix = ("is another app using it? check its permissions (the `video` group) "
                         "or try another --source")
        self.cap = None
        if not self._open():
            raise PuppetError(f"{self.name}: can't open; {self._fix}")
        reported = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(reported) if 1.0 <= reported <= 240.0 else 30.0

    def _open(self) -> bool:
        cap = cv2.VideoCapture(self.spec)
        if not cap.isOpened():
            cap.release()
            return False
        # One buffered frame: a full driver buffer would add several frames of latency.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        # MJPG lets USB cameras deliver 720p at 30 fps; where it isn't offered the set is ignored.
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        ok, _ = cap.read()
        if not ok:
            cap.release()
            return False
        self.cap = cap
        return True

    def read(self) -> Captured | None:
        if self.cap is None:
            return None
        ok = self.cap.grab()  # waits for the camera's next frame
        t = time.perf_counter()
        ok = ok and self.cap.isOpened()
        frame = self.cap.retrieve()[1] if ok else None
        if frame is None:
            return None
        return Captured(frame, t, t, time.perf_counter() - t)

    def reopen(self) -> bool:
        self.close()
        return self._open()

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class FileSource(Source):
    """A video file: every frame, in order, timed by the file's frame rate."""

    live = False

    def __init__(self, path: str | os.PathLike):
        self.name = str(path)
        p = Path(path)
        if not p.exists():
            raise PuppetError(f"{p}: no such video file; {_SOURCES}")
        if not p.is_file():
            raise PuppetError(f"{p}: not a video file; {_SOURCES}")
        self.cap = cv2.VideoCapture(str(p))
        ok = self.cap.isOpened()
        first = self.cap.read()[1] if ok else None
        if first is None:
            self.cap.release()
            raise PuppetError(f"{p}: can't read any video frame from it; "
                              f"pass a video OpenCV can decode (e.g. .mp4)")
        self._first: np.ndarray | None = first
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 1.0 <= fps <= 240.0 else 25.0
        self.claimed = max(0, int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # what the header says
        self.index = 0

    def read(self) -> Captured | None:
        t0 = time.perf_counter()
        if self._first is not None:
            frame, self._first = self._first, None
        else:
            frame = self.cap.read()[1]
        if frame is None:
            # Some containers only estimate their length (from duration x fps): allow a little slack.
            if self.claimed - self.index > max(2, self.claimed // 50):
                log.warning(f"{self.name}: the video ends after {self.index} of the {self.claimed} frames "
                            f"its header promises (truncated or damaged); stopping there")
                self.claimed = 0  # said once
            return None
        t1 = time.perf_counter()
        c = Captured(frame, t0, self.index / self.fps, t1 - t0)
        self.index += 1
        return c

    def close(self) -> None:
        self.cap.release()


class FramesSource(Source):
    """Frames in memory played like a camera at `fps` (real time, looping back and forth)."""

    live = True

    def __init__(self, frames: list[np.ndarray], fps: float = 25.0, name: str = "demo"):
        if not frames:
            raise ValueError("no frames")
        self.frames = frames + frames[-2:0:-1]  # forth and back: the loop has no jump
        self.fps = fps
        self.name = name
        self.i = 0
        self._next = None

    def read(self) -> Captured | None:
        now = time.perf_counter()
        if self._next is None:
            self._next = now
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(self._next + 1.0 / self.fps, time.perf_counter() - 1.0 / self.fps)
        t = time.perf_counter()
        frame = self.frames[self.i % len(self.frames)].copy()
        self.i += 1
        return Captured(frame, t, t, time.perf_counter() - t)


def demo_frames(n_frames: int = 75, seed: int = 0, height: int = 360) -> list[np.ndarray]:
    """A talking-head stand-in made from a packaged portrait (no webcam needed): puppet.data.motion
    animates it."""
    from puppet.assets import grace_hopper
    from puppet.data.motion import animate
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    img = read_image(grace_hopper())
    scale = height / img.shape[0]
    img = cv2.resize(img, (round(img.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    lms = detect(img)
    if lms is None:
        raise PuppetError("demo: no face found in the packaged portrait; reinstall matplotlib (it ships it)")
    frames, _ = animate(img, lms, n_frames, np.random.default_rng(seed))
    return frames


def open_source(spec: str) -> Source:
    """--source: a camera index ("0"), a device path ("/dev/video2"), a video file, or "demo"."""
    spec = str(spec)
    if spec == "demo":
        return FramesSource(demo_frames(), fps=25.0, name="demo")
    if spec.isdigit():
        return CameraSource(int(spec))
    if spec.startswith("/dev/video") or (sys.platform != "win32" and spec.startswith("/dev/")):
        return CameraSource(spec)
    return FileSource(spec)

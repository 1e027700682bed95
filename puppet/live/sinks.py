"""Where the generated face goes: a virtual camera, an mp4 file, and the local preview window.

Output sinks (`VirtualCamSink`, `FileSink`) are handed only output frames (generated faces composed into the
target's picture, or the picture itself before the first one; the square crop in `--output-mode crop`):
the camera's pixels have no path to them. Only the `PreviewWindow`, which the user alone sees, shows the
camera, next to the sketch and the output.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from puppet.errors import PuppetError
from puppet.files import VideoWriter, recover_videos

log = logging.getLogger(__name__)

VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".avi", ".mkv")


def fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale `img` to fit width x height (aspect kept), centred on black: what each sink's size needs."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    small = cv2.resize(img, (nw, nh), interpolation=interp)
    if (nw, nh) == (width, height):
        return small
    out = np.zeros((height, width, 3), np.uint8)
    y, x = (height - nh) // 2, (width - nw) // 2
    out[y:y + nh, x:x + nw] = small
    return out


class FileSink:
    """An mp4 (mp4v) of the output at the source's frame rate, one frame per output frame.

    Written to a temporary file beside it and renamed on close: `out.mp4` is complete or absent. A recording
    that a killed run left unfinished in the same folder is recovered first (puppet.files.recover_videos).
    """

    name = "file"
    keepalive = False  # one frame per output frame: nothing extra while the source stalls

    def __init__(self, path: str | os.PathLike, size: int | tuple[int, int], fps: float):
        """size: the side of a square output, or (width, height) (the output frame, the demo's panel)."""
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise PuppetError(f"{self.path}: folder {self.path.parent} doesn't exist; "
                              f"create it or pick another path")
        self.width, self.height = (size, size) if isinstance(size, int) else size
        for note in recover_videos(self.path.parent):  # recordings a killed run left unfinished here
            log.warning(note)
        self.video = VideoWriter(self.path, self.width, self.height, fps)

    @property
    def frames(self) -> int:
        return self.video.frames

    def write(self, img: np.ndarray) -> None:
        self.video.write(fit(img, self.width, self.height))

    def close(self) -> None:
        self.video.close()  # nothing was sent: no empty, unplayable file


def _first_reason(e: Exception) -> str:
    """pyvirtualcam's first backend error, first sentence: "v4l2loopback: No v4l2 loopback device found"."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else "no virtual camera found"
    name, sep, msg = text.partition(" backend: ")
    reason = f"{name.strip(chr(39))}: {msg}" if sep else text
    return reason.split(". ")[0].rstrip(".")


def vcam_setup_hint() -> str:
    if sys.platform.startswith("linux"):
        return ("set one up with `sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=puppet` "
                "(package v4l2loopback-dkms)")
    return "install OBS and start its Virtual Camera once (Tools > Start Virtual Camera), then close OBS"


class VirtualCamSink:
    """pyvirtualcam: Zoom, Meet, Teams and OBS take it like any webcam.

    size: the side of a square, or (width, height): 1280x720 by default in puppet.live, which is also what
    macOS's OBS camera requires. A frame of another size is fitted into it (centred, aspect kept).
    """

    name = "virtualcam"
    keepalive = True  # keeps getting the held frame while the camera stalls: the call never freezes

    def __init__(self, size: int | tuple[int, int], fps: float, device: str | None = None,
                 backend: str | None = None):
        try:
            import pyvirtualcam
            from pyvirtualcam.camera import BACKENDS
        except ImportError:
            raise PuppetError("virtual camera: pyvirtualcam isn't installed; "
                              "`pip install pyvirtualcam`") from None
        if backend is not None and backend not in BACKENDS:
            names = ", ".join(BACKENDS) or "none"
            raise PuppetError(f"--vcam-backend {backend}: not available on this system; choose from: {names}")
        self.width, self.height = (size, size) if isinstance(size, int) else size
        what = f"virtual camera {device}" if device else "virtual camera"
        try:
            self.cam = pyvirtualcam.Camera(self.width, self.height, fps, device=device, backend=backend,
                                           fmt=pyvirtualcam.PixelFormat.BGR)
        except RuntimeError as e:
            raise PuppetError(f"{what}: can't open ({_first_reason(e)}); {vcam_setup_hint()}, "
                              f"or use --output window / out.mp4") from None
        except ValueError as e:  # e.g. a size or fps the backend refuses
            raise PuppetError(f"{what}: {e}; try --size 1280x720") from None
        self.device = self.cam.device

    def write(self, img: np.ndarray) -> None:
        self.cam.send(fit(img, self.width, self.height))

    def close(self) -> None:
        if self.cam is not None:
            self.cam.close()
            self.cam = None


def preview_panel(camera: np.ndarray | None, sketch: np.ndarray | None, output: np.ndarray, height: int,
                  landmarks: np.ndarray | None = None, lines: list[str] | None = None) -> np.ndarray:
    """The preview panel: camera | sketch | output (the camera and the output frame with their aspect
    kept), all `height` high, overlays drawn."""
    h = height
    if camera is None:
        cam = np.zeros((h, h * 4 // 3, 3), np.uint8)
    else:
        s = h / camera.shape[0]
        cam = cv2.resize(camera, (round(camera.shape[1] * s), h), interpolation=cv2.INTER_AREA)
        if landmarks is not None:
            for x, y in np.asarray(landmarks) * s:
                cv2.circle(cam, (round(x), round(y)), 2, (0, 255, 0), -1, cv2.LINE_AA)
    sk = np.zeros((h, h, 3), np.uint8) if sketch is None else fit(sketch, h, h)
    out = fit(output, max(1, round(h * output.shape[1] / output.shape[0])), h)
    panel = np.hstack([cam, sk, out])
    for i, line in enumerate(lines or []):
        org = (8, 20 + 18 * i)
        cv2.putText(panel, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(panel, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def display_available() -> tuple[bool, str]:
    """Whether cv2.imshow can open a window here, and if not, why.

    Qt aborts the whole process (not an exception) when it can't reach a display or lacks the platform
    plugin, so on Linux a throwaway subprocess tries first.
    """
    if sys.platform.startswith("linux"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM")):
            return False, "no display (DISPLAY is not set)"
        probe = "import cv2; cv2.namedWindow('probe'); cv2.waitKey(1); cv2.destroyAllWindows()"
        try:
            r = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=20)
        except subprocess.TimeoutExpired:
            return False, "the display doesn't answer"
        if r.returncode != 0:
            return False, "OpenCV can't open a window on this display"
    return True, ""


class PreviewWindow:
    """The local preview: camera | sketch | output side by side, with the hotkeys. Not an output to others."""

    name = "window"
    TITLE = "puppet (c calibrate, m mirror, n/p target, g/+/-/0 gains, l landmarks, s stats, q quit)"
    KEYS = {ord("c"): "calibrate", ord("m"): "mirror", ord("n"): "next", ord("p"): "previous",
            ord("g"): "gain_part", ord("+"): "gain_up", ord("="): "gain_up", ord("-"): "gain_down",
            ord("_"): "gain_down", ord("0"): "gain_reset",
            ord("l"): "landmarks", ord("s"): "stats", ord("q"): "quit", 27: "quit"}

    def __init__(self, height: int = 360):
        ok, why = display_available()
        if not ok:
            raise PuppetError(f"window: {why}; run on a desktop, or use --output virtualcam / out.mp4")
        try:
            cv2.namedWindow(self.TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)  # no toolbar
        except cv2.error as e:
            raise PuppetError(f"window: can't open one ({str(e).strip().splitlines()[-1]}); "
                              f"use --output virtualcam / out.mp4") from None
        self.height = height
        self.show_landmarks = True
        self.show_stats = True
        self._shown = False

    def show(self, camera: np.ndarray | None, sketch: np.ndarray | None, output: np.ndarray,
             landmarks: np.ndarray | None = None, lines: list[str] | None = None,
             status: list[str] | None = None) -> None:
        """lines: the stats overlay (s toggles it); status: lines always shown (the gains) below them."""
        shown = (lines or []) if self.show_stats else []
        panel = preview_panel(camera, sketch, output, self.height,
                              landmarks if self.show_landmarks else None, shown + (status or []))
        cv2.imshow(self.TITLE, panel)
        self._shown = True

    def poll(self, wait_ms: int = 1) -> str | None:
        """Process window events; the hotkey's action name, or None. Closing the window means quit."""
        key = cv2.waitKey(wait_ms) & 0xFF
        if self._shown:  # (before the first imshow some toolkits report the window as not visible yet)
            try:
                if cv2.getWindowProperty(self.TITLE, cv2.WND_PROP_VISIBLE) < 1:
                    return "quit"
            except cv2.error:
                return "quit"
        action = self.KEYS.get(key)
        if action == "landmarks":
            self.show_landmarks = not self.show_landmarks
        elif action == "stats":
            self.show_stats = not self.show_stats
        return action

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.TITLE)
            cv2.waitKey(1)
        except cv2.error:
            pass

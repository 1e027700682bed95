"""Small real datasets for the data/train tests, built once per test session.

Real synthetic talking-head mp4s (puppet.data.clips on the packaged portraits, written with OpenCV) plus the
bad inputs prepare must survive, prepared once by the real `python -m puppet.prepare` (mediapipe tracking).
Modules share the result through this module's cache (a session fixture defined in two test modules would
otherwise build it twice).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

GOOD_VIDEOS = 4  # two per packaged portrait
FRAMES = 16  # per synthetic clip (prepare keeps them all: --max-frames 32)
PORTRAIT_SIZE = 256  # longer side of the portraits before animating: small and fast, still well tracked
STORED_SIZE = 64  # prepare --size: the stored crops
_CACHE: dict[str, object] = {}


def child_env(threads: int = 1) -> dict:
    """Environment for a child python: this checkout importable, one thread per process (the tests run on
    two shared cores, where oversubscribed OpenMP threads make small convolutions many times slower)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging
    return env


def write_bad_inputs(folder: Path) -> dict[str, str]:
    """The files prepare must skip, with the reason it should give: {name: reason}."""
    from puppet.data.clips import write_video

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    (folder / "corrupt.mp4").write_bytes(rng.bytes(20_000))  # random bytes named like a video
    (folder / "notes.txt").write_text("not a video\n")
    noise = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(12)]
    write_video(folder / "noise.mp4", noise, fps=25)  # a real video with no face in it
    return {"corrupt": "unreadable", "noise": "no face"}


def video_folder(tmp_root: Path) -> Path:
    """A folder in VoxCeleb2's speaker/clip layout: GOOD_VIDEOS synthetic talking heads, plus bad inputs."""
    if "videos" in _CACHE:
        return _CACHE["videos"]
    from puppet.data.clips import write_synthetic_videos

    folder = tmp_root / "videos"
    write_synthetic_videos(folder, GOOD_VIDEOS, n_frames=FRAMES, seed=0, size=PORTRAIT_SIZE)
    write_bad_inputs(folder / "bad")
    _CACHE["videos"] = folder
    return folder


def prepared(tmp_root: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """The video folder prepared by the real CLI (two worker processes): (DATA, the finished process)."""
    if "prepared" in _CACHE:
        return _CACHE["prepared"]
    videos = video_folder(tmp_root)
    data = tmp_root / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "puppet.prepare", str(videos), "--out", str(data), "--size", str(STORED_SIZE),
         "--workers", "2", "--no-progress"],
        capture_output=True, text=True, env=child_env(), timeout=300,
    )
    _CACHE["prepared"] = (data, proc)
    return data, proc

"""The quickstart demo end to end at smoke-test size: real fine-tune, real synthetic clip, live loop."""

import json
import os
import subprocess
import sys

import cv2
from _util import count_frames


def test_demo_writes_side_by_side_video_and_caches_target(tmp_path):
    env = dict(os.environ, PUPPET_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "puppet.demo", "--out", str(out), "--steps", "3", "--frames", "6",
           "--no-window"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert count_frames(out / "demo.mp4") == 6 and count_frames(out / "output.mp4") == 6
    panel = cv2.imread(str(out / "demo.png"))
    # four stacked panels of driver (4:3 or wider) | sketch | output, each 256 high
    assert panel.shape[0] == 4 * 256 and panel.shape[1] >= 3 * 256
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames_in"] == stats["frames_out"] == 6
    cached = list((tmp_path / "cache").glob("demo-grace_hopper-*.pt"))
    assert len(cached) == 1

    # second run: the target comes from the cache (no fine-tuning)
    r2 = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "cached" in r2.stderr and "fine-tuning" not in r2.stderr


def test_demo_missing_photo_is_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "puppet.demo", "--photo", str(tmp_path / "nope.jpg")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "nope.jpg" in r.stderr

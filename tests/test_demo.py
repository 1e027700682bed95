"""The quickstart demo end to end at smoke-test size: real fine-tune, real synthetic clip, live loop."""

import json
import subprocess
import sys

import cv2
import torch
from _util import count_frames


def test_demo_writes_side_by_side_video_and_caches_target(tmp_path, monkeypatch, logs):
    from puppet.demo import main

    monkeypatch.setenv("PUPPET_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()  # fine-tuning picks its own; give the rest of the suite its own back
    out = tmp_path / "out"
    argv = ["--out", str(out), "--steps", "3", "--frames", "6", "--no-window"]
    try:
        assert main(argv) == 0
        assert "fine-tuning" in logs.text
        assert count_frames(out / "demo.mp4") == 6 and count_frames(out / "output.mp4") == 6
        panel = cv2.imread(str(out / "demo.png"))
        # four stacked panels of driver (4:3 or wider) | sketch | output, each 256 high
        assert panel.shape[0] == 4 * 256 and panel.shape[1] >= 3 * 256
        stats = json.loads((out / "stats.json").read_text())
        assert stats["frames_in"] == stats["frames_out"] == 6
        cached = list((tmp_path / "cache").glob("demo-grace_hopper-*.pt"))
        assert len(cached) == 1

        # second run: the target comes from the cache (no fine-tuning)
        logs.clear()
        assert main(argv) == 0
        assert "cached" in logs.text and "fine-tuning" not in logs.text
    finally:
        torch.set_num_threads(threads)


def test_demo_missing_photo_is_one_line_error(tmp_path):
    """As the user runs it (a real process): exit 2, one line on stderr."""
    r = subprocess.run([sys.executable, "-m", "puppet.demo", "--photo", str(tmp_path / "nope.jpg")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "nope.jpg" in r.stderr

"""A recording survives a hard kill: a real `puppet.live` process recording to an mp4 is killed with SIGKILL
(no handler runs, nothing is closed), and what it wrote becomes a playable file at the next start."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _util import count_frames, random_target

from puppet.files import VideoWriter, recover_videos
from puppet.target import save_target

REPO = Path(__file__).resolve().parents[1]


def test_kill_9_while_recording_keeps_what_was_recorded(astronaut_path, tmp_path, logs):
    target = tmp_path / "t.pt"
    save_target(target, random_target(photo=astronaut_path))
    out = tmp_path / "rec" / "out.mp4"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "puppet.live", "--target", str(target), "--source", "demo",
                          "--backend", "torch", "--output", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        started = time.monotonic()
        for line in p.stderr:  # the startup line, then let it record a little
            if "<- demo" in line:
                break
            assert time.monotonic() - started < 120, "no startup line"
        time.sleep(4)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        p.stderr.close()
    assert p.returncode == -signal.SIGKILL
    assert not out.exists()
    left = sorted(f.name for f in out.parent.iterdir())
    assert len(left) == 2 and left[0].startswith(".out.") and left[1].endswith(".mp4.json"), left
    assert count_frames(out.parent / left[0]) == 0  # unplayable as it is: no index

    # The next recording into this folder recovers it first and says so in one line.
    from puppet.live.sinks import FileSink

    sink = FileSink(out.parent / "next.mp4", (1280, 720), 25.0)
    sink.close()
    notes = sorted({r.getMessage() for r in logs.records if "recovered" in r.getMessage()})
    assert len(notes) == 1 and "out.recovered.mp4: recovered" in notes[0], notes
    recovered = out.parent / "out.recovered.mp4"
    n = count_frames(recovered)
    # 4 s at 25 fps, less what was still in the killed process's write buffer (512 KiB: 1-2 s at 720p)
    assert n >= 25, n
    assert f"recovered {n} frames" in notes[0]
    assert sorted(f.name for f in out.parent.iterdir()) == ["out.recovered.mp4"]  # no hidden file left


def test_recovery_leaves_running_recordings_and_clears_empty_ones(tmp_path):
    running = VideoWriter(tmp_path / "live.mp4", 64, 64, 25.0)
    running.write(np.zeros((64, 64, 3), np.uint8))
    # a recording of a process that is gone, cut off before its first frame reached the disk
    gone = 2 ** 22 + 12345  # above the default pid_max: no such process
    (tmp_path / f".dead.{gone}.tmp.mp4").write_bytes(b"")
    (tmp_path / f".dead.{gone}.tmp.mp4.json").write_text(json.dumps(
        {"output": "dead.mp4", "width": 64, "height": 64, "fps": 25.0}))
    notes = recover_videos(tmp_path)
    assert len(notes) == 1 and "no frame to recover; removed" in notes[0]
    assert not list(tmp_path.glob(".dead.*"))
    assert running.tmp.exists() and running.info.exists()  # ours, still being written: untouched
    running.close()
    assert count_frames(tmp_path / "live.mp4") == 1
    assert sorted(f.name for f in tmp_path.iterdir()) == ["live.mp4"]

"""The live pipeline on a clip: puppet.live's threaded loop against the serial sum of its stages measured one
at a time (bench.stages). Two sources: the file itself (every frame, in order, as fast as the loop goes:
throughput) and its frames played at the clip's frame rate like a camera (stale frames dropped: the
latency a webcam user sees)."""

from __future__ import annotations

import time
from pathlib import Path

# warp: appearance configs only
SERIAL_STAGES = ("decode", "track", "filter_retarget", "rasterise", "warp", "compose", "output")


def run_live(source, target, backend, max_frames: int | None, out_path: str | Path,
             face_cap: int | None = None, framing=None) -> dict:
    """puppet.live.Live from `source` (a puppet.live.sources.Source) with `target` (backend already loaded),
    writing an mp4 to `out_path` of the frames puppet.live sends by default (the face pasted back into the
    target's picture, 1280x720 fitted, or `framing`; the face crop sized as puppet.live sizes it, up to
    `face_cap`, as its --face-size).

    Returns the loop's own statistics (puppet.live.stats.Stats.summary()): fps, end-to-end latency and
    per-stage times as measured inside the running pipeline, plus the wall time.
    """
    import os

    import torch

    from puppet.live.app import live_target
    from puppet.live.framing import Framing
    from puppet.live.loop import Live
    from puppet.live.sinks import FileSink
    from puppet.live.stats import Stats

    # As `python -m puppet.live` does: warm the backend up, and leave the tracker a core.
    framing = framing or Framing()
    t = live_target("bench", target, backend, framing, face_cap)
    threads = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    sink = FileSink(out_path, framing.size, source.fps)
    stats = Stats(source=source.name, backend=getattr(backend, "name", "?"), image_size=target.image_size,
                  face_size=t.face)
    try:
        targets = [t]
        live = Live(targets, source, [sink], None, stats, max_frames=max_frames)
        t0 = time.perf_counter()
        live.run()
        wall = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
        sink.close()
        source.close()
    s = stats.summary()
    s["wall_s"] = round(wall, 3)
    return s


def file_and_paced(clip: str | Path, frames: list, fps: float, target, backend, tmp: Path) -> dict:
    """The loop on the file (throughput) and on its frames paced at `fps` (camera-like latency)."""
    from puppet.live.sources import FileSource, FramesSource

    out = {}
    for kind, source in (("file", FileSource(clip)), ("paced", FramesSource(frames, fps=fps, name="paced"))):
        s = run_live(source, target, backend, len(frames), tmp / f"live-{kind}.mp4")
        out[kind] = {
            "frames_in": s["frames_in"],
            "frames_out": s["frames_out"],
            "dropped": s["dropped"],
            "no_face": s["no_face"],
            "fps": s["fps"],
            "latency_p50_ms": s["latency_ms"]["p50"],
            "latency_p95_ms": s["latency_ms"]["p95"],
            "stages_in_loop_ms": {k: v["p50"] for k, v in s["stages_ms"].items()},
            "wall_s": s["wall_s"],
        }
    return out


def serial_sum_ms(stages: dict, generate_ms: float) -> float:
    """One frame's time when every stage runs after the other: the sum of the isolated stages' medians."""
    return generate_ms + sum(stages[name]["median_ms"] for name in SERIAL_STAGES if name in stages)

"""The live pipeline on a clip: puppet.live's threaded loop (file source: every frame, in order) against
the serial sum of its stages measured one at a time (bench.stages)."""

from __future__ import annotations

import time
from pathlib import Path

SERIAL_STAGES = ("decode", "track", "filter_retarget", "rasterise", "output")


def run_live(clip: str | Path, target, backend, max_frames: int | None, out_path: str | Path) -> dict:
    """puppet.live.Live on `clip` with `target` (its backend already loaded), writing an mp4 to `out_path`.

    Returns the loop's own statistics (puppet.stats.Stats.summary()): fps, end-to-end latency and per-stage
    times as measured inside the running pipeline, plus the wall time.
    """
    import os

    import torch

    from puppet.live import Live, LiveTarget
    from puppet.sinks import FileSink
    from puppet.sketch import sketch_tensor
    from puppet.sources import FileSource
    from puppet.stats import Stats

    # As `python -m puppet.live` does: warm the backend up, and leave the tracker a core.
    backend.generate(sketch_tensor(target.ref_landmarks, target.image_size))
    threads = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    source = FileSource(clip)
    sink = FileSink(out_path, target.image_size, source.fps)
    stats = Stats(source=str(clip), backend=getattr(backend, "name", "?"), image_size=target.image_size)
    try:
        targets = [LiveTarget("bench", target, backend)]
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


def serial_sum_ms(stages: dict, generate_ms: float) -> float:
    """One frame's time when every stage runs after the other: the sum of the isolated stages' medians."""
    return generate_ms + sum(stages[name]["median_ms"] for name in SERIAL_STAGES)

"""Wall-clock timing of a call: warm-up, then repeated runs inside a time budget; median and p95."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import numpy as np


def time_calls(
    fn: Callable[[], object],
    warmup: int,
    runs: int,
    budget_s: float,
    sync: Callable[[], None] | None = None,
    min_runs: int = 3,
) -> list[float]:
    """Milliseconds of `runs` warm calls of fn (fewer when `budget_s` runs out, never under `min_runs`).

    `sync` waits for asynchronous work (torch.cuda.synchronize) so each time is the call's real latency.
    """
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs:
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1000.0)
        if len(times) >= min_runs and time.perf_counter() - start > budget_s:
            break
    return times


def summary(times_ms: list[float]) -> dict:
    """median and p95 of a list of milliseconds (rounded to µs), with the count."""
    a = np.asarray(times_ms, dtype=np.float64)
    return {
        "median_ms": round(float(np.median(a)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "runs": int(a.size),
    }


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

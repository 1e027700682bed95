"""Live-loop statistics: counters, per-stage times and end-to-end latency (p50/p95), fps.

End-to-end latency is capture to output: from the moment a frame became available to the loop to the moment
its output frame was handed to the sinks. From a paced source (a camera, or the demo played in real time;
`paced=True` in the info) its median is how far the video runs behind the microphone, which is the audio
delay to set (OBS's Sync Offset, a call app's audio delay) so lips match sound: `audio_delay_ms`. A file is
read as fast as the loop goes, so its latency includes waiting in line and says nothing about sync.

Thread-safe: the capture, process and output threads all record into one Stats.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from puppet.files import write_json

# "warp": the reference picture warped to the driving landmarks (targets with the appearance path only);
# "correction": the generator's correction resized onto the warp at the face size (a face crop larger than the
# generator's own size only); "compose": the face pasted into the output frame (not in --output-mode crop)
STAGES = ("capture", "track", "filter_retarget", "rasterise", "warp", "generate", "correction", "compose",
          "output")
# Percentiles come from the most recent samples (a long call keeps memory bounded).
WINDOW = 100_000


class Stats:
    def __init__(self, **info):
        self.info = dict(info)  # plain values reported as they are (source, backend, target, mode)
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        # in flight when the run stopped (Ctrl-C, q), discarded: frames_in = out + dropped + discarded
        self.discarded = 0
        self.no_face = 0
        self.held = 0  # outputs re-sent while no new frame came (camera stalled); not counted in frames_out
        self.reused = 0  # frames whose landmarks equalled the previous ones: the image was reused, G not run
        self._ms = {s: deque(maxlen=WINDOW) for s in STAGES}
        self._latency = deque(maxlen=WINDOW)
        self._first_in: float | None = None
        self._last_out: float | None = None
        self._source_fps: float | None = None

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def frame_in(self, t: float) -> None:
        with self._lock:
            self.frames_in += 1
            if self._first_in is None:
                self._first_in = t

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self._ms[name].append(seconds * 1000.0)

    def frame_out(self, t_capture: float, t_out: float) -> None:
        with self._lock:
            self.frames_out += 1
            self._latency.append((t_out - t_capture) * 1000.0)
            self._last_out = t_out

    def source_fps(self, fps: float) -> None:
        with self._lock:
            self._source_fps = fps

    def fps(self) -> float:
        with self._lock:
            if self._first_in is None or self._last_out is None or self.frames_out < 2:
                return 0.0
            return self.frames_out / max(self._last_out - self._first_in, 1e-9)

    def summary(self) -> dict:
        fps = self.fps()
        with self._lock:
            def pct(xs):
                if not xs:
                    return {"p50": None, "p95": None, "n": 0}
                a = np.fromiter(xs, float)
                p50, p95 = np.percentile(a, [50, 95])
                return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "n": len(a)}

            done = self._first_in is not None and self._last_out is not None
            elapsed = (self._last_out - self._first_in) if done else 0.0
            return {
                **self.info,
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "dropped": self.dropped,
                "discarded": self.discarded,
                "no_face": self.no_face,
                "held": self.held,
                "reused": self.reused,
                "fps": round(fps, 3),
                "source_fps": None if self._source_fps is None else round(self._source_fps, 3),
                "elapsed_s": round(elapsed, 3),
                "stages_ms": {s: pct(self._ms[s]) for s in STAGES},
                "latency_ms": (lat := pct(self._latency)),
                "audio_delay_ms": audio_delay_ms(lat) if self.info.get("paced") else None,
            }

    def overlay_lines(self) -> list[str]:
        """A few short lines for the preview window's stats overlay."""
        s = self.summary()
        lat = s["latency_ms"]
        gen = s["stages_ms"]["generate"]
        return [
            f"{s['fps']:.1f} fps  latency p50 {_f(lat['p50'])} p95 {_f(lat['p95'])} ms",
            f"generate p50 {_f(gen['p50'])} ms  dropped {s['dropped']}  no face {s['no_face']}",
        ] + ([audio_tip(s["audio_delay_ms"], short=True)] if s["audio_delay_ms"] is not None else [])

    def table(self) -> str:
        s = self.summary()
        lines = [
            f"frames in {s['frames_in']} = out {s['frames_out']} + dropped {s['dropped']} + in flight at the "
            f"stop {s['discarded']}  no face {s['no_face']}  fps {s['fps']:.1f}"
            + (f"  (source {s['source_fps']:.1f})" if s["source_fps"] else ""),
            f"{'stage':<16}{'p50 ms':>9}{'p95 ms':>9}",
        ]
        for name, v in [*s["stages_ms"].items(), ("end-to-end", s["latency_ms"])]:
            if name in ("warp", "correction") and not v["n"]:
                continue  # a target without the appearance path (or a larger face crop) has no such stage
            lines.append(f"{name:<16}{_f(v['p50']):>9}{_f(v['p95']):>9}")
        if s["audio_delay_ms"] is not None:
            lines.append(audio_tip(s["audio_delay_ms"]))
        return "\n".join(lines)

    def write_json(self, path) -> None:
        s = self.summary()
        s["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json(path, s)


def audio_delay_ms(latency: dict) -> int | None:
    """The audio delay that matches the video: the median capture-to-output latency, to 10 ms."""
    return None if latency["p50"] is None else int(round(latency["p50"] / 10.0) * 10)


def audio_tip(ms: int, short: bool = False) -> str:
    if short:
        return f"sound in sync: delay audio {ms} ms (OBS Sync Offset)"
    return (f"sound in sync: the video runs {ms} ms behind the camera (median capture to output); delay the "
            f"microphone by {ms} ms: OBS Sync Offset (Advanced Audio Properties) or a call app's audio delay")


def _f(x) -> str:
    return "-" if x is None else f"{x:.1f}"

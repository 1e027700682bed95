"""CPU real time: which config, backend and threading settings give a live loop at >= 25 fps on this CPU.

    python -m bench.realtime [--configs small,cpu-w2,...] [--frames 150] [--json out.json] [--quick]

1. Generator latency of each candidate config under each runtime setting: torch (1 or all threads,
   channels_last) and onnxruntime (intra-op threads, graph optimisation level, sequential/parallel).
2. The full pipelined live loop (puppet.live on a synthetic talking clip, file source: every frame) with
   the fastest setting of each config, so the tracker and the generator compete for the cores as they do
   live.
Candidates are models.config.ModelConfig variants (replace), so they need no edit of models/
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import torch

from bench import generator as gen
from bench.timing import summary, time_calls
from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.files import write_json

log = logging.getLogger(__name__)


def _variant(base: str, name: str, **changes):
    from models.config import get_config

    return get_config(base).replace(name=name, **changes)


def candidates() -> dict[str, dict]:
    """Configs cheaper than `small` at the same 128 px: fewer channels where the resolution is high."""
    return {
        # half of small's widths everywhere, 2 bottleneck blocks: about a quarter of small's FLOPs
        "cpu-w2": _variant("small", "cpu-w2", g_down_channels=[16, 32, 64, 128], g_res_blocks=2,
                           g_up_channels=[64, 32, 16, 16]),
        # the same without the 32x32 attention of the up path
        "cpu-w2-noattn": _variant("small", "cpu-w2-noattn", g_down_channels=[16, 32, 64, 128], g_res_blocks=2,
                                  g_up_channels=[64, 32, 16, 16], attn_up=[]),
        # small's widths at low resolution, thin at high resolution
        "cpu-taper": _variant("small", "cpu-taper", g_down_channels=[16, 32, 64, 128], g_res_blocks=2,
                              g_up_channels=[128, 64, 32, 16]),
    }


def config(spec: str) -> dict:
    """A candidate of this module, a named config, or a .json config file."""
    from models.config import CONFIGS

    if spec in candidates():
        return candidates()[spec]
    if spec in CONFIGS or spec.endswith(".json"):
        return gen.parse_config(spec)
    raise PuppetError(f"--configs {spec}: unknown; use a config name ({', '.join(CONFIGS)}), a candidate "
                      f"({', '.join(candidates())}) or a .json file")


# ------------------------------------------------------------------------------------------ backends
class OrtBackend:
    """onnxruntime CPU session with explicit settings (puppet.live.runtime's backend picks its own)."""

    def __init__(self, onnx_path, intra: int, level: str = "all", parallel: bool = False, spin: bool = True):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = intra
        so.inter_op_num_threads = 1
        so.graph_optimization_level = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        so.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        if not spin:  # idle worker threads sleep instead of spinning: leaves the core to the tracker
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
        self.name = (f"onnxruntime intra={intra} opt={level}{' parallel' if parallel else ''}"
                     f"{' no-spin' if not spin else ''}")

    def generate(self, *inputs: torch.Tensor) -> torch.Tensor:
        names = [i.name for i in self.sess.get_inputs()]  # the graph's inputs, in order (export.onnx)
        out = self.sess.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0]
        return torch.from_numpy(out)


class TorchBackend:
    """PersonGenerator in torch eager on the CPU, with a thread count and memory format."""

    def __init__(self, target, threads: int, channels_last: bool = False):
        self.pg = target.person_generator("cpu")
        self.threads = threads
        self.channels_last = channels_last
        if channels_last:
            self.pg = self.pg.to(memory_format=torch.channels_last)
        self.name = f"torch threads={threads}{' channels_last' if channels_last else ''}"

    @torch.inference_mode()
    def generate(self, *inputs: torch.Tensor) -> torch.Tensor:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        xs = inputs
        if self.channels_last:
            xs = tuple(x.contiguous(memory_format=torch.channels_last) for x in xs)
        return self.pg(*xs).contiguous()


def settings(cores: int) -> list[tuple[str, dict]]:
    """The runtime settings to sweep."""
    threads = sorted({1, cores})
    out = []
    for n in threads:
        out.append(("torch", {"threads": n}))
        out.append(("torch", {"threads": n, "channels_last": True}))
    for n in threads:
        for level in ("all", "extended", "basic"):
            out.append(("onnxruntime", {"intra": n, "level": level}))
    out.append(("onnxruntime", {"intra": cores, "level": "all", "parallel": True}))
    if cores > 1:
        out.append(("onnxruntime", {"intra": cores, "level": "all", "spin": False}))
    return out


def make_backend(kind: str, opts: dict, target, onnx_path):
    if kind == "torch":
        return TorchBackend(target, **opts)
    return OrtBackend(onnx_path, **opts)


# ------------------------------------------------------------------------------------------ the sweep
def sweep(cfgs: list[dict], runs: int, budget: float, tmp: Path, ref=None) -> list[dict]:
    from export.onnx import export_target
    from models.flops import flops
    from puppet.live.runtime import physical_cores

    rows = []
    default_threads = torch.get_num_threads()
    for cfg in cfgs:
        target = gen.random_target(cfg, *(ref(cfg.image_size) if ref else (None, None)))
        onnx_path = export_target(target, tmp / f"{cfg.name}.onnx", check=False)
        xs = gen.random_inputs(target)  # (sketch,), or (sketch, warped) for the appearance path
        f = flops(target.person_generator(), *xs)
        for kind, opts in settings(physical_cores()):
            backend = make_backend(kind, opts, target, onnx_path)
            ms = time_calls(lambda b=backend, xs=xs: b.generate(*xs), 3, runs, budget)
            torch.set_num_threads(default_threads)
            row = {"config": cfg.name, "gflop": round(f / 1e9, 3), "backend": kind, "opts": opts,
                   "setting": backend.name, **summary(ms), "min_ms": round(min(ms), 3)}
            rows.append(row)
            log.info(f"{cfg.name:>14} {backend.name:<40} median {row['median_ms']:8.2f} ms  "
                f"min {row['min_ms']:8.2f}")
    return rows


def live_run(cfg: dict, kind: str, opts: dict, clip: Path, frames: list, fps: float, tmp: Path, ref) -> dict:
    from bench.live import file_and_paced
    from export.onnx import export_target

    target = gen.random_target(cfg, *ref(cfg.image_size))
    onnx_path = None
    if kind == "onnxruntime":
        onnx_path = export_target(target, tmp / f"{cfg.name}.live.onnx", check=False)
    backend = make_backend(kind, opts, target, onnx_path)
    default_threads = torch.get_num_threads()
    try:
        runs = file_and_paced(clip, frames, fps, target, backend, tmp)
    finally:
        torch.set_num_threads(default_threads)
    return {"config": cfg.name, "setting": backend.name, **runs}



def main(argv: list[str]) -> int:
    p = Parser(prog="python -m bench.realtime", description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="small," + ",".join(candidates()),
                   help="config names (models' or this module's candidates) or .json files")
    p.add_argument("--frames", type=int, default=150, help="clip frames for the live loop (default 150)")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--budget", type=float, default=8.0, help="seconds per generator setting at most")
    p.add_argument("--quick", action="store_true", help="few runs and frames (a smoke test)")
    p.add_argument("--json", metavar="OUT.json")
    a = p.parse_args(argv)
    if a.quick:
        a.runs, a.budget, a.frames = 5, 1.0, 30
    cfgs = [config(s.strip()) for s in a.configs.split(",") if s.strip()]
    from bench.stages import demo_clip, read_frames, reference
    from puppet.faces.track import detect
    from puppet.live.runtime import physical_cores

    with tempfile.TemporaryDirectory(prefix="puppet-realtime-") as tmp:
        tmp = Path(tmp)
        clip = demo_clip(tmp / "clip.mp4", a.frames)
        frames, _, fps = read_frames(clip)
        first = frames[0]
        lms0 = detect(first)
        if lms0 is None:
            raise PuppetError("demo clip: no face in its first frame; reinstall matplotlib (it ships the "
                              "portrait)")

        def ref(size):
            return reference(first, lms0, size)

        t0 = time.perf_counter()
        rows = sweep(cfgs, a.runs, a.budget, tmp, ref)
        best = {}
        for r in rows:
            if r["config"] not in best or r["median_ms"] < best[r["config"]]["median_ms"]:
                best[r["config"]] = r
        lives = []
        for cfg in cfgs:
            b = best[cfg.name]
            # The fastest generator setting alone, and onnxruntime with 1 and all threads (the runtime's
            # default): in the loop the tracker competes for the same cores.
            tries = [(b["backend"], b["opts"])]
            n = physical_cores()
            for opts in ({"intra": 1, "level": "all"}, {"intra": n, "level": "all"},
                         {"intra": n, "level": "all", "spin": False}):
                if ("onnxruntime", opts) not in tries:
                    tries.append(("onnxruntime", opts))
            for kind, opts in tries:
                lv = live_run(cfg, kind, opts, clip, frames, fps, tmp, ref)
                log.info(f"live {cfg.name} ({lv['setting']}): file {lv['file']['fps']:.1f} fps; "
                    f"paced at {fps:.0f}: {lv['paced']['fps']:.1f} fps, "
                    f"latency p50 {lv['paced']['latency_p50_ms']} ms")
                lives.append(lv)
    result = {"sweep": rows, "live": lives, "configs": {c.name: c.to_dict() for c in cfgs},
              "seconds": round(time.perf_counter() - t0, 1)}
    print("| config | GFLOP | setting | median ms | p95 ms | min ms |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['gflop']:.3f} | {r['setting']} | {r['median_ms']:.2f} | "
              f"{r['p95_ms']:.2f} | {r['min_ms']:.2f} |")
    print("\n| live loop | setting | file fps | track p50 | generate p50 | paced fps | dropped | "
          "latency p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for lv in lives:
        f, p = lv["file"], lv["paced"]
        st = f["stages_in_loop_ms"]
        print(f"| {lv['config']} | {lv['setting']} | {f['fps']:.1f} | {st['track']} | {st['generate']} | "
              f"{p['fps']:.1f} | {p['dropped']} | {p['latency_p50_ms']} | {p['latency_p95_ms']} |")
    if a.json:
        write_json(a.json, result)
    return 0


if __name__ == "__main__":
    run_cli(main)

"""Speed benchmark: `python -m bench [--quick] [--json out.json] [--configs tiny,small] [--backends ...]`.

Generator latency per config and backend (median and p95 of warm runs, FLOPs per frame, achieved GFLOP/s
against the device's peak), the live loop's stages one at a time (decode, mediapipe tracking, filter +
retarget, rasterise, the warp of the reference for an appearance config, compose: the face pasted back into
the picture at 1280x720, output) on a talking clip, and
puppet.live's threaded loop on that clip (fps and end-to-end latency) against the serial sum of its stages.
Peak memory. Prints markdown; --json writes it all.

Targets are random-weight generators of each config (speed doesn't depend on training). The clip is a
synthetic talking head made from the packaged portrait unless --clip names one.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from bench import generator as gen
from bench import live as live_bench
from bench import stages as stage_bench
from bench.machine import describe
from bench.timing import peak_rss_mb, summary, time_calls
from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.files import write_json

log = logging.getLogger(__name__)



def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny config, few runs: well under a minute on a CPU")
    p.add_argument("--json", metavar="OUT.json", help="write every number here")
    p.add_argument("--configs", help="comma-separated config names or .json config files "
                                     "(default: every named config; --quick: tiny)")
    p.add_argument("--backends", help="comma-separated: " + ", ".join(gen.CPU_BACKENDS + gen.CUDA_BACKENDS)
                   + " (default: the CPU ones, plus the CUDA ones when a GPU is present)")
    p.add_argument("--clip", help="a talking-head video to track and drive with (default: a synthetic one)")
    p.add_argument("--frames", type=int, help="clip frames to use (default 150; --quick 30)")
    p.add_argument("--live-config", help="config of the live-loop run (default: cpu on a CPU-only machine "
                                         "when that config exists, else small; --quick: tiny)")
    p.add_argument("--live-backend", default="auto", help="backend of the live-loop run (default auto)")
    p.add_argument("--no-live", action="store_true", help="skip the clip, stages and live loop")
    p.add_argument("--runs", type=int, help="timed generator runs per row (default 30; --quick 10)")
    p.add_argument("--budget", type=float, help="seconds per generator row at most (default 10; --quick 1.5)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: all usable cores)")
    a = p.parse_args(argv)
    from models.config import CONFIGS

    # every named config, cheapest first (a new one shows up here by itself)
    named = sorted(CONFIGS, key=lambda n: (CONFIGS[n].image_size, sum(CONFIGS[n].g_down_channels)))
    a.configs = a.configs or ("tiny" if a.quick else ",".join(named))
    if a.backends is None:
        a.backends = ",".join(gen.CPU_BACKENDS + (gen.CUDA_BACKENDS if torch.cuda.is_available() else ()))
    a.backends = [b.strip() for b in a.backends.split(",") if b.strip()]
    for b in a.backends:
        if b not in gen.CPU_BACKENDS + gen.CUDA_BACKENDS:
            known = ", ".join(gen.CPU_BACKENDS + gen.CUDA_BACKENDS)
            raise PuppetError(f"--backends {b}: unknown; use {known}")
    a.frames = a.frames or (30 if a.quick else 150)
    # the live loop runs the config meant for the machine: `cpu` (the CPU real-time one) without a GPU
    cpu_live = "cpu" if "cpu" in CONFIGS and not torch.cuda.is_available() else "small"
    a.live_config = a.live_config or ("tiny" if a.quick else cpu_live)
    a.runs = a.runs or (10 if a.quick else 30)
    a.budget = a.budget or (1.5 if a.quick else 10.0)
    for name in ("frames", "runs", "threads"):
        v = getattr(a, name)
        if v is not None and v < 1:
            raise PuppetError(f"--{name} {v}: must be at least 1")
    return a


def run(a: argparse.Namespace) -> dict:
    if a.threads:
        torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    result: dict = {"machine": describe(), "quick": a.quick, "generator": [], "ratios": {}}
    configs = [gen.parse_config(s.strip()) for s in a.configs.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="puppet-bench-") as tmp:
        tmp = Path(tmp)
        frames = lms0 = None
        if not a.no_live:
            clip = Path(a.clip) if a.clip else stage_bench.demo_clip(tmp / "clip.mp4", a.frames)
            log.info(f"clip {clip} ({'given' if a.clip else 'synthetic, packaged portrait'})")
            frames, decode_ms, fps = stage_bench.read_frames(clip, a.frames)
            if len(frames) < 3:
                raise PuppetError(f"{clip}: only {len(frames)} frames could be read; pass a longer clip")
            from puppet.faces.track import detect

            lms0 = detect(frames[0])
            if lms0 is None:
                raise PuppetError(f"{clip}: no face in the first frame; pass a clip that starts on a face")

        def target_for(cfg):
            """A random-weight target; with a clip, its first face is the reference (the live neutral)."""
            ref = () if frames is None else stage_bench.reference(frames[0], lms0, cfg.image_size)
            t = gen.random_target(cfg, *ref)
            # the clip's first frame is its picture, as puppet.finetune keeps the photo
            return t if frames is None else stage_bench.with_picture(t, frames[0], lms0)

        # Generator rows, config by config.
        for cfg in configs:
            log.info(f"generator {cfg.name}: {', '.join(a.backends)}")
            rows = gen.bench_config(target_for(cfg), a.backends, warmup=3, runs=a.runs, budget_s=a.budget)
            result["generator"] += rows
            by = {r["backend"]: r for r in rows if "median_ms" in r}
            if "torch" in by and "onnxruntime" in by:
                result["ratios"][f"{cfg.name}: onnxruntime vs torch (CPU) speed-up"] = round(
                    by["torch"]["median_ms"] / by["onnxruntime"]["median_ms"], 2)
            if "torch-cuda-fp32" in by and "torch-cuda-fp16-graph" in by:
                result["ratios"][f"{cfg.name}: fp16+graph vs fp32 (CUDA) speed-up"] = round(
                    by["torch-cuda-fp32"]["median_ms"] / by["torch-cuda-fp16-graph"]["median_ms"], 2)

        # Stages and the live loop, on the live config.
        if frames is not None:
            from puppet.live.runtime import load_backend

            cfg = gen.parse_config(a.live_config)
            target = target_for(cfg)
            backend = load_backend(a.live_backend, target, verbose=False)
            bname = getattr(backend, "name", a.live_backend)
            result["live_backend"] = backend.describe() if hasattr(backend, "describe") else bname
            log.info(f"stages on {len(frames)} frames ({cfg.name}, {bname})")
            stages = stage_bench.run_stages(frames, decode_ms, fps, target, backend.generate,
                                            tmp / "stages.mp4")
            xs = gen.random_inputs(target)
            with torch.inference_mode():
                stages["generate"] = summary(time_calls(lambda: backend.generate(*xs), 3, a.runs, a.budget))
            result["stages"] = stages
            log.info(f"live loop on {len(frames)} frames: the file, then paced at {fps:.0f} fps")
            runs = live_bench.file_and_paced(clip, frames, fps, target, backend, tmp)
            serial = live_bench.serial_sum_ms(stages, stages["generate"]["median_ms"])
            result["live"] = {
                "config": cfg.name,
                "backend": bname,
                "source_fps": round(fps, 2),
                "serial_sum_ms": round(serial, 3),
                "serial_fps": round(1000.0 / serial, 2),
                **runs,
            }
            if runs["file"]["fps"]:
                result["ratios"]["live loop: pipelined fps vs serial fps"] = round(
                    runs["file"]["fps"] / result["live"]["serial_fps"], 2)

    result["memory"] = {"peak_rss_mb": round(peak_rss_mb(), 1)}
    if torch.cuda.is_available():
        result["memory"]["gpu_peak_mb_max_over_rows"] = max(
            (r.get("gpu_peak_mb", 0.0) for r in result["generator"]), default=0.0)
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    return result


def _f(v, nd=1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def markdown(r: dict) -> str:
    m = r["machine"]
    cpu = m["cpu"]
    lines = [
        f"Machine: {cpu['model']}, {cpu['cores']} cores @ {_f(cpu['mhz'], 0)} MHz; torch {m['torch']} "
        f"({m['torch_threads']} threads), onnxruntime {m['onnxruntime']}"
        + (f"; GPU {m['gpu']['name']} (CUDA {m['gpu']['cuda']})" if m.get("gpu") else "; no GPU"),
        f"CPU peak (fp32): {_f(cpu['peak_gflops_fp32'])} GFLOP/s = {cpu['peak_assumption']}; "
        f"a 1024³ torch fp32 matmul reaches {_f(cpu['matmul_gflops_fp32'])} GFLOP/s here "
        "(% of peak below: of the higher of the two)",
        "",
        "| config | size | backend | median ms | p95 ms | fps | GFLOP/frame | GFLOP/s | % of peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["generator"]:
        if "skipped" in row:
            lines.append(f"| {row['config']} | {row['image_size']} | {row['backend']} | skipped: "
                         f"{row['skipped'][:120]} | | | | | |")
            continue
        frac = row.get("fraction_of_peak")
        lines.append(
            f"| {row['config']} | {row['image_size']} | {row['backend']} | {_f(row['median_ms'], 2)} | "
            f"{_f(row['p95_ms'], 2)} | {_f(row['fps'])} | {row['gflop_per_frame']:.3f} | "
            f"{_f(row['achieved_gflops'])} | {_f(frac * 100 if frac is not None else None)} |")
    if "stages" in r:
        s = r["stages"]
        lv = r["live"]
        lines += [
            "",
            f"Stages, one at a time, on {s['frames']} frames {s['frame_shape'][1]}x{s['frame_shape'][0]} "
            f"(face found in {s['face_found'] * 100:.0f}%), generator {lv['config']} / {lv['backend']}:",
            "",
            "| stage | median ms | p95 ms | in the live loop (p50 ms) |",
            "|---|---|---|---|",
        ]
        in_loop = dict(lv["file"]["stages_in_loop_ms"])
        in_loop["decode"] = in_loop.pop("capture", None)
        names = ("decode", "track", "filter_retarget", "rasterise", "warp", "generate", "compose", "output")
        for name in names:
            if name not in s:
                continue  # warp: appearance configs only
            lines.append(f"| {name} | {_f(s[name]['median_ms'], 2)} | {_f(s[name]['p95_ms'], 2)} | "
                         f"{_f(in_loop.get(name), 2)} |")
        if "compose" in s:
            c = s["compose"]
            lines += ["", f"compose: a {c['face']}² face pasted into the picture framed at "
                          f"{c['frame'][0]}x{c['frame'][1]} (the mask's box there {c['mask_box'][0]}x"
                          f"{c['mask_box'][1]}); in the loop, the live config's own face size."]
        lines += [
            "",
            f"Live loop ({lv['config']} / {lv['backend']}); serial sum of the stages "
            f"{_f(lv['serial_sum_ms'])} ms = {_f(lv['serial_fps'])} fps:",
            "",
            "| source | frames in / out / dropped | fps | latency p50 ms | latency p95 ms |",
            "|---|---|---|---|---|",
        ]
        for kind, label in (("file", "file, every frame"), ("paced", f"paced at {lv['source_fps']:.0f} fps")):
            x = lv[kind]
            lines.append(f"| {label} | {x['frames_in']} / {x['frames_out']} / {x['dropped']} | "
                         f"{_f(x['fps'])} | {_f(x['latency_p50_ms'])} | {_f(x['latency_p95_ms'])} |")
    if r["ratios"]:
        lines += ["", "Ratios (same machine, same run):", ""]
        lines += [f"- {k}: {v}x" for k, v in r["ratios"].items()]
    mem = r["memory"]
    lines += ["", f"Peak RSS {mem['peak_rss_mb']:.0f} MiB"
              + (f", GPU peak allocated {mem['gpu_peak_mb_max_over_rows']:.0f} MiB"
                 if "gpu_peak_mb_max_over_rows" in mem else "")
              + f"; whole run {r['seconds']} s."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    r = run(a)
    print(markdown(r))
    if a.json:
        write_json(a.json, r)
        log.info(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)

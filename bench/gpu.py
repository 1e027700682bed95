"""One prepared run for a lent GPU machine: meta-learning for a wall-clock budget, then the CUDA numbers.

    OUT=DIR bash bench/gpu.sh --minutes 6             # on the GPU machine (README: "A GPU run")
    python -m bench.gpu --dry-run --out DIR            # the same steps on a CPU, tiny, in about a minute (CI)

1. Meta-learning: puppet.train in a child process, from scratch (or --init META), of --config (default
   cpu-warp, the CPU live default: the GPU trains it for far longer than a CPU can) on the data pack
   (python -m bench.pack), bf16 autocast, --batch videos a step, for --minutes. The shipped form (fp16,
   puppet.training.ship) is written to OUT/meta_<config>.pt every minute and at the end, so a run cut short
   still brings a model back;
   OUT/losses.jsonl holds the curves, OUT/train.log the command's output.
2. Generator rows (bench.generator) for each shipped config at its size: torch eager fp32 / fp16 / bf16, the
   live runtime's fp16 + CUDA graph, onnxruntime's CUDA provider and TensorRT where they exist (skipped with
   the reason where they don't).
3. Parity with torch fp32 on CUDA: fp16 and bf16 eager, fp16 + CUDA graph (bench.cuda_parity).
4. The live path's stages that need no mediapipe: the warp of the reference (OpenCV, CPU), the generator,
   and compose (the face pasted back, framed at 1280x720), on a frame of the pack with its landmarks.

OUT/gpu.json and OUT/gpu.md are rewritten after each part; a part that fails is recorded with its error and
the next one still runs. Training gets --minutes; the measurements --bench-minutes, which cuts each row's
time budget to fit.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.files import write_json

log = logging.getLogger(__name__)

GPU_CONFIGS = ("cpu-warp", "cpu", "small", "paper-warp", "paper")  # the shipped and the GPU configs
DRY_CONFIGS = ("tiny", "tiny-warp")
BACKENDS = ("torch-cuda-fp32", "torch-cuda-fp16", "torch-cuda-bf16", "torch-cuda-fp16-graph",
            "onnxruntime-cuda", "tensorrt")
DRY_BACKENDS = BACKENDS + ("onnxruntime",)  # the CPU row too: the export it needs must work there


def parse_args(argv: list[str]):
    p = Parser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu_out",
                   help="folder for everything that should come back (default: $OUT, else gpu_out)")
    p.add_argument("--pack", default=".gpu/pack", help="the prepared training data (python -m bench.pack)")
    p.add_argument("--minutes", type=float, default=6.0, help="meta-learning wall-clock budget (default 6)")
    p.add_argument("--bench-minutes", type=float, default=1.5,
                   help="budget of the measurements (default 1.5)")
    p.add_argument("--config", default="cpu-warp", help="config to meta-learn (default cpu-warp)")
    p.add_argument("--batch", type=int, default=48, help="videos per step (default 48)")
    p.add_argument("--K", type=int, default=4, help="frames per video for the embedder (default 4)")
    p.add_argument("--workers", type=int, help="data loader processes (default: the CPU cores less 2)")
    p.add_argument("--lr-g", type=float, default=5e-4, help="E/G learning rate (default 5e-4)")
    p.add_argument("--lr-d", type=float, default=1e-3, help="D learning rate (default 1e-3)")
    p.add_argument("--init", help="start from this meta-learned model's weights (puppet.train --init) "
                                  "instead of from scratch")
    p.add_argument("--skip-train", action="store_true", help="only the measurements")
    p.add_argument("--dry-run", action="store_true",
                   help="on a CPU: tiny configs, a few steps, a tiny pack (made from the packaged portraits "
                        "when --pack doesn't exist): checks the whole script in about a minute")
    a = p.parse_args(argv)
    for name in ("minutes", "bench_minutes"):
        if getattr(a, name) <= 0:
            raise PuppetError(f"--{name.replace('_', '-')} {getattr(a, name)}: must be more than 0")
    if a.batch < 1 or a.K < 1:
        raise PuppetError("--batch and --K: must be at least 1")
    if a.dry_run:
        a.config, a.batch, a.K, a.workers = "tiny-warp", 2, 2, 0
        a.minutes, a.bench_minutes = min(a.minutes, 0.25), min(a.bench_minutes, 0.5)
    elif not torch.cuda.is_available():
        raise PuppetError("cuda: no CUDA GPU visible to torch; run bench.gpu on a GPU machine, or --dry-run")
    if a.workers is None:  # the cores this process may use (a container may show the host's count elsewhere)
        a.workers = max(1, min(12, len(os.sched_getaffinity(0)) - 2))
    return a


class Report:
    """gpu.json + gpu.md in OUT, rewritten as parts finish (a run cut short keeps what it measured)."""

    def __init__(self, out: Path, a):
        self.out = out
        from bench.machine import describe

        self.data: dict = {"machine": describe(), "args": {k: v for k, v in vars(a).items()},
                           "parts": {}, "errors": {}}

    def part(self, name: str, fn) -> None:
        t0 = time.time()
        try:
            self.data["parts"][name] = fn()
        except Exception as e:  # every part is independent: record why it failed and go on
            self.data["errors"][name] = f"{type(e).__name__}: {e}"
            log.error("%s failed: %s", name, self.data["errors"][name])
            traceback.print_exc()
        self.data.setdefault("seconds", {})[name] = round(time.time() - t0, 1)
        self.write()

    def write(self) -> None:
        write_json(self.out / "gpu.json", self.data)
        (self.out / "gpu.md").write_text(markdown(self.data), encoding="utf-8")


# ------------------------------------------------------------------------------------------ the parts


def dry_pack(path: Path) -> Path:
    """A tiny pack for --dry-run: synthetic talking clips of the packaged portraits at 64 px."""
    from puppet.data.prepare import main as prepare

    prepare(["--synthetic", "2", "--size", "64", "--max-frames", "12", "--out", str(path), "--no-progress"])
    return path


def train(a, out: Path, scratch: Path) -> dict:
    pack = Path(a.pack)
    if not (pack / "manifest.json").is_file():
        raise PuppetError(f"{pack}: no prepared data pack; make one with python -m bench.pack")
    name = a.config.replace("-", "_")
    shipped = out / f"meta_{name}.pt"
    cmd = [sys.executable, "-m", "puppet.train", "--data", str(pack), "--config", a.config,
           "--out", str(scratch / "meta.pt"), "--logdir", str(scratch / "tb"), "--ship-to", str(shipped),
           "--ship-every", "1", "--minutes", str(a.minutes), "--batch", str(a.batch), "--K", str(a.K),
           "--workers", str(a.workers), "--lr-g", str(a.lr_g), "--lr-d", str(a.lr_d), "--content", "face",
           "--ckpt-every", "100000", "--log-every", "25", "--image-every", "100000", "--no-progress"]
    if a.init:
        cmd += ["--init", a.init]
    if a.dry_run:
        cmd += ["--steps", "6", "--device", "cpu", "--log-every", "2"]
    log.info("meta-learning %s for %.1f min: %s", a.config, a.minutes, " ".join(cmd))
    t0 = time.time()
    with open(out / "train.log", "w", encoding="utf-8") as f:
        # A hard limit past the budget: a wedged data loader can't eat the measurements' time.
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=a.minutes * 60 + 240)
    seconds = time.time() - t0
    losses = scratch / "tb" / "losses.jsonl"
    rows = [json.loads(line) for line in losses.read_text().splitlines()] if losses.exists() else []
    if rows:
        (out / "losses.jsonl").write_text(losses.read_text())
    if proc.returncode != 0:
        tail = (out / "train.log").read_text(errors="replace").splitlines()[-5:]
        raise RuntimeError(f"puppet.train exited {proc.returncode}: {' | '.join(tail)}")
    from puppet.training.checkpoint import load_meta

    meta = load_meta(shipped)
    first = rows[0] if rows else {}
    last = rows[-1] if rows else {}
    return {"config": a.config, "steps": int(meta["step"]), "seconds": round(seconds, 1),
            "batch": a.batch, "K": a.K, "file": shipped.name, "mb": round(shipped.stat().st_size / 2**20, 2),
            "videos": int(meta["train"].get("videos", 0)) if "train" in meta else None,
            "first": first, "last": last,
            "steps_per_s": round(float(meta["step"]) / max(seconds, 1e-6), 2)}


def generators(a, budget_s: float) -> list[dict]:
    from bench import generator as gen

    configs = DRY_CONFIGS if a.dry_run else GPU_CONFIGS
    per_row = max(0.5, budget_s / (len(configs) * len(BACKENDS)))
    rows = []
    for name in configs:
        rows += gen.bench_config(gen.random_target(name), DRY_BACKENDS if a.dry_run else BACKENDS, warmup=3,
                                 runs=50, budget_s=per_row)
    return rows


def parity(a) -> list[dict]:
    if not torch.cuda.is_available():
        return [{"skipped": "no CUDA device"}]
    from bench.cuda_parity import parity as graph_parity
    from bench.generator import _CudaEager, random_target
    from export.checks import sample_inputs

    rows = []
    for name in GPU_CONFIGS:
        row = graph_parity(name)
        target = random_target(name)
        fp32 = _CudaEager(target, "torch-cuda-fp32")
        for kind in ("torch-cuda-fp16", "torch-cuda-bf16"):
            half = _CudaEager(target, kind)
            diffs = [(half.generate(*xs) - fp32.generate(*xs)).abs() for xs in sample_inputs(target, n=3)]
            row[f"{kind.removeprefix('torch-cuda-')}_eager_vs_cuda_fp32"] = {
                "max": max(float(d.max()) for d in diffs),
                "mean": sum(float(d.mean()) for d in diffs) / len(diffs)}
        rows.append(row)
    return rows


def stages(a, budget_s: float) -> dict:
    """warp, generate and compose on a pack frame (its stored landmarks: no tracker needed)."""
    import numpy as np

    from bench import generator as gen
    from bench import stages as stage_bench
    from bench.timing import summary, time_calls
    from puppet.data.dataset import Video, load_manifest
    from puppet.faces.warp import warp
    from puppet.live.runtime import load_backend

    pack = Path(a.pack)
    manifest = load_manifest(pack)
    video = Video(pack / manifest["videos"][0]["file"])
    frame, lms = video.frame(0), video.landmarks[0]
    config = "tiny-warp" if a.dry_run else "cpu-warp"
    size = gen.parse_config(config).image_size
    target = gen.random_target(config, *stage_bench.reference(frame, lms, size))
    ref_lms = np.asarray(target.ref_landmarks, np.float32)
    scale = size / video.size  # the clip's later expressions, moved onto the reference
    drive = [(ref_lms + (np.asarray(p, np.float32) - lms) * scale).astype(np.float32)
             for p in video.landmarks[: min(len(video), 16)]]
    ref_img = target.ref_image
    k = iter(range(10**9))
    out: dict = {"config": config, "size": size, "frame": f"{video.path.name} frame 0"}
    out["warp_cpu"] = summary(time_calls(lambda: warp(ref_img, ref_lms, drive[next(k) % len(drive)]),
                                         3, 200, budget_s / 3))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backend = load_backend("torch", target, device=device, verbose=False)
    xs = gen.random_inputs(target)
    sync = torch.cuda.synchronize if device == "cuda" else None
    with torch.inference_mode():
        ms = time_calls(lambda: backend.generate(*xs), 3, 200, budget_s / 3, sync=sync)
    out["generate"] = {"backend": backend.describe(), **summary(ms)}
    big = np.ascontiguousarray(np.kron(frame, np.ones((2, 2, 1), frame.dtype)))  # the pack frame at 2x
    ms, where = stage_bench.compose(big, lms * 2 + 0.5, size=size, n=100)
    out["compose_720p"] = {**summary(ms), **where}
    out["serial_ms"] = round(out["warp_cpu"]["median_ms"] + out["generate"]["median_ms"]
                             + out["compose_720p"]["median_ms"], 3)
    return out


# ------------------------------------------------------------------------------------------ output


def _f(v, nd=2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def markdown(d: dict) -> str:
    m = d["machine"]
    gpu = m.get("gpu") or {}
    lines = [f"# bench.gpu: {gpu.get('name', 'no GPU')} (CUDA {gpu.get('cuda', '-')}), torch {m['torch']}, "
             f"{m['cpu']['cores']} CPU cores", ""]
    p = d["parts"]
    if "train" in p:
        t = p["train"]
        last = t.get("last", {})
        lines += ["## Meta-learning", "",
                  f"{t['config']}: {t['steps']} steps in {t['seconds']} s ({t['steps_per_s']} steps/s), "
                  f"batch {t['batch']}, K {t['K']}, {t['videos']} videos; shipped form {t['file']} "
                  f"({t['mb']} MiB). "
                  f"Last logged: content {_f(last.get('content'), 3)}, region {_f(last.get('region'), 3)}, "
                  f"D margin {_f(last.get('d_margin'), 3)}.", ""]
    if "generators" in p:
        lines += ["## Generator at its size", "", "| config | size | backend | median ms | p95 ms | fps |",
                  "|---|---|---|---|---|---|"]
        for r in p["generators"]:
            if "skipped" in r:
                lines.append(f"| {r['config']} | {r['image_size']} | {r['backend']} | skipped: "
                             f"{r['skipped'][:100]} | | |")
            else:
                lines.append(f"| {r['config']} | {r['image_size']} | {r['backend']} | {_f(r['median_ms'])} | "
                             f"{_f(r['p95_ms'])} | {_f(r['fps'], 1)} |")
        lines.append("")
    if "parity" in p:
        lines += ["## Parity with torch fp32 on CUDA (max / mean abs, images in [-1, 1])", "",
                  "| config | fp16 eager | bf16 eager | fp16 + CUDA graph | CUDA fp32 vs CPU fp32 |",
                  "|---|---|---|---|---|"]
        for r in p["parity"]:
            if "skipped" in r:
                lines.append(f"| skipped: {r['skipped']} | | | | |")
                continue

            def pair(x):
                return f"{x['max']:.1e} / {x['mean']:.1e}" if x else "-"
            lines.append(f"| {r['config']} | {pair(r.get('fp16_eager_vs_cuda_fp32'))} | "
                         f"{pair(r.get('bf16_eager_vs_cuda_fp32'))} | "
                         f"{pair(r.get('cuda_fp16_graph_vs_cuda_fp32'))} "
                         f"| {pair(r.get('cuda_fp32_vs_cpu_fp32'))} |")
        lines.append("")
    if "stages" in p:
        s = p["stages"]
        lines += [f"## Live stages without the tracker ({s['config']}, {s['size']}²; {s['frame']})", "",
                  "| stage | median ms | p95 ms |", "|---|---|---|",
                  f"| warp (CPU) | {_f(s['warp_cpu']['median_ms'])} | {_f(s['warp_cpu']['p95_ms'])} |",
                  f"| generate ({s['generate']['backend']}) | {_f(s['generate']['median_ms'])} | "
                  f"{_f(s['generate']['p95_ms'])} |",
                  f"| compose at 1280x720 | {_f(s['compose_720p']['median_ms'])} | "
                  f"{_f(s['compose_720p']['p95_ms'])} |", "",
                  f"Serial sum {_f(s['serial_ms'])} ms.", ""]
    for name, err in d["errors"].items():
        lines.append(f"- {name} failed: {err}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    import tempfile

    a = parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out, a)
    with tempfile.TemporaryDirectory(prefix="puppet-gpu-") as scratch:
        if a.dry_run and not (Path(a.pack) / "manifest.json").is_file():
            a.pack = str(dry_pack(Path(scratch) / "pack"))
        if not a.skip_train:
            report.part("train", lambda: train(a, out, Path(scratch)))
        budget = a.bench_minutes * 60
        report.part("generators", lambda: generators(a, budget * 0.6))
        report.part("parity", lambda: parity(a))
        report.part("stages", lambda: stages(a, budget * 0.2))
    print(markdown(report.data))
    if report.data["errors"]:
        raise PuppetError(f"{out / 'gpu.json'}: {len(report.data['errors'])} part(s) failed "
                          f"({', '.join(report.data['errors'])}); see gpu.md and train.log there")
    return 0


if __name__ == "__main__":
    run_cli(main)

"""Generator latency per backend and config, with FLOPs per frame and the achieved fraction of peak.

Speed does not depend on training, so each config's target is built from random weights (models/ +
puppet.target). Every CUDA row moves the sketch to the GPU and the image back, as the live loop does. A config
with the appearance path (`cpu-warp`, ...) also gets the reference picture warped to the landmarks; the warp
itself is timed as a stage of its own (bench.stages), not in these rows.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.machine import cpu_peak, gpu_peak
from bench.timing import summary, time_calls

CPU_BACKENDS = ("torch", "onnxruntime")
CUDA_BACKENDS = ("torch-cuda-fp32", "torch-cuda-fp16", "torch-cuda-bf16", "torch-cuda-fp16-graph",
                 "onnxruntime-cuda", "tensorrt")
_EAGER_DTYPES = {"torch-cuda-fp32": torch.float32, "torch-cuda-fp16": torch.float16,
                 "torch-cuda-bf16": torch.bfloat16}


def parse_config(spec: str):
    """A config name, or a .json file holding a config dict (to try variants without editing models/)."""
    from models.config import get_config
    from puppet.errors import PuppetError

    if spec.endswith(".json"):
        p = Path(spec)
        try:
            cfg = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise PuppetError(f"{p}: can't read a config dict from it ({e}); pass a JSON object") from None
        cfg.setdefault("name", p.stem)
        return get_config(cfg)
    return get_config(spec)


def random_target(config, ref_landmarks: np.ndarray | None = None, ref_image: np.ndarray | None = None,
                  seed: int = 0):
    """A puppet.target.Target whose generator and psi are random (seeded): what speed measurements need.
    Without a reference face: rough landmarks and a noise picture (what an appearance generator warps)."""
    from models.config import get_config
    from models.generator import Generator
    from models.spectral import remove_spectral_norm
    from puppet.target import Target

    cfg = get_config(config)
    size = cfg.image_size
    torch.manual_seed(seed)
    G = Generator(cfg).eval()
    remove_spectral_norm(G)
    with torch.no_grad():
        psi = G.psi_from_embedding(torch.randn(1, cfg.emb_dim))
        if cfg.takes_warp:
            # The correction head starts at zero (the output is then the warp itself): give it random
            # weights, so that parity checks see the network's arithmetic, not only the warp passed through.
            torch.nn.init.normal_(G.body.delta.weight, std=0.02)
    if ref_landmarks is None:
        ref_landmarks = _mean_face(size)
    if ref_image is None:
        ref_image = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Target(
        config=cfg,
        generator={k: v.detach().clone() for k, v in G.state_dict().items()},
        psi=psi.detach().clone(),
        ref_landmarks=np.asarray(ref_landmarks, np.float32),
        ref_image=ref_image,
        meta={"sources": [], "steps": 0, "note": "random weights (bench)",
              "path": f"random:{cfg.name}"},
    )


def _mean_face(size: int) -> np.ndarray:
    """A rough frontal 68-point face in the crop (only used where no real landmarks are at hand)."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(0.3 * size, 0.7 * size, (68, 2)).astype(np.float32)
    pts[36] = (0.35 * size, 0.42 * size)
    pts[45] = (0.65 * size, 0.42 * size)
    return pts


def random_sketch(size: int, device="cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(1, 3, size, size, generator=g) * 2 - 1).to(device)


def random_inputs(target) -> tuple[torch.Tensor, ...]:
    """generate()'s arguments for a speed run: what puppet.feed builds for the target's landmarks moved a
    little (the sketch, and the reference warped to them for a generator that takes it)."""
    from puppet.feed import Feeder

    moved = np.asarray(target.ref_landmarks, np.float32) + np.float32(0.01 * target.image_size)
    return Feeder(target)(moved).tensors


class _CudaEager:
    """PersonGenerator in torch eager on CUDA in fp32, fp16 or bf16 (the runtime's torch backend: fp16 + CUDA
    graph)."""

    def __init__(self, target, name: str):
        self.dtype = _EAGER_DTYPES[name]
        self.pg = target.person_generator("cuda").to(self.dtype)
        self.name = name

    @torch.inference_mode()
    def generate(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.pg(*(x.to("cuda", self.dtype) for x in inputs)).float().cpu()


def load(name: str, target):
    """A backend with .generate(*inputs) -> image, or raise with the reason it is unavailable.

    torch and onnxruntime: the live runtime's CPU backends; torch-cuda-fp16-graph: its torch backend on a GPU
    (fp16 replayed from a CUDA graph); onnxruntime-cuda: its onnxruntime backend with the CUDA provider (FP16
    ONNX); tensorrt: its TensorRT backend. fp32/fp16/bf16 eager: for comparison.
    """
    from puppet.live.runtime import load_backend

    if name in ("torch", "onnxruntime"):
        return load_backend(name, target, device="cpu", verbose=False)
    if name in CUDA_BACKENDS:
        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device")
        if name == "tensorrt":
            return load_backend("tensorrt", target, device="cuda", verbose=False)
        if name == "onnxruntime-cuda":
            return load_backend("onnxruntime", target, device="cuda", verbose=False)
        if name == "torch-cuda-fp16-graph":
            return load_backend("torch", target, device="cuda", verbose=False)
        return _CudaEager(target, name)
    raise ValueError(f"unknown backend {name!r}")


def bench_backend(name: str, target, warmup: int, runs: int, budget_s: float, flops: int) -> dict:
    """Latency of backend `name` on `target`: a result row, or a row with `skipped` and the reason."""
    cfg = target.config
    row = {"config": cfg.name, "image_size": target.image_size, "backend": name}
    t0 = time.perf_counter()
    try:
        backend = load(name, target)
    except Exception as e:  # unavailable backends are reported, with the reason, never faked
        row["skipped"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        return row
    row["load_s"] = round(time.perf_counter() - t0, 3)
    if hasattr(backend, "describe"):
        row["describe"] = backend.describe()
    cuda = name in CUDA_BACKENDS
    sync = torch.cuda.synchronize if cuda else None
    xs = random_inputs(target)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        out = backend.generate(*xs)
        if tuple(out.shape) != tuple(xs[0].shape) or not torch.isfinite(out).all():
            row["skipped"] = f"bad output {tuple(out.shape)} (finite: {bool(torch.isfinite(out).all())})"
            return row
        times = time_calls(lambda: backend.generate(*xs), warmup, runs, budget_s, sync=sync)
    row.update(summary(times))
    row["fps"] = round(1000.0 / row["median_ms"], 2)
    row["gflop_per_frame"] = round(flops / 1e9, 4)
    achieved = flops / (row["median_ms"] / 1000.0) / 1e9
    row["achieved_gflops"] = round(achieved, 3)
    if cuda:
        row["device"] = torch.cuda.get_device_name(0)
        row["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        peak = gpu_peak(row["device"])
        half = "fp16" in name or "bf16" in name or name in ("tensorrt", "onnxruntime-cuda")
        if peak:
            row["peak_gflops"] = (peak[0] if half else peak[1]) * 1000.0
            row["peak_basis"] = "dense fp16 tensor (data sheet)" if half else "fp32 non-tensor (data sheet)"
    else:
        row["device"] = f"cpu ({torch.get_num_threads()} threads)"
        row["peak_gflops"], row["peak_basis"] = cpu_peak(torch.get_num_threads())
    if row.get("peak_gflops"):
        row["fraction_of_peak"] = round(achieved / row["peak_gflops"], 4)
    with contextlib.suppress(Exception):
        close = getattr(backend, "close", None)
        if close:
            close()
    return row


def bench_config(target, backends, warmup: int, runs: int, budget_s: float) -> list[dict]:
    """All backend rows for one target (bench uses random-weight targets of each config)."""
    pg = target.person_generator("cpu")
    from models.flops import flops as count_flops

    # FlopCounterMode: 2 per multiply-add of convs and matmuls; norms and activations are not counted
    flops = count_flops(pg, *random_inputs(target))
    params = sum(p.numel() for p in pg.parameters())
    rows = []
    for name in backends:
        row = bench_backend(name, target, warmup, runs, budget_s, flops)
        row["params_m"] = round(params / 1e6, 3)
        rows.append(row)
    return rows

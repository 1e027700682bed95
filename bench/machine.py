"""What machine a benchmark ran on, and its peak arithmetic rate (so FLOP/s can be read as a fraction).

Peaks are estimates with stated assumptions, never measurements:
- CPU fp32: cores × clock × FLOPs/cycle/core. FLOPs/cycle from the vector units: 2 FMA pipes × lanes × 2.
  AVX-512 (2 × 16 × 2 = 64; some Xeons have one 512-bit FMA pipe, giving 32), AVX2+FMA (2 × 8 × 2 = 32),
  except AMD Zen 1/Zen+ (family 0x17, model < 0x30) whose two FMA pipes are 128 bits wide (2 × 4 × 2 = 16).
  The clock is /proc/cpuinfo's "cpu MHz" (the base/TSC clock in a VM; boost clocks are higher). So a row
  can pass 100%: the cores run above base, or the convolution needs fewer multiplies than the direct count
  FlopCounterMode reports (Winograd). A dense 1024³ matmul's rate is reported beside it as a measured bar.
- CUDA: dense tensor-core rates from NVIDIA's data sheets (FP16/BF16 inputs with FP32 accumulation, no
  sparsity; the SXM parts' numbers, PCIe parts are lower). GeForce cards accumulate FP16 in FP32 at half the
  FP16-accumulate rate; the table keeps the FP32-accumulate figure, which is what torch uses.
"""

from __future__ import annotations

import functools
import platform
import re
from pathlib import Path

# name substring (lower case) -> (dense fp16 tensor TFLOP/s with fp32 accumulation, fp32 non-tensor TFLOP/s)
GPU_PEAKS_TFLOPS: dict[str, tuple[float, float]] = {
    "h200": (989.0, 67.0),
    "h100 pcie": (756.0, 51.0),
    "h100": (989.0, 67.0),
    "a100": (312.0, 19.5),
    "l40s": (362.0, 91.6),
    "l4": (121.0, 30.3),
    "a10": (125.0, 31.2),
    "t4": (65.0, 8.1),
    "v100": (125.0, 15.7),
    "rtx 4090": (165.2, 82.6),
    "rtx 3090": (35.6, 35.6),
}


def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (Linux), or {} elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


def cpu_flops_per_cycle(info: dict[str, str]) -> int | None:
    """fp32 FLOPs per cycle per core, from the ISA flags (see the module docstring); None if unknown."""
    flags = set(info.get("flags", "").split())
    if not flags:
        return None
    vendor = info.get("vendor_id", "")
    family = int(info.get("cpu family", "0") or 0)
    model = int(info.get("model", "0") or 0)
    if "avx512f" in flags:
        return 64
    if "avx2" in flags and "fma" in flags:
        if vendor == "AuthenticAMD" and family == 0x17 and model < 0x30:
            return 16  # Zen 1 / Zen+: 2 × 128-bit FMA
        return 32
    if "avx" in flags:
        return 16  # 256-bit add + mul, no FMA
    if "sse2" in flags:
        return 8
    return None


def cpu_info(threads: int | None = None) -> dict:
    """CPU model, cores, clock and the estimated fp32 peak (GFLOP/s) for `threads` cores (all usable)."""
    info = _cpuinfo()
    from puppet.live.runtime import physical_cores

    cores = physical_cores()  # what the runtime gives onnxruntime; hyper-threads share a core's vector units
    n = min(threads or cores, cores)
    mhz = float(info["cpu MHz"]) if "cpu MHz" in info else None
    fpc = cpu_flops_per_cycle(info)
    peak = n * mhz * 1e-3 * fpc if (mhz and fpc) else None
    return {
        "model": info.get("model name", platform.processor() or "unknown"),
        "cores": cores,
        "mhz": mhz,
        "flops_per_cycle_fp32": fpc,
        "peak_gflops_fp32": peak,
        "peak_assumption": (
            f"{n} cores x {mhz:.0f} MHz x {fpc} fp32 FLOPs/cycle (ISA estimate, base clock)"
            if peak
            else "unknown (no /proc/cpuinfo clock or flags)"
        ),
    }


@functools.lru_cache
def matmul_gflops(threads: int, n: int = 1024, repeats: int = 5) -> float:
    """The best fp32 rate of an n x n x n torch.mm on the CPU with `threads` threads: what a dense,
    well-blocked kernel reaches here (the ISA peak assumes the base clock; boost can beat it)."""
    import time

    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(prev)
    return 2 * n**3 / best / 1e9


def cpu_peak(threads: int) -> tuple[float, str]:
    """(fp32 GFLOP/s, what it is): the ISA estimate for `threads` cores, or the measured matmul rate when the
    cores run faster than the estimate's base clock."""
    est = cpu_info(threads)
    mm = matmul_gflops(threads)
    if est["peak_gflops_fp32"] is None or mm > est["peak_gflops_fp32"]:
        return round(mm, 1), f"measured 1024³ fp32 matmul with {threads} threads (above the ISA estimate)"
    return round(est["peak_gflops_fp32"], 1), est["peak_assumption"]


def gpu_peak(name: str) -> tuple[float, float] | None:
    """(fp16 tensor, fp32) dense peak TFLOP/s for a CUDA device name, or None when not in the table."""
    low = name.lower()
    for key in sorted(GPU_PEAKS_TFLOPS, key=len, reverse=True):  # "h100 pcie" before "h100"
        if re.search(r"\b" + re.escape(key) + r"\b", low):
            return GPU_PEAKS_TFLOPS[key]
    return None


def describe() -> dict:
    """Everything BENCHMARKS.md states about the machine: CPU, versions, GPU if any."""
    import torch

    d = {
        "cpu": {**cpu_info(), "matmul_gflops_fp32": round(matmul_gflops(torch.get_num_threads()), 1)},
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import onnxruntime

        d["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        d["onnxruntime"] = None
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        peak = gpu_peak(name)
        d["gpu"] = {
            "name": name,
            "cuda": torch.version.cuda,
            "peak_tflops_fp16_tensor": peak[0] if peak else None,
            "peak_tflops_fp32": peak[1] if peak else None,
        }
    return d

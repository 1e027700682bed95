"""GPU parity: the runtime's torch backend on CUDA (fp16 + CUDA graph) against fp32, per config.

    python -m bench.cuda_parity [--configs tiny,small,cpu,paper,cpu-warp,...] [--json out.json]

For each config: a random-weight target (bench.generator.random_target), sketches drawn with the one
rasteriser with, for an appearance config, the matching warps of the reference (export.checks.sample_inputs),
and the max / mean absolute difference of
  - torch CUDA fp32 eager vs torch CPU fp32 (the GPU's fp32 arithmetic), and
  - the live runtime's torch backend on CUDA (fp16 + CUDA graph: what the live loop runs) vs torch CUDA fp32.
"""

from __future__ import annotations

import json
import sys

import torch

from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli


def parity(config: str) -> dict:
    from bench.generator import random_target
    from export.checks import sample_inputs
    from puppet.live.runtime import load_backend

    target = random_target(config)
    samples = sample_inputs(target, n=3)  # (sketch,) or (sketch, warped)
    cpu = target.person_generator("cpu")
    cuda32 = target.person_generator("cuda")
    graph16 = load_backend("torch", target, device="cuda", verbose=False)
    row = {"config": config, "image_size": target.image_size, "backend": graph16.describe()}
    d32, d16 = [], []
    with torch.inference_mode():
        for xs in samples:
            ref = cpu(*xs)
            out32 = cuda32(*(x.cuda() for x in xs)).float().cpu()
            out16 = graph16.generate(*xs)
            d32.append((out32 - ref).abs())
            d16.append((out16 - out32).abs())
    row["cuda_fp32_vs_cpu_fp32"] = {"max": max(float(d.max()) for d in d32),
                                    "mean": sum(float(d.mean()) for d in d32) / len(d32)}
    row["cuda_fp16_graph_vs_cuda_fp32"] = {"max": max(float(d.max()) for d in d16),
                                           "mean": sum(float(d.mean()) for d in d16) / len(d16)}
    return row


def main(argv: list[str]) -> int:
    p = Parser(prog="python -m bench.cuda_parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="tiny,small,cpu,paper,tiny-warp,cpu-warp,paper-warp")
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise PuppetError("cuda: no CUDA GPU visible to torch; run bench.cuda_parity on a machine with one")
    rows = [parity(c) for c in a.configs.split(",")]
    print("| config | size | CUDA fp32 vs CPU fp32 max / mean | fp16 + CUDA graph vs CUDA fp32 max / mean |")
    print("|---|---|---|---|")
    for r in rows:
        a32, a16 = r["cuda_fp32_vs_cpu_fp32"], r["cuda_fp16_graph_vs_cuda_fp32"]
        print(f"| {r['config']} | {r['image_size']} | {a32['max']:.2e} / {a32['mean']:.2e} "
              f"| {a16['max']:.2e} / {a16['mean']:.2e} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
        print(f"wrote {a.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)

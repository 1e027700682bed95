#!/usr/bin/env bash
# The GPU rows of BENCHMARKS.md, for a machine with a CUDA GPU:
#     bash bench/cuda.sh            # writes bench-cuda.json and bench-cuda.md into $OUT (or the current folder)
# Generator rows only (--no-live): torch and onnxruntime on the CPU, torch CUDA fp32 / fp16 eager, the runtime's
# torch backend (fp16 + CUDA graph) and TensorRT (skipped with the reason when TensorRT doesn't import).
# The live loop needs mediapipe, which that machine's image lacks.
# Then bench.cuda_parity: torch CUDA fp16 + CUDA graph vs fp32 parity per config.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv || true
python3 -m bench --no-live --configs tiny,small,paper --runs 50 --json "$out/bench-cuda.json" | tee "$out/bench-cuda.md"
# torch CUDA fp16 + CUDA graph vs fp32 parity, per config.
python3 -m bench.cuda_parity --configs tiny,small,cpu,paper --json "$out/parity-cuda.json" | tee "$out/parity-cuda.md"

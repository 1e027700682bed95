#!/usr/bin/env bash
# The one command for a lent GPU machine: meta-learning for a wall-clock budget, then the CUDA rows of
# BENCHMARKS.md (bench/gpu.py says what each part does). Everything that should come back goes to $OUT
# (or ./gpu_out): the shipped-form model (rewritten every minute), losses.jsonl, train.log, gpu.json, gpu.md.
#     bash bench/gpu.sh --minutes 6 [--pack .gpu/pack] [--batch 48]      # the data pack: python -m bench.pack
#     bash bench/gpu.sh --skip-train                                      # the measurements alone
#     bash bench/gpu.sh --dry-run                                         # on a CPU, tiny: what CI runs
# PYTHON names the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true
exec "${PYTHON:-python3}" -m bench.gpu "$@"

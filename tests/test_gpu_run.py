"""The prepared GPU run (bench/gpu.sh), dry: the same script on the CPU with a tiny config, so that a typo, an
import the GPU machine lacks or a wrong path fails here and not in a lent GPU's 15 minutes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_dry_run_brings_back_a_model_and_the_tables(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(ROOT / "bench" / "gpu.sh"), "--dry-run", "--pack", str(tmp_path / "none")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    # What comes back from the GPU machine: at most 8 files, the model in the shipped form.
    assert {"gpu.json", "gpu.md", "train.log", "losses.jsonl", "meta_tiny_warp.pt"} <= names
    assert len(names) <= 8
    report = json.loads((out / "gpu.json").read_text())
    assert report["errors"] == {}
    assert report["parts"]["train"]["steps"] == 6
    rows = report["parts"]["generators"]
    assert {r["config"] for r in rows} == {"tiny", "tiny-warp"}
    # No GPU here: every CUDA row says why it was skipped, the CPU row was measured.
    assert all("skipped" in r for r in rows if r["backend"] != "onnxruntime")
    assert all(r["median_ms"] > 0 for r in rows if r["backend"] == "onnxruntime")
    assert report["parts"]["stages"]["compose_720p"]["frame"] == [1280, 720]

    # The model that comes back is a meta-learned checkpoint fine-tuning starts from.
    from puppet.training.checkpoint import load_meta

    meta = load_meta(out / "meta_tiny_warp.pt")
    assert meta["step"] == 6 and "opt_eg" not in meta
    assert meta["train"]["region_weight"] > 0 and meta["train"]["contrast"] > 0
    assert all(v.dtype == torch.float16 for v in meta["generator"].values() if v.is_floating_point())


def test_gpu_script_refuses_to_run_without_a_gpu_or_a_pack(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--minutes", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode == 0:
        pytest.skip("a CUDA GPU is visible here")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cuda: no CUDA GPU")

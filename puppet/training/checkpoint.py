"""The meta-learned checkpoint format: what python -m puppet.train writes, puppet.training.ship shrinks
and fine-tuning starts from.

A checkpoint is a dict of plain tensors and values (torch.load(weights_only=True) reads it):
{"format": FORMAT, "version": VERSION, "config", "num_videos", "embedder", "generator", "discriminator",
"step", ...}; a training run's checkpoint adds the optimisers, loss scalers and rng_state().
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import torch

from puppet.errors import PuppetError
from puppet.files import check_format

FORMAT = "puppet-meta"
VERSION = 1

SHIPPED_META = Path(__file__).resolve().parents[2] / "models" / "weights" / "meta_cpu_warp.pt"


def shipped_meta() -> Path:
    """The meta-learned model that ships with puppet (MODEL_CARD.md); a one-line error if it is missing."""
    if not SHIPPED_META.is_file():
        raise PuppetError(f"{SHIPPED_META}: the shipped meta-learned model is missing (a partial install?); "
                          f"reinstall puppet, pass --checkpoint META, or --from-scratch --config NAME")
    return SHIPPED_META


def load_meta(path: str | os.PathLike) -> dict:
    """Read a meta-learned checkpoint (weights_only): {"config", "num_videos", "embedder", "generator",
    "discriminator", "step", ...}. A missing, unreadable or foreign file is a one-line PuppetError. Weights
    may be stored in fp16 (the shipped model): load_state_dict casts them to the networks' fp32."""
    path = Path(path)
    fix = "train one with python -m puppet.train --data DATA --config tiny|small|cpu|paper --out meta.pt"
    if not path.is_file():
        raise PuppetError(f"{path}: meta-learned checkpoint not found; {fix}")
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, not a torch file, or a pickle with code in it
        raise PuppetError(f"{path}: not a readable checkpoint ({type(e).__name__}); {fix}") from None
    check_format(meta, path, FORMAT, VERSION, "meta-learned checkpoint", fix)
    for key in ("config", "num_videos", "embedder", "generator", "discriminator"):
        if key not in meta:
            raise PuppetError(f"{path}: checkpoint lacks '{key}' (damaged or from another tool); {fix}")
    return meta


def weights_digest(embedder: dict, generator: dict, discriminator: dict) -> str:
    """sha256 over every tensor of the three state dicts (key order sorted): equal digests, equal weights."""
    h = hashlib.sha256()
    for name, sd in (("E", embedder), ("G", generator), ("D", discriminator)):
        for k in sorted(sd):
            t = sd[k].detach().to("cpu").contiguous()
            h.update(f"{name}.{k}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def rng_state() -> dict:
    """Every RNG's state as plain tensors and values (weights_only loadable)."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_version), "state": [int(v) for v in py_state], "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states rng_state() saved (CUDA's only where the same number of GPUs is present)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])

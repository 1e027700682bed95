"""The engine cache: an engine is loaded only if this TensorRT, on this GPU, built it from this model.

A serialized TensorRT engine runs only on the TensorRT version and the GPU model that built it, and it is
only right for the exact ONNX file (or target) and build settings it came from. Each engine gets a JSON
sidecar (`mona.engine.json`) holding a key: a hash of all of those. A missing sidecar, or a key that differs
from the one computed now, means a stale or foreign engine: it is rebuilt, never loaded.

This module is plain Python (no TensorRT, no GPU), so its logic is tested everywhere; the TensorRT version
and GPU identity come in as strings.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from puppet.files import atomic_write_bytes

KEY_FORMAT = "puppet-engine-key/1"  # bump when what goes into the key changes


@dataclass(frozen=True)
class BuildSettings:
    """Everything about a build, other than the model and the machine, that changes the engine."""

    precision: str = "fp16"  # what the engine computes in (normalisation stays FP32 either way)
    workspace_gb: float = 4.0
    route: str = "strongly-typed"  # or "fp16-flag" (TensorRT 10.0-10.11), "torch-tensorrt"


@dataclass(frozen=True)
class DeviceIdentity:
    """The TensorRT version and GPU an engine is built for (strings: TensorRT and torch give them)."""

    trt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"

    def short_key(self) -> str:
        """A short hash of the device alone: it names the timing cache, which is also device-specific."""
        text = json.dumps([KEY_FORMAT, self.trt_version, self.gpu_name, self.compute_capability])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def engine_key(device: DeviceIdentity, model_sha256: str, settings: BuildSettings) -> str:
    """The cache key: sha256 over the device, the model file's hash and the build settings."""
    payload = {
        "format": KEY_FORMAT,
        "device": asdict(device),
        "model_sha256": model_sha256,
        "settings": asdict(settings),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def timing_cache_path(engine_path: str | os.PathLike, device: DeviceIdentity) -> Path:
    """The builder's timing cache beside the engine, named for the device so another GPU never reuses it."""
    p = Path(engine_path)
    return p.with_name(f"{p.name}.{device.short_key()}.timing")


def read_sidecar(engine_path: str | os.PathLike) -> dict | None:
    try:
        meta = json.loads(sidecar_path(engine_path).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_fresh(engine_path: str | os.PathLike, key: str) -> bool:
    """True only when the engine file exists, its sidecar holds exactly `key`, and the file is the one the
    sidecar vouches for (same sha256: not truncated or replaced behind the cache's back)."""
    if not Path(engine_path).is_file():
        return False
    meta = read_sidecar(engine_path)
    if meta is None or meta.get("key") != key:
        return False
    return meta.get("engine_sha256") == file_sha256(engine_path)


def write_engine(engine_path: str | os.PathLike, data: bytes, key: str, info: dict | None = None) -> Path:
    """Write the engine and then its sidecar, both atomically.

    The old sidecar goes first: should the process die between the two writes, the new engine has no
    sidecar and is rebuilt next time, rather than an old key vouching for a new file.
    """
    engine_path = Path(engine_path)
    sidecar_path(engine_path).unlink(missing_ok=True)
    atomic_write_bytes(engine_path, data)
    write_sidecar(engine_path, key, info)
    return engine_path


def write_sidecar(engine_path: str | os.PathLike, key: str, info: dict | None = None) -> None:
    """Vouch for the engine file as it is now: its key and its sha256 (for files written by other tools)."""
    meta = {"key": key, "engine_sha256": file_sha256(engine_path), **(info or {})}
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(sidecar_path(engine_path), text.encode())


def load_fresh_engine(engine_path: str | os.PathLike, key: str) -> bytes | None:
    """The engine's bytes when it is fresh for `key` and intact (sha256 as in the sidecar), else None."""
    if not is_fresh(engine_path, key):
        return None
    data = Path(engine_path).read_bytes()
    meta = read_sidecar(engine_path) or {}
    if meta.get("engine_sha256") != hashlib.sha256(data).hexdigest():
        return None  # truncated or replaced behind our back
    return data

"""The engine cache, the builder's side: writing an engine with the sidecar that vouches for it.

Finding a fresh engine (the key over TensorRT version, GPU, ONNX hash and build settings, and the sidecar
check) is `puppet.artifacts`, which the runtime uses without importing any builder; this module adds
what only a builder does: write the engine, its sidecar, and name the timing cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from puppet.artifacts import (
    DeviceIdentity,
    file_sha256,
    sidecar_path,
)
from puppet.files import atomic_write_bytes, write_json


def timing_cache_path(engine_path: str | os.PathLike, device: DeviceIdentity) -> Path:
    """The builder's timing cache beside the engine, named for the device so another GPU never reuses it."""
    p = Path(engine_path)
    return p.with_name(f"{p.name}.{device.short_key()}.timing")


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
    write_json(sidecar_path(engine_path), dict(sorted(meta.items())))

"""A target's exported artifacts, the cached ONNX file and the cached TensorRT engine: where they live,
when they are fresh, and getting one (`onnx_for`, `engine_for`) for the live runtime, which then only runs
the file it is handed.

Building is export's job (export.onnx, export.trt), run here as a child process when nothing fresh is cached
(`build`); export writes where this module says and checks freshness with it. This module is plain Python
plus `onnx` for reading metadata: no exporter, no TensorRT builder, so the live process never loads them.

An engine runs only on the TensorRT version and the GPU model that built it, and it is only right for the
exact ONNX file and build settings it came from. Each engine gets a JSON sidecar (`mona.engine.json`) holding
a key: a hash of all of those. A missing sidecar, or a key that differs from the one computed now, means a
stale or foreign engine: it is rebuilt, never loaded. An ONNX file is fresh when its metadata names the same
target content, precision, opset and export format.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from puppet.errors import PuppetError

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17  # InstanceNormalization/Resize as TensorRT 10's parser reads them (it takes opsets 9..22)
ONNX_FORMAT = "1"  # bump when the exported graph changes for the same target (re-exports cached files)
KEY_FORMAT = "puppet-engine-key/1"  # bump when what goes into the engine key changes

ROUTE_STRONG = "strongly-typed"
ROUTE_FP16_FLAG = "fp16-flag"
STRONGLY_TYPED_FROM = (10, 12)  # from here on, precision comes from the ONNX graph (weak typing deprecated)
DEFAULT_WORKSPACE_GB = 4.0
INSTALL_HINT = 'pip install "puppet[trt]"'


# ---------------------------------------------------------------- targets and their ONNX files

def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def target_path(target) -> Path | None:
    """The file a target came from: the path itself, or the path puppet.target.load_target noted (with the
    file's hash) in a Target's meta; None for an object made in memory."""
    if isinstance(target, (str, os.PathLike)):
        return Path(target)
    meta = getattr(target, "meta", {})
    return Path(meta["path"]) if meta.get("path") and meta.get("sha256") else None


def target_fingerprint(target) -> str:
    """sha256 of a target: of its file (hashed when loaded, or now for a path), else of its generator
    weights, psi and config."""
    if isinstance(target, (str, os.PathLike)):
        return file_sha256(target)
    meta = getattr(target, "meta", {})
    if meta.get("sha256") and meta.get("path"):
        return meta["sha256"]
    h = hashlib.sha256(json.dumps(target.config.to_dict(), sort_keys=True).encode())
    for name, t in sorted(target.generator.items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(target.psi.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_dir_for(target) -> Path:
    """Where exports of a target are written: beside its file when that folder is writable, else in the
    user's cache (by content hash: a target in a read-only folder or made in memory)."""
    from puppet.files import cache_root, writable_dir

    path = target_path(target)
    if path is not None and writable_dir(path.resolve().parent):
        return path.resolve().parent
    return cache_root() / "exports" / target_fingerprint(target)[:16]


def _onnx_name(target, precision: str) -> str:
    path = target_path(target)
    stem = path.stem if path is not None else "target"
    return f"{stem}.onnx" if precision == "fp32" else f"{stem}.{precision}.onnx"


def cached_onnx_path(target, precision: str) -> Path:
    """`mona.onnx` / `mona.fp16.onnx`: the names `python -m export.onnx` writes by default, so either reuses
    the other's file when it is up to date; beside the target, or in the cache (cache_dir_for)."""
    return cache_dir_for(target) / _onnx_name(target, precision)


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any unreadable file just means "export again"
        return {}
    return {p.key: p.value for p in model.metadata_props}


def onnx_identity(target, precision: str, opset: int = DEFAULT_OPSET) -> dict[str, str]:
    """The metadata an up-to-date ONNX export of `target` carries."""
    return {
        "puppet.source_sha256": target_fingerprint(target),
        "puppet.precision": precision,
        "puppet.opset": str(opset),
        "puppet.format": ONNX_FORMAT,
    }


def is_fresh_onnx(path: str | os.PathLike, want: dict[str, str]) -> bool:
    meta = onnx_metadata(path) if Path(path).is_file() else {}
    return all(meta.get(k) == v for k, v in want.items())


def find_onnx(target, precision: str, opset: int = DEFAULT_OPSET) -> Path | None:
    """The target's cached ONNX file when it is up to date (beside the target, e.g. shipped with it in a
    read-only folder, or where cached_onnx_path writes), else None."""
    want = onnx_identity(target, precision, opset)
    path = target_path(target)
    beside = [path.resolve().parent / _onnx_name(target, precision)] if path is not None else []
    for p in dict.fromkeys([*beside, cached_onnx_path(target, precision)]):
        if is_fresh_onnx(p, want):
            return p
    return None


def onnx_signature(path: str | os.PathLike) -> tuple[str, tuple[str, ...]]:
    """An exported ONNX file's precision, fp16 or fp32 (from export.onnx's metadata, else from the weights'
    type), and its graph's input names in order (export.onnx names them after models.config.ModelConfig.
    inputs), from one reading of the file."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    weights = {i.name for i in graph.initializer}
    inputs = tuple(i.name for i in graph.input if i.name not in weights)
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("puppet.precision") in ("fp16", "fp32"):
        return meta["puppet.precision"], inputs
    fp16 = any(i.data_type == TensorProto.FLOAT16 for i in graph.initializer)
    return ("fp16" if fp16 else "fp32"), inputs


# ---------------------------------------------------------------- TensorRT engines

@dataclass(frozen=True)
class BuildSettings:
    """Everything about a build, other than the model and the machine, that changes the engine."""

    precision: str = "fp16"  # what the engine computes in (normalisation stays FP32 either way)
    workspace_gb: float = 4.0
    route: str = "strongly-typed"  # or "fp16-flag" (TensorRT 10.0-10.11)


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


def load_fresh_engine(engine_path: str | os.PathLike, key: str) -> bytes | None:
    """The engine's bytes when it is fresh for `key` and intact (sha256 as in the sidecar), else None."""
    if not is_fresh(engine_path, key):
        return None
    data = Path(engine_path).read_bytes()
    meta = read_sidecar(engine_path) or {}
    if meta.get("engine_sha256") != hashlib.sha256(data).hexdigest():
        return None  # truncated or replaced behind our back
    return data


def import_tensorrt():
    """The tensorrt module, or a one-line error: not installed, or a package named tensorrt without TensorRT
    in it (`tensorrt-stubs` installs an empty `tensorrt/` that imports as a namespace package; so does a
    partly removed install)."""
    try:
        import tensorrt
    except ImportError as e:
        raise PuppetError(f"tensorrt: not installed ({e}); {INSTALL_HINT} on a machine with an NVIDIA GPU, "
                          "or run with --backend torch / onnxruntime") from None
    missing = [n for n in ("__version__", "Builder", "Runtime") if not hasattr(tensorrt, n)]
    if missing:
        where = getattr(tensorrt, "__file__", None) or ", ".join(getattr(tensorrt, "__path__", [])) or "?"
        raise PuppetError(f"tensorrt: {where} imports but is not TensorRT (no {', '.join(missing)}: an empty "
                          f"package, e.g. from tensorrt-stubs); pip uninstall -y tensorrt-stubs, then "
                          f"pip install --force-reinstall \"puppet[trt]\"")
    return tensorrt


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise PuppetError("CUDA: no CUDA GPU visible to torch (torch.cuda.is_available() is False); TensorRT "
                          "engines are built on and for an NVIDIA GPU: run this on that machine with a CUDA "
                          "build of torch, or use --backend torch / onnxruntime")


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for p in version.split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def route_for(trt_version: str) -> str:
    """Strongly typed from TensorRT 10.12 on (the only kind in 11.x); the FP16 builder flag before."""
    return ROUTE_STRONG if version_tuple(trt_version)[:2] >= STRONGLY_TYPED_FROM else ROUTE_FP16_FLAG


def device_identity(trt_version: str, device: int | None = None) -> DeviceIdentity:
    """The identity of the GPU an engine is built on and for: `device`, by default the current CUDA device
    (the one TensorRT builds on and the runtime sets), not always GPU 0."""
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device() if device is None else device)
    return DeviceIdentity(trt_version=trt_version, gpu_name=props.name,
                          compute_capability=f"{props.major}.{props.minor}")


def default_engine_path(source: str | os.PathLike) -> Path:
    """`mona.engine` beside the target (or ONNX) file; in the user's cache when that folder isn't writable."""
    from puppet.files import cache_root, writable_dir

    source = Path(source)
    stem = source.name.removesuffix(".onnx").removesuffix(".fp16").removesuffix(".pt")
    if writable_dir(source.resolve().parent):
        return source.with_name(stem + ".engine")
    return cache_root() / "exports" / file_sha256(source)[:16] / (stem + ".engine")


@dataclass(frozen=True)
class Engine:
    """A fresh engine on disk and the key its sidecar holds (the runtime loads it only with that key)."""

    path: Path
    key: str
    route: str
    built: bool  # False: the cached engine was up to date
    # The inputs in the order generate() takes them, from the ONNX file it was built from: a TensorRT
    # engine's own I/O tensor order need not be the network's.
    inputs: tuple[str, ...] = ()


def find_engine(target, trt_version: str, workspace_gb: float = DEFAULT_WORKSPACE_GB) -> Engine | None:
    """The cached engine `python -m export.trt --target FILE` would build for `target` on this machine (the
    same ONNX, route, settings and path), when it is fresh; else None."""
    route = route_for(trt_version)
    onnx_path = find_onnx(target, "fp16" if route == ROUTE_STRONG else "fp32")
    if onnx_path is None:
        return None
    precision, inputs = onnx_signature(onnx_path)
    settings = BuildSettings(precision=precision if route == ROUTE_STRONG else "fp16",
                             workspace_gb=float(workspace_gb), route=route)
    key = engine_key(device_identity(trt_version), file_sha256(onnx_path), settings)
    source = target_path(target) or onnx_path
    out = default_engine_path(source)
    return Engine(out, key, route, False, inputs) if is_fresh(out, key) else None


# ---------------------------------------------------------------- building through export, in a child

def build(module: str, args: list[str]) -> None:
    """Run an export builder (`python -m export.onnx` / `export.trt`) as a child process.

    Its output is passed through line by line; a failure becomes one PuppetError line (the builder's own
    `error: ...` line, or the last line of a crash's traceback, which is logged at debug level only). A
    child keeps the builder's imports and memory out of the live process.
    """
    cmd = [sys.executable, "-m", module, *args]
    log.info("building: python -m %s %s", module, " ".join(args))
    last, crashed = "", False
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as p:
        assert p.stdout is not None
        for line in p.stdout:
            line = line.rstrip("\n")
            crashed = crashed or line.startswith("Traceback (most recent call last)")
            if line.startswith("error: "):  # the builder's own error line: raised below, said once
                last = line
            elif line.strip():
                last = line.strip()
                (log.debug if crashed else log.info)("%s: %s", module, line)
    if p.returncode != 0:
        reason = last.removeprefix("error: ") or f"exit code {p.returncode}"
        raise PuppetError(f"python -m {module} {' '.join(args)}: failed: {reason}")


def onnx_for(target, precision: str) -> Path:
    """The target's up-to-date ONNX file of `precision`: the cached one, else exported (and self-checked) now
    by `python -m export.onnx` in a child process. A Target made in memory is first saved to the export cache
    (materialise), so its export is cached too."""
    found = find_onnx(target, precision)
    if found is not None:
        return found
    path = materialise(target)
    found = find_onnx(path, precision)
    if found is None:
        build("export.onnx", [f"--target={path}", "--precision", precision])
        found = find_onnx(path, precision)
    if found is None:
        raise PuppetError(f"{path}: export.onnx left no up-to-date ONNX file; "
                          f"run `python -m export.onnx --target {path}` to see why")
    return found


def engine_for(target, trt_version: str, device) -> Engine:
    """The target's fresh TensorRT engine for this TensorRT and the current GPU: the cached one, else built
    now (with its ONNX) by `python -m export.trt` in a child process."""
    found = find_engine(target, trt_version)
    if found is not None:
        return found
    path = materialise(target)
    build("export.trt", [f"--target={path}", "--device", str(device)])
    found = find_engine(path, trt_version)
    if found is None:
        raise PuppetError(f"{path}: export.trt left no up-to-date engine; "
                          f"run `python -m export.trt --target {path}` to see why")
    return found


def materialise(target) -> Path:
    """A file for a target: its own path, or (an object made in memory) a copy saved in the export cache,
    named by content so that its exports are cached too."""
    path = target_path(target)
    if path is not None:
        return path
    from puppet.target import save_target

    path = cache_dir_for(target) / "target.pt"
    if not path.is_file():
        save_target(path, target)
    return path

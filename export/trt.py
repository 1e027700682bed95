"""Build the TensorRT engine for a target or an ONNX file.

The code follows NVIDIA's documented Python API:
- TensorRT >= 10.12 (and 11.x, where every network is strongly typed and there is no BuilderFlag.FP16):
  a strongly typed network parsed from the FP16 ONNX (export.onnx --precision fp16: FP16 weights and compute,
  instance norm and softmax in FP32, float32 I/O); precision comes from the graph, not from builder flags.
  10.12-10.x ask for it with NetworkDefinitionCreationFlag.STRONGLY_TYPED; 11.x is strongly typed always and
  ignores that flag (deprecated there, with another enum value), so it is not passed.
- TensorRT 10.0-10.11: the FP32 ONNX with BuilderFlag.FP16, normalisation/softmax/reduce layers pinned to FP32
  (layer.precision, set_output_type, OBEY_PRECISION_CONSTRAINTS).

The engine is built on, and keyed to, one GPU: `--device cuda:N`, by default the current CUDA device.

Engines are cached: `mona.engine` plus a JSON sidecar holding a key over the TensorRT version, the GPU name
and compute capability, the ONNX file's sha256 and the build settings (puppet.artifacts). An engine whose
key differs (another TensorRT, another GPU, a changed target or setting) is rebuilt, never loaded. The
builder's timing cache is kept beside the engine (named for the TensorRT version and GPU) so rebuilds take
seconds, not minutes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsInt

from export.cache import timing_cache_path, write_engine
from puppet.artifacts import (
    DEFAULT_WORKSPACE_GB,
    ROUTE_FP16_FLAG,
    ROUTE_STRONG,
    BuildSettings,
    Engine,
    default_engine_path,
    device_identity,
    engine_key,
    file_sha256,
    import_tensorrt,
    is_fresh,
    onnx_signature,
    require_cuda,
    route_for,
    sidecar_path,
    version_tuple,
)
from puppet.cli import Parser
from puppet.devices import use_gpu
from puppet.errors import PuppetError, run_cli
from puppet.files import atomic_write_bytes

if TYPE_CHECKING:  # mypy checks this module against TensorRT's stubs (tests/trt_stubs/, test_trt_api.py)
    import tensorrt as trt


def ensure_engine(
    target=None,
    onnx_path: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    workspace_gb: float = DEFAULT_WORKSPACE_GB,
    force: bool = False,
    device: str | None = None,
) -> Engine:
    """The engine for a target (path or Target) or an ONNX file: the cached one when its key matches, else
    a new build on `device` (cuda or cuda:N; default the current CUDA device). Checks TensorRT and the GPU
    before any slow export."""
    if (target is None) == (onnx_path is None):
        raise PuppetError("export.trt: pass exactly one of --target FILE.pt or --onnx FILE.onnx")
    for p in (target, onnx_path):
        if isinstance(p, (str, os.PathLike)) and not Path(p).is_file():
            raise PuppetError(f"{p}: no such file; pass a target (puppet.finetune) or an ONNX (export.onnx)")
    trt_module = import_tensorrt()
    require_cuda()
    use_gpu(device)
    version = str(trt_module.__version__)
    route = route_for(version)
    if onnx_path is None:
        from export.onnx import ensure_onnx

        onnx_path = ensure_onnx(target, precision="fp16" if route == ROUTE_STRONG else "fp32")
        print(f"ONNX: {onnx_path}")
    onnx_path = Path(onnx_path)
    precision, inputs = onnx_signature(onnx_path)
    if route == ROUTE_STRONG and precision != "fp16":
        print(f"note: {onnx_path} is FP32 and a strongly typed network computes in the graph's own types; "
              "for an FP16 engine export with --precision fp16")
    ident = device_identity(version)  # the current device: the one use_gpu made current
    settings = BuildSettings(precision=precision if route == ROUTE_STRONG else "fp16",
                             workspace_gb=float(workspace_gb), route=route)
    key = engine_key(ident, file_sha256(onnx_path), settings)
    if out is None:
        out = default_engine_path(target if isinstance(target, (str, os.PathLike)) else onnx_path)
    out = Path(out)
    if not force and is_fresh(out, key):
        return Engine(out, key, route, False, inputs)
    if out.exists() and not force:
        print(f"{out}: built for another TensorRT, GPU, model or settings (or damaged); rebuilding")
    timing = timing_cache_path(out, ident)
    data, timing_data = build_serialized(onnx_path, settings, timing)
    info = {"device": asdict(ident), "settings": asdict(settings), "onnx": str(onnx_path)}
    save_build(out, data, key, info, timing, timing_data)
    return Engine(out, key, route, True, inputs)


def save_build(out: Path, data: bytes, key: str, info: dict, timing: Path, timing_data: bytes | None) -> None:
    """The engine (and its sidecar) first, then the timing cache: the cache only speeds up the next build, so
    failing to write it never costs the engine just built."""
    write_engine(out, data, key, info)
    if timing_data is None:
        print("note: TensorRT gave no timing cache to keep; the next build times its kernels again")
        return
    try:
        atomic_write_bytes(timing, timing_data)
    except OSError as e:
        print(f"note: {timing}: timing cache not saved ({e}); the next build times its kernels again")


def network_flags(version: str, route: str) -> int:
    """The create_network flags: STRONGLY_TYPED on TensorRT 10.12-10.x. 11.x networks are always strongly
    typed and the flag is deprecated and ignored there (its value changed too), so none is passed; the
    FP16-flag route (10.0-10.11) is weakly typed."""
    import tensorrt as trt

    if route != ROUTE_STRONG or version_tuple(version)[0] >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def build_serialized(onnx_path: Path, settings: BuildSettings,
                     timing_cache: Path) -> tuple[bytes, bytes | None]:
    """Parse the ONNX and build a serialized engine, following NVIDIA's documented Python pattern. Returns the
    engine and the timing cache to keep (None when TensorRT gives none); the caller writes both."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)  # TensorRT's own warnings and errors go to stderr
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt.__version__, settings.route))
    parser = trt.OnnxParser(network, logger)
    parser_flags = getattr(trt, "OnnxParserFlag", None)
    if parser_flags is not None and hasattr(parser_flags, "NATIVE_INSTANCENORM"):
        parser.set_flag(parser_flags.NATIVE_INSTANCENORM)  # the built-in layer, not the plugin
    if not parser.parse_from_file(str(onnx_path)):
        errors = [" ".join(str(parser.get_error(i)).split()) for i in range(parser.num_errors)]
        raise PuppetError(f"{onnx_path}: TensorRT's ONNX parser failed ({len(errors)} errors): "
                          f"{' | '.join(errors)}; re-export with `python -m export.onnx` and report this bug")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings.workspace_gb * (1 << 30)))
    if settings.route == ROUTE_FP16_FLAG:
        _fp16_with_fp32_norms(network, config)
    attach_timing_cache(config, timing_cache)
    monitor, close_bars = progress_monitor()
    config.progress_monitor = monitor
    start = time.perf_counter()
    print(f"building the TensorRT {trt.__version__} engine ({settings.route}) from {onnx_path}: "
          "minutes on a small GPU ...")
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        close_bars()
    if serialized is None:
        raise PuppetError(f"{onnx_path}: TensorRT could not build an engine (its messages are above); "
                          "try a larger --workspace-gb, or report the bug with those messages")
    print(f"built in {time.perf_counter() - start:.0f} s")
    return bytes(serialized), timing_cache_bytes(config)


def attach_timing_cache(config: trt.IBuilderConfig, path: Path) -> bool:
    """Give the build the timing cache kept at `path`. A cache TensorRT refuses (set_timing_cache returns
    False: made on another GPU or TensorRT) or can't read is replaced by a fresh, empty one, rather than
    building without any. False when TensorRT takes no cache at all."""
    data = path.read_bytes() if path.is_file() else b""
    for blob in ([data, b""] if data else [b""]):
        try:
            cache = config.create_timing_cache(blob)
        except (RuntimeError, TypeError, ValueError):  # pybind11's translation of a C++ failure
            cache = None
        if cache is not None and config.set_timing_cache(cache, False):  # False: refuse a foreign cache
            return True
        if blob:
            print(f"note: {path}: a timing cache of another GPU or TensorRT, or damaged; starting afresh")
    print("note: TensorRT took no timing cache; this build times every kernel")
    return False


def timing_cache_bytes(config: trt.IBuilderConfig) -> bytes | None:
    """The build's timing cache, serialized; None when TensorRT has none to give."""
    cache = config.get_timing_cache()
    if cache is None:
        return None
    blob = cache.serialize()
    return None if blob is None else bytes(blob)


def _fp16_with_fp32_norms(network: trt.INetworkDefinition, config: trt.IBuilderConfig) -> None:
    """TensorRT 10.0-10.11: FP16 kernels allowed, normalisation/softmax/reductions held to FP32.

    TensorRT 11 removed weak typing: BuilderFlag.FP16 and OBEY_PRECISION_CONSTRAINTS, ILayer.precision and
    set_output_type are gone there, so those names are looked up at run time (and typed Any); the API
    check (tests/test_trt_api.py) verifies them against the real 10.0.1 and 10.11 bindings, which take
    this route."""
    import tensorrt as trt

    fp16 = getattr(trt.BuilderFlag, "FP16", None)  # gone in TensorRT 11, which never takes this route
    if fp16 is None:
        raise PuppetError(f"tensorrt {trt.__version__}: no BuilderFlag.FP16; build from the FP16 ONNX")
    config.set_flag(fp16)
    config.set_flag(getattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS"))  # noqa: B009 - gone in 11 too
    names = ("NORMALIZATION", "SOFTMAX", "REDUCE")
    keep = {getattr(trt.LayerType, n) for n in names if hasattr(trt.LayerType, n)}
    for i in range(network.num_layers):
        layer: Any = network.get_layer(i)  # 10.x's ILayer: see above
        if layer.type in keep:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)


def progress_monitor() -> tuple[trt.IProgressMonitor, Callable[[], None]]:
    """A trt.IProgressMonitor (TensorRT >= 10.0) drawing a tqdm bar per build phase, and the function that
    closes the bars a failed build leaves open."""
    import tensorrt as trt
    from tqdm import tqdm

    class TqdmProgress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, tqdm] = {}
            self._lock = threading.Lock()  # TensorRT may report from several threads

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: SupportsInt) -> None:
            with self._lock:
                self._bars[phase_name] = tqdm(total=int(num_steps), desc=phase_name, position=len(self._bars),
                                              leave=parent_phase is None, unit="step")

        def step_complete(self, phase_name: str, step: SupportsInt) -> bool:
            with self._lock:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.update(int(step) + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                bar = self._bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

        def close(self) -> None:
            with self._lock:
                for bar in self._bars.values():
                    bar.close()
                self._bars.clear()

    monitor = TqdmProgress()
    return monitor, monitor.close


def main(argv: Sequence[str] | None = None) -> int:
    ap = Parser(prog="python -m export.trt", description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--target", help="target file (mona.pt): its ONNX is exported as needed")
    src.add_argument("--onnx", help="an ONNX file from export.onnx (FP16 for TensorRT >= 10.12)")
    ap.add_argument("--out", help="engine file (default: beside the input, <stem>.engine)")
    ap.add_argument("--workspace-gb", type=float, default=DEFAULT_WORKSPACE_GB)
    ap.add_argument("--device", help="the GPU to build on and for: cuda or cuda:N (default: the current one)")
    ap.add_argument("--force", action="store_true", help="rebuild even when the cached engine is up to date")
    args = ap.parse_args(argv)
    eng = ensure_engine(target=args.target, onnx_path=args.onnx, out=args.out, workspace_gb=args.workspace_gb,
                        force=args.force, device=args.device)
    state = "built" if eng.built else "up to date (same TensorRT, GPU, model and settings)"
    print(f"{eng.path}: {state}; route {eng.route}; key {eng.key[:16]} in {sidecar_path(eng.path).name}")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

"""Build the TensorRT engine for a target or an ONNX file.

The code follows NVIDIA's documented Python API:
- TensorRT >= 10.12 (and 11.x, where every network is strongly typed and BuilderFlag.FP16 no longer exists):
  a strongly typed network parsed from the FP16 ONNX (export.onnx --precision fp16: FP16 weights and compute,
  instance norm and softmax in FP32, float32 I/O); precision comes from the graph, not from builder flags.
- TensorRT 10.0-10.11: the FP32 ONNX with BuilderFlag.FP16, normalisation/softmax/reduce layers pinned to FP32
  (layer.precision, set_output_type, OBEY_PRECISION_CONSTRAINTS).
- `--via torch-tensorrt`: torch_tensorrt.compile of the PyTorch person generator made FP16 with `.half()`,
  explicit typing (use_explicit_typing=True), saved with torch_tensorrt.save.

Engines are cached: `mona.engine` plus a JSON sidecar holding a key over the TensorRT version, the GPU name
and compute capability, the ONNX file's sha256 and the build settings (puppet.live.artifacts). An engine whose
key differs (another TensorRT, another GPU, a changed target or setting) is rebuilt, never loaded. The
builder's timing cache is kept beside the engine (named for the TensorRT version and GPU) so rebuilds take
seconds, not minutes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from export.cache import timing_cache_path, write_engine, write_sidecar
from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.files import atomic_path, atomic_write_bytes
from puppet.live.artifacts import (  # noqa: F401 - the lookup side lives with the runtime; re-exported here
    DEFAULT_WORKSPACE_GB,
    INSTALL_HINT,
    ROUTE_FP16_FLAG,
    ROUTE_STRONG,
    ROUTE_TORCH_TRT,
    STRONGLY_TYPED_FROM,
    BuildSettings,
    DeviceIdentity,
    Engine,
    default_engine_path,
    device_identity,
    engine_key,
    file_sha256,
    import_tensorrt,
    is_fresh,
    onnx_precision,
    require_cuda,
    route_for,
    sidecar_path,
    target_fingerprint,
    version_tuple,
)
from puppet.target import load_target


def ensure_engine(
    target=None,
    onnx_path: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    workspace_gb: float = DEFAULT_WORKSPACE_GB,
    via: str = "tensorrt",
    force: bool = False,
) -> Engine:
    """The engine for a target (path or Target) or an ONNX file: the cached one when its key matches, else
    a new build. Checks TensorRT and the GPU before any slow export."""
    if (target is None) == (onnx_path is None):
        raise PuppetError("export.trt: pass exactly one of --target FILE.pt or --onnx FILE.onnx")
    for p in (target, onnx_path):
        if isinstance(p, (str, os.PathLike)) and not Path(p).is_file():
            raise PuppetError(f"{p}: no such file; pass a target (puppet.finetune) or an ONNX (export.onnx)")
    if via == ROUTE_TORCH_TRT:
        return _ensure_torch_tensorrt(target, out, workspace_gb, force)
    if via != "tensorrt":
        raise PuppetError(f"--via {via}: unknown route; use tensorrt or torch-tensorrt")
    trt = import_tensorrt()
    require_cuda()
    route = route_for(trt.__version__)
    if onnx_path is None:
        from export.onnx import ensure_onnx

        onnx_path = ensure_onnx(target, precision="fp16" if route == ROUTE_STRONG else "fp32")
        print(f"ONNX: {onnx_path}")
    onnx_path = Path(onnx_path)
    precision = onnx_precision(onnx_path)
    if route == ROUTE_STRONG and precision != "fp16":
        print(f"note: {onnx_path} is FP32 and a strongly typed network computes in the graph's own types; "
              "for an FP16 engine export with --precision fp16")
    device = device_identity(trt.__version__)
    settings = BuildSettings(precision=precision if route == ROUTE_STRONG else "fp16",
                             workspace_gb=float(workspace_gb), route=route)
    key = engine_key(device, file_sha256(onnx_path), settings)
    if out is None:
        out = default_engine_path(target if isinstance(target, (str, os.PathLike)) else onnx_path)
    out = Path(out)
    if not force and is_fresh(out, key):
        return Engine(out, key, route, built=False)
    if out.exists() and not force:
        print(f"{out}: built for another TensorRT, GPU, model or settings (or damaged); rebuilding")
    data = build_serialized(trt, onnx_path, settings, timing_cache_path(out, device))
    info = {"device": asdict(device), "settings": asdict(settings), "onnx": str(onnx_path)}
    write_engine(out, data, key, info)
    return Engine(out, key, route, built=True)


def build_serialized(trt, onnx_path: Path, settings: BuildSettings, timing_cache: Path) -> bytes:
    """Parse the ONNX and build a serialized engine, following NVIDIA's documented Python pattern."""
    logger = trt.Logger(trt.Logger.WARNING)  # TensorRT's own warnings and errors go to stderr
    builder = trt.Builder(logger)
    flags = 0
    if settings.route == ROUTE_STRONG:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
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
        _fp16_with_fp32_norms(trt, network, config)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, False)  # False: a cache from another device or version is refused
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    start = time.perf_counter()
    print(f"building the TensorRT {trt.__version__} engine ({settings.route}) from {onnx_path}: "
          "minutes on a small GPU ...")
    serialized = builder.build_serialized_network(network, config)
    if monitor is not None:
        monitor.close()
    if serialized is None:
        raise PuppetError(f"{onnx_path}: TensorRT could not build an engine (its messages are above); "
                          "try a larger --workspace-gb, or report the bug with those messages")
    atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    print(f"built in {time.perf_counter() - start:.0f} s")
    return bytes(serialized)


def _fp16_with_fp32_norms(trt, network, config) -> None:
    """TensorRT 10.0-10.11: FP16 kernels allowed, normalisation/softmax/reductions held to FP32."""
    fp16 = getattr(trt.BuilderFlag, "FP16", None)  # gone in TensorRT 11, which never takes this route
    if fp16 is None:
        raise PuppetError(f"tensorrt {trt.__version__}: no BuilderFlag.FP16; build from the FP16 ONNX")
    config.set_flag(fp16)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    names = ("NORMALIZATION", "SOFTMAX", "REDUCE")
    keep = {getattr(trt.LayerType, n) for n in names if hasattr(trt.LayerType, n)}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in keep:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)


def _progress_monitor(trt):
    """A trt.IProgressMonitor drawing tqdm bars per build phase (TensorRT >= 10.0); None if unavailable."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None
    from tqdm import tqdm

    class TqdmProgress(base):
        def __init__(self):
            base.__init__(self)
            self._bars: dict[str, tqdm] = {}
            self._lock = threading.Lock()  # TensorRT may report from several threads

        def phase_start(self, phase_name, parent_phase, num_steps):
            with self._lock:
                self._bars[phase_name] = tqdm(total=num_steps, desc=phase_name, position=len(self._bars),
                                              leave=parent_phase is None, unit="step")

        def step_complete(self, phase_name, step):
            with self._lock:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.update(step + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            with self._lock:
                bar = self._bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

        def close(self):
            with self._lock:
                for bar in self._bars.values():
                    bar.close()
                self._bars.clear()

    return TqdmProgress()


def _ensure_torch_tensorrt(target, out, workspace_gb: float, force: bool) -> Engine:
    """torch_tensorrt.compile of the FP16 person generator (explicit typing), saved as an ExportedProgram."""
    if target is None:
        raise PuppetError("--via torch-tensorrt: needs --target FILE.pt (it compiles the PyTorch generator, "
                          "not an ONNX file)")
    try:
        import torch_tensorrt
    except ImportError as e:
        raise PuppetError(f"torch_tensorrt: not installed ({e}); {INSTALL_HINT}") from None
    trt = import_tensorrt()
    require_cuda()
    versions = (f"tensorrt {trt.__version__}, torch_tensorrt {torch_tensorrt.__version__},"
                f" torch {torch.__version__}")
    device = device_identity(versions)
    settings = BuildSettings(precision="fp16", workspace_gb=float(workspace_gb), route=ROUTE_TORCH_TRT)
    key = engine_key(device, target_fingerprint(target), settings)
    out = Path(out) if out is not None else default_engine_path(target, ROUTE_TORCH_TRT)
    if not force and is_fresh(out, key):
        return Engine(out, key, ROUTE_TORCH_TRT, built=False)
    t = load_target(target)
    size = int(t.config["image_size"])
    model = t.person_generator().eval().half().cuda()  # FP16 by the module's own types (explicit typing)
    inputs = [torch.zeros(1, 3, size, size, dtype=torch.float16, device="cuda")]
    print(f"compiling with torch_tensorrt {torch_tensorrt.__version__} (FP16, explicit typing) ...")
    trt_gm = torch_tensorrt.compile(model, ir="dynamo", inputs=inputs, use_explicit_typing=True,
                                    workspace_size=int(workspace_gb * (1 << 30)))
    sidecar_path(out).unlink(missing_ok=True)
    with atomic_path(out) as tmp:
        torch_tensorrt.save(trt_gm, str(tmp), output_format="exported_program", inputs=inputs)
    write_sidecar(out, key, {"device": asdict(device), "settings": asdict(settings)})
    return Engine(out, key, ROUTE_TORCH_TRT, built=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = Parser(prog="python -m export.trt", description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--target", help="target file (mona.pt): its ONNX is exported as needed")
    src.add_argument("--onnx", help="an ONNX file from export.onnx (FP16 for TensorRT >= 10.12)")
    ap.add_argument("--out", help="engine file (default: beside the input, <stem>.engine)")
    ap.add_argument("--workspace-gb", type=float, default=DEFAULT_WORKSPACE_GB)
    ap.add_argument("--via", choices=("tensorrt", ROUTE_TORCH_TRT), default="tensorrt")
    ap.add_argument("--force", action="store_true", help="rebuild even when the cached engine is up to date")
    args = ap.parse_args(argv)
    eng = ensure_engine(target=args.target, onnx_path=args.onnx, out=args.out, workspace_gb=args.workspace_gb,
                        via=args.via, force=args.force)
    state = "built" if eng.built else "up to date (same TensorRT, GPU, model and settings)"
    print(f"{eng.path}: {state}; route {eng.route}; key {eng.key[:16]} in {sidecar_path(eng.path).name}")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

"""Generator runtimes: one `generate(*inputs) -> image` over TensorRT, torch and onnxruntime.

    backend = load_backend("auto", "mona.pt")
    image = backend.generate(*Feeder(target)(landmarks).tensors)  # (1, 3, S, S) float32 in [-1, 1] each

A backend takes the generator's inputs in the order its file names them (`backend.inputs`: `sketch`, and
`warped` for a generator with the appearance path; puppet.feed builds them) and gives the image back on the
CPU. `load_backend` gets the file each backend runs (puppet.artifacts: the cached ONNX or engine, exported in
a child process when missing or stale) and hands it over; a backend only runs what it is given.

Backends:
- `tensorrt`: the engine, named I/O tensors bound to torch CUDA tensors with `set_tensor_address`,
  `execute_async_v3` on a non-default stream, captured in a CUDA graph after warm-up.
- `torch`: the target's person generator; CUDA FP16 captured in a CUDA graph when a GPU is there; FP32 on the
  CPU otherwise.
- `onnxruntime`: the exported ONNX; the CUDA provider (FP16 graph) when onnxruntime-gpu is installed, else the
  CPU provider (FP32 graph).
- `auto`: tensorrt when TensorRT imports and there is a CUDA GPU; else torch on the GPU; else onnxruntime on
  the CPU, measured 1.7-9x faster than torch's CPU eager mode here (2 cores, random-weight targets: tiny
  10.6 vs 95 ms, small 244 vs 788 ms, paper 2.9 vs 5.0 s a frame), so it is picked without a startup race.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Protocol

import torch

from puppet import artifacts
from puppet.devices import device_type, resolve_device, use_gpu
from puppet.errors import PuppetError
from puppet.target import load_target

if TYPE_CHECKING:  # mypy checks the TensorRT backend against TensorRT's stubs (tests/trt_stubs/)
    import tensorrt as trt

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")


class Backend(Protocol):
    name: str
    inputs: tuple[str, ...]  # what generate() takes, in order

    def generate(self, *inputs: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> str: ...


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads share a core's vector units; ORT's threads
    each want one)."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        cores, phys, core = set(), None, None
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    core = value.strip()
                    cores.add((phys, core))
        if cores:
            return max(1, min(len(cores), allowed))
    except OSError:
        pass
    return max(1, allowed)


def _check_inputs(inputs: tuple, names: tuple[str, ...], size: int) -> None:
    if len(inputs) != len(names):
        raise ValueError(f"generate() takes {' and '.join(names)} (puppet.feed.Feeder builds them), "
                         f"got {len(inputs)} input(s)")
    for name, x in zip(names, inputs):
        if x.shape != (1, 3, size, size) or x.dtype != torch.float32:
            raise ValueError(f"generate(): {name} must be a (1, 3, {size}, {size}) float32 tensor in "
                             f"[-1, 1], got {x.dtype} {tuple(x.shape)}")


def _cuda_device(device) -> torch.device | None:
    """The CUDA device to use, with its index (plain `cuda` is the current device), or None for the CPU;
    None asks for the GPU where there is one (puppet.devices.resolve_device)."""
    dev = resolve_device(device, local_rank=None)
    return None if dev.type == "cpu" else dev


class TorchBackend:
    """PyTorch: CUDA FP16 replayed from a CUDA graph, or CPU FP32 in inference mode."""

    name = "torch"

    def __init__(self, target, device=None):
        t = load_target(target)
        self.size = t.image_size
        self.inputs = t.config.inputs
        self.device = _cuda_device(device)
        model = t.person_generator()
        if self.device is None:
            self.model = model.float().eval()
            self.graph = None
            return
        # FP16 weights and activations; torch's CUDA instance norm and softmax accumulate in FP32 internally.
        self.model = model.half().to(self.device).eval()
        # one static buffer per input, which the graph reads
        self.statics = [torch.zeros(1, 3, self.size, self.size, device=self.device) for _ in self.inputs]
        with torch.inference_mode():
            side = torch.cuda.Stream(self.device)  # warm-up off the default stream, as CUDA graphs require
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):
                    self.model(*(x.half() for x in self.statics))
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_out = self.model(*(x.half() for x in self.statics)).float()
        torch.cuda.synchronize(self.device)

    def generate(self, *inputs: torch.Tensor) -> torch.Tensor:
        _check_inputs(inputs, self.inputs, self.size)
        if self.graph is None:
            with torch.inference_mode():
                return self.model(*inputs)
        for buf, x in zip(self.statics, inputs):
            buf.copy_(x)
        self.graph.replay()
        return self.static_out.cpu()  # waits for the replay

    def describe(self) -> str:
        if self.graph is None:
            return f"torch {torch.__version__} CPU FP32, {torch.get_num_threads()} threads, {self.size}px"
        gpu = torch.cuda.get_device_name(self.device)
        return f"torch {torch.__version__} {gpu} FP16 + CUDA graph, {self.size}px"


class OnnxRuntimeBackend:
    """onnxruntime on the exported ONNX: CUDA provider (FP16 graph) when available, else CPU (FP32 graph)."""

    name = "onnxruntime"

    def __init__(self, onnx_path, device=None):
        import onnxruntime as ort

        providers, precision = ort_providers(device)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # one chain of convs: nothing to run in parallel
        so.intra_op_num_threads = physical_cores()
        # Idle intra-op threads spin by default; in the live loop they then steal the core the tracker runs on
        # (bench.realtime on 2 cores: 29-30 -> 35 fps, p95 latency 48-50 -> 36-40 ms; the generator alone is
        # unchanged).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_path), sess_options=so, providers=providers)
        self.size = int(self.session.get_inputs()[0].shape[-1])  # static shapes: the export's image_size
        self.inputs = tuple(i.name for i in self.session.get_inputs())
        self.onnx_path = onnx_path
        self.precision = precision

    def generate(self, *inputs: torch.Tensor) -> torch.Tensor:
        _check_inputs(inputs, self.inputs, self.size)
        feed = {name: x.contiguous().numpy() for name, x in zip(self.inputs, inputs)}
        out = self.session.run(["image"], feed)[0]
        return torch.from_numpy(out)

    def describe(self) -> str:
        import onnxruntime as ort

        providers = ",".join(p.removesuffix("ExecutionProvider") for p in self.session.get_providers())
        threads = self.session.get_session_options().intra_op_num_threads
        return (f"onnxruntime {ort.__version__} {providers} {self.precision.upper()}, {threads} threads, "
                f"{self.size}px ({self.onnx_path})")


def ort_providers(device=None) -> tuple[list[str], str]:
    """onnxruntime's providers for `device` and the ONNX precision they run: the CUDA provider (fp16) when
    onnxruntime-gpu is there and the device isn't the CPU, else the CPU provider (fp32)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    want_cuda = device is not None and device_type(device) == "cuda"
    if want_cuda and "CUDAExecutionProvider" not in available:
        raise PuppetError(f"onnxruntime: no CUDAExecutionProvider (have {', '.join(available)}); "
                          "pip install onnxruntime-gpu, or use --device cpu")
    if "CUDAExecutionProvider" in available and (device is None or want_cuda):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], "fp16"
    return ["CPUExecutionProvider"], "fp32"


class TensorRTBackend:
    """A TensorRT engine bound to torch CUDA buffers, replayed from a CUDA graph (TensorRT 10/11's Python
    API)."""

    name = "tensorrt"

    def __init__(self, eng: artifacts.Engine, device: torch.device) -> None:
        """`eng`: a fresh engine file for this TensorRT and GPU (artifacts.engine_for); `device`: that GPU,
        the current CUDA device (puppet.devices.use_gpu)."""
        import tensorrt as trt

        self.device = device
        data = artifacts.load_fresh_engine(eng.path, eng.key)
        if data is None:
            raise PuppetError(f"{eng.path}: changed while loading; rebuild: `python -m export.trt --force`")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        engine = self.runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise PuppetError(f"{eng.path}: TensorRT could not load this engine (messages above); "
                              "rebuild it with `python -m export.trt --force`")
        self.engine = engine
        self.path = eng.path
        context = self.engine.create_execution_context()
        if context is None:
            raise PuppetError(f"{eng.path}: TensorRT could not make an execution context (messages above; "
                              "GPU memory?); close other GPU programs or use --backend torch")
        self.context = context
        self.stream = torch.cuda.Stream(self.device)
        # Every buffer stays referenced here for the context's life: TensorRT holds their raw addresses.
        self.bound, self.outputs = _bind_io(self.engine, self.context, self.device, self.path)
        # generate()'s order is the ONNX graph's (the engine's own I/O order need not be): bound by name
        self.inputs = eng.inputs or tuple(self.bound)
        if set(self.inputs) != set(self.bound):
            raise PuppetError(f"{eng.path}: its inputs {', '.join(self.bound) or 'none'} are not its ONNX "
                              f"file's ({', '.join(self.inputs)}); rebuild: `python -m export.trt --force`")
        out = next(iter(self.outputs.values()), None)
        buffers = [self.bound[name] for name in self.inputs]
        shape = tuple(buffers[0].shape) if buffers else ()
        if (out is None or len(self.outputs) != 1 or len(shape) != 4 or shape[:2] != (1, 3)
                or any(tuple(b.shape) != shape for b in buffers)):
            raise PuppetError(f"{eng.path}: expected (1, 3, S, S) inputs and one output, got inputs "
                              f"{', '.join(self.inputs) or 'none'} and outputs "
                              f"{', '.join(self.outputs) or 'none'}; rebuild it")
        self.buffers, self.out = buffers, out
        self.size = int(shape[-1])
        with torch.cuda.stream(self.stream):
            for _ in range(3):  # warm-up: TensorRT finishes its lazy set-up outside the capture
                self._enqueue()
        self.stream.synchronize()
        self.graph, self.graph_note = self._capture_graph()
        self.stream.synchronize()

    def _capture_graph(self) -> tuple[torch.cuda.CUDAGraph | None, str]:
        """One enqueue captured in a CUDA graph, as trtexec captures: thread-local capture mode, so CUDA calls
        of the loop's other threads can't invalidate it. Any failure (a PuppetError from a failed
        execute_async_v3, CUDA's error from the capture) discards the graph: the engine then runs without one,
        a little slower, as trtexec does. The current stream is restored whatever happens."""
        graph = torch.cuda.CUDAGraph()
        previous = torch.cuda.current_stream(self.device)
        try:
            torch.cuda.set_stream(self.stream)
            graph.capture_begin(capture_error_mode="thread_local")
            try:
                self._enqueue()
            except BaseException:
                with contextlib.suppress(Exception):  # end the capture; the enqueue's error is the one told
                    graph.capture_end()
                raise
            graph.capture_end()
        except Exception as e:  # noqa: BLE001 - whatever failed, the engine still runs uncaptured
            return None, f"no CUDA graph ({' '.join(str(e).split())[:80]})"
        finally:
            torch.cuda.set_stream(previous)
        return graph, "CUDA graph"

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise PuppetError(f"{self.path}: TensorRT execute_async_v3 failed (messages above)")

    def generate(self, *inputs: torch.Tensor) -> torch.Tensor:
        _check_inputs(inputs, self.inputs, self.size)
        with torch.cuda.stream(self.stream):
            for buf, x in zip(self.buffers, inputs):
                buf.copy_(x)
            if self.graph is not None:
                self.graph.replay()
            else:
                self._enqueue()
            return self.out.float().cpu()  # the copy waits for the stream

    def describe(self) -> str:
        import tensorrt

        gpu = torch.cuda.get_device_name(self.device)
        return f"TensorRT {tensorrt.__version__} {gpu}, {self.graph_note}, {self.size}px ({self.path})"


def _bind_io(engine: trt.ICudaEngine, context: trt.IExecutionContext, device: torch.device,
             path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A torch buffer on `device` for each of the engine's I/O tensors, its address given to the context:
    (inputs, outputs) by tensor name. The caller must keep both dicts as long as the context: TensorRT holds
    the raw addresses, and a buffer dropped here would be freed under it."""
    import tensorrt as trt

    dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dtype = engine.get_tensor_dtype(name)
        dims = engine.get_tensor_shape(name)
        shape = tuple(int(dims[j]) for j in range(len(dims)))
        if dtype not in dtypes or any(d < 0 for d in shape):
            raise PuppetError(f"{path}: I/O tensor `{name}` is {dtype} {shape}; puppet binds fixed-shape "
                              "FLOAT or HALF tensors only (as export.onnx makes them); rebuild: "
                              "`python -m export.trt --force`")
        buf = torch.empty(shape, dtype=dtypes[dtype], device=device)
        if not context.set_tensor_address(name, buf.data_ptr()):
            raise PuppetError(f"{path}: TensorRT refused the buffer of `{name}` (messages above); rebuild: "
                              "`python -m export.trt --force`")
        (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs)[name] = buf
    return inputs, outputs


def tensorrt_available() -> bool:
    """TensorRT imports (and is TensorRT, not an empty package: then say why it is not taken) and a GPU is
    there."""
    try:
        artifacts.import_tensorrt()
    except PuppetError as e:
        if "not installed" not in str(e):
            log.warning("%s", e)
        return False
    return torch.cuda.is_available()


def auto_backend_name(device=None) -> str:
    """tensorrt (TensorRT + GPU) > torch on the GPU > onnxruntime on the CPU (see the module docstring)."""
    cpu_only = device is not None and device_type(device) == "cpu"
    if not cpu_only and torch.cuda.is_available():
        return "tensorrt" if tensorrt_available() else "torch"
    return "onnxruntime"


def load_backend(name: str, target, device=None, verbose: bool = True) -> Backend:
    """A ready backend for `target` (a Target, loaded or made in memory, or a target file path); `name` one of
    BACKENDS."""
    if name not in BACKENDS:
        raise PuppetError(f"--backend {name}: unknown backend; use one of {', '.join(BACKENDS)}")
    picked = auto_backend_name(device) if name == "auto" else name
    backend: Backend
    if picked == "tensorrt":
        trt = artifacts.import_tensorrt()  # a one-line error when TensorRT is missing or an empty package
        artifacts.require_cuda()
        cuda = use_gpu(device)  # the current device: the engine's key names it
        backend = TensorRTBackend(artifacts.engine_for(target, trt.__version__, cuda), cuda)
    elif picked == "torch":
        backend = TorchBackend(target, device)
    else:
        backend = OnnxRuntimeBackend(artifacts.onnx_for(target, ort_providers(device)[1]), device)
    if verbose:
        how = "auto picked" if name == "auto" else "backend"
        log.info("%s %s: %s", how, backend.name, backend.describe())
    return backend

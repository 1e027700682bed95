"""The TensorRT and CUDA control flow of export/trt.py and the tensorrt backend, on a CPU.

No machine here has TensorRT or a GPU, so these tests patch the CUDA queries torch answers and stand in for
the few TensorRT objects our code talks to (a builder config, an execution context, the description of an
engine's I/O tensors). They test our control flow only: none of them builds, loads or runs an engine. What
TensorRT's real API looks like is checked in test_trt_api.py against its real bindings.
"""

import os
import subprocess
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from export import trt as build
from puppet import artifacts
from puppet.artifacts import BuildSettings, DeviceIdentity, engine_key, is_fresh, load_fresh_engine
from puppet.devices import use_gpu
from puppet.errors import PuppetError
from puppet.live import runtime
from puppet.live.runtime import TensorRTBackend, _bind_io, _cuda_device


@pytest.fixture
def two_gpus(monkeypatch):
    """torch answering as on a machine with two GPUs, the current one `current[0]`; set_device is recorded
    after torch's own argument check (the real torch.cuda.set_device runs, only its C call is replaced)."""
    current, calls = [0], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current[0])
    monkeypatch.setattr(torch._C, "_cuda_setDevice", calls.append, raising=False)
    return current, calls


# ------------------------------------------------------------------ 1. a CUDA device always has an index

def test_cuda_device_has_the_index_set_device_needs(two_gpus):
    current, calls = two_gpus
    for asked in ("cuda", None):  # --backend tensorrt passes "cuda"; auto/torch pass None
        dev = _cuda_device(asked)
        assert dev == torch.device("cuda", 0)
        torch.cuda.set_device(dev)  # a device without an index: ValueError "Expected a torch.device with ..."
    current[0] = 1
    assert _cuda_device("cuda") == torch.device("cuda", 1)
    assert _cuda_device("cuda:0") == torch.device("cuda", 0)
    assert calls == [0, 0]
    with pytest.raises(PuppetError, match=r"cuda:2: no such GPU \(2 visible\)") as e:
        _cuda_device("cuda:2")
    assert "\n" not in str(e.value)
    assert _cuda_device("cpu") is None


# ------------------------------------------------------------------ 2. CUDA-graph capture falls back

class FakeGraph:
    """torch.cuda.CUDAGraph's capture calls, recorded; `end_error` makes capture_end raise as CUDA does for an
    invalidated capture."""

    end_error: Exception | None = None
    made: list["FakeGraph"] = []

    def __init__(self):
        self.mode, self.capturing, self.ended = None, False, False
        FakeGraph.made.append(self)

    def capture_begin(self, pool=None, capture_error_mode="global"):
        self.mode, self.capturing = capture_error_mode, True

    def capture_end(self):
        self.capturing, self.ended = False, True
        if FakeGraph.end_error is not None:
            raise FakeGraph.end_error


class FakeContext:
    """An execution context whose execute_async_v3 works outside a capture and fails (returns False, as
    TensorRT does for an enqueue it can't capture) during one, if `fail_in_capture`."""

    def __init__(self, fail_in_capture):
        self.fail_in_capture = fail_in_capture
        self.calls = 0

    def execute_async_v3(self, stream_handle):
        self.calls += 1
        capturing = any(g.capturing for g in FakeGraph.made)
        return not (capturing and self.fail_in_capture)


@pytest.fixture
def capture_env(monkeypatch):
    """The current stream as torch keeps it, and CUDAGraph replaced by FakeGraph."""
    FakeGraph.made, FakeGraph.end_error = [], None
    state = {"current": "default stream"}
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: state["current"])
    monkeypatch.setattr(torch.cuda, "set_stream", lambda s: state.__setitem__("current", s))

    def backend(fail_in_capture):
        b = TensorRTBackend.__new__(TensorRTBackend)  # only the parts the capture uses
        b.context, b.path = FakeContext(fail_in_capture), "mona.engine"
        b.device, b.stream = torch.device("cuda", 0), SimpleNamespace(cuda_stream=1234, name="side stream")
        return b

    return state, backend


def test_failed_enqueue_in_capture_falls_back_to_no_graph(capture_env):
    state, backend = capture_env
    b = backend(fail_in_capture=True)
    graph, note = b._capture_graph()  # a PuppetError in capture is caught: no graph, no failure
    assert graph is None and note.startswith("no CUDA graph (") and "execute_async_v3 failed" in note
    assert FakeGraph.made[0].ended  # the capture was ended, not left open on the stream
    assert state["current"] == "default stream"
    # and the backend still runs, without the graph
    b.graph = None
    b._enqueue()
    assert b.context.calls == 2


def test_capture_error_restores_the_current_stream(capture_env):
    state, backend = capture_env
    FakeGraph.end_error = RuntimeError("CUDA error: operation not permitted when stream is capturing")
    graph, note = backend(fail_in_capture=False)._capture_graph()
    assert graph is None and "operation not permitted" in note
    assert state["current"] == "default stream"  # torch.cuda.graph leaves the capture stream current here


def test_capture_is_thread_local_and_kept_when_it_works(capture_env):
    state, backend = capture_env
    graph, note = backend(fail_in_capture=False)._capture_graph()
    assert graph is FakeGraph.made[0] and note == "CUDA graph"
    assert graph.mode == "thread_local"  # as trtexec: other threads' CUDA calls can't invalidate it
    assert state["current"] == "default stream"


# ------------------------------------------------------------------ 4. every I/O buffer stays bound

@pytest.fixture
def fake_trt_enums(monkeypatch):
    """A `tensorrt` module with just the enums _bind_io reads (their real values: test_trt_api.py)."""
    mod = types.ModuleType("tensorrt")
    mod.DataType = SimpleNamespace(FLOAT="DataType.FLOAT", HALF="DataType.HALF", INT8="DataType.INT8")
    mod.TensorIOMode = SimpleNamespace(INPUT="TensorIOMode.INPUT", OUTPUT="TensorIOMode.OUTPUT")
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    return mod


class EngineIO:
    """The I/O tensors an engine describes (name, shape, dtype, mode): no engine behind it."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.num_io_tensors = len(tensors)

    def get_tensor_name(self, i):
        return self.tensors[i][0]

    def _get(self, name, k):
        return next(t[k] for t in self.tensors if t[0] == name)

    def get_tensor_shape(self, name):
        return self._get(name, 1)

    def get_tensor_dtype(self, name):
        return self._get(name, 2)

    def get_tensor_mode(self, name):
        return self._get(name, 3)


class AddressBook:
    def __init__(self):
        self.addresses = {}

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return True


def test_every_io_buffer_stays_referenced(fake_trt_enums):
    dt, io = fake_trt_enums.DataType, fake_trt_enums.TensorIOMode
    engine = EngineIO([("sketch", (1, 3, 8, 8), dt.FLOAT, io.INPUT),
                       ("warped", (1, 3, 8, 8), dt.FLOAT, io.INPUT),
                       ("image", (1, 3, 8, 8), dt.HALF, io.OUTPUT),
                       ("mask", (1, 1, 8, 8), dt.HALF, io.OUTPUT)])
    context = AddressBook()
    inputs, outputs = _bind_io(engine, context, torch.device("cpu"), "mona.engine")
    assert list(inputs) == ["sketch", "warped"] and list(outputs) == ["image", "mask"]
    kept = {**inputs, **outputs}
    # every address TensorRT was given belongs to a buffer the caller keeps (every input and output)
    assert context.addresses == {name: buf.data_ptr() for name, buf in kept.items()}
    assert outputs["image"].dtype == torch.float16 and inputs["sketch"].dtype == torch.float32


def test_unexpected_tensor_type_is_a_one_line_error(fake_trt_enums):
    dt, io = fake_trt_enums.DataType, fake_trt_enums.TensorIOMode
    engine = EngineIO([("sketch", (1, 3, 8, 8), dt.INT8, io.INPUT)])
    with pytest.raises(PuppetError, match=r"mona.engine: I/O tensor `sketch` is DataType.INT8") as e:
        _bind_io(engine, AddressBook(), torch.device("cpu"), "mona.engine")  # a one-line error (no KeyError)
    assert "\n" not in str(e.value) and "python -m export.trt --force" in str(e.value)
    dynamic = EngineIO([("sketch", (1, 3, -1, -1), dt.FLOAT, io.INPUT)])
    with pytest.raises(PuppetError, match="fixed-shape"):
        _bind_io(dynamic, AddressBook(), torch.device("cpu"), "mona.engine")


# ------------------------------------------------------------------ 5. timing cache: refused or missing

class FakeConfig:
    """A builder config's timing-cache calls: a cache of `refused` bytes is refused (set_timing_cache False:
    another GPU or TensorRT); get_timing_cache gives `kept`."""

    def __init__(self, refused=b"foreign", kept=None):
        self.refused, self.kept, self.attached = refused, kept, []

    def create_timing_cache(self, blob):
        return SimpleNamespace(blob=bytes(blob))

    def set_timing_cache(self, cache, ignore_mismatch):
        assert ignore_mismatch is False
        self.attached.append(cache.blob)
        return cache.blob != self.refused

    def get_timing_cache(self):
        return self.kept


def test_refused_timing_cache_is_replaced_by_a_fresh_one(tmp_path, capsys):
    path = tmp_path / "mona.engine.abc.timing"
    path.write_bytes(b"foreign")
    config = FakeConfig()
    assert build.attach_timing_cache(config, path)  # a refused cache is replaced by an empty one, not dropped
    assert config.attached == [b"foreign", b""]
    assert "another GPU or TensorRT" in capsys.readouterr().out
    fresh = FakeConfig()
    assert build.attach_timing_cache(fresh, tmp_path / "none.timing") and fresh.attached == [b""]


def test_engine_is_written_before_and_without_the_timing_cache(tmp_path, capsys):
    assert build.timing_cache_bytes(FakeConfig(kept=None)) is None  # no cache kept: None, no serialize() call
    kept = SimpleNamespace(serialize=lambda: b"timings")
    assert build.timing_cache_bytes(FakeConfig(kept=kept)) == b"timings"
    key = engine_key(DeviceIdentity("10.13.3", "NVIDIA H200", "9.0"), "ab" * 32, BuildSettings())
    out = tmp_path / "mona.engine"
    # plain bytes standing for an engine: this tests the order of the writes only
    (tmp_path / "a-file").write_bytes(b"")  # the timing cache can't be written under a file
    build.save_build(out, b"engine bytes", key, {}, tmp_path / "a-file" / "mona.timing", b"timings")
    assert load_fresh_engine(out, key) == b"engine bytes"  # the engine survives a timing cache not written
    assert "timing cache not saved" in capsys.readouterr().out
    out.unlink()
    build.save_build(out, b"engine bytes", key, {}, tmp_path / "mona.timing", None)
    assert is_fresh(out, key) and not (tmp_path / "mona.timing").exists()


# ------------------------------------------------------------------ 6. the key names the GPU built on

def test_device_identity_is_the_current_gpu(two_gpus, monkeypatch):
    current, calls = two_gpus
    asked = []
    names = {0: SimpleNamespace(name="NVIDIA L4", major=8, minor=9),
             1: SimpleNamespace(name="NVIDIA H200", major=9, minor=0)}
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: asked.append(d) or names[d])
    current[0] = 1  # the runtime's torch.cuda.set_device(cuda:1), or export.trt --device cuda:1
    ident = artifacts.device_identity("10.13.3")  # the current device, not device 0
    assert asked == [1] and ident == DeviceIdentity("10.13.3", "NVIDIA H200", "9.0")
    assert use_gpu("cuda:1") == torch.device("cuda", 1)  # export.trt --device, the runtime's TensorRT
    assert calls == [1]
    for bad, match in (("cpu", "builds on an NVIDIA GPU"), ("cuda:7", r"no such GPU \(2 visible\)")):
        with pytest.raises(PuppetError, match=match):
            use_gpu(bad)


# ------------------------------------------------------------------ 7. no STRONGLY_TYPED flag on 11.x

@pytest.mark.parametrize("version, value, route, flags", [
    ("10.12.0.36", 1, "strongly-typed", 1 << 1),  # 10.12-10.x: ask for a strongly typed network
    ("11.4.0.106", 0, "strongly-typed", 0),  # 11: always strongly typed, the flag deprecated (value 0 now)
    ("10.11.0.33", 1, "fp16-flag", 0),  # the weakly typed FP16 route
])
def test_network_flags(monkeypatch, version, value, route, flags):
    mod = types.ModuleType("tensorrt")
    mod.NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=value)
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    assert build.network_flags(version, route) == flags


# ------------------------------------------------------------------ an empty `tensorrt` package

def _empty_tensorrt(root):
    """What `pip install tensorrt-stubs` leaves: tensorrt/__init__.pyi, no module (a namespace package)."""
    (root / "tensorrt").mkdir()
    (root / "tensorrt" / "__init__.pyi").write_text("def __getattr__(name: str): ...\n")
    return root


@pytest.fixture
def no_tensorrt_module_after():
    """The empty package imported by a test must not stay in sys.modules for the tests after it."""
    saved = sys.modules.pop("tensorrt", None)
    yield
    sys.modules.pop("tensorrt", None)
    if saved is not None:
        sys.modules["tensorrt"] = saved


def test_empty_tensorrt_package_is_a_one_line_error(tmp_path, monkeypatch, no_tensorrt_module_after):
    monkeypatch.syspath_prepend(str(_empty_tensorrt(tmp_path)))
    with pytest.raises(PuppetError) as e:
        artifacts.import_tensorrt()
    msg = str(e.value)
    assert "\n" not in msg and "is not TensorRT" in msg and "pip uninstall -y tensorrt-stubs" in msg
    assert "__version__" in msg and str(tmp_path) in msg
    # --backend auto doesn't pick it (and says why); --backend tensorrt is that one line
    assert runtime.tensorrt_available() is False
    with pytest.raises(PuppetError, match="is not TensorRT"):
        runtime.load_backend("tensorrt", "mona.pt")


def test_export_trt_with_an_empty_tensorrt_package_exits_2_with_one_line(tmp_path):
    target = tmp_path / "mona.pt"
    target.write_bytes(b"not read: TensorRT is checked first")
    site = tmp_path / "site"
    site.mkdir()
    _empty_tensorrt(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "export.trt", "--target", str(target)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: tensorrt: ")
    assert "tensorrt-stubs" in r.stderr

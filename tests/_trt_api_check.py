"""Run in a subprocess by tests/test_trt_api.py, with TensorRT's real bindings of one version importable
against a null stand-in for its libraries (tests/_trt_bindings.py). Checks every TensorRT name export/trt.py
and the tensorrt backend use, and runs the code of theirs that needs no engine. Nothing here builds or runs
an engine (no machine here can): `trt.Builder(...)` would raise, the libraries being null.

Prints one JSON line: the version and what was checked; exits 1 with the list of problems otherwise.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import tensorrt as trt
import torch
from _trt_bindings import split_top  # tests/ is this script's folder: on sys.path

from export import trt as build
from puppet import artifacts
from puppet.live import runtime

ROOT = Path(__file__).resolve().parents[1]
VERSION = tuple(int(p) for p in trt.__version__.split(".")[:2])
TRT11 = VERSION >= (11, 0)
WEAK = VERSION < (10, 12)  # the FP16-flag route's versions

# The methods the code calls on TensorRT's objects: (class, method, positional arguments passed, returns).
# Checked against the signature pybind11 writes into each docstring; `returns` None: not relied on.
METHODS = [
    ("Logger", "__init__", 1, None),
    ("Builder", "__init__", 1, None),
    ("Builder", "create_network", 1, "INetworkDefinition"),
    ("Builder", "create_builder_config", 0, "IBuilderConfig"),
    ("Builder", "build_serialized_network", 2, "IHostMemory"),
    ("OnnxParser", "__init__", 2, None),
    ("OnnxParser", "set_flag", 1, None),
    ("OnnxParser", "parse_from_file", 1, "bool"),
    ("OnnxParser", "get_error", 1, None),
    ("IBuilderConfig", "set_memory_pool_limit", 2, None),
    ("IBuilderConfig", "set_flag", 1, None),
    ("IBuilderConfig", "create_timing_cache", 1, "ITimingCache"),
    ("IBuilderConfig", "set_timing_cache", 2, "bool"),
    ("IBuilderConfig", "get_timing_cache", 0, "ITimingCache"),
    ("ITimingCache", "serialize", 0, "IHostMemory"),
    ("INetworkDefinition", "get_layer", 1, "ILayer"),
    ("IProgressMonitor", "__init__", 0, None),
    ("IProgressMonitor", "phase_start", 3, None),
    ("IProgressMonitor", "step_complete", 2, "bool"),
    ("IProgressMonitor", "phase_finish", 1, None),
    ("Runtime", "__init__", 1, None),
    ("Runtime", "deserialize_cuda_engine", 1, "ICudaEngine"),
    ("ICudaEngine", "create_execution_context", 0, "IExecutionContext"),
    ("ICudaEngine", "get_tensor_name", 1, "str"),
    ("ICudaEngine", "get_tensor_shape", 1, "Dims"),
    ("ICudaEngine", "get_tensor_dtype", 1, "DataType"),
    ("ICudaEngine", "get_tensor_mode", 1, "TensorIOMode"),
    ("IExecutionContext", "set_tensor_address", 2, "bool"),
    ("IExecutionContext", "execute_async_v3", 1, "bool"),
]
WEAK_METHODS = [("ILayer", "set_output_type", 2, None)]  # 10.0-10.11 only; gone in 11

# Properties read (False) or also written (True).
PROPERTIES = [
    ("OnnxParser", "num_errors", False),
    ("INetworkDefinition", "num_layers", False),
    ("ILayer", "type", False),
    ("ILayer", "num_outputs", False),
    ("IBuilderConfig", "progress_monitor", True),
    ("ICudaEngine", "num_io_tensors", False),
]
WEAK_PROPERTIES = [("ILayer", "precision", True)]

# Module-level names whose presence depends on the version: (dotted name, expected present).
OPTIONAL = {
    "BuilderFlag.FP16": not TRT11,
    "BuilderFlag.OBEY_PRECISION_CONSTRAINTS": not TRT11,
    "OnnxParserFlag.NATIVE_INSTANCENORM": True,
    "LayerType.NORMALIZATION": True,
    "LayerType.SOFTMAX": True,
    "LayerType.REDUCE": True,
}

problems: list[str] = []
checked = 0


def check(ok: bool, what: str) -> None:
    global checked
    checked += 1
    if not ok:
        problems.append(what)


def resolve(dotted: str):
    obj = trt
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def signatures(func, name: str) -> list[tuple[list[tuple[str, bool]], str]]:
    """(parameters as (name, has default), return type) of each overload in a pybind11 docstring."""
    out = []
    for line in (func.__doc__ or "").splitlines():
        m = re.match(rf"^\s*(?:\d+\.\s*)?{re.escape(name)}\((.*)\)\s*->\s*(.+?)\s*$", line)
        if not m or m.group(1) == "*args, **kwargs":
            continue
        params = [(p.split(":")[0].split("=")[0].strip(), "=" in p) for p in split_top(m.group(1))]
        out.append((params, m.group(2)))
    return out


def accepts(params: list[tuple[str, bool]], n: int) -> bool:
    """Whether a call with `n` positional arguments (after self) fits these parameters."""
    rest = params[1:] if params and params[0][0] == "self" else params
    if any(p.startswith("*") for p, _ in rest):
        return True
    required = sum(1 for _, has_default in rest if not has_default)
    return required <= n <= len(rest)


def check_methods(table, present: bool) -> None:
    for owner, name, nargs, returns in table:
        cls = getattr(trt, owner, None)
        func = getattr(cls, name, None) if cls is not None else None
        if not present:
            check(func is None, f"{owner}.{name}: expected gone in TensorRT {trt.__version__}")
            continue
        check(func is not None, f"{owner}.{name}: missing")
        if func is None:
            continue
        sigs = signatures(func, name)
        check(bool(sigs), f"{owner}.{name}: no signature in its docstring")
        fits = [s for s in sigs if accepts(s[0], nargs)]
        check(bool(fits), f"{owner}.{name}: no overload takes {nargs} argument(s): {sigs}")
        if returns is not None and fits:
            check(any(re.search(rf"\b{returns}$", r) for _, r in fits),
                  f"{owner}.{name}: returns {[r for _, r in fits]}, the code expects {returns}")


def check_properties(table, present: bool) -> None:
    for owner, name, writable in table:
        prop = getattr(getattr(trt, owner), name, None)
        if not present:
            check(prop is None, f"{owner}.{name}: expected gone in TensorRT {trt.__version__}")
            continue
        check(isinstance(prop, property), f"{owner}.{name}: not a property ({type(prop).__name__})")
        if writable and isinstance(prop, property):
            check(prop.fset is not None, f"{owner}.{name}: read-only, the code assigns it")


def names_in_code() -> set[str]:
    """Every `trt.A.B` chain, and `getattr(trt.A, "B")` / `hasattr(...)`, in the TensorRT code."""
    found = set()
    for path in ("export/trt.py", "puppet/live/runtime.py"):
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if isinstance(node, ast.Attribute):
                chain, cur = [], node
                while isinstance(cur, ast.Attribute):
                    chain.append(cur.attr)
                    cur = cur.value
                if isinstance(cur, ast.Name) and cur.id == "trt":
                    found.add(".".join(reversed(chain)))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2 \
                    and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                owner = node.args[0]
                if isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) \
                        and owner.value.id == "trt":
                    found.add(f"{owner.attr}.{node.args[1].value}")
                elif isinstance(owner, ast.Name) and owner.id == "trt":
                    found.add(node.args[1].value)
    return found


def check_names() -> int:
    names = names_in_code()
    for dotted in sorted(names):
        # only the longest chains: trt.Logger.WARNING covers trt.Logger
        if any(other.startswith(dotted + ".") for other in names):
            continue
        if dotted in OPTIONAL:
            try:
                resolve(dotted)
                present = True
            except AttributeError:
                present = False
            check(present == OPTIONAL[dotted],
                  f"trt.{dotted}: {'present' if present else 'missing'} in TensorRT {trt.__version__}, "
                  f"expected {'present' if OPTIONAL[dotted] else 'gone'}")
        else:
            try:
                resolve(dotted)
                check(True, "")
            except AttributeError:
                check(False, f"trt.{dotted}: used by the code, missing in TensorRT {trt.__version__}")
    return len(names)


def run_code_paths() -> None:
    """The code that needs no engine, on the real module."""
    check(artifacts.import_tensorrt() is trt, "import_tensorrt: refused the real bindings")
    route = artifacts.route_for(trt.__version__)
    check(route == (artifacts.ROUTE_FP16_FLAG if WEAK else artifacts.ROUTE_STRONG), f"route {route}")
    flags = build.network_flags(trt.__version__, route)
    if TRT11 or WEAK:
        expected = 0
    else:
        expected = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        check(expected == 2, f"STRONGLY_TYPED is bit {expected} in TensorRT 10")
    check(flags == expected, f"network_flags {flags}, expected {expected}")
    if TRT11:  # the flag 10.x passes would mean something else here (its value is 0)
        check(int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 0
              and "deprecated" in (trt.NetworkDefinitionCreationFlag.__doc__ or "").lower(),
              "TensorRT 11: STRONGLY_TYPED is not the deprecated value 0")
    # the progress monitor: a real IProgressMonitor subclass, driven as TensorRT would drive it
    monitor, close_bars = build.progress_monitor()
    check(isinstance(monitor, trt.IProgressMonitor), "progress_monitor: not an IProgressMonitor")
    monitor.phase_start("Building", None, 3)
    monitor.phase_start("Tactics", "Building", 2)
    check(monitor.step_complete("Building", 0) is True, "step_complete must return True (False cancels)")
    monitor.phase_finish("Tactics")
    close_bars()
    # buffers bound with the real enums and a real Dims (an engine's I/O described by a stand-in object:
    # there is no engine; this checks our dtype table and shape handling against TensorRT's own types)

    class EngineIO:
        num_io_tensors = 2
        names = ("sketch", "image")

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_shape(self, name):
            return trt.Dims([1, 3, 8, 8])

        def get_tensor_dtype(self, name):
            return trt.DataType.FLOAT if name == "sketch" else trt.DataType.HALF

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "sketch" else trt.TensorIOMode.OUTPUT

    class Context:
        def set_tensor_address(self, name, ptr):
            return True

    inputs, outputs = runtime._bind_io(EngineIO(), Context(), torch.device("cpu"), "x.engine")
    check(list(inputs) == ["sketch"] and list(outputs) == ["image"], f"_bind_io: {inputs}, {outputs}")
    check(inputs["sketch"].shape == (1, 3, 8, 8) and inputs["sketch"].dtype == torch.float32
          and outputs["image"].dtype == torch.float16, "_bind_io: shapes/dtypes")
    check(runtime.tensorrt_available() is torch.cuda.is_available(), "tensorrt_available")


def main() -> int:
    check_methods(METHODS, True)
    check_methods(WEAK_METHODS, not TRT11)
    check_properties(PROPERTIES, True)
    check_properties(WEAK_PROPERTIES, not TRT11)
    n_names = check_names()
    run_code_paths()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(json.dumps({"tensorrt": trt.__version__, "checks": checked, "names_in_code": n_names,
                      "methods": len(METHODS) + len(WEAK_METHODS),
                      "properties": len(PROPERTIES) + len(WEAK_PROPERTIES)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

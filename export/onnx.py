"""Export the person's generator to ONNX: `python -m export.onnx --target mona.pt [--precision fp32|fp16]`.

What goes in the file is `Target.person_generator()`: the generator with psi' folded into per-layer constants,
no projection matrix P, no embedder, no spectral norm. One input `sketch` (1, 3, S, S) float32 in [-1, 1], one
output `image` (1, 3, S, S) float32; static shapes; weights inside the file.

fp16 is the form TensorRT's strongly typed networks take: FP16 weights and compute, with the ops that
overflow or lose too much in half precision (instance norm statistics, softmax and the attention logits that
feed it, reductions, pow/sqrt/exp) kept in FP32 behind explicit Cast nodes, and I/O kept float32.

The command checks its own output and fails (exit 2, one line) when any check fails: onnx.checker,
onnxruntime (CPU) against torch on the same sketches, and every operator being one TensorRT's ONNX parser
supports (`TRT_SUPPORTED_OPS`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from puppet.errors import PuppetError, run_cli
from puppet.files import atomic_write_bytes

DEFAULT_OPSET = 17  # InstanceNormalization/Resize as TensorRT 10's parser reads them (it takes opsets 9..22)
FORMAT_VERSION = "1"  # bump when the exported graph changes for the same target (re-exports cached files)

FP32_TOLERANCE = 1e-4  # max |onnxruntime - torch| on [-1, 1] images at 64x64 (see `tolerance`)
FP16_TOLERANCE = 1e-2

# The ONNX operators this project's generator may export to, each one listed as supported (Y) for FP32 and
# FP16 in onnx-tensorrt's docs/operators.md (TensorRT 10.x, opsets 9-22). A graph that uses anything else
# fails the export's self-check: add an op here only after checking it in that table.
TRT_SUPPORTED_OPS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape",
    "Conv", "ConvTranspose", "Div", "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten", "Gather", "Gemm",
    "GlobalAveragePool", "Identity", "InstanceNormalization", "LeakyRelu", "MatMul", "MaxPool", "Mul", "Neg",
    "Pad", "Pow", "PRelu", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize", "Shape", "Sigmoid",
    "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Where",
})

# Ops computed in FP32 inside an fp16 graph: half precision overflows at 65504 and has 11 bits of mantissa,
# so statistics over a whole feature map (instance norm, reductions), softmax and powers stay in FP32.
FP32_OPS = frozenset({
    "InstanceNormalization", "BatchNormalization", "Softmax", "ReduceMean", "ReduceSum", "ReduceSumSquare",
    "Pow", "Sqrt", "Exp", "Log", "Erf",
})

# Float inputs that the ONNX spec types separately from the data (Resize's roi and scales are float32).
_KEEP_INPUT_TYPE = {"Resize": {1, 2}, "Upsample": {1}}
# Ops that accept any input type and produce no float (no cast needed in front of them).
_TYPE_AGNOSTIC = {"Shape", "Size"}
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16)


# ---------------------------------------------------------------- the target and where exports are cached

def load_target_any(target):
    """A Target object from a path (read with weights_only) or the object itself."""
    if isinstance(target, (str, os.PathLike)):
        from puppet.target import load_target

        path = Path(target)
        if not path.is_file():
            raise PuppetError(f"{path}: no such target file; pass a .pt made by `python -m puppet.finetune`")
        return load_target(path)
    return target


def target_fingerprint(target) -> str:
    """sha256 of a target: of the file for a path, else of its generator weights, psi and config."""
    if isinstance(target, (str, os.PathLike)):
        from export.cache import file_sha256

        return file_sha256(target)
    h = hashlib.sha256(json.dumps(target.config, sort_keys=True, default=str).encode())
    for name, t in sorted(target.generator.items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(target.psi.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_dir_for(target) -> Path:
    """Where exports of a target live: beside a target file, else in the user's cache (by content hash)."""
    if isinstance(target, (str, os.PathLike)):
        return Path(target).resolve().parent
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "puppet" / "exports" / target_fingerprint(target)[:16]


def cached_onnx_path(target, precision: str) -> Path:
    """`mona.onnx` / `mona.fp16.onnx`: the names `python -m export.onnx` writes by default, so either reuses
    the other's file when it is up to date."""
    stem = Path(target).stem if isinstance(target, (str, os.PathLike)) else "target"
    return cache_dir_for(target) / (f"{stem}.onnx" if precision == "fp32" else f"{stem}.{precision}.onnx")


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any unreadable file just means "export again"
        return {}
    return {p.key: p.value for p in model.metadata_props}


def ensure_onnx(target, precision: str = "fp32", opset: int = DEFAULT_OPSET, out=None, check=True) -> Path:
    """The target's ONNX file, exported (and self-checked) unless an up-to-date one is already there.

    Up to date means its metadata names the same target content, precision, opset and export format: so the
    ONNX bytes (and with them the TensorRT engine cache key) stay the same until the target changes.
    """
    out = Path(out) if out is not None else cached_onnx_path(target, precision)
    want = {
        "puppet.source_sha256": target_fingerprint(target),
        "puppet.precision": precision,
        "puppet.opset": str(opset),
        "puppet.format": FORMAT_VERSION,
    }
    meta = onnx_metadata(out) if out.is_file() else {}
    if all(meta.get(k) == v for k, v in want.items()):
        return out
    t = load_target_any(target)
    export_target(t, out, precision=precision, opset=opset, metadata=want, check=check)
    return out


# ---------------------------------------------------------------- export

def export_module(
    module: torch.nn.Module,
    image_size: int,
    out: str | os.PathLike,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Export an image-to-image module (sketch -> image) to `out` atomically; returns the path."""
    if precision not in ("fp32", "fp16"):
        raise PuppetError(f"--precision {precision}: unknown precision; use fp32 or fp16")
    model = _simplify(torch_to_onnx(module, image_size, opset))
    if precision == "fp16":
        model = to_fp16(model)
    helper.set_metadata_props(model, {"puppet.precision": precision, "puppet.image_size": str(image_size),
                                      **(metadata or {})})
    data = model.SerializeToString()
    if len(data) >= 2**31:
        raise PuppetError(f"{out}: the model is over 2 GB, too big for one ONNX file; use a smaller config")
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise PuppetError(f"{out}: onnx.checker rejected the exported graph: {e}; report this bug") from e
    out = Path(out)
    atomic_write_bytes(out, data)
    return out


def torch_to_onnx(module: torch.nn.Module, image_size: int, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The FP32 graph, through the TorchScript exporter.

    torch >= 2.9 defaults to the dynamo exporter, which needs onnxscript; the TorchScript route
    (dynamo=False) works offline with torch alone and gives plain InstanceNormalization nodes.
    """
    module = module.eval().float().cpu()
    dummy = torch.zeros(1, 3, image_size, image_size)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript exporter's deprecation notice and tracer chatter are not the user's problem.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (dummy,), buf, dynamo=False, input_names=["sketch"], output_names=["image"],
            opset_version=opset, do_constant_folding=True, export_params=True,
        )
    return onnx.load_from_string(buf.getvalue())


def export_target(target, out, precision="fp32", opset=DEFAULT_OPSET, metadata=None, check=True) -> Path:
    """Export a Target (object or path); with check=True also run the self-check (raises on failure)."""
    t = load_target_any(target)
    gen = t.person_generator().eval()
    size = int(t.config["image_size"])
    path = export_module(gen, size, out, precision=precision, opset=opset, metadata=metadata)
    if check:
        self_check(path, gen, sample_sketches(t), precision)
    return path


# ---------------------------------------------------------------- FP16 graph pass

def to_fp16(model: onnx.ModelProto, fp32_ops: frozenset[str] = FP32_OPS) -> onnx.ModelProto:
    """FP32 graph -> FP16 weights and compute, `fp32_ops` (and attention logits) in FP32, float32 I/O.

    Every float tensor gets one type; where a consumer needs the other one, a Cast is inserted (one per
    tensor and type) or, for weights, the initializer is converted (FP32 ops such as InstanceNormalization
    keep FP32 initializers: TensorRT requires their scale and bias to be initializers).
    """
    model = _simplify(model)  # (a copy: the caller's model is left as it was)
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    orig_type = {v.name: v.type.tensor_type.elem_type
                 for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    inits = {i.name: i for i in graph.initializer}
    orig_type.update({name: i.data_type for name, i in inits.items()})
    old_nodes = list(graph.node)  # one wrapper object per node: protobuf may hand out new ones per access
    high = {id(n) for n in old_nodes if n.op_type in fp32_ops}
    high |= {id(n) for n in _attention_logits(old_nodes, inits)}

    def wanted(node, slot: int, name: str) -> int | None:
        if orig_type.get(name) not in _FLOATS or node.op_type in _TYPE_AGNOSTIC:
            return None
        if slot in _KEEP_INPUT_TYPE.get(node.op_type, ()):
            return orig_type[name]
        return TensorProto.FLOAT if id(node) in high else TensorProto.FLOAT16

    # Initializers: converted in place when every consumer wants FP16, else an FP16 copy for FP16 consumers.
    wants: dict[str, set[int]] = {}
    for node in old_nodes:
        for slot, name in enumerate(node.input):
            if name in inits and (w := wanted(node, slot, name)) is not None:
                wants.setdefault(name, set()).add(w)
    init_name = {}  # (name, type) -> initializer name holding that type
    for name, types in wants.items():
        init = inits[name]
        if init.data_type != TensorProto.FLOAT:
            continue
        if types == {TensorProto.FLOAT16}:
            init.CopyFrom(_as_fp16(init, name))
            init_name[(name, TensorProto.FLOAT16)] = name
        elif TensorProto.FLOAT16 in types:
            graph.initializer.append(_as_fp16(init, f"{name}__fp16"))
            init_name[(name, TensorProto.FLOAT16)] = f"{name}__fp16"

    new_type = {v.name: v.type.tensor_type.elem_type for v in graph.input}
    new_type.update({name: i.data_type for name, i in inits.items()})
    new_type.update({i.name: i.data_type for i in graph.initializer})
    casts: dict[tuple[str, int], str] = {}
    nodes = []
    for node in old_nodes:
        is_high = id(node) in high
        for slot, name in enumerate(node.input):
            want = wanted(node, slot, name) if name else None
            have = new_type.get(name)
            if want is None or have == want:
                continue
            if (name, want) in init_name:
                node.input[slot] = init_name[(name, want)]
                continue
            key = (name, want)
            if key not in casts:
                casts[key] = f"{name}__to_{'fp16' if want == TensorProto.FLOAT16 else 'fp32'}"
                nodes.append(helper.make_node("Cast", [name], [casts[key]], to=want, name=casts[key]))
                new_type[casts[key]] = want
            node.input[slot] = casts[key]
        compute = TensorProto.FLOAT if is_high else TensorProto.FLOAT16
        _retype_float_attributes(node, compute)
        for name in node.output:
            t = orig_type.get(name)
            new_type[name] = compute if t == TensorProto.FLOAT else t
        nodes.append(node)

    # Graph outputs stay float32: the last FP16 tensor is renamed and cast back under the output's name.
    for out in graph.output:
        if new_type.get(out.name) == TensorProto.FLOAT16:
            inner = f"{out.name}__fp16"
            for node in nodes:
                node.output[:] = [inner if o == out.name else o for o in node.output]
                node.input[:] = [inner if i == out.name else i for i in node.input]
            nodes.append(helper.make_node("Cast", [inner], [out.name], to=TensorProto.FLOAT,
                                          name=f"{out.name}__out"))

    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # FP32 annotations are stale now; the checker re-infers them
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model


def _as_fp16(init: TensorProto, name: str) -> TensorProto:
    arr = numpy_helper.to_array(init).astype(np.float16)
    return numpy_helper.from_array(arr, name)


def _retype_float_attributes(node: onnx.NodeProto, compute: int) -> None:
    """Ops whose float output type is an attribute follow the node's compute type."""
    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i in _FLOATS:
            attr.i = compute
        if node.op_type == "ConstantOfShape" and attr.name == "value" and attr.t.data_type in _FLOATS:
            dtype = np.float16 if compute == TensorProto.FLOAT16 else np.float32
            value = numpy_helper.to_array(attr.t).astype(dtype)
            attr.t.CopyFrom(numpy_helper.from_array(value, attr.t.name))


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold everything the static input shape makes constant, and hand every weight to its consumer as an
    initializer (TensorRT's parser requires that of InstanceNormalization's scale/bias and Conv's weights).

    Constant nodes become initializers; Identity nodes over initializers (the exporter's de-duplication of
    equal weights) are bypassed; Shape of a statically shaped tensor, and any node whose inputs are all
    constant (the Slice/Concat that `flatten` leaves in front of a Reshape), become initializers too.
    Returns a copy.
    """
    from onnx.reference import ReferenceEvaluator

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inferred = onnx.shape_inference.infer_shapes(out, strict_mode=True).graph
    dims = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
            for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    known = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    outputs = {o.name for o in g.output}
    alias: dict[str, str] = {}
    nodes = []
    for node in g.node:
        node.input[:] = [alias.get(i, i) for i in node.input]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        value = None
        if node.output[0] in outputs or len(node.output) != 1:
            pass
        elif node.op_type == "Constant" and "value" in attrs:
            value = numpy_helper.to_array(attrs["value"])
        elif node.op_type == "Identity" and node.input[0] in known:
            alias[node.output[0]] = node.input[0]
            continue
        elif node.op_type == "Shape" and None not in dims.get(node.input[0], [None]):
            shape = dims[node.input[0]]
            value = np.array(shape[attrs.get("start", 0):attrs.get("end", len(shape))], dtype=np.int64)
        elif node.domain in ("", "ai.onnx") and node.input and all(i in known for i in node.input if i):
            feeds = {i: known[i] for i in node.input if i}
            value = ReferenceEvaluator(node).run(None, feeds)[0]
        if value is None:
            nodes.append(node)
            continue
        value = np.asarray(value)
        known[node.output[0]] = value
        g.initializer.append(numpy_helper.from_array(value, node.output[0]))
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input} | outputs
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.value_info[:]
    return out


def _attention_logits(nodes: list[onnx.NodeProto], inits) -> list[onnx.NodeProto]:
    """The MatMul producing each Softmax's input (through Mul/Div/Add scaling): attention logits q.k can
    exceed FP16's range, so they are computed in FP32 along with the softmax."""
    producer = {o: n for n in nodes for o in n.output}
    found = []
    for node in nodes:
        if node.op_type != "Softmax":
            continue
        cur = producer.get(node.input[0])
        while cur is not None and cur.op_type in ("Mul", "Div", "Add", "Reshape", "Transpose"):
            found.append(cur)
            data = [i for i in cur.input if i not in inits and i in producer]
            cur = producer.get(data[0]) if data else None
        if cur is not None and cur.op_type in ("MatMul", "Gemm"):
            found.append(cur)
    return found


# ---------------------------------------------------------------- checks

def graph_ops(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


def trt_problems(model: onnx.ModelProto) -> list[str]:
    """Reasons TensorRT's ONNX parser would reject the graph: unlisted ops and documented restrictions."""
    unlisted = sorted(graph_ops(model) - TRT_SUPPORTED_OPS)
    problems = [f"operator {op} is not in TRT_SUPPORTED_OPS" for op in unlisted]
    inits = {i.name for i in model.graph.initializer}
    for n in model.graph.node:
        if n.domain not in ("", "ai.onnx"):
            problems.append(f"{n.name or n.op_type}: custom domain {n.domain}")
        if n.op_type == "InstanceNormalization" and not all(i in inits for i in n.input[1:]):
            problems.append(f"{n.name}: InstanceNormalization scale/bias must be initializers")
        if n.op_type in ("Conv", "ConvTranspose") and n.input[1] not in inits:
            problems.append(f"{n.name}: {n.op_type} weights must be an initializer")
        if n.op_type == "Resize":
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            mode = attrs.get("mode", b"nearest").decode()
            if mode not in ("nearest", "linear"):
                problems.append(f"{n.name}: Resize mode {mode} (TensorRT takes nearest or linear)")
    for v in [*model.graph.input, *model.graph.output]:
        if v.type.tensor_type.elem_type != TensorProto.FLOAT:
            problems.append(f"I/O tensor {v.name} is not float32")
        if any(not d.HasField("dim_value") for d in v.type.tensor_type.shape.dim):
            problems.append(f"I/O tensor {v.name} has a dynamic dimension")
    return problems


def sample_sketches(target, n: int = 3, seed: int = 0) -> list[torch.Tensor]:
    """A few real-looking sketches: the target's reference landmarks jittered and shifted, drawn by the one
    rasteriser (puppet.sketch); uniform random tensors only where that is unavailable."""
    size = int(target.config["image_size"])
    gen = torch.Generator().manual_seed(seed)
    try:
        from puppet.sketch import sketch_tensor
    except ImportError:
        sketch_tensor = None
    ref = getattr(target, "ref_landmarks", None)
    if sketch_tensor is None or ref is None:
        return [torch.rand(1, 3, size, size, generator=gen) * 2 - 1 for _ in range(n)]
    ref = torch.as_tensor(np.asarray(ref, dtype=np.float32))
    out = []
    for _ in range(n):
        jitter = (torch.rand(ref.shape, generator=gen) - 0.5) * (0.04 * size)
        shift = (torch.rand(1, 2, generator=gen) - 0.5) * (0.1 * size)
        lms = (ref + jitter + shift).clamp(0, size - 1).numpy()
        out.append(sketch_tensor(lms, size).float())
    return out


# Max |onnxruntime - torch| the self-check accepts, by image size (sizes in between take the next entry up).
# At 64 px: FP32_TOLERANCE / FP16_TOLERANCE. Larger images need more: onnxruntime's CPU kernels accumulate
# instance-norm statistics in float32 where torch's use double, and on sketches (flat background, thin
# lines) that error grows with the pixels averaged; FP16 rounding gathers over the deeper networks. Each
# bound is about twice the worst measured on 4 random-weight targets x 3 sketches (fp32 / fp16: 1.3e-5 /
# 5.9e-3 at 64, 3.0e-4 / 1.8e-2 at 128, 1.8e-3 / 2.0e-2 at 256). One gray level of 8-bit output is 7.8e-3;
# export mistakes (a wrong constant, cast or op) land orders of magnitude above these.
TOLERANCES = {64: (FP32_TOLERANCE, FP16_TOLERANCE), 128: (6e-4, 4e-2), 256: (4e-3, 5e-2)}


def tolerance(precision: str, image_size: int) -> float:
    sizes = sorted(TOLERANCES)
    size = next((s for s in sizes if image_size <= s), sizes[-1])
    fp32, fp16 = TOLERANCES[size]
    return fp16 if precision == "fp16" else fp32


@dataclass
class CheckReport:
    precision: str
    max_abs_diff: float
    tolerance: float
    ops: list[str]
    n_sketches: int
    size_bytes: int


def ort_session(path: str | os.PathLike, providers: Sequence[str] = ("CPUExecutionProvider",)):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # ORT's warnings about casts it inserts for fp16 on CPU are expected
    return ort.InferenceSession(str(path), sess_options=so, providers=list(providers))


def self_check(path, module: torch.nn.Module, sketches: Sequence[torch.Tensor], precision: str,
               ) -> CheckReport:
    """onnx.checker, TensorRT operator support, and onnxruntime (CPU) vs torch FP32; raises PuppetError."""
    path = Path(path)
    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise PuppetError(f"{path}: onnx.checker failed: {' '.join(str(e).split())}; report this bug") from e
    problems = trt_problems(model)
    if problems:
        raise PuppetError(f"{path}: not buildable by TensorRT's ONNX parser: {'; '.join(problems)}")
    try:
        sess = ort_session(path)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise PuppetError(f"{path}: onnxruntime could not load it: {' '.join(str(e).split())}") from e
    module = module.eval().float().cpu()
    worst = 0.0
    with torch.inference_mode():
        for sketch in sketches:
            ref = module(sketch.float()).numpy()
            got = sess.run(["image"], {"sketch": sketch.float().numpy()})[0]
            if got.shape != ref.shape or got.dtype != np.float32:
                raise PuppetError(f"{path}: output {got.dtype}{got.shape}, expected float32{ref.shape}")
            if not np.isfinite(got).all():
                raise PuppetError(f"{path}: onnxruntime output has inf/NaN ({precision}); report this bug")
            worst = max(worst, float(np.abs(got - ref).max()))
    tol = tolerance(precision, int(sketches[0].shape[-1]))
    if not worst <= tol:
        raise PuppetError(f"{path}: onnxruntime differs from torch by {worst:.2e} (> {tol:.1e}, "
                          f"{precision}); report this bug")
    return CheckReport(precision, worst, tol, sorted(graph_ops(model)), len(sketches), path.stat().st_size)


# ---------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.onnx", description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True, help="target file from puppet.finetune (mona.pt)")
    ap.add_argument("--out", help="output .onnx (default: beside the target, mona.onnx / mona.fp16.onnx)")
    ap.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    args = ap.parse_args(argv)
    target_path = Path(args.target)
    out = Path(args.out) if args.out else cached_onnx_path(target_path, args.precision)
    target = load_target_any(target_path)
    gen = target.person_generator().eval()
    size = int(target.config["image_size"])
    meta = {"puppet.source_sha256": target_fingerprint(target_path), "puppet.opset": str(args.opset),
            "puppet.format": FORMAT_VERSION}
    export_module(gen, size, out, precision=args.precision, opset=args.opset, metadata=meta)
    rep = self_check(out, gen, sample_sketches(target), args.precision)
    print(f"wrote {out} ({rep.size_bytes / 2**20:.1f} MiB, {args.precision}, opset {args.opset}, "
          f"input sketch (1,3,{size},{size}) float32 -> image)")
    print("onnx.checker: ok")
    print(f"onnxruntime CPU vs torch on {rep.n_sketches} sketches: max |diff| {rep.max_abs_diff:.2e} "
          f"(limit {rep.tolerance:.1e}): ok")
    print(f"operators ({len(rep.ops)}), all supported by TensorRT's ONNX parser: {', '.join(rep.ops)}")
    return 0


if __name__ == "__main__":
    run_cli(main)

"""The FP16 graph pass: FP32 ONNX -> FP16 weights and compute, with the ops that overflow or lose too much in
half precision kept in FP32 behind explicit Cast nodes, and float32 I/O: the form TensorRT's strongly typed
networks take.

Hand-written rather than onnxruntime.transformers.float16.convert_float_to_float16 (keep_io_types=True,
op_block_list=FP32_OPS): on a tiny random target that one's onnxruntime output is within the fp16 tolerance
at 64 px (max |diff| 5.5e-3 vs 1e-2), but its graph fails onnx.checker, which every export runs (the casts
it adds for the graph inputs are appended after their consumers: nodes not topologically sorted), and it has
no rule for the attention logits (the MatMul feeding each Softmax), which this pass keeps in FP32.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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

"""The export's self-check: onnx.checker, every operator one that TensorRT's ONNX parser supports, and
onnxruntime (CPU) against torch on real sketches (and, for the appearance generator, the matching warps of the
target's reference picture)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from puppet.errors import PuppetError

FP32_TOLERANCE = 1e-3  # max |onnxruntime - torch| on [-1, 1] images at 64x64 (see `tolerance`)
FP16_TOLERANCE = 1e-2

# The ONNX operators this project's generator may export to, each one listed as supported (Y) for FP32 and
# FP16 in onnx-tensorrt's docs/operators.md (TensorRT 10.x, opsets 9-22). A graph that uses anything else
# fails the export's self-check: add an op here only after checking it in that table.
TRT_SUPPORTED_OPS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape",
    "Conv", "ConvTranspose", "Div", "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten", "Gather", "Gemm",
    "GlobalAveragePool", "Identity", "InstanceNormalization", "LeakyRelu", "MatMul", "Max", "MaxPool", "Mul",
    "Neg", "Pad", "Pow", "PRelu", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize", "Shape", "Sigmoid",
    "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Where",
})


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


def sample_landmarks(target, n: int = 3, seed: int = 0) -> list[np.ndarray]:
    """A few real-looking driving poses: the target's reference landmarks jittered and shifted (crop
    pixels)."""
    size = target.image_size
    gen = torch.Generator().manual_seed(seed)
    ref = torch.as_tensor(np.asarray(target.ref_landmarks, dtype=np.float32))
    out = []
    for _ in range(n):
        jitter = (torch.rand(ref.shape, generator=gen) - 0.5) * (0.04 * size)
        shift = (torch.rand(1, 2, generator=gen) - 0.5) * (0.1 * size)
        out.append((ref + jitter + shift).clamp(0, size - 1).numpy())
    return out


def sample_inputs(target, n: int = 3, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """The generator's inputs for the self-check at `sample_landmarks`, built as the live loop builds them
    (puppet.feed: the sketch, and for a generator that takes it the reference warped to the same
    landmarks)."""
    from puppet.feed import Feeder

    feeder = Feeder(target)
    return [feeder(lms).tensors for lms in sample_landmarks(target, n, seed)]


# Max |onnxruntime - torch| the self-check accepts, by image size (sizes in between take the next entry up).
# At 64 px: FP32_TOLERANCE / FP16_TOLERANCE. Larger images need more: onnxruntime's CPU kernels accumulate
# instance-norm statistics in float32 where torch's use double, and on sketches (flat background, thin
# lines) that error grows with the pixels averaged; large AdaIN scales (psi' = P e_hat from an untrained
# embedder) amplify it; FP16 rounding gathers over the deeper networks. fp32: 3-4x the worst measured by
# `python -m bench.onnx_parity` (one thread) over random, untrained (`finetune --from-scratch --steps 0`),
# fine-tuned and shipped targets, 3 sketches each: 2.6e-4 at 64 (tiny, 30 untrained targets), 9.7e-4 at 128
# (cpu, 30 untrained), 3.0e-3 at 256 (paper, 15 random); the appearance configs stay under 2e-5. fp16: about
# twice the worst of 4 random targets (5.9e-3 at 64, 1.8e-2 at 128, 2.0e-2 at 256). One gray level of 8-bit
# output is 7.8e-3; export mistakes (a wrong constant, cast or op) land orders of magnitude above these.
TOLERANCES = {64: (FP32_TOLERANCE, FP16_TOLERANCE), 128: (4e-3, 4e-2), 256: (1e-2, 5e-2)}


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
    inputs: list[str] = field(default_factory=lambda: ["sketch"])


def ort_session(path: str | os.PathLike, providers: Sequence[str] = ("CPUExecutionProvider",)):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # ORT's warnings about casts it inserts for fp16 on CPU are expected
    return ort.InferenceSession(str(path), sess_options=so, providers=list(providers))


def self_check(path, module: torch.nn.Module, samples: Sequence, precision: str, name=None) -> CheckReport:
    """onnx.checker, TensorRT operator support, and onnxruntime (CPU) vs torch FP32; raises PuppetError.

    `samples`: the module's inputs, each a tuple in the graph's input order as `sample_inputs` gives (a
    bare tensor: a one-input graph's).
    `name`: the file's name in messages (the file checked may be a temporary one, renamed after the check)."""
    path = Path(path)
    shown = Path(name) if name is not None else path
    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise PuppetError(f"{shown}: onnx.checker failed: {' '.join(str(e).split())}; report this bug") from e
    problems = trt_problems(model)
    if problems:
        raise PuppetError(f"{shown}: not buildable by TensorRT's ONNX parser: {'; '.join(problems)}")
    try:
        sess = ort_session(path)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise PuppetError(f"{shown}: onnxruntime could not load it: {' '.join(str(e).split())}") from e
    names = [i.name for i in sess.get_inputs()]
    module = module.eval().float().cpu()
    samples = [tuple(s) if isinstance(s, (tuple, list)) else (s,) for s in samples]
    worst = 0.0
    with torch.inference_mode():
        for inputs in samples:
            if len(inputs) != len(names):
                raise PuppetError(f"{shown}: the graph takes {', '.join(names)}; the check was given "
                                  f"{len(inputs)} input(s) per sample; report this bug")
            inputs = [x.float() for x in inputs]
            ref = module(*inputs).numpy()
            got = sess.run(["image"], {n: x.numpy() for n, x in zip(names, inputs)})[0]
            if got.shape != ref.shape or got.dtype != np.float32:
                raise PuppetError(f"{shown}: output {got.dtype}{got.shape}, expected float32{ref.shape}")
            if not np.isfinite(got).all():
                raise PuppetError(f"{shown}: onnxruntime output has inf/NaN ({precision}); report this bug")
            worst = max(worst, float(np.abs(got - ref).max()))
    tol = tolerance(precision, int(samples[0][0].shape[-1]))
    if not worst <= tol:
        raise PuppetError(f"{shown}: onnxruntime differs from torch by {worst:.2e} (> {tol:.1e}, "
                          f"{precision}); report this bug")
    return CheckReport(precision, worst, tol, sorted(graph_ops(model)), len(samples), path.stat().st_size,
                       names)

"""ONNX export of a tiny target: fp32 and fp16 graphs, parity with torch on onnxruntime, TensorRT ops."""

import subprocess
import sys

import onnx
import pytest
import torch
from _util import random_target
from onnx import TensorProto, helper, numpy_helper

from export.checks import (
    sample_inputs,
    sample_landmarks,
    self_check,
    tolerance,
    trt_problems,
)
from export.onnx import ensure_onnx, export_target
from models.generator import Generator
from puppet.errors import PuppetError
from puppet.target import load_target, save_target

# What the generator exports to: pinned so that a new op in models/ is a deliberate, checked change.
GENERATOR_OPS = {"Add", "AveragePool", "Conv", "InstanceNormalization", "MatMul", "Mul", "Relu", "Reshape",
                 "Resize", "Softmax", "Tanh", "Transpose"}
# The appearance generator adds the concat of its two inputs and the clipped residual warped + delta (and
# has no tanh head); its correction's region gate reads the eye and lip colours off the sketch (Slice, Sub,
# Mul, Max, Div, Clip) and grows and feathers them (MaxPool, AveragePool).
WARP_GENERATOR_OPS = (GENERATOR_OPS - {"Tanh"}) | {"Concat", "Clip", "Slice", "Sub", "Div", "Max", "MaxPool"}


@pytest.fixture(scope="module")
def target_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("target") / "mona.pt"
    save_target(path, random_target())
    return path


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    values = [*inferred.value_info, *inferred.input, *inferred.output]
    out = {v.name: v.type.tensor_type.elem_type for v in values}
    out.update({i.name: i.data_type for i in model.graph.initializer})
    return out


def _check_common(model: onnx.ModelProto, size: int, inputs=("sketch",)) -> None:
    (out,) = model.graph.output
    assert [v.name for v in model.graph.input] == list(inputs)
    for v, name in (*zip(model.graph.input, inputs), (out, "image")):
        assert v.name == name and v.type.tensor_type.elem_type == TensorProto.FLOAT
        assert [d.dim_value for d in v.type.tensor_type.shape.dim] == [1, 3, size, size]  # static
    # weights inside the file, no external-data sidecar
    assert all(i.data_location == TensorProto.DEFAULT for i in model.graph.initializer)
    assert trt_problems(model) == []


def test_fp32_export_matches_torch_and_uses_only_trt_ops(target_path, tmp_path):
    target = load_target(target_path)
    out = export_target(target, tmp_path / "mona.onnx", "fp32", check=False)
    model = onnx.load(str(out))
    _check_common(model, 64)
    assert {n.op_type for n in model.graph.node} == GENERATOR_OPS
    # psi' folded: no projection matrix P (n_adain x emb_dim) among the weights, the AdaIN layers carry it
    n_adain = Generator(target.config, spectral=False).n_adain
    shapes = {tuple(i.dims) for i in model.graph.initializer}
    assert (n_adain, target.config.emb_dim) not in shapes
    n_norms = sum(n.op_type == "InstanceNormalization" for n in model.graph.node)
    assert n_norms == len(Generator(target.config).adain_channels) + 5  # + the down path's affine norms

    report = self_check(out, target.person_generator(), sample_inputs(target), "fp32")
    assert report.max_abs_diff <= report.tolerance == tolerance("fp32", 64)


def test_fp16_export_keeps_norms_in_fp32_and_matches_torch(target_path, tmp_path):
    target = load_target(target_path)
    out = export_target(target, tmp_path / "mona.fp16.onnx", "fp16", check=False)
    model = onnx.load(str(out))
    _check_common(model, 64)
    types = _types(model)
    inits = {i.name: i for i in model.graph.initializer}
    ops = {n.op_type for n in model.graph.node}
    assert ops == GENERATOR_OPS | {"Cast"}
    for n in model.graph.node:
        if n.op_type == "Conv":  # FP16 weights and compute
            assert inits[n.input[1]].data_type == TensorProto.FLOAT16
            assert types[n.input[0]] == types[n.output[0]] == TensorProto.FLOAT16
        if n.op_type in ("InstanceNormalization", "Softmax"):  # statistics and softmax in FP32
            assert all(types[i] == TensorProto.FLOAT for i in n.input if i)
            assert types[n.output[0]] == TensorProto.FLOAT
        if n.op_type == "InstanceNormalization":  # TensorRT: scale and bias must be initializers
            assert n.input[1] in inits and n.input[2] in inits
        if n.op_type == "Resize":  # scales stay float32 by the ONNX spec
            assert types[n.input[2]] == TensorProto.FLOAT
    # the attention logits feeding each softmax are computed in FP32 as well
    producer = {o: n for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.op_type == "Softmax":
            assert producer[n.input[0]].op_type == "MatMul"
            assert all(types[i] == TensorProto.FLOAT for i in producer[n.input[0]].input)
    def count(dtype):
        return sum(numpy_helper.to_array(i).size for i in inits.values() if i.data_type == dtype)

    fp16_weights, fp32_weights = count(TensorProto.FLOAT16), count(TensorProto.FLOAT)
    assert fp16_weights > 20 * fp32_weights  # the bulk is half precision

    report = self_check(out, target.person_generator(), sample_inputs(target), "fp16")
    assert 0 < report.max_abs_diff <= report.tolerance == tolerance("fp16", 64)


def test_self_check_catches_a_wrong_graph(target_path, tmp_path):
    """The parity check is not vacuous: the graph of another person's psi fails it."""
    target = load_target(target_path)
    other = random_target(seed=1)
    out = export_target(other, tmp_path / "other.onnx", "fp32", check=False)
    with pytest.raises(PuppetError, match="differs from torch"):
        self_check(out, target.person_generator(), sample_inputs(target), "fp32")


def test_unsupported_operator_is_reported():
    x = helper.make_tensor_value_info("sketch", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    g = helper.make_graph([helper.make_node("Hardmax", ["sketch"], ["image"])], "g", [x], [y])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert trt_problems(model) == ["operator Hardmax is not in TRT_SUPPORTED_OPS"]


def test_tolerance_grows_with_size():
    """A size between the measured ones takes the next larger one's tolerance, a size past the largest the
    largest's; fp16 is looser than fp32 at every size; fp32 stays under 2 grey levels (8 bits) at 256."""
    for p in ("fp32", "fp16"):
        assert tolerance(p, 32) == tolerance(p, 64) <= tolerance(p, 100) == tolerance(p, 128)
        assert tolerance(p, 128) <= tolerance(p, 200) == tolerance(p, 256) == tolerance(p, 512)
        assert tolerance(p, 64) < tolerance(p, 256)
    assert all(tolerance("fp16", n) > tolerance("fp32", n) for n in (64, 128, 256))
    assert tolerance("fp32", 256) < 2 * 2 / 255


def test_ensure_onnx_reuses_an_up_to_date_file_and_reexports_a_changed_target(tmp_path):
    path = tmp_path / "mona.pt"
    save_target(path, random_target())
    first = ensure_onnx(path, "fp32")
    assert first == tmp_path / "mona.onnx"
    stamp = first.stat().st_mtime_ns
    assert ensure_onnx(path, "fp32").stat().st_mtime_ns == stamp  # same bytes, same engine key downstream
    save_target(path, random_target(seed=2))
    assert ensure_onnx(path, "fp32").stat().st_mtime_ns != stamp


def test_cli_fp16_prints_its_checks(target_path, tmp_path, capsys):
    from export.onnx import main

    out = tmp_path / "cli.fp16.onnx"
    assert main(["--target", str(target_path), "--out", str(out), "--precision", "fp16"]) == 0
    stdout = capsys.readouterr().out
    assert "onnx.checker: ok" in stdout and "all supported by TensorRT's ONNX parser" in stdout
    assert "onnxruntime CPU vs torch on 3 sketches" in stdout and out.is_file()


def test_cli_missing_target_is_one_line(tmp_path):
    """As the user runs it (a real process): exit 2, one line on stderr."""
    r = subprocess.run([sys.executable, "-m", "export.onnx", "--target", str(tmp_path / "nope.pt")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "nope.pt" in r.stderr


# ------------------------------------------------------------------------------------------ appearance path

@pytest.fixture(scope="module")
def warp_target_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("target") / "warp.pt"
    save_target(path, random_target(config="tiny-warp"))
    return path


def test_check_inputs_are_sketches_with_the_matching_warps(warp_target_path):
    """The self-check feeds what the live loop feeds: the sketch of some landmarks and the reference warped
    to those same landmarks; a generator without the appearance path gets the sketch alone."""
    from puppet.faces.images import to_tensor
    from puppet.faces.sketch import sketch_tensor
    from puppet.faces.warp import warp
    from puppet.feed import Feeder

    target = load_target(warp_target_path)
    samples = sample_inputs(target)
    assert len(samples) == 3 and all(len(s) == 2 for s in samples)
    for (sketch, warped), lms in zip(samples, sample_landmarks(target)):
        assert torch.equal(sketch, sketch_tensor(lms, 64))
        assert torch.equal(warped, to_tensor(warp(target.ref_image, target.ref_landmarks, lms)))
        assert warped.shape == (1, 3, 64, 64) and warped.dtype == torch.float32
        assert (warped - to_tensor(target.ref_image)).abs().mean() > 0.01  # really moved
    # at the reference landmarks the warp is the reference picture itself
    assert torch.equal(Feeder(target)(target.ref_landmarks).tensors[1], to_tensor(target.ref_image))
    pure = random_target()
    assert [len(s) for s in sample_inputs(pure)] == [1, 1, 1]
    assert all(torch.equal(s[0], sketch_tensor(lms, 64))
               for s, lms in zip(sample_inputs(pure), sample_landmarks(pure)))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_warp_generator_exports_with_two_inputs_and_matches_torch(warp_target_path, tmp_path, precision):
    target = load_target(warp_target_path)
    out = export_target(target, tmp_path / f"warp.{precision}.onnx", precision, check=False)
    model = onnx.load(str(out))
    _check_common(model, 64, inputs=("sketch", "warped"))
    ops = {n.op_type for n in model.graph.node}
    assert ops == WARP_GENERATOR_OPS | ({"Cast"} if precision == "fp16" else set())
    # net_size 32 inside a 64 px I/O: the inputs are pooled down and delta resized back up
    assert sum(n.op_type == "AveragePool" for n in model.graph.node) >= 2
    assert sum(n.op_type == "Resize" for n in model.graph.node) >= 1
    n_adain = Generator(target.config, spectral=False).n_adain
    assert (n_adain, target.config.emb_dim) not in {tuple(i.dims) for i in model.graph.initializer}
    if precision == "fp16":
        types = _types(model)
        for n in model.graph.node:
            if n.op_type == "InstanceNormalization":
                assert types[n.input[0]] == types[n.output[0]] == TensorProto.FLOAT

    pg = target.person_generator()
    report = self_check(out, pg, sample_inputs(target), precision)
    assert report.inputs == ["sketch", "warped"] and report.n_sketches == 3
    assert 0 < report.max_abs_diff <= report.tolerance == tolerance(precision, 64)
    # Not vacuous: another person's generator, or the right one fed the reference unwarped, fails it.
    other = random_target(seed=1, config="tiny-warp")
    with pytest.raises(PuppetError, match="differs from torch"):
        self_check(out, other.person_generator(), sample_inputs(other), precision)
    unwarped = [(s, torch.zeros_like(w)) for s, w in sample_inputs(target)]
    with torch.inference_mode():
        moved = max((pg(s, w) - pg(s, u)).abs().max().item()
                    for (s, w), (_, u) in zip(sample_inputs(target), unwarped))
    assert moved > 0.1  # the warped input matters to the output
    with pytest.raises(PuppetError, match="takes sketch, warped"):
        self_check(out, pg, [s[:1] for s in sample_inputs(target)], precision)



def test_an_export_that_fails_its_check_is_never_left_to_be_found(target_path, tmp_path, monkeypatch):
    """A rejected ONNX would otherwise be found fresh (its metadata matches) and used by the next run."""
    import export.checks

    monkeypatch.setattr(export.checks, "TOLERANCES", {64: (-1.0, -1.0)})  # every export now fails
    out = tmp_path / "mona.onnx"
    with pytest.raises(PuppetError, match="differs from torch") as e:
        ensure_onnx(target_path, "fp32", out=out)
    assert str(out) in str(e.value) and ".tmp" not in str(e.value)  # named as the user knows it
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one
    monkeypatch.undo()
    assert ensure_onnx(target_path, "fp32", out=out) == out and out.is_file()


def test_an_untrained_target_made_as_the_readme_says_passes_its_check(grace_hopper_path, tmp_path):
    """`puppet.finetune PHOTO --from-scratch --config tiny --steps 0`: psi' from a random embedder is larger
    than a random target's, and so is the fp32 difference; the tolerance must fit it (bench.onnx_parity)."""
    from puppet.training.finetune import FinetuneOptions, finetune
    from puppet.training.photos import prepare_photos

    crops, lms = prepare_photos([grace_hopper_path], 64)
    t = finetune(crops, lms, "tiny",
                 options=FinetuneOptions(steps=0, content="l1", progress=False, threads=1))
    save_target(tmp_path / "t.pt", t)
    out = export_target(tmp_path / "t.pt", tmp_path / "t.onnx")
    assert out.is_file()

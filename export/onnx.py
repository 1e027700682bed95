"""Export the person's generator to ONNX: `python -m export.onnx --target mona.pt [--precision fp32|fp16]`.

What goes in the file is `Target.person_generator()`: the generator with psi' folded into per-layer constants,
no projection matrix P, no embedder, no spectral norm. Inputs as the config names them
(models.config.ModelConfig.inputs): `sketch` (1, 3, S, S) float32 in [-1, 1], and for the appearance generator
`warped` (1, 3, S, S), the target's reference picture warped to the sketch's landmarks; one output `image`
(1, 3, S, S) float32; static shapes; weights inside the file.

fp16 is the form TensorRT's strongly typed networks take: FP16 weights and compute, with the ops that
overflow or lose too much in half precision (instance norm statistics, softmax and the attention logits that
feed it, reductions, pow/sqrt/exp) kept in FP32 behind explicit Cast nodes, and I/O kept float32.

The command checks its own output and fails (exit 2, one line) when any check fails: onnx.checker,
onnxruntime (CPU) against torch on the same sketches (and matching warps), and every operator being one
TensorRT's ONNX parser supports (export.checks).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from onnx import helper

from export.checks import sample_inputs, self_check
from export.fp16 import _simplify, to_fp16
from puppet.artifacts import DEFAULT_OPSET, cached_onnx_path, is_fresh_onnx, onnx_identity
from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.files import atomic_path, atomic_write_bytes, check_output
from puppet.target import load_target


def ensure_onnx(target, precision: str = "fp32", opset: int = DEFAULT_OPSET, out=None, check=True) -> Path:
    """The target's ONNX file, exported (and self-checked) unless an up-to-date one is already there.

    Up to date means its metadata names the same target content, precision, opset and export format: so the
    ONNX bytes (and with them the TensorRT engine cache key) stay the same until the target changes.
    """
    out = Path(out) if out is not None else cached_onnx_path(target, precision)
    want = onnx_identity(target, precision, opset)
    if is_fresh_onnx(out, want):
        return out
    export_checked(load_target(target), out, precision=precision, opset=opset, metadata=want, check=check)
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
    """Export an image-to-image module (sketch[, warped] -> image) to `out` atomically; returns the path."""
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
    names = list(module.cfg.inputs)  # models.config.ModelConfig.inputs: what the generator takes
    dummies = tuple(torch.zeros(1, 3, image_size, image_size) for _ in names)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript exporter's deprecation notice and tracer chatter are not the user's problem.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, dummies, buf, dynamo=False, input_names=names, output_names=["image"],
            opset_version=opset, do_constant_folding=True, export_params=True,
        )
    return onnx.load_from_string(buf.getvalue())


def export_target(target, out, precision="fp32", opset=DEFAULT_OPSET, metadata=None, check=True) -> Path:
    """Export a Target (object or path); with check=True also run the self-check (raises on failure)."""
    path, _ = export_checked(load_target(target), out, precision, opset, metadata, check)
    return path


def export_checked(t, out, precision="fp32", opset=DEFAULT_OPSET, metadata=None, check=True):
    """Export Target `t` to `out`: written under a temporary name beside it and renamed into place only
    once the self-check passed, so that a rejected export is never found (and used) later.
    Returns (out, the CheckReport or None)."""
    gen = t.person_generator().eval()
    size = t.image_size
    out = Path(out)
    rep = None
    with atomic_path(out) as tmp:
        export_module(gen, size, tmp, precision=precision, opset=opset, metadata=metadata)
        if check:
            rep = self_check(tmp, gen, sample_inputs(t), precision, name=out)
    return out, rep


# ---------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> int:
    ap = Parser(prog="python -m export.onnx", description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True, help="target file from puppet.finetune (mona.pt)")
    ap.add_argument("--out", help="output .onnx (default: beside the target, mona.onnx / mona.fp16.onnx; in "
                                  "the cache when the target's folder isn't writable)")
    ap.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    args = ap.parse_args(argv)
    target_path = Path(args.target)
    if args.out:
        check_output(args.out, [target_path])
    target = load_target(target_path)
    if not args.out:  # (after loading: a target in a read-only folder exports to the cache)
        out = cached_onnx_path(target, args.precision)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PuppetError(f"{out.parent}: can't create the export cache ({e.strerror}); set PUPPET_CACHE "
                              f"to a writable folder, or pass --out") from None
        check_output(out, [target_path])
    else:
        out = Path(args.out)
    size = target.image_size
    meta = onnx_identity(target, args.precision, args.opset)  # the target was read once; its hash with it
    _, rep = export_checked(target, out, args.precision, args.opset, meta)
    inputs = " + ".join(f"{name} (1,3,{size},{size})" for name in rep.inputs)
    print(f"wrote {out} ({rep.size_bytes / 2**20:.1f} MiB, {args.precision}, opset {args.opset}, "
          f"input {inputs} float32 -> image)")
    print("onnx.checker: ok")
    warps = " and matching warps" if "warped" in rep.inputs else ""
    print(f"onnxruntime CPU vs torch on {rep.n_sketches} sketches{warps}: max |diff| {rep.max_abs_diff:.2e} "
          f"(limit {rep.tolerance:.1e}): ok")
    print(f"operators ({len(rep.ops)}), all supported by TensorRT's ONNX parser: {', '.join(rep.ops)}")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

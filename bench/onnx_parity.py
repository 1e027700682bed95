"""How far onnxruntime (CPU, FP32) lands from torch on exported generators: what export's tolerance rests on.

    python -m bench.onnx_parity [--configs tiny,tiny-warp,cpu,cpu-warp] [--kinds random,scratch,trained]
                                [--n 10] [--steps 20] [--photo IMG ...] [--json F]

Per config, three kinds of target, each exported to ONNX (export.onnx.export_module) and run on the
self-check's inputs (export.checks.sample_inputs, a different seed per target):
  - random: random weights, psi = P e with e ~ N(0, 1) (bench.generator.random_target), attention and the
    appearance correction head switched on (untrained they are zero: the output would be the warp itself);
  - scratch: what `puppet.finetune PHOTO --from-scratch --config NAME --steps 0` makes: random E, G, D,
    psi' = P e_hat from the random embedder on a real face (larger than N(0, 1) embeddings give);
  - trained: the same fine-tuned for --steps steps (pixel loss, from scratch): weights that moved, the
    appearance correction head included;
  - shipped (the shipped model's own config only): the meta-learned model, feed-forward on a real face.
Prints max |onnx - torch| per kind (worst and median over targets) and the tolerance export applies.
Run it with one thread (OMP_NUM_THREADS=1): that is also how the numbers in BENCHMARKS.md were taken.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from puppet.cli import Parser
from puppet.errors import run_cli


def max_diff(target, seed: int, folder: Path) -> float:
    from export.checks import ort_session, sample_inputs
    from export.onnx import export_module

    gen = target.person_generator().eval()
    path = export_module(gen, target.image_size, folder / f"g{seed}.onnx")
    sess = ort_session(path)
    names = [i.name for i in sess.get_inputs()]
    worst = 0.0
    with torch.inference_mode():
        for xs in sample_inputs(target, n=3, seed=seed):
            ref = gen(*xs).numpy()
            got = sess.run(["image"], {n: x.numpy() for n, x in zip(names, xs)})[0]
            worst = max(worst, float(np.abs(got - ref).max()))
    path.unlink()
    return worst


def faces(photos: list[str], size: int):
    from puppet.faces.crop import Crop
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    out = []
    for p in photos:
        img = read_image(p)
        lms = detect(img)
        if lms is not None:
            crop = Crop.from_landmarks(lms)
            out.append((crop.apply(img, size), crop.to_crop(lms, size)))
    return out


def targets(config: str, kind: str, n: int, photos: list[str], steps: int = 20):
    from bench.generator import random_target
    from models.config import get_config
    from puppet.training.finetune import FinetuneOptions, finetune

    size = get_config(config).image_size
    if kind == "random":
        for seed in range(n):
            t = random_target(config, seed=seed)
            gen = torch.Generator().manual_seed(seed)
            for k, v in t.generator.items():  # every part on: attention, and the correction head
                if k.endswith(".gamma"):
                    v.fill_(0.7)
                elif k.endswith("delta.weight"):
                    v.copy_(torch.randn(v.shape, generator=gen) * 0.05)
            yield t
        return
    crops = faces(photos, size)
    for seed in range(n):
        crop, lms = crops[seed % len(crops)]
        if kind in ("scratch", "trained"):
            options = FinetuneOptions(steps=0 if kind == "scratch" else steps, seed=seed, content="l1",
                                      progress=False, threads=1)
            yield finetune([crop], [lms], config, options=options)
        else:
            from puppet.training.checkpoint import shipped_meta

            options = FinetuneOptions(steps=0, seed=seed, content="l1", progress=False, threads=1)
            yield finetune([crop], [lms], None, checkpoint=str(shipped_meta()), options=options)


def main(argv: list[str]) -> int:
    from export.checks import tolerance
    from models.config import get_config
    from puppet.assets import astronaut, grace_hopper
    from puppet.training.checkpoint import load_meta, shipped_meta

    p = Parser(prog="python -m bench.onnx_parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="tiny,tiny-warp,cpu,cpu-warp")
    p.add_argument("--kinds", default="random,scratch,trained,shipped")
    p.add_argument("--n", type=int, default=10, help="targets per config and kind (default 10)")
    p.add_argument("--steps", type=int, default=20, help="fine-tuning steps of the trained kind (default 20)")
    p.add_argument("--photo", action="append", help="real faces for scratch/shipped (default: packaged ones)")
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args(argv)
    photos = a.photo or [str(grace_hopper()), str(astronaut())]
    shipped = load_meta(shipped_meta())["config"].get("name")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in a.configs.split(","):
            kinds = [k for k in a.kinds.split(",") if k != "shipped" or config == shipped]
            for kind in kinds:
                t0 = time.time()
                made = targets(config, kind, a.n, photos, a.steps)
                diffs = [max_diff(t, seed, Path(tmp)) for seed, t in enumerate(made)]
                row = {"config": config, "kind": kind, "n": len(diffs), "max": max(diffs),
                       "median": statistics.median(diffs),
                       "tolerance": tolerance("fp32", get_config(config).image_size),
                       "seconds": round(time.time() - t0, 1)}
                rows.append(row)
                print(f"{config:10s} {kind:8s} n={row['n']:3d} max {row['max']:.2e} "
                      f"median {row['median']:.2e} (tolerance {row['tolerance']:.1e}) {row['seconds']:.0f} s",
                      flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    run_cli(main)

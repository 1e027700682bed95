"""A meta-learned checkpoint -> the small file puppet ships as its default model (models/weights/).

    python -m puppet.training.ship meta.pt models/weights/meta_cpu_warp.pt

Keeps what fine-tuning needs, E, G with P, and D, in fp16: no optimiser state, RNG or per-video W (one
zero row stands in for W so that the discriminator loads unchanged; fine-tuning uses w0 + e_hat). The result
is an ordinary meta-learned checkpoint (puppet.training.checkpoint.load_meta), with the training facts kept in
"train" for the model card.
"""

from __future__ import annotations

from pathlib import Path

import torch

from puppet.cli import Parser
from puppet.errors import run_cli
from puppet.files import torch_save_atomic
from puppet.training.checkpoint import FORMAT, VERSION, load_meta


def _half(sd: dict) -> dict:
    return {k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu().clone()
            for k, v in sd.items()}


def ship(src: str | Path, dst: str | Path) -> dict:
    out = shipped(load_meta(src))
    torch_save_atomic(out, dst)
    return out


def shipped(meta: dict) -> dict:
    """The shipped form of a meta-learned checkpoint's dict (what `ship` writes)."""
    D = dict(meta["discriminator"])
    D["W.weight"] = torch.zeros(1, D["W.weight"].shape[1], dtype=D["W.weight"].dtype)
    out = {
        "format": FORMAT,
        "version": VERSION,
        "config": meta["config"],
        "num_videos": 1,
        "step": int(meta["step"]),
        "embedder": _half(meta["embedder"]),
        "generator": _half(meta["generator"]),
        "discriminator": _half(D),
        # The run's settings for the model card; the dataset by its folder name, not a path of this machine.
        "train": {**meta.get("train", {}), "videos": int(meta["num_videos"]),
                  "data": Path(str(meta.get("train", {}).get("data", ""))).name},
    }
    return out


def main(argv: list[str]) -> int:
    p = Parser(prog="python -m puppet.training.ship", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a meta-learned checkpoint (python -m puppet.train)")
    p.add_argument("out", help="the file to write")
    a = p.parse_args(argv)
    ship(a.checkpoint, a.out)
    print(f"wrote {a.out} ({Path(a.out).stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    run_cli(main)

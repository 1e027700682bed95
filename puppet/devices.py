"""The one reading of a --device value (train, finetune, and what passes theirs on): a torch.device or a
one-line error."""

from __future__ import annotations

import torch

from puppet.errors import PuppetError


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """auto (CUDA where torch sees a GPU, else the CPU), cpu, cuda or cuda:N, as a torch.device.

    CUDA devices always carry their index (torch.cuda.set_device refuses one without): plain `cuda` is GPU
    local_rank modulo the GPUs visible, torchrun's one GPU per rank on a node (GPU 0 outside torchrun).
    """
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name != "cuda" and not name.startswith("cuda:"):
        raise PuppetError(f"--device {name}: unknown; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise PuppetError(f"--device {name}: CUDA is not available here; use --device cpu")
    count = torch.cuda.device_count()
    if name == "cuda":
        return torch.device("cuda", local_rank % count)
    index = name[len("cuda:"):]
    if not index.isdigit() or int(index) >= count:
        raise PuppetError(f"--device {name}: no such GPU here (torch sees {count}: cuda:0..cuda:{count - 1})")
    return torch.device("cuda", int(index))

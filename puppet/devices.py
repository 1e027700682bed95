"""The one reading of a --device value (train, finetune, the live backends, export.trt): a torch.device or a
one-line error."""

from __future__ import annotations

import torch

from puppet.errors import PuppetError


def device_type(name: str | torch.device | None) -> str:
    """"cpu" or "cuda" for auto (or None), cpu, cuda or cuda:N, without asking for the GPU itself (auto: CUDA
    where torch sees a GPU); anything else is a one-line error."""
    name = "auto" if name is None else str(name)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name != "cuda" and not name.startswith("cuda:"):
        raise PuppetError(f"--device {name}: unknown; use auto, cpu, cuda or cuda:N")
    return "cuda"


def resolve_device(name: str | torch.device | None = "auto", local_rank: int | None = 0) -> torch.device:
    """auto (or None: CUDA where torch sees a GPU, else the CPU), cpu, cuda or cuda:N, as a torch.device.

    CUDA devices always carry their index (torch.cuda.set_device refuses one without): plain `cuda` is GPU
    local_rank modulo the GPUs visible, torchrun's one GPU per rank on a node (GPU 0 outside torchrun), or
    with local_rank=None the current CUDA device (the one torch.cuda.set_device chose).
    """
    if device_type(name) == "cpu":
        return torch.device("cpu")
    name = "cuda" if name is None or str(name) == "auto" else str(name)
    if not torch.cuda.is_available():
        raise PuppetError(f"--device {name}: no CUDA GPU visible to torch; use --device cpu")
    count = torch.cuda.device_count()
    if name == "cuda":
        return torch.device("cuda", torch.cuda.current_device() if local_rank is None else local_rank % count)
    index = name[len("cuda:"):]
    if not index.isdigit() or int(index) >= count:
        raise PuppetError(f"--device {name}: no such GPU ({count} visible); use cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", int(index))


def use_gpu(name: str | torch.device | None = None) -> torch.device:
    """The GPU `name` asks for (cuda or cuda:N; None or auto: the current one), made the current CUDA device:
    TensorRT builds and runs on the current device, and its engines are keyed by it."""
    name = "cuda" if name is None or str(name) == "auto" else str(name)
    if device_type(name) != "cuda":
        raise PuppetError(f"--device {name}: TensorRT builds on an NVIDIA GPU and runs there; use cuda or "
                          f"cuda:N (on the CPU: --backend onnxruntime or torch)")
    dev = resolve_device(name, local_rank=None)
    torch.cuda.set_device(dev)
    return dev

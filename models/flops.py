"""FLOPs of one forward pass, counted by torch's FlopCounterMode (convs and matmuls; a multiply-add is 2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def flops(module: nn.Module, *inputs: torch.Tensor | tuple[int, ...]) -> int:
    """FLOPs of module(*inputs); each input a tensor or a shape (zeros of that shape, module's device)."""
    try:
        device = next(module.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    args = [x if isinstance(x, torch.Tensor) else torch.zeros(x, device=device) for x in inputs]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*args)
    return counter.get_total_flops()

"""Spectral normalisation on conv and linear layers (as in the paper), and removing it in one call for export.

We use torch's parametrization form: the layer keeps `parametrizations.weight.original` plus the
power-iteration vectors `_u`, `_v`; `layer.weight` is computed on access. In training mode every access
runs one power iteration; in eval mode it uses the stored vectors, which is what a trained model's eval
outputs depend on.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm


def sn(layer: nn.Module, enabled: bool = True) -> nn.Module:
    """`layer` with spectral norm on its weight (or unchanged when not enabled)."""
    return spectral_norm(layer) if enabled else layer


def has_spectral_norm(module: nn.Module) -> bool:
    return any(parametrize.is_parametrized(m, "weight") for m in module.modules())


def remove_spectral_norm(module: nn.Module) -> nn.Module:
    """Fold every spectral-normalised weight in `module` into a plain weight, in place; returns `module`.

    The weights are read in eval mode (no power-iteration step), so the module's eval-mode outputs are
    unchanged. Each sub-module's training flag is restored afterwards.
    """
    flags = {m: m.training for m in module.modules()}
    module.eval()
    try:
        for m in list(module.modules()):
            if parametrize.is_parametrized(m, "weight"):
                cls = m.__class__
                attrs = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
                m.__class__ = type(cls.__name__, cls.__bases__, attrs)
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    finally:
        for m, training in flags.items():
            m.training = training
    return module

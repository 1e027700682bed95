"""The paper's networks (embedder, generator, projection discriminator), configs and losses."""

from .config import CONFIGS, get_config
from .discriminator import Discriminator
from .embedder import Embedder
from .flops import flops
from .generator import Generator, PersonGenerator
from .spectral import has_spectral_norm, remove_spectral_norm

__all__ = [
    "CONFIGS",
    "Discriminator",
    "Embedder",
    "Generator",
    "PersonGenerator",
    "flops",
    "get_config",
    "has_spectral_norm",
    "remove_spectral_norm",
]

"""puppet: a live face puppet after Zakharov et al. 2019 (few-shot adversarial talking heads)."""

__version__ = "0.1.0"

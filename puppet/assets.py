"""Real face photos that ship inside installed packages (no download): for the demo and the tests."""

from __future__ import annotations

import os
from pathlib import Path


def grace_hopper() -> Path:
    """matplotlib's sample portrait (matplotlib comes with mediapipe, so it is always installed)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def astronaut() -> Path | None:
    """scikit-image's astronaut.png (Eileen Collins); scikit-image is a core dependency for it."""
    try:
        import skimage
    except ImportError:
        return None
    p = Path(os.path.dirname(skimage.__file__)) / "data" / "astronaut.png"
    return p if p.exists() else None

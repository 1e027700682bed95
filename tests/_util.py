"""Helpers shared by several test files."""

import copy

import cv2
import numpy as np
import torch

from models.generator import Generator
from models.spectral import remove_spectral_norm
from puppet.target import Target


def random_target(seed: int = 0, config: str = "tiny", delta: float | None = 0.05, photo=None,
                  picture: bool = True) -> Target:
    """A small random target whose every part matters: attention switched on (gamma != 0), psi far from 0,
    and for an appearance config (`tiny-warp`) the delta head's weights drawn with std `delta` (the
    generated correction visibly changes the warp; None: left at its untrained zero start). The reference
    image is noise (random landmarks,
    random pixels), unless `photo` (a path or uint8 BGR image) is given: then the reference is its face
    (mediapipe's landmarks, the shared crop) and, with `picture`, the photo is the target's picture, its
    crop_box that crop (picture=False: a target without its picture, as older target files are)."""
    torch.manual_seed(seed)
    G = Generator(config)
    with torch.no_grad():
        for m in G.modules():
            if hasattr(m, "gamma"):
                m.gamma.fill_(0.7)  # attention on
        if G.cfg.takes_warp and delta is not None:
            G.body.delta.weight.normal_(0.0, delta)
    G = remove_spectral_norm(copy.deepcopy(G).eval())
    size = G.cfg.image_size
    rng = np.random.default_rng(seed)
    ref = {"ref_landmarks": rng.uniform(0.2 * size, 0.8 * size, (68, 2)).astype(np.float32),
           "ref_image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8)}
    if photo is not None:
        from puppet.faces.crop import Crop
        from puppet.faces.images import read_image
        from puppet.faces.track import detect

        img = photo if isinstance(photo, np.ndarray) else read_image(photo)
        lms = detect(img)
        assert lms is not None, "random_target(photo=...) needs a photo with a face"
        crop = Crop.from_landmarks(lms)
        ref = {"ref_landmarks": crop.to_crop(lms, size), "ref_image": crop.apply(img, size)}
        if picture:
            ref.update(picture=img, crop_box=crop)
    return Target(config=G.cfg, generator=G.state_dict(), psi=torch.randn(1, G.n_adain) * 0.3, meta={}, **ref)


def count_frames(path) -> int:
    """Frames in a video file, counted by decoding it (not the container's claim)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


class Recorder:
    """A sink that keeps what it's given (the test's view of what a call would receive)."""

    name = "recorder"

    def __init__(self):
        self.frames = []

    def write(self, img):
        self.frames.append(img.copy())

    def close(self):
        pass


def random_meta(path, config: str = "tiny", seed: int = 1):
    """A randomly initialised 'meta-learned' checkpoint (the format load_meta reads) written to `path`:
    (path, E, G, D), the networks as saved."""
    from models.discriminator import Discriminator
    from models.embedder import Embedder
    from puppet.files import torch_save_atomic
    from puppet.training.checkpoint import FORMAT, VERSION

    torch.manual_seed(seed)
    E, G, D = Embedder(config), Generator(config), Discriminator(config, 3)
    torch_save_atomic({"format": FORMAT, "version": VERSION, "config": G.cfg.to_dict(), "num_videos": 3,
                       "embedder": E.state_dict(), "generator": G.state_dict(),
                       "discriminator": D.state_dict()}, path)
    return path, E, G, D

"""The content loss's feature networks, built here (no torchvision): VGG19 (ImageNet) and VGGFace (VGG16).

Only the convolutional layers the loss reads are built, with torchvision's `features` indexing:

  VGG19, torchvision `vgg19().features`: the paper's "conv1, 6, 11, 20, 29" are the ReLU outputs at these
  indices, i.e. relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (layers 0..29 are built).
  VGGFace (VGG16 layout), the same indexing: "conv1, 6, 11, 18, 25" = relu1_1, relu2_1, relu3_1, relu4_1,
  relu5_1 (layers 0..25 are built).

Weights are user files, read with torch.load(weights_only=True):
  - VGG19: torchvision's ImageNet state dict `vgg19-dcbb9e9d.pth` (keys `features.N.weight`), looked up in
    torch's hub cache ($TORCH_HOME/hub/checkpoints, TORCH_HOME defaults to ~/.cache/torch) or given as a path.
  - VGGFace: the Oxford VGG-Face weights converted to PyTorch, `vgg_face_dag.pth` (keys `conv1_1.weight`
    ... `conv5_3.weight`, `fc6` ..), looked up in the same folder or given as a path.
Each network takes its own input normalisation (`normalize_vgg19`, `normalize_vggface`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from models.errors import PuppetError

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGGFACE_FILE = "vgg_face_dag.pth"
VGGFACE_URL = "https://www.robots.ox.ac.uk/~albanie/models/pytorch-mcn/vgg_face_dag.pth"

VGG19_LAYERS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
VGGFACE_LAYERS = (1, 6, 11, 18, 25)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1

# Input normalisation the weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
VGGFACE_MEAN = (129.186279296875, 104.76238250732422, 93.59396362304688)  # RGB in [0, 255], std 1

_VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _features(cfg: list, last: int) -> nn.Sequential:
    """torchvision-style `features` (conv 3x3 pad 1, ReLU, max-pool 2), truncated after index `last`."""
    layers: list[nn.Module] = []
    cin = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    return nn.Sequential(*layers[: last + 1])


def vgg19_features() -> nn.Sequential:
    return _features(_VGG19_CFG, VGG19_LAYERS[-1])


def vggface_features() -> nn.Sequential:
    return _features(_VGG16_CFG, VGGFACE_LAYERS[-1])


def _conv_indices(net: nn.Sequential) -> list[int]:
    return [i for i, m in enumerate(net) if isinstance(m, nn.Conv2d)]


def _vggface_names() -> list[str]:
    """Oxford's layer names in order: conv1_1, conv1_2, conv2_1, ..."""
    names, block, k = [], 1, 0
    for v in _VGG16_CFG:
        if v == "M":
            block, k = block + 1, 0
        else:
            k += 1
            names.append(f"conv{block}_{k}")
    return names


def default_weights_dir() -> Path:
    """torch's hub checkpoint folder ($TORCH_HOME/hub/checkpoints; TORCH_HOME defaults to ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _read_state_dict(path: Path, what: str, fix: str) -> dict:
    if not path.is_file():
        raise PuppetError(f"{path}: {what} weights not found; {fix}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with objects, a truncated file, not a torch file at all
        raise PuppetError(f"{path}: not a readable {what} state dict ({type(e).__name__}); {fix}") from e
    if not isinstance(sd, dict):
        raise PuppetError(f"{path}: holds a {type(sd).__name__}, not a {what} state dict; {fix}")
    return sd


def _load(net: nn.Sequential, sd: dict, key_for: dict[int, str], path: Path, what: str, fix: str) -> None:
    """Copy sd[key_for[i] + '.weight'/'.bias'] into net[i]; refuse missing keys or wrong shapes."""
    mapped = {}
    for i, key in key_for.items():
        for p in ("weight", "bias"):
            src, dst = f"{key}.{p}", f"{i}.{p}"
            want = tuple(getattr(net[i], p).shape)
            if src not in sd:
                raise PuppetError(f"{path}: not {what} weights (no '{src}'); {fix}")
            got = tuple(sd[src].shape) if isinstance(sd[src], torch.Tensor) else None
            if got != want:
                raise PuppetError(f"{path}: not {what} weights ('{src}' has shape {got}, "
                                  f"expected {want}); {fix}")
            mapped[dst] = sd[src].float()
    net.load_state_dict(mapped)


def _resolve(weights: str | os.PathLike | None, filename: str) -> Path | None:
    if weights is None:
        return default_weights_dir() / filename
    if isinstance(weights, str) and weights == "random":
        return None
    return Path(weights).expanduser()


def _frozen(net: nn.Sequential) -> nn.Sequential:
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def load_vgg19(weights: str | os.PathLike | None = None) -> nn.Sequential:
    """VGG19 features 0..29 with torchvision's ImageNet weights: a path, None (torch's hub cache) or
    "random"."""
    net = vgg19_features()
    path = _resolve(weights, VGG19_FILE)
    if path is None:
        warnings.warn("VGG19 content-loss network has RANDOM weights (asked for 'random'): "
                      "fine for tests and smoke runs, meaningless for training", stacklevel=2)
        return _frozen(net)
    fix = f"download {VGG19_URL} into {default_weights_dir()} or pass the file's path"
    sd = _read_state_dict(path, "torchvision VGG19 ImageNet", fix)
    _load(net, sd, {i: f"features.{i}" for i in _conv_indices(net)}, path, "torchvision VGG19 ImageNet", fix)
    return _frozen(net)


def load_vggface(weights: str | os.PathLike | None = None) -> nn.Sequential:
    """VGGFace (VGG16) features 0..25 with Oxford's vgg_face_dag weights: a path, None (torch's hub cache
    folder) or "random"."""
    net = vggface_features()
    path = _resolve(weights, VGGFACE_FILE)
    if path is None:
        warnings.warn("VGGFace content-loss network has RANDOM weights (asked for 'random'): "
                      "fine for tests and smoke runs, meaningless for training", stacklevel=2)
        return _frozen(net)
    fix = f"download {VGGFACE_URL} (Oxford VGG-Face, PyTorch) into {default_weights_dir()} or pass its path"
    sd = _read_state_dict(path, "VGGFace (vgg_face_dag)", fix)
    key_for = dict(zip(_conv_indices(net), _vggface_names()))
    _load(net, sd, key_for, path, "VGGFace (vgg_face_dag)", fix)
    return _frozen(net)


def normalize_vgg19(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] RGB -> ImageNet-normalised [0, 1] RGB."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x + 1) / 2 - mean) / std


def normalize_vggface(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] RGB -> [0, 255] RGB minus VGGFace's mean (std 1)."""
    return (x + 1) * 127.5 - x.new_tensor(VGGFACE_MEAN).view(1, 3, 1, 1)


def layer_outputs(net: nn.Sequential, x: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
    """The outputs of net[i] for i in `layers` (the net is built to end at the last one)."""
    out = []
    for i, m in enumerate(net):
        x = m(x)
        if i in layers:
            out.append(x)
    return out

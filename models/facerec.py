"""face-api's 128-d face descriptor network (dlib's ResNet-34-style face recognition net), ported to torch.

The weights are vendored in `models/weights/` exactly as published in the npm package
`@vladmandic/face-api` 1.7.15 (`package/model/face_recognition_model.bin` + its weights manifest, MIT licence:
`models/weights/LICENSE-face-api`; see `models/weights/FACE_RECOGNITION_CARD.md`). They are read here
without tfjs: the manifest lists 117 tensors in the order they lie in the .bin; 109 are stored as uint8 with a
per-tensor `min`/`scale` and decoded as tfjs's `io.decodeWeights` does (value = q * scale + min, in float32),
8 as float32.

The architecture follows face-api's `src/faceRecognitionNet` (FaceRecognitionNet.ts, convLayer.ts,
residualLayer.ts, scaleLayer.ts), NHWC there, NCHW here:

  input 150x150 RGB in [0, 255]  ->  (x - [122.782, 117.001, 104.298]) / 255
  conv32_down: conv 7x7 stride 2 'valid' + bias, scale (per-channel mul + add), relu       150 -> 72
  max pool 3x3 stride 2 'valid'                                                              72 -> 35
  residual x3 (32), residualDown + residual x3 (64), residualDown + residual x2 (128),
  residualDown + residual x2 (256), residualDown (conv256_down_out)                 35 -> 17 -> 8 -> 4 -> 2
  global mean over H, W; matmul with fc [256, 128]  ->  the 128-d descriptor (not normalised)

  residual:     relu(scale(conv3x3 'same'(relu(scale(conv3x3 'same'(x))))) + x)
  residualDown: out = scale(conv3x3 'same'(relu(scale(conv3x3 stride 2 'valid'(x)))));
                pooled = avgpool 2x2 stride 2 'valid'(x), zero channels appended when out has more;
                where out is smaller than pooled (8 -> 3 vs 4, 4 -> 1 vs 2) one zero row is appended at the
                bottom and one zero column at the right of out; relu(pooled + out).

Every 'same' conv here is 3x3 stride 1 (symmetric padding of 1) and every strided conv and pool is 'valid',
so TF's asymmetric 'same' padding never arises; the asymmetric part is the bottom/right zero row/column above.

The project's image convention is float32 NCHW RGB in [-1, 1]; `descriptor` and `features` take that, of any
size, and resize to 150x150 with `F.interpolate` (bilinear, align_corners=False, antialias=False) when needed;
everything is differentiable (use it as an identity loss). face-api itself resizes a tensor with tfjs's legacy
`resizeBilinear` (align_corners=False, half_pixel_centers=False), so only 150x150 inputs match it exactly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import PuppetError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE = "face_recognition_model.bin"
MANIFEST_FILE = "face_recognition_model-weights_manifest.json"
WEIGHTS_SHA256 = "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589"
MANIFEST_SHA256 = "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b"
N_TENSORS = 117
INPUT_SIZE = 150
MEAN_RGB = (122.782, 117.001, 104.298)
SOURCE = "npm @vladmandic/face-api 1.7.15 (package/model/)"

# (name, channels, downsample) in forward order.
_BLOCKS = (
    ("conv32_1", 32, False),
    ("conv32_2", 32, False),
    ("conv32_3", 32, False),
    ("conv64_down", 64, True),
    ("conv64_1", 64, False),
    ("conv64_2", 64, False),
    ("conv64_3", 64, False),
    ("conv128_down", 128, True),
    ("conv128_1", 128, False),
    ("conv128_2", 128, False),
    ("conv256_down", 256, True),
    ("conv256_1", 256, False),
    ("conv256_2", 256, False),
    ("conv256_down_out", 256, True),
)
# Blocks whose outputs `features` returns (the end of each stage), after the stem.
FEATURE_BLOCKS = ("conv32_3", "conv64_3", "conv128_2", "conv256_2", "conv256_down_out")


class ConvLayer(nn.Module):
    """conv (+ bias) then face-api's scale layer (per-channel weights * x + biases), optional relu."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, padding: int, relu: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=True)
        self.scale_weights = nn.Parameter(torch.ones(cout))
        self.scale_biases = nn.Parameter(torch.zeros(cout))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        out = out * self.scale_weights.view(1, -1, 1, 1) + self.scale_biases.view(1, -1, 1, 1)
        return F.relu(out) if self.relu else out


class Residual(nn.Module):
    """face-api's `residual` (down=False) or `residualDown` (down=True)."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        # 'valid' stride-2 conv for the downsampling block, 'same' (pad 1) otherwise.
        self.conv1 = ConvLayer(cin, cout, 3, 2 if down else 1, 0 if down else 1, relu=True)
        self.conv2 = ConvLayer(cout, cout, 3, 1, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if not self.down:
            return F.relu(out + x)
        pooled = F.avg_pool2d(x, 2, 2)
        if pooled.shape[1] != out.shape[1]:
            pooled = torch.cat([pooled, torch.zeros_like(pooled)], 1)
        if pooled.shape[-2:] != out.shape[-2:]:
            out = F.pad(out, (0, 1, 0, 1))  # one zero column at the right, one zero row at the bottom
        return F.relu(pooled + out)


class FaceRecognitionNet(nn.Module):
    """The 128-d face descriptor net. `forward` takes face-api's own input: NCHW RGB in [0, 255], 150x150."""

    def __init__(self):
        super().__init__()
        self.conv32_down = ConvLayer(3, 32, 7, 2, 0, relu=True)
        self.blocks = nn.ModuleDict()
        cin = 32
        for name, c, down in _BLOCKS:
            self.blocks[name] = Residual(cin, c if down else cin, down)
            cin = c
        self.fc = nn.Parameter(torch.zeros(256, 128))  # [in, out] as face-api stores it
        self.register_buffer("mean_rgb", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def _run(self, x255: torch.Tensor, collect: bool):
        out = (x255 - self.mean_rgb) / 255.0
        out = F.max_pool2d(self.conv32_down(out), 3, 2)
        feats = [out]
        for name, block in self.blocks.items():
            out = block(out)
            if collect and name in FEATURE_BLOCKS:
                feats.append(out)
        return out, feats

    def forward(self, x255: torch.Tensor) -> torch.Tensor:
        out, _ = self._run(x255, collect=False)
        return out.mean(dim=(2, 3)) @ self.fc

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] NCHW RGB of any size -> face-api's input ([0, 255], 150x150), differentiably."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        x = images.float()
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                              antialias=False)
        return (x + 1.0) * 127.5

    def descriptor(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [-1, 1] -> (N, 128) descriptors (face-api's, not normalised)."""
        return self(self.prepare(images))

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) RGB in [-1, 1] -> the stem's and each stage's output, for a perceptual loss:
        [32x35x35, 32x35x35, 64x17x17, 128x8x8, 256x4x4, 256x2x2] (after relu)."""
        _, feats = self._run(self.prepare(images), collect=True)
        return feats


def _expected_shapes(net: FaceRecognitionNet) -> dict[str, tuple[int, ...]]:
    """Manifest name -> the shape face-api stores (filters HWIO, fc [in, out])."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_layer(prefix: str, layer: ConvLayer):
        o, i, kh, kw = layer.conv.weight.shape
        shapes[f"{prefix}/conv/filters"] = (kh, kw, i, o)
        shapes[f"{prefix}/conv/bias"] = (o,)
        shapes[f"{prefix}/scale/weights"] = (o,)
        shapes[f"{prefix}/scale/biases"] = (o,)

    conv_layer("conv32_down", net.conv32_down)
    for name, block in net.blocks.items():
        conv_layer(f"{name}/conv1", block.conv1)
        conv_layer(f"{name}/conv2", block.conv2)
    shapes["fc"] = tuple(net.fc.shape)
    return shapes


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _decode(manifest_path: Path, bin_path: Path) -> dict[str, np.ndarray]:
    """Parse the tfjs manifest + .bin shard like tfjs's io.decodeWeights: {name: float32 array}."""
    groups = json.loads(manifest_path.read_text())
    entries = [w for g in groups for w in g["weights"]]
    data = bin_path.read_bytes()
    out: dict[str, np.ndarray] = {}
    offset = 0
    for w in entries:
        shape = tuple(w["shape"])
        n = int(np.prod(shape)) if shape else 1
        q = w.get("quantization")
        if q is None:
            if w["dtype"] != "float32":
                raise ValueError(f"unsupported dtype {w['dtype']} for {w['name']}")
            arr = np.frombuffer(data, dtype="<f4", count=n, offset=offset).astype(np.float32)
            offset += 4 * n
        elif q["dtype"] == "uint8":
            raw = np.frombuffer(data, dtype=np.uint8, count=n, offset=offset)
            offset += n
            # tfjs: new Float32Array(values.map(v => v * scale + min)) -- in double, rounded to float32.
            arr = (raw.astype(np.float64) * float(q["scale"]) + float(q["min"])).astype(np.float32)
        else:
            raise ValueError(f"unsupported quantization {q['dtype']} for {w['name']}")
        out[w["name"]] = arr.reshape(shape)
    if offset != len(data):
        raise ValueError(f"manifest describes {offset} bytes, file has {len(data)}")
    return out


def load_face_recognition(path: str | Path | None = None, device: str | torch.device = "cpu"
                          ) -> FaceRecognitionNet:
    """The net with face-api's weights, in eval mode, frozen (requires_grad False; gradients still flow to
    the input). `path`: the .bin file (default: the vendored `models/weights/face_recognition_model.bin`);
    the manifest `face_recognition_model-weights_manifest.json` must lie next to it.

    Raises PuppetError (one line naming the file and the fix) when a file is missing or altered."""
    bin_path = Path(path) if path is not None else WEIGHTS_DIR / WEIGHTS_FILE
    manifest_path = bin_path.parent / MANIFEST_FILE
    fix = f"restore it from {SOURCE} (the vendored copy is in models/weights/ of the puppet source)"
    for p, want in ((bin_path, WEIGHTS_SHA256), (manifest_path, MANIFEST_SHA256)):
        if not p.is_file():
            raise PuppetError(f"face-recognition weights missing: {p}; {fix}")
        got = _sha256(p)
        if got != want:
            raise PuppetError(f"face-recognition weights altered: {p} (sha256 {got[:12]}..., expected "
                              f"{want[:12]}...); {fix}")
    net = FaceRecognitionNet()
    try:
        weights = _decode(manifest_path, bin_path)
    except (ValueError, KeyError, TypeError) as e:  # pragma: no cover - the hashes guard the content
        raise PuppetError(f"face-recognition weights unreadable: {bin_path} ({e}); {fix}") from e
    shapes = _expected_shapes(net)
    got_shapes = {k: tuple(v.shape) for k, v in weights.items()}
    if len(weights) != N_TENSORS or got_shapes != shapes:  # pragma: no cover - the hashes guard the content
        raise PuppetError(f"face-recognition weights do not fit the net: {manifest_path} ({len(weights)} "
                          f"tensors, expected {N_TENSORS}); {fix}")

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(weights[name].copy())

    def set_layer(prefix: str, layer: ConvLayer):
        layer.conv.weight.data.copy_(t(f"{prefix}/conv/filters").permute(3, 2, 0, 1))  # HWIO -> OIHW
        layer.conv.bias.data.copy_(t(f"{prefix}/conv/bias"))
        layer.scale_weights.data.copy_(t(f"{prefix}/scale/weights"))
        layer.scale_biases.data.copy_(t(f"{prefix}/scale/biases"))

    with torch.no_grad():
        set_layer("conv32_down", net.conv32_down)
        for name, block in net.blocks.items():
            set_layer(f"{name}/conv1", block.conv1)
            set_layer(f"{name}/conv2", block.conv2)
        net.fc.data.copy_(t("fc"))
    net.requires_grad_(False)
    return net.eval().to(device)


_DEFAULT: dict[str, FaceRecognitionNet] = {}


def _net_for(images: torch.Tensor, net: FaceRecognitionNet | None) -> FaceRecognitionNet:
    if net is not None:
        return net
    key = str(images.device)
    if key not in _DEFAULT:
        _DEFAULT[key] = load_face_recognition(device=images.device)
    return _DEFAULT[key]


def descriptor(images: torch.Tensor, net: FaceRecognitionNet | None = None) -> torch.Tensor:
    """(N, 3, H, W) RGB in [-1, 1], any size -> (N, 128) face descriptors (vendored net unless `net`)."""
    return _net_for(images, net).descriptor(images)


def features(images: torch.Tensor, net: FaceRecognitionNet | None = None) -> list[torch.Tensor]:
    """(N, 3, H, W) RGB in [-1, 1], any size -> the net's stage outputs (see FaceRecognitionNet.features)."""
    return _net_for(images, net).features(images)


def csim(a: torch.Tensor, b: torch.Tensor, net: FaceRecognitionNet | None = None) -> torch.Tensor:
    """Cosine similarity per pair: (N, 128) descriptors -> (N,). Images ((N, 3, H, W) in [-1, 1]) are
    turned into descriptors first."""
    if a.dim() == 4:
        a = descriptor(a, net)
    if b.dim() == 4:
        b = descriptor(b, net)
    return F.cosine_similarity(a, b, dim=-1)

"""Named network configurations: `ModelConfig`, a frozen dataclass (stored inside checkpoints and targets as a
plain dict, `to_dict()`, and read back with `get_config`).

Fields (all networks share `image_size` and `emb_dim`):
- image_size: side of the square images (frames, sketches, generated images).
- emb_dim: size of the embedding e (E's output) and of D's projection vectors W_i, w0.
- e_channels: output channels of E's down-sampling residual blocks (each halves the resolution);
  the last one must equal emb_dim (E's output is its global sum pooling).
- g_down_channels: G's down-sampling blocks (instance norm); g_res_blocks: AdaIN residual blocks at the
  bottleneck (width g_down_channels[-1]); g_up_channels: G's up-sampling blocks (AdaIN). The up path must
  restore image_size, so len(g_up_channels) == len(g_down_channels).
- d_channels, d_res_blocks: D's down-sampling blocks, then residual blocks at the lowest resolution; the
  last width must equal emb_dim (it is projected onto W_i + w0).
- attn_down: resolutions (pixels) after which a self-attention layer sits in E, G's down path and D;
  attn_up: the same for G's up path. The paper: 32 and 64 at 256x256; smaller configs use the
  analogous resolutions (image_size/8 and image_size/4).
- net_size (default image_size): the side the networks work at inside. Images, sketches and
  outputs cross the networks' boundary at image_size; E, G and D resize to net_size on the way in, and G
  resizes its output back. With the appearance path, detail comes from the full-size warp, so a CPU model
  can think at 128 and still give 256 (the attention resolutions and the divisibility rule refer to it).
- appearance (default "none"): "warp" gives G a second input, the target's reference picture
  warped piecewise-affinely to the driving landmarks, and G adds a learned correction to it (the warp keeps
  fine detail; G draws what a warp can't: the inside of the mouth, closing eyes, shading). "none" is the
  paper's generator, which draws every pixel from the sketch. `ModelConfig.inputs` names what G takes: the
  one place that decides it (export names the ONNX inputs after it, the live loop builds them from it).
- head_norm (default False): an affine instance norm before the correction head's ReLU (see
  models.generator). The appearance configs have it; a checkpoint whose config lacks it loads with False.
- correction (default "full"): where an appearance generator's correction acts: "full" (the whole
  frame), "regions" (around the eyes and the mouth only, a mask read off the sketch: models.generator) or
  "mouth" (around the mouth only).
  No weights of its own, so a checkpoint of either kind loads into the other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from models.errors import PuppetError

APPEARANCE = ("none", "warp")
CORRECTION = ("full", "regions", "mouth")
_INT_FIELDS = ("image_size", "emb_dim", "g_res_blocks", "d_res_blocks")
_LIST_FIELDS = ("e_channels", "g_down_channels", "g_up_channels", "d_channels", "attn_down", "attn_up")


@dataclass(frozen=True)
class ModelConfig:
    """The networks' shape (fields: the module docstring). Build one with `get_config`, change one with
    `replace`: both validate."""

    name: str
    image_size: int
    emb_dim: int
    e_channels: tuple[int, ...]
    g_down_channels: tuple[int, ...]
    g_res_blocks: int
    g_up_channels: tuple[int, ...]
    d_channels: tuple[int, ...]
    d_res_blocks: int
    attn_down: tuple[int, ...]
    attn_up: tuple[int, ...]
    net_size: int | None = None  # None: image_size (read `inner_size`)
    appearance: str = "none"
    head_norm: bool = False
    correction: str = "full"

    @property
    def inner_size(self) -> int:
        """The side the networks work at (net_size, or image_size)."""
        return self.net_size or self.image_size

    @property
    def takes_warp(self) -> bool:
        """Whether G also takes the reference picture warped to the driving landmarks."""
        return self.appearance == "warp"

    @property
    def inputs(self) -> tuple[str, ...]:
        """G's inputs in order, as the exported graph names them: `sketch`, then `warped` with the
        appearance path."""
        return ("sketch", "warped") if self.takes_warp else ("sketch",)

    def to_dict(self) -> dict:
        """A plain JSON-able dict (lists, not tuples): what checkpoints and targets store."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes) -> ModelConfig:
        """A validated copy with `changes`."""
        return get_config({**self.to_dict(), **changes})


def _named(**fields) -> ModelConfig:
    return ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


CONFIGS: dict[str, ModelConfig] = {
    # The paper's widths at 256x256. Measured (tests/test_models.py checks the bounds): E 14.9 M parameters,
    # G 37.8 M with P (P: 6.7 M), D 19.6 M without W.
    "paper": _named(name="paper", image_size=256, emb_dim=512, e_channels=[64, 128, 256, 512, 512, 512],
                    g_down_channels=[64, 128, 256, 512], g_res_blocks=5, g_up_channels=[256, 128, 64, 32],
                    d_channels=[64, 128, 256, 512, 512, 512], d_res_blocks=1, attn_down=[32], attn_up=[64]),
    # Half the resolution, about a quarter of the width: trains on one GPU in hours, not weeks.
    "small": _named(name="small", image_size=128, emb_dim=256, e_channels=[32, 64, 128, 256, 256],
                    g_down_channels=[32, 64, 128, 256], g_res_blocks=3, g_up_channels=[128, 64, 32, 32],
                    d_channels=[32, 64, 128, 256, 256], d_res_blocks=1, attn_down=[16], attn_up=[32]),
    # CPU real time (BENCHMARKS.md): `small` with half of G's widths and 2 bottleneck blocks (E and D
    # unchanged). 0.97 GFLOP a frame against small's 3.78; the live loop reaches 25+ fps on 2 CPU cores with
    # onnxruntime.
    "cpu": _named(name="cpu", image_size=128, emb_dim=256, e_channels=[32, 64, 128, 256, 256],
                  g_down_channels=[16, 32, 64, 128], g_res_blocks=2, g_up_channels=[64, 32, 16, 16],
                  d_channels=[32, 64, 128, 256, 256], d_res_blocks=1, attn_down=[16], attn_up=[32]),
    # For tests and smoke runs on a CPU: a forward+backward of all three networks takes milliseconds.
    "tiny": _named(name="tiny", image_size=64, emb_dim=32, e_channels=[8, 16, 32, 32],
                   g_down_channels=[8, 16, 32], g_res_blocks=1, g_up_channels=[16, 8, 8],
                   d_channels=[8, 16, 32, 32], d_res_blocks=1, attn_down=[8], attn_up=[16]),
    # `tiny` with the appearance path, thinking at half its I/O size: tests of the warp generator.
    "tiny-warp": _named(name="tiny-warp", image_size=64, net_size=32, appearance="warp", head_norm=True,
                        correction="regions", emb_dim=32, e_channels=[8, 16, 32], g_down_channels=[8, 16],
                        g_res_blocks=1, g_up_channels=[16, 8], d_channels=[8, 16, 32], d_res_blocks=1,
                        attn_down=[8], attn_up=[16]),
}

# The appearance configs: a pure config's widths, with the warp path. The CPU live default: `cpu`'s widths
# thinking at 128, the appearance path giving a sharp 256 output (the warp carries the detail, G the
# corrections); still ~1 GFLOP a frame.
# Its correction acts around the mouth only: measured on the dev-eval people, the GPU-trained model's eye
# corrections cost more than they gave (BENCHMARKS.md, "Meta-learning on a GPU").
CONFIGS["cpu-warp"] = dataclasses.replace(CONFIGS["cpu"], name="cpu-warp", image_size=256, net_size=128,
                                          appearance="warp", head_norm=True, correction="mouth")
# The appearance path at the paper's size and widths, for GPUs.
CONFIGS["paper-warp"] = dataclasses.replace(CONFIGS["paper"], name="paper-warp", appearance="warp",
                                            head_norm=True, correction="mouth")


def get_config(spec: str | dict | ModelConfig) -> ModelConfig:
    """A named config, or a config dict (e.g. one read back from a checkpoint: missing optional fields take
    their defaults), validated."""
    if isinstance(spec, ModelConfig):
        spec = spec.to_dict()
    if isinstance(spec, str):
        if spec not in CONFIGS:
            raise PuppetError(f"config '{spec}': unknown name; use one of {', '.join(sorted(CONFIGS))}")
        return CONFIGS[spec]
    if not isinstance(spec, dict):
        raise PuppetError(f"config {spec!r}: expected a config name or dict; use one of "
                          f"{', '.join(sorted(CONFIGS))}")
    return _validated(spec)


def _validated(d: dict) -> ModelConfig:
    where = f"config '{d.get('name', '<dict>')}'"
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise PuppetError(f"{where}: unknown fields {', '.join(unknown)}; "
                          f"the fields are {', '.join(sorted(known))}")
    missing = [k for k in _INT_FIELDS + _LIST_FIELDS if k not in d]
    if missing:
        raise PuppetError(f"{where}: missing fields {', '.join(missing)}; start from get_config('tiny'|"
                          f"'small'|'paper') and change what you need")
    for k in _INT_FIELDS:
        if type(d[k]) is not int or d[k] < 0:
            raise PuppetError(f"{where}: {k} must be a non-negative int, got {d[k]!r}")
    for k in _LIST_FIELDS:
        if not isinstance(d[k], (list, tuple)) or not all(type(v) is int and v > 0 for v in d[k]):
            raise PuppetError(f"{where}: {k} must be a list of positive ints, got {d[k]!r}")
    ns = d.get("net_size")
    if ns is not None and (type(ns) is not int or ns <= 0 or d["image_size"] % ns):
        raise PuppetError(f"{where}: net_size must be a positive int dividing image_size {d['image_size']}, "
                          f"got {ns!r}")
    appearance = d.get("appearance") or "none"
    if appearance not in APPEARANCE:
        raise PuppetError(f"{where}: appearance must be one of {', '.join(APPEARANCE)}, got {appearance!r}")
    correction = d.get("correction") or "full"
    if correction not in CORRECTION:
        raise PuppetError(f"{where}: correction must be one of {', '.join(CORRECTION)}, got {correction!r}")
    cfg = ModelConfig(
        name=str(d.get("name") or "custom"),
        **{k: d[k] for k in _INT_FIELDS},
        **{k: tuple(d[k]) for k in _LIST_FIELDS},
        net_size=ns,
        appearance=appearance,
        head_norm=bool(d.get("head_norm", False)),
        correction=correction,
    )
    size = cfg.inner_size
    for k in ("e_channels", "g_down_channels", "d_channels"):
        n = len(getattr(cfg, k))
        if n == 0 or size % (2**n) != 0:
            raise PuppetError(f"{where}: net_size {size} must be divisible by 2**len({k}) = {2**n}")
    if cfg.e_channels[-1] != cfg.emb_dim or cfg.d_channels[-1] != cfg.emb_dim:
        raise PuppetError(f"{where}: e_channels[-1] and d_channels[-1] must equal emb_dim {cfg.emb_dim}")
    if len(cfg.g_up_channels) != len(cfg.g_down_channels):
        raise PuppetError(f"{where}: g_up_channels needs as many blocks as g_down_channels "
                          f"({len(cfg.g_down_channels)}) to restore image_size")
    return cfg

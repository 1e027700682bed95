"""The target file (mona.pt): one person's generator, the thing the live loop and export take.

It holds only tensors and plain values and is read with `torch.load(weights_only=True)`: target files are
shared between people, and unpickling an arbitrary object runs code. Layout (a plain dict):

    format         "puppet-target"
    version        FORMAT_VERSION
    config         the model config (models.config.ModelConfig.to_dict(): a plain dict)
    generator      G's state dict with spectral norm removed (plain tensors)
    psi            psi' (1, n_adain): the fine-tuned AdaIN parameters, a constant of this person's generator
    ref_landmarks  (68, 2) float32: the target's landmarks in crop pixels at config.image_size; the live
                   loop retargets the driver's motion onto these
    ref_image      (S, S, 3) uint8 BGR: the reference crop
    meta           plain metadata: sources, steps, created, puppet_version, ...
    picture        (version 2, optional) (H, W, 3) uint8 BGR: the whole source picture the reference crop was
                   cut from, long side at most PICTURE_MAX_SIDE; the live output pastes the face back into it
    crop_box       (version 2, with picture) [cx, cy, size] floats: the crop's box (puppet.faces.crop.Crop) in
                   picture pixels, so that Crop(*crop_box).apply(picture, S) is the reference crop
    extra_images   (version 3, optional) (N, S, S, 3) uint8 BGR: a few-shot target's other photos (frames),
    extra_landmarks  cropped like ref_image, and their (N, 68, 2) float32 landmarks. An appearance generator
                   warps whichever reference is nearest in shape to the driving landmarks (puppet.feed)
    face_size      (optional, any version) int: the largest crop side the live loop warps and pastes this
                   target's face at (puppet.live picks it per output frame from how large the face is shown
                   there, never under image_size; the generator still runs at its own size). Absent: the
                   crop at image_size, as generated

Version 1 files (no picture) still load: their live output is the face pasted onto the reference crop.
Version 2 files (one reference) load as they are.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import io
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.config import ModelConfig, get_config
from puppet.errors import PuppetError
from puppet.files import check_format, torch_save_atomic

FORMAT = "puppet-target"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # version 1: no picture / crop_box; 2: no extra references
MAX_FACE_SIZE = 512  # the largest face crop the live loop works at (warp and paste-back)
PICTURE_MAX_SIDE = 1920  # a larger source picture is stored downscaled (its crop_box with it)
# The largest networks a target may ask for: past them a malformed file would allocate without bound.
# (The paper's config: 256 px, widths up to 512, 5 residual blocks.)
MAX_IMAGE_SIZE = 1024
MAX_WIDTH = 4096
MAX_BLOCKS = 16
# Set by load_target (where the file is, what its bytes hash to); never saved.
TRANSIENT_META = ("path", "sha256")
_MAKE = (
    "make one with `python -m puppet.finetune PHOTO --out FILE.pt --checkpoint meta.pt` (or --from-scratch)"
)


@dataclass
class Target:
    config: ModelConfig  # a name or a dict (e.g. read from a file) is turned into one
    generator: dict[str, torch.Tensor]
    psi: torch.Tensor
    ref_landmarks: np.ndarray
    ref_image: np.ndarray
    meta: dict = field(default_factory=dict)
    # The whole source picture (uint8 BGR) and the crop's box in it: a puppet.faces.crop.Crop or
    # (cx, cy, size) in picture pixels. Both or neither; a picture whose long side is over
    # PICTURE_MAX_SIDE is downscaled here, the box with it.
    picture: np.ndarray | None = None
    crop_box: tuple[float, float, float] | None = None
    # A few-shot target's other references: (N, S, S, 3) uint8 BGR crops and (N, 68, 2) landmarks.
    extra_images: np.ndarray | None = None
    extra_landmarks: np.ndarray | None = None
    # The largest face crop side for the live output (see the module doc); None: image_size.
    face_size: int | None = None

    def __post_init__(self) -> None:
        self.config = get_config(self.config)
        self.picture, self.crop_box = _picture_fields(self.picture, self.crop_box)
        self.extra_images, self.extra_landmarks = _extra_fields(self.extra_images, self.extra_landmarks)
        self.face_size = _face_size_field(self.face_size, self.image_size)

    @property
    def n_references(self) -> int:
        return 1 + (0 if self.extra_images is None else len(self.extra_images))

    def reference(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Reference k (0: ref_image): (uint8 BGR crop (S, S, 3), landmarks (68, 2))."""
        if k == 0:
            return np.asarray(self.ref_image), np.asarray(self.ref_landmarks, np.float32)
        return self.extra_images[k - 1], self.extra_landmarks[k - 1]

    def nearest_reference(self, landmarks: np.ndarray, current: int | None = None) -> int:
        """The reference whose landmarks are nearest in shape to `landmarks` (puppet.faces.warp.
        nearest_shape; with `current`, another one only when it is clearly nearer)."""
        if self.n_references == 1:
            return 0
        from puppet.faces.warp import nearest_shape

        return nearest_shape([self.reference(k)[1] for k in range(self.n_references)], landmarks, current)

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def crop(self):
        """The reference crop's box in the picture (puppet.faces.crop.Crop), or None without a picture."""
        from puppet.faces.crop import Crop

        return None if self.crop_box is None else Crop(*self.crop_box)

    def person_generator(self, device: str | torch.device = "cpu"):
        """models.generator.PersonGenerator with psi folded in, in eval mode: what export and live run."""
        from models.generator import Generator, PersonGenerator

        G = Generator(self.config, spectral=False)  # the stored weights have spectral norm folded in
        try:
            G.load_state_dict(self.generator)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise PuppetError(
                f"{self.meta.get('path', 'target')}: generator weights don't match its config ({first}); "
                f"re-make the target with this version of puppet"
            ) from None
        if self.psi.shape != (1, G.n_adain):
            raise PuppetError(
                f"{self.meta.get('path', 'target')}: psi has shape {tuple(self.psi.shape)}, the generator "
                f"needs (1, {G.n_adain}); re-make the target with this version of puppet"
            )
        return PersonGenerator(G, self.psi.float()).to(device).eval()


def to_size(points: np.ndarray, size: int, new_size: int) -> np.ndarray:
    """Crop pixel coordinates (N, 2) at crop side `size` -> the same points in the crop of side `new_size`
    (the same box: pixel centres scale about the crop's edge, as puppet.faces.crop.Crop.to_crop has it)."""
    p = np.asarray(points, np.float64)
    if size == new_size:
        return np.asarray(points, np.float32)
    return ((p + 0.5) * (new_size / size) - 0.5).astype(np.float32)


def default_face_size(config: ModelConfig, picture: np.ndarray | None) -> int | None:
    """The face_size a new target records: MAX_FACE_SIZE for a generator with the appearance path and a
    picture to cut the larger crop from (the live loop then sizes the crop to how large the face is shown,
    even past the photo's own pixels there: each resampling on the way, crop, warp and paste-back, blurs a
    crop at the photo's resolution more than an oversampled one); None (image_size) without the
    appearance path, whose detail all comes from the network, or without a picture."""
    if picture is None or not config.takes_warp:
        return None
    return max(MAX_FACE_SIZE, config.image_size)


def _face_size_field(face_size, image_size: int) -> int | None:
    """face_size checked: None, or an int from image_size to MAX_FACE_SIZE."""
    if face_size is None:
        return None
    if isinstance(face_size, bool) or not isinstance(face_size, (int, np.integer)):
        raise ValueError(f"face_size must be an int, got {face_size!r}")
    if not image_size <= int(face_size) <= max(MAX_FACE_SIZE, image_size):
        raise ValueError(f"face_size must be from image_size ({image_size}) to {MAX_FACE_SIZE}, "
                         f"got {face_size}")
    return int(face_size)


def _picture_fields(picture, crop_box) -> tuple[np.ndarray | None, tuple[float, float, float] | None]:
    """(picture, crop_box) checked and normalised: a contiguous uint8 BGR picture whose long side is at most
    PICTURE_MAX_SIDE (a larger one downscaled, its box with it) and the box as three floats; or None, None."""
    if picture is None:
        if crop_box is not None:
            raise ValueError("crop_box is given without a picture; pass both or neither")
        return None, None
    pic = np.asarray(picture)
    if pic.dtype != np.uint8 or pic.ndim != 3 or pic.shape[2] != 3 or min(pic.shape[:2]) < 1:
        raise ValueError(f"picture must be uint8 (H, W, 3) BGR, got {pic.dtype} {pic.shape}")
    if crop_box is None:
        raise ValueError("a picture needs its crop_box (the Crop the reference crop was cut with)")
    box = (crop_box.cx, crop_box.cy, crop_box.size) if hasattr(crop_box, "cx") else crop_box  # a Crop
    box = tuple(float(v) for v in box)
    if len(box) != 3 or not all(np.isfinite(box)) or box[2] <= 0:
        raise ValueError(f"crop_box must be (cx, cy, size) with size > 0, got {crop_box}")
    h, w = pic.shape[:2]
    if max(h, w) > PICTURE_MAX_SIDE:
        import cv2

        s = PICTURE_MAX_SIDE / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        sx, sy = nw / w, nh / h  # what cv2.resize does to pixel centres: x -> (x + 0.5) * sx - 0.5
        pic = cv2.resize(pic, (nw, nh), interpolation=cv2.INTER_AREA)
        cx, cy, size = box
        box = ((cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5, size * (sx + sy) / 2)
    return np.ascontiguousarray(pic), box


def _extra_fields(images, landmarks) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(extra_images, extra_landmarks) checked: both or neither, N >= 1 of each; None, None for none."""
    if images is None and landmarks is None:
        return None, None
    if images is None or landmarks is None:
        raise ValueError("extra_images and extra_landmarks go together; pass both or neither")
    imgs = np.ascontiguousarray(np.asarray(images))
    lms = np.asarray(landmarks, np.float32)
    if imgs.dtype != np.uint8 or imgs.ndim != 4 or imgs.shape[3] != 3 or len(imgs) == 0:
        raise ValueError(f"extra_images must be uint8 (N, S, S, 3) BGR, got {imgs.dtype} {imgs.shape}")
    if lms.shape != (len(imgs), 68, 2):
        raise ValueError(f"extra_landmarks must be ({len(imgs)}, 68, 2), got {lms.shape}")
    return imgs, lms


def make_metadata(sources, steps: int, **extra) -> dict:
    """The plain metadata stored with a target (extra values must be plain: str/int/float/bool/list/dict)."""
    import puppet

    return {
        "sources": [str(s) for s in sources],
        "steps": int(steps),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "puppet_version": puppet.__version__,
        **extra,
    }


def _portable(value, names: bool = False):
    """A metadata value as it may leave this machine: an absolute path (the checkpoint, a photo) becomes its
    file name, so that a shared target doesn't carry its maker's folders (home folder, user name); with
    `names` (the sources) every path does."""
    if isinstance(value, (list, tuple)):
        return [_portable(v, names) for v in value]
    if isinstance(value, str) and value and (names or os.path.isabs(value)):
        return Path(value).name or value
    return value


def save_target(path: str | os.PathLike, target: Target) -> None:
    """Write `target` atomically as a dict of plain tensors and values."""
    lms = np.asarray(target.ref_landmarks, dtype=np.float32)
    img = np.asarray(target.ref_image)
    if lms.shape != (68, 2):
        raise ValueError(f"ref_landmarks must be (68, 2), got {lms.shape}")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"ref_image must be uint8 (S, S, 3) BGR, got {img.dtype} {img.shape}")
    meta = {k: _portable(v, k == "sources") for k, v in target.meta.items() if k not in TRANSIENT_META}
    picture, box = _picture_fields(target.picture, target.crop_box)  # (reassigned since construction?)
    obj = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": target.config.to_dict(),
        # clone: a state dict's tensors may be views sharing storage with others; save each on its own
        "generator": {k: v.detach().cpu().clone() for k, v in target.generator.items()},
        "psi": target.psi.detach().cpu().float().clone(),
        "ref_landmarks": torch.from_numpy(lms.copy()),
        "ref_image": torch.from_numpy(np.ascontiguousarray(img).copy()),
        "meta": meta,
    }
    if picture is not None:
        obj["picture"] = torch.from_numpy(picture.copy())
        obj["crop_box"] = list(box)
    extra_imgs, extra_lms = _extra_fields(target.extra_images, target.extra_landmarks)
    if extra_imgs is not None:
        if extra_imgs.shape[1:] != img.shape:
            raise ValueError(f"extra_images must be crops like ref_image {img.shape}, "
                             f"got {extra_imgs.shape[1:]}")
        obj["extra_images"] = torch.from_numpy(extra_imgs.copy())
        obj["extra_landmarks"] = torch.from_numpy(extra_lms.copy())
    face_size = _face_size_field(target.face_size, target.config.image_size)
    if face_size is not None:
        obj["face_size"] = face_size
    torch_save_atomic(obj, path)


def load_target(target: str | os.PathLike | Target) -> Target:
    """The one target loader: a Target passes through; a path is read once (its bytes give both the
    content hash, kept as meta["sha256"], and the tensors). Anything that is not a complete, current target
    file is a one-line PuppetError."""
    if isinstance(target, Target):
        return target
    path = Path(target)
    try:
        path.stat()
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            raise PuppetError(f"{path}: can't read it ({e.strerror or e}); check the path") from None
    if not path.exists():
        if path.is_symlink():  # a link to nothing, or a loop of links
            raise PuppetError(f"{path}: a symbolic link that leads to no file (broken, or a loop); "
                              f"point it at a target file")
        raise PuppetError(f"{path}: no such target file; {_MAKE}")
    if not path.is_file():
        raise PuppetError(f"{path}: is not a file; pass a target file made by puppet.finetune")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PuppetError(f"{path}: can't read it ({e.strerror or e}); check its permissions") from None
    bad = _bad_zip_entry(data)
    if bad:
        raise PuppetError(f"{path}: damaged ({bad}); copy it again from where it came from, or {_MAKE}")
    try:
        # weights_only: the unpickler only rebuilds tensors and plain containers; any other object
        # (a pickle payload) makes it stop before anything is called.
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # the weights-only unpickler names the first global it refused ("GLOBAL io.open"); other
        # unpickling errors ("Unsupported operand") mean garbage bytes
        m = re.search(r"GLOBAL ([\w.]+)|Unsupported class ([\w.]+)", str(e))
        if m:
            raise PuppetError(
                f"{path}: holds a pickled object ({m.group(1) or m.group(2)}), not only tensors and plain "
                f"values; refused unread for safety (loading it could run code); {_MAKE}"
            ) from None
        raise _corrupt(path) from None
    except Exception:  # zip/EOF/format errors of every kind: all mean "not a readable target file"
        raise _corrupt(path) from None

    if isinstance(obj, dict) and obj.get("format") == "puppet-meta":
        raise PuppetError(
            f"{path}: is a meta-learned checkpoint, not a target; "
            f"make a target from it with "
            f"`python -m puppet.finetune PHOTO --checkpoint {path} --out FILE.pt`"
        )
    got = obj.get("version") if isinstance(obj, dict) else None
    # an older readable version passes as itself; anything else is checked against the current one
    readable = type(got) is int and got in READABLE_VERSIONS
    check_format(obj, path, FORMAT, got if readable else FORMAT_VERSION, "target file", _MAKE)

    try:
        config = obj["config"]
        gen = obj["generator"]
        psi = obj["psi"]
        lms = obj["ref_landmarks"]
        img = obj["ref_image"]
        meta = obj.get("meta", {})
        picture, box = obj.get("picture"), obj.get("crop_box")
        extra_imgs, extra_lms = obj.get("extra_images"), obj.get("extra_landmarks")
        face_size = obj.get("face_size")
        ok = (
            isinstance(config, dict)
            and "image_size" in config
            and isinstance(gen, dict)
            and gen
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in gen.items())
            and isinstance(psi, torch.Tensor)
            and psi.dim() == 2
            and psi.shape[0] == 1
            and isinstance(lms, torch.Tensor)
            and tuple(lms.shape) == (68, 2)
            and isinstance(img, torch.Tensor)
            and img.dtype == torch.uint8
            and img.dim() == 3
            and img.shape[2] == 3
            and isinstance(meta, dict)
            and (picture is None) == (box is None)
            and (picture is None or (isinstance(picture, torch.Tensor) and picture.dtype == torch.uint8
                                     and picture.dim() == 3 and picture.shape[2] == 3
                                     and min(picture.shape[:2]) > 0))
            and (box is None or (isinstance(box, (list, tuple)) and len(box) == 3
                                 and all(isinstance(v, (int, float)) and np.isfinite(v) for v in box)
                                 and box[2] > 0))
            and (extra_imgs is None) == (extra_lms is None)
            and (extra_imgs is None or (isinstance(extra_imgs, torch.Tensor)
                                        and extra_imgs.dtype == torch.uint8
                                        and tuple(extra_imgs.shape[1:]) == tuple(img.shape)
                                        and len(extra_imgs) > 0
                                        and isinstance(extra_lms, torch.Tensor)
                                        and tuple(extra_lms.shape) == (len(extra_imgs), 68, 2)))
            and (face_size is None or (type(face_size) is int and isinstance(config.get("image_size"), int)
                                       and config["image_size"] <= face_size <= max(MAX_FACE_SIZE,
                                                                                    config["image_size"])))
        )
    except KeyError:
        ok = False
    if not ok:
        raise PuppetError(
            f"{path}: target file is incomplete or malformed; re-make it with `python -m puppet.finetune`"
        )

    problem = _bad_numbers(config, gen, psi, lms, extra_lms, picture, img)
    if problem:
        raise PuppetError(f"{path}: {problem}; re-make it with `python -m puppet.finetune`")

    meta = dict(meta)
    meta["path"] = str(path)
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    return Target(
        config=get_config(config),
        generator=gen,
        psi=psi.float(),
        ref_landmarks=lms.float().numpy(),
        ref_image=img.numpy(),
        meta=meta,
        picture=None if picture is None else picture.numpy(),
        crop_box=None if box is None else tuple(float(v) for v in box),
        extra_images=None if extra_imgs is None else extra_imgs.numpy(),
        extra_landmarks=None if extra_lms is None else extra_lms.float().numpy(),
        face_size=face_size,
    )


def _bad_zip_entry(data: bytes) -> str | None:
    """What is damaged in a zip-format file (torch.save's): a checksum that doesn't match its entry, or an
    unreadable archive; None when intact, or when the data is not a zip (torch.load judges it then)."""
    import zipfile

    if not zipfile.is_zipfile(io.BytesIO(data)):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            name = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        return f"unreadable zip archive: {e}"
    # (the archive's top folder is whatever name torch.save wrote it under: leave it out)
    return None if name is None else f"checksum mismatch in {name.split('/', 1)[-1]}"


def _bad_numbers(config: dict, gen: dict, psi, lms, extra_lms, picture, img) -> str | None:
    """What is out of bounds in a target's numbers: a config beyond the sizes puppet supports (it would
    allocate without limit), or a NaN/inf in the weights, psi or landmarks; None when all is well."""
    try:
        cfg = get_config(config)
    except PuppetError as e:
        return f"its config is invalid ({e})"
    widths = [cfg.emb_dim, *cfg.e_channels, *cfg.g_down_channels, *cfg.g_up_channels, *cfg.d_channels]
    bounds = [
        ("image_size", cfg.image_size, 16, MAX_IMAGE_SIZE),
        ("net_size", cfg.inner_size, 16, MAX_IMAGE_SIZE),
        ("a channel width", max(widths), 1, MAX_WIDTH),
        ("g_res_blocks", cfg.g_res_blocks, 0, MAX_BLOCKS),
        ("d_res_blocks", cfg.d_res_blocks, 0, MAX_BLOCKS),
        ("the number of down/up blocks", max(len(cfg.e_channels), len(cfg.g_down_channels),
                                             len(cfg.g_up_channels), len(cfg.d_channels)),
         1, MAX_BLOCKS),
    ]
    for what, value, lo, hi in bounds:
        if not lo <= value <= hi:
            return f"config {what} is {value}, puppet supports {lo}..{hi}"
    size = cfg.image_size
    if tuple(img.shape[:2]) != (size, size):
        return f"its reference image is {img.shape[1]}x{img.shape[0]}, its config's image_size {size}"
    if picture is not None and max(picture.shape[:2]) > PICTURE_MAX_SIDE:
        return f"its picture is {picture.shape[1]}x{picture.shape[0]}, over {PICTURE_MAX_SIDE} a side"
    named = [("psi", psi), ("ref_landmarks", lms), ("extra_landmarks", extra_lms)]
    named += [(f"generator weight {k}", v) for k, v in gen.items()]
    for what, t in named:
        if t is not None and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return f"{what} holds NaN or infinite values"
    for what, t in (("ref_landmarks", lms), ("extra_landmarks", extra_lms)):
        if t is not None and float(t.abs().max()) > 4 * size:
            return f"{what} lie far outside the {size}x{size} crop (up to {float(t.abs().max()):.3g})"
    return None


def _corrupt(path: Path) -> PuppetError:
    return PuppetError(f"{path}: not a readable target file (corrupt or truncated?); {_MAKE}")

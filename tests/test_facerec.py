"""models.facerec: the torch port of face-api's 128-d face descriptor net, checked against face-api itself.

tests/data/faceapi/reference.json holds the descriptors face-api 1.7.15 (tfjs, Node) computed for the inputs
defined in INPUTS below: deterministic 150x150 crops of the two portraits that ship in packages (matplotlib's
grace_hopper.jpg, scikit-image's astronaut.png), downscaled by integer block averaging (exact in numpy) and
written to Node as raw RGB bytes, so both sides see identical pixels. To rebuild the references see
tests/data/faceapi/README.md (`python tests/test_facerec.py --write-inputs DIR`, then make_reference.js).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parent / "data" / "faceapi"
SIZE = 150

# name, image, x0, y0, crop side (a multiple of 150: block-averaged down to 150), horizontal flip.
INPUTS = [
    ("hopper_a", "grace_hopper", 116, 90, 300, False),
    ("hopper_a_flip", "grace_hopper", 116, 90, 300, True),
    ("hopper_b", "grace_hopper", 136, 104, 300, False),
    ("hopper_loose", "grace_hopper", 41, 13, 450, False),
    ("astronaut_a", "astronaut", 151, 45, 150, False),
    ("astronaut_a_flip", "astronaut", 151, 45, 150, True),
    ("astronaut_b", "astronaut", 141, 55, 150, False),
    ("astronaut_loose", "astronaut", 76, 0, 300, False),
]


def portrait(name: str) -> np.ndarray:
    """The packaged portrait as uint8 HxWx3 RGB (decoded by Pillow)."""
    from PIL import Image

    if name == "grace_hopper":
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    else:
        import skimage

        path = Path(os.path.dirname(skimage.__file__)) / "data" / "astronaut.png"
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def build_input(spec, cache: dict | None = None) -> np.ndarray:
    """One input of INPUTS as uint8 150x150x3 RGB."""
    _, image, x0, y0, side, flip = spec
    cache = {} if cache is None else cache
    if image not in cache:
        cache[image] = portrait(image)
    img = cache[image]
    crop = img[y0:y0 + side, x0:x0 + side].astype(np.float64)
    assert crop.shape == (side, side, 3) and side % SIZE == 0, spec
    k = side // SIZE
    small = crop.reshape(SIZE, k, SIZE, k, 3).mean(axis=(1, 3))
    out = np.floor(small + 0.5).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(out[:, ::-1] if flip else out)


def build_inputs() -> dict[str, np.ndarray]:
    cache: dict = {}
    return {spec[0]: build_input(spec, cache) for spec in INPUTS}


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> the project's 1x3xHxW float32 in [-1, 1]."""
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def write_inputs(folder: Path) -> None:
    """For make_reference.js: NAME.rgb (150*150*3 bytes, HWC RGB) per input, and inputs.json."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = []
    for spec, (name, rgb) in zip(INPUTS, build_inputs().items()):
        (folder / f"{name}.rgb").write_bytes(rgb.tobytes())
        meta.append({"name": name, "image": spec[1], "x0": spec[2], "y0": spec[3], "side": spec[4],
                     "flip": spec[5], "size": SIZE, "sha256": hashlib.sha256(rgb.tobytes()).hexdigest()})
    (folder / "inputs.json").write_text(json.dumps(meta, indent=1))


@pytest.fixture(scope="module")
def net():
    from models.facerec import load_face_recognition

    return load_face_recognition()


@pytest.fixture(scope="module")
def inputs():
    return build_inputs()


@pytest.fixture(scope="module")
def descriptors(net, inputs):
    batch = torch.cat([to_tensor(v) for v in inputs.values()])
    with torch.no_grad():
        d = net.descriptor(batch)
    return dict(zip(inputs, d))


def test_matches_face_api(inputs, descriptors):
    ref = json.loads((DATA / "reference.json").read_text())
    assert [r["name"] for r in ref["inputs"]] == [s[0] for s in INPUTS], "reference.json is for other inputs"
    report, bad = [], []
    for r in ref["inputs"]:
        name = r["name"]
        same_pixels = hashlib.sha256(inputs[name].tobytes()).hexdigest() == r["sha256"]
        want = torch.tensor(r["descriptor"], dtype=torch.float32)
        got = descriptors[name]
        cos = torch.nn.functional.cosine_similarity(got, want, dim=0).item()
        diff = (got - want).abs().max().item()
        note = "" if same_pixels else " (pixels differ from the reference's)"
        report.append(f"{name}: cos {cos:.6f} max|diff| {diff:.2e}{note}")
        if cos < 0.999:
            bad.append(report[-1])
    print("\n".join(report))
    assert not bad, "torch port differs from face-api: " + "; ".join(bad)


def test_same_person_closer_than_other(descriptors):
    from models.facerec import csim

    d = descriptors
    for a, flip, other in (("hopper_a", "hopper_a_flip", "astronaut_a"),
                           ("astronaut_a", "astronaut_a_flip", "hopper_a")):
        same = csim(d[a][None], d[flip][None]).item()
        diff = csim(d[a][None], d[other][None]).item()
        assert same > diff + 0.05, (a, same, diff)


def test_gradients_reach_input_any_size(net, inputs):
    from models.facerec import csim, descriptor, features

    x = torch.nn.functional.interpolate(to_tensor(inputs["hopper_a"]), size=(96, 96), mode="bilinear")
    x.requires_grad_(True)
    target = to_tensor(inputs["astronaut_a"])
    loss = (1 - csim(descriptor(x, net), descriptor(target, net))).sum()
    loss = loss + sum(f.abs().mean() for f in features(x, net))
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in net.parameters())
    shapes = [tuple(f.shape[1:]) for f in features(target, net)]
    assert shapes == [(32, 35, 35), (32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4), (256, 2, 2)]


def _copy_weights(tmp_path: Path) -> Path:
    from models.facerec import MANIFEST_FILE, WEIGHTS_DIR, WEIGHTS_FILE

    tmp_path.mkdir(parents=True)
    for f in (WEIGHTS_FILE, MANIFEST_FILE):
        (tmp_path / f).write_bytes((WEIGHTS_DIR / f).read_bytes())
    return tmp_path / WEIGHTS_FILE


def test_loader_errors(tmp_path):
    from models.errors import PuppetError
    from models.facerec import MANIFEST_FILE, load_face_recognition

    missing = tmp_path / "nothing" / "face_recognition_model.bin"
    with pytest.raises(PuppetError, match="missing") as e:
        load_face_recognition(missing)
    assert str(missing) in str(e.value) and "\n" not in str(e.value)

    altered = _copy_weights(tmp_path / "altered")
    data = bytearray(altered.read_bytes())
    data[1000] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(PuppetError, match="altered") as e:
        load_face_recognition(altered)
    assert str(altered) in str(e.value) and "\n" not in str(e.value)

    manifest_gone = _copy_weights(tmp_path / "nomanifest")
    (manifest_gone.parent / MANIFEST_FILE).unlink()
    with pytest.raises(PuppetError, match="missing") as e:
        load_face_recognition(manifest_gone)
    assert MANIFEST_FILE in str(e.value)

    manifest_edit = _copy_weights(tmp_path / "manifest")
    m = manifest_edit.parent / MANIFEST_FILE
    m.write_text(m.read_text().replace('"min":-0.07101876902229645', '"min":-0.071'))
    with pytest.raises(PuppetError, match="altered") as e:
        load_face_recognition(manifest_edit)
    assert str(m) in str(e.value)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-inputs":
        write_inputs(Path(sys.argv[2]))
    else:
        sys.exit("usage: python tests/test_facerec.py --write-inputs DIR")

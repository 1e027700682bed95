"""The target file: round trip, and refusal (one line, nothing run) of everything that isn't one."""

import copy

import numpy as np
import pytest
import torch

from models.config import get_config
from models.generator import Generator
from models.spectral import has_spectral_norm, remove_spectral_norm
from puppet.errors import PuppetError
from puppet.target import FORMAT_VERSION, Target, load_target, save_target


def _target(seed=0) -> tuple[Target, Generator]:
    torch.manual_seed(seed)
    G = Generator("tiny")
    # a fine-tuned psi is far from 0; random values exercise the AdaIN folding
    psi = torch.randn(1, G.n_adain) * 0.3
    G_plain = remove_spectral_norm(copy.deepcopy(G).eval())
    rng = np.random.default_rng(seed)
    t = Target(
        config=G.cfg,
        generator=G_plain.state_dict(),
        psi=psi,
        ref_landmarks=rng.uniform(10, 54, size=(68, 2)).astype(np.float32),
        ref_image=rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8),
        meta={"sources": ["a.jpg"], "steps": 3},
    )
    return t, G.eval()


def _one_line_naming(err: pytest.ExceptionInfo, path) -> str:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def test_round_trip_gives_identical_outputs(tmp_path):
    t, G = _target()
    path = tmp_path / "mona.pt"
    save_target(path, t)
    back = load_target(path)
    assert back.config == t.config
    assert torch.equal(back.psi, t.psi)
    np.testing.assert_array_equal(back.ref_landmarks, t.ref_landmarks)
    np.testing.assert_array_equal(back.ref_image, t.ref_image)
    assert back.ref_image.dtype == np.uint8 and back.ref_landmarks.dtype == np.float32
    assert back.meta["sources"] == ["a.jpg"] and back.meta["steps"] == 3
    assert back.generator.keys() == t.generator.keys()
    assert not any("parametrizations" in k for k in back.generator)  # spectral norm is folded in

    y = torch.rand(2, 3, 64, 64) * 2 - 1
    pg_mem, pg_file = t.person_generator(), back.person_generator()
    assert not pg_file.training and not has_spectral_norm(pg_file)
    with torch.no_grad():
        a, b = pg_mem(y), pg_file(y)
        ref = G(y, t.psi.expand(2, -1))  # the generator it came from, spectral norm and P still in place
    assert torch.equal(a, b)
    assert (a - ref).abs().max() < 1e-5


def test_pickle_payload_is_refused_and_never_runs(tmp_path):
    class Payload:
        def __init__(self, marker):
            self.marker = marker

        def __reduce__(self):  # unpickling calls open(marker, "w"): it creates the file
            return (open, (str(self.marker), "w"))

    t, _ = _target()
    good = tmp_path / "good.pt"
    save_target(good, t)
    obj = torch.load(good, weights_only=True)

    # control: the payload is real (a plain unpickle creates its marker file)
    control_marker = tmp_path / "control-created"
    control = tmp_path / "control.pt"
    torch.save({**obj, "meta": {"x": Payload(control_marker)}}, control)
    torch.load(control, weights_only=False)
    assert control_marker.exists()

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({**obj, "meta": {"x": Payload(marker)}}, evil)
    with pytest.raises(PuppetError) as err:
        load_target(evil)
    msg = _one_line_naming(err, evil)
    assert "pickled object" in msg
    assert not marker.exists()


def test_truncated_corrupt_and_missing_files_are_refused(tmp_path):
    t, _ = _target()
    good = tmp_path / "good.pt"
    save_target(good, t)
    data = good.read_bytes()
    cases = {
        "truncated.pt": data[: len(data) // 2],
        "head.pt": data[:100],
        "empty.pt": b"",
        "noise.pt": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text.pt": b"hello, I am not a target\n",
    }
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(PuppetError) as err:
            load_target(p)
        assert "corrupt or truncated" in _one_line_naming(err, p)
    with pytest.raises(PuppetError) as err:
        load_target(tmp_path / "missing.pt")
    assert "no such target file" in _one_line_naming(err, tmp_path / "missing.pt")


def test_wrong_kind_and_version_are_refused(tmp_path):
    t, _ = _target()
    good = tmp_path / "good.pt"
    save_target(good, t)
    obj = torch.load(good, weights_only=True)
    cases = {
        "meta.pt": ({"format": "puppet-meta", "version": 1, "config": t.config.to_dict()},
                    "meta-learned checkpoint"),
        "weights.pt": (t.generator, "not a puppet target"),  # a random state-dict .pt
        "tensor.pt": (torch.zeros(3), "not a puppet target"),
        "newer.pt": ({**obj, "version": FORMAT_VERSION + 1}, "upgrade puppet"),
        "older.pt": ({**obj, "version": 0}, "re-make it"),
        "noversion.pt": ({k: v for k, v in obj.items() if k != "version"}, "re-make it"),
        "nopsi.pt": ({k: v for k, v in obj.items() if k != "psi"}, "incomplete or malformed"),
        "badlms.pt": ({**obj, "ref_landmarks": torch.zeros(5, 2)}, "incomplete or malformed"),
    }
    for name, (content, expect) in cases.items():
        p = tmp_path / name
        torch.save(content, p)
        with pytest.raises(PuppetError) as err:
            load_target(p)
        assert expect in _one_line_naming(err, p), name


def test_generator_that_does_not_match_its_config_is_refused(tmp_path):
    t, _ = _target()
    t.config = t.config.replace(g_res_blocks=2)
    p = tmp_path / "mismatch.pt"
    save_target(p, t)
    with pytest.raises(PuppetError) as err:
        load_target(p).person_generator()
    assert "don't match" in _one_line_naming(err, p)


def test_few_shot_target_keeps_its_references_and_warps_the_nearest(tmp_path):
    """A target with extra references saves and loads them; its feeder warps, at each reference's own
    landmarks, that reference unchanged; the nearest reference in shape is the one warped."""
    from puppet.faces.images import to_tensor
    from puppet.faces.pose import Motion, move
    from puppet.feed import Feeder
    from puppet.target import load_target

    t, _ = _target()
    rng = np.random.default_rng(1)
    base = np.array([[20 + (i % 17) * 1.5, 20 + (i // 17) * 6.0] for i in range(68)], np.float32)
    base[36], base[45], base[0], base[16] = (24, 30), (40, 30), (18, 32), (46, 32)
    opened = move(base, Motion(mouth=1.0)).astype(np.float32)
    t.ref_landmarks = base
    t.extra_images = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    t.extra_landmarks = opened[None]
    t.__post_init__()
    save_target(tmp_path / "few.pt", t)
    back = load_target(tmp_path / "few.pt")
    assert back.n_references == 2
    np.testing.assert_array_equal(back.extra_images, t.extra_images)
    np.testing.assert_array_equal(back.extra_landmarks, t.extra_landmarks)
    feeder = Feeder(back)
    np.testing.assert_array_equal(feeder.warped(opened), t.extra_images[0])
    np.testing.assert_array_equal(feeder.warped(base), t.ref_image)
    warp_feeder = Feeder(Target(get_config("tiny-warp"), {}, back.psi, back.ref_landmarks, back.ref_image,
                                extra_images=back.extra_images, extra_landmarks=back.extra_landmarks))
    assert torch.equal(warp_feeder(opened).tensors[1], to_tensor(t.extra_images[0]))  # what G is fed
    assert back.nearest_reference(move(base, Motion(mouth=0.2))) == 0
    assert back.nearest_reference(move(base, Motion(mouth=0.8))) == 1


def test_extra_references_must_match_the_reference(tmp_path):
    """Extra references of another size, or images without landmarks, are refused before anything is
    written."""
    t, _ = _target()
    with pytest.raises(ValueError, match="together"):
        Target(t.config, t.generator, t.psi, t.ref_landmarks, t.ref_image,
               extra_images=np.zeros((1, 64, 64, 3), np.uint8))
    bad = Target(t.config, t.generator, t.psi, t.ref_landmarks, t.ref_image,
                 extra_images=np.zeros((1, 32, 32, 3), np.uint8), extra_landmarks=np.zeros((1, 68, 2)))
    with pytest.raises(ValueError, match="crops like ref_image"):
        save_target(tmp_path / "bad.pt", bad)
    assert not (tmp_path / "bad.pt").exists()


def test_version_2_files_load_with_one_reference(tmp_path):
    t, _ = _target()
    save_target(tmp_path / "new.pt", t)
    obj = torch.load(tmp_path / "new.pt", weights_only=True)
    assert obj["version"] == FORMAT_VERSION and "extra_images" not in obj
    torch.save({**obj, "version": 2}, tmp_path / "v2.pt")
    old = load_target(tmp_path / "v2.pt")
    assert old.n_references == 1 and old.extra_images is None
    np.testing.assert_array_equal(old.ref_image, t.ref_image)


def test_face_size_round_trip_and_older_files_keep_the_generated_size(tmp_path, astronaut_path):
    """face_size is saved and read back; a file without it (an older target) loads with None,
    which the live loop reads as the generator's own size; out-of-range values are refused."""
    from _util import random_target

    from puppet.target import MAX_FACE_SIZE, default_face_size

    t = random_target(config="tiny-warp", photo=astronaut_path)
    assert t.face_size is None
    native = default_face_size(t.config, t.picture)
    assert native == MAX_FACE_SIZE
    assert default_face_size(_target()[0].config, t.picture) is None  # no appearance path
    assert default_face_size(t.config, None) is None  # no picture to cut a larger crop from
    t.face_size = native
    t.__post_init__()
    save_target(tmp_path / "face.pt", t)
    assert load_target(tmp_path / "face.pt").face_size == native

    obj = torch.load(tmp_path / "face.pt", weights_only=True)
    del obj["face_size"]
    torch.save(obj, tmp_path / "older.pt")
    assert load_target(tmp_path / "older.pt").face_size is None

    for bad in (32, MAX_FACE_SIZE + 1, 300.0):
        torch.save({**obj, "face_size": bad}, tmp_path / "bad.pt")
        with pytest.raises(PuppetError) as err:
            load_target(tmp_path / "bad.pt")
        assert "malformed" in _one_line_naming(err, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match="face_size"):
            Target(t.config, t.generator, t.psi, t.ref_landmarks, t.ref_image, face_size=bad)


def test_feeder_reference_is_the_photo_cut_at_the_face_size(astronaut_path):
    """At a larger face size the reference is cut again from the picture (sharper than the stored crop
    upscaled), its landmarks scaled with it; the warp at the reference's landmarks is that crop."""
    import cv2
    from _util import random_target

    from puppet.feed import Feeder
    from puppet.target import to_size

    t = random_target(config="tiny-warp", photo=astronaut_path)
    feeder = Feeder(t, 256)
    img, lms = feeder.reference(0, 256)
    assert img.shape == (256, 256, 3)
    np.testing.assert_array_equal(img, t.crop.apply(t.picture, 256))
    np.testing.assert_allclose(lms, t.crop.to_crop(t.crop.from_crop(t.ref_landmarks, 64), 256), atol=1e-3)
    np.testing.assert_allclose(to_size(lms, 256, 64), t.ref_landmarks, atol=1e-4)
    upscaled = cv2.resize(t.ref_image, (256, 256), interpolation=cv2.INTER_CUBIC)
    sharp = lambda x: cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()  # noqa: E731
    assert sharp(img) > 3 * sharp(upscaled)
    np.testing.assert_array_equal(feeder.warped(t.ref_landmarks), img)
    assert feeder.reference(0, 64)[0] is t.ref_image  # the generator's size: the stored crop itself


def _saved_with(tmp_path, name, **changes):
    """A good target file re-saved (torch.save, as a malicious or broken tool would) with `changes`."""
    t, _ = _target()
    good = tmp_path / "good.pt"
    save_target(good, t)
    obj = torch.load(good, weights_only=True)
    p = tmp_path / name
    torch.save({**obj, **changes}, p)
    return p, obj


@pytest.mark.parametrize("field,expect", [
    ("ref_landmarks", "ref_landmarks holds NaN"),
    ("psi", "psi holds NaN"),
    ("generator", "generator weight"),
])
def test_nan_numbers_are_refused_on_load(tmp_path, field, expect):
    _, obj = _saved_with(tmp_path, "x.pt")
    value = obj[field]
    if field == "generator":
        value = dict(value)
        key = next(k for k, v in value.items() if v.is_floating_point())
        value[key] = value[key].clone()
        value[key].view(-1)[0] = float("inf")
    else:
        value = value.clone()
        value.view(-1)[3] = float("nan")
    p, _ = _saved_with(tmp_path, "bad.pt", **{field: value})
    with pytest.raises(PuppetError) as err:
        load_target(p)
    assert expect in _one_line_naming(err, p)


def test_configs_beyond_supported_sizes_are_refused_before_allocating(tmp_path):
    t, _ = _target()
    for change, expect in [({"image_size": 65536}, "image_size is 65536, puppet supports 16..1024"),
                           ({"g_down_channels": [8, 16, 1 << 20]}, "channel width is 1048576"),
                           ({"g_res_blocks": 10_000}, "g_res_blocks is 10000")]:
        p, _ = _saved_with(tmp_path, "big.pt", config={**t.config.to_dict(), **change})
        with pytest.raises(PuppetError) as err:
            load_target(p)
        assert expect in _one_line_naming(err, p)


def test_landmarks_far_outside_the_crop_and_a_mismatched_reference_are_refused(tmp_path):
    t, _ = _target()
    p, _ = _saved_with(tmp_path, "far.pt", ref_landmarks=torch.full((68, 2), 1e9))
    with pytest.raises(PuppetError) as err:
        load_target(p)
    assert "ref_landmarks lie far outside" in _one_line_naming(err, p)
    p, _ = _saved_with(tmp_path, "img.pt", ref_image=torch.zeros(32, 32, 3, dtype=torch.uint8))
    with pytest.raises(PuppetError) as err:
        load_target(p)
    assert "reference image is 32x32" in _one_line_naming(err, p)


def test_corrupted_bytes_inside_are_caught_by_the_zip_checksums(tmp_path):
    t, _ = _target()
    good = tmp_path / "good.pt"
    save_target(good, t)
    data = bytearray(good.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0x5A for b in data[mid:mid + 64])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(PuppetError) as err:
        load_target(bad)
    assert "damaged (checksum mismatch in" in _one_line_naming(err, bad)


def test_a_symlink_loop_is_one_line(tmp_path):
    loop = tmp_path / "loop.pt"
    loop.symlink_to(loop)
    with pytest.raises(PuppetError) as err:
        load_target(loop)
    assert "symbolic link that leads to no file" in _one_line_naming(err, loop)


def test_targets_keep_file_names_not_the_makers_folders(tmp_path):
    t, _ = _target()
    t.meta = {"sources": ["/home/alice/photos/me.jpg", "clips/talk.mp4#3"],
              "checkpoint": "/home/alice/.venv/lib/puppet/meta_cpu_warp.pt", "steps": 3, "note": "a/b"}
    p = tmp_path / "t.pt"
    save_target(p, t)
    assert b"/home/alice" not in p.read_bytes() and b"clips/" not in p.read_bytes()
    meta = load_target(p).meta
    assert meta["sources"] == ["me.jpg", "talk.mp4#3"]
    assert meta["checkpoint"] == "meta_cpu_warp.pt" and meta["note"] == "a/b" and meta["steps"] == 3


def test_a_name_too_long_for_the_file_system_is_one_line(tmp_path):
    p = tmp_path / ("x" * 5000)
    with pytest.raises(PuppetError) as err:
        load_target(p)
    assert "File name too long" in _one_line_naming(err, p)

"""The target file: round trip, and refusal (one line, nothing run) of everything that isn't one."""

import copy

import numpy as np
import pytest
import torch

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
        "meta.pt": ({"format": "puppet-meta", "version": 1, "config": t.config}, "meta-learned checkpoint"),
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
    t.config = {**t.config, "g_res_blocks": 2}
    p = tmp_path / "mismatch.pt"
    save_target(p, t)
    with pytest.raises(PuppetError) as err:
        load_target(p).person_generator()
    assert "don't match" in _one_line_naming(err, p)

"""Generator runtimes and the TensorRT engine cache.

No machine here has TensorRT: the cache logic is tested on plain files with the TensorRT version and GPU given
as strings (that tests the key, it does not pretend an engine was built), and `python -m export.trt` is run
for its one-line error.
"""

import importlib.util
import logging

import pytest
import torch
from _util import random_target

from export.cache import timing_cache_path, write_engine
from export.checks import sample_inputs
from puppet import artifacts
from puppet.artifacts import (
    ROUTE_FP16_FLAG,
    ROUTE_STRONG,
    BuildSettings,
    DeviceIdentity,
    default_engine_path,
    engine_key,
    is_fresh,
    load_fresh_engine,
    route_for,
    sidecar_path,
)
from puppet.errors import PuppetError
from puppet.live.runtime import auto_backend_name, load_backend
from puppet.target import load_target, save_target

H200 = DeviceIdentity("10.13.3", "NVIDIA H200", "9.0")
SHA = "ab" * 32


@pytest.fixture(scope="module")
def target_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("rt") / "mona.pt"
    save_target(path, random_target())
    return path


# ------------------------------------------------------------------------------------------ engine cache

def test_engine_key_changes_with_tensorrt_gpu_model_and_settings():
    base = engine_key(H200, SHA, BuildSettings())
    assert base == engine_key(DeviceIdentity("10.13.3", "NVIDIA H200", "9.0"), SHA, BuildSettings())
    variants = [
        engine_key(DeviceIdentity("10.13.2", "NVIDIA H200", "9.0"), SHA, BuildSettings()),  # TensorRT
        engine_key(DeviceIdentity("11.0.0", "NVIDIA H200", "9.0"), SHA, BuildSettings()),
        engine_key(DeviceIdentity("10.13.3", "NVIDIA GeForce RTX 4090", "8.9"), SHA, BuildSettings()),  # GPU
        engine_key(DeviceIdentity("10.13.3", "NVIDIA H200", "9.1"), SHA, BuildSettings()),
        engine_key(H200, "cd" * 32, BuildSettings()),  # the ONNX file
        engine_key(H200, SHA, BuildSettings(precision="fp32")),  # settings
        engine_key(H200, SHA, BuildSettings(workspace_gb=8.0)),
        engine_key(H200, SHA, BuildSettings(route=ROUTE_FP16_FLAG)),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_stale_or_foreign_engine_is_never_loaded(tmp_path):
    path = tmp_path / "mona.engine"
    key = engine_key(H200, SHA, BuildSettings())
    write_engine(path, b"serialized engine bytes", key, {"note": "plain bytes: the cache logic only"})
    assert is_fresh(path, key) and load_fresh_engine(path, key) == b"serialized engine bytes"
    # another GPU / TensorRT / ONNX: a different key, so not loaded (the caller rebuilds)
    foreign = engine_key(DeviceIdentity("10.13.3", "NVIDIA L4", "8.9"), SHA, BuildSettings())
    assert not is_fresh(path, foreign) and load_fresh_engine(path, foreign) is None
    # the file replaced behind the cache's back (its sha256 differs from the sidecar's)
    path.write_bytes(b"something else")
    assert not is_fresh(path, key) and load_fresh_engine(path, key) is None
    # an engine without a sidecar (e.g. killed between the two writes) is not trusted either
    write_engine(path, b"serialized engine bytes", key)
    sidecar_path(path).unlink()
    assert load_fresh_engine(path, key) is None
    sidecar_path(path).write_text("{not json")
    assert load_fresh_engine(path, key) is None
    # a rebuild replaces engine and sidecar together
    write_engine(path, b"new engine", foreign)
    assert load_fresh_engine(path, foreign) == b"new engine" and load_fresh_engine(path, key) is None


def test_timing_cache_and_engine_names(tmp_path):
    a = timing_cache_path(tmp_path / "mona.engine", H200)
    b = timing_cache_path(tmp_path / "mona.engine", DeviceIdentity("10.13.3", "NVIDIA L4", "8.9"))
    assert a != b and a.parent == tmp_path and a.name.startswith("mona.engine.")
    assert default_engine_path(tmp_path / "mona.pt") == tmp_path / "mona.engine"
    assert default_engine_path(tmp_path / "mona.fp16.onnx") == tmp_path / "mona.engine"


def test_route_follows_tensorrt_version():
    assert route_for("10.0.1") == route_for("10.11.0.33") == ROUTE_FP16_FLAG
    assert route_for("10.12.0.36") == route_for("10.13.3") == route_for("11.0.0") == ROUTE_STRONG


def test_trt_cli_without_tensorrt_or_gpu_is_one_line_exit_2(target_path, capsys):
    """Through run_cli in this process (test_trt.py runs export.trt as a real process)."""
    from export.trt import main
    from puppet.errors import run_cli

    has_trt = importlib.util.find_spec("tensorrt") is not None
    if has_trt and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are here: the command would build an engine")
    with pytest.raises(SystemExit) as e:
        run_cli(main, ["--target", str(target_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert ('pip install "puppet[trt]"' if not has_trt else "no CUDA GPU") in err
    assert not default_engine_path(target_path).exists()


# ------------------------------------------------------------------------------------------ backends

def test_torch_and_onnxruntime_backends_give_the_same_image(target_path):
    target = load_target(target_path)
    torch_b = load_backend("torch", target_path, device="cpu", verbose=False)
    ort_b = load_backend("onnxruntime", target_path, device="cpu", verbose=False)
    assert (torch_b.name, ort_b.name) == ("torch", "onnxruntime")
    assert "CPU" in torch_b.describe() and "CPU" in ort_b.describe()
    assert torch_b.inputs == ort_b.inputs == ("sketch",)
    for sketch, in sample_inputs(target, n=2):
        a, b = torch_b.generate(sketch), ort_b.generate(sketch)
        assert a.shape == b.shape == (1, 3, 64, 64) and a.dtype == b.dtype == torch.float32
        assert a.device.type == b.device.type == "cpu"
        assert (a - b).abs().max().item() <= 1e-4
        assert a.abs().max() > 0.1  # a real image, not a blank
    # a Target made in memory works too (saved to the export cache, exported there)
    obj_b = load_backend("onnxruntime", random_target(seed=3), device="cpu", verbose=False)
    again = load_backend("onnxruntime", random_target(seed=3), device="cpu", verbose=False)
    assert again.onnx_path == obj_b.onnx_path  # the same content finds its export, not a new one
    sketch, = sample_inputs(target, n=1)[0]
    direct = load_backend("torch", random_target(seed=3), device="cpu", verbose=False)
    assert (obj_b.generate(sketch) - direct.generate(sketch)).abs().max().item() <= 1e-4
    for b in (torch_b, ort_b):
        with pytest.raises(ValueError, match=r"sketch must be a \(1, 3, 64, 64\) float32"):
            b.generate(torch.zeros(1, 3, 32, 32))
        with pytest.raises(ValueError, match="takes sketch"):  # a second input it doesn't take
            b.generate(sketch, torch.zeros(1, 3, 64, 64))


def test_warp_target_gives_the_same_image_on_torch_and_onnxruntime(target_path, tmp_path):
    """The appearance generator takes (sketch, warped) on every CPU backend, and nothing else."""
    path = tmp_path / "warp.pt"
    save_target(path, random_target(config="tiny-warp"))
    target = load_target(path)
    torch_b = load_backend("torch", path, device="cpu", verbose=False)
    ort_b = load_backend("onnxruntime", path, device="cpu", verbose=False)
    assert torch_b.inputs == ort_b.inputs == ("sketch", "warped")
    # what a TensorRT engine built from that file binds its inputs by (its own I/O order need not be it)
    assert artifacts.onnx_signature(ort_b.onnx_path) == ("fp32", ("sketch", "warped"))
    for sketch, warped in sample_inputs(target, n=2):
        a, b = torch_b.generate(sketch, warped), ort_b.generate(sketch, warped)
        assert a.shape == b.shape == (1, 3, 64, 64) and a.dtype == b.dtype == torch.float32
        assert (a - b).abs().max().item() <= 1e-4
        assert (a - torch_b.generate(sketch, torch.zeros_like(warped))).abs().max() > 0.1  # warped counts
    for b in (torch_b, ort_b):
        with pytest.raises(ValueError, match="takes sketch and warped"):
            b.generate(sketch)
        with pytest.raises(ValueError, match=r"warped must be a \(1, 3, 64, 64\)"):
            b.generate(sketch, warped[:, :, :32, :32])


def test_untrained_warp_generator_gives_back_its_warped_input(tmp_path):
    """The appearance path keeps detail from the first step: an untrained warp generator (delta head at zero)
    gives back its warped input, here a warp of pure noise (all fine detail), on both CPU backends.
    The paper's generator would have to draw that detail from the sketch and 512 numbers."""
    from puppet.faces.images import to_tensor

    path = tmp_path / "untrained.pt"
    save_target(path, random_target(config="tiny-warp", delta=None))
    target = load_target(path)
    for name in ("torch", "onnxruntime"):
        backend = load_backend(name, path, device="cpu", verbose=False)
        for sketch, warped in sample_inputs(target, n=2):
            out = backend.generate(sketch, warped)
            l1 = (out - warped).abs().mean().item()
            assert l1 < 1e-3, (name, l1)  # float rounding only; noise itself is ~1 from 0
            # it follows the warp, not the unmoved picture (the warps really move the noise)
            assert l1 < 0.1 * (out - to_tensor(target.ref_image)).abs().mean().item()


@pytest.mark.parametrize("gpu, trt, device, picked", [
    (True, True, None, "tensorrt"),  # TensorRT imports and a GPU is there
    (True, True, "cuda:0", "tensorrt"),
    (True, False, None, "torch"),  # a GPU without TensorRT
    (True, True, "cpu", "onnxruntime"),  # --device cpu wins over the GPU
    (False, False, None, "onnxruntime"),  # no GPU
    (False, False, "auto", "onnxruntime"),
])
def test_auto_rule(monkeypatch, gpu, trt, device, picked):
    """`auto` follows the module's rule on the machine's facts (stood in here), not on this machine's."""
    from puppet.live import runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(runtime, "tensorrt_available", lambda: trt)
    assert auto_backend_name(device) == picked


def test_auto_names_a_bad_device_in_one_line():
    with pytest.raises(PuppetError, match="--device gpu0: unknown; use auto, cpu, cuda or cuda:N"):
        auto_backend_name("gpu0")


def test_auto_picks_and_says_so(target_path, caplog):
    expected = auto_backend_name()  # its rule: test_auto_rule; here, that load_backend follows it and logs it
    if not torch.cuda.is_available():
        assert expected == "onnxruntime"
    logger = logging.getLogger("puppet.live.runtime")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="puppet.live.runtime"):
            backend = load_backend("auto", target_path)
    finally:
        logger.removeHandler(caplog.handler)
    assert backend.name == expected
    assert f"auto picked {expected}" in caplog.text


def test_unknown_or_unavailable_backend_is_a_one_line_error(target_path):
    with pytest.raises(PuppetError, match="unknown backend") as e:
        load_backend("openvino", target_path)
    assert "\n" not in str(e.value)
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(PuppetError, match=r'pip install "puppet\[trt\]"'):
            load_backend("tensorrt", target_path)
    if not torch.cuda.is_available():
        with pytest.raises(PuppetError, match="no CUDA GPU"):
            load_backend("torch", target_path, device="cuda")

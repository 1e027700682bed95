"""TensorRT's API as export/trt.py and the tensorrt backend use it, checked without TensorRT or a GPU.

For each TensorRT version in _trt_bindings.VERSIONS:
- the real compiled bindings (PyPI's tensorrt-cu12-bindings wheel, fetched into .cache/trt-wheels by .ci/run)
  are imported in a subprocess against a null stand-in for TensorRT's libraries, and _trt_api_check.py checks
  every TensorRT name the code uses (enums, classes, methods and their pybind11 signatures, properties) and
  runs the code that needs no engine (route, network flags, the progress monitor, buffer binding);
- mypy checks export/trt.py and puppet/live/runtime.py against the stubs of those bindings
  (tests/trt_stubs/, generated).

Names and signatures only: no engine is built or run here (no machine here can). The checks skip only when
the wheels are not fetched (tests download nothing); a missing C compiler or a failed check fails.
"""

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest
from _trt_bindings import ROOT, STUBS, VERSIONS, Unavailable, prepare

TRT_CODE = ["export/trt.py", "puppet/live/runtime.py"]


@pytest.fixture(scope="module")
def bindings(tmp_path_factory):
    made: dict[str, dict[str, str]] = {}

    def get(version: str) -> dict[str, str]:
        if version not in made:
            try:
                made[version] = prepare(version, tmp_path_factory.mktemp(f"trt-{version}"))
            except Unavailable as e:
                pytest.skip(f"TensorRT {version}'s bindings wheel is not fetched: {e}")
        return made[version]

    return get


def test_tensorrt_stubs_is_not_installed():
    """tensorrt-stubs makes `import tensorrt` succeed as an empty package; ours are in tests/trt_stubs/."""
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("tensorrt-stubs")


@pytest.mark.parametrize("version", VERSIONS)
def test_names_and_signatures_against_real_bindings(version, bindings):
    env = bindings(version)
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "_trt_api_check.py")], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"TensorRT {version}:\n{r.stderr[-4000:]}"
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["tensorrt"] == version
    assert summary["checks"] > 100 and summary["names_in_code"] > 20


CANARY = """\
import tensorrt as trt


def misuse(config: trt.IBuilderConfig, engine: trt.ICudaEngine) -> None:
    config.set_timing_cache(config.create_timing_cache(b""))  # the ignore_mismatch argument is missing
    engine.get_binding_name(0)  # TensorRT 8's API, gone in 10
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_mypy_against_stubs(version):
    stubs = STUBS / f"trt-{version}"
    assert (stubs / "tensorrt" / "__init__.pyi").is_file(), f"{stubs}: python tests/_trt_bindings.py stubs"
    cache = ROOT / ".cache" / "mypy" / version  # ignored by git; a fixed canary path keeps mypy's cache right
    canary = cache / "canary" / "trt_canary.py"
    canary.parent.mkdir(parents=True, exist_ok=True)
    canary.write_text(CANARY)
    env = {**os.environ, "MYPYPATH": str(stubs)}
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache), *TRT_CODE, str(canary)],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in r.stdout.splitlines() if ": error:" in line]
    ours = [line for line in lines if canary.name not in line]
    assert not ours, f"mypy against TensorRT {version}'s stubs:\n" + "\n".join(ours)
    # the stubs are in force: the canary's two misuses are caught (an unresolved `tensorrt` would pass them)
    assert len(lines) == 2, r.stdout + r.stderr
    assert "set_timing_cache" in lines[0] and "get_binding_name" in lines[1]

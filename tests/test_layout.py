"""The package layout: one dependency direction between the top-level packages, and a live path that never
imports the exporter."""

import ast
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["models", "puppet", "export", "bench"]  # each may import only those before it


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_no_package_imports_a_higher_one():
    bad = []
    for rank, package in enumerate(ORDER):
        higher = set(ORDER[rank + 1:])
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in sorted(_imports(path) & higher):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_live_path_does_not_import_export():
    code = ("import sys, puppet.live.runtime, puppet.live.loop, puppet.live.app; "
            "print(sorted(m for m in sys.modules if m == 'export' or m.startswith('export.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"


COMMANDS = ("puppet.live", "puppet.train", "puppet.finetune", "puppet.prepare", "puppet.demo", "export.onnx",
            "export.trt", "bench", "bench.quality", "bench.cuda_parity")


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # runpy on an imported module
@pytest.mark.parametrize("module", COMMANDS)
def test_a_bad_flag_is_one_line_with_exit_2_for_every_command(module, monkeypatch, capfd):
    """`python -m MODULE --no-such-flag`, its `__main__` run in this process (runpy, as `-m` does; capfd also
    sees what a library writes to the file descriptor): exit 2 and one line, no usage text. The process
    boundary itself (exit status, nothing else on stderr) is checked by each command's own tests."""
    monkeypatch.setattr(sys, "argv", [module, "--no-such-flag"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert e.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (module, err)
    assert "usage:" not in err, module


@pytest.mark.parametrize("module", ["bench", "bench.cuda_parity"])
def test_a_bad_flag_as_a_real_process(module):
    """The same through a real `python -m` for the commands no other test starts as a process (the others'
    own tests do: exit status 2, one line, nothing a library adds at import or exit)."""
    r = subprocess.run([sys.executable, "-m", module, "--no-such-flag"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr

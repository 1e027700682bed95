"""TensorRT's real Python bindings, importable on a machine without TensorRT or a GPU.

NVIDIA publishes the compiled bindings of every TensorRT release on PyPI as a small wheel of their own,
`tensorrt-cu12-bindings` (about 1.2 MB: `tensorrt_bindings/tensorrt.so`, the pybind11 module); the `tensorrt`
package users import is a two-line shim over it (`from tensorrt_bindings import *`), and the libraries the
module links to (libnvinfer, libnvonnxparser, libnvinfer_plugin: hundreds of MB) come from NVIDIA's own index.
Those libraries are replaced here by a null stand-in: a tiny C library, compiled at test time, that defines
every entry point the module needs from them (found with `nm -D --undefined-only`), each returning null / 0.

That is enough to import the real module and check every enum, class, method, property and signature
(pybind11 writes each signature into the docstring), and to run code that needs no engine. It builds
nothing and runs nothing on a GPU: `trt.Builder(logger)` raises (the factory returns null).

Used by tests/test_trt_api.py, and by hand to regenerate the type stubs in stubs/:

    python tests/_trt_bindings.py stubs     # needs pybind11-stubgen (pip install pybind11-stubgen)
"""

from __future__ import annotations

import ast
import ctypes
import keyword
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".cache" / "trt-wheels"  # ignored by git
STUBS = ROOT / "stubs"

# One release per API the code has to handle: the first 10.x; the last 10.x built with BuilderFlag.FP16 (the
# weakly typed route); the first release export.trt builds strongly typed; the newest 11.x (strongly typed
# always, BuilderFlag.FP16 and OBEY_PRECISION_CONSTRAINTS gone, STRONGLY_TYPED deprecated with a new value).
VERSIONS = ("10.0.1", "10.11.0.33", "10.12.0.36", "11.4.0.106")
PACKAGE = "tensorrt-cu12-bindings"

# NVIDIA's shim, as the `tensorrt-cu12` package installs it (tensorrt/__init__.py).
SHIM = "from tensorrt_bindings import *\nfrom tensorrt_bindings import __version__\n"


class Unavailable(Exception):
    """The wheels could not be downloaded (no network, no index): the only reason to skip these checks."""


def wheel(version: str, timeout: float = 60) -> Path:
    """The bindings wheel of `version` for this interpreter, from the cache or downloaded into it."""
    WHEELS.mkdir(parents=True, exist_ok=True)
    dist = PACKAGE.replace("-", "_")
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    found = sorted(WHEELS.glob(f"{dist}-{version}-{tag}-*.whl"))
    if found:
        return found[-1]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
           "--disable-pip-version-check", "--timeout", "20", "--retries", "1", "-d", str(WHEELS),
           f"{PACKAGE}=={version}"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"pip download {PACKAGE}=={version}: no answer in {timeout:.0f} s") from None
    found = sorted(WHEELS.glob(f"{dist}-{version}-{tag}-*.whl"))
    if r.returncode != 0 or not found:
        last = [line for line in (r.stderr + r.stdout).splitlines() if line.strip()][-1:]
        raise Unavailable(f"pip download {PACKAGE}=={version} failed: {' '.join(last) or r.returncode}")
    return found[-1]


def unpack(whl: Path, dest: Path) -> Path:
    """The wheel's `tensorrt_bindings` plus NVIDIA's `tensorrt` shim under `dest` (a PYTHONPATH entry)."""
    with zipfile.ZipFile(whl) as z:
        z.extractall(dest)
    (dest / "tensorrt").mkdir(exist_ok=True)
    (dest / "tensorrt" / "__init__.py").write_text(SHIM)
    return dest


def needed_symbols(module: Path) -> list[str]:
    """The functions the bindings take from TensorRT's libraries: undefined, unversioned symbols that are
    neither Python's C API nor resolvable in this process (libc, libstdc++ and friends carry versions)."""
    out = subprocess.run(["nm", "-D", "--undefined-only", str(module)], capture_output=True, text=True,
                         check=True).stdout
    here = ctypes.CDLL(None)
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 2 or parts[0] != "U" or "@" in parts[1] or parts[1].startswith(("Py", "_Py")):
            continue
        if not hasattr(here, parts[1]):
            names.add(parts[1])
    return sorted(names)


def null_libraries(module: Path, dest: Path) -> Path:
    """The null stand-in for each library the module needs from TensorRT, built with the C compiler: a
    directory for LD_LIBRARY_PATH."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no C compiler (gcc or cc) to build the null stand-in for TensorRT's libraries")
    dest.mkdir(parents=True, exist_ok=True)
    symbols = needed_symbols(module)
    source = dest / "null.c"
    source.write_text("/* TensorRT's entry points, each returning null / 0: no TensorRT here. */\n"
                      + "".join(f"void *{s}(void) {{ return 0; }}\n" for s in symbols))
    lib = dest / "libnull_tensorrt.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(source)], check=True, capture_output=True)
    needed = subprocess.run(["readelf", "-d", str(module)], capture_output=True, text=True, check=True).stdout
    for line in needed.splitlines():
        if "(NEEDED)" in line and "[libnv" in line:
            name = line.split("[", 1)[1].rstrip("]")
            link = dest / name
            link.unlink(missing_ok=True)
            link.symlink_to(lib.name)
    return dest


def prepare(version: str, dest: Path) -> dict[str, str]:
    """Download (or reuse), unpack and satisfy the bindings of `version` under `dest`; the environment a
    subprocess needs to `import tensorrt` them (LD_LIBRARY_PATH is read when a process starts)."""
    site = unpack(wheel(version), dest / "site")
    libs = null_libraries(site / "tensorrt_bindings" / "tensorrt.so", dest / "lib")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH")) if p)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


# ------------------------------------------------------------------------------------------ type stubs

def _split_top(text: str) -> list[str]:
    """`text` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _parse_repaired(source: str) -> ast.Module:
    """Parse a generated stub, repairing the signatures pybind11 writes that Python can't take: a parameter
    without a default after one with (TensorRT's docstrings give `= None` to some middle parameters) gets
    `= ...`."""
    for _ in range(1000):
        try:
            return ast.parse(source)
        except SyntaxError as e:
            lines = source.splitlines()
            line = lines[(e.lineno or 1) - 1]
            head, _, rest = line.partition("(")
            params, close, tail = rest.rpartition(")")
            if not head.lstrip().startswith("def ") or not close:
                raise
            fixed, seen_default = [], False
            for param in _split_top(params):
                if "=" in param:
                    seen_default = True
                elif seen_default and not param.startswith("*"):
                    param += " = ..."
                fixed.append(param)
            repaired = f"{head}({', '.join(fixed)}){tail}"
            if repaired == line:
                raise
            lines[(e.lineno or 1) - 1] = repaired
            source = "\n".join(lines) + "\n"
    raise RuntimeError("too many broken signatures in the generated stub")


class _Annotations(ast.NodeTransformer):
    """Annotations of a generated stub made valid: `...` where stubgen could not name a C++ type becomes
    typing.Any; a builtin the module shadows (TensorRT defines `bool`, a DataType) is spelled builtins.X."""

    def __init__(self, shadowed: set[str]):
        self.shadowed = shadowed

    @staticmethod
    def _any() -> ast.expr:
        return ast.Attribute(ast.Name("typing", ast.Load()), "Any", ast.Load())

    def fix(self, node: ast.expr | None) -> ast.expr | None:
        if node is None:
            return None
        if isinstance(node, ast.Constant) and node.value is Ellipsis:
            return self._any()
        if isinstance(node, ast.Name) and node.id in self.shadowed:
            return ast.Attribute(ast.Name("builtins", ast.Load()), node.id, ast.Load())
        if isinstance(node, ast.Subscript):
            if isinstance(node.slice, ast.Tuple):  # keep tuple[X, ...] and Callable[..., X]
                node.slice.elts = [e if isinstance(e, ast.Constant) and e.value is Ellipsis else self.fix(e)
                                   for e in node.slice.elts]
            else:
                node.slice = self.fix(node.slice)
        elif isinstance(node, ast.BinOp):
            node.left, node.right = self.fix(node.left), self.fix(node.right)
        elif isinstance(node, ast.List):  # Callable[[A, B], R]
            node.elts = [self.fix(e) for e in node.elts]
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.annotation = self.fix(node.annotation)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.returns = self.fix(node.returns)
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AnnAssign:
        node.annotation = self.fix(node.annotation)
        return node


def _strip_docstrings(source: str) -> str:
    """The stub without its docstrings (they are most of its size; mypy reads only the signatures), its
    annotations made valid (_Annotations)."""
    # pybind11 names some parameters after Python keywords (`in`): a stub must rename them to parse
    source = re.sub(r"([(,] ?)(" + "|".join(keyword.kwlist) + r")(: )", r"\1\2_\3", source)
    tree = _parse_repaired(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and "buffer protocol" in (ast.get_docstring(node) or ""):
            # IHostMemory and friends: "exposes a buffer interface using Python's buffer protocol" (their
            # docstring), which stubgen can't see; bytes(engine) and memoryview() take them
            buffer = "def __buffer__(self, flags: builtins.int, /) -> memoryview: ..."
            node.body.append(ast.parse(buffer).body[0])
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                body.pop(0)
                if not body:
                    body.append(ast.Expr(ast.Constant(...)))
    import builtins

    shadowed = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                if isinstance(t, ast.Name) and hasattr(builtins, t.id)}
    tree = _Annotations(shadowed).visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def write_stubs(version: str, work: Path) -> Path:
    """stubs/trt-<version>/: pybind11-stubgen's stub of the real module, plus the `tensorrt` shim's."""
    env = prepare(version, work / version)
    out = work / version / "stubgen"
    subprocess.run([sys.executable, "-m", "pybind11_stubgen", "tensorrt_bindings.tensorrt", "-o", str(out)],
                   env=env, check=True, capture_output=True)
    text = (out / "tensorrt_bindings" / "tensorrt.pyi").read_text()
    # names the generated stub uses without importing them
    text = text.replace("import typing\n", "import typing\nimport builtins\nimport numpy\n"
                        "import typing_extensions\ncapsule: typing.TypeAlias = typing.Any\n", 1)
    root = STUBS / f"trt-{version}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "tensorrt_bindings").mkdir(parents=True)
    (root / "tensorrt").mkdir()
    header = (f"# Generated by `python tests/_trt_bindings.py stubs` from {PACKAGE}=={version} "
              "(pybind11-stubgen, docstrings dropped).\n")
    (root / "tensorrt_bindings" / "tensorrt.pyi").write_text(header + _strip_docstrings(text))
    reexport = "from tensorrt_bindings.tensorrt import *\n\n__version__: str\n"
    (root / "tensorrt_bindings" / "__init__.pyi").write_text(header + reexport)
    (root / "tensorrt" / "__init__.pyi").write_text(header + reexport)
    return root


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["stubs"]:
        sys.exit("usage: python tests/_trt_bindings.py stubs")
    with tempfile.TemporaryDirectory() as tmp:
        for v in VERSIONS:
            print(write_stubs(v, Path(tmp)))

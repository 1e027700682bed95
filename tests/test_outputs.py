"""Every command checks where it will write before it works: never over one of its own inputs, never onto a
folder, never into a missing or read-only folder; one line, exit 2, and every input left as it was.

Real files throughout (a real photo, a real mp4, a real target). A read-only folder is read-only for real:
as root (who may write anywhere) the command runs without root's power to ignore permissions.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _util import random_target

from puppet.errors import run_cli
from puppet.target import save_target

REPO = Path(__file__).resolve().parents[1]
# fine-tuning that would be quick, were it to start (the point is that it doesn't)
SCRATCH = ["--from-scratch", "--config", "tiny", "--steps", "1", "--content", "l1", "--threads", "1"]


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "t.pt"
    save_target(path, random_target())
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    import numpy as np

    from puppet.data.clips import write_video

    frames = [np.full((64, 64, 3), i * 10, np.uint8) for i in range(5)]
    return write_video(tmp_path_factory.mktemp("clip") / "v.mp4", frames, 25.0)


def _main(module: str):
    import importlib

    return importlib.import_module(module).main


def _run(module: str, args, capsys) -> str:
    """The command in this process through run_cli: asserts exit 2, returns its one stderr line."""
    with pytest.raises(SystemExit) as e:
        run_cli(_main(module), [str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _snapshot(*paths):
    return {p: Path(p).read_bytes() for p in paths}


# ------------------------------------------------------------------ output = one of the command's inputs

def test_live_output_onto_its_source_video_is_refused(target, clip, capsys):
    before = _snapshot(clip, target)
    line = _run("puppet.live.app", ["--target", target, "--source", clip, "--backend", "torch",
                                    "--output", clip], capsys)
    assert "--output" in line and "is also an input" in line
    assert _snapshot(clip, target) == before


def test_live_stats_onto_the_target_is_refused(target, clip, tmp_path, capsys):
    before = _snapshot(clip, target)
    line = _run("puppet.live.app", ["--target", target, "--source", clip, "--backend", "torch",
                                    "--output", tmp_path / "o.mp4", "--stats", target], capsys)
    assert "--stats" in line and "is also an input" in line
    assert _snapshot(clip, target) == before
    assert not (tmp_path / "o.mp4").exists()


def test_finetune_out_onto_its_photo_is_refused_even_through_a_link(grace_hopper_path, tmp_path, capsys):
    photo = tmp_path / "me.jpg"
    shutil.copy(grace_hopper_path, photo)
    link = tmp_path / "link.jpg"
    link.symlink_to(photo)
    before = _snapshot(photo)
    for out in (photo, link, f"{tmp_path}/./me.jpg"):
        line = _run("puppet.finetune", [photo, "--out", out, *SCRATCH], capsys)
        assert "is also an input" in line, line
    assert _snapshot(photo) == before


def test_export_out_onto_its_target_is_refused(target, capsys):
    before = _snapshot(target)
    line = _run("export.onnx", ["--target", target, "--out", target], capsys)
    assert "is also an input" in line
    assert _snapshot(target) == before


def test_prepare_out_onto_its_video_folder_is_refused(clip, capsys):
    before = sorted(os.listdir(clip.parent))
    line = _run("puppet.data.prepare", [clip.parent, "--out", clip.parent], capsys)
    assert "is also an input" in line
    assert sorted(os.listdir(clip.parent)) == before


# ------------------------------------------------------------------ outputs that can't be written

def test_outputs_onto_a_folder_fail_before_the_work(target, clip, grace_hopper_path, tmp_path, capsys):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    cases = [
        ("puppet.finetune", [grace_hopper_path, "--out", folder, *SCRATCH]),
        ("puppet.live.app", ["--target", target, "--source", clip, "--backend", "torch",
                             "--output", folder / "x.mp4", "--output", tmp_path / "o.mp4"]),
        ("puppet.live.app", ["--target", target, "--source", clip, "--backend", "torch",
                             "--output", tmp_path / "o.mp4", "--stats", folder]),
        ("export.onnx", ["--target", target, "--out", folder]),
        ("puppet.train", ["--data", tmp_path, "--config", "tiny", "--out", folder]),
    ]
    (folder / "x.mp4").mkdir()  # a folder named like a video
    for module, args in cases:
        t0 = time.monotonic()
        line = _run(module, args, capsys)
        assert "is a folder" in line, (module, line)
        assert time.monotonic() - t0 < 10, (module, "the check comes first, before any work")
    assert not (tmp_path / "o.mp4").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["x.mp4"]


def test_prepare_out_onto_a_file_and_outputs_in_missing_folders(target, clip, grace_hopper_path, tmp_path,
                                                                capsys):
    line = _run("puppet.data.prepare", [clip.parent, "--out", grace_hopper_path], capsys)
    assert "is not a folder" in line
    line = _run("puppet.demo", ["--out", target, "--no-window"], capsys)
    assert "is not a folder" in line
    missing = tmp_path / "missing"
    cases = [
        ("puppet.finetune", [grace_hopper_path, "--out", missing / "t.pt", *SCRATCH]),
        ("puppet.live.app", ["--target", target, "--source", clip, "--backend", "torch",
                             "--output", missing / "o.mp4"]),
        ("export.onnx", ["--target", target, "--out", missing / "t.onnx"]),
        ("puppet.train", ["--data", tmp_path, "--config", "tiny", "--out", missing / "meta.pt"]),
    ]
    for module, args in cases:
        line = _run(module, args, capsys)
        assert f"folder {missing} doesn't exist" in line, (module, line)
    assert not missing.exists()


def test_a_symlink_loop_or_an_impossible_name_as_output_is_one_line(target, tmp_path, capsys):
    loop = tmp_path / "loop.onnx"
    loop.symlink_to(loop)
    line = _run("export.onnx", ["--target", target, "--out", loop], capsys)
    assert "loop.onnx" in line
    line = _run("export.onnx", ["--target", target, "--out", tmp_path / ("x" * 5000 + ".onnx")], capsys)
    assert "File name too long" in line


# ------------------------------------------------------------------ read-only folders, for real
# ------------------------------------------------------------------ read-only folders, for real

def _without_root_powers() -> list[str]:
    """A command prefix that makes a 0o555 folder read-only for the command: as root (who writes anywhere
    through CAP_DAC_OVERRIDE) setpriv drops that capability; as anyone else, nothing."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv (util-linux): can't make a folder read-only for root")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _cli(module, args, env=None, cwd="/"):
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([*_without_root_powers(), sys.executable, "-m", module, *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_outputs_into_a_read_only_folder_fail_first(target, grace_hopper_path, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    cases = [
        ("puppet.finetune", [grace_hopper_path, "--out", ro / "me.pt", *SCRATCH]),
        ("export.onnx", ["--target", target, "--out", ro / "t.onnx"]),
        ("puppet.prepare", [target.parent, "--out", ro / "data"]),
        ("puppet.train", ["--data", tmp_path, "--config", "tiny", "--out", ro / "meta.pt"]),
    ]
    for module, args in cases:
        t0 = time.monotonic()
        r = _cli(module, args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, (module, r.stderr)
        assert f"can't write in {ro}" in lines[0], (module, lines)
        assert time.monotonic() - t0 < 60
    assert list(ro.iterdir()) == []


def test_a_target_in_a_read_only_folder_goes_live_and_exports_to_the_cache(astronaut_path, tmp_path):
    """live's onnxruntime backend exports the ONNX beside the target, or in the cache when it can't. The
    target is named like an option (-x.pt), which the export child must still take as a file."""
    import numpy as np

    from puppet.data.clips import write_video
    from puppet.faces.images import read_image

    ro = tmp_path / "ro"
    ro.mkdir()
    save_target(ro / "-x.pt", random_target(photo=astronaut_path))
    ro.chmod(0o555)
    cache = tmp_path / "cache"
    face = np.ascontiguousarray(read_image(astronaut_path)[:256, 96:352])
    clip = write_video(tmp_path / "drive.mp4", [face] * 3, 25.0)
    r = _cli("puppet.live", ["--target=-x.pt", "--source", clip, "--backend", "onnxruntime",
                             "--output", tmp_path / "o.mp4"], env={"PUPPET_CACHE": str(cache)}, cwd=ro)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in ro.iterdir()) == ["-x.pt"]
    assert [p.name for p in cache.rglob("*.onnx")] == ["-x.onnx"]
    assert (tmp_path / "o.mp4").is_file()
    ro.chmod(0o755)


def test_two_live_outputs_onto_one_file_are_refused(target, clip, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    line = _run("puppet.live.app", ["--target", target, "--source", clip, "--backend", "torch",
                                    "--output", out, "--output", f"{tmp_path}/./o.mp4"], capsys)
    assert "the same file as --output" in line
    line = _run("puppet.live.app", ["--target", target, "--source", clip, "--backend", "torch",
                                    "--output", out, "--stats", out], capsys)
    assert "--stats" in line and "the same file as --output" in line
    assert not out.exists()

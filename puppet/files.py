"""Atomic writes: a file is either the old one or the complete new one, never half written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# The process's umask, read once at import: reading it means setting it, which would race other threads.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; give it the mode a plain open() would (targets are shared files).
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def torch_save_atomic(obj, path: str | os.PathLike) -> None:
    """torch.save through a temp file + rename (checkpoints, targets)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """Write `obj` as JSON (a trailing newline), atomically."""
    import json

    atomic_write_bytes(path, (json.dumps(obj, indent=indent) + "\n").encode("utf-8"))


def cache_root() -> Path:
    """puppet's cache folder: $PUPPET_CACHE, else $XDG_CACHE_HOME/puppet, else ~/.cache/puppet."""
    if os.environ.get("PUPPET_CACHE"):
        return Path(os.environ["PUPPET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "puppet"


def check_format(obj, path, marker: str, version: int, what: str, fix: str) -> dict:
    """`obj` (a loaded dict) if it has {"format": marker, "version": version}; else a one-line PuppetError.

    The one "format marker + version" check of every file puppet writes (dataset manifest, meta-learned
    checkpoint, target): `what` names the kind of file, `fix` says how to make a good one.
    """
    from puppet.errors import PuppetError

    if not isinstance(obj, dict) or obj.get("format") != marker:
        raise PuppetError(f"{path}: not a puppet {what} (no '{marker}' marker); {fix}")
    got = obj.get("version")
    if got != version:
        if isinstance(got, int) and got > version:
            raise PuppetError(f"{path}: {what} format version {got} is newer than this puppet "
                              f"reads ({version}); upgrade puppet")
        raise PuppetError(f"{path}: {what} format version {got!r}, this puppet reads {version}; "
                          f"re-make it: {fix}")
    return obj


class VideoWriter:
    """An mp4 (mp4v through OpenCV's FFmpeg) written to a temporary file beside `path` and renamed on close:
    the file is complete or absent. With no frame written, close() leaves no file."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float):
        import cv2

        from puppet.errors import PuppetError

        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        # VideoWriter picks the container from the extension, so the temporary name keeps it.
        self.tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.tmp{self.path.suffix or '.mp4'}")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps),
                                      (self.width, self.height))
        if not self.writer.isOpened():
            self.writer.release()
            self.tmp.unlink(missing_ok=True)
            raise PuppetError(f"{self.path}: can't write a video there; check it's writable and ends in .mp4")
        self.frames = 0

    def write(self, bgr) -> None:
        self.writer.write(bgr)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file (renamed into place), or drop it when `keep` is False or nothing was written."""
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        try:
            if keep and self.frames:
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)

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


def _resolved(path: Path, flag: str) -> Path:
    from puppet.errors import PuppetError

    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop (RuntimeError before Python 3.13)
        why = getattr(e, "strerror", None) or e
        raise PuppetError(f"{flag} {path}: can't resolve the path ({why}); fix the link or pick another "
                          f"path") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one doesn't exist (yet): compare where they would be
        return a == b


def writable_dir(folder: str | os.PathLike) -> bool:
    """Whether a file can be created in `folder` (tried for real: permissions, read-only mounts, ACLs)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".puppet-probe.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def check_output(path: str | os.PathLike, inputs=(), flag: str = "--out", kind: str = "file") -> Path:
    """Where a command will write, checked before it does any work: the resolved path, or a one-line
    PuppetError when `path` is one of the command's own `inputs` (the same file, by resolved path or
    samefile), is a folder (kind "file") or a file (kind "dir"), or its folder is missing or not writable.

    kind "dir": an output folder, created by the command (its nearest existing parent must be writable).
    Writing happens later, atomically; this only makes sure that the work won't be lost at the end.
    """
    from puppet.errors import PuppetError

    given = Path(path)
    out = _resolved(given, flag)
    for src in inputs:
        if src is None:
            continue
        if _same_file(out, _resolved(Path(src), flag)):
            raise PuppetError(f"{flag} {given}: is also an input ({src}); writing there would destroy it; "
                              f"pick another output name")
    if kind == "file":
        if out.is_dir():
            raise PuppetError(f"{flag} {given}: is a folder; give a file path in it, e.g. "
                              f"{given / ('out' + (given.suffix or '.pt'))}")
        folder = out.parent
        if not folder.is_dir():
            raise PuppetError(f"{flag} {given}: folder {folder} doesn't exist; create it or pick another "
                          f"path")
    else:
        if out.exists() and not out.is_dir():
            raise PuppetError(f"{flag} {given}: exists and is not a folder; pass a folder path")
        folder = out
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise PuppetError(f"{flag} {given}: {folder} is not a folder; pick another path")
    if not writable_dir(folder):
        raise PuppetError(f"{flag} {given}: can't write in {folder} (read-only or no permission); "
                          f"pick a writable folder")
    return out


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

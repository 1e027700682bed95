"""Atomic writes: a file is either the old one or the complete new one, never half written."""

from __future__ import annotations

import contextlib
import errno
import os
import re
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
    try:
        out.stat()
    except OSError as e:  # (a missing file is what a new output is)
        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise PuppetError(f"{flag} {given}: can't use this path ({e.strerror or e}); pick another"
                              ) from None
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
    the file is complete or absent. With no frame written, close() leaves no file.

    A process killed while writing (kill -9, a power cut) leaves the temporary file without its index, and
    a sidecar `<temporary name>.json` saying what it holds: `recover_videos` turns that into a playable file.
    """

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
        self.info = self.tmp.with_name(self.tmp.name + ".json")
        write_json(self.info, {"output": self.path.name, "width": self.width, "height": self.height,
                               "fps": float(fps), "fourcc": "mp4v"})
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
            self.info.unlink(missing_ok=True)


_PARTIAL = re.compile(r"\.(?P<stem>.+)\.(?P<pid>\d+)\.tmp(?P<suffix>\.\w+)\.json")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def recover_videos(folder: str | os.PathLike) -> list[str]:
    """Recordings in `folder` left unfinished by a process that is gone (VideoWriter's temporary file and
    sidecar): each becomes `<name>.recovered.mp4` (never over an existing file) holding every frame that
    reached the disk, and the temporary files are removed. Returns one line per recording for the user.
    Recordings of processes still running are left alone."""
    import json

    notes = []
    for info_path in sorted(Path(folder).glob(".*.tmp*.json")):
        m = _PARTIAL.fullmatch(info_path.name)
        if not m or _alive(int(m["pid"])):
            continue
        tmp = info_path.with_name(info_path.name.removesuffix(".json"))
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            size, fps = (int(info["width"]), int(info["height"])), float(info["fps"])
        except (OSError, ValueError, KeyError, TypeError):
            info = None
        n, dest = 0, None
        if info is not None and tmp.is_file():
            dest = _free_name(info_path.parent / f"{m['stem']}.recovered{m['suffix']}")
            try:
                n = _rewrite(tmp, dest, size, fps)
            except Exception as e:  # noqa: BLE001 - never let an old recording stop a new one
                notes.append(f"{tmp}: an unfinished recording of process {m['pid']} could not be recovered "
                             f"({' '.join(str(e).split())}); left as it is")
                continue
        if n:
            notes.append(f"{dest}: recovered {n} frames ({n / fps:.1f} s) of a recording to "
                         f"{info_path.parent / info.get('output', m['stem'] + m['suffix'])} that process "
                         f"{m['pid']} left unfinished")
        else:
            notes.append(f"{tmp}: an unfinished recording of process {m['pid']} with no frame to recover; "
                         f"removed")
        tmp.unlink(missing_ok=True)
        info_path.unlink(missing_ok=True)
    return notes


def _free_name(path: Path) -> Path:
    k = 1
    out = path
    while out.exists():
        k += 1
        out = path.with_name(f"{path.stem}-{k}{path.suffix}")
    return out


def _rewrite(src: Path, dest: Path, size: tuple[int, int], fps: float) -> int:
    """Decode what can be decoded of the unfinished `src` and write it to `dest`; the frames written."""
    import cv2

    with tempfile.TemporaryDirectory(prefix="puppet-recover-") as d:
        sources = [src]
        stream = _mp4v_stream(src, size, fps, Path(d))
        if stream is not None:
            sources.append(stream)
        for s in sources:  # the file as it is (AVI, MKV read without their index), else its raw stream
            cap = cv2.VideoCapture(str(s))
            out, n = None, 0
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok or frame is None:
                        break
                    if frame.shape[1::-1] != size:
                        frame = cv2.resize(frame, size)
                    if out is None:
                        out = VideoWriter(dest, *size, fps)
                    out.write(frame)
                    n += 1
            finally:
                cap.release()
                if out is not None:
                    out.close()
            if n:
                return n
    return 0


def _mp4v_stream(src: Path, size: tuple[int, int], fps: float, folder: Path) -> Path | None:
    """An unfinished mp4's frames as a raw MPEG-4 Part 2 stream (`.m4v`) that FFmpeg decodes without the
    index: the decoder configuration (VOL header) of the same settings, then the mdat bytes up to the last
    complete frame. None when `src` isn't such a file."""
    import mmap
    import shutil

    with open(src, "rb") as f:
        if os.fstat(f.fileno()).st_size < 16:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            at = data.find(b"mdat")
            if data[4:8] != b"ftyp" or at < 4:
                return None
            big = int.from_bytes(data[at - 4:at], "big") == 1  # a 64-bit box size follows the type
            start = at + (12 if big else 4)
            end = data.rfind(b"\x00\x00\x01\xb6")  # the last frame's start: it may be cut short, drop it
        config = _mp4v_config(size, fps, folder)
        if end <= start or config is None:
            return None
        out = folder / "stream.m4v"
        with open(out, "wb") as o:
            o.write(config)
            f.seek(start)
            shutil.copyfileobj(_Limited(f, end - start), o)
    return out


class _Limited:
    """The next `n` bytes of a file, read as a file (for shutil.copyfileobj)."""

    def __init__(self, f, n: int):
        self.f, self.left = f, n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.f.read(size)
        self.left -= len(data)
        return data


def _mp4v_config(size: tuple[int, int], fps: float, folder: Path) -> bytes | None:
    """The mp4v decoder configuration VideoWriter's encoder uses at these settings: written by encoding one
    frame, read back from the mp4's esds box (ES_Descriptor > DecoderConfigDescriptor >
    DecoderSpecificInfo)."""
    import cv2
    import numpy as np

    ref = folder / "config.mp4"
    w = cv2.VideoWriter(str(ref), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    w.write(np.zeros((size[1], size[0], 3), np.uint8))
    w.release()
    data = ref.read_bytes() if ref.is_file() else b""
    pos = data.find(b"esds") + 8  # past the box type, version and flags

    def descriptor(pos: int, tag: int) -> tuple[int, int]:
        if pos >= len(data) or data[pos] != tag:
            raise ValueError
        pos, n = pos + 1, 0
        for _ in range(4):
            b = data[pos]
            pos, n = pos + 1, (n << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        return pos, n

    try:
        pos, _ = descriptor(pos, 0x03)
        pos, _ = descriptor(pos + 3, 0x04)  # past ES_ID and flags
        pos, n = descriptor(pos + 13, 0x05)  # past object type, stream type, buffer size, bitrates
    except (ValueError, IndexError):
        return None
    return data[pos:pos + n]

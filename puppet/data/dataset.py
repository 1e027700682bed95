"""The prepared dataset on disk, and the Dataset that training streams from it.

Layout of a DATA folder (written by `python -m puppet.prepare`):

    DATA/manifest.json          {"format": "puppet-data", "version": 1, "size": S, "landmarks": backend,
                                 "videos": [{"id", "file", "frames", "source"}, ...] (sorted by id),
                                 "skipped": {reason: count}}
    DATA/journal.jsonl          one line per finished video (prepared or skipped), appended as prepare goes:
                                the record that makes a stopped run resumable
    DATA/shards/ab/<id>.npz     one file per video, in 256 shard folders (by a hash of the id):
                                  jpeg     uint8 (total bytes,)  the frames' JPEG files, back to back
                                  offsets  int64 (N + 1,)        frame k is jpeg[offsets[k]:offsets[k + 1]]
                                  landmarks float32 (N, 68, 2)   in the S x S crop's pixels
                                  size     int64 ()              S

Frames are the shared crop (puppet.faces.crop) of the video, at `size` (default 256); training resizes them to
its config's image_size. Everything is plain arrays: read with np.load(allow_pickle=False). Every file is
written through a temporary file and a rename, so a killed run leaves either a whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from puppet.errors import PuppetError
from puppet.files import atomic_path, check_format, write_json

FORMAT = "puppet-data"
VERSION = 1
MANIFEST = "manifest.json"
JOURNAL = "journal.jsonl"
SHARDS = "shards"
JPEG_QUALITY = 95


# ------------------------------------------------------------------------------------------ one video


def video_file(video_id: str) -> str:
    """Where a video's file goes, relative to DATA: a shard folder from the id's hash, a readable name."""
    digest = hashlib.sha1(video_id.encode("utf-8")).hexdigest()
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", video_id).strip("._")[-80:] or "video"
    return f"{SHARDS}/{digest[:2]}/{safe}-{digest[:8]}.npz"


def encode_frames(frames: Iterable[np.ndarray], quality: int = JPEG_QUALITY) -> tuple[np.ndarray, np.ndarray]:
    """uint8 BGR frames -> (jpeg bytes, offsets) as stored in a video file."""
    chunks, offsets = [], [0]
    for f in frames:
        ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        chunks.append(buf.reshape(-1))
        offsets.append(offsets[-1] + buf.size)
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return data.astype(np.uint8), np.asarray(offsets, np.int64)


def save_video(path: str | os.PathLike, frames: list[np.ndarray], landmarks: np.ndarray,
               quality: int = JPEG_QUALITY) -> None:
    """Write one prepared video (square uint8 BGR crops and their (N, 68, 2) landmarks), atomically."""
    lms = np.asarray(landmarks, np.float32)
    if len(frames) == 0 or lms.shape != (len(frames), 68, 2):
        raise ValueError(f"need N >= 1 frames and (N, 68, 2) landmarks, got {len(frames)} and {lms.shape}")
    size = frames[0].shape[0]
    jpeg, offsets = encode_frames(frames, quality)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, jpeg=jpeg, offsets=offsets, landmarks=lms, size=np.int64(size))


class Video:
    """A prepared video file, read lazily: `len(v)`, `v.landmarks` (N, 68, 2), `v.frame(k)` -> uint8 BGR."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as z:
                self.jpeg = z["jpeg"]
                self.offsets = z["offsets"]
                self.landmarks = z["landmarks"]
                self.size = int(z["size"])
        except (OSError, KeyError, ValueError) as e:
            raise PuppetError(f"{self.path}: not a readable prepared video ({type(e).__name__}: {e}); "
                              f"run python -m puppet.prepare again on the same --out to redo it") from None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def frame(self, k: int) -> np.ndarray:
        buf = self.jpeg[self.offsets[k] : self.offsets[k + 1]]
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None:
            raise PuppetError(f"{self.path}: frame {k} doesn't decode; run puppet.prepare again to redo it")
        return img


# ------------------------------------------------------------------------------------- the whole set


def read_journal(root: str | os.PathLike) -> dict[str, dict]:
    """id -> the latest record in DATA/journal.jsonl; a torn last line (a killed run) is ignored."""
    path = Path(root) / JOURNAL
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                out[rec["id"]] = rec
    return out


class Journal:
    """Appends one JSON line per finished video, flushed and fsynced: a kill -9 loses at most the line
    being written (whose video is then simply done again)."""

    def __init__(self, root: str | os.PathLike):
        path = Path(root) / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        # A torn last line (no newline) would swallow the next record: start on a fresh line.
        needs_newline = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
        self._f = open(path, "a", encoding="utf-8")
        if needs_newline:
            self._f.write("\n")

    def append(self, rec: dict) -> None:
        self._f.write(json.dumps(rec, sort_keys=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_manifest(root: str | os.PathLike, records: dict[str, dict], size: int, landmarks: str) -> dict:
    """Write DATA/manifest.json (atomically) from the journal's records; returns it."""
    videos = [
        {"id": r["id"], "file": r["file"], "frames": int(r["frames"]), "source": r.get("source", "")}
        for r in sorted(records.values(), key=lambda r: r["id"])
        if r.get("status") == "ok"
    ]
    skipped: dict[str, int] = {}
    for r in records.values():
        if r.get("status") != "ok":
            reason = str(r.get("reason", "unknown"))
            skipped[reason] = skipped.get(reason, 0) + 1
    manifest = {"format": FORMAT, "version": VERSION, "size": int(size), "landmarks": landmarks,
                "videos": videos, "skipped": skipped}
    write_json(Path(root) / MANIFEST, manifest, indent=1)
    return manifest


def load_manifest(root: str | os.PathLike) -> dict:
    """DATA/manifest.json, checked; one-line PuppetError when DATA isn't a prepared dataset."""
    root = Path(root)
    path = root / MANIFEST
    fix = "prepare one with python -m puppet.prepare VIDEOS --out DATA (or --synthetic N)"
    if not root.exists():
        raise PuppetError(f"{root}: no such folder; {fix}")
    if not path.is_file():
        raise PuppetError(f"{root}: not a prepared dataset (no {MANIFEST}); {fix}")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PuppetError(f"{path}: unreadable ({type(e).__name__}); run puppet.prepare again") from None
    return check_format(m, path, FORMAT, VERSION, "dataset manifest", fix)


def group_key(video_id: str, group: str) -> str:
    """The video a prepared file belongs to: itself (group="clip") or its folder (group="folder"), except
    for files at the top level and synthetic clips, which are videos of their own."""
    if group == "clip" or "/" not in video_id or video_id.startswith("synthetic/"):
        return video_id
    return video_id.rsplit("/", 1)[0]


class VideoDataset:
    """Meta-learning samples from a prepared DATA folder: per video, K frames for the embedder and one other
    frame (the target, never among the K) for the generator.

    Item keys are an index or an (index, epoch) pair (what `EpochSampler` yields); the frames chosen depend
    only on (seed, epoch, index), never on worker processes or on where a run was resumed. An item is a
    dict of tensors at `image_size`:
        x (K, 3, S, S), y (K, 3, S, S): the K frames and their sketches; x_t, y_t (3, S, S): the target frame
        and its sketch; i: the video's index (its column W_i in the discriminator). Images in [-1, 1] RGB.
        With `warped=True` also warped (3, S, S): the first of the K frames warped piecewise-affinely to the
        target's landmarks (puppet.faces.warp), the appearance generator's second input. With `regions=True`
        also region (1, S, S): the target's mouth and eye regions (puppet.faces.regions), where the
        objective weights its content loss.

    `uint8=True`: the images (x, y, x_t, y_t, warped) as uint8 RGB instead (puppet.faces.images.
    to_uint8_tensor; from_uint8 gives the float32 [-1, 1] ones, bit for bit): a quarter of the bytes between
    the loader's workers and the training process, and no float work in the workers.

    `contrast` (0 to 1): the share of items whose target is chosen to differ from the reference (the first
    of the K frames) in how open the eyes and mouth are (one of the most different quarter of the video's
    other frames) instead of at random. Talking clips are mostly a half-open mouth and open eyes, so random
    pairs rarely ask the generator to draw an opening mouth or a closing lid, which is its job.

    group="clip": every prepared file is a video. group="folder": the files of one folder are one video
    (VoxCeleb2's speaker/video/clip.mp4: the clips of one YouTube video, the paper's unit), so the K frames
    and the target come from all of its clips, and W has a row per folder rather than per clip (7x fewer
    on VoxCeleb2; one row per person for a person/clip.mp4 corpus). Files directly under DATA, and the
    synthetic clips `prepare --synthetic` makes (synthetic/NNNNN, each a portrait of its own), stay videos of
    their own: a shared folder there is no identity.
    Videos with fewer than K + 1 frames are left out (so the index is over the videos kept).
    """

    def __init__(self, root: str | os.PathLike, image_size: int, K: int = 8, seed: int = 0,
                 group: str = "clip", warped: bool = False, regions: bool = False, contrast: float = 0.0,
                 uint8: bool = False):
        if group not in ("clip", "folder"):
            raise PuppetError(f"group {group!r}: unknown; use clip or folder")
        if not 0.0 <= contrast <= 1.0:
            raise PuppetError(f"contrast {contrast}: must be between 0 and 1")
        self.regions = bool(regions)
        self.uint8 = bool(uint8)
        self.contrast = float(contrast)
        self._openness: dict[int, np.ndarray] = {}  # per video index, (frames, 3), filled on first use
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        self.image_size = int(image_size)
        self.K = int(K)
        self.seed = int(seed)
        self.warped = bool(warped)
        groups: dict[str, list[dict]] = {}
        for v in self.manifest["videos"]:  # sorted by id, so groups and their members come in a fixed order
            groups.setdefault(group_key(v["id"], group), []).append(v)
        self.videos = [(key, members) for key, members in groups.items()
                       if sum(int(m["frames"]) for m in members) >= self.K + 1]
        if not self.videos:
            raise PuppetError(f"{self.root}: no video with at least K + 1 = {self.K + 1} frames "
                              f"({len(self.manifest['videos'])} prepared); prepare more videos or lower --K")

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def ids(self) -> list[str]:
        return [key for key, _ in self.videos]

    def fingerprint(self) -> str:
        """A hash of the video ids in index order: W's columns mean these videos, in this order."""
        return hashlib.sha1("\n".join(self.ids).encode("utf-8")).hexdigest()

    def choose(self, index: int, epoch: int, n_frames: int,
               openness: np.ndarray | None = None) -> np.ndarray:
        """K + 1 distinct frame indices; the last is the target. With `openness` ((n_frames, 3): eyes and
        mouth, puppet.faces.regions.openness) and contrast > 0, that share of targets is drawn from the
        quarter of the other frames whose eyes and mouth differ most from the first frame's."""
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        picks = rng.choice(n_frames, size=self.K + 1, replace=False)
        if openness is not None and self.contrast > 0 and rng.random() < self.contrast:
            rest = np.setdiff1d(np.arange(n_frames), picks[:-1])
            # The mouth's opening spans about twice the eyes' range: both count alike.
            diff = np.abs(openness[rest] - openness[picks[0]]) * np.array([0.5, 0.5, 1.0])
            order = np.argsort(-diff.sum(axis=1), kind="stable")
            picks[-1] = rest[order[rng.integers(max(1, len(rest) // 4))]]
        return picks

    def _resize(self, img: np.ndarray, lms: np.ndarray, stored: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.image_size
        if stored == s:
            return img, lms
        interp = cv2.INTER_AREA if s < stored else cv2.INTER_LINEAR
        img = cv2.resize(img, (s, s), interpolation=interp)
        # Pixel centres: x_new = (x_old + 0.5) * s / stored - 0.5 (cv2.resize's mapping).
        return img, ((lms + 0.5) * (s / stored) - 0.5).astype(np.float32)

    def __getitem__(self, key):
        import torch

        from puppet.faces.images import to_tensor, to_uint8_tensor
        from puppet.faces.sketch import draw_sketch

        as_tensor = to_uint8_tensor if self.uint8 else to_tensor
        index, epoch = (key if isinstance(key, tuple) else (key, 0))
        _, members = self.videos[int(index)]
        # The group's frames, numbered across its files in order; the picks are global frame numbers.
        counts = np.array([int(m["frames"]) for m in members])
        starts = np.concatenate([[0], np.cumsum(counts)])
        opened: dict[int, Video] = {}
        picks = self.choose(index, epoch, int(starts[-1]),
                            self._video_openness(int(index), members, opened) if self.contrast > 0 else None)
        frames, sketches, marks = [], [], []
        for k in picks:
            f = int(np.searchsorted(starts, k, side="right") - 1)
            if f not in opened:
                opened[f] = Video(self.root / members[f]["file"])
            video, local = opened[f], int(k - starts[f])
            img, lms = self._resize(video.frame(local), video.landmarks[local], video.size)
            frames.append(img)
            sketches.append(draw_sketch(lms, self.image_size))
            marks.append(lms)
        x = as_tensor(np.stack(frames))
        y = as_tensor(np.stack(sketches))
        item = {"x": x[:-1], "y": y[:-1], "x_t": x[-1], "y_t": y[-1],
                "i": torch.tensor(int(index), dtype=torch.long)}
        if self.warped:
            from puppet.faces.warp import warp

            item["warped"] = as_tensor(warp(frames[0], marks[0], marks[-1]))[0]
        if self.regions:
            from puppet.faces.regions import region_mask

            item["region"] = torch.from_numpy(region_mask(marks[-1], self.image_size))[None]
        return item

    def _video_openness(self, index: int, members: list[dict], opened: dict[int, Video]) -> np.ndarray:
        """(frames, 3) eye and mouth openness of every frame of a video, across its files (cached)."""
        if index not in self._openness:
            from puppet.faces.regions import openness

            rows = []
            for f, m in enumerate(members):
                if f not in opened:
                    opened[f] = Video(self.root / m["file"])
                rows.extend(openness(lms) for lms in opened[f].landmarks)
            self._openness[index] = np.stack(rows)
        return self._openness[index]


class EpochSampler:
    """Yields (index, epoch) keys: each epoch a fresh permutation of the videos (from seed and epoch), split
    across ranks like torch's DistributedSampler (padded to a multiple of the world size, each rank taking
    every world_size-th index).

    `start` skips the first samples of the first epoch on this rank: a resumed run continues mid-epoch with
    exactly the keys an uninterrupted run would have used. Never ends: training counts steps, not epochs.
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1, seed: int = 0, epoch: int = 0,
                 start: int = 0):
        self.n, self.rank, self.world, self.seed = int(n), int(rank), int(world_size), int(seed)
        self.epoch, self.start = int(epoch), int(start)
        self.per_rank = -(-self.n // self.world)  # ceil

    def epoch_indices(self, epoch: int) -> list[int]:
        import torch

        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[: self.per_rank * self.world - self.n]  # pad so every rank gets as many
        return order[self.rank :: self.world]

    def __iter__(self):
        epoch, start = self.epoch, self.start
        while True:
            for idx in self.epoch_indices(epoch)[start:]:
                yield (idx, epoch)
            epoch, start = epoch + 1, 0

    @staticmethod
    def position(step: int, batch: int, per_rank: int) -> tuple[int, int]:
        """(epoch, start) of the sample after `step` batches of `batch` on one rank."""
        seen = int(step) * int(batch)
        return seen // per_rank, seen % per_rank

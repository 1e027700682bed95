"""Dataset preparation: videos -> cropped frames + 68 landmarks, in the on-disk format of puppet.data.

    python -m puppet.prepare VIDEOS [VIDEOS ...] --out DATA [--landmarks mediapipe|fan] [--workers N]
                             [--size 256] [--max-frames 32] [--min-frames 9]
    python -m puppet.prepare --synthetic N [--portrait IMG ...] --out DATA      (no camera, no videos)

VIDEOS: folders (searched recursively: VoxCeleb2's speaker/video/clip.mp4 or any tree) or video files. For
each video, up to --max-frames frames evenly spaced over the clip are read (the paper samples a few frames
per video), tracked and cropped as fine-tuning on a clip does (puppet.faces.frames: video-mode tracking, the
shared crop smoothed over the clip) and stored at --size with their landmarks in crop pixels.

Nothing stops the run: unreadable or corrupt videos, videos without a face, and videos with fewer than
--min-frames frames with a face (default K + 1 = 9) are skipped and counted in the summary at the end;
files that aren't videos (by extension) are counted and ignored. Resumable: finished videos (prepared or
skipped) are recorded in DATA/journal.jsonl as they finish, and a second run skips them.

--synthetic N makes N talking-head clips with no camera by animating still portraits (puppet.data.motion:
landmark-driven piecewise-affine warps with head turns, talking and blinks): the packaged portraits, or the
--portrait images given. Their landmarks are exact (they drove the warp), so they are not tracked.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.faces.frames import crop_clip, sample_frames
from puppet.files import check_output

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
                    ".ts", ".mts"}
DEFAULT_SIZE = 256
DEFAULT_MAX_FRAMES = 32
DEFAULT_MIN_FRAMES = 9  # K + 1 with the paper's K = 8
MANIFEST_EVERY = 500  # rewrite the manifest every this many videos, so a long run's data is usable meanwhile


@dataclass(frozen=True)
class Task:
    """One unit of work: a video file, or synthetic clip number `index`."""

    id: str
    path: str = ""  # the video file ("" for a synthetic clip)
    index: int = -1  # synthetic clip number


@dataclass(frozen=True)
class Settings:
    out: str
    size: int
    max_frames: int
    min_frames: int
    landmarks: str
    portraits: tuple[str, ...] = ()
    seed: int = 0
    quality: int = 95


# ------------------------------------------------------------------------------------------ finding work


def find_videos(inputs: list[str]) -> tuple[list[Task], int]:
    """(video tasks, number of non-video files seen). Ids are paths relative to each input folder, without
    the extension (VoxCeleb2: speaker/video/clip); with several inputs each id starts with its input's name.
    """
    tasks: list[Task] = []
    others = 0
    for spec in inputs:
        root = Path(spec).expanduser()
        if not root.exists():
            raise PuppetError(f"{spec}: no such file or folder; pass a folder of videos or video files")
        prefix = f"{root.name}/" if len(inputs) > 1 else ""
        if root.is_file():
            if root.suffix.lower() in VIDEO_EXTENSIONS:
                tasks.append(Task(id=prefix + root.stem if prefix else root.stem, path=str(root)))
            else:
                others += 1
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                p = Path(dirpath) / name
                if p.suffix.lower() not in VIDEO_EXTENSIONS:
                    others += 1
                    continue
                rel = p.relative_to(root).with_suffix("").as_posix()
                tasks.append(Task(id=prefix + rel, path=str(p)))
    seen: set[str] = set()
    unique = []
    for t in tasks:  # clip.mp4 and clip.avi side by side: keep the first
        if t.id not in seen:
            seen.add(t.id)
            unique.append(t)
    return unique, others


# ------------------------------------------------------------------------------------------ one video


_PORTRAITS = None  # per process: the loaded (and downscaled) portraits for synthetic clips


def _portraits(settings: Settings):
    global _PORTRAITS
    if _PORTRAITS is None:
        from puppet.data.clips import load_portraits
        from puppet.faces.crop import Crop

        loaded = []
        for name, img, lms in load_portraits(list(settings.portraits) or None):
            # Warp no more pixels than the crop keeps: shrink the portrait so the crop box is ~1.25x --size.
            k = min(1.0, 1.25 * settings.size / Crop.from_landmarks(lms).size)
            if k < 1.0:
                img = cv2.resize(img, (max(1, round(img.shape[1] * k)), max(1, round(img.shape[0] * k))),
                                 interpolation=cv2.INTER_AREA)
                lms = (lms + 0.5) * np.float32(k) - 0.5
            loaded.append((name, img, lms.astype(np.float32)))
        _PORTRAITS = loaded
    return _PORTRAITS


def process(task: Task, settings: Settings) -> dict:
    """Prepare one video (or synthetic clip) and write its file; returns its journal record. Never raises
    for a bad video: the record says why it was skipped."""
    from puppet.data.dataset import save_video, video_file

    rec = {"id": task.id, "source": task.path or "synthetic"}
    try:
        if task.index >= 0:
            from puppet.data.clips import synthetic_clips

            portraits = _portraits(settings)
            p = portraits[task.index % len(portraits)]
            (_, frames, lms), = synthetic_clips(1, [p], n_frames=settings.max_frames,
                                                seed=settings.seed * 1_000_003 + task.index)
            times = [k / 25.0 for k in range(len(frames))]
            _, crops, crop_lms, _ = crop_clip(frames, lms, times, settings.size)
        else:
            clip = sample_frames(task.path, settings.max_frames, settings.size, backend=settings.landmarks)
            if not clip.decoded:
                return {**rec, "status": "skipped", "reason": "unreadable"}
            crops, crop_lms = clip.crops, clip.landmarks
        if not crops:
            return {**rec, "status": "skipped", "reason": "no face"}
        if len(crops) < settings.min_frames:
            return {**rec, "status": "skipped", "reason": "too few frames with a face"}
        rel = video_file(task.id)
        save_video(Path(settings.out) / rel, crops, np.stack(crop_lms), quality=settings.quality)
        return {**rec, "status": "ok", "file": rel, "frames": len(crops)}
    except PuppetError:
        raise  # a setup problem (e.g. the FAN backend's weights), not a bad video: stop with its message
    except Exception as e:  # a decoder or tracker failing on one bad file must not stop a days-long run
        return {**rec, "status": "skipped", "reason": "error", "error": f"{type(e).__name__}: {e}"[:300]}


_SETTINGS: Settings | None = None


def _init_worker(settings: Settings) -> None:
    global _SETTINGS
    _SETTINGS = settings
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe them


def _work(task: Task) -> dict:
    return process(task, _SETTINGS)


# ------------------------------------------------------------------------------------------ the command


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="python -m puppet.prepare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", nargs="*", metavar="VIDEOS", help="folders of videos (recursive) or video files")
    p.add_argument("--out", required=True, help="the dataset folder (created; a second run resumes it)")
    p.add_argument("--landmarks", choices=("mediapipe", "fan"), default="mediapipe",
                   help="landmark tracker (fan: face-alignment, the `fan` extra)")
    p.add_argument("--workers", type=int, default=1, help="processes (each with its own tracker)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="stored crop side in pixels (default 256)")
    p.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES,
                   help="frames kept per video, evenly spaced (default 32)")
    p.add_argument("--min-frames", type=int, default=DEFAULT_MIN_FRAMES,
                   help="skip videos with fewer frames with a face (default 9 = K + 1)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="also make N synthetic talking-head clips from still portraits")
    p.add_argument("--portrait", action="append", default=[], metavar="IMG",
                   help="a portrait for --synthetic (repeatable; default: the packaged ones)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic clips' motion")
    p.add_argument("--quality", type=int, default=95,
                   help="JPEG quality of the stored frames (default 95: ~430 KB per 32-frame clip at 256 px)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.size < 16:
        raise PuppetError(f"--size {a.size}: too small; pass 64 or more (256 is the default)")
    if a.max_frames < 1 or a.min_frames < 1:
        raise PuppetError("--max-frames and --min-frames must be at least 1")
    if a.min_frames > a.max_frames:
        raise PuppetError(f"--min-frames {a.min_frames} is more than --max-frames {a.max_frames}; "
                          f"raise --max-frames")
    if not 50 <= a.quality <= 100:
        raise PuppetError(f"--quality {a.quality}: use 50..100 (JPEG quality)")
    if a.workers < 1:
        raise PuppetError(f"--workers {a.workers}: must be at least 1")
    if a.synthetic < 0:
        raise PuppetError(f"--synthetic {a.synthetic}: must be 0 or more")
    if not a.videos and not a.synthetic:
        raise PuppetError("no input: pass VIDEOS (folders or video files) or --synthetic N")
    return a


def _check_existing(out: Path, size: int, landmarks: str) -> None:
    """A resumed dataset must keep its size and tracker: mixing them would silently corrupt it."""
    import json

    from puppet.data.dataset import MANIFEST

    m = out / MANIFEST
    if m.is_file():
        try:
            old = json.loads(m.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(old, dict) and old.get("size") not in (None, size):
            raise PuppetError(f"{out}: was prepared with --size {old['size']}; pass --size {old['size']} "
                              f"to continue it, or a new --out")
        if isinstance(old, dict) and old.get("landmarks") not in (None, landmarks):
            raise PuppetError(f"{out}: was prepared with --landmarks {old['landmarks']}; pass the same "
                              f"--landmarks to continue it, or a new --out")


def main(argv: list[str]) -> int:
    from tqdm import tqdm

    from puppet.data.dataset import Journal, read_journal, write_manifest

    a = parse_args(argv)
    out = Path(a.out)
    check_output(out, [*a.videos, *a.portrait], kind="dir")
    tasks, others = find_videos(a.videos) if a.videos else ([], 0)
    if a.videos and not tasks:
        raise PuppetError(f"{', '.join(a.videos)}: no video files found ({others} other files); pass folders "
                          f"with {', '.join(sorted(VIDEO_EXTENSIONS)[:5])}, ... files")
    if a.synthetic:
        tasks += [Task(id=f"synthetic/{i:05d}", index=i) for i in range(a.synthetic)]
    _check_existing(out, a.size, a.landmarks)
    settings = Settings(out=str(out), size=a.size, max_frames=a.max_frames, min_frames=a.min_frames,
                        landmarks=a.landmarks, portraits=tuple(a.portrait), seed=a.seed, quality=a.quality)
    # Fail on setup problems (tracker backend, portraits) once, here, rather than once per video.
    if any(t.index < 0 for t in tasks):
        from puppet.faces.track import Tracker

        Tracker(mode="video", backend=a.landmarks).close()
    if a.synthetic:
        _portraits(settings)
    out.mkdir(parents=True, exist_ok=True)

    done = read_journal(out)
    todo = [t for t in tasks if t.id not in done or not _file_ok(out, done[t.id])]
    already = len(tasks) - len(todo)
    counts: dict[str, int] = {}
    n_frames = 0
    t0 = time.time()
    bar = tqdm(total=len(todo), unit="video", disable=a.no_progress or not todo, dynamic_ncols=True,
               desc="prepare")
    with Journal(out) as journal:
        if a.workers > 1 and len(todo) > 1:
            ctx = mp.get_context("spawn")  # no forking a process that holds tracker/torch threads
            pool = ctx.Pool(a.workers, initializer=_init_worker, initargs=(settings,))
            results = pool.imap_unordered(_work, todo, chunksize=1)
        else:
            pool = None
            results = (process(t, settings) for t in todo)
        try:
            for k, rec in enumerate(results, 1):
                journal.append(rec)
                done[rec["id"]] = rec
                if rec["status"] == "ok":
                    n_frames += rec["frames"]
                    counts["prepared"] = counts.get("prepared", 0) + 1
                else:
                    counts[rec["reason"]] = counts.get(rec["reason"], 0) + 1
                bar.update(1)
                bar.set_postfix({k2: v for k2, v in counts.items()}, refresh=False)
                if k % MANIFEST_EVERY == 0:
                    write_manifest(out, done, a.size, a.landmarks)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
            bar.close()
    manifest = write_manifest(out, done, a.size, a.landmarks)

    skipped = {k: v for k, v in counts.items() if k != "prepared"}
    parts = [f"prepared {counts.get('prepared', 0)} videos ({n_frames} frames) in {time.time() - t0:.1f} s"]
    if skipped:
        parts.append(f"skipped {sum(skipped.values())} (" + ", ".join(f"{v} {k}" for k, v in
                                                                     sorted(skipped.items())) + ")")
    if already:
        parts.append(f"{already} already done")
    if others:
        parts.append(f"ignored {others} non-video files")
    parts.append(f"dataset {out}: {len(manifest['videos'])} videos")
    print("; ".join(parts), file=sys.stderr)
    return 0


def _file_ok(out: Path, rec: dict) -> bool:
    """A journal record counts as done if it was a skip, or its file is there."""
    return rec.get("status") != "ok" or (out / rec.get("file", "")).is_file()


if __name__ == "__main__":
    run_cli(main)

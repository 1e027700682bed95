"""The quality protocols' clips: the faces corpus's people by split, each clip tracked once and cropped.

`corpus_clips` lists a split's people (bench/corpus_split.json); `load_clip` tracks a clip in video mode,
boxes each face frame with the smoothed shared crop, picks the held-out frames and keeps the decoded frames
the protocol needs; `Clip.crop` cuts any of them at any size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from puppet.errors import PuppetError

SPLIT_FILE = Path(__file__).resolve().parent / "corpus_split.json"
CORPUS_CLIP = "01.mp4"  # the clip of each person a corpus run takes


def corpus_clips(corpus, split: str, split_file=SPLIT_FILE) -> list[tuple[str, Path]]:
    """(person, <corpus>/videos/<person>/01.mp4) for each person of `split` in the split file."""
    root = Path(corpus)
    if not (root / "videos").is_dir():
        raise PuppetError(f"--corpus {root}: no videos/ folder there; pass the faces corpus (a folder "
                          f"holding videos/<person>/NN.mp4, e.g. ../shared/data/faces)")
    try:
        splits = json.loads(Path(split_file).read_text())
    except (OSError, ValueError) as e:
        raise PuppetError(f"{split_file}: can't read the corpus split ({type(e).__name__}); restore "
                          f"bench/corpus_split.json") from None
    names = [k for k, v in splits.items() if isinstance(v, list)]
    if split not in names:
        raise PuppetError(f"--split {split}: not a split of {split_file}; use one of {', '.join(names)}")
    out = []
    for person in splits[split]:
        p = root / "videos" / person / CORPUS_CLIP
        if not p.is_file():
            raise PuppetError(f"--corpus {root}: {p.relative_to(root)} missing (person '{person}' of split "
                              f"{split}); pass the full faces corpus")
        out.append((person, p))
    return out


def clip_names(paths: list[Path]) -> list[str]:
    """Short unique names: the file stem, or parent/stem where stems repeat (e.g. several people's 01.mp4)."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    names = [f"{p.parent.name}/{p.stem}" for p in paths]
    return names if len(set(names)) == len(names) else [f"{i:02d}_{s}" for i, s in enumerate(stems)]


@dataclass
class Clip:
    """One clip, tracked: the reference (face frame 0), the fine-tuning frames and the held-out frames.

    `frames` holds the decoded frames the protocol needs (face-frame index -> BGR frame of the video),
    `lms` every face frame's landmarks in frame pixels, `boxes` its crop box (smoothed over the clip),
    `held` the held-out face-frame indices."""

    name: str
    path: Path
    frames_read: int
    video_index: list[int]  # face-frame index -> frame number in the video
    lms: list[np.ndarray]
    boxes: list  # puppet.faces.crop.Crop per face frame
    held: list[int]
    frames: dict[int, np.ndarray] = field(default_factory=dict)
    _crops: dict = field(default_factory=dict)

    def crop(self, i: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Face frame i cropped with its box at `size`: (uint8 BGR (S, S, 3), its landmarks in the crop)."""
        if (i, size) not in self._crops:
            box = self.boxes[i]
            self._crops[(i, size)] = (box.apply(self.frames[i], size),
                                      np.asarray(box.to_crop(self.lms[i], size), np.float32))
        return self._crops[(i, size)]


def eval_indices(n: int, start: int, count: int) -> list[int]:
    """`count` evenly spaced indices in [start, n)."""
    if n - start < 1:
        return []
    return sorted(set(np.linspace(start, n - 1, min(count, n - start)).round().astype(int).tolist()))


def load_clip(name: str, path, reserve: int, eval_frames: int, max_frames: int | None = None) -> Clip:
    """Track every frame of the clip (video mode), crop box each face frame with the smoothed shared crop,
    pick the held-out frames after the first `reserve` face frames, and keep the decoded frames the protocol
    needs (the first `reserve` and the held-out ones)."""
    from puppet.faces.crop import CropSmoother
    from puppet.faces.track import Tracker
    from puppet.live.sources import FileSource

    path = Path(path)
    src = FileSource(path)  # a missing or unreadable file: one line
    smoother = CropSmoother()
    video_index, lms, boxes, n = [], [], [], 0
    try:
        with Tracker(mode="video") as tracker:
            while max_frames is None or n < max_frames:
                c = src.read()
                if c is None:
                    break
                pts = tracker(c.frame)
                if pts is not None:  # as puppet.faces.frames.crop_clip: frames without a face are left out
                    video_index.append(n)
                    lms.append(np.asarray(pts, np.float32))
                    boxes.append(smoother(lms[-1], n / src.fps))
                n += 1
    finally:
        src.close()
    if len(lms) < reserve + 1:
        raise PuppetError(f"{path}: a face in only {len(lms)} of {n} frames, need more than {reserve} (the "
                          f"largest of --frames) plus held-out frames; pass a longer clip or a smaller "
                          f"--frames")
    held = eval_indices(len(lms), reserve, eval_frames)
    clip = Clip(name, path, n, video_index, lms, boxes, held)
    # Second pass: decode again and keep only the frames needed (a long clip's frames would fill memory).
    want = {video_index[i]: i for i in [*range(reserve), *held]}
    cap = cv2.VideoCapture(str(path))
    try:
        for k in range(max(want) + 1):
            if not cap.grab():
                break
            if k in want:
                ok, f = cap.retrieve()
                if ok and f is not None:
                    clip.frames[want[k]] = f
    finally:
        cap.release()
    if len(clip.frames) != len(want):
        raise PuppetError(f"{path}: the video decoded differently on a second read; re-encode it (e.g. "
                          f"ffmpeg -i IN -c:v libx264 OUT.mp4)")
    return clip

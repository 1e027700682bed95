"""T evenly spaced frames of a video, tracked and cropped: the one way a clip becomes training frames, for
dataset preparation (puppet.data.prepare) and for fine-tuning on a clip (puppet.training.finetune --video).

- read: up to T frames evenly spaced over the clip, decoded in order (every frame grabbed, only the chosen
  ones retrieved: seeking is unreliable in many codecs).
- track: the chosen frames only, with a fresh Tracker in video mode per clip. mediapipe's video mode detects
  afresh, within the same call, when the face has left the place the previous frame had it (a face jumping
  across the frame is found at once), so tracking the frames in between would cost clip length / T times as
  much tracking and give the chosen frames nothing they need.
- crop: the shared crop (puppet.faces.crop.Crop), smoothed over the chosen frames at their times in the clip
  (CropSmoother). Smoothed rather than one box per frame because the box comes from landmarks that jitter a
  little from frame to frame, and the live driver crops the webcam with the same CropSmoother: the face then
  keeps one scale and place over a clip, as the generator sees it live, both in the meta-learning data and
  in the frames it is fine-tuned on. The smoother's first box is that frame's own box, so the first frame
  with a face is cropped exactly as a photo is (Crop.from_landmarks), and its box is the one the live
  paste-back needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from puppet.faces.crop import Crop, CropSmoother

MAX_DECODED = 20000  # a video without a frame count is read whole, up to this many frames


@dataclass
class Sampled:
    """The chosen frames of a clip that have a face, in order."""

    indices: list[int]  # their frame numbers in the clip
    crops: list[np.ndarray]  # uint8 BGR (size, size, 3)
    landmarks: list[np.ndarray]  # (68, 2) float32, crop pixels
    missed: list[int]  # frame numbers of the chosen frames without a face
    picture: np.ndarray | None  # the first frame with a face, whole (None: no face)
    box: Crop | None  # its crop box, in `picture`'s pixels
    decoded: int  # chosen frames decoded (0: not a readable video, or one without frames)


def read_frames(path, max_frames: int) -> tuple[list[np.ndarray], list[int], float]:
    """Up to max_frames frames evenly spaced over the video, their frame numbers, the fps ([]: unreadable)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return [], [], 0.0
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and np.isfinite(fps) and 1.0 <= fps <= 1000.0 else 25.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        frames, indices = [], []
        if count > 0:
            want = sorted(set(np.linspace(0, count - 1, min(count, max_frames)).round().astype(int).tolist()))
            wanted = set(want)
            for k in range(want[-1] + 1):
                if not cap.grab():
                    break  # the header's frame count can be too high
                if k in wanted:
                    ok, f = cap.retrieve()
                    if ok and f is not None:
                        frames.append(f)
                        indices.append(k)
        else:
            # No frame count in the header: read everything (bounded), then keep evenly spaced ones.
            allf = []
            while len(allf) < MAX_DECODED:
                ok, f = cap.read()
                if not ok:
                    break
                allf.append(f)
            if allf:
                n = len(allf)
                indices = sorted(set(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int).tolist()))
                frames = [allf[k] for k in indices]
        return frames, indices, fps
    finally:
        cap.release()


def crop_clip(frames, landmarks, times, size: int) -> tuple[list[int], list[np.ndarray], list[np.ndarray],
                                                             list[Crop]]:
    """The shared crop of each frame with landmarks (None: no face, left out), smoothed over the clip at
    `times` (s): (positions in `frames` of the cropped ones, crops, their landmarks in crop pixels, boxes)."""
    smoother = CropSmoother()
    kept, crops, lms_out, boxes = [], [], [], []
    for k, (f, lms, t) in enumerate(zip(frames, landmarks, times)):
        if lms is None:
            continue
        box = smoother(lms, t)
        kept.append(k)
        crops.append(box.apply(f, size))
        lms_out.append(box.to_crop(lms, size))
        boxes.append(box)
    return kept, crops, lms_out, boxes


def sample_frames(path, n: int, size: int, *, backend: str = "mediapipe") -> Sampled:
    """Up to n frames evenly spaced over the video at `path`, tracked and cropped to size x size (see above).

    A bad video raises nothing: an unreadable one has decoded == 0, one without a face no crops.
    """
    frames, indices, fps = read_frames(path, n)
    if not frames:
        return Sampled([], [], [], [], None, None, 0)
    from puppet.faces.track import Tracker

    # A fresh tracker per clip: video mode tracks from the previous frame, which must be this clip's.
    with Tracker(mode="video", backend=backend) as tracker:
        lms = [tracker(f) for f in frames]
    kept, crops, crop_lms, boxes = crop_clip(frames, lms, [i / fps for i in indices], size)
    return Sampled(
        indices=[indices[k] for k in kept], crops=crops, landmarks=crop_lms,
        missed=[i for i, p in zip(indices, lms) if p is None],
        picture=frames[kept[0]] if kept else None, box=boxes[0] if boxes else None, decoded=len(frames),
    )

"""The photos (or clip frames) a target is fine-tuned on: each face found, picked and cut with the shared
crop.

    crops, landmarks = prepare_photos(["mona.jpg"], 256)   # uint8 BGR (S, S, 3) each, (68, 2) crop pixels
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from puppet.errors import PuppetError
from puppet.faces.images import read_image

log = logging.getLogger(__name__)


def crop_face(bgr: np.ndarray, lms: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The shared crop of a face: (uint8 BGR (S, S, 3), landmarks (68, 2) in crop pixels)."""
    from puppet.faces.crop import Crop

    box = Crop.from_landmarks(lms)
    return box.apply(bgr, image_size), np.asarray(box.to_crop(lms, image_size), dtype=np.float32)


def load_photos(paths, image_size: int):
    """prepare_photos, with the kept photos' names and the reference's whole picture and crop box (the first
    photo with a face): (crops, landmarks, names, (picture, Crop))."""
    from puppet.faces.track import Tracker, pick_face

    crops, lms, kept, skipped, pictures = [], [], [], [], []
    for p in paths:
        if not Path(p).is_file():
            raise PuppetError(f"{p}: no such photo; check the path")
    with Tracker(mode="image") as tracker:
        for p in paths:
            bgr = read_image(p)  # unreadable file: one-line PuppetError naming it
            pts = pick_face(tracker.faces(bgr), p)
            if pts is None:
                skipped.append(p)
                continue
            crop, pts_c = crop_face(bgr, pts, image_size)
            crops.append(crop)
            lms.append(pts_c)
            kept.append(str(p))
            if not pictures:  # the reference: the first photo with a face, whole, for the live paste-back
                from puppet.faces.crop import Crop

                pictures.append((bgr, Crop.from_landmarks(pts)))
    if len(paths) == 1 and skipped:
        raise PuppetError(f"{paths[0]}: no face found; pass a photo with a clear, frontal face")
    if not crops:
        raise PuppetError(f"{', '.join(map(str, paths))}: no face found in any photo; "
                          f"pass photos with a clear, frontal face")
    for p in skipped:
        log.warning(f"{p}: no face found; skipped")
    return crops, lms, kept, pictures[0]


def prepare_photos(paths, image_size: int = 64) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Detect and crop the face in each photo: (crops uint8 BGR (S, S, 3), landmarks (68, 2) crop pixels).

    A photo without a face is an error when it is the only one, else skipped with a warning.
    """
    crops, lms, _, _ = load_photos(list(paths), image_size)
    return crops, lms


def load_video_frames(path, n_frames: int, image_size: int):
    """prepare_video, with the kept frames' names and the first one's whole picture and crop box."""
    from puppet.faces.frames import sample_frames

    clip = sample_frames(path, n_frames, image_size) if Path(path).is_file() else None
    if clip is None or not clip.decoded:
        raise PuppetError(f"{path}: not a readable video file; pass an mp4/avi/mov clip")
    if not clip.crops:
        raise PuppetError(f"{path}: no face found in the chosen frames; pass a clip with a clear face")
    if clip.missed:
        log.warning(f"{path}: no face found in frame(s) {', '.join(map(str, clip.missed))}; skipped")
    kept = [f"{path}#{i}" for i in clip.indices]
    # the reference for the live paste-back: the first kept frame, whole, and the box it was cropped with
    return clip.crops, clip.landmarks, kept, (clip.picture, clip.box)


def prepare_video(path, n_frames: int = 8, image_size: int = 64) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """T evenly spaced frames of a clip, tracked and cropped as puppet.prepare does (puppet.faces.frames)."""
    crops, lms, _, _ = load_video_frames(path, n_frames, image_size)
    return crops, lms

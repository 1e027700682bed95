"""What a target's generator is fed for driving landmarks, built in one place.

A generator takes the sketch of the landmarks and, when its config says so (models.config.ModelConfig.
inputs), the target's reference picture warped piecewise-affinely to them (puppet.faces.warp). `Feeder`
builds both, in that order, for the live loop, the export's self-check and the benchmarks; backends and
exporters take the tuple as it comes.

The warp is made at the face size (the crop the live output shows, which may be larger than the generator's
image size) and resized for the generator; `Feeder.face` then carries the generator's correction (its image
minus the warp it was given) onto the full-size warp, so the photo's detail reaches the output at the size it
is shown. A few-shot target's reference choice lives here too: the reference nearest in shape to the driving
landmarks, kept until another is clearly nearer, so a feeder belongs to one stream of frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch


@dataclass
class Feed:
    """One frame's generator inputs and what they were made from."""

    tensors: tuple[torch.Tensor, ...]  # the generator's arguments, (1, 3, S, S) each, as ModelConfig.inputs
    sketch: np.ndarray  # uint8 BGR, the generator's size
    warped: np.ndarray | None = None  # uint8 BGR: the reference warped to the landmarks, at the face size
    warped_small: np.ndarray | None = None  # the same at the generator's size: what the generator was given
    seconds: dict[str, float] = field(default_factory=dict)  # time per stage: rasterise, warp


class Feeder:
    """A target's generator inputs for a stream of driving landmarks ((68, 2) pixels of the generator's
    image_size crop), with the face crop at `face_size` (default: the generator's image size)."""

    def __init__(self, target, face_size: int | None = None):
        self.target = target
        self.size = int(target.image_size)
        self.face_size = self.size if face_size is None else int(face_size)
        self.names = target.config.inputs
        self._current: int | None = None  # the reference warped last (the choice's hysteresis)
        self._faces: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def reference(self, k: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Reference k as a crop of side `size`: (uint8 BGR (size, size, 3), landmarks (68, 2) in its pixels).
        At image_size it is Target.reference(k). Otherwise ref_image is cut again from the picture at that
        size (the photo's own detail), and a reference without a picture (a few-shot target's other frames, a
        target made before pictures were kept) is resized (cubic)."""
        from puppet.target import to_size

        t = self.target
        if size == self.size:
            return t.reference(k)
        if (k, size) not in self._faces:
            img, lms = t.reference(k)
            lms = to_size(lms, self.size, size)
            if k == 0 and t.picture is not None:
                img = t.crop.apply(t.picture, size)
            else:
                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)
            self._faces[(k, size)] = (img, lms)
        return self._faces[(k, size)]

    def warped(self, landmarks: np.ndarray) -> np.ndarray:
        """The reference nearest in shape to `landmarks` (the one used last unless another is clearly
        nearer) warped to them in the face crop: uint8 BGR (face_size, face_size, 3). At a reference's own
        landmarks (e.g. the neutral) it is that reference unchanged."""
        from puppet.faces.warp import warp
        from puppet.target import to_size

        size = self.face_size
        lms = np.asarray(landmarks, np.float32)
        self._current = self.target.nearest_reference(lms, self._current)
        _, ref_lms = self.target.reference(self._current)
        img, face_lms = self.reference(self._current, size)
        if np.array_equal(lms, ref_lms):
            return img
        return warp(img, face_lms, to_size(lms, self.size, size))

    def __call__(self, landmarks: np.ndarray) -> Feed:
        from puppet.faces.images import to_tensor
        from puppet.faces.sketch import draw_sketch

        t0 = time.perf_counter()
        sketch = draw_sketch(landmarks, self.size)
        feed = Feed((to_tensor(sketch),), sketch)
        t1 = time.perf_counter()
        feed.seconds["rasterise"] = t1 - t0
        if "warped" in self.names:
            big = self.warped(landmarks)
            small = big if self.face_size == self.size else cv2.resize(big, (self.size, self.size),
                                                                       interpolation=cv2.INTER_AREA)
            feed.warped, feed.warped_small = big, small
            feed.tensors += (to_tensor(small),)
            feed.seconds["warp"] = time.perf_counter() - t1
        return feed

    def face(self, generated: np.ndarray, feed: Feed) -> np.ndarray:
        """The face crop (uint8 BGR, face_size²) from the generator's image (uint8 BGR, its size) for `feed`:
        that image itself at the generator's size; at a larger face size, the generator's correction resized
        (bilinear) and added to the full-size warp."""
        if feed.warped is None or self.face_size == self.size:
            return generated
        correction = cv2.subtract(generated, feed.warped_small, dtype=cv2.CV_16S)
        correction = cv2.resize(correction, (self.face_size, self.face_size), interpolation=cv2.INTER_LINEAR)
        return cv2.add(feed.warped, correction, dtype=cv2.CV_8U)  # saturating: [0, 255]

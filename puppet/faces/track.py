"""Face landmark tracking: a uint8 BGR frame -> the 68 iBUG points (68, 2) float32 pixel coords, or None.

Two backends:
- "mediapipe" (default, live loop and photos): mediapipe 0.10.21's FaceMesh, whose models ship inside the
  wheel. "image" mode runs the face detector on every call (photos, unrelated frames); "video" mode detects
  once and then tracks from the previous frame's landmarks (a webcam or a clip, frames in order).
- "fan" (dataset preparation, as in the paper): face-alignment's 2D FAN with its S3FD detector, from the
  `fan` extra. Its weights download to $TORCH_HOME/hub/checkpoints on first use.

Where several faces are present, the largest (by landmark bounding-box area) is returned; ties go to the
one the backend listed first, so the choice is deterministic.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

from puppet.errors import PuppetError
from puppet.faces.landmarks import mediapipe_to_ibug

log = logging.getLogger(__name__)

MODES = ("image", "video")
BACKENDS = ("mediapipe", "fan")

# face-alignment's weight files (face-alignment 1.4 with torch >= 1.7: the 2DFAN4 landmark net as TorchScript,
# the S3FD detector's state dict). torch.hub puts them in $TORCH_HOME/hub/checkpoints.
FAN_WEIGHT_URLS = (
    "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-cd938726ad.zip",
    "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
)


def _check_bgr(bgr: np.ndarray) -> None:
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        got = f"{bgr.dtype} {bgr.shape}" if isinstance(bgr, np.ndarray) else type(bgr).__name__
        raise ValueError(f"expected a uint8 BGR image (H, W, 3), got {got}")


def largest(faces: list[np.ndarray]) -> np.ndarray | None:
    """The face with the largest landmark bounding box; the first one listed on a tie."""
    best, best_area = None, -1.0
    for lms in faces:
        w, h = lms.max(axis=0) - lms.min(axis=0)
        area = float(w) * float(h)
        if area > best_area:  # strict: ties keep the earlier face
            best, best_area = lms, area
    return best


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C++ logging) for a moment; Python's sys.stderr is flushed around it."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


_warmed = False


def _first_face_warmup(face_mesh) -> None:
    """mediapipe logs one more warning (once per process) on its first found face: find one, quietly."""
    global _warmed
    if _warmed:
        return
    _warmed = True
    from puppet.assets import grace_hopper

    img = cv2.imread(str(grace_hopper()))
    if img is not None:
        with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as m:
            m.process(cv2.cvtColor(cv2.resize(img, (256, 300)), cv2.COLOR_BGR2RGB))



class _MediapipeBackend:
    def __init__(self, mode: str, max_faces: int, min_detection_confidence: float,
                 min_tracking_confidence: float):
        from mediapipe.python.solutions import face_mesh

        # mediapipe's C++ side logs its start-up (TFLite delegate, "feedback tensors", NORM_RECT) straight to
        # stderr, through no logger we can configure; those lines mean nothing to a user and would bury our
        # one-line errors. So the graph is built and run once on a blank image with stderr silenced.
        with _quiet_stderr():
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=(mode == "image"),
                max_num_faces=max_faces,
                refine_landmarks=True,  # 478 points: the iris model also sharpens the eye contours
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))
            _first_face_warmup(face_mesh)

    def faces(self, bgr: np.ndarray) -> list[np.ndarray]:
        h, w = bgr.shape[:2]
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        res = self._mesh.process(rgb)
        out = []
        for face in res.multi_face_landmarks or []:
            pts = np.array([(p.x, p.y) for p in face.landmark], dtype=np.float32)
            # mediapipe normalises by the image's extent (0 = left edge of pixel 0); OpenCV's integer
            # coordinates are pixel centres, so shift by half a pixel.
            pts = pts * np.array([w, h], dtype=np.float32) - 0.5
            out.append(mediapipe_to_ibug(pts))
        return out

    def close(self) -> None:
        self._mesh.close()


def _torch_checkpoints_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _fan_weight_urls(face_alignment) -> tuple[str, ...]:
    """The URLs this face-alignment version downloads (read from the package where it says; else ours)."""
    try:
        import torch
        from face_alignment import api
        from face_alignment.detection.sfd import sfd_detector

        torch_version = torch.__version__.split("+")[0].rsplit(".", 1)[0]
        table = getattr(api, "models_urls", {}).get(torch_version) or api.default_model_urls
        return (table["2DFAN-4"], sfd_detector.models_urls["s3fd"])
    except (ImportError, AttributeError, KeyError):
        return FAN_WEIGHT_URLS


class _FanBackend:
    def __init__(self, device: str):
        try:
            import face_alignment
        except ImportError:
            raise PuppetError('face-alignment is not installed; pip install "puppet[fan]"') from None
        ckpt = _torch_checkpoints_dir()
        urls = _fan_weight_urls(face_alignment)
        lt = face_alignment.LandmarksType
        kind = lt.TWO_D if hasattr(lt, "TWO_D") else lt._2D  # renamed in face-alignment 1.4
        try:
            self._fa = face_alignment.FaceAlignment(
                kind, device=device, flip_input=False, face_detector="sfd"
            )
        except (OSError, RuntimeError, ValueError) as e:
            # torch.hub raises URLError (an OSError) offline, RuntimeError/ValueError on a truncated file.
            names = [u.rsplit("/", 1)[-1] for u in urls]
            why = " ".join(str(e).split())[:80]
            missing = [n for n in names if not (ckpt / n).is_file()]
            if not missing and not isinstance(e, OSError) and "cuda" in why.lower():
                raise PuppetError(
                    f"{device}: face-alignment can't use this device ({why}); use --device cpu"
                ) from None
            missing = missing or names  # all there: one of them is unreadable, fetch them again
            wanted = " and ".join(u for u in urls if u.endswith(tuple(missing)))
            raise PuppetError(
                f"{ckpt / missing[0]}: face-alignment's weights could not be loaded "
                f"({type(e).__name__}: {why}); download {wanted} into {ckpt} (or set TORCH_HOME)"
            ) from None

    def faces(self, bgr: np.ndarray) -> list[np.ndarray]:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No faces were detected." is an answer here, not a warning
            found = self._fa.get_landmarks_from_image(rgb)
        return [np.asarray(f, dtype=np.float32)[:, :2] for f in (found or [])]

    def close(self) -> None:
        self._fa = None


class Tracker:
    """`Tracker(mode="image"|"video", backend="mediapipe"|"fan")`; `tracker(bgr) -> (68, 2) float32 | None`.

    Use as a context manager (or call close()) to free the backend's graph.
    """

    def __init__(self, mode: str = "image", backend: str = "mediapipe", *, max_faces: int = 4,
                 device: str = "cpu", min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5):
        if mode not in MODES:
            raise PuppetError(f"tracker mode {mode!r}: unknown; use one of {', '.join(MODES)}")
        if backend not in BACKENDS:
            raise PuppetError(f"tracker backend {backend!r}: unknown; use one of {', '.join(BACKENDS)}")
        self.mode, self.backend = mode, backend
        if backend == "mediapipe":
            self._impl = _MediapipeBackend(mode, max_faces, min_detection_confidence, min_tracking_confidence)
        else:
            self._impl = _FanBackend(device)

    def faces(self, bgr: np.ndarray) -> list[np.ndarray]:
        """All faces found, each (68, 2) float32, in the backend's order."""
        _check_bgr(bgr)
        if self._impl is None:
            raise RuntimeError("Tracker is closed")
        return self._impl.faces(np.ascontiguousarray(bgr))

    def __call__(self, bgr: np.ndarray) -> np.ndarray | None:
        return largest(self.faces(bgr))

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()
            self._impl = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pick_face(faces: list[np.ndarray], name) -> np.ndarray | None:
    """The largest of the faces found in photo `name`; with several, a warning says which one that is."""
    face = largest(faces)
    if len(faces) > 1:
        x0, y0 = face.min(0)
        x1, y1 = face.max(0)
        log.warning(f"{name}: {len(faces)} faces found; using the largest, {x1 - x0:.0f} px wide at "
                    f"x {x0:.0f}..{x1:.0f}, y {y0:.0f}..{y1:.0f}; crop the photo to the one you want")
    return face


def detect(bgr: np.ndarray, backend: str = "mediapipe") -> np.ndarray | None:
    """One-shot: the largest face's 68 points in a single photo, or None."""
    with Tracker("image", backend) as t:
        return t(bgr)


def bench_tracker(frames: list[np.ndarray], mode: str = "video", backend: str = "mediapipe") -> float:
    """Mean milliseconds per frame of `Tracker(mode)` over `frames` (the first frame, a warm-up, excluded)."""
    import time

    if len(frames) < 2:
        raise ValueError("bench_tracker needs at least 2 frames (the first is a warm-up)")
    with Tracker(mode, backend) as t:
        t(frames[0])
        start = time.perf_counter()
        for f in frames[1:]:
            t(f)
        return (time.perf_counter() - start) * 1000.0 / (len(frames) - 1)

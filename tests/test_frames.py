"""sample_frames: T evenly spaced frames of a real mp4, tracked (real mediapipe) and cropped with the smoothed
shared crop; the reference picture and box are the ones the first crop was made with."""

import cv2
import numpy as np

from puppet.faces.crop import Crop
from puppet.faces.frames import sample_frames


def test_evenly_spaced_tracked_and_cropped(grace_hopper_path, tmp_path):
    from puppet.data.clips import write_video
    from puppet.data.motion import animate
    from puppet.faces.track import detect

    bgr = cv2.imread(str(grace_hopper_path))
    frames, _ = animate(bgr, detect(bgr), 12, np.random.default_rng(3))
    clip = sample_frames(write_video(tmp_path / "clip.mp4", frames), 3, 64)
    assert clip.decoded == 3 and clip.indices == [0, 6, 11] and clip.missed == []
    assert all(c.shape == (64, 64, 3) and c.dtype == np.uint8 for c in clip.crops)
    assert all(p.shape == (68, 2) and p.min() > 0 and p.max() < 64 for p in clip.landmarks)
    # The first box is the frame's own (as for a photo), and it is the one its crop was made with.
    assert clip.picture.shape == bgr.shape
    np.testing.assert_array_equal(clip.box.apply(clip.picture, 64), clip.crops[0])
    own = Crop.from_landmarks(clip.box.from_crop(clip.landmarks[0], 64))
    assert np.allclose([own.cx, own.cy, own.size], [clip.box.cx, clip.box.cy, clip.box.size], atol=1e-3)


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 5000)
    clip = sample_frames(bad, 4, 64)
    assert clip.decoded == 0 and clip.crops == [] and clip.picture is None

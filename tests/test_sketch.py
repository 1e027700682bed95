"""The one sketch rasteriser, pinned: if a test here fails, the drawing changed, and every model trained on
the old drawing silently gets worse inputs. Change the pins only on purpose (and retrain)."""

import hashlib
import time

import numpy as np
import pytest
import torch

from puppet.faces.images import to_bgr
from puppet.faces.landmarks import PARTS
from puppet.faces.sketch import COLORS, draw_sketch, sketch_tensor, thickness

# The pins: the exact drawing of synthetic_face(256) at 256x256. A different OpenCV build that changes its
# anti-aliasing also trips this; look at the image (cv2.imwrite) before updating it.
GOLDEN_SHA256_256 = "731b66004e4e34a38560bb6e23f730fd7b1cc544a4c0a44cbd02fc6cb1bb0f13"
GOLDEN_CHANNEL_SUMS_256 = (577789, 461609, 533378)


def synthetic_face(size: int = 256) -> np.ndarray:
    """A clean frontal face drawn on a 256 grid, scaled to `size`: fixed numbers, no randomness."""
    p = np.zeros((68, 2), np.float64)
    t = np.linspace(np.pi, 0, 17)  # jaw: lower half of an ellipse, image-left to image-right
    p[0:17] = np.c_[128 + 80 * np.cos(t), 120 + 100 * np.sin(t)]
    p[17:22] = np.c_[np.linspace(60, 112, 5), [88, 82, 80, 82, 86]]
    p[22:27] = np.c_[np.linspace(144, 196, 5), [86, 82, 80, 82, 88]]
    p[27:31] = np.c_[[128] * 4, np.linspace(100, 150, 4)]
    p[31:36] = np.c_[np.linspace(112, 144, 5), [158, 161, 163, 161, 158]]
    for first, cx in ((36, 92), (42, 164)):
        dx, dy = np.array([-18, -8, 8, 18, 8, -8]), np.array([0, -7, -7, 0, 7, 7])
        p[first:first + 6] = np.c_[cx + dx, 110 + dy]
    p[48:60] = np.c_[[96, 106, 118, 128, 138, 150, 160, 150, 138, 128, 118, 106],
                     [188, 180, 176, 178, 176, 180, 188, 198, 204, 206, 204, 198]]
    p[60:68] = np.c_[[102, 116, 128, 140, 154, 140, 128, 116], [188, 184, 185, 184, 188, 194, 196, 194]]
    return (p * size / 256).astype(np.float32)


def _segments(idx, closed):
    return list(zip(idx[:-1], idx[1:])) + ([(idx[-1], idx[0])] if closed else [])


def _pixel(img, xy):
    return tuple(int(v) for v in img[int(round(float(xy[1]))), int(round(float(xy[0])))])


def test_golden_256_exact_colours_on_every_segment():
    lms = synthetic_face(256)
    img = draw_sketch(lms, 256)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    for name, (idx, closed) in PARTS.items():
        for a, b in _segments(idx, closed):
            m = (lms[a] + lms[b]) / 2
            assert _pixel(img, m) == COLORS[name], (name, a, b, _pixel(img, m))


def test_golden_256_black_away_from_the_lines_and_checksum():
    img = draw_sketch(synthetic_face(256), 256)
    for xy in [(5, 5), (250, 5), (5, 250), (250, 250), (128, 60), (92, 110), (164, 110), (128, 230),
               (70, 140), (186, 140), (128, 191)]:
        assert _pixel(img, xy) == (0, 0, 0), xy
    lit = (img.max(axis=2) > 0).mean()
    assert 0.03 < lit < 0.12, lit  # thin lines on black, not a filled face
    sums = tuple(int(s) for s in img.reshape(-1, 3).sum(0))
    digest = hashlib.sha256(img.tobytes()).hexdigest()
    assert (digest, sums) == (GOLDEN_SHA256_256, GOLDEN_CHANNEL_SUMS_256), (
        f"the sketch drawing changed: sha256 {digest}, channel sums {sums}"
    )


@pytest.mark.parametrize("size", [64, 128])
def test_small_sizes_keep_each_parts_hue(size):
    """At 1 px lines anti-aliasing dims the pixels, but each part keeps its own hue."""
    lms = synthetic_face(size)
    img = draw_sketch(lms, size)
    for name, (idx, closed) in PARTS.items():
        want = np.array(COLORS[name], float) / 255
        for a, b in _segments(idx, closed):
            if {a, b} & {48, 54, 60, 64}:
                continue  # at the mouth corners outer and inner lips share pixels
            px = np.array(_pixel(img, (lms[a] + lms[b]) / 2), float)
            assert px.max() > 120, (name, a, b, px)  # every segment lit
            assert np.abs(px / px.max() - want).max() < 0.06, (name, a, b, px)


def test_thickness_scales_with_size():
    assert [thickness(s) for s in (32, 64, 128, 256, 512)] == [1, 1, 1, 2, 4]
    lit = {s: (draw_sketch(synthetic_face(s), s).max(axis=2) > 0).mean() for s in (128, 256, 512)}
    # lines scale with the image: the lit fraction stays in the same band at every size
    assert max(lit.values()) < 2.0 * min(lit.values()), lit


def test_subpixel_positions_matter():
    lms = synthetic_face(256)
    a = draw_sketch(lms, 256)
    b = draw_sketch(lms + np.float32([0.25, 0.0]), 256)
    assert not np.array_equal(a, b)  # drawn at 1/16 px, not rounded to whole pixels
    assert np.abs(a.astype(int) - b.astype(int)).max() < 160  # yet a quarter pixel is a small change


def test_sketch_tensor_is_the_pinned_drawing_in_the_generators_layout():
    """What the generator gets: the pinned drawing itself (back to an image, byte for byte), as RGB in
    [-1, 1]: each part's colour with its channels in RGB order."""
    lms = synthetic_face(256)
    t = sketch_tensor(lms, 256)
    assert t.shape == (1, 3, 256, 256) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1
    assert hashlib.sha256(to_bgr(t[0]).tobytes()).hexdigest() == GOLDEN_SHA256_256
    for name, (idx, _closed) in PARTS.items():
        x, y = np.round((lms[idx[0]] + lms[idx[1]]) / 2).astype(int)
        b, g, r = COLORS[name]
        torch.testing.assert_close(t[0, :, y, x], torch.tensor([r, g, b]) / 127.5 - 1, msg=name)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="68, 2"):
        draw_sketch(np.zeros((67, 2)), 64)


def test_fast_enough():
    lms = synthetic_face(256)
    draw_sketch(lms, 256)
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        draw_sketch(lms, 256)
        times.append(time.perf_counter() - t0)
    assert np.median(times) < 0.005  # well under 1 ms on a free core; 5 ms leaves room for a busy CI

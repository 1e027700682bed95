"""puppet.faces.regions: openness of eyes and mouth, and the region masks, on real landmarks moved by the
same expression model the synthetic clips use (puppet.faces.pose.move)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.losses import REGION_WEIGHT, region_loss
from puppet.faces.pose import Motion, move
from puppet.faces.regions import openness, region_mask


@pytest.fixture(scope="module")
def face(grace_hopper_path):
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    lms = detect(read_image(grace_hopper_path))
    assert lms is not None
    return lms


def test_openness_follows_blinks_and_the_mouth(face):
    still = openness(face)
    assert 0.15 < still[0] < 0.5 and 0.15 < still[1] < 0.5  # open eyes
    shut = openness(move(face, Motion(blink=1.0)))
    assert (shut[:2] < 0.5 * still[:2]).all()
    opened = [openness(move(face, Motion(mouth=m)))[2] for m in (0.0, 0.3, 0.6, 1.0)]
    assert opened == sorted(opened) and opened[-1] > opened[0] + 0.15
    # Openness is a ratio: the same face at another scale gives the same numbers.
    assert np.allclose(openness(face * 2.5), still, atol=1e-5)


def test_region_mask_covers_mouth_and_eyes_only(face):
    size = (512, 512)
    mouth, eyes, both = (region_mask(face, size, part) for part in ("mouth", "eyes", "both"))
    for m in (mouth, eyes):
        assert m.dtype == np.float32 and set(np.unique(m)) <= {0.0, 1.0}
    assert np.array_equal(both, np.maximum(mouth, eyes))
    ys, xs = np.nonzero(mouth)
    lips = face[48:60]
    assert lips[:, 1].min() - 15 < ys.min() and ys.max() < lips[:, 1].max() + 15
    for eye in (face[36:42], face[42:48]):
        cx, cy = np.round(eye.mean(0)).astype(int)
        assert eyes[cy, cx] == 1.0
    assert mouth[int(face[33, 1]) - 5, int(face[33, 0])] == 0.0  # the nose is outside
    assert 0.005 < both.mean() < 0.15
    # A wider-open mouth covers more.
    assert region_mask(move(face, Motion(mouth=1.0)), size, "mouth").sum() > mouth.sum()
    with pytest.raises(ValueError, match="mouth, eyes or both"):
        region_mask(face, size, "nose")


def test_region_loss_sees_only_the_region():
    real = torch.zeros(2, 3, 16, 16)
    region = torch.zeros(2, 1, 16, 16)
    region[:, :, 4:8, 4:8] = 1
    outside = real.clone()
    outside[:, :, 10:, 10:] = 1.0  # wrong everywhere outside the region
    assert float(region_loss(outside, real, region)) == 0.0
    inside = real.clone()
    inside[:, :, 4:8, 4:8] = 0.5
    # The mean L1 over the region's pixels, weighted (the +1 in the denominator keeps an empty region at 0).
    expected = REGION_WEIGHT * 0.5 * (2 * 3 * 16) / (3 * 2 * 16 + 1)
    assert float(region_loss(inside, real, region)) == pytest.approx(expected, rel=1e-6)

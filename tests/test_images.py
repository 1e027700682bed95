import numpy as np
import torch

from puppet.faces.images import to_bgr, to_tensor


def test_round_trip_and_channel_order():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = to_tensor(img)
    assert t.shape == (1, 3, 5, 7) and t.dtype == torch.float32
    assert float(t.min()) >= -1 and float(t.max()) <= 1
    # channel 0 of the tensor is red, which is channel 2 of BGR
    assert torch.allclose(t[0, 0], torch.from_numpy(img[..., 2]).float() / 127.5 - 1)
    np.testing.assert_array_equal(to_bgr(t[0]), img)
    np.testing.assert_array_equal(to_bgr(t)[0], img)

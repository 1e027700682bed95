"""Few-shot fine-tuning's training batches: the T frames and, with augmentation, fresh warps of them."""

from __future__ import annotations

import numpy as np
import torch

from puppet.faces.images import to_tensor

AUG_FRACTION = 0.75  # share of each batch that is a fresh warp (the rest: the T frames themselves)


class Batches:
    """Training batches of the T frames and, with augmentation, fresh warps of them: (frames, sketches,
    warped references or None). The reference is frame 0; an appearance generator's input for a training
    sketch is the reference warped to that sketch's landmarks."""

    def __init__(self, frames_bgr, landmarks, image_size: int, augment: bool, rng: np.random.Generator,
                 appearance: bool):
        from puppet.faces.sketch import sketch_tensor

        self.frames = [np.ascontiguousarray(f) for f in frames_bgr]
        self.lms = [np.asarray(p, dtype=np.float32) for p in landmarks]
        self.size = image_size
        self.augment = augment
        self.rng = rng
        self.appearance = appearance
        self.x = torch.cat([to_tensor(f) for f in self.frames])
        self.y = torch.cat([sketch_tensor(p, image_size) for p in self.lms])
        self._warped: dict[int, torch.Tensor] = {}
        self._regions: dict[int, torch.Tensor] = {}  # the real frames' region masks, the same every step

    def _reference_for(self, i: int) -> torch.Tensor:
        """An appearance generator's input for frame i: what the live loop would give for its landmarks,
        the nearest *other* frame (nearest_shape, as puppet.feed picks) warped to them; frame i
        itself when T = 1.
        Cached: it is the same every step."""
        if i not in self._warped:
            from puppet.faces.warp import nearest_shape, warp

            others = [j for j in range(len(self.frames)) if j != i]
            if not others:
                self._warped[i] = self.x[i : i + 1]
            else:
                j = others[nearest_shape([self.lms[j] for j in others], self.lms[i])]
                self._warped[i] = to_tensor(warp(self.frames[j], self.lms[j], self.lms[i]))
        return self._warped[i]

    def _region_of(self, i: int) -> torch.Tensor:
        """Frame i's mouth and eye regions (1, 1, S, S), cached."""
        if i not in self._regions:
            from puppet.faces.regions import region_mask

            self._regions[i] = torch.from_numpy(region_mask(self.lms[i], self.size))[None, None]
        return self._regions[i]

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(frames, sketches, warped references or None, the frames' mouth and eye regions (B, 1, S, S))."""
        from puppet.data.motion import perturb
        from puppet.faces.regions import region_mask
        from puppet.faces.sketch import sketch_tensor
        from puppet.faces.warp import warp

        idx = self.rng.integers(0, len(self.frames), size=batch)
        xs, ys, ws, rs = [], [], [], []
        for k, i in enumerate(idx):
            # always keep at least one real frame per batch: the photos are the only ground truth of the face
            augmented = self.augment and k > 0 and self.rng.random() < AUG_FRACTION
            if augmented and self.appearance:
                # The target stays the real frame; its own picture reaches it by a detour through a random
                # pose (warped there and back), so G sees a warp's artifacts (stretched and squeezed
                # texture, a painted mouth) against the truth. Warping the frame as the target instead
                # would ask G for the warp itself, i.e. to learn nothing.
                dst = perturb(self.lms[i], self.rng)
                detour = warp(self.frames[i], self.lms[i], dst)
                xs.append(self.x[i : i + 1])
                ys.append(self.y[i : i + 1])
                ws.append(to_tensor(warp(detour, dst, self.lms[i])))
                rs.append(self._region_of(int(i)))
            elif augmented:
                dst = perturb(self.lms[i], self.rng)
                xs.append(to_tensor(warp(self.frames[i], self.lms[i], dst)))
                ys.append(sketch_tensor(dst, self.size))
                rs.append(torch.from_numpy(region_mask(dst, self.size))[None, None])
            else:
                xs.append(self.x[i : i + 1])
                ys.append(self.y[i : i + 1])
                if self.appearance:
                    ws.append(self._reference_for(int(i)))
                rs.append(self._region_of(int(i)))
        return torch.cat(xs), torch.cat(ys), (torch.cat(ws) if ws else None), torch.cat(rs)

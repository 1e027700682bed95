"""A picture of where a warp fails: real | warp | model on each person's most open mouth and most closed eyes.

    python -m bench.strips --corpus ../shared/data/faces --checkpoint META [--people 5] --out docs/x.jpg

For each clip of the split (dev_eval by default), T = 1 as the quality protocol does it: the first face frame
is the target's photo, the model is fine-tuned from META with the defaults; of the later frames (up to
--max-frames) the one whose mouth is most open and the one whose eyes are most closed (puppet.faces.regions
.openness) drive it. Each row: that person's two frames as real | warp | model, a zoom on the mouth or the
eyes below each.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from bench.corpus import SPLIT_FILE, corpus_clips, load_clip
from bench.quality import generate, warp_baseline
from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli

log = logging.getLogger(__name__)
TILE = 192


def _zoom(img: np.ndarray, lms: np.ndarray, idx: slice, size: int) -> np.ndarray:
    """The box around lms[idx], grown to a square with a margin, resized to size²."""
    p = lms[idx]
    c = (p.min(0) + p.max(0)) / 2
    half = max(float((p.max(0) - p.min(0)).max()) * 0.8, 12.0)
    x0, y0 = np.clip(np.round(c - half).astype(int), 0, img.shape[1] - 1)
    x1, y1 = np.clip(np.round(c + half).astype(int), 1, img.shape[1])
    return cv2.resize(img[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_CUBIC)


def person_row(clip, meta_path: str, size: int) -> np.ndarray:
    from puppet.faces.regions import openness
    from puppet.training.finetune import FinetuneOptions, finetune

    ref, ref_lms = clip.crop(0, size)
    target = finetune([ref], [ref_lms], checkpoint=meta_path,
                      options=FinetuneOptions(steps=0, progress=False))
    later = [i for i in clip.held]
    opened = np.stack([openness(clip.crop(i, size)[1]) for i in later])
    picks = [(later[int(np.argmax(opened[:, 2]))], slice(48, 68)),
             (later[int(np.argmin(opened[:, :2].mean(1)))], slice(36, 48))]
    tiles = []
    for i, part in picks:
        real, lms = clip.crop(i, size)
        warp = warp_baseline(ref, ref_lms, [lms])[0]
        out = generate(target, [lms])[0]
        for img in (real, warp, out):
            top = cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_AREA)
            tiles.append(np.concatenate([top, _zoom(img, lms, part, TILE)], axis=0))
    return np.concatenate(tiles, axis=1)


def main(argv: list[str]) -> int:
    from puppet.training.checkpoint import load_meta

    p = Parser(prog="python -m bench.strips", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", required=True, help="the faces corpus")
    p.add_argument("--checkpoint", required=True, help="the meta-learned model")
    p.add_argument("--split", default="dev_eval")
    p.add_argument("--people", type=int, default=5, help="rows (default 5: the split's first)")
    p.add_argument("--max-frames", type=int, default=300, help="frames of each clip to search (default 300)")
    p.add_argument("--out", required=True, help="the image to write (.jpg or .png)")
    a = p.parse_args(argv)
    size = load_meta(a.checkpoint)["config"]["image_size"]
    rows = []
    for name, path in corpus_clips(a.corpus, a.split, SPLIT_FILE)[: a.people]:
        clip = load_clip(name, path, reserve=1, eval_frames=a.max_frames, max_frames=a.max_frames)
        log.info("%s: %d face frames", name, len(clip.lms))
        rows.append(person_row(clip, a.checkpoint, size))
    if not rows:
        raise PuppetError(f"{a.corpus}: no clips in split {a.split}")
    from puppet.files import atomic_path

    with atomic_path(a.out) as tmp:
        ext = "." + str(a.out).rsplit(".", 1)[-1]
        ok, buf = cv2.imencode(ext, np.concatenate(rows, axis=0), [cv2.IMWRITE_JPEG_QUALITY, 88])
        if not ok:
            raise PuppetError(f"{a.out}: can't encode this image type; use .jpg or .png")
        buf.tofile(str(tmp))
    print(f"wrote {a.out}: per person, the most open mouth then the most closed eyes, "
          f"each real | warp | model")
    return 0


if __name__ == "__main__":
    run_cli(main)

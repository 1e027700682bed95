"""The meta-learning loader's throughput: items as float32 against uint8 between its worker processes.

    python -m bench.loader --data .gpu/pack [--config cpu-warp] [--batch 16] [--workers 2] [--batches 12]

The same dataset (puppet.data.dataset.VideoDataset with the warped reference, regions and contrast pairs, as
puppet.train makes it for an appearance config), through torch's DataLoader, taking turns (float32, uint8,
float32, uint8, ...), `--rounds` each; after two warm-up batches each round times `--batches` batches. The
uint8 items are what puppet.train loads (from_uint8 on the device turns them into the float ones, bit for
bit: tests/test_prepare.py).
"""

from __future__ import annotations

import logging
import time

from puppet.cli import Parser
from puppet.errors import run_cli
from puppet.files import write_json

log = logging.getLogger(__name__)


def ms_per_batch(data: str, size: int, uint8: bool, batch: int, workers: int, batches: int) -> float:
    from torch.utils.data import DataLoader, RandomSampler

    from puppet.data.dataset import VideoDataset

    ds = VideoDataset(data, size, K=4, seed=0, group="folder", warped=True, regions=True, contrast=0.5,
                      uint8=uint8)
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, prefetch_factor=4 if workers else None,
                        sampler=RandomSampler(ds, replacement=True, num_samples=batch * (batches + 2)))
    it = iter(loader)
    next(it), next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return (time.perf_counter() - t0) / batches * 1000.0


def main(argv: list[str]) -> int:
    p = Parser(prog="python -m bench.loader", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a prepared DATA folder (e.g. python -m bench.pack's)")
    p.add_argument("--config", default="cpu-warp", help="its image size is the items' (default cpu-warp)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=12)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args(argv)
    from models.config import get_config

    size = get_config(a.config).image_size
    rows = {"float32": [], "uint8": []}
    for _ in range(a.rounds):
        for kind in rows:
            ms = ms_per_batch(a.data, size, kind == "uint8", a.batch, a.workers, a.batches)
            rows[kind].append(round(ms, 1))
    for kind, ms in rows.items():
        print(f"{kind:>8}: {', '.join(f'{m:.0f}' for m in ms)} ms a batch of {a.batch} ({a.workers} workers)")
    ratio = sum(rows["float32"]) / sum(rows["uint8"])
    print(f"uint8 loads {ratio:.2f}x as fast")
    if a.json:
        write_json(a.json, {"batch": a.batch, "workers": a.workers, "size": size, "ms": rows,
                            "speedup": round(ratio, 2)})
    return 0


if __name__ == "__main__":
    run_cli(main)

"""The data pack a GPU run trains on: the corpus's training people, prepared, small enough to travel.

    python -m bench.pack --corpus ../shared/data/faces --out .gpu/pack      (.gpu/ is git-ignored)

Runs puppet.prepare on every `train` person of bench/corpus_split.json (one person = one video = one row of
D's W: `puppet.train --group folder`), up to --max-frames evenly spaced frames a clip, 256² crops stored as
JPEG at --quality. Only real talking clips: synthetic clips of still photos warp the photo, so their open
mouths are stretched lips, exactly what the generator must learn not to draw. The pack travels beside the
code to a lent GPU machine (64 MiB in all with the tracked tree), so it is checked against --max-mb.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bench.corpus import SPLIT_FILE
from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli

log = logging.getLogger(__name__)


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main(argv: list[str]) -> int:
    p = Parser(prog="python -m bench.pack", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", required=True, help="the faces corpus (its videos/<person>/ folders)")
    p.add_argument("--out", default=".gpu/pack", help="the pack folder (default .gpu/pack)")
    p.add_argument("--split", default="train", help="which list of the split file (default train)")
    p.add_argument("--split-file", default=str(SPLIT_FILE), help="default bench/corpus_split.json")
    p.add_argument("--max-frames", type=int, default=40, help="frames per clip (default 40)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality (default 85)")
    p.add_argument("--max-mb", type=float, default=36.0, help="refuse a pack larger than this (default 36)")
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args(argv)
    people = json.loads(Path(a.split_file).read_text())[a.split]
    videos = Path(a.corpus) / "videos"
    missing = [name for name in people if not (videos / name).is_dir()]
    if missing:
        raise PuppetError(f"{videos}: no folder for {', '.join(missing[:5])}; "
                          f"pass the faces corpus as --corpus")
    from puppet.data.prepare import main as prepare

    prepare([*(str(videos / name) for name in people), "--out", a.out, "--max-frames", str(a.max_frames),
             "--quality", str(a.quality), "--size", "256", "--workers", str(a.workers), "--no-progress"])
    mb = folder_mb(Path(a.out))
    if mb > a.max_mb:
        raise PuppetError(f"{a.out}: {mb:.1f} MiB, over --max-mb {a.max_mb}; lower --max-frames or --quality")
    print(f"{a.out}: {len(people)} people, {mb:.1f} MiB")
    return 0


if __name__ == "__main__":
    run_cli(main)

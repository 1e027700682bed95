"""The embedded-default demo: puppet end to end with no GPU, no webcam and nothing downloaded.

    python -m puppet.demo [--photo PHOTO] [--source CLIP] [--out demo_out] [--config tiny] [--steps N]

1. A target: fine-tuned from the meta-learned model that ships with puppet (models/weights/, MODEL_CARD.md),
   with warp augmentation, on a portrait that ships in a package (matplotlib's Grace Hopper), or on --photo;
   --from-scratch trains a small model from random weights instead. Cached: a second run with the same
   photo and settings starts at once.
2. A driving clip: a synthetic talking head made from another packaged portrait (scikit-image's astronaut,
   animated by puppet.data.motion), or --source.
3. The live loop (puppet.live, the same threads and stages as with a webcam) drives the target with the clip
   and writes `demo.mp4`: driver | sketch | output frame side by side (the face pasted back into the whole
   photo, 16:9), `output.mp4` (what a virtual camera would get: 1280x720), `demo.png` (a few frames, stacked)
   and `stats.json`. With a display it also opens the preview window.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli

log = logging.getLogger(__name__)

SCRATCH_CONFIG = "tiny"
SCRATCH_STEPS = 600
DEMO_FRAMES = 100
PANEL_HEIGHT = 256



def cache_dir() -> Path:
    """Where the demo keeps its fine-tuned target (puppet.files.cache_root)."""
    from puppet.files import cache_root

    return cache_root()


def target_cache_path(photo: Path, config: str | None, steps: int, seed: int) -> Path:
    """The cached target's name: it changes with the photo's bytes, the settings, the shipped model and
    puppet's version. config None: fine-tuned from the shipped model."""
    from puppet import __version__
    from puppet.target import FORMAT_VERSION
    from puppet.training.checkpoint import SHIPPED_META

    h = hashlib.sha256(photo.read_bytes())
    shipped = hashlib.sha256(SHIPPED_META.read_bytes()).hexdigest() if config is None else ""
    h.update(json.dumps([config, steps, seed, __version__, FORMAT_VERSION, shipped]).encode())
    config = config or "shipped"
    return cache_dir() / f"demo-{photo.stem}-{config}-{h.hexdigest()[:12]}.pt"


def make_target(photo: Path, config: str | None, steps: int, seed: int, device: str) -> Path:
    """Fine-tune on `photo` unless cached; its path. config None: from the shipped meta-learned model (the
    content loss needs no download); a config name: from scratch with a pixel loss. The target keeps the
    photo as its picture (the live output pastes the face back into it)."""
    from models.config import get_config
    from puppet.faces.crop import Crop
    from puppet.faces.images import read_image
    from puppet.faces.track import detect
    from puppet.target import load_target, save_target
    from puppet.training.checkpoint import load_meta, shipped_meta
    from puppet.training.finetune import FinetuneOptions, finetune

    path = target_cache_path(photo, config, steps, seed)
    if path.exists():
        try:
            load_target(path)
            log.info(f"target: cached {path}")
            return path
        except PuppetError as e:  # a damaged cache is rebuilt, not trusted
            log.info(f"{e}; fine-tuning again")
    meta = load_meta(shipped_meta()) if config is None else None
    size = get_config(meta["config"] if meta is not None else config).image_size
    bgr = read_image(photo)
    pts = detect(bgr)
    if pts is None:
        raise PuppetError(f"{photo}: no face found; pass a photo with a clear, frontal face")
    box = Crop.from_landmarks(pts)  # the shared crop, as puppet.finetune cuts it
    crops, lms = [box.apply(bgr, size)], [box.to_crop(pts, size)]
    start = "the shipped model" if meta is not None else f"scratch ('{config}')"
    log.info(f"target: fine-tuning from {start} on {photo.name}, {steps} steps with warp augmentation "
             f"(once; cached in {path.parent})")
    options = FinetuneOptions(steps=steps, augment=True, device=device, seed=seed,
                              content="auto" if meta is not None else "l1")
    target = finetune(crops, lms, None if meta is not None else config, checkpoint=meta, options=options,
                      sources=[photo.name], picture=bgr, crop_box=box)
    save_target(path, target)
    return path


def make_driver(out: Path, n_frames: int, seed: int, portrait: Path | None = None) -> Path:
    """A synthetic talking clip of the astronaut portrait (or `portrait`), written to out/driver.mp4."""
    from puppet.assets import astronaut, grace_hopper
    from puppet.data.clips import load_portraits, write_video
    from puppet.data.motion import animate

    portrait = portrait or astronaut() or grace_hopper()
    [(_, img, lms)] = load_portraits([portrait])
    frames, _ = animate(img, lms, n_frames, np.random.default_rng(seed))
    path = write_video(out / "driver.mp4", frames, fps=25.0)
    log.info(f"driver: {n_frames} synthetic frames of {Path(portrait).name} -> {path}")
    return path


class PanelRecorder:
    """Takes the preview window's place in the live loop: writes each panel (driver | sketch | output frame)
    to an mp4 (a FileSink sized by the first panel) and keeps them for the still, and forwards to a real
    window when there is a display."""

    def __init__(self, path: Path, fps: float, window=None, height: int = PANEL_HEIGHT):
        self.path, self.fps, self.window, self.height = path, fps, window, height
        self.show_landmarks = False
        self.show_stats = False
        self.panels: list[np.ndarray] = []
        self.sink = None

    def show(self, camera, sketch, output, landmarks=None, lines=None, status=None) -> None:
        from puppet.live.sinks import FileSink, preview_panel

        panel = preview_panel(camera, sketch, output, self.height)
        if self.sink is None:
            self.sink = FileSink(self.path, (panel.shape[1], panel.shape[0]), self.fps)
        self.sink.write(panel)
        self.panels.append(panel)
        if self.window is not None:
            self.window.show(camera, sketch, output, landmarks, lines, status)

    def poll(self, wait_ms: int = 1):
        return self.window.poll(wait_ms) if self.window is not None else None

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
        if self.window is not None:
            self.window.close()

    def still(self, n: int = 4) -> np.ndarray:
        """n panels evenly spread over the clip, stacked: the picture in the README."""
        idx = np.linspace(0, len(self.panels) - 1, n).round().astype(int)
        return np.vstack([self.panels[i] for i in idx])


def _parser() -> Parser:
    p = Parser(prog="python -m puppet.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--photo", type=Path, help="the target's photo (default: matplotlib's Grace Hopper)")
    p.add_argument("--source", help="a driving video (default: a synthetic talking clip of the astronaut)")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    p.add_argument("--from-scratch", action="store_true",
                   help=f"train a '{SCRATCH_CONFIG}' model from random weights instead of the shipped model")
    p.add_argument("--config", help=f"network size, with --from-scratch (default {SCRATCH_CONFIG})")
    p.add_argument("--steps", type=int,
                   help=f"fine-tuning steps (default: fine-tuning's own from the shipped model; "
                        f"{SCRATCH_STEPS} with --from-scratch)")
    p.add_argument("--frames", type=int, default=DEMO_FRAMES, help="length of the synthetic driving clip")
    p.add_argument("--backend", default="auto", help="auto|torch|onnxruntime|tensorrt (default auto)")
    p.add_argument("--device", default="auto", help="fine-tuning device: auto|cpu|cuda")
    p.add_argument("--no-window", action="store_true", help="don't open the preview window")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str]) -> int:
    from puppet.assets import grace_hopper
    from puppet.live.app import load_targets
    from puppet.live.framing import Framing
    from puppet.live.loop import Live
    from puppet.live.sinks import FileSink, PreviewWindow, display_available
    from puppet.live.sources import FileSource
    from puppet.live.stats import Stats

    a = _parser().parse_args(argv)
    photo = a.photo or grace_hopper()
    if not Path(photo).is_file():
        raise PuppetError(f"{photo}: no such photo; pass --photo a JPEG or PNG with one face")
    if a.config and not a.from_scratch:
        raise PuppetError("--config: only with --from-scratch (the shipped model has its own)")
    config = (a.config or SCRATCH_CONFIG) if a.from_scratch else None
    if a.steps is not None:
        steps = a.steps
    else:
        from puppet.training.finetune import DEFAULT_STEPS_META

        steps = SCRATCH_STEPS if a.from_scratch else DEFAULT_STEPS_META
    if steps < 0 or a.frames < 2:
        raise PuppetError("--steps must be >= 0 and --frames >= 2")
    from puppet.files import check_output

    check_output(a.out, [photo, a.source], kind="dir")
    a.out.mkdir(parents=True, exist_ok=True)

    target_path = make_target(Path(photo), config, steps, a.seed, a.device)
    clip = Path(a.source) if a.source else make_driver(a.out, a.frames, a.seed)

    framing = Framing()  # 1280x720, the whole photo fitted: what puppet.live sends by default
    targets = load_targets([str(target_path)], a.backend, None, framing)
    for t in targets:
        if t.compositor.notice:
            log.warning(t.compositor.notice)
    source = FileSource(clip)
    window = None
    if not a.no_window and display_available()[0]:
        window = PreviewWindow()
    recorder = PanelRecorder(a.out / "demo.mp4", source.fps, window)
    output = FileSink(a.out / "output.mp4", framing.size, source.fps)
    stats = Stats(source=source.name, targets=[str(target_path)], backend=targets[0].backend.name,
                  mode="relative", image_size=targets[0].size)
    try:
        Live(targets, source, [output], recorder, stats).run()
    finally:
        output.close()
        recorder.close()
        source.close()
    if not recorder.panels:
        raise PuppetError(f"{clip}: no frame came through the live loop; pass a clip with a face")
    cv2.imwrite(str(a.out / "demo.png"), recorder.still())
    stats.write_json(a.out / "stats.json")
    print(stats.table())
    log.info(f"wrote {a.out / 'demo.mp4'} (driver | sketch | output frame), {a.out / 'output.mp4'}, "
        f"{a.out / 'demo.png'}, {a.out / 'stats.json'}")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

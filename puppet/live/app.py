"""`python -m puppet.live`: load the targets and their backends, open the source and outputs, run the loop."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.live.framing import FITS, Framing, parse_size
from puppet.live.gains import MAX_GAIN, parse_gain
from puppet.live.loop import Live, LiveTarget
from puppet.live.runtime import BACKENDS
from puppet.live.settings import Settings
from puppet.live.sinks import VIDEO_EXTS, FileSink, PreviewWindow, VirtualCamSink
from puppet.live.sources import open_source
from puppet.live.stats import Stats
from puppet.target import MAX_FACE_SIZE

log = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="python -m puppet.live", description="Drive a target face with your webcam, live.",
               epilog="Preview window keys: c recalibrate the neutral face, m mirror, n/p next/previous "
                      "target, g pick a gain, + and - change it, 0 resets it to 1 (remembered per target), "
                      "l landmarks, s stats, q or Esc quit.")
    p.add_argument("--target", action="append", required=True, metavar="FILE.pt",
                   help="target file from puppet.finetune; repeat it to switch with n/p")
    p.add_argument("--source", default="0",
                   help="camera index, /dev/videoN, a video file, or demo (default 0)")
    p.add_argument("--output", action="append", metavar="virtualcam|window|FILE.mp4",
                   help="repeatable (default: virtualcam and window)")
    p.add_argument("--backend", default="auto", metavar="NAME",
                   help="auto|tensorrt|torch|onnxruntime (default auto)")
    p.add_argument("--device", default=None,
                   help="where the generator runs: cuda, cuda:1 or cpu (default: the GPU if there is one)")
    p.add_argument("--mirror", action="store_true", help="mirror the camera (like a mirror)")
    p.add_argument("--absolute", action="store_true",
                   help="drive with the raw landmarks in the driver's crop (as the paper does) "
                        "instead of relative motion")
    p.add_argument("--gain", action="append", default=[], metavar="PART=X",
                   help=f"motion strength of a part: eyes, brows, mouth, position, scale, roll, or head (the "
                        f"last three); 0 freezes it, 1 follows (default), up to {MAX_GAIN:g} exaggerates, "
                        f"limited smoothly; repeatable; overrides what the keys remembered for the target")
    p.add_argument("--no-idle", action="store_true",
                   help="when the face is lost, hold the still neutral "
                        "(default: the avatar blinks and breathes)")
    p.add_argument("--no-openness", action="store_true",
                   help="move the eyes and the mouth by the driver's offsets like the rest of the face, "
                        "instead of by how open they are (a blink then may not close the target's eyes)")
    p.add_argument("--stats", metavar="FILE.json", help="write the run's statistics here at exit")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N source frames")
    p.add_argument("--vcam-device", metavar="DEV",
                   help="virtual camera device, e.g. /dev/video2 or 'OBS Virtual Camera'")
    p.add_argument("--vcam-backend", metavar="NAME",
                   help="pyvirtualcam backend: v4l2loopback, obs, unitycapture")
    p.add_argument("--output-mode", default="picture", choices=("picture", "crop"),
                   help="picture: the face pasted back into the target's whole picture, framed (default); "
                        "crop: the generator's square crop alone")
    p.add_argument("--size", metavar="WxH",
                   help="output frame size (default 1280x720; --output-mode crop: the crop's own size)")
    p.add_argument("--fit", default="fit", choices=FITS,
                   help="fit: the whole picture in the frame, centred (default); fill: fill the frame, "
                        "cropping the picture's edges")
    p.add_argument("--face-size", type=int, default=MAX_FACE_SIZE, metavar="N",
                   help="largest side in pixels of the face crop that is warped and pasted into the output "
                        f"(default {MAX_FACE_SIZE}): the crop is as large as the face is shown in the output "
                        "frame, up to N; the generator runs at its own size. A smaller N saves CPU; N at "
                        "most the generator's size: the face as generated")
    p.add_argument("--pad-720p", action="store_true",
                   help="deprecated: the output is 1280x720 by default (same as --size 1280x720)")
    a = p.parse_args(argv)
    if a.backend not in BACKENDS:
        raise PuppetError(f"--backend {a.backend}: unknown; use one of {', '.join(BACKENDS)}")
    gains = {}
    for g in a.gain:
        try:
            gains.update(parse_gain(g))
        except ValueError as e:
            raise PuppetError(f"--gain {g}: {e}") from None
    a.gain = gains
    if a.face_size < 1:
        raise PuppetError(f"--face-size {a.face_size}: must be a side in pixels, e.g. 512 or 256")
    if a.max_frames is not None and a.max_frames < 1:
        raise PuppetError(f"--max-frames {a.max_frames}: must be at least 1")
    if a.size is not None:
        try:
            a.size = parse_size(a.size)
        except ValueError as e:
            raise PuppetError(f"--size {a.size}: {e}; give WIDTHxHEIGHT, e.g. 1280x720") from None
        if a.size[0] % 2 or a.size[1] % 2:
            raise PuppetError(f"--size {a.size[0]}x{a.size[1]}: width and height must be even "
                              f"(video encoders and virtual cameras need it), e.g. 1280x720")
    if a.pad_720p:
        log.warning("--pad-720p is deprecated: the output is 1280x720 by default (--size sets another)")
        a.size = a.size or (1280, 720)
    a.output = a.output or ["virtualcam", "window"]
    for o in a.output:
        if o not in ("virtualcam", "window") and Path(o).suffix.lower() not in VIDEO_EXTS:
            raise PuppetError(f"--output {o}: unknown output; "
                              f"use virtualcam, window or a file ending in .mp4")
    return a


def framing_of(a: argparse.Namespace) -> Framing | None:
    """The output frame of --output-mode picture (--size, --fit); None for --output-mode crop."""
    if a.output_mode == "crop":
        return None
    return Framing(*(a.size or Framing().size), a.fit)


def live_target(path: str, target, backend, framing: Framing | None = None,
                face_cap: int | None = None) -> LiveTarget:
    """A loaded target and its backend, ready for the loop: its feeder at its face size (puppet.live.framing.
    face_size, up to face_cap), the backend warmed up (its first call, allocation and kernel selection, would
    stall the first frame) and, with a framing, its compositor at that face size, colour-matched on its
    neutral."""
    import numpy as np
    import torch

    from puppet.faces.images import to_bgr
    from puppet.feed import Feeder
    from puppet.live.compose import Compositor
    from puppet.live.framing import face_size

    t = LiveTarget(path, target, backend, Feeder(target, face_size(target, framing, face_cap)))
    feed = t.feeder(t.ref)
    neutral = t.backend.generate(*feed.tensors)
    if framing is not None:
        neutral = t.feeder.face(to_bgr(torch.as_tensor(np.asarray(neutral))[0]), feed)
        t.compositor = Compositor.for_target(target, framing, neutral=neutral, quiet=True, size=t.face)
    return t


def load_targets(paths: list[str], backend: str, device: str | None,
                 framing: Framing | None = None, face_cap: int | None = None) -> list[LiveTarget]:
    """Every target and its generator backend, loaded up front: n/p switch instantly, errors come first.
    With a framing, each gets its compositor (puppet.live.compose), colour-matched on its neutral."""
    from puppet.live.runtime import load_backend
    from puppet.target import load_target

    out = []
    for path in paths:
        target = load_target(path)  # read once; the backend finds exports beside it by its path and hash
        out.append(live_target(path, target, load_backend(backend, target, device=device, verbose=False),
                               framing, face_cap))
    return out


def open_outputs(a: argparse.Namespace, size: int | tuple[int, int], fps: float
                 ) -> tuple[list, PreviewWindow | None]:
    """The sinks, each `size` (a square's side, or (width, height)), and the preview window if asked for."""
    outputs, window = [], None
    try:
        for o in dict.fromkeys(a.output):  # each once
            if o == "virtualcam":
                outputs.append(VirtualCamSink(size, fps, a.vcam_device, a.vcam_backend))
            elif o == "window":
                try:
                    window = PreviewWindow()
                except PuppetError as e:
                    if len(a.output) == 1:
                        raise
                    log.info(f"{e}; carrying on without the preview")
            else:
                outputs.append(FileSink(o, size, fps))
    except BaseException:
        for s in outputs:
            s.close()
        raise
    return outputs, window


def check_outputs(a: argparse.Namespace) -> None:
    """Every file the run will write (--output files, --stats), checked before anything is loaded."""
    from puppet.files import check_output

    inputs = list(a.target) + ([a.source] if Path(a.source).exists() else [])
    written: dict[Path, str] = {}
    for flag, o in [*(("--output", o) for o in dict.fromkeys(a.output) if o not in ("virtualcam", "window")),
                    *((("--stats", a.stats),) if a.stats else ())]:
        path = check_output(o, inputs, flag)
        if path in written:
            raise PuppetError(f"{flag} {o}: the same file as {written[path]}; give each output its own file")
        written[path] = f"{flag} {o}"


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    check_outputs(a)
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        # Tracking and generation run at the same time: leave the tracker a core, or torch's threads and
        # mediapipe's fight over the CPU (on 2 cores, 2 torch threads made a tiny generator 20x slower).
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    framing = framing_of(a)
    targets = load_targets(a.target, a.backend, a.device, framing, a.face_size)
    settings = Settings()
    for t in targets:  # remembered per target, then this run's flags on top
        t.gains = settings.gains(t.path)
        for part, v in a.gain.items():
            t.gains = t.gains.set(part, v)
    if a.absolute and any(not t.gains.unity for t in targets):
        log.warning("--absolute: the gains act in relative mode only (the default); ignored")
    source = open_source(a.source)
    outputs, window = [], None
    try:
        size = framing.size if framing else (a.size or (targets[0].size,) * 2)
        outputs, window = open_outputs(a, size, source.fps)
        stats = Stats(source=source.name, targets=[t.path for t in targets],
                      backend=getattr(targets[0].backend, "name", a.backend),
                      mode="absolute" if a.absolute else "relative", image_size=targets[0].size,
                      paced=source.live, idle=not a.no_idle,
                      face_size=targets[0].face,
                      output=f"{size[0]}x{size[1]} {a.output_mode}" + (f" ({a.fit})" if framing else ""))
        live = Live(targets, source, outputs, window, stats, mirror=a.mirror, absolute=a.absolute,
                    max_frames=a.max_frames, idle=not a.no_idle, settings=settings,
                    openness=not a.no_openness)
        for t in targets:  # (only now: a failed start prints its one error line and nothing else)
            describe = getattr(t.backend, "describe", None)
            log.info(f"{t.path}: {describe() if describe else t.backend.name}")
            if t.compositor is not None and t.compositor.notice:
                log.warning(t.compositor.notice)
        names = [getattr(s, "device", None) or str(getattr(s, "path", s.name)) for s in outputs]
        face = f", face {targets[0].face}px" if targets[0].face != targets[0].size else ""
        log.info(f"{targets[0].path} ({stats.info['backend']}, {targets[0].size}px{face}) <- {source.name} "
            f"({source.fps:.0f} fps) -> {stats.info['output']} -> "
            f"{', '.join(names + (['window'] if window else []))}"
            + ("; q or Ctrl-C to quit" if source.live else ""))
        try:
            stopped_by = live.run()  # Ctrl-C and SIGTERM end it cleanly (Live.run)
        finally:
            stats.info["gains"] = {t.path: t.gains.as_dict() for t in targets}  # as the run left them
    finally:
        for s in outputs:
            s.close()
        if window:
            window.close()
        source.close()
    print(stats.table())
    if a.stats:
        stats.write_json(a.stats)
    if stopped_by is not None:
        log.info("stopped")
    return 0


if __name__ == "__main__":
    run_cli(main)

"""Fine-tuning speed on a CPU, idle and with another program busy on the cores: torch's defaults against
puppet's choice (one thread per idle core, OpenMP's passive wait policy).

    python -m bench.finetune [--config cpu-warp] [--steps 5] [--busy 1] [--json out.json]

Each setting runs in its own process (OpenMP reads its wait policy once, when torch loads) and fine-tunes
the packaged Grace Hopper photo from the config's random weights: seconds a step = (time of --steps steps
minus time of 0 steps) / --steps, after a warm-up. `--busy N` starts N processes that spin on the CPU
meanwhile (a browser, a video call) for the "busy" rows. The projected minutes of a fine-tune of --project
steps are the step time times those steps.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

from puppet.cli import Parser
from puppet.errors import PuppetError, run_cli
from puppet.files import write_json

log = logging.getLogger(__name__)

_CHILD = r"""
import json, sys, time
import torch
from puppet.assets import grace_hopper
from puppet.training.finetune import FinetuneOptions, finetune
from puppet.training.photos import prepare_photos
from models.config import get_config
config, steps, which = sys.argv[1], int(sys.argv[2]), sys.argv[3]
threads = torch.get_num_threads() if which == "torch" else None  # None: finetune's own choice
crops, lms = prepare_photos([grace_hopper()], get_config(config).image_size)
def timed(n):
    t0 = time.perf_counter()
    finetune(crops, lms, config,
             options=FinetuneOptions(steps=n, seed=0, content="face", progress=False, threads=threads))
    return time.perf_counter() - t0
timed(1)  # warm-up
setup, total = timed(0), timed(steps)
print(json.dumps({"threads": torch.get_num_threads(), "step_s": (total - setup) / steps}))
"""


def _spin() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_setting(config: str, steps: int, policy: str) -> dict:
    """One child process: policy "torch" (torch's default threads, OpenMP's default active wait) or
    "puppet" (puppet.training.finetune.cpu_threads(), passive wait)."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    env.pop("OMP_WAIT_POLICY", None)
    if policy == "puppet":
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # what `python -m puppet.finetune` sets before torch loads
    r = subprocess.run([sys.executable, "-c", _CHILD, config, str(steps), policy], capture_output=True,
                       text=True, env=env, timeout=3600)
    if r.returncode != 0:
        raise PuppetError(f"bench.finetune: the {policy} run failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    p = Parser(prog="python -m bench.finetune", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="cpu-warp")
    p.add_argument("--steps", type=int, default=5, help="timed steps per setting (default 5)")
    p.add_argument("--busy", type=int, default=1, help="spinning processes for the busy rows (default 1)")
    p.add_argument("--project", type=int, default=200,
                   help="steps of the fine-tune whose minutes the table projects (default 200)")
    p.add_argument("--json", metavar="OUT.json")
    a = p.parse_args(argv)
    if a.steps < 1 or a.busy < 0:
        raise PuppetError("--steps must be >= 1 and --busy >= 0")
    rows = []
    for load in ("idle", "busy"):
        spinners = [_spin() for _ in range(a.busy)] if load == "busy" else []
        try:
            time.sleep(1.0 if spinners else 0.0)  # let the load average see them
            for policy in ("torch", "puppet"):
                r = run_setting(a.config, a.steps, policy)
                rows.append({"load": load, "policy": policy, **r,
                             "full_finetune_min": r["step_s"] * a.project / 60})
                log.info("%s, %s: %d threads, %.2f s a step", load, policy, r["threads"], r["step_s"])
        finally:
            for s in spinners:
                s.kill()
                s.wait()
    print(f"fine-tuning '{a.config}' on {os.cpu_count()} logical CPUs, {a.busy} busy process(es) in the "
          f"busy rows; {a.steps} steps (batch 4, face content loss)")
    print("| load | policy | threads | s / step | full fine-tune (min) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['load']} | {r['policy']} | {r['threads']} | {r['step_s']:.2f} | "
              f"{r['full_finetune_min']:.1f} ({a.project} steps) |")
    if a.json:
        write_json(a.json, {"config": a.config, "steps": a.steps, "busy": a.busy, "rows": rows})
    return 0


if __name__ == "__main__":
    run_cli(main)

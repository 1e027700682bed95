"""puppet.train on a real prepared dataset (synthetic talking heads): the tiny config at 32 px, random-weight
VGG content networks (asked for explicitly: no downloads in tests), one CPU thread per process.

- a few dozen steps: the content loss goes down;
- a few hundred steps with the paper's embedding match: the embeddings stay alive and per video, W keeps its
  size, D tells real from generated (the collapse this guards against: every e_hat 0, W dragged to 0, D at
  chance);
- kill -9 mid-run, then --resume: the same weights as the uninterrupted run;
- SIGTERM mid-run: a clean stop with a loadable checkpoint and no temporary file;
- torchrun --nproc_per_node 2 (gloo): both ranks end with identical weights, and those are the checkpoint's.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from _data import child_env, prepared

from puppet.errors import PuppetError
from puppet.training.checkpoint import load_meta, weights_digest
from puppet.training.train import main

STEPS = 20
# Tests ask for random VGG weights on purpose; the warning that says so is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:.*RANDOM weights")
ARGS = ["--config", "tiny", "--image-size", "32", "--batch", "2", "--vgg19", "random", "--vggface", "random",
        "--workers", "0", "--no-progress", "--seed", "0", "--log-every", "1"]


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    data, proc = prepared(tmp_path_factory.mktemp("prep"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return data


@pytest.fixture(scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as the child processes: the same kernels, so the same numbers
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("full") / "meta.pt"
    assert main(ARGS + ["--data", str(data), "--out", str(out), "--steps", str(STEPS)]) == 0
    return out


def _state(meta: dict) -> dict[str, torch.Tensor]:
    nets = ("embedder", "generator", "discriminator")
    return {f"{net}.{k}": v for net in nets for k, v in meta[net].items()}


def test_content_loss_goes_down(full_run):
    lines = (full_run.with_suffix(".tb") / "losses.jsonl").read_text().splitlines()
    log = [json.loads(line) for line in lines]
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))
    for r in log:
        for key in ("content", "adv", "fm", "mch", "total", "d_hinge", "d_real", "d_fake", "d_margin",
                    "emb_nonzero", "emb_spread"):
            assert np.isfinite(r[key]), (key, r)
    content = [r["content"] for r in log]
    first, last = np.mean(content[:5]), np.mean(content[-5:])
    assert last < 0.95 * first, (first, last, content)


def test_tensorboard_has_every_loss_and_images(full_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(full_run.with_suffix(".tb")))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in ("eg/content", "eg/adv", "eg/fm", "eg/mch", "eg/total", "d/d_hinge", "d/d_margin",
                "emb/emb_nonzero", "emb/emb_spread"):
        assert tag in scalars, (tag, scalars)
    assert len(acc.Scalars("eg/content")) == STEPS
    images = acc.Images("samples/sketch_real_generated")
    assert images and images[0].width == 3 * 32 and images[0].height == 2 * 32  # 2 rows: sketch|real|fake


def test_checkpoint_is_plain_and_loads_into_the_networks(full_run):
    from models.discriminator import Discriminator
    from models.embedder import Embedder
    from models.generator import Generator

    raw = torch.load(full_run, weights_only=True)  # plain tensors and values only
    meta = load_meta(full_run)
    assert raw.keys() == meta.keys()
    assert meta["format"] == "puppet-meta" and meta["version"] == 1 and meta["step"] == STEPS
    # W has a row per video, and a video is a speaker's folder (2 portraits x 2 clips here), not a clip.
    assert meta["num_videos"] == 2 and meta["config"]["image_size"] == 32
    assert meta["discriminator"]["W.weight"].shape == (2, meta["config"]["emb_dim"])
    Embedder(meta["config"]).load_state_dict(meta["embedder"])
    Generator(meta["config"]).load_state_dict(meta["generator"])
    Discriminator(meta["config"], meta["num_videos"]).load_state_dict(meta["discriminator"])


LONG_STEPS = 300


@pytest.fixture(scope="module")
def long_run(data, tmp_path_factory, one_thread):
    """Long enough to show the embedding collapse (at MCH weight 80: e_hat all 0 within 500 steps, mostly by
    300)."""
    out = tmp_path_factory.mktemp("long") / "meta.pt"
    assert ARGS[-2:] == ["--log-every", "1"]
    args = ARGS[:-2] + ["--log-every", "10"]
    assert main(args + ["--data", str(data), "--out", str(out), "--steps", str(LONG_STEPS),
                        "--content", "l1"]) == 0
    return out


def _embeddings(meta: dict, data) -> torch.Tensor:
    """e_hat of every video of the dataset, from 8 of its frames."""
    from models.embedder import Embedder
    from puppet.data.dataset import VideoDataset

    E = Embedder(meta["config"])
    E.load_state_dict(meta["embedder"])
    ds = VideoDataset(data, meta["config"]["image_size"], K=8, seed=1, group="folder")
    with torch.no_grad():
        return torch.stack([E.embed_frames(ds[(k, 0)]["x"][None], ds[(k, 0)]["y"][None])[0]
                            for k in range(len(ds))])


def test_embeddings_stay_alive_and_per_video(long_run, data):
    meta = load_meta(long_run)
    e = _embeddings(meta, data)
    assert (e.abs() > 1e-6).float().mean() > 0.95, e  # not collapsed to 0
    gap = float((e[0] - e[1]).norm() / e.norm(dim=1).mean())
    assert gap > 0.05, (gap, e)  # the two people get different embeddings
    W = meta["discriminator"]["W.weight"]
    assert float(W.abs().mean()) > 0.005, W  # W kept its size (initialised at std 0.02: mean |W| 0.016)


def test_discriminator_separates_real_from_generated(long_run):
    lines = (long_run.with_suffix(".tb") / "losses.jsonl").read_text().splitlines()
    log = [json.loads(line) for line in lines]
    margins = [r["d_margin"] for r in log[-10:]]
    assert np.mean(margins) > 0.5, margins  # real scored above generated: D is alive
    assert np.mean([r["d_hinge"] for r in log[-10:]]) < 1.8


def test_load_meta_one_line_errors(tmp_path):
    with pytest.raises(PuppetError, match="not found"):
        load_meta(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(PuppetError, match="not a readable checkpoint"):
        load_meta(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(PuppetError, match="not a puppet meta-learned checkpoint"):
        load_meta(other)
    for p in (tmp_path / "missing.pt", junk, other):
        with pytest.raises(PuppetError) as e:
            load_meta(p)
        assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_resume_after_kill_9_gives_the_uninterrupted_weights(data, full_run, tmp_path, one_thread):
    out = tmp_path / "killed.pt"
    cmd = [sys.executable, "-m", "puppet.train", *ARGS, "--data", str(data), "--out", str(out),
           "--steps", str(STEPS), "--ckpt-every", "3"]
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not out.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: only the atomic checkpoint survives
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    stopped = load_meta(out)["step"]
    assert 3 <= stopped < STEPS, stopped

    assert main(ARGS + ["--data", str(data), "--out", str(out), "--steps", str(STEPS), "--resume"]) == 0
    resumed, full = load_meta(out), load_meta(full_run)
    assert resumed["step"] == STEPS
    a, b = _state(resumed), _state(full)
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].numel())
    assert worst <= 1e-6, f"resumed from step {stopped}: max weight difference {worst}"
    for name in ("opt_eg", "opt_d"):  # the optimisers continued too
        sa, sb = resumed[name]["state"], full[name]["state"]
        assert sa.keys() == sb.keys()
        assert all(torch.allclose(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"], atol=1e-9) for k in sa)


def test_sigterm_mid_run_stops_cleanly_with_a_loadable_checkpoint(data, tmp_path):
    """A real `python -m puppet.train` sent SIGTERM (a job scheduler's stop, `kill`) mid-run: it finishes the
    step, writes its checkpoint, exits 0, and leaves no temporary file; --resume continues from there."""
    out = tmp_path / "run" / "meta.pt"
    out.parent.mkdir()
    log = out.with_suffix(".tb") / "losses.jsonl"
    cmd = [sys.executable, "-m", "puppet.train", *ARGS, "--data", str(data), "--out", str(out),
           "--steps", "100000", "--ckpt-every", "100000"]  # no periodic checkpoint: only the stop writes one
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline:  # a few steps logged: mid-run
            if log.exists() and len(log.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert not out.exists()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    meta = load_meta(out)
    stopped = meta["step"]
    assert 3 <= stopped < 100000 and "opt_eg" in meta
    assert f"stopped at step {stopped}" in err and "--resume" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.parent.iterdir()) == ["meta.pt", "meta.tb"]  # no .meta.pt.*.tmp
    assert main(ARGS + ["--data", str(data), "--out", str(out), "--steps", str(stopped + 1), "--resume"]) == 0
    assert load_meta(out)["step"] == stopped + 1


def test_torchrun_two_ranks_end_identical(data, tmp_path):
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "puppet.train", *ARGS, "--batch", "1", "--data", str(data), "--out", str(out),
           "--steps", "6"]
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = dict(re.findall(r"rank (\d)/2: step 6, weights sha256 ([0-9a-f]{64})", proc.stderr))
    assert set(found) == {"0", "1"}, proc.stderr[-3000:]
    assert found["0"] == found["1"]  # each rank hashed its own weights after training on its own videos
    meta = load_meta(out)
    assert weights_digest(meta["embedder"], meta["generator"], meta["discriminator"]) == found["0"]
    assert meta["train"]["world_size"] == 2 and meta["step"] == 6


def test_ranks_get_disjoint_shares_and_resume_mid_epoch():
    from puppet.data.dataset import EpochSampler

    n = 7
    shares = [EpochSampler(n, rank=r, world_size=2, seed=3).epoch_indices(4) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 4
    assert set(shares[0]) | set(shares[1]) == set(range(n))  # every video, one padded repeat
    # Resuming after `step` batches continues exactly where the uninterrupted stream was.
    batch, per_rank = 3, 4
    it = iter(EpochSampler(n, rank=1, world_size=2, seed=3))
    stream = [next(it) for _ in range(30)]
    for step in range(8):
        epoch, start = EpochSampler.position(step, batch, per_rank)
        it2 = iter(EpochSampler(n, rank=1, world_size=2, seed=3, epoch=epoch, start=start))
        assert [next(it2) for _ in range(6)] == stream[step * batch : step * batch + 6]


def test_setup_errors_are_one_line(data, tmp_path, monkeypatch):
    # No VGG weights given and none in the cache: the content loss's own error, before any training.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    out = tmp_path / "m.pt"
    base = ["--data", str(data), "--out", str(out), "--config", "tiny", "--no-progress"]
    with pytest.raises(PuppetError, match="VGG19") as e:
        main(base + ["--content", "vgg"])
    assert "\n" not in str(e.value) and not out.exists()
    with pytest.raises(PuppetError, match="no checkpoint to resume"):
        main(base + ["--resume"])
    with pytest.raises(PuppetError, match="not a prepared dataset"):
        main(["--data", str(tmp_path), "--out", str(out), "--config", "tiny", "--vgg19", "random",
              "--vggface", "random"])


def test_shipped_form_loads_and_fine_tunes(full_run, tmp_path):
    """The shipped form of a checkpoint: fp16, no optimiser state or W, and fine-tuning takes it as is."""
    from puppet.training.finetune import FinetuneOptions, finetune
    from puppet.training.ship import ship

    small = tmp_path / "ship.pt"
    ship(full_run, small)
    meta = load_meta(small)
    assert "opt_eg" not in meta and meta["num_videos"] == 1
    assert all(v.dtype == torch.float16 for v in meta["generator"].values() if v.is_floating_point())
    assert small.stat().st_size < 0.5 * full_run.stat().st_size
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    lms = (rng.random((68, 2)) * 20 + 6).astype(np.float32)
    target = finetune([frame], [lms], checkpoint=small, options=FinetuneOptions(steps=0, progress=False))
    full = finetune([frame], [lms], checkpoint=full_run, options=FinetuneOptions(steps=0, progress=False))
    assert (target.psi - full.psi).abs().max() < 1e-2 * full.psi.abs().max()  # fp16 rounding only


def test_wall_clock_budget_stops_with_a_checkpoint_and_the_shipped_form(data, tmp_path, one_thread):
    """--minutes: a GPU run given N minutes stops by itself, checkpointed (--resume continues it), and
    --ship-to leaves the small fp16 form beside it (what comes back from a lent GPU machine)."""
    out, shipped = tmp_path / "meta.pt", tmp_path / "ship" / "meta_tiny.pt"
    shipped.parent.mkdir()
    t0 = time.time()
    assert main(ARGS + ["--data", str(data), "--out", str(out), "--steps", "100000", "--minutes", "0.002",
                        "--ship-to", str(shipped)]) == 0
    assert time.time() - t0 < 60
    ckpt, small = load_meta(out), load_meta(shipped)
    assert 1 <= ckpt["step"] < 100000 and "opt_eg" in ckpt
    assert small["step"] == ckpt["step"] and "opt_eg" not in small and "rng" not in small
    assert all(v.dtype == torch.float16 for v in small["generator"].values() if v.is_floating_point())
    # The pure generator trains without the region term or contrast pairs; the run's settings are recorded.
    assert small["train"]["region_weight"] == 0.0 and small["train"]["contrast"] == 0.0
    with pytest.raises(PuppetError, match="--minutes 0"):
        main(ARGS + ["--data", str(data), "--out", str(tmp_path / "x.pt"), "--minutes", "0"])


def test_init_starts_a_new_run_from_a_models_weights(data, full_run, tmp_path, one_thread):
    """--init META: the shipped form of an earlier run (one W row) starts a new run on a dataset of its own:
    its E and G are the starting weights, W gets a row per video of this dataset, the step count restarts."""
    from puppet.training.ship import ship

    small = tmp_path / "small.pt"
    ship(full_run, small)
    out = tmp_path / "meta.pt"
    args = ARGS[2:] + ["--data", str(data), "--out", str(out), "--steps", "1", "--init", str(small)]
    assert main(args) == 0
    meta, start = load_meta(out), load_meta(small)
    assert meta["step"] == 1 and meta["config"] == start["config"]
    assert meta["discriminator"]["W.weight"].shape[0] == meta["num_videos"] > 1
    # One Adam step moves each weight by about the learning rate: still the starting weights, not new ones.
    for k, v in start["generator"].items():
        if v.is_floating_point() and v.numel() > 100:
            assert (meta["generator"][k] - v.float()).abs().max() < 0.01, k
    with pytest.raises(PuppetError, match="--init: starts a new run"):
        main(ARGS + ["--data", str(data), "--out", str(out), "--resume", "--init", str(small)])

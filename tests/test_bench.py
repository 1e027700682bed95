"""bench/: the metrics on known images, `python -m bench --quick`, the bench.quality protocol on a clip the
test makes (never ../shared)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import nme, psnr, ssim


def _image(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth structure plus texture, so SSIM has something to compare
    base = np.linspace(0, 255, size)[None, :, None] * np.ones((size, 1, 3))
    return np.clip(base + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)


def test_ssim_identical_is_one_and_drops_with_noise():
    a = _image()
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(1)
    b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    c = np.clip(a + rng.normal(0, 60, a.shape), 0, 255).astype(np.uint8)
    assert 0.0 < ssim(a, c) < ssim(a, b) < 1.0
    assert ssim(a[..., 0], a[..., 0]) == pytest.approx(1.0, abs=1e-12)  # grayscale too


def test_psnr_of_known_error_matches_formula():
    a = np.full((32, 32, 3), 100, np.uint8)
    assert psnr(a, a) == float("inf")
    b = a.copy()
    b[::2] += 10  # half the pixels off by 10: MSE = 50
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 50.0), abs=1e-9)
    rng = np.random.default_rng(4)
    noise = rng.integers(-20, 21, a.shape)
    c = (a.astype(int) + noise).astype(np.uint8)
    mse = float(np.mean(noise.astype(float) ** 2))
    assert psnr(a, c) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)


def test_nme_zero_for_identical_and_offset_over_interocular():
    rng = np.random.default_rng(5)
    ref = rng.uniform(20, 100, (68, 2)).astype(np.float32)
    ref[36] = (30, 50)
    ref[45] = (90, 50)  # inter-ocular distance 60
    assert nme(ref, ref) == 0.0
    assert nme(ref + np.array([3.0, 4.0]), ref) == pytest.approx(5.0 / 60.0, rel=1e-6)
    with pytest.raises(ValueError):
        nme(ref[:10], ref)


def test_region_masks_cover_mouth_and_eyes_even_when_closed(grace_hopper_path):
    """On a real face cropped at 256: the mouth mask holds the inner lips, the eye mask both eyes, neither
    the other; a closed mouth (inner lips collapsed to a line) still gets a band of twice the dilation; an
    open one a larger region."""
    from puppet.faces.crop import Crop
    from puppet.faces.images import read_image
    from puppet.faces.pose import Motion, move
    from puppet.faces.regions import region_masks
    from puppet.faces.track import detect

    lms = detect(read_image(grace_hopper_path))
    base = np.asarray(Crop.from_landmarks(lms).to_crop(lms, 256), np.float64)
    iod = float(np.linalg.norm(base[36] - base[45]))
    shut = base.copy()
    shut[61:64, 1] = shut[65:68, 1][::-1] = shut[[60, 64], 1].mean()  # inner lips on one line
    m = region_masks(shut, 256)
    assert set(m) == {"mouth", "eyes"} and m["mouth"].shape == (256, 256) and m["mouth"].dtype == bool
    for i in range(60, 68):
        x, y = np.round(shut[i]).astype(int)
        assert m["mouth"][y, x] and not m["eyes"][y, x]
    for i in range(36, 48):
        x, y = np.round(base[i]).astype(int)
        assert m["eyes"][y, x] and not m["mouth"][y, x]
    assert not (m["mouth"] & m["eyes"]).any()
    x = int(round(shut[62, 0]))
    band = m["mouth"][:, x].sum()
    assert 2 * 0.1 * iod - 2 <= band <= 2 * 0.1 * iod + 3  # the collapsed line, dilated both ways
    opened = region_masks(move(base, Motion(mouth=1.0)), 256)["mouth"]
    assert opened.sum() > m["mouth"].sum() * 1.3
    with pytest.raises(ValueError):
        region_masks(base[:60], 256)


def test_region_scores_see_a_change_inside_the_mask_only():
    """A change inside the region moves its scores and not a region elsewhere; PSNR and L1 follow their
    formulas over the mask's pixels."""
    from bench.metrics import region_scores

    a = _image(0, 64)
    inside = np.zeros((64, 64), bool)
    inside[20:40, 20:40] = True
    outside = np.zeros((64, 64), bool)
    outside[:8, :8] = True
    b = a.copy()
    b[25:35, 25:35] = 255 - b[25:35, 25:35]
    same = region_scores(a, a, inside)
    assert same["ssim"] == pytest.approx(1.0) and same["psnr"] == float("inf") and same["l1"] == 0.0
    s_in, s_out = region_scores(a, b, inside), region_scores(a, b, outside)
    assert s_out["ssim"] == pytest.approx(1.0) and s_out["l1"] == 0.0
    assert s_in["ssim"] < 0.8
    d = a.astype(float) - b.astype(float)
    assert s_in["l1"] == pytest.approx(np.abs(d[inside]).mean())
    assert s_in["psnr"] == pytest.approx(10 * np.log10(255**2 / (d[inside] ** 2).mean()))
    with pytest.raises(ValueError):
        region_scores(a, b, np.zeros((64, 64), bool))


def test_bench_quick_writes_json_with_real_numbers(tmp_path, capsys):
    import json

    from bench.__main__ import main

    out = tmp_path / "bench.json"
    assert main(["--quick", "--json", str(out)]) == 0
    stdout = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["quick"] and r["machine"]["cpu"]["cores"] >= 1
    rows = {row["backend"]: row for row in r["generator"]}
    assert set(rows) == {"torch", "onnxruntime"}  # no GPU in CI: the CPU backends only
    for row in rows.values():
        assert row["config"] == "tiny" and "skipped" not in row, row
        assert 0 < row["median_ms"] <= row["p95_ms"] and row["runs"] >= 3
        assert row["gflop_per_frame"] > 0 and row["achieved_gflops"] > 0
    s = r["stages"]
    assert s["face_found"] > 0.5
    for name in ("decode", "track", "filter_retarget", "rasterise", "generate", "output"):
        assert s[name]["median_ms"] > 0, name
    lv = r["live"]
    assert lv["file"]["frames_out"] == s["frames"] and lv["file"]["dropped"] == 0  # a file: every frame
    assert lv["paced"]["frames_in"] == s["frames"]
    for run in (lv["file"], lv["paced"]):
        assert run["fps"] > 0 and 0 < run["latency_p50_ms"] <= run["latency_p95_ms"]
    assert lv["serial_sum_ms"] > s["track"]["median_ms"]
    assert r["memory"]["peak_rss_mb"] > 0
    assert "| tiny | 64 | onnxruntime |" in stdout  # the markdown table


def test_bench_quick_with_a_warp_config_times_the_warp_as_a_stage(tmp_path, capsys):
    """An appearance config through every part of `python -m bench`: the generator rows get (sketch, warped),
    the warp of the reference is a stage of its own, and the live loop runs it (its `warp` stage timed)."""
    import json

    from bench.__main__ import main

    out = tmp_path / "bench.json"
    assert main(["--quick", "--configs", "tiny-warp", "--live-config", "tiny-warp", "--frames", "12",
                 "--json", str(out)]) == 0
    stdout = capsys.readouterr().out
    r = json.loads(out.read_text())
    for row in r["generator"]:
        assert row["config"] == "tiny-warp" and "skipped" not in row and row["median_ms"] > 0, row
    s, lv = r["stages"], r["live"]
    assert s["warp"]["median_ms"] > 0 and "| warp |" in stdout
    assert lv["file"]["frames_out"] == s["frames"] and lv["file"]["stages_in_loop_ms"]["warp"] > 0


# ------------------------------------------------------------------------------------ bench.quality
@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory, grace_hopper_path):
    """A short synthetic talking clip of the packaged portrait (puppet.data.motion + puppet.data.clips): 14
    frames of a trajectory drawn at 5 fps, so the head moves clearly between frames."""
    import cv2

    from puppet.data.clips import write_video
    from puppet.data.motion import animate
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    img = read_image(grace_hopper_path)
    img = cv2.resize(img, (img.shape[1] * 240 // img.shape[0], 240), interpolation=cv2.INTER_AREA)
    frames, _ = animate(img, detect(img), 14, np.random.default_rng(0), fps=5.0)
    return write_video(tmp_path_factory.mktemp("clip") / "talk.mp4", frames, 25.0)


def _tiny_meta(path):
    """A randomly initialised 'meta-learned' checkpoint of the tiny config (the format load_meta reads)."""
    from _util import random_meta

    return random_meta(path)[0]


def _numbers(table):
    """The table's values without the timings (which vary run to run)."""
    return [{k: v for k, v in row.items() if k != "finetune_s"} for row in table]


def test_quality_protocol_end_to_end_on_a_moving_clip(moving_clip, tmp_path, capsys):
    """Baselines and model rows (from scratch on tiny-warp, from a tiny checkpoint; T 1 and 2; 0 and 2
    steps), all scored at 256x256; strips of real | sketch | warp | output at 256; the same numbers on a
    second run."""
    import json

    import cv2

    from bench.quality import main, parse_args, run

    meta = _tiny_meta(tmp_path / "meta.pt")
    argv = ["--clip", str(moving_clip), "--frames", "1,2", "--steps", "0,2", "--config", "tiny-warp",
            "--checkpoint", "scratch", "--checkpoint", str(meta), "--eval-frames", "4", "--device", "cpu",
            "--content", "l1", "--quiet", "--threads", "1"]
    assert main(argv + ["--json", str(tmp_path / "q.json"), "--save", str(tmp_path / "strips")]) == 0
    out = capsys.readouterr().out
    r = json.loads((tmp_path / "q.json").read_text())

    assert r["eval_size"] == 256 and "scored at 256x256" in out
    assert [c["name"] for c in r["clips"]] == ["talk"]
    (clip,) = r["per_clip"]
    assert clip["face_frames"] == 14 and len(clip["held_out"]) == 4 and min(clip["held_out"]) >= 2
    table = {(row["row"], row["T"], row["steps"]): row for row in r["table"]}
    assert list(table)[:3] == [("real", None, None), ("static", None, None), ("warp", None, None)]
    assert ("warp, nearest of T", 2, None) in table and "| warp, nearest of T | 2 |" in out
    assert ("warp, frame T-1", 2, None) in table and "| warp, frame T-1 | 2 |" in out
    models = [k for k in table if k[2] is not None]
    assert sorted(models) == sorted((src, T, s) for src in ("scratch tiny-warp", "meta") for T in (1, 2)
                                    for s in (0, 2))
    for line in ("| static |", "| warp |", "| scratch tiny-warp | 1 | 0 |", "| meta | 2 | 2 |"):
        assert line in out, line
    for key, row in table.items():
        assert -1.0 <= row["csim"]["mean"] <= 1.0, key
        assert 0.0 <= row["face_found"]["mean"] <= 1.0, key
        assert -1.0 <= row["ssim"]["mean"] <= 1.0, key
        assert (row["finetune_s"] is None) == (key[2] is None), key
    # The warp of the reference follows the moving head: better than the reference standing still.
    static, warp = clip["rows"]["static"], clip["rows"]["warp"]
    assert warp["ssim"] >= static["ssim"] and warp["nme"] < static["nme"]
    # Same-person frames of one clip: high identity similarity for the baselines.
    assert static["csim"] > 0.9 and warp["csim"] > 0.9
    # Mouth and eyes scored for every row, in the JSON (per frame too) and the table; the real crops
    # against themselves are perfect there; the warp, which moves the lips and lids, beats standing still.
    for key, row in table.items():
        for k in ("mouth_ssim", "mouth_psnr", "mouth_l1", "eyes_ssim", "eyes_psnr", "eyes_l1"):
            assert k in row, (key, k)
            if key[0] != "real":
                assert row[k] is not None and np.isfinite(row[k]["mean"]), (key, k)
    assert "| mouth SSIM ↑ | mouth PSNR ↑ | mouth L1 ↓ | eyes SSIM ↑ | eyes PSNR ↑ | eyes L1 ↓ |" in out
    assert clip["real"]["mouth_ssim"] == pytest.approx(1.0) and clip["real"]["eyes_l1"] == 0.0
    assert len(static["frames"]["mouth_l1"]) == 4 and len(warp["frames"]["eyes_ssim"]) == 4
    assert warp["mouth_l1"] < static["mouth_l1"] and warp["mouth_ssim"] > static["mouth_ssim"]
    assert 0 < static["mouth_l1"] < 255 and 0 < static["eyes_psnr"] < 100
    # The NME path on real faces: re-detecting the real crops agrees with the clip's own tracking.
    assert clip["real"]["face_found"] == 1.0 and 0.0 < clip["real"]["nme"] < 0.1
    assert clip["real"]["csim"] == pytest.approx(1.0, abs=1e-5)

    # Strips: real | sketch | warp | output, each at 256, one per row of the clip.
    strips = sorted(p.name for p in (tmp_path / "strips" / "talk").iterdir())
    assert {"static.png", "warp.png", "warp_T2.png", "warp_last2.png"} <= set(strips)
    assert len(strips) == 4 + len(models)
    img = cv2.imread(str(tmp_path / "strips" / "talk" / "meta_T2_steps2.png"))
    assert img.shape == (4 * 256, 4 * 256, 3)

    # Deterministic for a fixed seed.
    again = run(parse_args(argv))
    assert _numbers(again["table"]) == _numbers(r["table"])


@pytest.fixture(scope="module")
def sharp_clip(tmp_path_factory, grace_hopper_path):
    """The packaged portrait at its own resolution (600 px tall: the face's crop box 412 px) moving as
    moving_clip does, 10 frames."""
    from puppet.data.clips import write_video
    from puppet.data.motion import animate
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    img = read_image(grace_hopper_path)
    frames, _ = animate(img, detect(img), 10, np.random.default_rng(0), fps=5.0)
    return write_video(tmp_path_factory.mktemp("sharp") / "sharp.mp4", frames, 25.0)


def test_quality_at_the_face_size_scores_the_face_made_at_that_size(sharp_clip, tmp_path, capsys):
    """--face-size 384: the warp and a tiny-warp model row, each made at the generator's size and upscaled
    and made at 384 as puppet.live makes it, scored against the real frames cut at 384. Where the video
    has the pixels, the face made at 384 is much sharper than the upscaled one and about as sharp as the
    real frame; a generator without the appearance path has only the upscaled row; one-line errors."""
    import json

    from bench.quality import main, parse_args
    from puppet.errors import PuppetError

    argv = ["--clip", str(sharp_clip), "--frames", "1", "--steps", "0", "--eval-frames", "3", "--device",
            "cpu", "--content", "l1", "--quiet", "--face-size", "384"]
    assert main(argv + ["--config", "tiny-warp", "--json", str(tmp_path / "f.json")]) == 0
    out = capsys.readouterr().out
    r = json.loads((tmp_path / "f.json").read_text())
    assert r["face_size"] == 384 and "scored at 384x384" in out
    (clip,) = r["per_clip"]
    assert clip["native_px"] > 384  # the video has the pixels
    model = "scratch tiny-warp T=1 steps=0"
    assert [(row["row"], row["way"], row["size"]) for row in r["table"]] == [
        ("warp", "upscaled", 256), ("warp", "native", 256), (model, "upscaled", 64), (model, "native", 64)]
    for line in ("| warp | 256² upscaled |", "| warp | 384² |", f"| {model} | 64² upscaled |",
                 f"| {model} | 384² |"):
        assert line in out, line
    warp = clip["rows"]["warp"]
    assert warp["native"]["sharpness"] > 1.5 * warp["upscaled"]["sharpness"]
    assert 0.7 < warp["native"]["sharpness"] < 1.3  # about the real frame's detail
    for row in clip["rows"].values():
        for way in ("upscaled", "native"):
            assert 0.3 < row[way]["ssim"] < 1.0 and 15.0 < row[way]["psnr"] < 60.0, row
            assert 0.0 < row[way]["mouth_ssim"] < 1.0 and 0.0 < row[way]["eyes_ssim"] < 1.0, row
    # The tiny generator's own picture, upscaled from 64², has far less detail than the face made at 384².
    assert clip["rows"][model]["native"]["sharpness"] > 2.0 * clip["rows"][model]["upscaled"]["sharpness"]

    assert main(argv + ["--config", "tiny", "--json", str(tmp_path / "t.json")]) == 0
    r = json.loads((tmp_path / "t.json").read_text())
    assert [(row["row"], row["way"]) for row in r["table"]][2:] == [("scratch tiny T=1 steps=0", "upscaled")]

    for bad in (["--face-size", "100"], ["--face-size", "512", "--cross"],
                ["--face-size", "512", "--save", str(tmp_path)]):
        with pytest.raises(PuppetError, match="--face-size"):
            parse_args(["--clip", str(sharp_clip), *bad])


def test_nearest_warp_baseline_takes_the_reference_nearest_in_shape():
    """With T references, each driving frame gets the reference nearest in shape warped to it (at a
    reference's own landmarks, that reference unchanged); a shape about as near to both keeps the current
    one (no flicker), a clearly nearer one switches."""
    from bench.generator import _mean_face
    from bench.quality import nearest_warp_baseline
    from puppet.faces.pose import Motion, move
    from puppet.faces.warp import nearest_shape

    rng = np.random.default_rng(0)
    base = _mean_face(256)
    opened = move(base, Motion(mouth=1.0))
    a = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out = nearest_warp_baseline([(a, base), (b, opened)], [opened, base, opened])
    assert np.array_equal(out[0], b) and np.array_equal(out[1], a) and np.array_equal(out[2], b)
    half, nearly_shut = move(base, Motion(mouth=0.5)), move(base, Motion(mouth=0.3))
    assert nearest_shape([base, opened], half, current=1) == 1
    assert nearest_shape([base, opened], half, current=0) == 0
    assert nearest_shape([base, opened], nearly_shut, current=1) == 0


def test_quality_jobs_give_the_serial_table(moving_clip, tmp_path):
    """--jobs 2 scores the clips in two processes: the same table as one process."""
    import shutil

    from bench.quality import parse_args, run

    other = shutil.copy(moving_clip, tmp_path / "talk2.mp4")
    argv = ["--clip", str(moving_clip), "--clip", str(other), "--frames", "1", "--steps", "1",
            "--config", "tiny-warp", "--eval-frames", "3", "--device", "cpu", "--content", "l1", "--quiet"]
    serial, parallel = run(parse_args(argv)), run(parse_args(argv + ["--jobs", "2"]))
    assert [c["name"] for c in parallel["clips"]] == [c["name"] for c in serial["clips"]]
    assert _numbers(parallel["table"]) == _numbers(serial["table"])


def test_quality_scores_at_256_whatever_the_config_size():
    """A 64x64 output is upscaled bicubically to 256 before scoring; the scorer refuses anything else."""
    from bench.quality import Scorer, to_eval_size

    small = _image(0, 64)
    big = to_eval_size(small)
    assert big.shape == (256, 256, 3) and big.dtype == np.uint8
    assert to_eval_size(big) is big
    scorer = Scorer()
    try:
        with pytest.raises(ValueError, match="256x256"):
            scorer.score([small], [small], [np.zeros((68, 2), np.float32)], scorer.descriptors([small]))
    finally:
        scorer.close()


def test_quality_corpus_clips_and_one_line_errors(moving_clip, tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    from bench.corpus import SPLIT_FILE, corpus_clips
    from bench.quality import parse_args, run
    from puppet.errors import PuppetError

    corpus = tmp_path / "faces"
    (corpus / "videos" / "ann").mkdir(parents=True)
    shutil.copy(moving_clip, corpus / "videos" / "ann" / "01.mp4")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"about": "test", "dev_eval": ["ann"], "train": ["bob"]}))
    assert corpus_clips(corpus, "dev_eval", split) == [("ann", corpus / "videos" / "ann" / "01.mp4")]
    a = parse_args(["--corpus", str(corpus), "--split-file", str(split), "--baselines-only"])
    assert a.clips == [("ann", corpus / "videos" / "ann" / "01.mp4")] and a.baselines_only
    # The project's own split file: the dev-eval people, never trained on.
    real = json.loads(SPLIT_FILE.read_text())
    assert len(real["dev_eval"]) >= 8 and not set(real["dev_eval"]) & set(real["train"])

    with pytest.raises(PuppetError, match="--split nope: not a split of .*dev_eval, train"):
        corpus_clips(corpus, "nope", split)
    with pytest.raises(PuppetError, match="bob/01.mp4 missing"):
        corpus_clips(corpus, "train", split)
    with pytest.raises(PuppetError, match="--corpus .*: no videos/ folder"):
        parse_args(["--corpus", str(tmp_path / "nowhere")])
    with pytest.raises(PuppetError, match="--clip .*missing.mp4: no such video file"):
        parse_args(["--clip", str(tmp_path / "missing.mp4")])
    with pytest.raises(PuppetError, match="either --corpus"):
        parse_args([])
    with pytest.raises(PuppetError, match="--frames"):
        parse_args(["--clip", str(moving_clip), "--frames", "0,x"])
    with pytest.raises(PuppetError, match="no.pt: meta-learned checkpoint not found"):
        run(parse_args(["--clip", str(moving_clip), "--checkpoint", str(tmp_path / "no.pt")]))
    # Through the command as the user runs it (a real process): one line, exit 2, no traceback.
    p = subprocess.run([sys.executable, "-m", "bench.quality", "--corpus", str(corpus), "--split", "nope",
                        "--split-file", str(split)], capture_output=True, text=True, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: --split nope"), p.stderr


@pytest.fixture(scope="module")
def finetune_rows():
    """bench.finetune's measurement for real: one child process per thread policy (tiny config, one step)."""
    from bench.finetune import run_setting

    return {policy: run_setting("tiny", 1, policy) for policy in ("torch", "puppet")}


def test_bench_finetune_child_times_a_step_under_each_thread_policy(finetune_rows):
    """Each policy's child fine-tunes and times a step: torch's default threads, or puppet's own choice (one
    per idle core: at least one, at most the cores)."""
    from puppet.live.runtime import physical_cores

    assert finetune_rows["torch"]["threads"] >= 1
    assert 1 <= finetune_rows["puppet"]["threads"] <= physical_cores()
    assert all(r["step_s"] > 0 for r in finetune_rows.values())


def test_bench_finetune_times_both_policies_idle_and_busy(finetune_rows, tmp_path, monkeypatch, capsys):
    """python -m bench.finetune: the idle rows, then the busy rows with --busy spinning processes running
    (and stopped afterwards); the table and the JSON. Each setting's child is measured once, by the test
    above; here the command reuses those numbers instead of running the same child four times."""
    import json

    import bench.finetune as bf

    spinners, calls = [], []
    real_spin = bf._spin

    def spin():
        spinners.append(real_spin())
        return spinners[-1]

    def measured(config, steps, policy):
        calls.append((config, steps, policy, sum(s.poll() is None for s in spinners)))
        return finetune_rows[policy]

    monkeypatch.setattr(bf, "_spin", spin)
    monkeypatch.setattr(bf, "run_setting", measured)
    out = tmp_path / "ft.json"
    assert bf.main(["--config", "tiny", "--steps", "1", "--busy", "2", "--json", str(out)]) == 0
    assert calls == [("tiny", 1, "torch", 0), ("tiny", 1, "puppet", 0), ("tiny", 1, "torch", 2),
                     ("tiny", 1, "puppet", 2)]  # the busy rows ran with both spinners spinning
    assert len(spinners) == 2 and all(s.poll() is not None for s in spinners)  # and they are stopped
    rows = json.loads(out.read_text())["rows"]
    assert [(x["load"], x["policy"]) for x in rows] == [("idle", "torch"), ("idle", "puppet"),
                                                       ("busy", "torch"), ("busy", "puppet")]
    for x in rows:
        assert x["step_s"] == finetune_rows[x["policy"]]["step_s"]
        assert x["full_finetune_min"] == pytest.approx(x["step_s"] * 200 / 60)
    assert f"| busy | puppet | {finetune_rows['puppet']['threads']} |" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- bench.jitter
def test_jitter_bench_measures_shake_on_still_frames_and_the_filters_lag(grace_hopper_path, tmp_path, capsys):
    """A real face held still under camera noise (fresh noise every frame: mediapipe's landmarks shake), then
    moving: the One Euro filter shakes less than the raw landmarks on the still frames and trails them while
    they move; a lower cutoff trails more."""
    import json

    import cv2

    from bench.jitter import main
    from puppet.data.clips import write_video
    from puppet.data.motion import animate
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    img = read_image(grace_hopper_path)
    img = cv2.resize(img, (img.shape[1] * 240 // img.shape[0], 240), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    still = [np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8) for _ in range(30)]
    moving, _ = animate(img, detect(img), 30, rng, fps=5.0)
    clip = write_video(tmp_path / "clip.mp4", still + moving, 25.0)
    out = tmp_path / "j.json"
    assert main(["--clip", str(clip), "--settings", "1.0:0.05,0.3:0.05", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["clips"][0]["frames"] == 60 and r["clips"][0]["still_frames"] >= 15
    raw, default, low = (r["settings"][k] for k in ("raw", "1:0.05", "0.3:0.05"))
    assert raw["lag_ms"] == 0 and 0 < default["jitter_px"] < 0.7 * raw["jitter_px"]
    assert 0 < default["lag_ms"] < low["lag_ms"]
    assert default["jitter_vs_default_median"] == 1.0
    assert "| 1:0.05 (default) |" in capsys.readouterr().out


def test_bench_warp_times_both_maps_by_size(tmp_path, capsys):
    """bench.warp: both implementations at each size in one run, ratios to the reference at the first."""
    from bench.warp import main

    assert main(["--sizes", "128,256", "--runs", "1", "--json", str(tmp_path / "w.json")]) == 0
    import json

    r = json.loads((tmp_path / "w.json").read_text())
    for k in ("warp_128", "reference_128", "warp_256", "reference_256"):
        assert r[k]["runs"] == 10 and 0 < r[k]["median_ms"] <= r[k]["p95_ms"], k
    ratio = r["ratio_to_reference_128"]
    assert ratio["reference_128"] == 1.0 and ratio["reference_256"] > 1.0  # 4x the pixels cost more
    assert "| warp | 256² |" in capsys.readouterr().out


def test_bench_facesize_runs_the_loop_at_each_face_size_and_draws_the_strip(tmp_path, astronaut_path):
    """bench.facesize on a tiny appearance target whose photo allows a larger face: a paced run per face
    size (the face size puppet.live picks, the correction stage only above the generator's size) and the
    strip (one panel per size and the picture, above their 2x middles)."""
    import cv2
    from _util import random_target

    from bench.facesize import main
    from puppet.target import default_face_size, save_target

    t = random_target(config="tiny-warp", photo=astronaut_path)
    t.face_size = default_face_size(t.config, t.picture)
    save_target(tmp_path / "t.pt", t)
    out, strip = tmp_path / "f.json", tmp_path / "strip.jpg"
    assert main(["--target", str(tmp_path / "t.pt"), "--sizes", "64,512", "--fps", "25", "--frames", "12",
                 "--backend", "torch", "--json", str(out), "--strip", str(strip)]) == 0
    import json

    rows = json.loads(out.read_text())["rows"]
    assert [(r["face_cap"], r["image_size"]) for r in rows] == [(64, 64), (512, 64)]
    assert rows[0]["face_size"] == 64 and rows[1]["face_size"] > 64
    assert "correction" not in rows[0]["stages_ms"] and rows[1]["stages_ms"]["correction"]["n"] > 0
    assert all(r["frames_out"] > 0 and r["fps"] > 0 for r in rows)
    from puppet.live.compose import Compositor
    from puppet.live.framing import Framing

    x0, y0, x1, y1 = Compositor.for_target(t, Framing(), size=rows[1]["face_size"]).bbox
    w, h = x1 - x0, y1 - y0
    img = cv2.imread(str(strip))
    assert img.shape == (2 * h, 3 * w, 3)  # face 64², the larger face, the picture; their middles below
    parts = [img[h // 4:h // 2, k * w + w // 4:k * w + w // 2] for k in range(3)]
    sharp = [cv2.Laplacian(cv2.cvtColor(p, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var() for p in parts]
    assert sharp[1] > 2 * sharp[0], sharp  # the larger face keeps the photo's detail

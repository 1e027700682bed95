"""bench/: the metrics on known images, `python -m bench --quick`, bench.quality on a tiny clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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


@pytest.fixture(scope="module")
def talking_clip(tmp_path_factory, grace_hopper_path):
    """A short synthetic talking clip of the packaged portrait, written with puppet.data.clips."""
    import cv2

    from puppet.data.clips import write_video
    from puppet.data.motion import animate
    from puppet.faces.images import read_image
    from puppet.faces.track import detect

    img = read_image(grace_hopper_path)
    img = cv2.resize(img, (img.shape[1] * 240 // img.shape[0], 240), interpolation=cv2.INTER_AREA)
    frames, _ = animate(img, detect(img), 10, np.random.default_rng(0))
    return write_video(tmp_path_factory.mktemp("clip") / "talk.mp4", frames, 25.0)


def test_bench_quick_writes_json_with_real_numbers(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
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
    assert "| tiny | 64 | onnxruntime |" in p.stdout  # the markdown table


def test_bench_quick_with_a_warp_config_times_the_warp_as_a_stage(tmp_path):
    """An appearance config through every part of `python -m bench`: the generator rows get (sketch, warped),
    the warp of the reference is a stage of its own, and the live loop runs it (its `warp` stage timed)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, "-m", "bench", "--quick", "--configs", "tiny-warp", "--live-config",
                        "tiny-warp", "--frames", "12", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(out.read_text())
    for row in r["generator"]:
        assert row["config"] == "tiny-warp" and "skipped" not in row and row["median_ms"] > 0, row
    s, lv = r["stages"], r["live"]
    assert s["warp"]["median_ms"] > 0 and "| warp |" in p.stdout
    assert lv["file"]["frames_out"] == s["frames"] and lv["file"]["stages_in_loop_ms"]["warp"] > 0


def test_quality_protocol_on_a_tiny_clip(talking_clip):
    from bench.quality import markdown, parse_args, run

    torch.manual_seed(0)
    a = parse_args(["--clip", str(talking_clip), "--frames", "1", "--config", "tiny", "--steps", "2",
                    "--eval-frames", "4", "--device", "cpu", "--quiet"])
    r = run(a)
    assert r["face_frames"] == 10 and len(r["held_out"]) == 4 and min(r["held_out"]) >= 1
    (row,) = r["rows"]
    assert row["T"] == 1
    assert -1.0 <= row["ssim"] < 1.0
    assert 0.0 < row["psnr"] < 60.0
    assert 0.0 <= row["face_found"] <= 1.0
    assert row["nme"] is None or row["nme"] >= 0.0  # None: no face on a 2-step model's output
    # The NME path on real faces: the tracker re-detecting the real crops agrees with the clip's tracking.
    assert r["real_crops_face_found"] == 1.0
    assert 0.0 < r["real_crops_nme"] < 0.1
    assert "FID skipped" in r["fid_note"] and "CSIM skipped" in r["csim_note"]
    assert "| 1 |" in markdown(r)


def test_frechet_distance_formula():
    from bench.quality import frechet_distance

    rng = np.random.default_rng(6)
    a = rng.normal(size=(200, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # same covariance, means apart by (1, 2, 0, 0): FID = |mu_a - mu_b|^2 = 5
    assert frechet_distance(a, a + np.array([1.0, 2.0, 0.0, 0.0])) == pytest.approx(5.0, abs=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TorchScript and its ONNX exporter
def test_csim_and_fid_hooks_load_user_models(tmp_path):
    """The FID/CSIM loading paths with random-weight stand-ins (no Inception/ArcFace weights exist here): the
    numbers are meaningless, the plumbing (TorchScript call, 5-point alignment, onnxruntime) is real."""
    from bench.quality import ArcFace, Inception, frechet_distance

    torch.manual_seed(0)

    class Features(torch.nn.Module):  # the TorchScript interface of StyleGAN's inception-2015-12-05.pt
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)

        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return self.conv(x / 255.0).mean(dim=(2, 3))

    torch.jit.save(torch.jit.script(Features()), str(tmp_path / "inception.pt"))
    emb = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.Flatten(), torch.nn.LazyLinear(16))
    emb(torch.zeros(1, 3, 112, 112))
    torch.onnx.export(emb, (torch.zeros(1, 3, 112, 112),), str(tmp_path / "arcface.onnx"), dynamo=False)

    crops = [_image(s, 64) for s in range(6)]
    lms = np.tile(np.linspace(16, 48, 68)[:, None], (1, 2)).astype(np.float32)
    lms[36:42] = (22, 26)
    lms[42:48] = (42, 26)
    lms[30] = (32, 36)
    lms[48], lms[54] = (25, 46), (39, 46)
    arc = ArcFace(tmp_path / "arcface.onnx")
    assert arc.csim(crops, crops, [lms] * 6) == pytest.approx(1.0, abs=1e-6)
    assert arc.csim(crops, crops[::-1], [lms] * 6) < 1.0
    feats = Inception(tmp_path / "inception.pt").features(crops)
    assert feats.shape == (6, 8)
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_quality_refuses_missing_weight_files(tmp_path):
    from bench.quality import ArcFace, Inception
    from puppet.errors import PuppetError

    with pytest.raises(PuppetError, match="--inception .*no such file"):
        Inception(tmp_path / "missing.pt")
    with pytest.raises(PuppetError, match="--arcface .*no such file"):
        ArcFace(tmp_path / "missing.onnx")

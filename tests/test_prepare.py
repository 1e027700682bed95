"""puppet.prepare and puppet.data: real synthetic mp4s, real mediapipe tracking, real bad files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from _data import FRAMES, GOOD_VIDEOS, STORED_SIZE, child_env, prepared

from puppet.data.dataset import MANIFEST, Video, VideoDataset, load_manifest, read_journal
from puppet.errors import PuppetError


@pytest.fixture(scope="session")
def data_run(tmp_path_factory):
    return prepared(tmp_path_factory.mktemp("prep"))


def test_good_videos_prepared_bad_ones_counted(data_run):
    data, proc = data_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = proc.stderr.strip().splitlines()[-1]
    assert f"prepared {GOOD_VIDEOS} videos ({GOOD_VIDEOS * FRAMES} frames)" in summary, summary
    assert "skipped 2 (1 no face, 1 unreadable)" in summary, summary
    assert "ignored 1 non-video files" in summary, summary

    m = load_manifest(data)
    assert m["size"] == STORED_SIZE and m["landmarks"] == "mediapipe"
    assert len(m["videos"]) == GOOD_VIDEOS
    assert all(v["id"].split("/")[0] in ("grace_hopper", "astronaut") for v in m["videos"])
    assert m["skipped"] == {"no face": 1, "unreadable": 1}
    journal = read_journal(data)
    assert journal["bad/corrupt"]["reason"] == "unreadable"
    assert journal["bad/noise"]["reason"] == "no face"


def test_stored_frames_and_landmarks_agree(data_run):
    """The stored landmarks are where the face is in the stored crop: re-detecting on the crops finds them."""
    from puppet.faces.track import detect

    data, _ = data_run
    m = load_manifest(data)
    errs = []
    for v in m["videos"]:
        video = Video(data / v["file"])
        assert len(video) == v["frames"] == FRAMES
        assert video.landmarks.shape == (FRAMES, 68, 2) and video.landmarks.dtype == np.float32
        for k in (0, FRAMES // 2):
            img = video.frame(k)
            assert img.shape == (STORED_SIZE, STORED_SIZE, 3)
            # 64 px crops are small for a detector: upscale to look, then compare in stored pixels.
            import cv2

            big = cv2.resize(img, (256, 256), interpolation=cv2.INTER_CUBIC)
            found = detect(big)
            assert found is not None, f"{v['id']} frame {k}: no face in the stored crop"
            found = (found + 0.5) * (STORED_SIZE / 256) - 0.5
            lms = video.landmarks[k]
            width = np.linalg.norm(lms[16] - lms[0])
            errs.append(float(np.linalg.norm(found - lms, axis=1).mean() / width))
    assert max(errs) < 0.08, errs  # mean point error under 8 % of the face width


def test_dataset_samples(data_run):
    data, _ = data_run
    ds = VideoDataset(data, image_size=32, K=8, seed=0)
    assert len(ds) == GOOD_VIDEOS
    item = ds[(1, 3)]
    assert item["x"].shape == (8, 3, 32, 32) and item["y"].shape == (8, 3, 32, 32)
    assert item["x_t"].shape == (3, 32, 32) and item["y_t"].shape == (3, 32, 32)
    assert int(item["i"]) == 1
    assert item["x"].min() >= -1 and item["x"].max() <= 1
    # The target frame is never one of the K, and the choice depends only on (seed, epoch, index).
    for epoch in range(20):
        picks = ds.choose(1, epoch, FRAMES)
        assert len(set(picks.tolist())) == 9
    assert (ds.choose(2, 5, FRAMES) == VideoDataset(data, 32, K=8, seed=0).choose(2, 5, FRAMES)).all()
    assert not (ds.choose(2, 5, FRAMES) == ds.choose(2, 6, FRAMES)).all()
    # Sketches are drawn at the training size from the resized landmarks: the jaw line is lit.
    assert (item["y_t"] > -1).any()
    with pytest.raises(PuppetError, match="K \\+ 1 = 17"):
        VideoDataset(data, 32, K=16)


def test_dataset_contrast_pairs_and_regions(data_run):
    """contrast=1: every target is among the quarter of frames whose eyes and mouth differ most from the
    reference's (the synthetic clips talk and blink); regions=True adds the target's mouth and eye mask."""
    from puppet.faces.regions import openness, region_mask

    data, _ = data_run
    plain = VideoDataset(data, 32, K=4, seed=0)
    ds = VideoDataset(data, 32, K=4, seed=0, contrast=1.0, regions=True)
    video = Video(data / load_manifest(data)["videos"][0]["file"])
    opened = np.stack([openness(p) for p in video.landmarks])
    gaps, random_gaps = [], []
    for epoch in range(30):
        picks = ds.choose(0, epoch, FRAMES, opened)
        base = plain.choose(0, epoch, FRAMES)
        assert (picks[:-1] == base[:-1]).all()  # the same K frames: only the target changes
        assert picks[-1] not in picks[:-1]
        gaps.append(np.abs((opened[picks[-1]] - opened[picks[0]]) * [0.5, 0.5, 1]).sum())
        random_gaps.append(np.abs((opened[base[-1]] - opened[base[0]]) * [0.5, 0.5, 1]).sum())
    assert np.mean(gaps) > 1.5 * np.mean(random_gaps)
    item = ds[(0, 0)]
    picks = ds.choose(0, 0, FRAMES, opened)
    lms = (video.landmarks[picks[-1]] + 0.5) * (32 / video.size) - 0.5
    assert torch.equal(item["region"][0], torch.from_numpy(region_mask(lms, 32)))
    with pytest.raises(PuppetError, match="between 0 and 1"):
        VideoDataset(data, 32, K=4, contrast=1.5)


def test_dataset_uint8_items_are_the_float_ones_bit_for_bit(data_run):
    """uint8=True (what the training loader ships between processes): the same item at a quarter of the
    bytes, and from_uint8 on it gives exactly the float32 item (so training is unchanged)."""
    from puppet.faces.images import from_uint8

    data, _ = data_run
    kw = dict(K=4, seed=0, warped=True, regions=True, contrast=0.5)
    plain, compact = VideoDataset(data, 32, **kw), VideoDataset(data, 32, uint8=True, **kw)
    for key in ((0, 0), (1, 3)):
        a, b = plain[key], compact[key]
        assert a.keys() == b.keys()
        for k in a:
            if k in ("x", "y", "x_t", "y_t", "warped"):
                assert b[k].dtype == torch.uint8 and a[k].dtype == torch.float32
                assert torch.equal(from_uint8(b[k]), a[k]), k
            else:
                assert torch.equal(a[k], b[k]), k


def test_dataset_groups_clips_by_folder(data_run):
    """group="folder": VoxCeleb2's speaker/video/clip layout, a video is the folder's clips together."""
    data, _ = data_run
    ds = VideoDataset(data, image_size=32, K=16, seed=0, group="folder")  # 16 + 1 frames: needs both clips
    assert ds.ids == ["astronaut", "grace_hopper"]
    picks = ds.choose(0, 0, 2 * FRAMES)
    assert (picks < FRAMES).any() and (picks >= FRAMES).any()
    item = ds[(0, 0)]
    assert item["x"].shape == (16, 3, 32, 32) and int(item["i"]) == 0
    assert ds.fingerprint() != VideoDataset(data, 32, K=8).fingerprint()


def test_second_run_resumes(data_run, tmp_path):
    """A second run skips what is done (prepared and skipped alike) and only does new videos."""
    from puppet.data.clips import write_synthetic_videos
    from puppet.data.prepare import main

    data, _ = data_run
    work = tmp_path / "data"
    shutil.copytree(data, work)
    videos = data.parent / "videos"
    extra = tmp_path / "extra"
    shutil.copytree(videos, extra)
    write_synthetic_videos(extra / "newcomer", 1, n_frames=12, seed=7, size=256)
    before = json.loads((work / MANIFEST).read_text())
    assert main([str(extra), "--out", str(work), "--size", str(STORED_SIZE), "--no-progress"]) == 0
    after = json.loads((work / MANIFEST).read_text())
    assert len(after["videos"]) == len(before["videos"]) + 1
    new = [v for v in after["videos"] if v["id"].startswith("newcomer/")]
    assert len(new) == 1 and new[0]["frames"] == 12
    # Nothing else was redone: the journal holds one new line.
    lines = (work / "journal.jsonl").read_text().splitlines()
    assert len(lines) == GOOD_VIDEOS + 2 + 1


def test_synthetic_prepare_without_tracking(tmp_path):
    """--synthetic N: animated portraits straight into the dataset, their exact landmarks stored."""
    from puppet.data.prepare import main

    out = tmp_path / "syn"
    assert main(["--synthetic", "3", "--out", str(out), "--size", "48", "--max-frames", "10",
                 "--no-progress"]) == 0
    m = load_manifest(out)
    assert [v["id"] for v in m["videos"]] == ["synthetic/00000", "synthetic/00001", "synthetic/00002"]
    v = Video(out / m["videos"][0]["file"])
    assert len(v) == 10 and v.frame(0).shape == (48, 48, 3)
    lms = v.landmarks
    assert np.all(lms > -5) and np.all(lms < 53)  # inside the crop
    assert np.abs(np.diff(lms, axis=0)).max() > 0.05  # the face moves
    # Same seed, same clips: a resumed or repeated run makes identical data.
    out2 = tmp_path / "syn2"
    assert main(["--synthetic", "1", "--out", str(out2), "--size", "48", "--max-frames", "10",
                 "--no-progress"]) == 0
    v2 = Video(out2 / load_manifest(out2)["videos"][0]["file"])
    np.testing.assert_array_equal(v2.landmarks, lms)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "puppet.prepare", *args], capture_output=True, text=True,
                          env=child_env(), timeout=120)


def test_empty_or_missing_input_is_one_line_error(tmp_path, capsys):
    """An empty folder as the user runs it (a real process), a missing one through run_cli in this process:
    exit 2, one line naming it, nothing written."""
    from puppet.data.prepare import main
    from puppet.errors import run_cli

    empty, missing = tmp_path / "empty", tmp_path / "missing"
    empty.mkdir()
    proc = _cli(str(empty), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and str(empty) in err, err
    with pytest.raises(SystemExit) as e:
        run_cli(main, [str(missing), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: ") and "\n" not in err and str(missing) in err, err
    assert not (tmp_path / "out").exists()

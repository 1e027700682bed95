"""What the user is told when an input is odd: a folder for a photo, an export child that fails, a photo
with several faces, a video cut short. Real files, real mediapipe, a real child process."""

import cv2
import numpy as np
import pytest

from puppet.errors import PuppetError, run_cli


def test_finetune_on_a_folder_says_it_is_a_folder(tmp_path, capsys):
    from puppet.training.finetune import main

    with pytest.raises(SystemExit) as e:
        run_cli(main, [str(tmp_path), "--out", str(tmp_path / "t.pt"), "--from-scratch", "--config", "tiny"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    assert f"{tmp_path}: is a folder, not a photo" in err[0]


def test_an_export_childs_error_is_said_once(tmp_path, logs):
    from puppet.artifacts import build

    missing = tmp_path / "-gone.pt"  # named like an option, too
    with pytest.raises(PuppetError) as e:
        build("export.onnx", [f"--target={missing}"])
    assert "no such target file" in str(e.value)
    said = [r.getMessage() for r in logs.records if "no such target file" in r.getMessage()]
    assert said == [], said  # the child's error line becomes the raised error, not also a log line


def test_a_photo_with_two_faces_names_the_one_used(grace_hopper_path, astronaut_path, tmp_path, logs):
    from puppet.faces.images import read_image
    from puppet.training.photos import prepare_photos

    a = read_image(astronaut_path)  # 512 x 512
    g = read_image(grace_hopper_path)
    g = cv2.resize(g, (round(g.shape[1] * 256 / g.shape[0]), 256))  # a smaller face
    g = np.pad(g, ((0, 512 - 256), (0, 0), (0, 0)))
    photo = tmp_path / "two.png"
    cv2.imwrite(str(photo), np.hstack([g, a]))
    crops, lms = prepare_photos([photo], 64)
    assert len(crops) == 1
    notes = sorted({r.getMessage() for r in logs.records if "faces found" in r.getMessage()})
    assert len(notes) == 1 and notes[0].startswith(f"{photo}: 2 faces found; using the largest"), notes
    # the one named is the astronaut's, on the right half
    x0 = int(notes[0].split(" at x ")[1].split("..")[0])
    assert x0 > g.shape[1]


def test_a_truncated_video_ends_with_a_notice(tmp_path, logs):
    from puppet.data.clips import write_video
    from puppet.live.sources import FileSource

    frames = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(50)]
    whole = write_video(tmp_path / "whole.avi", frames, 25.0)
    cut = tmp_path / "cut.avi"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    for path, expect in ((whole, 0), (cut, 1)):
        src = FileSource(path)
        n = 0
        while src.read() is not None:
            n += 1
        assert src.read() is None
        src.close()
        notes = sorted({r.getMessage() for r in logs.records if str(path) in r.getMessage()})
        assert len(notes) == expect, notes
        if expect:
            assert f"the video ends after {n} of the 50 frames" in notes[0] and n < 50
        else:
            assert n == 50


def test_an_export_child_that_crashes_is_one_line_not_its_traceback(tmp_path, logs, monkeypatch):
    """A builder that dies with a Python traceback gives one error naming the exception; its progress is
    passed on, its traceback isn't (it is there at debug level)."""
    import os

    from puppet.artifacts import build

    (tmp_path / "crashing_builder.py").write_text(
        "print('exporting...', flush=True)\n"
        "open('/nonexistent/folder/x.onnx', 'wb')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    with pytest.raises(PuppetError) as e:
        build("crashing_builder", [])
    assert "FileNotFoundError" in str(e.value) and "\n" not in str(e.value)
    relayed = sorted({r.getMessage() for r in logs.records if r.levelname == "INFO"
                      and r.getMessage().startswith("crashing_builder: ")})
    assert relayed == ["crashing_builder: exporting..."], relayed

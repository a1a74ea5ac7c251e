"""The facehallu command on real LFW photos and bad files (an untrained tiny test preset)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from keras_facehallu.cli import main


@pytest.fixture
def inputs(tmp_path, lfw_photos):
    folder = tmp_path / "in"
    nested = folder / "Some Person" / ".."
    (folder / "Some Person").mkdir(parents=True)
    shutil.copy(lfw_photos[0], folder / "Some Person" / "a photo (1).jpg")
    shutil.copy(lfw_photos[1], folder / "b.jpg")
    (folder / "empty.png").write_bytes(b"")
    (folder / "corrupt.jpg").write_bytes(open(lfw_photos[2], "rb").read()[:300])
    gradient = np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (200, 1))
    Image.fromarray(gradient).save(folder / "no_face.png")
    del nested
    return folder


def _text(path):
    return Image.open(path).text


def test_folder_run_writes_results_and_reports_failures(inputs, test_preset, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(inputs), "-o", str(out), "--preset", str(test_preset),
                 "--batch-size", "2", "--json", "--no-progress"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1  # some inputs failed
    by_name = {e["input"].rsplit("/", 1)[-1]: e for e in summary["files"]}
    assert by_name["empty.png"]["reason"] == "empty"
    assert by_name["corrupt.jpg"]["reason"] in ("corrupt", "not_an_image")
    assert by_name["no_face.png"]["reason"] == "no_face"
    assert "no_face.png" in by_name["no_face.png"]["message"]
    good = [e for e in summary["files"] if e["ok"]]
    assert len(good) == 2 and summary["ok"] == 2 and summary["failed"] == 3
    for entry in good:
        face = entry["faces"][0]
        result = np.asarray(Image.open(face["result"]))
        assert result.shape == (128, 128, 3)
        photo = np.asarray(Image.open(face["in_photo"]))
        assert photo.shape == (250, 250, 3)
        assert Image.open(face["sheet"]).size[0] > 3 * 128
        meta = _text(face["result"])
        assert meta["facehallu:synthetic"] == "true"
        assert meta["facehallu:preset"] == "untrained_test"
    names = sorted(p.name for p in out.iterdir())
    assert "summary.json" in names
    assert all(" " not in n and "(" not in n and ".jpg" not in n for n in names)
    assert "b_face0.png" in names and "Some_Person_a_photo_1_face0_sheet.png" in names
    assert not [p for p in out.rglob("*") if p.parent != out]  # nothing outside the folder


def test_background_and_paste_face(lfw_photos, test_preset, tmp_path, capsys):
    background = tmp_path / "bg.png"
    Image.fromarray(np.full((300, 400, 4), 200, np.uint8)).save(background)  # RGBA background
    out = tmp_path / "out"
    code = main([str(lfw_photos[3]), "-o", str(out), "--preset", str(test_preset),
                 "--background", str(background), "--no-progress"])
    assert code == 0, capsys.readouterr()
    produced = sorted(p.name for p in out.glob("*.png"))
    assert len(produced) == 4 and any(n.endswith("_background.png") for n in produced)


def test_usage_errors_exit_2(lfw_photos, test_preset, tmp_path, capsys):
    assert main([str(lfw_photos[0]), "-o", str(tmp_path), "--preset", "no_such"]) == 2
    assert "unknown preset 'no_such'" in capsys.readouterr().err
    code = main([str(lfw_photos[0]), "-o", str(tmp_path), "--preset", str(test_preset),
                 "--background", str(tmp_path / "missing.jpg")])
    assert code == 2
    assert "missing.jpg" in capsys.readouterr().err

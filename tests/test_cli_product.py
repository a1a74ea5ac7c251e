"""facehallu as a product: file modes, earlier results, symlinks, stderr, --quiet, --version.

Runs the real command on real photos with an untrained width-1/32 preset (plumbing only).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

from keras_facehallu.cli import main
from keras_facehallu.version import __version__


@pytest.fixture
def two_photos(tmp_path, lfw_photos):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(lfw_photos[0], folder / "a.jpg")
    shutil.copy(lfw_photos[1], folder / "b.jpg")
    return folder


@pytest.fixture
def umask():
    """Sets a umask for the test and puts the old one back."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _run(inputs, out, preset, *extra):
    return main([str(inputs), "-o", str(out), "--preset", str(preset), "--no-progress",
                 "--json", *extra])


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ----------------------------------------------------------------------------- file modes ----
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640)])
def test_writers_respect_the_umask(tmp_path, umask, mask, expected):
    from keras_facehallu.atomic import write_json
    from keras_facehallu.data.records import write_json_atomic
    from keras_facehallu.outputs import write_png

    umask(mask)
    png = write_png(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    write_json(tmp_path / "a.json", {"a": 1})
    write_json_atomic(tmp_path / "b.json", {"b": 1})
    for path in (png, tmp_path / "a.json", tmp_path / "b.json"):
        assert _mode(path) == expected, path
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_command_outputs_have_usual_permissions(two_photos, test_preset, tmp_path, umask,
                                                capsys):
    umask(0o022)
    out = tmp_path / "out"
    assert _run(two_photos, out, test_preset) == 0, capsys.readouterr().err
    files = sorted(out.iterdir())
    assert any(p.name == "summary.json" for p in files) and len(files) == 7
    assert {_mode(p) for p in files} == {0o644}


# -------------------------------------------------------------- existing results, symlinks ----
def test_symlink_in_output_fails_that_output_only(two_photos, test_preset, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "a_face0_sheet.png").symlink_to(victim)
    code = _run(two_photos, out, test_preset)
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert code == 1
    assert summary["ok"] == 1 and summary["failed"] == 1
    failed = next(e for e in summary["files"] if not e["ok"])
    assert failed["input"].endswith("a.jpg") and failed["reason"] == "output_refused"
    assert "symbolic link" in failed["message"] and "a_face0_sheet.png" in failed["message"]
    assert f"FAILED {failed['input']}" in captured.err  # FAILED lines go to stderr
    assert victim.read_text() == "keep me" and (out / "a_face0_sheet.png").is_symlink()
    assert json.loads((out / "summary.json").read_text())["failed"] == 1
    assert (out / "b_face0.png").is_file()


def test_second_run_is_refused_unless_asked(two_photos, test_preset, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(two_photos, out, test_preset) == 0
    capsys.readouterr()
    before = _snapshot(out)

    assert _run(two_photos, out, test_preset) == 2
    err = capsys.readouterr().err
    assert "earlier run" in err and "--overwrite" in err and "--skip-existing" in err
    assert _snapshot(out) == before

    assert _run(two_photos, out, test_preset, "--skip-existing") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == 2 and summary["failed"] == 0
    assert all(f["skipped"] for e in summary["files"] for f in e["faces"])
    after = _snapshot(out)
    assert {k: v for k, v in after.items() if k != "summary.json"} == {
        k: v for k, v in before.items() if k != "summary.json"
    }

    (out / "a_face0.png").write_bytes(b"old")
    assert _run(two_photos, out, test_preset, "--overwrite") == 0
    assert (out / "a_face0.png").read_bytes() != b"old"

    with pytest.raises(SystemExit):  # the two flags exclude each other
        main([str(two_photos), "-o", str(out), "--overwrite", "--skip-existing"])


def test_file_of_another_run_fails_that_output(two_photos, test_preset, tmp_path, capsys):
    """Another run's file (its summary not written yet) is never replaced; the run goes on."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_face0_in_photo.png").write_bytes(b"another run")
    assert _run(two_photos, out, test_preset) == 1
    summary = json.loads(capsys.readouterr().out)
    failed = next(e for e in summary["files"] if not e["ok"])
    assert failed["input"].endswith("b.jpg") and failed["reason"] == "output_exists"
    assert "--overwrite" in failed["message"]
    assert (out / "b_face0_in_photo.png").read_bytes() == b"another run"
    assert (out / "summary.json").is_file() and (out / "a_face0.png").is_file()


def test_output_that_is_a_file_is_a_usage_error(two_photos, test_preset, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("")
    assert _run(two_photos, out, test_preset) == 2
    assert "not a folder" in capsys.readouterr().err


# --------------------------------------------------------------------- stdout and stderr ----
def _command(*args):
    """The command in a fresh process, with none of the quieting variables set by the caller."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")}
    return subprocess.run(
        [sys.executable, "-m", "keras_facehallu.cli", *args],
        capture_output=True, text=True, timeout=300, env=env,
    )


def test_version_is_printed_without_loading_anything():
    done = _command("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"facehallu {__version__}"


def test_stderr_is_clean_and_failures_go_there(two_photos, test_preset, tmp_path):
    (two_photos / "broken.jpg").write_bytes(b"not a photo")
    done = _command(str(two_photos), "-o", str(tmp_path / "out"), "--preset", str(test_preset),
                    "--no-progress")
    assert done.returncode == 1
    assert done.stdout.strip().startswith("2 of 3 photos done, 1 failed")
    assert "FAILED" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FAILED ") and "broken.jpg" in lines[0], (
        done.stderr
    )

    quiet = _command(str(two_photos), "-o", str(tmp_path / "quiet"), "--preset",
                     str(test_preset), "--quiet")
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert [line.split(":")[0] for line in quiet.stderr.strip().splitlines()] == [
        f"FAILED {two_photos / 'broken.jpg'}"
    ]


# ------------------------------------------------------------------ the background command ----
def _png_header_only(path, width, height):
    """A tiny PNG file whose header declares ``width`` x ``height`` (a decompression bomb shape)."""
    import struct
    import zlib

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(
    "width, height, expected",
    [(10_000, 10_000, "above the limit of 40,000,000"), (20_000, 20_000, "decompression bomb")],
)
@pytest.mark.parametrize("role", ["image", "background"])
def test_background_command_refuses_huge_images(lfw_photos, tmp_path, capsys, width, height,
                                                expected, role):
    from keras_facehallu.background.cli import main as background_main

    huge = _png_header_only(tmp_path / "huge.png", width, height)
    assert huge.stat().st_size < 1000
    image, background = (huge, lfw_photos[0]) if role == "image" else (lfw_photos[0], huge)
    code = background_main([str(image), "--background", str(background),
                            "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and expected in err and "huge.png" in err
    assert "Traceback" not in err and not (tmp_path / "out.png").exists()


def test_facehallu_refuses_huge_photo_by_its_header(test_preset, tmp_path, capsys):
    huge = _png_header_only(tmp_path / "huge.png", 10_000, 10_000)
    assert _run(huge, tmp_path / "out", test_preset) == 1
    entry = json.loads(capsys.readouterr().out)["files"][0]
    assert entry["reason"] == "too_large" and "40,000,000" in entry["message"]


def test_background_command_output_is_marked_with_usual_mode(lfw_photos, tmp_path, umask,
                                                             capsys):
    import xml.etree.ElementTree as ET

    from PIL import Image

    from keras_facehallu.background.cli import main as background_main
    from keras_facehallu.outputs import DIGITAL_SOURCE_TYPE

    umask(0o022)
    background = tmp_path / "bg.png"
    Image.fromarray(np.full((64, 96, 3), 90, np.uint8)).save(background)
    for name in ("out.png", "out.jpg"):
        out = tmp_path / name
        assert background_main([str(lfw_photos[0]), "--background", str(background),
                                "-o", str(out), "--mask-output", str(tmp_path / "m.png")]) == 0
        assert capsys.readouterr().out.strip() == str(out)
        assert _mode(out) == 0o644
        with Image.open(out) as img:
            xmp = img.info.get("XML:com.adobe.xmp") or img.info.get("xmp")
        xmp = xmp.decode() if isinstance(xmp, bytes) else xmp
        root = ET.fromstring(xmp[xmp.index("<x:xmpmeta"):xmp.index("</x:xmpmeta>") + 12])
        found = [d.get("{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}DigitalSourceType")
                 for d in root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")]
        assert found == [DIGITAL_SOURCE_TYPE]
    with Image.open(tmp_path / "out.png") as img:
        assert img.text["facehallu:synthetic"] == "true"


def test_facehallu_pngs_carry_xmp(two_photos, test_preset, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "out"
    assert _run(two_photos, out, test_preset) == 0
    for png in out.glob("*.png"):
        with Image.open(png) as img:
            assert img.text["facehallu:synthetic"] == "true"
            assert "trainedAlgorithmicMedia" in img.text["XML:com.adobe.xmp"]


# ------------------------------------------------------------------- the pasted-back seam ----
def test_pasted_square_has_a_blended_seam():
    from keras_facehallu.outputs import paste_into_photo

    angle = np.deg2rad(20.0)
    c, s = np.cos(angle), np.sin(angle)
    # photo -> crop: rotate by 20 degrees about the photo centre (150, 150), crop centre (64, 64)
    rotation = np.array([[c, s], [-s, c]])
    transform = np.hstack([rotation, (np.array([64.0, 64.0]) - rotation @ [150.0, 150.0])[:, None]])
    photo = np.zeros((300, 300, 3), np.uint8)
    crop = np.full((128, 128, 3), 255, np.uint8)
    blended = paste_into_photo(photo, crop, transform)[..., 0].astype(int)
    hard = paste_into_photo(photo, crop, transform, feather=0)[..., 0].astype(int)
    assert blended[150, 150] == 255 and blended[0, 0] == 0
    step = max(np.abs(np.diff(blended, axis=0)).max(), np.abs(np.diff(blended, axis=1)).max())
    hard_step = max(np.abs(np.diff(hard, axis=0)).max(), np.abs(np.diff(hard, axis=1)).max())
    assert hard_step > 200 and step < 80, (hard_step, step)


def test_device_choice(two_photos, test_preset, tmp_path, capsys):
    from keras_facehallu.startup import available_devices

    assert "cpu:0" in available_devices()
    assert _run(two_photos, tmp_path / "cpu", test_preset, "--device", "cpu") == 0
    capsys.readouterr()
    assert _run(two_photos, tmp_path / "none", test_preset, "--device", "tpu:7") == 2
    err = capsys.readouterr().err
    assert "--device tpu:7: not available" in err and "cpu:0" in err


def test_unverifiable_preset_folder_is_one_warning_line(two_photos, test_preset, tmp_path,
                                                        capsys):
    preset = shutil.copytree(test_preset, tmp_path / "unverified")
    (preset / "metadata.json").unlink()
    assert _run(two_photos, tmp_path / "out", preset) == 0
    err = capsys.readouterr().err
    assert err.startswith("facehallu: warning: preset folder") and "cannot be verified" in err
    assert len(err.strip().splitlines()) == 1

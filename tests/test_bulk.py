"""facehallu-bulk end to end on Beam's DirectRunner: real face photos plus bad files made here
(corrupt, not an image, empty, no face, several faces, a huge PNG header), an untrained tiny preset.

Checks the manifest rows, the dead-letter rows, the PNGs and that a re-run rewrites the same files.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

beam = pytest.importorskip("apache_beam", reason="needs the [beam] extra")
pq = pytest.importorskip("pyarrow.parquet")

from keras_facehallu.bulk.cli import main  # noqa: E402
from keras_facehallu.bulk.names import face_stem  # noqa: E402
from keras_facehallu.outputs import (  # noqa: E402
    DIGITAL_SOURCE_TYPE,
    XMP_KEY,
    synthetic_metadata,
)
from keras_facehallu.version import __version__  # noqa: E402

BAD = {  # file -> expected dead-letter reason
    "bad/corrupt.jpg": "corrupt",
    "bad/garbage.png": "not_an_image",
    "bad/empty.jpg": "empty",
    "bad/no_face.png": "no_face",
    "bad/huge.png": "too_large",
}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header() -> bytes:
    """A PNG that claims to be 100000×100000 pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, lfw_photos):
    """16 real photos in identity folders, a two-person composite, the bad files, 2 backgrounds."""
    root = tmp_path_factory.mktemp("bulk")
    photos = root / "photos"
    for photo in lfw_photos:
        (photos / photo.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, photos / photo.parent.name / photo.name)
    left, right = (np.asarray(Image.open(p).convert("RGB")) for p in lfw_photos[4:6])
    (photos / "group").mkdir()
    Image.fromarray(np.concatenate([left, right], axis=1)).save(photos / "group" / "two.jpg",
                                                              quality=95)
    (photos / "bad").mkdir()
    (photos / "bad" / "corrupt.jpg").write_bytes(lfw_photos[2].read_bytes()[:400])
    (photos / "bad" / "garbage.png").write_bytes(np.random.default_rng(0).bytes(5000))
    (photos / "bad" / "empty.jpg").write_bytes(b"")
    gradient = np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (200, 1))
    Image.fromarray(gradient).save(photos / "bad" / "no_face.png")
    (photos / "bad" / "huge.png").write_bytes(huge_png_header())
    backgrounds = root / "backgrounds"
    backgrounds.mkdir()
    rng = np.random.default_rng(1)
    for k in range(2):
        ramp = np.linspace(0, 255, 160)[None, :, None] * rng.uniform(0.3, 1, (1, 1, 3))
        Image.fromarray(np.broadcast_to(ramp, (120, 160, 3)).astype(np.uint8)).save(
            backgrounds / f"bg{k}.png")
    (backgrounds / "notes.txt").write_text("not an image: ignored by --background-dir")
    return root


def _run(dataset, output, preset, *extra):
    return main(["--input", str(dataset / "photos"), "--output", str(output),
                 "--preset", str(preset), "--batch-size", "4", "--json", *extra])


def _read(output):
    manifest = pq.read_table(output / "manifest-00000-of-00001.parquet").to_pylist()
    lines = (output / "failures-00000-of-00001.jsonl").read_text().splitlines()
    return manifest, [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def bulk_run(dataset, test_preset, tmp_path_factory):
    output = tmp_path_factory.mktemp("out") / "run"
    # A folder where one face's result should go makes that write fail: a write-stage dead letter.
    blocked = str(dataset / "photos" / "Todd_Haynes" / "Todd_Haynes_0001.jpg")
    (output / "images" / f"{face_stem(blocked, 0)}.png").mkdir(parents=True)
    code = _run(dataset, output, test_preset, "--all-faces",
                "--background-dir", str(dataset / "backgrounds"))
    manifest, failures = _read(output)
    return {"code": code, "output": output, "manifest": manifest, "failures": failures,
            "blocked": blocked}


def test_every_photo_is_in_the_manifest_or_the_dead_letters(bulk_run, dataset, lfw_photos):
    assert bulk_run["code"] == 1  # some photos failed
    sources = {row["source"] for row in bulk_run["manifest"]}
    failed = {row["source"] for row in bulk_run["failures"]}
    inputs = {str(p) for p in (dataset / "photos").rglob("*") if p.is_file()}
    assert sources | failed == inputs
    keys = [(row["source"], row["face_index"]) for row in bulk_run["manifest"]]
    assert len(keys) == len(set(keys))  # no duplicated rows
    good = {str(dataset / "photos" / p.parent.name / p.name) for p in lfw_photos}
    assert good - {bulk_run["blocked"]} <= sources


def test_dead_letters_name_the_file_and_the_reason(bulk_run, dataset):
    by_name = {}
    for row in bulk_run["failures"]:
        by_name.setdefault(str(Path(row["source"]).relative_to(dataset / "photos")), []).append(row)
    for name, reason in BAD.items():
        (row,) = by_name[name]
        assert row["reason"] == reason, row
        assert row["stage"] == "prepare" and row["face_index"] is None
        assert row["source"] in row["message"] and "<bytes>" not in row["message"]
    (blocked,) = [r for r in bulk_run["failures"] if r["source"] == bulk_run["blocked"]]
    assert blocked["stage"] == "write" and blocked["reason"] == "write_failed"
    assert blocked["face_index"] == 0 and "Todd_Haynes_0001.jpg" in blocked["message"]
    assert not [r for r in bulk_run["failures"] if r["stage"] == "inference"]


def test_manifest_rows_and_pngs(bulk_run, dataset, test_preset):
    rows = bulk_run["manifest"]
    backgrounds = {str(dataset / "backgrounds" / f"bg{k}.png") for k in range(2)}
    meta = synthetic_metadata("CascadedHallucinator", "untrained_test")
    for row in rows:
        assert row["preset"] == "untrained_test" and row["model"] == "CascadedHallucinator"
        assert row["version"] == __version__
        assert len(row["box"]) == 4 and len(row["landmarks"]) == 136 and len(row["transform"]) == 6
        assert 0.9 <= row["confidence"] <= 1.0 and row["num_faces"] > row["face_index"] >= 0
        stem = face_stem(row["source"], row["face_index"])
        assert Path(row["result_path"]).name == f"{stem}.png"
        assert Path(row["in_photo_path"]).name == f"{stem}_in_photo.png"
        assert Path(row["background_path"]).name == f"{stem}_background.png"
        assert row["background_source"] in backgrounds
        result = Image.open(row["result_path"])
        assert result.size == (128, 128) and result.mode == "RGB"
        # marked synthetic as facehallu marks its PNGs (text chunks and the IPTC XMP packet)
        assert meta.items() <= result.text.items()
        assert DIGITAL_SOURCE_TYPE in result.text[XMP_KEY]
        photo = Image.open(row["source"])
        assert Image.open(row["in_photo_path"]).size == photo.size
        assert Image.open(row["background_path"]).size == (128, 128)
    assert len({row["background_source"] for row in rows}) == 2  # the pick spreads
    group = sorted(r["face_index"] for r in rows if r["source"].endswith("group/two.jpg"))
    assert group[:2] == [0, 1]  # --all-faces: both people of the composite
    written = [p for p in (bulk_run["output"] / "images").glob("*.png") if p.is_file()]
    assert len(written) == 3 * len(rows)  # and nothing for the failed write


def test_rerun_rewrites_the_same_files(dataset, test_preset, tmp_path, lfw_photos):
    small = tmp_path / "small"
    (small / "photos").mkdir(parents=True)
    for photo in lfw_photos[:2]:
        shutil.copy(photo, small / "photos" / photo.name)
    shutil.copy(dataset / "photos" / "bad" / "corrupt.jpg", small / "photos")
    output = tmp_path / "out"
    assert _run(small, output, test_preset) == 1
    first = _read(output)
    files = sorted(p.relative_to(output) for p in output.rglob("*"))
    assert _run(small, output, test_preset) == 1
    second = _read(output)
    assert sorted(p.relative_to(output) for p in output.rglob("*")) == files  # nothing new
    key = lambda row: (row["source"], row["face_index"])  # noqa: E731
    assert sorted(first[0], key=key) == sorted(second[0], key=key)
    assert first[1] == second[1] and len(first[0]) == 2 and len(first[1]) == 1


def test_usage_errors_exit_2(dataset, test_preset, tmp_path, capsys):
    assert main(["--input", str(tmp_path / "nothing" / "*.jpg"), "--output", str(tmp_path)]) == 2
    assert "no file matches" in capsys.readouterr().err
    assert main(["--input", str(dataset / "photos"), "--output", str(tmp_path),
                 "--preset", "no_such"]) == 2
    assert "unknown preset 'no_such'" in capsys.readouterr().err
    assert main(["--input", str(dataset / "photos"), "--output", str(tmp_path), "--preset",
                 str(test_preset), "--background-dir", str(dataset / "photos" / "bad" / "x")]) == 2
    assert "--background-dir" in capsys.readouterr().err
    assert main(["--input", str(dataset / "photos"), "--output", str(tmp_path), "--preset",
                 str(test_preset), "--batch-size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err


@pytest.mark.slow
def test_two_worker_processes(dataset, test_preset, tmp_path, lfw_photos):
    """The same job in 2 DirectRunner worker processes: the DoFns and the model handler pickle,
    load once per process, and the metrics come back from the workers."""
    small = tmp_path / "small"
    (small / "photos").mkdir(parents=True)
    for photo in lfw_photos[:3]:
        shutil.copy(photo, small / "photos" / photo.name)
    shutil.copy(dataset / "photos" / "bad" / "no_face.png", small / "photos")
    output = tmp_path / "out"
    code = _run(small, output, test_preset, "--direct_num_workers", "2",
                "--direct_running_mode", "multi_processing")
    manifest, failures = _read(output)
    assert code == 1 and len(manifest) == 3
    assert [f["reason"] for f in failures] == ["no_face"]

"""`facehallu-prepare` end to end on real LFW photos: split, shards, resume, reports."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from keras_facehallu.data import records
from keras_facehallu.training import prepare

VAL_FRACTION = 0.3
TEST_FRACTION = 0.1


@pytest.fixture(scope="module")
def source(lfw_photos, tmp_path_factory):
    """8-10 real photos of 8 people (a second photo where one exists) and one broken file."""
    src = tmp_path_factory.mktemp("src")
    chosen = list(lfw_photos[:8])
    for path in lfw_photos[:2]:
        second = sorted(path.parent.glob("*.jpg"))
        chosen += [p for p in second if p != path][:1]
    for path in chosen:
        (src / path.parent.name).mkdir(exist_ok=True)
        (src / path.parent.name / path.name).symlink_to(path)
    (src / "Broken_File").mkdir()
    (src / "Broken_File" / "Broken_File_0001.jpg").write_text("not a photo")
    return src


def _run(src, out, *extra):
    args = prepare.build_parser().parse_args(
        ["--src", str(src), "--out", str(out), "--val-fraction", str(VAL_FRACTION),
         "--test-fraction", str(TEST_FRACTION), "--shard-size", "3", "--workers", "0", *extra]
    )
    return prepare.prepare(args)


@pytest.fixture(scope="module")
def built(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    return out, _run(source, out)


def _all_examples(out):
    rows = []
    for split in records.SPLITS:
        if not records.read_manifest(out)["shards"].get(split):
            continue
        for ex in records.load_examples(out, split).as_numpy_iterator():
            rows.append((split, ex["source"].decode(), ex["person"].decode(), ex["image"]))
    return rows


def test_manifest_and_summary(built, source):
    out, manifest = built
    summary = manifest["summary"]
    files = len(list(source.glob("*/*.jpg")))
    assert summary["images_in"] == files >= 9
    assert summary["aligned"] + summary["skipped"] == files
    assert summary["aligned"] >= files - 2
    assert summary["skipped_by_reason"].get("not_an_image") == 1
    assert records.read_manifest(out)["summary"] == summary
    assert manifest["people"] == sorted(p.name for p in source.iterdir())
    with open(out / prepare.SKIP_REPORT) as f:
        skipped = list(csv.DictReader(f))
    assert {"file": "Broken_File/Broken_File_0001.jpg", "reason": "not_an_image"}.items() <= \
        skipped[0].items()
    assert "Broken_File/Broken_File_0001.jpg" in skipped[0]["message"]


def test_split_is_by_person_and_stable(built):
    out, manifest = built
    rows = _all_examples(out)
    assert len(rows) == manifest["summary"]["aligned"]
    by_split = {split: {person for s, _, person, _ in rows if s == split}
                for split in records.SPLITS}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not by_split[a] & by_split[b]
    for split, people in by_split.items():
        assert all(prepare.person_split(p, VAL_FRACTION, TEST_FRACTION) == split for p in people)
    assert by_split["train"] and by_split["validation"] and by_split["test"]
    assert manifest["config"]["test_fraction"] == TEST_FRACTION
    for _, _, person, image in rows:
        assert image.shape == (128, 128, 3)
        assert manifest["people"].index(person) >= 0


def test_resume_after_a_simulated_kill(built, source):
    out, manifest = built
    before = sorted((s, src) for s, src, _, _ in _all_examples(out))
    victim = manifest["shards"]["train"][0]
    # A killed run: the shard's completion was never recorded and a half-written temp file remains.
    (out / prepare.PROGRESS_DIR / f"{victim}.json").unlink()
    (out / victim).unlink()
    stale = out / f".{victim}.abc123.tmp"
    stale.write_bytes(b"\x00half a record")
    again = _run(source, out)
    assert again["last_run"]["shards_processed"] == 1
    assert not stale.exists()
    assert again["summary"] == manifest["summary"]
    assert sorted((s, src) for s, src, _, _ in _all_examples(out)) == before
    # nothing left to do on a third run
    assert _run(source, out)["last_run"]["shards_processed"] == 0


def test_refuses_other_settings(built, source):
    out, _ = built
    with pytest.raises(SystemExit, match="other settings"):
        _run(source, out, "--seed", "9")


def test_person_split_is_a_stable_hash():
    assert prepare.person_split("George_W_Bush", 0.1) == prepare.person_split("George_W_Bush", 0.1)
    names = [f"person_{i}" for i in range(2000)]
    share = np.mean([prepare.person_split(n, 0.1) == "validation" for n in names])
    assert 0.07 < share < 0.13
    three = [prepare.person_split(n, 0.1, 0.05) for n in names]
    assert 0.03 < three.count("test") / len(names) < 0.07
    assert 0.03 < three.count("validation") / len(names) < 0.07
    # the test split is cut out of the held-out range: nobody moves into or out of train
    assert all((a == "train") == (b == "train") for a, b in zip(three, (
        prepare.person_split(n, 0.1) for n in names), strict=True))


@pytest.mark.lfw
def test_person_split_of_the_whole_lfw_folder(lfw_dir):
    """On LFW's thousands of real names the split gives about the asked share of people."""
    people = sorted(p.name for p in lfw_dir.iterdir() if p.is_dir())
    assert len(people) > 1000, f"{lfw_dir}: only {len(people)} people, not the whole LFW folder"
    for fraction in (0.1, 0.3):
        share = np.mean([prepare.person_split(p, fraction) == "validation" for p in people])
        assert fraction - 0.02 < share < fraction + 0.02, (fraction, share)


def test_two_workers_match_one(source, built, tmp_path):
    """The spawned-worker path gives the same records as the in-process path."""
    _, manifest = built
    out = tmp_path / "two"
    two = _run(source, out, "--workers", "2")
    assert two["summary"] == manifest["summary"]
    assert json.loads((out / "manifest.json").read_text())["shards"] == manifest["shards"]

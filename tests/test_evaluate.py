"""`facehallu-evaluate` end to end on a tiny prepared folder of real LFW faces and a
random-init CascadedHallucinator: a pipeline test, not a quality number."""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest

from keras_facehallu.training import evaluate


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, lfw_photos):
    """6 real LFW photos aligned by the face pipeline: 3 train, 3 validation shards + manifest."""
    from keras_facehallu.data.records import shard_name, write_examples, write_manifest
    from keras_facehallu.face.pipeline import prepare_face

    examples = []
    for i, path in enumerate(lfw_photos):
        result = prepare_face(path)
        if result.ok:
            examples.append(dict(
                image=result.image, mask=result.mask, landmarks=result.landmarks,
                transform=result.transform, person=path.parent.name, person_index=i,
                source=f"{path.parent.name}/{path.name}",
            ))
        if len(examples) == 6:
            break
    assert len(examples) == 6, "the face pipeline aligned fewer than 6 of 16 LFW photos"
    folder = tmp_path_factory.mktemp("prepared")
    shards = {"train": shard_name("train", 0, 1), "validation": shard_name("validation", 0, 1)}
    write_examples(folder / shards["train"], examples[:3])
    write_examples(folder / shards["validation"], examples[3:])
    write_manifest(folder, {"shards": {k: [v] for k, v in shards.items()}})
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from keras_facehallu.models.cascade import CascadedHallucinator

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    CascadedHallucinator(width=1 / 32, seed=0).save(path)
    return path


def test_evaluate_writes_table_csv_json_and_sheet(prepared, tiny_model, tmp_path, monkeypatch,
                                                  capsys):
    from PIL import Image

    monkeypatch.delenv("KERAS_FACEHALLU_ASSETS", raising=False)
    out = tmp_path / "eval"
    cache = tmp_path / "cache"
    argv = ["--data", str(prepared), "--model", str(tiny_model), "--out", str(out),
            "--cache-dir", str(cache), "--no-download", "--kid-subsets", "5", "--quiet",
            "--bootstrap", "4"]
    assert evaluate.main(argv) == 0
    assert "fid will be unavailable" not in capsys.readouterr().err  # the checks find the weights

    payload = json.loads((out / "results.json").read_text())
    methods = [row["method"] for row in payload["results"]]
    assert methods == ["tiny", *evaluate.BASELINES]
    assert payload["settings"]["n"] == 3 and payload["settings"]["split"] == "validation"
    values = {row["method"]: row["values"] for row in payload["results"]}
    for name in methods:
        assert 0 < values[name]["ssim"] <= 1
        assert values[name]["fid"] is not None and values[name]["fid"] >= 0
        assert values[name]["kid"] is not None
        assert values[name]["pieapp"] is None  # no weights here: never a stand-in number
        if importlib.util.find_spec("keras_facehallu.nets.dlib_resnet"):
            assert -1 <= values[name]["match_score"] <= 1
            assert values[name]["verification_rate"] in {0, 1 / 3, 2 / 3, 1}
    for name in evaluate.BASELINES:  # the face is kept exactly: whole-image SSIM is higher
        assert values[name]["ssim_hallucinated"] < values[name]["ssim"]
    assert "PieAPP" in payload["unavailable"]["perceptual error (PieAPP)"]

    boot = payload["fid_bootstrap"]
    assert boot["resamples"] == 4 and set(boot["percentiles"]) == set(methods)
    assert set(boot["wins"]) == {"tiny"} and set(boot["wins"]["tiny"]) == set(evaluate.BASELINES)
    for p5, p50, p95 in boot["percentiles"].values():
        assert 0 <= p5 <= p50 <= p95

    table = (out / "results.md").read_text()
    assert "FID bootstrap (4 paired resamples" in table
    header = table.splitlines()[2]
    for title in ("match score", "SSIM", "FID", "perceptual error (PieAPP)",
                  "verification rate", "SSIM (hallucinated region)", "KID"):
        assert title in header
    assert "unavailable" in table
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == methods
    assert all(r["pieapp"] == "unavailable" for r in rows)

    assert Image.open(out / "sheet.png").info["facehallu:synthetic"] == "true"
    sheet = np.asarray(Image.open(out / "sheet.png"))
    assert sheet.shape == ((2 + len(methods)) * 128, 150 + 3 * 128, 3)
    # real features were cached once, under the data + detector key
    assert len(list((cache / "fid_stats").glob("*.npz"))) == 1
    assert len(list((cache / "mean_context").glob("*.npz"))) == 1


def test_evaluate_baselines_only_and_bad_arguments(prepared, tmp_path, capsys):
    out = tmp_path / "base"
    evaluate.main(["--data", str(prepared), "--baselines-only", "--out", str(out),
                   "--metrics", "ssim", "ssim_hallucinated", "--limit", "2", "--quiet",
                   "--cache-dir", str(tmp_path / "cache")])
    payload = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in payload["results"]] == list(evaluate.BASELINES)
    assert payload["settings"]["n"] == 2
    assert set(payload["results"][0]["values"]) == {"ssim", "ssim_hallucinated"}

    with pytest.raises(SystemExit, match="--baselines-only"):
        evaluate.main(["--data", str(prepared), "--out", str(out)])
    with pytest.raises(SystemExit, match="no such file"):
        evaluate.main(["--data", str(prepared), "--model", str(tmp_path / "x.keras"),
                       "--out", str(out)])
    with pytest.raises(SystemExit, match="no such folder"):
        evaluate.main(["--data", str(tmp_path / "nope"), "--baselines-only", "--out", str(out)])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate.main(["--data", str(prepared), "--baselines-only", "--out", str(out),
                       "--metrics", "psnr"])


def test_evaluate_checks_before_long_work_and_keeps_what_it_finished(prepared, tiny_model,
                                                                     tmp_path):
    """A missing train split fails before any output is computed; a broken model does not cost
    the other methods: their rows are written and the exit names the failure."""
    import shutil

    from keras_facehallu.data.records import read_manifest, write_manifest

    no_train = tmp_path / "no_train"
    shutil.copytree(prepared, no_train)
    manifest = read_manifest(no_train)
    (no_train / manifest["shards"]["train"][0]).unlink()
    del manifest["shards"]["train"]
    write_manifest(no_train, manifest)
    out = tmp_path / "early"
    with pytest.raises(SystemExit, match="mean-context baseline needs the train split"):
        evaluate.main(["--data", str(no_train), "--baselines-only", "--out", str(out)])
    assert not (out / "results.json").exists()
    with pytest.raises(SystemExit, match="--split test"):
        evaluate.main(["--data", str(prepared), "--split", "test", "--baselines-only",
                       "--out", str(out)])

    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a keras archive")
    out = tmp_path / "late"
    with pytest.raises(SystemExit, match="1 method\\(s\\) failed: broken"):
        evaluate.main(["--data", str(prepared), "--model", str(broken), "--out", str(out),
                       "--metrics", "ssim", "--quiet", "--no-mean-context"])
    payload = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in payload["results"]] == list(evaluate.BASELINES[:2])
    assert "broken" in payload["settings"]["failed"]
    assert payload["settings"]["complete"] is False

    out = tmp_path / "models_only"  # a selection run: the models without the baselines
    evaluate.main(["--data", str(prepared), "--model", str(tiny_model), "--no-baselines",
                   "--metrics", "ssim", "--quiet", "--out", str(out)])
    payload = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in payload["results"]] == ["tiny"]
    with pytest.raises(SystemExit, match="at least one --model"):
        evaluate.main(["--data", str(prepared), "--no-baselines", "--out", str(out)])


def test_bootstrap_table_rows_have_the_header_s_cells_with_and_without_baselines():
    runs = {"model": np.array([1.0, 2.0, 3.0]), "OpenCV Telea": np.array([2.0, 2.0, 2.0])}
    rows = [{"method": "model", "kind": "model"}, {"method": "OpenCV Telea", "kind": "baseline"}]
    tables = {}
    for kept in (("model", "OpenCV Telea"), ("model",)):  # the second: --no-baselines
        summary = evaluate.summarise_bootstrap({k: runs[k] for k in kept}, rows)
        table = [line for line in evaluate.bootstrap_lines(summary) if line.startswith("|")]
        assert len({line.count("|") for line in table}) == 1, table
        tables[kept] = table
    assert "| model | 1.10 | 2.00 | 2.90 | 33 % |" in tables[("model", "OpenCV Telea")]
    assert "| model | 1.10 | 2.00 | 2.90 |" in tables[("model",)]

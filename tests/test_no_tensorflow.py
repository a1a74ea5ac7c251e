"""Training where only JAX is installed: TensorFlow made unimportable, packed data.

Each run is a subprocess whose ``sitecustomize`` sets ``sys.modules["tensorflow"] = None`` (so
``import tensorflow`` fails as on a machine without it) with ``KERAS_BACKEND=jax``: the training
command trains the tiny config two epochs from a packed folder of the shipped photos, writes a
preset, and resumes a run cut after its first epoch. The accelerator script
(``training/accelerator/run.sh``) runs end to end in the same environment (slow).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keras_facehallu.models import load_preset
from tests.tiny_data import make_tiny_packed

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def no_tf_env(tmp_path_factory):
    shim = tmp_path_factory.mktemp("no_tensorflow")
    (shim / "sitecustomize.py").write_text(
        "import sys\n"
        "sys.modules['tensorflow'] = None  # import tensorflow -> ModuleNotFoundError\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_")}
    env.update(PYTHONPATH=f"{shim}{os.pathsep}{REPO}", KERAS_BACKEND="jax",
               KERAS_HOME=str(tmp_path_factory.mktemp("keras_home")), PYTHONUNBUFFERED="1")
    # XLA's compilation cache, shared by the runs: a resumed run reuses the first one's programs
    # (here 100 s -> 20 s for the second process on a busy 2-core machine).
    env.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    return env


@pytest.fixture(scope="module")
def packed(faces_dir, tmp_path_factory):
    return make_tiny_packed(tmp_path_factory.mktemp("data") / "packed", faces_dir, 6, 2)


def _run(args, env, cwd, timeout=300):
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _train(args, env, cwd):
    return _run([sys.executable, "-m", "keras_facehallu.training.train", *args], env, cwd)


def test_tensorflow_is_really_unimportable(no_tf_env, tmp_path):
    code, out = _run([sys.executable, "-c", "import tensorflow"], no_tf_env, tmp_path)
    assert code != 0 and "ModuleNotFoundError" in out


def test_trains_resumes_and_writes_a_preset_without_tensorflow(no_tf_env, packed, tmp_path):
    runs = tmp_path / "runs"
    code, out = _train(
        ["--config", "tiny", "--data", str(packed), "--runs", str(runs),
         "--set", "steps_per_epoch=2", "--set", "validation_steps=1", "--set", "seed=5",
         "--verbose", "0"],
        no_tf_env, tmp_path,
    )
    assert code == 0, out
    run = next(runs.iterdir())
    spec = json.loads((run / "config.json").read_text())
    assert spec["backend"] == "jax" and spec["data_format"] == "packed"
    assert "TFLOP/s" in out and "images/s" in out  # the throughput line of each epoch
    assert "no TensorBoard logs" in out
    assert (run / "final" / "model.weights.h5").is_file()
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert (run / "snapshots" / "epoch-0002").is_dir()
    assert len((run / "log.csv").read_text().splitlines()) == 3  # header + 2 epochs

    # What a run killed during epoch 2 leaves: epoch 1's checkpoint is the latest, no final/.
    shutil.rmtree(run / "final")
    shutil.rmtree(run / "checkpoints" / "epoch-0002")
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": "epoch-0001"}))
    code, out = _train(["--resume", str(run), "--verbose", "0"], no_tf_env, tmp_path)
    assert code == 0, out
    assert "resuming" in out and "after epoch 1" in out
    assert len((run / "log.csv").read_text().splitlines()) == 3
    assert json.loads((run / "status.json").read_text())["status"] == "finished"

    model = load_preset(run / "final")  # written without TensorFlow, read by any backend
    assert type(model).__name__ == "CascadedHallucinator" and model.width == 1 / 32
    assert model.preset_metadata["epoch"] == 2


def test_a_tfrecord_folder_without_tensorflow_names_the_export_command(no_tf_env, tmp_path):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "manifest.json").write_text(json.dumps({"format_version": 1}))
    code, out = _train(["--config", "tiny", "--data", str(prepared), "--runs",
                        str(tmp_path / "runs")], no_tf_env, tmp_path)
    assert code == 2
    assert "TensorFlow" in out and "keras_facehallu.data.packed export" in out


@pytest.mark.slow
def test_accelerator_script_end_to_end_without_tensorflow(no_tf_env, packed, tmp_path):
    """run.sh with a 60 s budget, bfloat16, then the converter back into a preset.

    Wheels are installed when FACEHALLU_TEST_WHEELS names a folder of them for this Python
    (``training/accelerator/fetch_wheels.sh --python 3.11 --dest DIR``); else the installed keras.
    """
    wheels = os.environ.get("FACEHALLU_TEST_WHEELS", str(tmp_path / "no_wheels"))
    out = tmp_path / "out"
    env = dict(no_tf_env, PYTHON=sys.executable)
    code, log = _run(
        ["bash", str(REPO / "training" / "accelerator" / "run.sh"), "--data", str(packed),
         "--out", str(out), "--budget", "60", "--config", "tiny", "--wheels", wheels,
         "--runs", str(tmp_path / "runs"), "--set", "epochs=1000", "--set", "steps_per_epoch=2",
         "--set", "validation_steps=1", "--set", "snapshots=[]",
         "--set", "dtype_policy=mixed_bfloat16"],
        env, tmp_path, timeout=400,
    )
    assert code == 0, log
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and all((out / f).stat().st_size <= 16_000_000 for f in files)
    assert {"generator.json", "generator.part-000.bin", "run.log", "log.csv"} <= set(files)
    text = (out / "run.log").read_text()
    assert "time budget of 60 s: stopping after epoch" in text and "TFLOP/s" in text
    assert "bfloat16" in text
    run = next((tmp_path / "runs").glob("0*"))
    assert json.loads((run / "status.json").read_text())["status"] == "finished"

    from keras_facehallu.training.weight_parts import parts_to_preset

    preset = parts_to_preset(out, tmp_path / "preset")
    ours, theirs = load_preset(preset), load_preset(run / "final")
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        assert (a.numpy() == b.numpy()).all()


def test_tfrecords_are_exported_once_and_picked_when_tensorflow_is_missing(
    faces_dir, no_tf_env, tmp_path
):
    pytest.importorskip("tensorflow")
    from keras_facehallu.training.train import resolve_data
    from tests.tiny_data import make_tiny_prepared

    prepared = make_tiny_prepared(tmp_path / "prepared", faces_dir, n_train=4, n_val=2)
    runs = tmp_path / "runs"
    assert resolve_data(prepared, "auto", runs) == (prepared, "tfrecord")  # TensorFlow is here
    cache, fmt = resolve_data(prepared, "packed", runs)
    assert fmt == "packed" and cache.parent == runs / ".packed"
    assert json.loads((cache / "manifest.json").read_text())["splits"]["train"]["count"] == 4
    assert resolve_data(cache, "auto", runs) == (cache, "packed")
    with pytest.raises(ValueError, match="a packed folder, not TFRecords"):
        resolve_data(cache, "tfrecord", runs)
    pick = ("from pathlib import Path; from keras_facehallu.training.train import resolve_data; "
            f"print(resolve_data(Path({str(prepared)!r}), 'auto', Path({str(runs)!r}))[1])")
    code, out = _run([sys.executable, "-c", pick], no_tf_env, tmp_path)
    assert code == 0 and out.strip().endswith("packed"), out

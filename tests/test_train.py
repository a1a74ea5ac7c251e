"""facehallu-train: run folder, checkpoints, kill + resume, NaN stop, configs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keras_facehallu.training.configs import CONFIGS, TrainConfig, get_config, parse_override
from tests.tiny_data import make_tiny_prepared

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, faces_dir):
    return make_tiny_prepared(tmp_path_factory.mktemp("data"), faces_dir, n_train=6, n_val=2)


def test_named_configs_resolve():
    for name in ("cascaded", "progan", "l2", "no_adv", "no_id", "no_pc", "cpu_small"):
        cfg = get_config(name)
        assert cfg.name == name
    assert get_config("l2").loss_ablation == "l2"
    # the field's old name is still read (config.json of earlier runs, --set loss_preset=...)
    assert get_config("cascaded", loss_preset="no_id").loss_ablation == "no_id"
    assert TrainConfig.from_dict({"loss_preset": "l2"}).loss_ablation == "l2"
    with pytest.raises(ValueError, match="give loss_ablation or its old name loss_preset"):
        TrainConfig.from_dict({"loss_preset": "l2", "loss_ablation": "l2"})
    assert get_config("progan").model == "progan"
    assert get_config("cascaded").snapshots == (10, 20, 30, 40, 50)
    assert set(CONFIGS) >= {"cascaded", "progan", "l2", "no_adv", "no_id", "no_pc"}
    assert parse_override('loss={"no_id": true}') == ("loss", {"no_id": True})
    with pytest.raises(ValueError, match="unknown keys"):
        get_config("cascaded", widht=1.0)
    with pytest.raises(ValueError, match="unknown training config"):
        get_config("nope")


def _train(args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "keras_facehallu.training.train", *args], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs,
    )


@pytest.mark.multibackend  # facehallu-train must run on JAX too (the GPU path of this project)
def test_kill_and_resume_loses_only_the_epoch_in_progress(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    proc = _train(["--config", "tiny", "--data", str(tiny_data), "--runs", str(runs),
                   "--epochs", "4", "--set", "snapshots=[1,4]", "--verbose", "0"])
    deadline = time.time() + 240
    pointer = None
    while time.time() < deadline and proc.poll() is None:
        found = list(runs.glob("*/checkpoints/latest.json"))
        if found:
            pointer = found[0]
            break
        time.sleep(0.1)
    assert pointer is not None, proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = pointer.parent.parent
    killed_at = json.loads(pointer.read_text())["epoch"]
    assert 1 <= killed_at < 4
    assert json.loads((run_dir / "status.json").read_text())["status"] == "running"

    out = _train(["--resume", str(run_dir), "--verbose", "0"]).communicate(timeout=300)[0]
    assert f"resuming {run_dir} after epoch {killed_at}" in out, out[-3000:]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    with open(run_dir / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]  # each epoch exactly once
    assert "val_pixel_hidden" in rows[0] and "g_loss" in rows[0]
    assert json.loads((run_dir / "checkpoints" / "latest.json").read_text())["epoch"] == 4
    assert (run_dir / "snapshots" / "epoch-0001" / "model.weights.h5").is_file()
    assert (run_dir / "snapshots" / "epoch-0004" / "model.weights.h5").is_file()
    assert (run_dir / "final" / "config.json").is_file()
    assert (run_dir / "samples" / "epoch-0004.png").is_file()
    from PIL import Image

    assert Image.open(run_dir / "samples" / "epoch-0004.png").info["facehallu:synthetic"] == "true"
    assert list((run_dir / "tensorboard").rglob("*tfevents*"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["epochs"] == 4 and config["data"] == str(tiny_data)
    assert not list(run_dir.rglob(".*tmp*"))

    from keras_facehallu.models import load_preset
    from keras_facehallu.training.export_generator import export_generator

    exported = export_generator(run_dir, tmp_path / "exported", paste_face=True)
    model = load_preset(exported)
    assert model.paste_face and model.preset_metadata["epoch"] == 4
    snapshot = load_preset(run_dir / "snapshots" / "epoch-0004", paste_face=True)
    masked = np.zeros((1, 128, 128, 3), np.float32)
    mask = np.ones((1, 128, 128, 1), np.float32)
    mask[:, :20] = 0
    np.testing.assert_array_equal(
        model.hallucinate(masked, mask), snapshot.hallucinate(masked, mask)
    )

    from keras_facehallu.training.figure import main as figure_main

    assert figure_main([str(run_dir), "--count", "2"]) == 0
    from PIL import Image

    width = Image.open(run_dir / "epochs.png").size[0]
    assert width >= 4 * 128  # original, input, epoch 1, epoch 4


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_data, tmp_path):
    from keras_facehallu.training.callbacks import EpochCheckpoint, NonFiniteGuard
    from keras_facehallu.training.checkpoint import (
        latest_checkpoint,
        restore_checkpoint,
        save_checkpoint,
    )
    from keras_facehallu.training.train import build_gan

    gan = build_gan(get_config("tiny"))
    gan.optimizer.build(gan.trainable_variables)
    save_checkpoint(gan, tmp_path / "checkpoints", epoch=1, logs={})
    before = [np.array(v) for v in gan.generator.weights]
    x = {
        "masked_image": np.full((2, 128, 128, 3), np.nan, np.float32),
        "mask": np.ones((2, 128, 128, 1), np.float32),
    }
    y = np.zeros((2, 128, 128, 3), np.float32)
    import tensorflow as tf  # a dataset: NaN numpy arrays are refused by fit before any step

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    guard = NonFiniteGuard()
    gan.fit(data, epochs=3, initial_epoch=1, verbose=0,
            callbacks=[guard, EpochCheckpoint(tmp_path, guard)])
    assert guard.failure is not None and "non-finite loss" in guard.failure
    assert latest_checkpoint(tmp_path / "checkpoints").name == "epoch-0001"
    state = restore_checkpoint(gan, tmp_path / "checkpoints")
    assert state["epoch"] == 1
    for b, v in zip(before, gan.generator.weights, strict=True):
        np.testing.assert_array_equal(b, np.array(v))


def test_resume_rejects_a_folder_without_config(tmp_path):
    out = _train(["--resume", str(tmp_path)]).communicate(timeout=120)[0]
    assert "no config.json" in out


def test_init_from_preset_copies_the_generator_and_rejects_other_widths(tmp_path):
    from keras_facehallu.models.cascade import CascadedHallucinator
    from keras_facehallu.presets import save_to_preset
    from keras_facehallu.training.train import build_gan, init_generator_from

    cfg = get_config("tiny")
    source = CascadedHallucinator(width=cfg.width, seed=123)
    folder = save_to_preset(source, tmp_path / "source", metadata={"description": "seed 123"})
    gan = build_gan(cfg)  # seed 0: different weights
    assert not np.allclose(np.array(gan.generator.weights[0]), np.array(source.weights[0]))
    meta = init_generator_from(gan.generator, folder)
    assert meta["description"] == "seed 123"
    for a, b in zip(source.weights, gan.generator.weights, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))

    wider = build_gan(get_config("tiny", width=cfg.width * 2))
    with pytest.raises(ValueError, match="width"):
        init_generator_from(wider.generator, folder)
    assert get_config("cpu_small", init_from="lfw_cascade_small").init_from == "lfw_cascade_small"

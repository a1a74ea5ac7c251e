"""Training state you can trust (issue 12): verified checkpoints with a fallback, fsynced writes,
swept partial writes, a full disk that ends the run with a "failed" status."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from keras_facehallu.losses import LossConfig
from keras_facehallu.models.cascade import CascadedHallucinator
from keras_facehallu.training import checkpoint
from keras_facehallu.training.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    latest_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    sweep_partial_checkpoints,
)
from keras_facehallu.training.configs import get_config
from keras_facehallu.training.gan import HallucinationGAN
from tests.tiny_data import make_tiny_prepared

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(scope="module")
def gan():
    """A width-1/32 cascade with a moving average of G (no loss networks: nothing is trained)."""
    keras.utils.set_random_seed(0)
    model = HallucinationGAN(CascadedHallucinator(width=1 / 32, seed=0), seed=0, ema_decay=0.9)
    model.compile(loss_config=LossConfig.ablation("no_pc", no_id=True))
    return model


def _values(gan) -> dict:
    return {name: [np.array(v) for v in variables]
            for name, variables in checkpoint._groups(gan).items()}


def _shift(gan, amount: float) -> None:
    """Changes every float variable (generator, average, discriminators, optimizer slots)."""
    for variables in checkpoint._groups(gan).values():
        for v in variables:
            if "float" in str(v.dtype):
                v.assign(np.array(v) + amount)


def _assert_values(gan, expected: dict) -> None:
    for name, arrays in _values(gan).items():
        for a, b in zip(arrays, expected[name], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


def _two_checkpoints(gan, folder: Path) -> tuple[dict, dict]:
    """Saves epochs 1 and 2 with different values; returns the values of each."""
    first = _values(gan)
    save_checkpoint(gan, folder, epoch=1, logs={"g_loss": 1.0})
    _shift(gan, 0.5)
    second = _values(gan)
    save_checkpoint(gan, folder, epoch=2, logs={"g_loss": 0.5})
    _shift(gan, 0.25)  # the model now differs from both checkpoints
    return first, second


def _rehash(path: Path) -> None:
    """Rewrites state.json's checksum after an edit of state.h5 (a value damaged before hashing)."""
    state = json.loads((path / "state.json").read_text())
    data = (path / "state.h5").read_bytes()
    state["files"]["state.h5"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (path / "state.json").write_text(json.dumps(state))


def test_checkpoint_carries_a_checksum_and_restores_the_moving_average(gan, tmp_path):
    folder = tmp_path / "checkpoints"
    _, second = _two_checkpoints(gan, folder)
    path = latest_checkpoint(folder)
    assert path.name == "epoch-0002"
    state = json.loads((path / "state.json").read_text())
    data = (path / "state.h5").read_bytes()
    assert state["files"]["state.h5"] == {
        "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)
    }
    with h5py.File(path / "state.h5") as f:
        assert len(f["generator_average"]) == len(gan.average_variables) > 0
        assert "optimizer" in f
    assert restore_checkpoint(gan, folder)["epoch"] == 2
    _assert_values(gan, second)


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(gan, tmp_path, capsys, damage):
    folder = tmp_path / "checkpoints"
    first, _ = _two_checkpoints(gan, folder)
    bad = folder / "epoch-0002" / "state.h5"
    data = bytearray(bad.read_bytes())
    if damage == "flipped":  # 4 KB of flipped bits in the middle (the weights' data)
        middle = len(data) // 2
        data[middle:middle + 4096] = bytes(b ^ 0xFF for b in data[middle:middle + 4096])
    else:
        del data[len(data) // 2:]
    bad.write_bytes(bytes(data))

    state = restore_checkpoint(gan, folder)
    assert state["epoch"] == 1
    _assert_values(gan, first)
    err = capsys.readouterr().err
    assert str(bad) in err and "damaged" in err
    assert ("checksum mismatch" if damage == "flipped" else "truncated") in err
    assert "falling back to the previous good checkpoint" in err and "epoch-0001" in err


@pytest.mark.parametrize("with_checksum", [True, False])
def test_non_finite_values_are_rejected_like_a_damaged_file(gan, tmp_path, capsys, with_checksum):
    """NaN weights are refused even when the checksum matches (damaged before it was taken) and
    in an older checkpoint that has no checksum."""
    folder = tmp_path / "checkpoints"
    first, _ = _two_checkpoints(gan, folder)
    path = folder / "epoch-0002"
    with h5py.File(path / "state.h5", "r+") as f:
        dataset = f["generator"]["00000"]
        dataset[...] = np.full(dataset.shape, np.nan, dataset.dtype)
    if with_checksum:
        _rehash(path)
    else:
        state = json.loads((path / "state.json").read_text())
        del state["files"]
        (path / "state.json").write_text(json.dumps(state))

    assert restore_checkpoint(gan, folder)["epoch"] == 1
    _assert_values(gan, first)
    err = capsys.readouterr().err
    assert str(path / "state.h5") in err and "non-finite values" in err


def test_no_good_checkpoint_is_a_clear_error(gan, tmp_path):
    folder = tmp_path / "checkpoints"
    _two_checkpoints(gan, folder)
    for epoch in (1, 2):
        h5 = folder / f"epoch-{epoch:04d}" / "state.h5"
        h5.write_bytes(h5.read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="no usable checkpoint") as info:
        restore_checkpoint(gan, folder)
    message = str(info.value)
    assert str(folder / "epoch-0001" / "state.h5") in message
    assert str(folder / "epoch-0002" / "state.h5") in message
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        checkpoint.load_generator_weights(gan.generator, folder)


def test_checkpoint_without_checksum_still_loads_with_a_note(gan, tmp_path, capsys):
    folder = tmp_path / "checkpoints"
    _, second = _two_checkpoints(gan, folder)
    path = folder / "epoch-0002"
    state = json.loads((path / "state.json").read_text())
    del state["files"]  # as written before checksums existed
    (path / "state.json").write_text(json.dumps(state))
    assert restore_checkpoint(gan, folder)["epoch"] == 2
    _assert_values(gan, second)
    assert "no checksum" in capsys.readouterr().err


def test_writes_are_fsynced_and_partial_folders_are_swept(gan, tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    save_checkpoint(gan, folder, epoch=1, logs={})
    monkeypatch.setattr(os, "fsync", real_fsync)
    names = [Path(p).name for p in synced]
    assert "state.h5" in names and "state.json" in names
    assert any(n.startswith(".epoch-0001.") for n in names)  # the folder before its rename
    assert any(n.startswith(f".{checkpoint.LATEST}.") for n in names)  # the pointer
    assert names.count("checkpoints") >= 2  # the parent folder after each rename

    stale = folder / ".epoch-0002.k1ll3d"  # a kill mid-write
    stale.mkdir()
    (stale / "state.h5").write_bytes(b"\0" * 100)
    (folder / f".{checkpoint.LATEST}.x.tmp").write_text("{")
    removed = sweep_partial_checkpoints(folder)
    assert len(removed) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0001", "latest.json"]


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(gan, tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    save_checkpoint(gan, folder, epoch=1, logs={})

    def full(path, groups):
        Path(path).write_bytes(b"\0" * 10)  # a partial file, then the disk is full
        raise ENOSPC

    monkeypatch.setattr(checkpoint, "_write_state", full)
    with pytest.raises(CheckpointWriteError) as info:
        save_checkpoint(gan, folder, epoch=2, logs={})
    assert info.value.errno == errno.ENOSPC
    message = str(info.value)
    assert "epoch 2" in message and "No space left on device" in message and "disk full" in message
    assert str(folder / "epoch-0001") in message
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0001", "latest.json"]
    assert latest_checkpoint(folder).name == "epoch-0001"


# ---------------------------------------------------------------- facehallu-train ----
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, faces_dir):
    return make_tiny_prepared(tmp_path_factory.mktemp("data"), faces_dir, n_train=2, n_val=2)


def _tiny_config():
    return get_config("tiny", epochs=1, steps_per_epoch=1, validation_steps=1, snapshots=(),
                      tensorboard=False)


def test_full_disk_ends_the_run_with_a_failed_status(tiny_data, tmp_path, monkeypatch, capsys):
    from keras_facehallu.training.train import EXIT_FAILED, run

    run_dir = tmp_path / "run"
    stale = run_dir / "checkpoints" / ".epoch-0001.k1ll3d"  # left by an earlier killed run
    stale.mkdir(parents=True)

    def full(path, groups):
        raise ENOSPC

    monkeypatch.setattr(checkpoint, "_write_state", full)
    assert run(_tiny_config(), tiny_data, run_dir, verbose=0) == EXIT_FAILED
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed"
    assert "No space left on device" in status["reason"] and "epoch 1" in status["reason"]
    err = capsys.readouterr().err
    assert "training failed: could not write the checkpoint of epoch 1" in err
    assert "disk full" in err
    assert not stale.exists()
    assert not list((run_dir / "checkpoints").iterdir())


def test_an_exception_in_fit_never_leaves_status_running(tiny_data, tmp_path, monkeypatch):
    from keras_facehallu.training.train import run

    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(HallucinationGAN, "fit", boom)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(RuntimeError, match="boom"):
        run(_tiny_config(), tiny_data, run_dir, verbose=0)
    status = json.loads((run_dir / "status.json").read_text())
    assert status == {"status": "failed", "reason": "RuntimeError: boom"}


def test_sigterm_during_fit_ends_with_a_failed_status(tiny_data, tmp_path, monkeypatch):
    import signal

    from keras_facehallu.training.train import _on_sigterm, run

    def terminated(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(HallucinationGAN, "fit", terminated)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)  # what main() installs
    try:
        with pytest.raises(SystemExit, match="terminated by SIGTERM"):
            run(_tiny_config(), tiny_data, tmp_path, verbose=0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status == {"status": "failed", "reason": "exited: terminated by SIGTERM"}


def test_status_is_rewritten_in_place_when_the_disk_is_full(tmp_path, monkeypatch):
    import keras_facehallu.atomic
    from keras_facehallu.training.train import _write_status

    _write_status(tmp_path, {"status": "running", "epoch": 3, "pid": 1})

    def full(*args, **kwargs):
        raise ENOSPC

    monkeypatch.setattr(keras_facehallu.atomic, "write_json", full)
    _write_status(tmp_path, {"status": "failed", "reason": "OSError: disk full"})
    assert json.loads((tmp_path / "status.json").read_text()) == {
        "status": "failed", "reason": "OSError: disk full"
    }

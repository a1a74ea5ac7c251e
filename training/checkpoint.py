"""Atomic training checkpoints: generator (and its moving average), discriminators, optimizer
slots and the epoch counter.

A checkpoint is one folder ``checkpoints/epoch-NNNN/`` holding ``state.h5`` (every variable, in a
fixed order, with its path and shape) and ``state.json`` (epoch, step, logs). It is written to a
temporary folder and renamed into place, and ``checkpoints/latest.json`` is replaced only after
that, so a run killed at any moment leaves the previous checkpoint intact and readable.

Example:
    >>> save_checkpoint(gan, run_dir / "checkpoints", epoch=3, logs={})  # doctest: +SKIP
    >>> state = restore_checkpoint(gan, run_dir / "checkpoints")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np

LATEST = "latest.json"


def _groups(gan) -> dict:
    groups = {"generator": list(gan.generator.weights)}
    for i, d in enumerate(gan.discriminators):
        groups[f"discriminator_{i}"] = list(d.weights)
    if getattr(gan, "average_variables", None):
        groups["generator_average"] = list(gan.average_variables)
    optimizer = getattr(gan, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        groups["optimizer"] = list(optimizer.variables)
    return groups


def save_checkpoint(gan, folder: str | os.PathLike, epoch: int, logs: dict, keep: int = 2) -> Path:
    """Writes the checkpoint of ``epoch`` (1-based: epochs finished) and prunes older ones.

    Args:
        gan: a :class:`~keras_facehallu.gan.HallucinationGAN`.
        folder: the run's ``checkpoints`` folder.
        epoch: number of finished epochs.
        logs: the epoch's logs (floats), stored in ``state.json``.
        keep: how many checkpoints to keep.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"epoch-{epoch:04d}"
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".epoch-{epoch:04d}."))
    try:
        with h5py.File(tmp / "state.h5", "w") as f:
            for group_name, variables in _groups(gan).items():
                group = f.create_group(group_name)
                for i, v in enumerate(variables):
                    ds = group.create_dataset(f"{i:05d}", data=np.asarray(v))
                    ds.attrs["path"] = getattr(v, "path", v.name)
        state = {"epoch": int(epoch), "logs": {k: float(v) for k, v in logs.items()}}
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    pointer_tmp = folder / f".{LATEST}.tmp"
    pointer_tmp.write_text(json.dumps({"checkpoint": final.name, "epoch": int(epoch)}) + "\n")
    os.replace(pointer_tmp, folder / LATEST)
    done = sorted(p for p in folder.glob("epoch-*") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The folder named by ``latest.json``, or None when no checkpoint was finished."""
    pointer = Path(folder) / LATEST
    if not pointer.is_file():
        return None
    path = Path(folder) / json.loads(pointer.read_text())["checkpoint"]
    return path if (path / "state.json").is_file() else None


def restore_checkpoint(gan, folder: str | os.PathLike) -> dict | None:
    """Loads the latest checkpoint into ``gan`` (compiled, optimizer built); returns its state.

    Returns None when there is none. Raises ValueError naming the variable when a shape differs
    (the run's config does not match the checkpoint).
    """
    path = latest_checkpoint(folder)
    if path is None:
        return None
    optimizer = getattr(gan, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(gan.trainable_variables)
    groups = _groups(gan)
    with h5py.File(path / "state.h5", "r") as f:
        for group_name, variables in groups.items():
            if group_name not in f:
                raise ValueError(f"{path / 'state.h5'}: no {group_name!r} in the checkpoint")
            stored = f[group_name]
            if len(stored) != len(variables):
                raise ValueError(
                    f"{path / 'state.h5'}: {group_name} has {len(stored)} variables, "
                    f"the model has {len(variables)}; the config does not match the checkpoint"
                )
            for i, v in enumerate(variables):
                value = stored[f"{i:05d}"][()]
                if tuple(value.shape) != tuple(v.shape):
                    raise ValueError(
                        f"{path / 'state.h5'}: {stored[f'{i:05d}'].attrs['path']} has shape "
                        f"{value.shape}, the model's {v.path} has {tuple(v.shape)}"
                    )
                v.assign(value)
    return json.loads((path / "state.json").read_text())


def load_generator_weights(generator, folder: str | os.PathLike) -> dict:
    """Loads only the generator's part of the latest checkpoint (no GAN, no loss networks).

    Args:
        generator: a freshly built generator of the run's config (same class and width).
        folder: the run's ``checkpoints`` folder.

    Returns:
        The checkpoint's state (``epoch``, ``logs``).
    """
    path = latest_checkpoint(folder)
    if path is None:
        raise FileNotFoundError(f"{folder}: no finished checkpoint")
    with h5py.File(path / "state.h5", "r") as f:
        stored = f["generator"]
        variables = list(generator.weights)
        if len(stored) != len(variables):
            raise ValueError(
                f"{path / 'state.h5'}: {len(stored)} generator variables, the model has "
                f"{len(variables)}; build the generator with the run's config"
            )
        for i, v in enumerate(variables):
            v.assign(stored[f"{i:05d}"][()])
    return json.loads((path / "state.json").read_text())

"""Atomic, verified training checkpoints: generator (and its moving average), discriminators,
optimizer slots and the epoch counter.

A checkpoint is one folder ``checkpoints/epoch-NNNN/`` holding ``state.h5`` (every variable, in a
fixed order, with its path and shape) and ``state.json`` (epoch, logs, and the sha256 and size of
``state.h5``). It is written to a temporary folder ``.epoch-NNNN.*``, every file and the folder
are fsynced, and only then is it renamed into place; ``checkpoints/latest.json`` is replaced
(atomically, fsynced) only after that. A run killed at any moment leaves the previous checkpoint
intact; :func:`sweep_partial_checkpoints` removes what a killed write left behind.

On restore the checksum is verified and every value must be finite; a damaged checkpoint (a
truncated file, flipped bits, NaN weights) is reported on stderr and the previous good one (two
are kept) is used instead. When none is good, :class:`CheckpointError` says why for each.

Example:
    >>> save_checkpoint(gan, run_dir / "checkpoints", epoch=3, logs={})  # doctest: +SKIP
    >>> state = restore_checkpoint(gan, run_dir / "checkpoints")  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from keras_facehallu.assets import sha256_of
from keras_facehallu.atomic import atomic_path, current_umask

LATEST = "latest.json"
STATE = "state.h5"


class CheckpointError(ValueError):
    """No checkpoint of a run can be used (all are damaged), or one cannot be written."""


class DamagedCheckpoint(CheckpointError):
    """One checkpoint is damaged (checksum, truncation, unreadable file, non-finite values)."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permissions, I/O error); ``errno`` is kept."""


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


def _fsync(path: Path) -> None:
    """Flushes a file's or a folder's contents (a folder: its entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_state(path: Path, groups: dict) -> None:
    """Writes every variable of ``groups`` into the HDF5 file ``path``."""
    with h5py.File(path, "w") as f:
        for group_name, variables in groups.items():
            group = f.create_group(group_name)
            for i, v in enumerate(variables):
                ds = group.create_dataset(f"{i:05d}", data=np.asarray(v))
                ds.attrs["path"] = getattr(v, "path", v.name)


def sweep_partial_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Removes the temporary ``.epoch-NNNN.*`` folders and pointer files a killed write left.

    Call it when a run starts or resumes (one writer per run folder); returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.glob(".epoch-*")) + sorted(folder.glob(f".{LATEST}.*")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def save_checkpoint(gan, folder: str | os.PathLike, epoch: int, logs: dict, keep: int = 2) -> Path:
    """Writes the checkpoint of ``epoch`` (1-based: epochs finished) and prunes older ones.

    Args:
        gan: a :class:`~keras_facehallu.training.gan.HallucinationGAN`.
        folder: the run's ``checkpoints`` folder.
        epoch: number of finished epochs.
        logs: the epoch's logs (floats), stored in ``state.json``.
        keep: how many checkpoints to keep (at least 2, so that a damaged one has a fallback).

    Raises:
        CheckpointWriteError: a write failed (e.g. ``ENOSPC``, disk full); the temporary folder
            is removed and the previous checkpoint stays the latest.
    """
    try:
        return _save(gan, Path(folder), int(epoch), logs, keep)
    except OSError as error:
        latest = latest_checkpoint(folder)
        kept = f"{latest} is still the latest checkpoint" if latest else "no checkpoint is kept"
        detail = error.strerror or str(error)
        where = f" ({error.filename})" if error.filename else ""
        failure = CheckpointWriteError(
            f"could not write the checkpoint of epoch {epoch} in {folder}: {detail}{where}"
            f"{' (disk full)' if error.errno == errno.ENOSPC else ''}; {kept}"
        )
        failure.errno = error.errno
        raise failure from error


def _save(gan, folder: Path, epoch: int, logs: dict, keep: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"epoch-{epoch:04d}"
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".epoch-{epoch:04d}."))
    replaced = None
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700
        _write_state(tmp / STATE, _groups(gan))
        _fsync(tmp / STATE)
        state = {
            "epoch": int(epoch),
            "logs": {k: float(v) for k, v in logs.items()},
            "files": {
                STATE: {"sha256": sha256_of(tmp / STATE), "bytes": (tmp / STATE).stat().st_size}
            },
        }
        with open(tmp / "state.json", "w") as f:
            f.write(json.dumps(state, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync(tmp)
        if final.exists():  # redone after a resume: move the old one aside, never delete first
            replaced = folder / f".epoch-{epoch:04d}.replaced"
            if replaced.exists():
                shutil.rmtree(replaced)
            os.replace(final, replaced)
        os.replace(tmp, final)
        _fsync(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if replaced is not None and replaced.exists():
            if final.exists():
                shutil.rmtree(replaced, ignore_errors=True)
            else:  # the rename of the new one failed: put the old one back
                os.replace(replaced, final)
    with atomic_path(folder / LATEST) as pointer:
        with open(pointer, "w") as f:
            f.write(json.dumps({"checkpoint": final.name, "epoch": int(epoch)}) + "\n")
            f.flush()
            os.fsync(f.fileno())
    _fsync(folder)
    done = sorted(p for p in folder.glob("epoch-*") if p.is_dir())
    for old in done[: -max(int(keep), 2)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The folder named by ``latest.json``, or None when no checkpoint was finished.

    This reads the pointer only; :func:`restore_checkpoint` verifies the checkpoint.
    """
    pointer = Path(folder) / LATEST
    if not pointer.is_file():
        return None
    try:
        path = Path(folder) / json.loads(pointer.read_text())["checkpoint"]
    except (ValueError, KeyError, TypeError):
        return None
    return path if (path / "state.json").is_file() else None


def _candidates(folder: Path) -> list[Path]:
    """The checkpoint folders to try, best first: the pointer's, then the others, newest first."""
    found = sorted((p for p in folder.glob("epoch-*") if p.is_dir()), reverse=True)
    latest = latest_checkpoint(folder)
    if latest is not None:
        found = [latest] + [p for p in found if p != latest]
    return found


def _read_state_json(path: Path) -> dict:
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as error:
        raise DamagedCheckpoint(f"{path / 'state.json'}: unreadable ({error})") from None
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
        raise DamagedCheckpoint(f"{path / 'state.json'}: no epoch number in it")
    return state


def _verify_file(path: Path, state: dict) -> bool:
    """Checks size and sha256 of ``state.h5`` against ``state.json``; False when it has none."""
    expected = (state.get("files") or {}).get(STATE)
    if not expected:
        return False
    h5 = path / STATE
    if not h5.is_file():
        raise DamagedCheckpoint(f"{h5}: missing")
    size = h5.stat().st_size
    if size != expected.get("bytes", size):
        raise DamagedCheckpoint(f"{h5}: truncated or extended: {size} bytes, {expected['bytes']} "
                                "were written")
    digest = sha256_of(h5)
    if digest != expected.get("sha256"):
        raise DamagedCheckpoint(f"{h5}: checksum mismatch (sha256 {digest[:16]}..., "
                                f"{str(expected.get('sha256'))[:16]}... was written): corrupted")
    return True


def _read_values(path: Path, groups: dict) -> dict:
    """Reads and checks every stored value of ``groups`` (shapes, finiteness) without assigning.

    Raises DamagedCheckpoint for an unreadable file or non-finite values, ValueError when the
    checkpoint does not match the model (another config).
    """
    h5 = path / STATE
    values = {}
    try:
        with h5py.File(h5, "r") as f:
            for group_name, variables in groups.items():
                if group_name not in f:
                    raise ValueError(f"{h5}: no {group_name!r} in the checkpoint; the run's config "
                                     "does not match it")
                stored = f[group_name]
                if len(stored) != len(variables):
                    raise ValueError(
                        f"{h5}: {group_name} has {len(stored)} variables, the model has "
                        f"{len(variables)}; the config does not match the checkpoint"
                    )
                arrays = []
                for i, v in enumerate(variables):
                    dataset = stored[f"{i:05d}"]
                    name = dataset.attrs.get("path", f"{group_name}/{i:05d}")
                    value = dataset[()]
                    if tuple(value.shape) != tuple(v.shape):
                        raise ValueError(
                            f"{h5}: {name} has shape {value.shape}, the model's {v.path} has "
                            f"{tuple(v.shape)}; the config does not match the checkpoint"
                        )
                    if np.issubdtype(value.dtype, np.inexact):
                        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
                        if bad:
                            raise DamagedCheckpoint(
                                f"{h5}: {bad} non-finite values (NaN or inf) in {name} "
                                f"({group_name})"
                            )
                    arrays.append(value)
                values[group_name] = arrays
    except (OSError, KeyError, RuntimeError) as error:  # h5py: truncated, bad headers, ...
        raise DamagedCheckpoint(f"{h5}: unreadable ({error})") from None
    return values


def _load_verified(folder: str | os.PathLike, groups: dict) -> tuple[Path, dict, dict] | None:
    """Finds the newest good checkpoint for ``groups``; returns (path, state, values) or None.

    Damaged checkpoints are skipped with a message on stderr; raises CheckpointError when there
    are checkpoints and none is good.
    """
    folder = Path(folder)
    problems = []
    for path in _candidates(folder):
        try:
            state = _read_state_json(path)
            checked = _verify_file(path, state)
            values = _read_values(path, groups)
        except DamagedCheckpoint as error:
            problems.append(str(error))
            print(f"checkpoint {path} is damaged and not used: {error}", file=sys.stderr,
                  flush=True)
            continue
        if not checked:
            print(f"checkpoint {path}: no checksum (written by an older version); its values are "
                  "readable and finite", file=sys.stderr, flush=True)
        if problems:
            print(f"falling back to the previous good checkpoint {path} (epoch {state['epoch']})",
                  file=sys.stderr, flush=True)
        return path, state, values
    if problems:
        raise CheckpointError(
            f"{folder}: no usable checkpoint; every one is damaged:\n  " + "\n  ".join(problems)
            + "\nStart a new run (or restore the folder from a backup)."
        )
    return None


def restore_checkpoint(gan, folder: str | os.PathLike) -> dict | None:
    """Loads the newest good checkpoint into ``gan`` (compiled, optimizer built); returns its state.

    The latest checkpoint is verified first (checksum, finite values); when it is damaged the
    previous one is used, with a message on stderr naming the damaged file.

    Returns:
        The checkpoint's ``state.json`` (``epoch``, ``logs``), or None when there is none.

    Raises:
        CheckpointError: there are checkpoints but every one is damaged.
        ValueError: a group, count or shape differs (the run's config does not match).
    """
    optimizer = getattr(gan, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(gan.trainable_variables)
    groups = _groups(gan)
    found = _load_verified(folder, groups)
    if found is None:
        return None
    _, state, values = found
    for group_name, variables in groups.items():
        for v, value in zip(variables, values[group_name], strict=True):
            v.assign(value)
    return state


def load_generator_weights(generator, folder: str | os.PathLike) -> dict:
    """Loads only the generator's part of the newest good checkpoint (no GAN, no loss networks).

    Args:
        generator: a freshly built generator of the run's config (same class and width).
        folder: the run's ``checkpoints`` folder.

    Returns:
        The checkpoint's state (``epoch``, ``logs``).
    """
    found = _load_verified(folder, {"generator": list(generator.weights)})
    if found is None:
        raise FileNotFoundError(f"{folder}: no finished checkpoint")
    _, state, values = found
    for v, value in zip(generator.weights, values["generator"], strict=True):
        v.assign(value)
    return state

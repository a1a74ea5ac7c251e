"""A restricted reader of PyTorch files that runs no code from the file and needs no torch.

Both ``torch.save`` archives (PyTorch >= 1.6, a zip holding ``data.pkl`` and ``data/N`` storages)
and TorchScript archives (``torch.jit.save``: the same layout plus ``code/``) are read. ``data.pkl``
is parsed by a :class:`pickle.Unpickler` whose ``find_class`` allows only a short whitelist:

- tensor rebuilding (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``), done with numpy;
- storage types (``torch.FloatStorage`` ...), which only name a dtype;
- ``collections.OrderedDict`` and TorchScript's list builders (``torch.jit._pickle.build_intlist``);
- TorchScript module classes ``__torch__.*``, which become :class:`ScriptObject` attribute
  holders: their code is never imported or executed (the ``code/`` files are text and are ignored).

Any other global is refused with :class:`TorchFileError` naming the file and the global. Storages
are read from the zip's ``data/N`` entries as little-endian numpy arrays, and each tensor is cut
from its storage with its size, stride and offset (a copy, so the zip can be closed).

Example:
    >>> from keras_facehallu.nets.torch_reader import read_torch_state_dict
    >>> weights = read_torch_state_dict("model.pt")  # doctest: +SKIP
    >>> weights["net.layers.conv.weight"].shape  # doctest: +SKIP
    (32, 3, 3, 3)
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

# torch storage type name -> little-endian numpy dtype ("bfloat16" is widened to float32).
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}

_LIST_BUILDERS = ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist",
                  "build_stringlist")


class TorchFileError(ValueError):
    """A PyTorch file is malformed, truncated or references something outside the whitelist."""


class ScriptObject:
    """An attribute holder standing in for a TorchScript module; ``torch_type`` names its class."""

    torch_type = ""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise TorchFileError(f"{self.torch_type}: expected a dict state, found {type(state)}")
        self.__dict__.update(state)

    def __repr__(self):
        return f"ScriptObject({self.torch_type}: {sorted(self.__dict__)})"


class _StorageType:
    """Stands in for ``torch.<X>Storage``: only carries the dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    del requires_grad, backward_hooks, metadata
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise TorchFileError(f"tensor with size {size} and stride {stride} of different ranks")
    needed = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1
    if any(n == 0 for n in size):
        return np.zeros(size, storage.dtype)
    if storage_offset < 0 or any(s < 0 for s in stride) or needed > storage.size:
        raise TorchFileError(
            f"tensor of size {size}, stride {stride}, offset {storage_offset} does not fit its "
            f"storage of {storage.size} elements"
        )
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=tuple(s * item for s in stride),
        writeable=False,
    )
    return np.array(view, copy=True)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    del requires_grad, backward_hooks, state
    return data


def _build_list(*args):
    return list(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else list(args)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._path = path
        self._storages: dict[str, np.ndarray] = {}
        self._script_classes: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        qualified = f"{module}.{name}"
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name in ("_rebuild_parameter",
                                                 "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch.jit._pickle" and name in _LIST_BUILDERS:
            return _build_list
        if module.startswith("__torch__.") or module == "__torch__":
            if qualified not in self._script_classes:
                self._script_classes[qualified] = type(
                    "ScriptObject", (ScriptObject,), {"torch_type": qualified}
                )
            return self._script_classes[qualified]
        raise TorchFileError(
            f"{self._path}: refusing to load global {qualified!r}: only tensors, storages, "
            "OrderedDict and TorchScript module attributes are allowed"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise TorchFileError(f"{self._path}: unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError(f"{self._path}: storage {key} has no known storage type")
        key = str(key)
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, storage_type, int(numel))
        return self._storages[key]

    def _read_storage(self, key: str, storage_type: _StorageType, numel: int) -> np.ndarray:
        member = f"{self._prefix}data/{key}"
        try:
            raw = self._archive.read(member)
        except KeyError:
            raise TorchFileError(f"{self._path}: storage entry {member!r} is missing") from None
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise TorchFileError(f"{self._path}: cannot read {member!r}: {exc}") from None
        if storage_type.dtype == "bfloat16":
            bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, storage_type.dtype)
        if array.size != numel:
            raise TorchFileError(
                f"{self._path}: storage {member!r} holds {array.size} {storage_type.name} "
                f"elements, expected {numel}"
            )
        return array


def _find_data_pkl(archive: zipfile.ZipFile, path: str) -> str:
    candidates = [n for n in archive.namelist()
                  if n.endswith("data.pkl") and n.count("/") <= 1]
    if not candidates:
        raise TorchFileError(f"{path}: no data.pkl in the archive; not a PyTorch file")
    return candidates[0]


def load_torch_file(path: str | os.PathLike):
    """Unpickles a ``torch.save`` or TorchScript file into plain Python objects.

    Tensors become numpy arrays, TorchScript modules :class:`ScriptObject` attribute holders,
    dicts stay dicts.

    Args:
        path: the ``.pt``/``.pth`` file (zip format, PyTorch >= 1.6).

    Returns:
        The unpickled root object.

    Raises:
        TorchFileError: the file is not a PyTorch zip, is truncated, or names a global outside
            the whitelist.

    Example:
        >>> root = load_torch_file("default_1.pt")  # doctest: +SKIP
    """
    path = str(path)
    if not Path(path).is_file():
        raise TorchFileError(f"{path}: no such file")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise TorchFileError(
            f"{path}: not a readable zip archive ({exc}); expected a PyTorch file saved by "
            "torch.save (>= 1.6) or torch.jit.save. The file may be truncated, or in the legacy "
            "non-zip torch.save format, which is not supported"
        ) from None
    with archive:
        data_name = _find_data_pkl(archive, path)
        prefix = data_name[: -len("data.pkl")]
        try:
            data = archive.read(data_name)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise TorchFileError(f"{path}: cannot read {data_name!r}: {exc}") from None
        unpickler = _RestrictedUnpickler(data, archive, prefix, path)
        try:
            return unpickler.load()
        except TorchFileError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError) as exc:
            raise TorchFileError(
                f"{path}: malformed data.pkl: {type(exc).__name__}: {exc}"
            ) from None


def flatten_tensors(obj, prefix: str = "") -> dict[str, np.ndarray]:
    """Flat ``{dotted.name: array}`` of every tensor under ``obj`` (dicts and ScriptObjects)."""
    out: dict[str, np.ndarray] = {}
    if isinstance(obj, np.ndarray):
        out[prefix] = obj
        return out
    if isinstance(obj, ScriptObject):
        items = obj.__dict__.items()
    elif isinstance(obj, dict):
        items = obj.items()
    else:
        return out
    for key, value in items:
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten_tensors(value, name))
    return out


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads the tensors of a PyTorch file as a flat state dict, without torch.

    Works for ``torch.save(model.state_dict())`` files, checkpoints holding nested dicts
    (names joined with dots) and TorchScript files (module attribute paths, e.g.
    ``net.layers.conv.weight``).

    Args:
        path: the ``.pt``/``.pth`` file.

    Returns:
        ``dict[str, np.ndarray]`` in the file's order, arrays in their stored dtype
        (bfloat16 widened to float32).

    Example:
        >>> sd = read_torch_state_dict("PieAPPv0.1.pth")  # doctest: +SKIP
    """
    return flatten_tensors(load_torch_file(path))

"""A generator's weights as a few small files (each at most 16 MB), and back into a preset.

An accelerator machine hands back only a few files of limited size, so
``training/accelerator/run.sh`` writes the trained (averaged) generator as:

- ``generator.json``: the preset's ``config.json`` spec, its metadata, the stored dtype, every
  variable's path, shape and offset (in elements) in the flat buffer, and each part's name, size
  and sha256;
- ``generator.part-NNN.bin``: the variables, flattened in order and concatenated, little-endian
  ``float32`` (or ``float16`` when float32 would exceed ``max_total_bytes``), cut into parts of at
  most ``max_part_bytes``.

Reading needs numpy only; :func:`parts_to_preset` builds the model and writes a normal preset.

Example:
    python -m keras_facehallu.training.weight_parts from-preset runs/00000-x/final out/
    python -m keras_facehallu.training.weight_parts to-preset out/ my_preset/
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from keras_facehallu.atomic import atomic_path, write_json

INDEX = "generator.json"
FORMAT = "keras_facehallu.training.weight_parts"
MAX_PART_BYTES = 16_000_000
MAX_TOTAL_BYTES = 60_000_000


class WeightPartsError(ValueError):
    """Weight parts are missing, damaged, too large, or do not fit the model."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_weight_parts(
    model,
    out: str | os.PathLike,
    metadata: dict | None = None,
    max_part_bytes: int = MAX_PART_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> dict:
    """Writes ``model``'s weights as ``generator.json`` + ``generator.part-NNN.bin`` in ``out``.

    Args:
        model: a :class:`CascadedHallucinator` or :class:`ProGANHallucinator`.
        out: the output folder (created; other files in it are left alone).
        metadata: facts stored in the index (and in the preset made from it).
        max_part_bytes: size limit of one part.
        max_total_bytes: float16 is used when float32 would exceed it; an error when float16
            would too.

    Returns:
        The index (also written to ``out/generator.json``).
    """
    values = [np.asarray(v.value if hasattr(v, "value") else v, np.float32).reshape(-1)
              for v in model.weights]
    count = sum(v.size for v in values)
    dtype = "float32" if 4 * count <= max_total_bytes else "float16"
    if 2 * count > max_total_bytes:
        raise WeightPartsError(
            f"{type(model).__name__}: {count:,} weights are {2 * count / 1e6:.0f} MB even in "
            f"float16, over the {max_total_bytes / 1e6:.0f} MB limit; train a smaller width"
        )
    flat = np.concatenate(values).astype("<f4" if dtype == "float32" else "<f2").tobytes()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for start in range(0, len(flat), int(max_part_bytes)):
        chunk = flat[start:start + int(max_part_bytes)]
        name = f"generator.part-{len(parts):03d}.bin"
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(chunk)
        parts.append({"file": name, "bytes": len(chunk), "sha256": _sha256(chunk)})
    variables, offset = [], 0
    for v, value in zip(model.weights, values, strict=True):
        variables.append({"path": v.path, "shape": list(v.shape), "offset": offset})
        offset += value.size
    config = {k: v for k, v in model.get_config().items() if k not in ("name", "trainable")}
    index = {
        "format": FORMAT, "format_version": 1, "dtype": dtype,
        "spec": {"class_name": type(model).__name__, "config": config},
        "metadata": dict(metadata or {}), "variables": variables, "parts": parts,
    }
    write_json(out / INDEX, index)
    return index


def read_weight_parts(folder: str | os.PathLike) -> tuple[dict, list[np.ndarray]]:
    """``(index, float32 arrays in variable order)`` of a parts folder; every sha256 checked."""
    folder = Path(folder)
    path = folder / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no weight index; expected a folder written by run.sh")
    try:
        index = json.loads(path.read_text())
    except ValueError as error:
        raise WeightPartsError(f"{path}: not valid JSON ({error})") from None
    if index.get("format") != FORMAT:
        raise WeightPartsError(f"{path}: format {index.get('format')!r}, expected {FORMAT!r}")
    chunks = []
    for part in index["parts"]:
        part_path = folder / part["file"]
        if not part_path.is_file():
            raise WeightPartsError(f"{part_path}: missing (listed in {path})")
        data = part_path.read_bytes()
        if len(data) != part["bytes"] or _sha256(data) != part["sha256"]:
            raise WeightPartsError(
                f"{part_path}: {len(data)} bytes, sha256 {_sha256(data)[:12]}…; {path} expects "
                f"{part['bytes']} bytes, sha256 {part['sha256'][:12]}… (damaged or incomplete)"
            )
        chunks.append(data)
    flat = np.frombuffer(b"".join(chunks), "<f4" if index["dtype"] == "float32" else "<f2")
    arrays = []
    for v in index["variables"]:
        size = int(np.prod(v["shape"], dtype=np.int64))
        if v["offset"] + size > flat.size:
            raise WeightPartsError(f"{path}: {v['path']} lies past the end of the parts")
        arrays.append(flat[v["offset"]:v["offset"] + size].astype(np.float32).reshape(v["shape"]))
    if arrays and not all(np.isfinite(a).all() for a in arrays):
        raise WeightPartsError(f"{folder}: the weights hold NaN or inf")
    return index, arrays


def parts_to_preset(folder: str | os.PathLike, preset: str | os.PathLike) -> Path:
    """Builds the model of a parts folder, loads its weights and writes ``preset``.

    Example:
        >>> parts_to_preset("device_out", "presets/lfw_cascade_gpu")  # doctest: +SKIP
    """
    import keras_facehallu.models  # noqa: F401  (registers the classes a preset may hold)
    from keras_facehallu.presets import PresetError, model_class, save_to_preset, validate_config

    index, arrays = read_weight_parts(folder)
    spec = index["spec"]
    try:
        cls = model_class(spec.get("class_name"), Path(folder) / INDEX)
    except PresetError as exc:
        raise WeightPartsError(str(exc)) from None
    model = cls.from_config(validate_config(cls, spec["config"], Path(folder) / INDEX))
    if len(model.weights) != len(arrays):
        raise WeightPartsError(
            f"{folder}: {len(arrays)} arrays for the {len(model.weights)} weights of "
            f"{cls.__name__}({spec['config']})"
        )
    for v, value, entry in zip(model.weights, arrays, index["variables"], strict=True):
        if tuple(v.shape) != value.shape:
            raise WeightPartsError(
                f"{folder}: {entry['path']} has shape {value.shape}, the model's {v.path} "
                f"{tuple(v.shape)}"
            )
        v.assign(value)
    metadata = {**index["metadata"], "weight_parts_dtype": index["dtype"]}
    return save_to_preset(model, preset, metadata=metadata)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keras_facehallu.training.weight_parts", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    source = sub.add_parser("from-preset", help="preset folder -> weight parts")
    source.add_argument("preset", type=Path)
    source.add_argument("out", type=Path)
    target = sub.add_parser("to-preset", help="weight parts -> preset folder")
    target.add_argument("parts", type=Path)
    target.add_argument("preset", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "from-preset":
            from keras_facehallu.models import load_preset

            model = load_preset(args.preset)
            index = write_weight_parts(model, args.out, metadata=model.preset_metadata)
            total = sum(p["bytes"] for p in index["parts"])
            print(f"{args.out}: {len(index['parts'])} parts, {total / 1e6:.1f} MB "
                  f"({index['dtype']})")
        else:
            print(f"preset written: {parts_to_preset(args.parts, args.preset)}")
    except (WeightPartsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

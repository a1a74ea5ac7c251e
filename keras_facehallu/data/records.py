"""The prepared-data format: sharded TFRecords of aligned faces plus a ``manifest.json``.

A prepared folder holds ``{train,validation,test}-NNNNN-of-MMMMM.tfrecord`` shards and
``manifest.json``. Each record is a ``tf.train.Example`` with:

==============  =========  ===============================================================
feature         type       content
==============  =========  ===============================================================
``image``       bytes      PNG, 128×128×3 uint8 aligned crop
``mask``        bytes      PNG, 128×128×1, 0 outside / 255 inside the face mask
``landmarks``   float×136  68 (x, y) points in crop pixels
``transform``   float×6    2×3 affine, original photo → crop (row-major)
``person``      bytes      person name (UTF-8)
``person_index`` int64     index of the person in the manifest's ``people`` list
``source``      bytes      photo path relative to the source folder
==============  =========  ===============================================================

:func:`write_examples` writes a shard atomically (temporary name, then rename), so a shard that
exists is complete. :func:`load_examples` returns a ``tf.data.Dataset`` of decoded examples.

Example:
    >>> ds = load_examples("work_data/lfw_prepared", "train")  # doctest: +SKIP
    >>> next(iter(ds))["image"].shape  # doctest: +SKIP
    TensorShape([128, 128, 3])
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from keras_facehallu.atomic import atomic_path, write_json

MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")
FORMAT_VERSION = 1
_SHARD_RE = re.compile(r"^(?P<split>[a-z]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord$")


def shard_name(split: str, index: int, count: int) -> str:
    """``{split}-{index:05d}-of-{count:05d}.tfrecord``."""
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def _encode_png(array: np.ndarray) -> bytes:
    import cv2

    array = np.ascontiguousarray(array)
    if array.ndim == 3 and array.shape[-1] == 3:
        array = array[..., ::-1]  # OpenCV writes BGR
    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"could not PNG-encode an array of shape {array.shape}")
    return buffer.tobytes()


def _check_example(example: dict, position: int) -> None:
    required = ("image", "mask", "landmarks", "transform", "person", "person_index", "source")
    missing = [k for k in required if k not in example]
    if missing:
        raise ValueError(f"example {position}: missing keys {missing}; expected {list(required)}")
    image = np.asarray(example["image"])
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"example {position} ({example['source']}): image must be uint8 [H, W, 3], "
            f"found {image.dtype} {image.shape}"
        )
    mask = np.asarray(example["mask"])
    if mask.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"example {position} ({example['source']}): mask shape {mask.shape} does not match "
            f"image shape {image.shape}"
        )
    if np.asarray(example["landmarks"]).size != 136:
        raise ValueError(f"example {position}: landmarks must hold 68 (x, y) points")
    if np.asarray(example["transform"]).size != 6:
        raise ValueError(f"example {position}: transform must be a 2×3 matrix")


def serialize_example(example: dict) -> bytes:
    """One example dict (numpy fields as in the module doc; mask {0,1} or {0,255}) → bytes."""
    import tensorflow as tf

    mask = np.asarray(example["mask"])
    mask = mask.reshape(mask.shape[0], mask.shape[1])
    mask_png = _encode_png(np.where(mask > 0, 255, 0).astype(np.uint8))

    def _bytes(value):
        if isinstance(value, str):
            value = value.encode("utf-8")
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _floats(value):
        flat = np.asarray(value, np.float32).reshape(-1)
        return tf.train.Feature(float_list=tf.train.FloatList(value=flat.tolist()))

    features = {
        "image": _bytes(_encode_png(np.asarray(example["image"], np.uint8))),
        "mask": _bytes(mask_png),
        "landmarks": _floats(example["landmarks"]),
        "transform": _floats(example["transform"]),
        "person": _bytes(str(example["person"])),
        "person_index": tf.train.Feature(
            int64_list=tf.train.Int64List(value=[int(example["person_index"])])
        ),
        "source": _bytes(str(example["source"])),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_examples(path: str | os.PathLike, examples) -> int:
    """Writes examples to a TFRecord shard atomically; returns how many were written.

    The records go to a temporary file beside ``path`` that is renamed onto ``path`` only when
    complete, so an interrupted write never leaves a file under the final name.

    Args:
        path: the shard's final path.
        examples: iterable of dicts with ``image`` (uint8 [128,128,3]), ``mask`` ([128,128,1] or
            [128,128], {0,1} or {0,255}), ``landmarks`` (68×2), ``transform`` (2×3), ``person``,
            ``person_index``, ``source``.

    Example:
        >>> write_examples("/tmp/train-00000-of-00001.tfrecord", examples)  # doctest: +SKIP
    """
    import tensorflow as tf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for position, example in enumerate(examples):
                _check_example(example, position)
                writer.write(serialize_example(example))
                count += 1
    return count


def write_json_atomic(path: str | os.PathLike, data) -> None:
    """Writes JSON to a temporary file and renames it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)


def write_manifest(folder: str | os.PathLike, manifest: dict) -> Path:
    """Writes ``manifest.json`` atomically (``format_version`` is added)."""
    path = Path(folder) / MANIFEST
    write_json_atomic(path, {"format_version": FORMAT_VERSION, **manifest})
    return path


def read_manifest(folder: str | os.PathLike) -> dict:
    """Reads ``manifest.json`` of a prepared folder; a clear error when it is missing or broken."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no manifest; expected a folder made by `facehallu-prepare`"
        )
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: manifest is not valid JSON: {exc}") from None


def shard_paths(folder: str | os.PathLike, split: str) -> list[Path]:
    """The shards of ``split``: those listed in the manifest, else every complete-looking file.

    Raises:
        FileNotFoundError: a listed shard is missing, or there is no shard at all.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, found {split!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: prepared-data folder does not exist")
    if (folder / MANIFEST).is_file():
        listed = read_manifest(folder).get("shards", {}).get(split)
        if listed is not None:
            paths = [folder / name for name in listed]
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"{folder}: manifest lists missing shards {missing[:5]}")
            if not paths:
                raise FileNotFoundError(f"{folder}: the manifest lists no {split} shards")
            return paths
    paths = sorted(
        p for p in folder.glob(f"{split}-*-of-*.tfrecord")
        if _SHARD_RE.match(p.name) and _SHARD_RE.match(p.name)["split"] == split
    )
    if not paths:
        raise FileNotFoundError(
            f"{folder}: no {split} shards ({split}-NNNNN-of-MMMMM.tfrecord) and no manifest"
        )
    return paths


def feature_spec() -> dict:
    """The ``tf.io.parse_single_example`` feature spec of the format."""
    import tensorflow as tf

    return {
        "image": tf.io.FixedLenFeature([], tf.string),
        "mask": tf.io.FixedLenFeature([], tf.string),
        "landmarks": tf.io.FixedLenFeature([136], tf.float32),
        "transform": tf.io.FixedLenFeature([6], tf.float32),
        "person": tf.io.FixedLenFeature([], tf.string),
        "person_index": tf.io.FixedLenFeature([], tf.int64),
        "source": tf.io.FixedLenFeature([], tf.string),
    }


def decode_example(serialized):
    """Parses one record: ``image`` uint8 [H,W,3], ``mask`` uint8 {0,1} [H,W,1], ``landmarks``
    [68,2], ``transform`` [2,3], ``person``, ``person_index``, ``source``."""
    import tensorflow as tf

    parsed = tf.io.parse_single_example(serialized, feature_spec())
    image = tf.io.decode_png(parsed["image"], channels=3)
    mask = tf.cast(tf.io.decode_png(parsed["mask"], channels=1) > 127, tf.uint8)
    return {
        "image": image,
        "mask": mask,
        "landmarks": tf.reshape(parsed["landmarks"], [68, 2]),
        "transform": tf.reshape(parsed["transform"], [2, 3]),
        "person": parsed["person"],
        "person_index": parsed["person_index"],
        "source": parsed["source"],
    }


def load_examples(folder: str | os.PathLike, split: str = "train", deterministic: bool = True):
    """A ``tf.data.Dataset`` of decoded examples of one split, shard by shard in order.

    Args:
        folder: a prepared folder.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        deterministic: keep record order (parallel decoding either way).

    Example:
        >>> for ex in load_examples("prepared", "validation").take(1):  # doctest: +SKIP
        ...     print(ex["person"].numpy())
    """
    import tensorflow as tf

    paths = [str(p) for p in shard_paths(folder, split)]
    dataset = tf.data.TFRecordDataset(paths)
    return dataset.map(
        decode_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
    )

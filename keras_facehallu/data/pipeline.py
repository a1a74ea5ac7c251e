"""The training input pipeline: prepared TFRecords → batches the hallucination model consumes.

:func:`make_dataset` yields ``({"masked_image", "mask"}, image)`` with the model's conventions:
``image`` and ``masked_image`` float32 ``[N, 128, 128, 3]`` in [-1, 1] (``masked_image`` is -1,
i.e. black, outside the mask), ``mask`` float32 ``{0, 1}`` ``[N, 128, 128, 1]``. It is a
``tf.data.Dataset``, which ``model.fit`` accepts under every Keras backend (under JAX Keras iterates
it as numpy).

Randomness is seeded: shard order and record shuffling use ``seed``; the optional horizontal flip
(image and mask together) draws a stateless random number from ``(seed, position)``, so with
``deterministic=True`` two runs yield identical batches.

Example:
    >>> ds = make_dataset("work_data/lfw_prepared", "train", 16, flip=True)  # doctest: +SKIP
    >>> model.fit(ds, epochs=1)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_facehallu.data.records import decode_example, shard_paths


def to_model_example(example: dict, flip=None):
    """A decoded example → ``({"masked_image", "mask"}, image)`` floats (optionally flipped)."""
    import tensorflow as tf

    image = tf.cast(example["image"], tf.float32) / 127.5 - 1.0
    mask = tf.cast(example["mask"], tf.float32)
    if flip is not None:
        image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
        mask = tf.cond(flip, lambda: tf.reverse(mask, axis=[1]), lambda: mask)
    masked_image = image * mask - (1.0 - mask)
    return {"masked_image": masked_image, "mask": mask}, image


def _crop_size(folder, paths) -> int:
    """The crop size: from the manifest of ``facehallu-prepare``, else from the first record."""
    import tensorflow as tf

    from keras_facehallu.data.records import MANIFEST, read_manifest

    if (Path(folder) / MANIFEST).is_file():
        size = read_manifest(folder).get("config", {}).get("size")
        if size:
            return int(size)
    for record in tf.data.TFRecordDataset(paths[:1]).take(1):
        return int(decode_example(record)["image"].shape[0])
    raise FileNotFoundError(f"{folder}: the shard {paths[0]} holds no records")


def make_dataset(
    folder: str | os.PathLike,
    split: str = "train",
    batch_size: int = 16,
    flip: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    deterministic: bool = True,
    repeat: bool = False,
    shuffle_buffer: int = 2048,
    drop_remainder: bool = False,
    prefetch: int | None = None,
):
    """Batches of ``({"masked_image", "mask"}, image)`` from a prepared folder.

    Args:
        folder: a folder made by ``facehallu-prepare`` (or holding shards).
        split: ``"train"`` or ``"validation"``.
        batch_size: examples per batch.
        flip: random horizontal flips (image and mask together), probability 0.5.
        shuffle: shuffle shard order and records (buffer ``shuffle_buffer``); without it the
            records come in shard and file order.
        seed: seed of the shuffles and flips.
        deterministic: fixed output order despite parallel decoding.
        repeat: repeat forever (each pass reshuffled, reproducibly).
        shuffle_buffer: records held by the shuffle buffer.
        drop_remainder: drop a last, smaller batch.
        prefetch: batches to prefetch (default: autotuned).

    Example:
        >>> ds = make_dataset(folder, "validation", batch_size=2, shuffle=False)  # doctest: +SKIP
    """
    import tensorflow as tf

    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected a positive integer, found {batch_size}")
    autotune = tf.data.AUTOTUNE
    paths = [str(p) for p in shard_paths(folder, split)]
    files = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle and len(paths) > 1:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    records = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(4, len(paths)) if shuffle else 1,  # unshuffled: records in file order
        num_parallel_calls=autotune,
        deterministic=deterministic,
    )
    if shuffle:
        records = records.shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        records = records.repeat()
    dataset = records.map(decode_example, num_parallel_calls=autotune, deterministic=deterministic)
    if flip:
        base = tf.constant([int(seed), 0x5EED], tf.int64)

        def _flip(position, example):
            draw = tf.random.stateless_uniform([], seed=base + tf.stack([0, position]))
            return to_model_example(example, draw < 0.5)

        dataset = dataset.enumerate().map(
            _flip, num_parallel_calls=autotune, deterministic=deterministic
        )
    else:
        dataset = dataset.map(
            to_model_example, num_parallel_calls=autotune, deterministic=deterministic
        )
    size = _crop_size(folder, paths)

    def _static(inputs, image):  # decode_png leaves H and W unknown; the models need them
        return (
            {
                "masked_image": tf.ensure_shape(inputs["masked_image"], [size, size, 3]),
                "mask": tf.ensure_shape(inputs["mask"], [size, size, 1]),
            },
            tf.ensure_shape(image, [size, size, 3]),
        )

    dataset = dataset.map(_static, num_parallel_calls=autotune, deterministic=deterministic)
    dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    dataset = dataset.with_options(options)
    return dataset.prefetch(autotune if prefetch is None else int(prefetch))

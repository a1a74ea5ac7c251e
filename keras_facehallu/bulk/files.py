"""Reading and writing through Beam's file systems: local paths and ``gs://``, ``s3://``, … alike.

Local files are written by :func:`keras_facehallu.outputs.write_png` (atomically, marked synthetic);
on a remote file system the same PNG is made in a local temporary folder and uploaded, which is
atomic on object stores. Writing the same path twice replaces the file, so a retried bundle or a
re-run never leaves a second copy.

Example:
    >>> is_remote("gs://bucket/photos/a.jpg"), is_remote("/data/a.jpg")
    (True, False)
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

# A photo larger than this (bytes) is refused before it is read; the decoder refuses images above
# keras_facehallu.face.io.DEFAULT_MAX_PIXELS from their header.
DEFAULT_MAX_BYTES = 200 * 1024 * 1024


def is_remote(path: str) -> bool:
    """Whether ``path`` is a URL of a Beam file system (``gs://``, ``s3://``, …), not local."""
    return "://" in str(path) and not str(path).startswith("file://")


def local_path(path: str) -> str:
    """A local path without its ``file://`` prefix."""
    return str(path)[len("file://"):] if str(path).startswith("file://") else str(path)


def join(base: str, *parts: str) -> str:
    """``base/part/…`` for a local path or a URL."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(str(base), *parts)


def read_bytes(path: str) -> bytes:
    """The raw bytes of ``path`` (never decompressed by suffix, unlike Beam's default)."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read()


def make_folder(path: str) -> None:
    """Creates a local folder (and its parents); nothing to do on object stores."""
    if not is_remote(path):
        os.makedirs(local_path(path), exist_ok=True)


def write_png_to(path: str, image: np.ndarray, metadata: dict) -> str:
    """Writes ``image`` as a PNG with text ``metadata`` at a local path or URL; returns ``path``."""
    from keras_facehallu.outputs import write_png

    if not is_remote(path):
        return str(write_png(local_path(path), image, metadata))
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with tempfile.TemporaryDirectory(prefix="facehallu-png-") as tmp:
        made = write_png(os.path.join(tmp, "image.png"), image, metadata)
        with FileSystems.create(path, mime_type="image/png",
                                compression_type=CompressionTypes.UNCOMPRESSED) as out:
            out.write(made.read_bytes())
    return path

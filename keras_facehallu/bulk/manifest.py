"""What the bulk job records: one manifest row per face written, one dead-letter row per failure.

The manifest is Parquet (:data:`MANIFEST_SCHEMA`); the dead letters are JSON lines with
``source``, ``face_index`` (``None`` when the whole photo failed), ``stage`` (``read``,
``prepare``, ``inference`` or ``write``), ``reason`` (a short code: the face pipeline's skip
reasons such as ``no_face``, ``corrupt``, ``too_large``, plus ``unreadable``,
``prepare_failed``, ``inference_failed`` and ``write_failed``) and ``message`` (naming the file).

Example:
    >>> row = failure_row("a.jpg", "no_face", "a.jpg: no face found", "prepare")
    >>> row["reason"], row["face_index"]
    ('no_face', None)
"""

from __future__ import annotations

import pyarrow as pa

from keras_facehallu.version import __version__

STAGES = ("read", "prepare", "inference", "write")

MANIFEST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),  # the photo's path or URL, as matched
        ("face_index", pa.int32()),  # 0 = the largest face
        ("num_faces", pa.int32()),  # faces the detector found in the photo
        ("box", pa.list_(pa.float64())),  # detection box x, y, w, h in photo pixels
        ("confidence", pa.float64()),  # MTCNN's score
        ("landmarks", pa.list_(pa.float32())),  # 68 (x, y) in crop pixels: x0, y0, x1, y1, …
        ("transform", pa.list_(pa.float64())),  # photo → crop affine, 2×3 row-major
        ("preset", pa.string()),
        ("model", pa.string()),
        ("version", pa.string()),  # keras-facehallu version
        ("result_path", pa.string()),  # the 128×128 result
        ("in_photo_path", pa.string()),  # the result mapped back into the photo
        ("background_path", pa.string()),  # with --background-dir, else null
        ("background_source", pa.string()),  # the background picked for this face, else null
    ]
)


def manifest_row(source: str, face, model: str, preset: str, files: dict,
                 background_source: str | None = None) -> dict:
    """The manifest row of one written face.

    Args:
        source: the photo's path or URL.
        face: the :class:`~keras_facehallu.face.pipeline.FaceResult` (``ok``).
        model, preset: what made the result.
        files: ``{"result": path, "in_photo": path, "background": path (optional)}``.
        background_source: the background image used, if any.
    """
    return {
        "source": str(source),
        "face_index": int(face.face_index),
        "num_faces": int(face.num_faces),
        "box": [float(v) for v in face.box],
        "confidence": float(face.confidence),
        "landmarks": [float(v) for v in face.landmarks.reshape(-1)],
        "transform": [float(v) for v in face.transform.reshape(-1)],
        "preset": str(preset),
        "model": str(model),
        "version": __version__,
        "result_path": str(files["result"]),
        "in_photo_path": str(files["in_photo"]),
        "background_path": files.get("background"),
        "background_source": background_source,
    }


def failure_row(source: str, reason: str, message: str, stage: str,
                face_index: int | None = None) -> dict:
    """A dead-letter row: which photo (and face) failed, where, and why."""
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {STAGES}, found {stage!r}")
    return {
        "source": str(source),
        "face_index": None if face_index is None else int(face_index),
        "stage": stage,
        "reason": str(reason),
        "message": str(message),
    }

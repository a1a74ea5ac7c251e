"""Write a hallucinator as a SavedModel in TensorFlow Serving's layout, with its side files.

Layout written under ``MODEL_DIR``::

    MODEL_DIR/
      models.config                     # model_config_list for --model_config_file
      batching_parameters.txt           # for --enable_batching --batching_parameters_file
      NAME/VERSION/saved_model.pb
      NAME/VERSION/variables/...
      NAME/VERSION/assets.extra/tf_serving_warmup_requests   # for --enable_model_warmup

Signatures (batch size dynamic):

- ``serving_default``: ``masked_image`` uint8 [N,128,128,3] (0..255) and ``mask`` uint8
  [N,128,128,1] (any non-zero value is face, so 0/1 and 0/255 both work) → ``image`` uint8
  [N,128,128,3].
- ``serving_float``: ``masked_image`` float32 [N,128,128,3] in [-1,1] and ``mask`` float32
  [N,128,128,1] in {0,1} → ``image`` float32 [N,128,128,3] in [-1,1] (the model's ``image_128``).

A new version is written to a temporary folder beside its target and renamed into place, so
TF-Serving never sees a half-written version; an existing version is replaced only with
``overwrite=True``.

Example:
    facehallu-export savedmodel --model model.keras --model-dir models --name facehallu
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from keras_facehallu.export.loading import (
    ExportError,
    add_model_arguments,
    load_model,
    run_export,
)
from keras_facehallu.preprocessing import from_uint8, to_uint8

SIZE = 128
DEFAULT_SIGNATURE = "serving_default"
FLOAT_SIGNATURE = "serving_float"
WARMUP_FILE = "tf_serving_warmup_requests"
BATCHING_FILE = "batching_parameters.txt"
MODELS_CONFIG = "models.config"


def uint8_to_float(masked_image, mask):
    """uint8 image 0..255 and mask (non-zero = face) → the model's float32 [-1,1] and {0,1}."""
    import tensorflow as tf

    image = tf.cast(masked_image, tf.float32) / 127.5 - 1.0
    face = tf.cast(mask > 0, tf.float32)
    return image, face


def float_to_uint8(image):
    """float32 image in [-1,1] → uint8 0..255, rounded to the nearest level."""
    import tensorflow as tf

    levels = tf.round((tf.clip_by_value(image, -1.0, 1.0) + 1.0) * 127.5)
    return tf.cast(levels, tf.uint8)


def numpy_uint8_to_float(masked_image, mask):
    """NumPy twin of :func:`uint8_to_float` (same rounding), for parity checks and clients."""
    return from_uint8(masked_image), (np.asarray(mask) > 0).astype(np.float32)


def numpy_float_to_uint8(image):
    """NumPy twin of :func:`float_to_uint8`."""
    return to_uint8(image)


def build_archive(model):
    """A ``keras.export.ExportArchive`` holding ``model`` with the two serving signatures."""
    import keras
    import tensorflow as tf

    def run(image, face):
        outputs = model({"masked_image": image, "mask": face}, training=False)
        return outputs["image_128"] if isinstance(outputs, dict) else outputs

    def serve_uint8(masked_image, mask):
        image, face = uint8_to_float(masked_image, mask)
        return {"image": float_to_uint8(run(image, face))}

    def serve_float(masked_image, mask):
        return {"image": run(masked_image, mask)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=DEFAULT_SIGNATURE,
        fn=serve_uint8,
        input_signature=[
            tf.TensorSpec([None, SIZE, SIZE, 3], tf.uint8, name="masked_image"),
            tf.TensorSpec([None, SIZE, SIZE, 1], tf.uint8, name="mask"),
        ],
    )
    archive.add_endpoint(
        name=FLOAT_SIGNATURE,
        fn=serve_float,
        input_signature=[
            tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="masked_image"),
            tf.TensorSpec([None, SIZE, SIZE, 1], tf.float32, name="mask"),
        ],
    )
    return archive


def warmup_requests(name: str, batch_sizes=(1, 4)) -> list:
    """``PredictionLog`` protos (one per batch size) for ``assets.extra/`` model warm-up."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    logs = []
    rng = np.random.default_rng(0)
    for batch in batch_sizes:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = name
        request.model_spec.signature_name = DEFAULT_SIGNATURE
        image = rng.integers(0, 256, (batch, SIZE, SIZE, 3), dtype=np.uint8)
        mask = np.zeros((batch, SIZE, SIZE, 1), np.uint8)
        mask[:, 32:96, 40:88] = 1
        request.inputs["masked_image"].CopyFrom(tf.make_tensor_proto(image * mask))
        request.inputs["mask"].CopyFrom(tf.make_tensor_proto(mask))
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup(path: Path, name: str) -> None:
    """Writes the warm-up requests as a TFRecord file at ``path``."""
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_requests(name):
            writer.write(log.SerializeToString())


def model_versions(model_root: Path) -> list[int]:
    """The integer version folders under ``MODEL_DIR/NAME``, sorted."""
    if not model_root.is_dir():
        return []
    return sorted(int(p.name) for p in model_root.iterdir() if p.is_dir() and p.name.isdigit())


def write_models_config(model_dir: Path, base: str = "/models") -> Path:
    """Writes ``models.config`` listing every model folder under ``model_dir`` that has a version.

    ``base`` is where ``model_dir`` is mounted inside the TF-Serving container.
    """
    # built from the protos
    from keras_facehallu.serving.config import models_config, models_config_text

    entries = [(sub.name, f"{base.rstrip('/')}/{sub.name}")
               for sub in sorted(p for p in model_dir.iterdir() if p.is_dir())
               if model_versions(sub)]
    path = model_dir / MODELS_CONFIG
    path.write_text(models_config_text(models_config(entries)))
    return path


def write_batching_parameters(model_dir: Path, max_batch_size: int = 16) -> Path:
    """Writes the server-side batching parameters (``--batching_parameters_file``)."""
    from keras_facehallu.serving.config import batching_parameters, batching_parameters_text

    path = model_dir / BATCHING_FILE
    path.write_text(batching_parameters_text(batching_parameters(max_batch_size=max_batch_size)))
    return path


def export_savedmodel(model, model_dir, name: str = "facehallu", version: int | None = None,
                      overwrite: bool = False, max_batch_size: int = 16,
                      serving_base: str = "/models") -> Path:
    """Writes ``model`` to ``model_dir/name/version`` with the side files TF-Serving needs.

    Args:
        model: the Keras hallucinator (inputs ``{"masked_image", "mask"}``, output ``image_128``).
        model_dir: the TF-Serving model base folder.
        name: the served model name (folder under ``model_dir``).
        version: integer version; default one above the highest existing version (or 1).
        overwrite: replace an existing version; otherwise an existing version is an error.
        max_batch_size: written into the batching parameters file.
        serving_base: where ``model_dir`` is mounted in the serving container (``models.config``).

    Returns:
        The version folder.

    Example:
        >>> export_savedmodel(model, "models", name="facehallu")  # doctest: +SKIP
        PosixPath('models/facehallu/1')
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ExportError("SavedModel export runs on the TensorFlow backend, found "
                          f"KERAS_BACKEND={keras.backend.backend()!r}: set "
                          "KERAS_BACKEND=tensorflow (weights saved under any backend load there)")
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ExportError(f"name: expected letters, digits, '-', '_' or '.', found {name!r}")
    model_dir = Path(model_dir)
    model_root = model_dir / name
    existing = model_versions(model_root)
    if version is None:
        version = (existing[-1] + 1) if existing else 1
    if int(version) < 0:
        raise ExportError(f"version: expected a non-negative integer, found {version!r}")
    target = model_root / str(int(version))
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists: pass overwrite=True (--overwrite) to replace "
                          "it, or choose another --version")
    model_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_root))
    try:
        staged = tmp / "model"
        build_archive(model).write_out(str(staged), verbose=False)
        write_warmup(staged / "assets.extra" / WARMUP_FILE, name)
        if target.exists():
            old = tmp / "old"
            os.replace(target, old)
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_models_config(model_dir, serving_base)
    write_batching_parameters(model_dir, max_batch_size)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="facehallu-export savedmodel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--model-dir", type=Path, required=True, help="TF-Serving base folder")
    parser.add_argument("--name", default="facehallu", help="served model name")
    parser.add_argument("--version", type=int, help="integer version (default: next free)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--serving-base", default="/models",
                        help="where --model-dir is mounted in the container (for models.config)")
    args = parser.parse_args(argv)

    def write() -> Path:
        target = args.model_dir / args.name / str(args.version)
        if args.version is not None and target.exists() and not args.overwrite:
            # refused before the model is loaded
            raise ExportError(f"{target} already exists: pass --overwrite to replace it, or "
                              "choose another --version")
        model = load_model(args.model, args.config, args.weights, args.preset)
        return export_savedmodel(model, args.model_dir, args.name, args.version, args.overwrite,
                                 args.max_batch_size, args.serving_base)

    return run_export(write)


if __name__ == "__main__":
    sys.exit(main())

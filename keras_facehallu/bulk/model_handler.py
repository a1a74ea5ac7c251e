"""The hallucinator as a Beam ``ModelHandler``, for ``RunInference``.

``RunInference`` batches the prepared faces (``BatchElements``, sized by
:meth:`HallucinatorModelHandler.batch_elements_kwargs`), loads the model once per worker process
with :meth:`~HallucinatorModelHandler.load_model` and shares it between the process's threads, and
calls :meth:`~HallucinatorModelHandler.run_inference` on each batch. The model comes from
:func:`keras_facehallu.models.load_preset`, exactly as ``facehallu`` loads it; a preset folder on a
remote file system (``gs://…``, ``s3://…``, ``hdfs://…``) is first copied to the worker's disk.

Example:
    >>> from apache_beam.ml.inference.base import RunInference
    >>> handler = HallucinatorModelHandler("lfw_cascade_small", max_batch_size=16)
    >>> results = faces | RunInference(handler)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from keras_facehallu.bulk.files import is_remote, read_bytes
from keras_facehallu.bulk.names import stable_hash


class Hallucination(NamedTuple):
    """What the model made of one face: the 128×128 uint8 result and what made it."""

    image: np.ndarray
    model: str
    preset: str


@functools.lru_cache(maxsize=4)
def local_preset(preset: str) -> str:
    """A preset name or local folder as it is; a remote preset folder (``gs://…/my_preset``) copied
    to local disk once per process: ``config.json``, ``model.weights.h5`` and ``metadata.json``
    (optional; :func:`~keras_facehallu.models.load_preset` checks the hashes it lists)."""
    if not is_remote(preset):
        return preset
    from keras_facehallu.presets import CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, PresetError

    base = preset.rstrip("/")
    name = base.rsplit("/", 1)[-1]
    target = os.path.join(tempfile.gettempdir(), f"facehallu-preset-{stable_hash(base)}", name)
    os.makedirs(target, exist_ok=True)
    for filename in (METADATA_FILE, CONFIG_FILE, WEIGHTS_FILE):
        url = f"{base}/{filename}"
        try:
            data = read_bytes(url)
        except Exception as exc:  # file systems raise many types
            if filename == METADATA_FILE:
                continue  # optional
            raise PresetError(f"preset {preset}: cannot read {url}: {exc}") from exc
        tmp = os.path.join(target, f".{filename}.{os.getpid()}.tmp")
        with open(tmp, "wb") as dst:
            dst.write(data)
        os.replace(tmp, os.path.join(target, filename))
    return target


class HallucinatorModelHandler(ModelHandler):
    """Runs a hallucinator preset on batches of prepared faces.

    Each example is a :class:`~keras_facehallu.bulk.dofns.FaceJob` (anything whose ``face`` has
    ``masked_image``, uint8 ``[128, 128, 3]``, and ``mask``, ``[128, 128, 1]``). Each prediction is
    a ``PredictionResult`` of the example and a :class:`Hallucination`.

    Args:
        preset: preset name, local folder or remote folder URL (see
            :func:`keras_facehallu.models.load_preset`).
        paste_face: put the original face pixels back into the result (``facehallu``'s default).
        min_batch_size, max_batch_size: bounds for ``BatchElements``.

    Example:
        >>> handler = HallucinatorModelHandler("lfw_cascade_small")
        >>> handler.batch_elements_kwargs()
        {'min_batch_size': 1, 'max_batch_size': 16}
    """

    def __init__(self, preset: str, paste_face: bool = True, min_batch_size: int = 1,
                 max_batch_size: int = 16):
        if not 1 <= min_batch_size <= max_batch_size:
            raise ValueError(
                f"batch sizes: expected 1 <= min_batch_size <= max_batch_size, found "
                f"{min_batch_size} and {max_batch_size}"
            )
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self.preset = str(preset)
        self.paste_face = bool(paste_face)

    def load_model(self):
        """The preset's model (``model.preset_metadata`` set), as ``facehallu`` loads it."""
        from keras_facehallu.models import load_preset

        return load_preset(local_preset(self.preset), paste_face=self.paste_face)

    def run_inference(self, batch: Sequence, model, inference_args=None) -> Iterable:
        from keras_facehallu.preprocessing import to_uint8

        faces = [example.face for example in batch]
        outputs = to_uint8(
            model.hallucinate(
                np.stack([f.masked_image for f in faces]),
                np.stack([f.mask for f in faces]),
                batch_size=len(faces),
            )
        )
        preset = str(model.preset_metadata.get("name", self.preset))
        name = type(model).__name__
        return [
            PredictionResult(example, Hallucination(output, name, preset), model_id=preset)
            for example, output in zip(batch, outputs, strict=True)
        ]

    def get_num_bytes(self, batch: Sequence) -> int:
        faces = [example.face for example in batch]
        return sum(f.masked_image.nbytes + f.mask.nbytes for f in faces)

    def get_metrics_namespace(self) -> str:
        return "facehallu"

"""keras-facehallu: hallucinate the context around a face mask (Banerjee et al., WACV 2020).

Public names are imported lazily, so ``import keras_facehallu`` is cheap and does not pull in
TensorFlow, dlib or MTCNN until they are used.

Example:
    >>> import keras_facehallu as kfh
    >>> model = kfh.CascadedHallucinator(width=1 / 16)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from keras_facehallu.version import __version__

# name -> module that defines it. Each section belongs to one part of the package.
_EXPORTS = {
    # --- core model (generator blocks, cascade, ProGAN, discriminators) ---
    "build_generator_block": "keras_facehallu.generator_blocks",
    "CascadedHallucinator": "keras_facehallu.cascade",
    "ProGANHallucinator": "keras_facehallu.progan",
    "build_discriminator": "keras_facehallu.discriminators",
    "to_model_inputs": "keras_facehallu.preprocessing",
    # --- losses and GAN training ---
    "LossConfig": "keras_facehallu.losses.config",
    "HallucinationGAN": "keras_facehallu.gan",
    # --- face pipeline ---
    "prepare_face": "keras_facehallu.face.pipeline",
    "prepare_faces": "keras_facehallu.face.pipeline",
    # --- networks and metrics ---
    # --- background replacement ---
    "replace_background": "keras_facehallu.background.replace",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_facehallu' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)

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
    # --- the model family (keras_facehallu.models: blocks, cascade, ProGAN, discriminators) ---
    "build_generator_block": "keras_facehallu.models.generator_blocks",
    "CascadedHallucinator": "keras_facehallu.models.cascade",
    "ProGANHallucinator": "keras_facehallu.models.progan",
    "build_discriminator": "keras_facehallu.models.discriminators",
    "to_model_inputs": "keras_facehallu.preprocessing",
    "to_uint8": "keras_facehallu.preprocessing",
    # --- losses and GAN training ---
    "LossConfig": "keras_facehallu.losses.config",
    "HallucinationGAN": "keras_facehallu.training.gan",
    # --- face pipeline ---
    "prepare_face": "keras_facehallu.face.pipeline",
    "prepare_faces": "keras_facehallu.face.pipeline",
    "FaceResult": "keras_facehallu.face.pipeline",
    "load_image": "keras_facehallu.face.io",
    "ImageLoadError": "keras_facehallu.face.io",
    "make_dataset": "keras_facehallu.data.pipeline",
    "load_examples": "keras_facehallu.data.records",
    # --- networks and metrics ---
    "build_dlib_resnet": "keras_facehallu.nets.dlib_resnet",
    "build_fid_inception": "keras_facehallu.nets.fid_inception",
    "fid_features": "keras_facehallu.nets.fid_inception",
    "build_perceptual_network": "keras_facehallu.nets.backbones",
    "read_torch_state_dict": "keras_facehallu.nets.torch_reader",
    "get_metric": "keras_facehallu.metrics.registry",
    "PieAPP": "keras_facehallu.metrics.pieapp",
    "inpaint_context": "keras_facehallu.baselines",
    "MeanContext": "keras_facehallu.baselines",
    # --- background replacement ---
    "replace_background": "keras_facehallu.background.replace",
    "add_background_argument": "keras_facehallu.background.cli",
    "apply_background": "keras_facehallu.background.cli",
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

"""Tiny, seeded, frozen stand-ins for the loss networks, for tests and smoke runs ONLY.

These are NOT the real perceptual backbones or face-recognition network (those come from
``keras_facehallu.nets``); they are random convolutional nets with the same call contracts, so the
losses and the training step can be tested fast without pretrained weights. ``standin_generator``
and ``standin_discriminator`` likewise follow the generator / discriminator contracts with a few
hundred weights.

Example:
    >>> net = standin_perceptual_net(seed=0)
    >>> [tuple(f.shape) for f in net(np.zeros((1, 128, 128, 3), "float32"))]
    [(1, 32, 32, 4), (1, 16, 16, 8)]
"""

from __future__ import annotations

import keras
import numpy as np  # noqa: F401  (used in the doctest)
from keras import layers

from keras_facehallu.models.pyramid import SCALES, masked_face


def _init(seed, offset):
    return keras.initializers.GlorotUniform(seed=seed + offset)


def standin_perceptual_net(size: int = 128, seed: int = 0) -> keras.Model:
    """A frozen 2-layer random conv net: images [N, size, size, 3] -> 2 feature maps (stand-in)."""
    inputs = keras.Input((size, size, 3))
    a = layers.Conv2D(4, 4, strides=4, activation="relu", kernel_initializer=_init(seed, 0))(inputs)
    b = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                      kernel_initializer=_init(seed, 1))(a)
    model = keras.Model(inputs, [a, b], name="standin_perceptual_net")
    model.trainable = False
    return model


def standin_identity_net(size: int = 128, dim: int = 16, seed: int = 0) -> keras.Model:
    """A frozen random conv net: images -> [N, dim] L2-normalised embeddings (stand-in)."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 8, strides=8, activation="relu", kernel_initializer=_init(seed, 2))(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(dim, kernel_initializer=_init(seed, 3))(x)
    x = layers.UnitNormalization()(x)
    model = keras.Model(inputs, x, name="standin_identity_net")
    model.trainable = False
    return model


def standin_discriminator(size: int, seed: int = 0) -> keras.Model:
    """A 2-conv conditional patch discriminator ``d([image, condition]) -> logits`` (stand-in)."""
    image = keras.Input((size, size, 3))
    condition = keras.Input((size, size, 3))
    x = layers.Concatenate()([image, condition])
    x = layers.Conv2D(8, 3, strides=2, padding="same", kernel_initializer=_init(seed, size))(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2D(1, 3, padding="same", kernel_initializer=_init(seed, size + 1))(x)
    return keras.Model([image, condition], x, name=f"standin_discriminator_{size}")


class _MaskedFace(layers.Layer):
    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, inputs):
        face, mask = masked_face(inputs[0], inputs[1], self.size)
        return keras.ops.concatenate([face, mask], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.size, self.size, 4)


def standin_generator(scales=SCALES, seed: int = 0) -> keras.Model:
    """A one-conv-per-scale generator with the model's input/output dicts and ``scales``."""
    inputs = {
        "masked_image": keras.Input((128, 128, 3), name="masked_image"),
        "mask": keras.Input((128, 128, 1), name="mask"),
    }
    outputs = {}
    for s in scales:
        x = _MaskedFace(s)([inputs["masked_image"], inputs["mask"]])
        outputs[f"image_{s}"] = layers.Conv2D(
            3, 3, padding="same", activation="tanh", kernel_initializer=_init(seed, 10 + s)
        )(x)
    model = keras.Model(inputs, outputs, name="standin_generator")
    model.scales = tuple(scales)
    return model

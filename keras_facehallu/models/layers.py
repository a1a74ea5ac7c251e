"""Small layers shared by the generator blocks, the cascade and the discriminators (keras.ops only).

Example:
    >>> import numpy as np
    >>> from keras_facehallu.models.layers import PixelShuffle
    >>> PixelShuffle(2)(np.zeros((1, 4, 4, 8), "float32")).shape
    (1, 8, 8, 2)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

LEAKY_SLOPE = 0.1  # PAPER.md: LeakyReLU with slope 0.1 after every layer but the last conv


@keras.saving.register_keras_serializable(package="keras_facehallu")
class SeededHeUniform(keras.initializers.Initializer):
    """He-uniform for LeakyReLU, drawn with numpy from a fixed seed: same values on every backend.

    ``limit = sqrt(6 / ((1 + slope²) · fan_in))`` keeps the activations' variance through the
    generator's deep LeakyReLU stacks. (Glorot-uniform roughly halves it at every layer: after
    the ~20 layers of block_128 the output was nearly the same for every input and training
    stalled.)

    Args:
        seed: integer seed.
        negative_slope: the LeakyReLU slope the layer feeds.

    Example:
        >>> SeededHeUniform(0)((3, 3, 8, 16)).shape
        (3, 3, 8, 16)
    """

    def __init__(self, seed: int, negative_slope: float = LEAKY_SLOPE):
        self.seed = int(seed)
        self.negative_slope = float(negative_slope)

    def __call__(self, shape, dtype=None):
        shape = tuple(int(d) for d in shape)
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in = shape[-2] * receptive if len(shape) > 1 else shape[0]
        gain = 2.0 / (1.0 + self.negative_slope**2)
        limit = float(np.sqrt(3.0 * gain / max(1.0, fan_in)))
        values = np.random.default_rng(self.seed).uniform(-limit, limit, shape)
        return ops.convert_to_tensor(values.astype(np.float32), dtype=dtype or "float32")

    def get_config(self):
        return {"seed": self.seed, "negative_slope": self.negative_slope}


class SeededInitializers:
    """Hands out kernel initializers with distinct, repeatable seeds (``None``: unseeded).

    Two models built with the same ``seed`` get identical initial weights, whatever else the
    process did before and on either backend, because every layer's initializer has its own
    fixed seed (:class:`SeededHeUniform`).

    Args:
        seed: base seed (int) or ``None`` (Keras' ``"he_uniform"``).
        override: if given, every ``kernel()`` call returns this initializer instead.

    Example:
        >>> inits = SeededInitializers(0)
        >>> conv = keras.layers.Conv2D(8, 3, kernel_initializer=inits.kernel())
    """

    def __init__(self, seed: int | None, override=None):
        self.seed = seed
        self.override = override
        self._count = 0

    def kernel(self):
        if self.override is not None:
            return self.override
        if self.seed is None:
            return "he_uniform"
        self._count += 1
        return SeededHeUniform(int(self.seed) * 1000 + self._count)


@keras.saving.register_keras_serializable(package="keras_facehallu")
class PixelShuffle(keras.layers.Layer):
    """Pixel shuffle (depth-to-space): [N, H, W, r²·C] → [N, r·H, r·W, C].

    Args:
        block_size: the upscaling factor ``r``.

    Example:
        >>> PixelShuffle(2)(np.zeros((1, 4, 4, 8), "float32")).shape
        (1, 8, 8, 2)
    """

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        return ops.depth_to_space(x, self.block_size, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.block_size
        if c is not None and c % (r * r):
            raise ValueError(
                f"PixelShuffle({r}): channels must be a multiple of {r * r}, found {c}"
            )
        return (
            n,
            None if h is None else h * r,
            None if w is None else w * r,
            None if c is None else c // (r * r),
        )

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="keras_facehallu")
class ResidualBlock(keras.layers.Layer):
    """Residual block of two 3×3/1/1 convolutions: ``lrelu(x + conv2(lrelu(conv1(x))))``.

    The input must already have ``filters`` channels (it does everywhere in the tables).

    Args:
        filters: channels of both convolutions.
        negative_slope: LeakyReLU slope.
        kernel_initializer: initializer for both kernels (a seeded one for repeatable builds).

    Example:
        >>> ResidualBlock(8)(np.zeros((1, 4, 4, 8), "float32")).shape
        (1, 4, 4, 8)
    """

    def __init__(self, filters: int, negative_slope: float = LEAKY_SLOPE,
                 kernel_initializer="he_uniform", kernel_initializer_2=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.negative_slope = float(negative_slope)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_initializer_2 = keras.initializers.get(
            kernel_initializer_2 if kernel_initializer_2 is not None else kernel_initializer
        )
        self.conv1 = keras.layers.Conv2D(
            self.filters, 3, padding="same", kernel_initializer=self.kernel_initializer,
            name="conv1",
        )
        self.conv2 = keras.layers.Conv2D(
            self.filters, 3, padding="same", kernel_initializer=self.kernel_initializer_2,
            name="conv2",
        )

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(
                f"ResidualBlock({self.filters}): input must have {self.filters} channels, "
                f"found shape {tuple(input_shape)}"
            )
        self.conv1.build(input_shape)
        self.conv2.build(input_shape)

    def call(self, x):
        y = ops.leaky_relu(self.conv1(x), self.negative_slope)
        y = self.conv2(y)
        return ops.leaky_relu(x + y, self.negative_slope)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "negative_slope": self.negative_slope,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_initializer_2": keras.initializers.serialize(self.kernel_initializer_2),
        }


@keras.saving.register_keras_serializable(package="keras_facehallu")
class Composite(keras.layers.Layer):
    """``[face, mask, guide]`` → ``mask·face + (1 − mask)·guide`` (the cascade's input rule).

    Example:
        >>> Composite()([face, mask, guide])  # doctest: +SKIP
    """

    def call(self, inputs):
        face, mask, guide = inputs
        return mask * face + (1.0 - mask) * guide

    def compute_output_shape(self, input_shape):
        return input_shape[2]

"""The paper's five generator blocks, block_8 … block_128 (PAPER.md, Tables 1–5), exactly.

Every block maps an ``s``×``s``×3 image in [-1, 1] to an ``s``×``s``×3 image in [-1, 1]:

- conv0: 3×3, stride 1, dilation 2, 128 filters;
- encoder: block_8 has conv1 (3×3/1/2, 1024) + RB 1024 at 8×8; the others have ``log2(s/4)``
  strided 3×3/2/1 convolutions (…, 256, 512, 1024 filters, the last always 1024), each followed by
  a residual block (RB) with the same filters, so they reach 4×4×1024;
- bottleneck: flatten, fc1 (512), fc2 (16,384 = 4×4×1024), reshape to 4×4×1024;
- decoder: per doubling a 3×3/1/1 convolution to 4·C channels, then pixel shuffle ×2 to C
  (C = 512, 256, 128, 64, 64 in that order, as many as the block needs);
- last conv 5×5/1/1 to 3 channels with tanh; LeakyReLU(0.1) after every other layer.

A residual block is ``lrelu(x + conv3×3(lrelu(conv3×3(x))))``. ``width`` scales every filter
count and fc size (rounded, at least 1); ``width=1.0`` is the paper.

Example:
    >>> from keras_facehallu.models.generator_blocks import build_generator_block
    >>> block = build_generator_block(16, width=1 / 16)
    >>> block.output_shape
    (None, 16, 16, 3)
"""

from __future__ import annotations

import math

import keras

from keras_facehallu.models.layers import (
    LEAKY_SLOPE,
    PixelShuffle,
    ResidualBlock,
    SeededInitializers,
)
from keras_facehallu.models.pyramid import SCALES

BOTTLENECK_SIDE = 4
CONV0_FILTERS = 128
TOP_FILTERS = 1024
FC1_UNITS = 512
DECODER_FILTERS = (512, 256, 128, 64, 64)


def scaled(filters: int, width: float) -> int:
    """``filters × width`` rounded, at least 1 (the width multiplier rule)."""
    return max(1, int(round(filters * width)))


def encoder_filters(size: int) -> tuple[int, ...]:
    """Filters of the strided encoder convs of block_``size`` (block_8: its one unstrided conv1)."""
    if size == SCALES[0]:
        return (TOP_FILTERS,)
    n = int(math.log2(size // BOTTLENECK_SIDE))
    return tuple(TOP_FILTERS >> (n - 1 - i) for i in range(n))


def decoder_filters(size: int) -> tuple[int, ...]:
    """Output channels C of each conv + pixel-shuffle step of block_``size`` (the conv has 4·C)."""
    return DECODER_FILTERS[: int(math.log2(size // BOTTLENECK_SIDE))]


def _check(size, width):
    if size not in SCALES:
        raise ValueError(f"build_generator_block: size must be one of {SCALES}, found {size!r}")
    if not width > 0:
        raise ValueError(f"build_generator_block: width must be > 0, found {width!r}")


def build_generator_block(size: int, width: float = 1.0, name: str | None = None,
                          seed: int | None = None, kernel_initializer=None) -> keras.Model:
    """Build generator block_``size`` as a functional ``keras.Model``.

    Args:
        size: the block's resolution, one of ``SCALES`` (8, 16, 32, 64, 128).
        width: multiplier on every filter count and fc size (1.0 = the paper's tables).
        name: model name (default ``block_{size}``).
        seed: base seed of the kernel initializers (``None``: Keras' global seeding).
        kernel_initializer: one initializer for every kernel instead of the seeded He-uniform ones
            (e.g. ``"zeros"`` to build a big block quickly when weights are loaded right after).

    Returns:
        A model mapping [N, size, size, 3] in [-1, 1] to [N, size, size, 3] (tanh).

    Example:
        >>> block = build_generator_block(8, width=1 / 32, seed=0)
        >>> block(np.zeros((2, 8, 8, 3), "float32")).shape
        (2, 8, 8, 3)
    """
    _check(size, width)
    inits = SeededInitializers(seed, override=kernel_initializer)
    name = name or f"block_{size}"
    lrelu = lambda n: keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=n)

    inputs = keras.Input((size, size, 3), name=f"{name}_input")
    x = keras.layers.Conv2D(scaled(CONV0_FILTERS, width), 3, dilation_rate=2, padding="same",
                            kernel_initializer=inits.kernel(), name="conv0")(inputs)
    x = lrelu("conv0_lrelu")(x)

    strided = size != SCALES[0]
    for i, filters in enumerate(encoder_filters(size), start=1):
        f = scaled(filters, width)
        x = keras.layers.Conv2D(
            f, 3, strides=2 if strided else 1, dilation_rate=1 if strided else 2,
            padding="same", kernel_initializer=inits.kernel(), name=f"conv{i}",
        )(x)
        x = lrelu(f"conv{i}_lrelu")(x)
        x = ResidualBlock(f, kernel_initializer=inits.kernel(),
                          kernel_initializer_2=inits.kernel(), name=f"rb{i}")(x)

    top = scaled(TOP_FILTERS, width)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(scaled(FC1_UNITS, width), kernel_initializer=inits.kernel(),
                           name="fc1")(x)
    x = lrelu("fc1_lrelu")(x)
    x = keras.layers.Dense(BOTTLENECK_SIDE * BOTTLENECK_SIDE * top,
                           kernel_initializer=inits.kernel(), name="fc2")(x)
    x = lrelu("fc2_lrelu")(x)
    x = keras.layers.Reshape((BOTTLENECK_SIDE, BOTTLENECK_SIDE, top), name="to_4x4")(x)

    for i, filters in enumerate(decoder_filters(size), start=1):
        x = keras.layers.Conv2D(4 * scaled(filters, width), 3, padding="same",
                                kernel_initializer=inits.kernel(), name=f"up{i}_conv")(x)
        x = lrelu(f"up{i}_lrelu")(x)
        x = PixelShuffle(2, name=f"up{i}_shuffle")(x)

    outputs = keras.layers.Conv2D(3, 5, padding="same", activation="tanh",
                                  kernel_initializer=inits.kernel(), name="last_conv")(x)
    return keras.Model(inputs, outputs, name=name)

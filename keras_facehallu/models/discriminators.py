"""One patch discriminator per scale (our design; the paper does not give one).

Design (a conditional PatchGAN-style critic, as in pix2pix, sized so every scale ends at 4×4):

- input: the image at scale ``s`` (real or generated), concatenated on channels with the
  condition, the masked face at that scale (``pyramid.masked_pyramid``), when ``conditional``;
- conv 3×3/1, 64 filters, LeakyReLU(0.2);
- ``log2(s/4)`` strided 4×4/2 convolutions with 128, 256, 512, 512, … filters (capped at 512),
  each + LeakyReLU(0.2), so every scale reaches 4×4;
- conv 3×3/1 to one channel: raw **patch logits** [N, 4, 4, 1] (no sigmoid; each logit sees a
  receptive field covering a large part of the image). The GAN loss averages them.
- no batch normalisation; ``spectral_norm=True`` wraps every convolution in
  ``keras.layers.SpectralNormalization`` (one power iteration per training call).

``width`` scales every filter count like the generator's. Parameters at width 1.0 for s = 8 … 128:
see the README's table.

Example:
    >>> from keras_facehallu.models.discriminators import build_discriminator
    >>> d = build_discriminator(32, width=1 / 16)
    >>> d([np.zeros((2, 32, 32, 3), "float32"), np.zeros((2, 32, 32, 3), "float32")]).shape
    (2, 4, 4, 1)
"""

from __future__ import annotations

import math

import keras

from keras_facehallu.models.generator_blocks import scaled
from keras_facehallu.models.layers import SeededInitializers
from keras_facehallu.models.pyramid import SCALES

D_SLOPE = 0.2
BASE_FILTERS = 64
MAX_FILTERS = 512
PATCH_SIDE = 4


def discriminator_filters(size: int) -> tuple[int, ...]:
    """Filters of the first conv and of each strided conv of the scale-``size`` discriminator."""
    n = int(math.log2(size // PATCH_SIDE))
    return (BASE_FILTERS, *(min(BASE_FILTERS << (i + 1), MAX_FILTERS) for i in range(n)))


def build_discriminator(size: int, width: float = 1.0, conditional: bool = True,
                        spectral_norm: bool = False, name: str | None = None,
                        seed: int | None = None) -> keras.Model:
    """Build the discriminator of scale ``size``.

    Args:
        size: the scale, one of ``SCALES`` (8, 16, 32, 64, 128).
        width: multiplier on every filter count (1.0: 64 … 512 filters).
        conditional: take ``[image, condition]`` (condition = masked face at that scale,
            [N, size, size, 3]) instead of ``image`` alone.
        spectral_norm: wrap every convolution in ``keras.layers.SpectralNormalization``.
        name: model name (default ``discriminator_{size}``).
        seed: base seed of the kernel initializers.

    Returns:
        A ``keras.Model`` returning raw patch logits [N, 4, 4, 1].

    Example:
        >>> d = build_discriminator(8, width=1 / 16, conditional=False, spectral_norm=True)
        >>> d(np.zeros((2, 8, 8, 3), "float32")).shape
        (2, 4, 4, 1)
    """
    if size not in SCALES:
        raise ValueError(f"build_discriminator: size must be one of {SCALES}, found {size!r}")
    if not width > 0:
        raise ValueError(f"build_discriminator: width must be > 0, found {width!r}")
    inits = SeededInitializers(seed)
    name = name or f"discriminator_{size}"

    def conv(filters, kernel, strides, layer_name):
        layer = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                                    kernel_initializer=inits.kernel(), name=layer_name)
        if spectral_norm:
            return keras.layers.SpectralNormalization(layer, name=f"{layer_name}_sn")
        return layer

    image = keras.Input((size, size, 3), name=f"{name}_image")
    inputs = image
    x = image
    if conditional:
        condition = keras.Input((size, size, 3), name=f"{name}_condition")
        inputs = [image, condition]
        x = keras.layers.Concatenate(name="with_condition")([image, condition])

    filters = discriminator_filters(size)
    x = conv(scaled(filters[0], width), 3, 1, "conv0")(x)
    x = keras.layers.LeakyReLU(negative_slope=D_SLOPE, name="conv0_lrelu")(x)
    for i, f in enumerate(filters[1:], start=1):
        x = conv(scaled(f, width), 4, 2, f"down{i}")(x)
        x = keras.layers.LeakyReLU(negative_slope=D_SLOPE, name=f"down{i}_lrelu")(x)
    logits = conv(1, 3, 1, "logits")(x)
    return keras.Model(inputs, logits, name=name)

"""ICNR initialisation of the convolutions that feed a pixel shuffle (Aitken et al., 2017).

A convolution with ``r²·C`` outputs followed by a ×r pixel shuffle (depth-to-space) starts, with
an ordinary initializer, as ``r²`` independent kernels per output channel: the upsampled image
holds a checkerboard from the first step, which training must then remove. ICNR draws a kernel
for ``C`` outputs and repeats it ``r²`` times, in the channel order of depth-to-space, so at
initialisation the conv + shuffle equals the conv at low resolution followed by nearest-neighbour
upsampling: no checkerboard at the start.

Example:
    >>> from keras_facehallu.models.generator_blocks import build_generator_block
    >>> block = build_generator_block(16, width=1 / 16, seed=0)
    >>> [layer.name for layer in apply_icnr(block, seed=0)]
    ['up1_conv', 'up2_conv']
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_facehallu.models.layers import PixelShuffle, SeededHeUniform


@keras.saving.register_keras_serializable(package="keras_facehallu")
class ICNR(keras.initializers.Initializer):
    """A kernel for ``out / r²`` channels from ``base``, repeated ``r²`` times (depth-to-space
    order: output channel ``(i·r + j)·C + c`` copies channel ``c``).

    Args:
        base: the initializer of the small kernel (e.g. ``SeededHeUniform(0)``).
        scale: the pixel shuffle's block size ``r``.

    Example:
        >>> kernel = ICNR(SeededHeUniform(0), 2)((3, 3, 8, 16))
        >>> bool(np.all(kernel[..., :4] == kernel[..., 4:8]))
        True
    """

    def __init__(self, base="he_uniform", scale: int = 2):
        self.base = keras.initializers.get(base)
        self.scale = int(scale)

    def __call__(self, shape, dtype=None):
        *rest, out = shape
        copies = self.scale * self.scale
        if out % copies:
            raise ValueError(
                f"ICNR(scale={self.scale}): output channels must be a multiple of {copies}, "
                f"found shape {tuple(shape)}"
            )
        small = self.base((*rest, out // copies), dtype=dtype)
        return ops.tile(small, [1] * len(rest) + [copies])

    def get_config(self):
        return {"base": keras.initializers.serialize(self.base), "scale": self.scale}

    @classmethod
    def from_config(cls, config):
        return cls(keras.initializers.deserialize(config["base"]), config["scale"])


def _feeding_conv(layer):
    """The Conv2D whose output reaches ``layer`` through element-wise activations only."""
    for node in layer._inbound_nodes:
        for parent in node.parent_nodes:
            op = parent.operation
            if isinstance(op, keras.layers.Conv2D):
                return op
            if isinstance(op, (keras.layers.LeakyReLU, keras.layers.Activation, keras.layers.ReLU)):
                return _feeding_conv(op)
    return None


def _walk(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        else:
            yield model, layer


def apply_icnr(model, seed: int | None = None) -> list:
    """Re-initialises, in place, every Conv2D that feeds a :class:`PixelShuffle` in ``model``
    (nested models included) with :class:`ICNR`; biases are set to zero.

    Args:
        model: a built Keras model (a generator block, a cascade, a ProGAN generator, ...).
        seed: base seed of the small kernels (the k-th conv gets ``seed · 1000 + k``); None:
            Keras' global seeding.

    Returns:
        The re-initialised Conv2D layers, in model order.
    """
    done = []
    for _, layer in _walk(model):
        if not isinstance(layer, PixelShuffle):
            continue
        conv = _feeding_conv(layer)
        if conv is None or any(conv is c for c in done):
            continue
        base = "he_uniform" if seed is None else SeededHeUniform(int(seed) * 1000 + len(done))
        kernel = ICNR(base, layer.block_size)(tuple(conv.kernel.shape), dtype=conv.kernel.dtype)
        conv.kernel.assign(kernel)
        if conv.use_bias:
            conv.bias.assign(np.zeros(tuple(conv.bias.shape), conv.bias.dtype))
        done.append(conv)
    return done

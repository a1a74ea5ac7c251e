"""The model family: generator blocks, the cascade, its ProGAN variant, discriminators, layers.

Importing this package registers every class under ``keras_facehallu>`` with Keras (presets and
``.keras`` files find them there).

Example:
    >>> from keras_facehallu.models import CascadedHallucinator
    >>> model = CascadedHallucinator(width=1 / 16, seed=0)  # doctest: +SKIP
"""

from keras_facehallu.models.cascade import CascadedHallucinator, build_upscaling_block
from keras_facehallu.models.discriminators import build_discriminator
from keras_facehallu.models.generator_blocks import build_generator_block
from keras_facehallu.models.icnr import ICNR, apply_icnr
from keras_facehallu.models.layers import (
    Composite,
    PixelShuffle,
    ResidualBlock,
    SeededHeUniform,
)
from keras_facehallu.models.progan import ProGANHallucinator, ProgressiveFade, ProgressiveGrowing
from keras_facehallu.models.pyramid import SCALES, MaskedFacePyramid

# The entry points for a preset of any class (importing this package registered them all).
from keras_facehallu.presets import load_preset, save_to_preset

__all__ = [
    "SCALES",
    "ICNR",
    "CascadedHallucinator",
    "Composite",
    "MaskedFacePyramid",
    "PixelShuffle",
    "ProGANHallucinator",
    "ProgressiveFade",
    "ProgressiveGrowing",
    "ResidualBlock",
    "SeededHeUniform",
    "apply_icnr",
    "build_discriminator",
    "build_generator_block",
    "build_upscaling_block",
    "load_preset",
    "save_to_preset",
]

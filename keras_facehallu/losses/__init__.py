"""The losses of the paper as pure ``keras.ops`` functions, and the config that weights them.

Example:
    >>> from keras_facehallu.losses import LossConfig, pixel_loss
    >>> LossConfig.ablation("l2").pixel
    'l2'
"""

from keras_facehallu.losses.adversarial import (
    ADVERSARIAL_KINDS,
    discriminator_adversarial_loss,
    generator_adversarial_loss,
)
from keras_facehallu.losses.config import ABLATIONS, LOSS_NAMES, LossConfig
from keras_facehallu.losses.identity import cosine_identity_loss, identity_loss
from keras_facehallu.losses.perceptual import feature_distance, perceptual_loss
from keras_facehallu.losses.pixel import PIXEL_KINDS, pixel_loss

__all__ = [
    "ABLATIONS",
    "ADVERSARIAL_KINDS",
    "LOSS_NAMES",
    "PIXEL_KINDS",
    "LossConfig",
    "cosine_identity_loss",
    "discriminator_adversarial_loss",
    "feature_distance",
    "generator_adversarial_loss",
    "identity_loss",
    "perceptual_loss",
    "pixel_loss",
]

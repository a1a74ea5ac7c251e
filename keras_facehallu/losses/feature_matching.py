"""L_fm: feature matching on a discriminator's intermediate features (pix2pixHD, Wang et al. 2018).

The generator is asked to make the discriminator's hidden activations on its output match those on
the real image (same condition), layer by layer in l1: a perceptual loss whose "network" is the
discriminator being trained, so it costs one more discriminator forward on the real image per
scale and nothing to download. It is not in the paper; ``LossConfig(fm_weight=...)`` switches it on.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_facehallu.losses.perceptual import feature_distance

# The activations the default discriminators name (``models.discriminators``): after conv0 and
# after each strided convolution.
FEATURE_LAYER_SUFFIX = "_lrelu"


def feature_model(discriminator) -> keras.Model:
    """A model sharing ``discriminator``'s weights that returns ``[*features, logits]``.

    The features are the outputs of every layer whose name ends with ``"_lrelu"``, in order.

    Raises:
        ValueError: the discriminator is not a functional model with such layers.

    Example:
        >>> from keras_facehallu.models.discriminators import build_discriminator
        >>> d = build_discriminator(16, width=1 / 16)
        >>> len(feature_model(d).outputs)  # conv0, 2 strided convs, logits
        4
    """
    layers = [
        layer for layer in getattr(discriminator, "layers", [])
        if layer.name.endswith(FEATURE_LAYER_SUFFIX)
    ]
    if not layers or not hasattr(discriminator, "inputs"):
        raise ValueError(
            f"feature matching: discriminator {getattr(discriminator, 'name', discriminator)!r} "
            f"has no layers named '*{FEATURE_LAYER_SUFFIX}' (expected a functional model like "
            "models.discriminators.build_discriminator's); set fm_weight=0"
        )
    outputs = [layer.output for layer in layers] + list(discriminator.outputs)
    return keras.Model(discriminator.inputs, outputs, name=f"{discriminator.name}_features")


def feature_matching_loss(real_features, fake_features):
    """L_fm: mean over layers of the mean absolute difference; no gradient to the real side.

    Example:
        >>> import numpy as np
        >>> float(feature_matching_loss([np.zeros(4)], [np.full(4, 0.5)]))
        0.5
    """
    real = [ops.stop_gradient(ops.convert_to_tensor(f, "float32")) for f in real_features]
    return feature_distance(real, list(fake_features), "l1")

"""Pretrained networks: dlib's face-recognition ResNet, NVIDIA's FID Inception-v3, and the
perceptual backbones built from them. Resolved by name for the losses (L_id, L_pc) and metrics.

Example:
    >>> from keras_facehallu import nets
    >>> face_net = nets.get_identity_network("dlib")  # doctest: +SKIP
"""

from __future__ import annotations

IDENTITY_NETWORKS = ("dlib",)
PERCEPTUAL_NETWORKS = ("inception", "vgg19", "face")


def get_identity_network(name: str = "dlib"):
    """A frozen Keras model: canonical 128×128 images in [-1, 1] -> L2-normalised descriptors."""
    if name != "dlib":
        raise ValueError(f"unknown identity network {name!r}; choose from {IDENTITY_NETWORKS}")
    from keras_facehallu.nets.dlib_resnet import build_identity_network

    return build_identity_network()


def get_perceptual_network(name: str = "inception", layers=None):
    """A frozen Keras model: images in [-1, 1] -> list of feature maps (see ``backbones``)."""
    if name not in PERCEPTUAL_NETWORKS:
        raise ValueError(f"unknown perceptual network {name!r}; choose from {PERCEPTUAL_NETWORKS}")
    from keras_facehallu.nets.backbones import build_perceptual_network

    return build_perceptual_network(name, layers=layers)

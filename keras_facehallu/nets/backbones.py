"""Perceptual backbones for L_pc: frozen models, images in [-1, 1] -> a list of feature maps.

Three backbones, each with its own preprocessing inside the model (so the loss passes the
generator's images as they are):

- ``"inception"``: the FID Inception-v3 port (:mod:`keras_facehallu.nets.fid_inception`,
  ImageNet-trained, works offline). Any input size; ``[-1, 1]`` -> ``[0, 1]`` -> resized to
  299×299 with the FID reference's bilinear rule (``resize=None`` keeps the input size, at least
  75×75) -> ``[-1, 0.9921875]``. Layers: ``conv_2``, ``pool0``, ``conv_4``, ``pool1``,
  ``mixed`` ... ``mixed_10`` (:data:`~keras_facehallu.nets.fid_inception.FEATURE_LAYERS`).
- ``"vgg19"``: ``keras.applications.VGG19(weights="imagenet", include_top=False)``, the paper's
  choice. Any input size (at least 32×32); ``[-1, 1]`` -> 0..255 -> caffe preprocessing (BGR,
  ImageNet means subtracted), as ``keras.applications.vgg19.preprocess_input``. The weights are
  downloaded by Keras into ``$KERAS_HOME/models`` where the internet is reachable; otherwise
  :class:`BackboneWeightsUnavailable` is raised. There is no fallback to random weights.
- ``"face"``: dlib's face-recognition ResNet (:mod:`keras_facehallu.nets.dlib_resnet`) on the
  canonical 128×128 crops: ``[-1, 1]`` -> 0..255 -> the dlib 150×150 face chip -> stage outputs
  ``stem``, ``stage_1`` ... ``stage_5``, ``descriptor``.

Example:
    >>> from keras_facehallu.nets.backbones import build_perceptual_network
    >>> net = build_perceptual_network("inception", layers=("pool1", "mixed_2"))  # doctest: +SKIP
    >>> [f.shape for f in net(images)]  # doctest: +SKIP
    [(2, 35, 35, 192), (2, 35, 35, 288)]
"""

from __future__ import annotations

import os
import socket

import keras
import numpy as np
from keras import layers, ops

DEFAULT_LAYERS = {
    "inception": ("conv_2", "pool1", "mixed_2", "mixed_7"),
    "vgg19": ("block1_conv2", "block2_conv2", "block3_conv2", "block4_conv2", "block5_conv2"),
    "face": ("stage_1", "stage_2", "stage_3", "stage_4"),
}

VGG19_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
VGG19_WEIGHTS_MD5 = "253f8cb515780f3b799900260a226db6"  # the hash keras.applications checks
DOWNLOAD_TIMEOUT_S = 30.0


class BackboneWeightsUnavailable(RuntimeError):
    """A backbone's pretrained weights are neither cached nor downloadable."""


@keras.saving.register_keras_serializable(package="keras_facehallu")
class CaffePreprocess(layers.Layer):
    """``[-1, 1]`` RGB -> VGG's caffe input: 0..255, BGR, ImageNet channel means subtracted.

    Args:
        mean_bgr: per-channel means subtracted after the RGB -> BGR swap.
    """

    def __init__(self, mean_bgr=(103.939, 116.779, 123.68), **kwargs):
        super().__init__(**kwargs)
        self.mean_bgr = tuple(float(m) for m in mean_bgr)

    def call(self, inputs):
        x = (inputs + 1.0) * 127.5
        x = ops.flip(x, axis=-1)
        return x - ops.convert_to_tensor(np.asarray(self.mean_bgr, "float32"))

    def get_config(self):
        return {**super().get_config(), "mean_bgr": self.mean_bgr}


def _freeze(model: keras.Model) -> keras.Model:
    model.trainable = False
    return model


def _select(layer_names, valid, name: str) -> tuple[str, ...]:
    chosen = tuple(layer_names) if layer_names else DEFAULT_LAYERS[name]
    unknown = [n for n in chosen if n not in valid]
    if unknown:
        raise ValueError(
            f"build_perceptual_network({name!r}): unknown layers {unknown}; choose from {valid}"
        )
    return chosen


def _inception(layer_names, resize=299) -> keras.Model:
    from keras_facehallu.nets import fid_inception as fi

    chosen = _select(layer_names, fi.FEATURE_LAYERS, "inception")
    inputs = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(0.5, offset=0.5, name="to_unit")(inputs)
    if resize:
        x = fi.FidResize((resize, resize), name="resize")(x)
    x = fi.FidNormalize(name="normalize")(x)
    full = keras.Model(inputs, fi.inception_trunk(x), name="inception_trunk")
    fi.load_fid_weights(full)
    outputs = [full.get_layer(n).output for n in chosen]
    return _freeze(keras.Model(inputs, outputs, name="perceptual_inception"))


def _vgg19_weights() -> str:
    """Path of Keras' VGG19 no-top ImageNet weights, downloaded (bounded in time) if needed."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    fname = VGG19_WEIGHTS_URL.rsplit("/", 1)[1]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return keras.utils.get_file(fname, VGG19_WEIGHTS_URL, file_hash=VGG19_WEIGHTS_MD5,
                                    cache_subdir="models", cache_dir=home)
    except Exception as exc:  # network errors come in many types
        raise BackboneWeightsUnavailable(
            f"perceptual backbone 'vgg19': the ImageNet weights could not be downloaded from "
            f"{VGG19_WEIGHTS_URL} into {os.path.join(home, 'models', fname)} "
            f"({type(exc).__name__}: {exc}). Use the 'inception' or 'face' backbone, which work "
            "offline, or copy the file there. Random weights are never used instead."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _vgg19(layer_names) -> keras.Model:
    path = _vgg19_weights()
    vgg = keras.applications.VGG19(weights=path, include_top=False, input_shape=(None, None, 3))
    valid = tuple(layer.name for layer in vgg.layers[1:])
    chosen = _select(layer_names, valid, "vgg19")
    trunk = keras.Model(vgg.input, [vgg.get_layer(n).output for n in chosen], name="vgg19_trunk")
    inputs = keras.Input((None, None, 3), name="image")
    outputs = trunk(CaffePreprocess(name="caffe_preprocess")(inputs))
    return _freeze(keras.Model(inputs, list(outputs), name="perceptual_vgg19"))


def _face(layer_names) -> keras.Model:
    from keras_facehallu.face import canonical
    from keras_facehallu.nets.dlib_resnet import (
        STAGE_NAMES,
        CanonicalFaceChip,
        build_dlib_resnet,
    )

    chosen = _select(layer_names, STAGE_NAMES, "face")
    resnet = build_dlib_resnet()
    trunk = keras.Model(resnet.input, [resnet.get_layer(n).output for n in chosen],
                        name="dlib_resnet_trunk")
    inputs = keras.Input((canonical.CROP_SIZE, canonical.CROP_SIZE, 3), name="image")
    x = layers.Rescaling(127.5, offset=127.5, name="to_0_255")(inputs)
    outputs = trunk(CanonicalFaceChip(name="dlib_chip")(x))
    outputs = list(outputs) if isinstance(outputs, list | tuple) else [outputs]
    return _freeze(keras.Model(inputs, outputs, name="perceptual_face"))


_BUILDERS = {"inception": _inception, "vgg19": _vgg19, "face": _face}


@keras.saving.register_keras_serializable(package="keras_facehallu")
class PerceptualNetwork(keras.Model):
    """A frozen backbone that always returns a list of feature maps (also for one layer).

    Built from its config: saving stores the arguments, loading rebuilds the pretrained
    weights from their source (assets or the Keras cache).

    Args:
        backbone: ``"inception"``, ``"vgg19"`` or ``"face"``.
        feature_layers: layer names, in output order; default :data:`DEFAULT_LAYERS`.
        resize: ``"inception"`` only: input resized to ``resize``×``resize`` (``None``: as is).

    Example:
        >>> net = PerceptualNetwork("inception", feature_layers=("pool1",))  # doctest: +SKIP
        >>> [f.shape for f in net(np.zeros((1, 64, 64, 3), "float32"))]  # doctest: +SKIP
        [(1, 35, 35, 192)]
    """

    def __init__(self, backbone="inception", feature_layers=None, resize=299, **kwargs):
        kwargs.setdefault("name", f"perceptual_{backbone}")
        super().__init__(**kwargs)
        if backbone not in _BUILDERS:
            raise ValueError(
                f"build_perceptual_network: unknown backbone {backbone!r}; choose from "
                f"{tuple(DEFAULT_LAYERS)}"
            )
        self.backbone = backbone
        self.feature_layers = tuple(feature_layers or DEFAULT_LAYERS[backbone])
        self.resize = None if resize is None else int(resize)
        if backbone == "inception":
            self.features = _inception(self.feature_layers, self.resize)
        else:
            self.features = _BUILDERS[backbone](self.feature_layers)
        self.trainable = False

    def call(self, images):
        out = self.features(images)
        return list(out) if isinstance(out, list | tuple) else [out]

    def get_config(self):
        return {"backbone": self.backbone, "feature_layers": self.feature_layers,
                "resize": self.resize, "name": self.name}


def build_perceptual_network(name: str = "inception", layers=None, resize: int | None = 299):
    """A frozen feature extractor for L_pc: images in [-1, 1] -> list of feature maps.

    Args:
        name: ``"inception"``, ``"vgg19"`` or ``"face"`` (module docstring).
        layers: layer names to return, in order; default :data:`DEFAULT_LAYERS` ``[name]``.
        resize: ``"inception"`` only: side the input is resized to (299, the network's own);
            ``None`` uses the input as it is.

    Returns:
        A frozen :class:`PerceptualNetwork` (differentiable with respect to its input) whose
        output is a list with one feature map per requested layer.

    Raises:
        ValueError: unknown backbone or layer name.
        BackboneWeightsUnavailable: ``"vgg19"`` offline, without cached weights.

    Example:
        >>> net = build_perceptual_network("inception")  # doctest: +SKIP
        >>> feats = net(np.zeros((2, 128, 128, 3), "float32"))  # doctest: +SKIP
    """
    return PerceptualNetwork(name, feature_layers=layers, resize=resize)

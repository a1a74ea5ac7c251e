"""Perceptual backbones: configured layers, frozen, differentiable; vgg19 offline error."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest

from keras_facehallu.nets import backbones
from keras_facehallu.nets.backbones import BackboneWeightsUnavailable, build_perceptual_network


def _input_gradient(model, images):
    """d(sum of the last feature map)/d(images), on the TensorFlow or JAX backend."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(lambda x: sum(f.sum() for f in model(x)))(images))
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.add_n([tf.reduce_sum(f) for f in model(x)])
    return tape.gradient(loss, x).numpy()


def _check_frozen_and_differentiable(model, images, expected_names):
    feats = model(images)
    assert isinstance(feats, list) and len(feats) == len(expected_names)
    assert not model.trainable and not model.trainable_weights and model.non_trainable_weights
    for f in feats:
        assert np.all(np.isfinite(np.asarray(f)))
    grad = _input_gradient(model, images)
    assert grad.shape == images.shape and np.abs(grad).sum() > 0
    return feats


def test_inception_layers_frozen_differentiable(rng):
    names = ("pool0", "pool1", "mixed_2")
    model = build_perceptual_network("inception", layers=names)
    images = rng.uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    feats = _check_frozen_and_differentiable(model, images, names)
    # Resized to 299: pool0 73×73×64, pool1 35×35×192, mixed_2 35×35×288.
    assert [tuple(f.shape) for f in feats] == [(2, 73, 73, 64), (2, 35, 35, 192),
                                               (2, 35, 35, 288)]


def test_inception_matches_fid_network(lfw_photos):
    """The backbone's mixed_10 is the FID model's trunk: pooled, it gives the pool3 features."""
    from PIL import Image

    from keras_facehallu.nets.fid_inception import fid_features

    image = np.asarray(Image.open(lfw_photos[0]).convert("RGB"))[61:189, 61:189][None]
    model = build_perceptual_network("inception", layers=("mixed_10",))
    (mixed_10,) = model(image.astype("float32") / 127.5 - 1.0)
    pooled = np.asarray(mixed_10).mean(axis=(1, 2))
    np.testing.assert_allclose(pooled, fid_features(image), rtol=1e-4, atol=1e-4)


def test_inception_without_resize_config_round_trip_and_bad_layer(rng):
    model = build_perceptual_network("inception", layers=("pool1",), resize=None)
    images = rng.uniform(-1, 1, (1, 96, 96, 3)).astype("float32")
    (feat,) = model(images)
    assert tuple(feat.shape) == (1, 9, 9, 192)
    clone = backbones.PerceptualNetwork.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(clone(images)[0]), np.asarray(feat), atol=1e-5)
    with pytest.raises(ValueError, match=r"unknown layers \['nope'\].*mixed_10"):
        build_perceptual_network("inception", layers=("nope",))
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        build_perceptual_network("resnet")


def test_face_layers_frozen_differentiable(rng):
    pytest.importorskip("keras_facehallu.nets.dlib_resnet", reason="dlib ResNet port not present")
    names = ("stage_1", "stage_3")
    model = build_perceptual_network("face", layers=names)
    images = rng.uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    feats = _check_frozen_and_differentiable(model, images, names)
    assert [tuple(f.shape) for f in feats] == [(2, 35, 35, 32), (2, 8, 8, 128)]


def test_vgg19_offline_error_is_clear_and_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    # A closed local port: the download fails at once, as it does with no route to the host.
    monkeypatch.setattr(backbones, "VGG19_WEIGHTS_URL", "http://127.0.0.1:9/vgg19_notop.h5")
    start = time.monotonic()
    with pytest.raises(BackboneWeightsUnavailable, match=r"'vgg19'.*could not be downloaded.*"
                                                         r"'inception' or 'face'"):
        build_perceptual_network("vgg19")
    assert time.monotonic() - start < backbones.DOWNLOAD_TIMEOUT_S + 5


def test_vgg19_when_weights_are_cached(rng):
    path = backbones.os.path.join(
        backbones.os.environ.get("KERAS_HOME") or backbones.os.path.expanduser("~/.keras"),
        "models", backbones.VGG19_WEIGHTS_URL.rsplit("/", 1)[1],
    )
    if not backbones.os.path.isfile(path):
        pytest.skip(f"VGG19 ImageNet weights not cached at {path} (no internet here)")
    names = ("block1_conv2", "block3_conv2")
    model = build_perceptual_network("vgg19", layers=names)
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    feats = _check_frozen_and_differentiable(model, images, names)
    assert [tuple(f.shape) for f in feats] == [(2, 32, 32, 64), (2, 8, 8, 256)]

"""Per-scale discriminators: shapes, conditioning, spectral norm, config and save/load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_facehallu.models.discriminators import build_discriminator, discriminator_filters
from keras_facehallu.models.pyramid import SCALES

pytestmark = pytest.mark.multibackend
WIDTH = 1 / 16


def np_(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("size", SCALES)
def test_patch_logits_shape(size, rng):
    d = build_discriminator(size, width=WIDTH, seed=0)
    image = rng.uniform(-1, 1, (2, size, size, 3)).astype("float32")
    cond = rng.uniform(-1, 1, (2, size, size, 3)).astype("float32")
    logits = np_(d([image, cond]))
    assert logits.shape == (2, 4, 4, 1) and np.all(np.isfinite(logits))
    # The condition matters.
    assert not np.allclose(logits, np_(d([image, -cond])))


def test_filters_and_unconditional(rng):
    assert discriminator_filters(8) == (64, 128)
    assert discriminator_filters(128) == (64, 128, 256, 512, 512, 512)
    d = build_discriminator(16, width=1.0, conditional=False, seed=0)
    conv = (3 * 3 * 3 * 64 + 64) + (4 * 4 * 64 * 128 + 128) + (4 * 4 * 128 * 256 + 256)
    assert d.count_params() == conv + (3 * 3 * 256 * 1 + 1)
    x = rng.uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    assert np_(d(x)).shape == (2, 4, 4, 1)


def test_spectral_norm_option(rng):
    d = build_discriminator(16, width=WIDTH, spectral_norm=True, seed=0)
    assert any(isinstance(layer, keras.layers.SpectralNormalization) for layer in d.layers)
    x = [rng.uniform(-1, 1, (2, 16, 16, 3)).astype("float32") for _ in range(2)]
    before = np_(d(x, training=False))
    after_train_call = np_(d(x, training=True))  # one power iteration, kernel normalised
    assert after_train_call.shape == before.shape == (2, 4, 4, 1)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_config_and_save_load_round_trip(spectral_norm, tmp_path, rng):
    d = build_discriminator(32, width=WIDTH, spectral_norm=spectral_norm, seed=0)
    x = [rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32") for _ in range(2)]
    clone = keras.Model.from_config(d.get_config())
    assert clone.count_params() == d.count_params()
    clone.set_weights(d.get_weights())
    np.testing.assert_allclose(np_(clone(x)), np_(d(x)), atol=1e-6)
    d.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    np.testing.assert_array_equal(np_(loaded(x)), np_(d(x)))
    again = build_discriminator(32, width=WIDTH, spectral_norm=spectral_norm, seed=0)
    np.testing.assert_array_equal(np_(again(x)), np_(d(x)))  # seeded


def test_bad_arguments():
    with pytest.raises(ValueError, match="size must be one of"):
        build_discriminator(24)
    with pytest.raises(ValueError, match="width must be > 0"):
        build_discriminator(16, width=-1)

"""ICNR: the conv + pixel shuffle starts as nearest-neighbour upsampling (no checkerboard)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_facehallu.models.cascade import CascadedHallucinator
from keras_facehallu.models.generator_blocks import build_generator_block
from keras_facehallu.models.icnr import ICNR, apply_icnr
from keras_facehallu.models.layers import SeededHeUniform

pytestmark = pytest.mark.multibackend


def _blocky(x):
    """True where every 2×2 output block holds one value per channel."""
    x = np.asarray(x)
    return all(np.allclose(x[:, i::2, j::2], x[:, ::2, ::2], atol=1e-6)
               for i in (0, 1) for j in (0, 1))


def test_shuffled_output_is_nearest_neighbour_upsampling_after_icnr():
    block = build_generator_block(16, width=1 / 16, seed=0)
    probe = keras.Model(block.input, block.get_layer("up2_shuffle").output)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    assert not _blocky(probe.predict(x, verbose=0))  # He init: a checkerboard from the start
    convs = apply_icnr(block, seed=0)
    assert [c.name for c in convs] == ["up1_conv", "up2_conv"]
    assert _blocky(probe.predict(x, verbose=0))
    assert all(not np.any(np.asarray(c.bias)) for c in convs)


def test_every_shuffle_of_the_cascade_is_covered_and_seeded():
    a, b = CascadedHallucinator(width=1 / 32, seed=0), CascadedHallucinator(width=1 / 32, seed=0)
    assert len(apply_icnr(a, seed=3)) == 1 + 2 + 3 + 4 + 5 + 4  # five blocks, four upscalers
    apply_icnr(b, seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_icnr_initializer_shape_check_and_config():
    init = ICNR(SeededHeUniform(0), 2)
    kernel = np.asarray(init((3, 3, 4, 8)))
    np.testing.assert_array_equal(kernel[..., :2], kernel[..., 6:])
    with pytest.raises(ValueError, match="multiple of 4"):
        init((3, 3, 4, 6))
    again = ICNR.from_config(init.get_config())
    np.testing.assert_array_equal(np.asarray(again((3, 3, 4, 8))), kernel)


def test_train_config_icnr_option_initialises_the_run_generator():
    from keras_facehallu.training.configs import get_config
    from keras_facehallu.training.train import build_gan

    gan = build_gan(get_config("tiny", icnr=True))
    kernel = np.asarray(gan.generator.block(16).get_layer("up1_conv").kernel)
    quarter = kernel.shape[-1] // 4
    np.testing.assert_array_equal(kernel[..., :quarter], kernel[..., quarter:2 * quarter])
    plain = build_gan(get_config("tiny"))
    kernel = np.asarray(plain.generator.block(16).get_layer("up1_conv").kernel)
    assert not np.array_equal(kernel[..., :quarter], kernel[..., quarter:2 * quarter])

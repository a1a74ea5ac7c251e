"""Generator blocks block_8 … block_128: parameters counted by hand from PAPER.md, shapes, width."""

from __future__ import annotations

import gc

import keras
import numpy as np
import pytest

from keras_facehallu.models.generator_blocks import build_generator_block
from keras_facehallu.models.pyramid import SCALES

pytestmark = pytest.mark.multibackend


def conv(k, cin, cout):
    """Parameters of a k×k convolution with bias."""
    return k * k * cin * cout + cout


def rb(c):
    """Residual block: two 3×3 convolutions c → c."""
    return 2 * conv(3, c, c)


def dense(i, o):
    return i * o + o


def bottleneck(flat):
    """fc1 (512) and fc2 (16,384 = 4×4×1024) after flattening ``flat`` features."""
    return dense(flat, 512) + dense(512, 16384)


CONV0 = conv(3, 3, 128)  # 3×3/1/2, 128 on the 3-channel input (dilation adds no parameters)
LAST = {8: conv(5, 512, 3), 16: conv(5, 256, 3), 32: conv(5, 128, 3), 64: conv(5, 64, 3),
        128: conv(5, 64, 3)}

# Decoder steps: a 3×3 conv to 4·C channels then pixel shuffle to C; input channels are the
# previous step's C (1024 from the 4×4×1024 reshape for the first one).
DEC_512 = conv(3, 1024, 4 * 512)
DEC_256 = conv(3, 512, 4 * 256)
DEC_128 = conv(3, 256, 4 * 128)
DEC_64 = conv(3, 128, 4 * 64)
DEC_64_AGAIN = conv(3, 64, 4 * 64)

BY_HAND = {
    # block_8: conv1 3×3/1/2 128→1024 and RB 1024 stay at 8×8, so fc1 sees 8·8·1024 features.
    8: CONV0 + conv(3, 128, 1024) + rb(1024) + bottleneck(8 * 8 * 1024) + DEC_512 + LAST[8],
    # block_16: strided 128→512 (+RB 512), 512→1024 (+RB 1024): 16 → 8 → 4.
    16: CONV0 + conv(3, 128, 512) + rb(512) + conv(3, 512, 1024) + rb(1024)
    + bottleneck(4 * 4 * 1024) + DEC_512 + DEC_256 + LAST[16],
    # block_32: strided 256, 512, 1024, each + RB.
    32: CONV0 + conv(3, 128, 256) + rb(256) + conv(3, 256, 512) + rb(512)
    + conv(3, 512, 1024) + rb(1024)
    + bottleneck(4 * 4 * 1024) + DEC_512 + DEC_256 + DEC_128 + LAST[32],
    # block_64: strided 128, 256, 512, 1024, each + RB.
    64: CONV0 + conv(3, 128, 128) + rb(128) + conv(3, 128, 256) + rb(256)
    + conv(3, 256, 512) + rb(512) + conv(3, 512, 1024) + rb(1024)
    + bottleneck(4 * 4 * 1024) + DEC_512 + DEC_256 + DEC_128 + DEC_64 + LAST[64],
    # block_128: strided 64, 128, 256, 512, 1024, each + RB; decoder ends 4·64 → 64 twice.
    128: CONV0 + conv(3, 128, 64) + rb(64) + conv(3, 64, 128) + rb(128)
    + conv(3, 128, 256) + rb(256) + conv(3, 256, 512) + rb(512) + conv(3, 512, 1024) + rb(1024)
    + bottleneck(4 * 4 * 1024) + DEC_512 + DEC_256 + DEC_128 + DEC_64 + DEC_64_AGAIN + LAST[128],
}

# The totals, as listed in the README's parameter table.
TOTALS = {8: 80_935_427, 16: 69_318_915, 32: 72_554_627, 64: 73_287_747, 128: 73_509_379}


@pytest.mark.parametrize("size", SCALES)
def test_parameter_count_at_width_1_matches_the_tables(size):
    assert BY_HAND[size] == TOTALS[size]
    block = build_generator_block(size, width=1.0, kernel_initializer="zeros")  # fast to build
    assert block.count_params() == BY_HAND[size]
    conv0 = block.get_layer("conv0")
    assert conv0.dilation_rate == (2, 2) and conv0.strides == (1, 1) and conv0.filters == 128
    conv1 = block.get_layer("conv1")
    if size == 8:
        assert conv1.strides == (1, 1) and conv1.dilation_rate == (2, 2)
    else:
        assert conv1.strides == (2, 2) and conv1.dilation_rate == (1, 1)
    assert block.get_layer("fc2").units == 16384
    assert block.get_layer("last_conv").kernel_size == (5, 5)
    slopes = {float(layer.negative_slope) for layer in block.layers
              if isinstance(layer, keras.layers.LeakyReLU)}
    assert slopes == {0.1}
    del block, conv0, conv1
    keras.backend.clear_session()
    gc.collect()


@pytest.mark.parametrize("size", SCALES)
def test_block_maps_its_size_to_the_same_size(size, rng):
    block = build_generator_block(size, width=1 / 32, seed=0)
    x = rng.uniform(-1, 1, (2, size, size, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(block(x))
    assert y.shape == (2, size, size, 3)
    assert np.all(np.abs(y) <= 1.0)
    assert block.name == f"block_{size}"


def test_width_scales_filters_and_fc_sizes():
    half = build_generator_block(32, width=0.5, kernel_initializer="zeros")
    assert half.get_layer("conv0").filters == 64
    assert half.get_layer("fc1").units == 256
    assert half.get_layer("fc2").units == 4 * 4 * 512
    assert half.get_layer("conv3").filters == 512
    small = build_generator_block(32, width=1 / 16, kernel_initializer="zeros")
    assert small.get_layer("conv0").filters == 8
    assert small.count_params() < half.count_params() / 50


def test_seeded_blocks_are_identical_and_round_trip(tmp_path, rng):
    a = build_generator_block(16, width=1 / 32, seed=3)
    b = build_generator_block(16, width=1 / 32, seed=3)
    c = build_generator_block(16, width=1 / 32, seed=4)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    pairs = zip(a.get_weights(), c.get_weights(), strict=True)
    assert any(not np.array_equal(wa, wc) for wa, wc in pairs)
    x = rng.uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    clone = keras.Model.from_config(a.get_config())
    assert clone.count_params() == a.count_params()
    a.save(tmp_path / "block.keras")
    loaded = keras.saving.load_model(tmp_path / "block.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a(x)),
                                  keras.ops.convert_to_numpy(loaded(x)))


@pytest.mark.parametrize("size, width, match", [(12, 1.0, "size"), (256, 1.0, "size"),
                                                (16, 0, "width")])
def test_bad_arguments_are_named(size, width, match):
    with pytest.raises(ValueError, match=match):
        build_generator_block(size, width=width)

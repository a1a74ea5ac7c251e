"""The one float <-> uint8 conversion and the mask check of keras_facehallu.preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from keras_facehallu.preprocessing import binary_mask, from_uint8, to_uint8


def test_uint8_round_trip_is_exact():
    levels = np.arange(256, dtype=np.uint8)
    floats = from_uint8(levels)
    assert floats.dtype == np.float32 and floats.min() == -1.0 and floats.max() == 1.0
    np.testing.assert_array_equal(to_uint8(floats), levels)


def test_to_uint8_rounds_and_clips():
    np.testing.assert_array_equal(
        to_uint8(np.array([-3.0, -1.0, 0.0, 0.999, 1.0, 7.0], np.float32)),
        [0, 0, 128, 255, 255, 255],
    )
    assert to_uint8(np.zeros((2, 4, 4, 3), np.float16)).dtype == np.uint8


def test_binary_mask_accepts_0_1_and_0_255_and_names_the_argument():
    np.testing.assert_array_equal(binary_mask(np.array([0.0, 1.0])), [False, True])
    np.testing.assert_array_equal(binary_mask(np.array([0, 255], np.uint8), allow_255=True),
                                  [False, True])
    with pytest.raises(ValueError, match=r"masks: expected values in \{0, 1\}, found .*255"):
        binary_mask(np.array([0, 255], np.uint8), "masks")
    with pytest.raises(ValueError, match="mask: expected only 0/1 or only 0/255"):
        binary_mask(np.array([0, 3], np.uint8), allow_255=True)

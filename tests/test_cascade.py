"""The cascade: shapes, our composite rule between scales, face pasting, inputs, round-trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from keras_facehallu.models.cascade import CascadedHallucinator
from keras_facehallu.models.pyramid import (
    SCALES,
    downsample,
    image_pyramid,
    mask_pyramid,
    masked_face,
    masked_pyramid,
)
from keras_facehallu.preprocessing import to_model_inputs

pytestmark = pytest.mark.multibackend
WIDTH = 1 / 16


@pytest.fixture(scope="module")
def model():
    return CascadedHallucinator(width=WIDTH, seed=0)


@pytest.fixture(scope="module")
def batch():
    """Two uint8 'photos' with an elliptical face mask, masked (black outside) like the pipeline."""
    rng = np.random.default_rng(7)
    photos = rng.integers(0, 256, (2, 128, 128, 3)).astype("uint8")
    yy, xx = np.mgrid[:128, :128]
    mask = (((xx - 64) / 30.0) ** 2 + ((yy - 70) / 38.0) ** 2 <= 1.0)[None, :, :, None]
    mask = np.repeat(mask, 2, axis=0)
    mask[1, :, :64] = False  # a different mask for the second image
    masked = np.where(mask, photos, 0).astype("uint8")
    return masked, mask


def np_(x):
    return ops.convert_to_numpy(x)


def test_pyramids_area_average_and_threshold(rng):
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    p8 = np_(image_pyramid(x, (8,))[0])
    np.testing.assert_allclose(p8, x.reshape(2, 8, 4, 8, 4, 3).mean(axis=(2, 4)), atol=1e-6)
    m = np.zeros((1, 4, 4, 1), "float32")
    m[0, :2, :2] = 1.0  # one full 2×2 cell
    m[0, 2, 2] = m[0, 2, 3] = 1.0  # exactly half of another cell -> in
    m[0, 0, 3] = 1.0  # a quarter -> out
    np.testing.assert_array_equal(np_(mask_pyramid(m, (2,))[0])[0, :, :, 0], [[1, 0], [0, 1]])


def test_masked_face_ignores_black_outside(rng):
    image = np.full((1, 16, 16, 3), 0.5, "float32")
    mask = np.zeros((1, 16, 16, 1), "float32")
    mask[0, :, :10] = 1.0  # column 8..9 of cell 4 is 50 % face
    face, m = masked_face(np.where(mask > 0, image, -1.0), mask, 4)
    face, m = np_(face), np_(m)
    np.testing.assert_array_equal(m[0, 0, :, 0], [1, 1, 1, 0])
    np.testing.assert_allclose(face[0, :, :3], 0.5, atol=1e-6)  # no bleeding of the black
    np.testing.assert_array_equal(face[0, :, 3], -1.0)  # black outside the scale's mask


def test_output_shapes_and_range(model, batch):
    out = model(to_model_inputs(*batch))
    assert model.scales == SCALES
    assert sorted(out) == sorted(f"image_{s}" for s in SCALES)
    for s in SCALES:
        y = np_(out[f"image_{s}"])
        assert y.shape == (2, s, s, 3) and y.dtype == np.float32
        assert np.all(np.abs(y) <= 1.0)
    weights = model.scale_gates()
    assert sorted(weights) == list(SCALES)
    assert all(float(np_(w)) == 1.0 for w in weights.values())


def test_composite_rule_between_scales(model, batch):
    """x_k = m_k·face_k + (1 − m_k)·up(ŷ_{k/2}); block_8 takes the 8×8 masked face."""
    inputs = to_model_inputs(*batch)
    out = {k: np_(v) for k, v in model(inputs).items()}
    names = [f"composite_{s}" for s in SCALES[1:]]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    composites = dict(zip(SCALES[1:], (np_(c) for c in probe(inputs)), strict=True))

    face8, _ = masked_face(inputs["masked_image"], inputs["mask"], 8)
    np.testing.assert_allclose(np_(model.block(8)(face8)), out["image_8"], atol=1e-5)
    for s in SCALES[1:]:
        face, m = (np_(t) for t in masked_face(inputs["masked_image"], inputs["mask"], s))
        up = np_(model.get_layer(f"up_{s // 2}_to_{s}")(out[f"image_{s // 2}"]))
        expected = m * face + (1.0 - m) * up
        np.testing.assert_allclose(composites[s], expected, atol=1e-5)
        np.testing.assert_allclose(np_(model.block(s)(expected)), out[f"image_{s}"], atol=1e-5)
    # The upscalers start as plain bilinear ×2 (their last conv is zero-initialised).
    bilinear = keras.layers.UpSampling2D(2, interpolation="bilinear")(out["image_8"])
    np.testing.assert_allclose(np_(model.get_layer("up_8_to_16")(out["image_8"])),
                               np_(bilinear), atol=1e-6)


def test_conditions_for_discriminators_match_the_block_inputs(batch):
    inputs = to_model_inputs(*batch)
    conds = masked_pyramid(inputs["masked_image"], inputs["mask"])
    assert [tuple(c.shape) for c in conds] == [(2, s, s, 3) for s in SCALES]
    np.testing.assert_array_equal(np_(conds[-1])[batch[1][..., 0]],
                                  inputs["masked_image"][batch[1][..., 0]])
    assert tuple(downsample(inputs["mask"], 16).shape) == (2, 16, 16, 1)


def test_paste_face_is_exact(model, batch):
    pasted = CascadedHallucinator(width=WIDTH, seed=0, paste_face=True)
    inputs = to_model_inputs(*batch)
    plain = np_(model(inputs)["image_128"])
    out = np_(pasted(inputs)["image_128"])
    inside = np.repeat(batch[1], 3, axis=-1)
    np.testing.assert_array_equal(out[inside], inputs["masked_image"][inside])
    np.testing.assert_allclose(out[~inside], plain[~inside], atol=1e-6)
    result = pasted.hallucinate(*batch)
    assert np.array_equal(np.round((result[inside] + 1) * 127.5), batch[0][inside])


def test_uint8_bool_and_float_inputs_agree(model, batch):
    masked, mask = batch
    as_float = (masked.astype("float32") / 127.5 - 1.0, mask.astype("float32"))
    a = model.hallucinate(masked, mask[..., 0])  # uint8 image, bool [N, H, W] mask
    b = model.hallucinate(*as_float, batch_size=1)
    c = model.hallucinate(masked, mask.astype("uint8") * 255)
    assert a.shape == (2, 128, 128, 3) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)  # float32 round-off grows with He-init activations
    np.testing.assert_allclose(a, c, atol=1e-4)
    single = to_model_inputs(masked[0], mask[0].astype("uint8"))
    assert single["masked_image"].shape == (1, 128, 128, 3)
    assert single["mask"].shape == (1, 128, 128, 1)


def test_backend_tensors_are_accepted(batch):
    masked, mask = batch
    got = to_model_inputs(ops.convert_to_tensor(masked), ops.convert_to_tensor(mask))
    want = to_model_inputs(masked, mask)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_pixels_outside_the_mask_are_ignored(model, batch, rng):
    """Only the face pixels reach the model: noise instead of black outside changes nothing."""
    inputs = to_model_inputs(*batch)
    noisy = dict(inputs)
    outside = inputs["mask"] == 0
    noise = rng.uniform(-1, 1, inputs["masked_image"].shape).astype("float32")
    noisy["masked_image"] = np.where(outside, noise, inputs["masked_image"])
    a, b = model(inputs), model(noisy)
    for s in SCALES:
        np.testing.assert_array_equal(np_(a[f"image_{s}"]), np_(b[f"image_{s}"]))


@pytest.mark.parametrize(
    "image, mask, error, match",
    [
        (np.zeros((1, 64, 64, 3), "uint8"), np.ones((1, 64, 64, 1), bool), ValueError,
         r"masked_image: expected shape \[N, 128, 128, 3\].*found \(1, 64, 64, 3\)"),
        (np.zeros((1, 128, 128, 4), "uint8"), np.ones((1, 128, 128, 1), bool), ValueError,
         "masked_image.*found"),
        (np.full((1, 128, 128, 3), 200.0, "float32"), np.ones((1, 128, 128), bool), ValueError,
         r"masked_image: float images must be in \[-1, 1\], found values in \[200, 200\]"),
        (np.zeros((1, 128, 128, 3), "int32"), np.ones((1, 128, 128), bool), TypeError,
         "masked_image: expected dtype uint8.*found int32"),
        (np.zeros((1, 128, 128, 3), "uint8"), np.full((1, 128, 128), 3, "uint8"), ValueError,
         "mask: expected only 0/1 or only 0/255"),
        (np.zeros((1, 128, 128, 3), "uint8"), np.full((1, 128, 128), 2.0), ValueError,
         r"mask: float masks must be in \[0, 1\]"),
        (np.zeros((1, 128, 128, 3), "uint8"), np.ones((1, 128, 128, 3), bool), ValueError,
         r"mask: expected shape \[N, 128, 128, 1\]"),
        (np.zeros((2, 128, 128, 3), "uint8"), np.ones((3, 128, 128, 1), bool), ValueError,
         "batch sizes differ"),
        ("photo.jpg", np.ones((1, 128, 128, 1), bool), TypeError,
         "masked_image: expected a numpy array or tensor, found str"),
    ],
)
def test_bad_inputs_have_clear_errors(image, mask, error, match):
    with pytest.raises(error, match=match):
        to_model_inputs(image, mask)


def test_config_round_trip(model):
    config = model.get_config()
    assert config == {"width": WIDTH, "paste_face": False, "seed": 0,
                      "name": "cascaded_hallucinator"}
    clone = CascadedHallucinator.from_config(config)
    assert clone.get_config() == config
    for a, b in zip(model.get_weights(), clone.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # same seed -> same initial weights


def test_save_load_round_trip_gives_identical_outputs(model, batch, tmp_path):
    inputs = to_model_inputs(*batch)
    model.save(tmp_path / "cascade.keras")
    loaded = keras.saving.load_model(tmp_path / "cascade.keras")
    assert isinstance(loaded, CascadedHallucinator)
    assert loaded.get_config() == model.get_config()
    a, b = model(inputs), loaded(inputs)
    for s in SCALES:
        np.testing.assert_array_equal(np_(a[f"image_{s}"]), np_(b[f"image_{s}"]))


def test_seeded_builds_are_deterministic(model, batch):
    inputs = to_model_inputs(*batch)
    again = CascadedHallucinator(width=WIDTH, seed=0)
    other = CascadedHallucinator(width=WIDTH, seed=1)
    np.testing.assert_array_equal(np_(model(inputs)["image_128"]),
                                  np_(again(inputs)["image_128"]))
    assert not np.array_equal(np_(model(inputs)["image_128"]), np_(other(inputs)["image_128"]))

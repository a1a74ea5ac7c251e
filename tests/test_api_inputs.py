"""The Python API on what users hand it: uint8 faces from prepare_faces in fit/evaluate/predict,
``weights=`` presets, ``presets`` listing, untrusted preset folders (tiny widths, real photos).
"""

from __future__ import annotations

import json
import shutil
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_facehallu.losses import LossConfig
from keras_facehallu.models.cascade import CascadedHallucinator
from keras_facehallu.preprocessing import faces_to_arrays, to_model_inputs, to_target_images
from keras_facehallu.presets import (
    PresetError,
    UnverifiedPresetWarning,
    load_preset,
    save_to_preset,
)
from keras_facehallu.training.gan import HallucinationGAN
from tests.standins import standin_identity_net, standin_perceptual_net

WIDTH = 1 / 32


@pytest.fixture(scope="module")
def faces(lfw_photos):
    """uint8 arrays of two real faces, as a user gets them from prepare_faces."""
    from keras_facehallu.face.pipeline import prepare_faces

    results = prepare_faces([str(p) for p in lfw_photos[:2]] + ["missing.jpg"])
    return faces_to_arrays(results)


def make_gan(seed=0):
    keras.utils.set_random_seed(seed)
    gan = HallucinationGAN(CascadedHallucinator(width=WIDTH, seed=seed), seed=seed)
    gan.compile(
        loss_config=LossConfig(),
        perceptual_net=standin_perceptual_net(seed=0),  # small stand-ins for the loss networks
        identity_net=standin_identity_net(seed=0),
    )
    return gan


def _floats(x, y):
    return to_model_inputs(x["masked_image"], x["mask"]), to_target_images(y)


def test_faces_to_arrays_gives_uint8_batches(faces):
    x, y = faces
    assert x["masked_image"].dtype == np.uint8 and y.dtype == np.uint8
    assert x["masked_image"].shape == (2, 128, 128, 3) and x["mask"].shape == (2, 128, 128, 1)
    with pytest.raises(ValueError, match="no usable face.*missing.jpg: missing"):
        from keras_facehallu.face.pipeline import prepare_faces

        faces_to_arrays(prepare_faces(["missing.jpg"]))


def test_uint8_arrays_are_converted_in_fit_evaluate_predict(faces):
    x, y = faces
    xf, yf = _floats(x, y)
    gan = make_gan()
    as_uint8 = gan.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    as_float = gan.evaluate(xf, yf, batch_size=2, verbose=0, return_dict=True)
    for name, value in as_float.items():
        np.testing.assert_allclose(as_uint8[name], value, rtol=1e-5, atol=1e-6)
    assert 0 < as_uint8["pixel"] < 20  # 0..255 taken as [-1, 1] gives thousands
    out = gan.predict(x, batch_size=2, verbose=0)
    np.testing.assert_allclose(out["image_128"], gan.predict(xf, verbose=0)["image_128"],
                               atol=1e-6)
    history = gan.fit(x, y, batch_size=2, epochs=1, verbose=0, validation_data=(x, y))
    logs = {k: v[-1] for k, v in history.history.items()}
    assert np.isfinite(list(logs.values())).all()
    assert logs["pixel"] < 20 and logs["val_pixel"] < 20


def test_out_of_range_inputs_are_refused(faces):
    x, y = faces
    gan = make_gan()
    unscaled = {k: v.astype("float32") for k, v in x.items()}
    with pytest.raises(ValueError, match=r"masked_image: float images must be in \[-1, 1\]"):
        gan.fit(unscaled, y, batch_size=2, epochs=1, verbose=0)
    xf, _ = _floats(x, y)
    with pytest.raises(ValueError, match=r"image: float images must be in \[-1, 1\]"):
        gan.evaluate(xf, y.astype("float32"), verbose=0)
    with pytest.raises(ValueError, match="masked_image"):
        gan.predict({**x, "masked_image": x["masked_image"][:, :64]}, verbose=0)
    # A tf.data pipeline that yields uint8 is refused inside the step (only the dtype is known).
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    with pytest.raises(TypeError, match="dtype uint8; expected float in \\[-1, 1\\]"):
        gan.fit(data, epochs=1, verbose=0, shuffle=False)


# ----------------------------------------------------------------------------- presets ----
@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    model = CascadedHallucinator(width=WIDTH, paste_face=True, seed=0)
    return save_to_preset(model, tmp_path_factory.mktemp("p") / "tiny")


def _inputs():
    rng = np.random.default_rng(0)
    mask = np.zeros((2, 128, 128, 1), bool)
    mask[:, 36:92, 40:88] = True
    return rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8) * mask, mask


def test_weights_argument_takes_the_preset_config(tiny_preset):
    model = CascadedHallucinator(weights=str(tiny_preset))
    assert model.width == WIDTH and model.paste_face and model.seed == 0
    reference = CascadedHallucinator.from_preset(str(tiny_preset))
    np.testing.assert_array_equal(model.hallucinate(*_inputs()), reference.hallucinate(*_inputs()))
    assert model.preset_metadata["name"] == "tiny"
    raw = CascadedHallucinator(weights=str(tiny_preset), paste_face=False)  # explicit wins
    assert not raw.paste_face
    with pytest.raises(PresetError, match="width"):
        CascadedHallucinator(width=1 / 16, weights=str(tiny_preset))


def test_packaged_preset_by_weights_equals_from_preset():
    model = CascadedHallucinator(weights="lfw_cascade_small")
    reference = CascadedHallucinator.from_preset("lfw_cascade_small")
    assert model.get_config() == reference.get_config()
    np.testing.assert_array_equal(model.hallucinate(*_inputs()), reference.hallucinate(*_inputs()))


def test_presets_lists_what_is_available():
    from keras_facehallu.models.progan import ProGANHallucinator

    listed = CascadedHallucinator.presets
    assert listed["lfw_cascade_small"]["class_name"] == "CascadedHallucinator"
    assert listed["lfw_cascade_small"]["description"]
    assert "lfw_cascade_small" not in ProGANHallucinator.presets


def _copy(preset, tmp_path, config=None, metadata="keep"):
    folder = shutil.copytree(preset, tmp_path / "copy")
    if config is not None:
        spec = json.loads((folder / "config.json").read_text())
        spec["config"].update(config)
        (folder / "config.json").write_text(json.dumps(spec))
    if metadata is None:
        (folder / "metadata.json").unlink()
    elif metadata != "keep":
        (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


@pytest.mark.parametrize(
    "change, message",
    [
        ({"width": 64}, r"width must be a number in \(0, 1.0\], found 64"),
        ({"width": "wide"}, "width must be a number"),
        ({"width": float("nan")}, "width must be a number"),
        ({"paste_face": "yes"}, "paste_face must be true or false"),
        ({"seed": -1}, "seed must be null or an integer"),
        ({"exec": "rm -rf /"}, r"unknown arguments \['exec'\]"),
    ],
)
def test_bad_config_values_are_refused_before_building(tiny_preset, tmp_path, change, message):
    folder = _copy(tiny_preset, tmp_path, config=change, metadata=None)
    with pytest.warns(UnverifiedPresetWarning), pytest.raises(PresetError, match=message):
        load_preset(folder)
    with pytest.warns(UnverifiedPresetWarning), pytest.raises(PresetError, match=message):
        CascadedHallucinator(weights=str(folder))


@pytest.mark.parametrize(
    "metadata, why", [(None, "has no metadata.json"), ({"files": {}}, "lists no sha256")]
)
def test_unverifiable_folder_says_so(tiny_preset, tmp_path, metadata, why):
    folder = _copy(tiny_preset, tmp_path, metadata=metadata)
    with pytest.warns(UnverifiedPresetWarning, match=why):
        model = load_preset(folder)
    assert model.width == WIDTH


def test_verified_folder_loads_without_warning(tiny_preset):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedPresetWarning)
        load_preset(tiny_preset)


def test_broken_metadata_is_a_clear_error(tiny_preset, tmp_path):
    folder = _copy(tiny_preset, tmp_path)
    (folder / "metadata.json").write_text("{not json")
    with pytest.raises(PresetError, match="metadata.json: not valid JSON"):
        load_preset(folder)

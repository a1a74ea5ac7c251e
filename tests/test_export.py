"""Export: SavedModel in TF-Serving layout (signatures, parity, side files), ONNX, LiteRT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_facehallu.export.loading import ExportError, load_model
from keras_facehallu.export.savedmodel import (
    export_savedmodel,
    numpy_float_to_uint8,
    numpy_uint8_to_float,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    from keras_facehallu.models.cascade import CascadedHallucinator

    return CascadedHallucinator(width=1 / 32, seed=0)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("models")
    return model_dir, export_savedmodel(model, model_dir, "facehallu")


@pytest.fixture(scope="module")
def uint8_batch():
    rng = np.random.default_rng(7)
    mask = np.zeros((3, 128, 128, 1), np.uint8)
    mask[:, 28:100, 34:94] = 1
    image = rng.integers(0, 256, (3, 128, 128, 3), dtype=np.uint8) * mask
    return image, mask


def test_savedmodel_signatures_and_parity(model, exported, uint8_batch):
    import tensorflow as tf

    _, path = exported
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"serving_default", "serving_float"}
    image, mask = uint8_batch
    x, m = numpy_uint8_to_float(image, mask)
    expected = model.predict({"masked_image": x, "mask": m}, verbose=0)["image_128"]
    expected_uint8 = numpy_float_to_uint8(expected)
    serve = loaded.signatures["serving_default"]
    for batch in (1, 3):  # dynamic batch
        got = serve(masked_image=tf.constant(image[:batch]), mask=tf.constant(mask[:batch]))
        got = got["image"]
        assert got.dtype == tf.uint8 and got.shape == (batch, 128, 128, 3)
        assert np.abs(got.numpy().astype(int) - expected_uint8[:batch]).max() <= 1
    # a 0/255 mask is the same as a 0/1 mask
    got255 = serve(masked_image=tf.constant(image), mask=tf.constant(mask * 255))["image"]
    assert np.abs(got255.numpy().astype(int) - expected_uint8).max() <= 1
    out = loaded.signatures["serving_float"](masked_image=tf.constant(x), mask=tf.constant(m))
    assert out["image"].dtype == tf.float32
    assert np.abs(out["image"].numpy() - expected).max() <= 1e-5


def test_layout_and_side_files(exported):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    model_dir, path = exported
    assert path == model_dir / "facehallu" / "1"
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    assert not [p for p in (model_dir / "facehallu").iterdir() if p.name.startswith(".tmp")]
    config = (model_dir / "models.config").read_text()
    assert 'name: "facehallu"' in config and 'base_path: "/models/facehallu"' in config
    assert "max_batch_size { value: 16 }" in (model_dir / "batching_parameters.txt").read_text()
    warmup = path / "assets.extra" / "tf_serving_warmup_requests"
    records = list(tf.data.TFRecordDataset(str(warmup)).as_numpy_iterator())
    assert len(records) == 2
    log = prediction_log_pb2.PredictionLog.FromString(records[0])
    assert log.predict_log.request.model_spec.name == "facehallu"
    assert set(log.predict_log.request.inputs) == {"masked_image", "mask"}


def test_compose_file_points_tf_serving_at_the_exported_files(exported):
    """serving/docker-compose.yml (not runnable here) names the files that export writes."""
    from keras_facehallu.export.savedmodel import BATCHING_FILE, MODELS_CONFIG

    yaml = pytest.importorskip("yaml")  # PyYAML comes with the beam extra (in dev)

    compose = REPO / "serving" / "docker-compose.yml"
    service = yaml.safe_load(compose.read_text())["services"]["tensorflow-serving"]
    assert service["image"].startswith("tensorflow/serving:")
    (mount,) = service["volumes"]
    assert mount["target"] == "/models" and mount["read_only"]
    flags = dict(arg.removeprefix("--").partition("=")[::2] for arg in service["command"])
    model_dir, _ = exported
    for flag, name in [("model_config_file", MODELS_CONFIG),
                       ("batching_parameters_file", BATCHING_FILE)]:
        assert flags[flag] == f"{mount['target']}/{name}", f"{compose}: --{flag}"
        assert (model_dir / name).is_file()
    assert "enable_batching" in flags and "enable_model_warmup" in flags


def test_saved_model_cli_shows_signatures(exported):
    _, path = exported
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    shown = subprocess.run(
        [sys.executable, "-c", "from tensorflow.python.tools.saved_model_cli import main; main()",
         "show", "--dir", str(path), "--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    assert "inputs['masked_image']" in shown and "inputs['mask']" in shown
    assert "outputs['image']" in shown
    assert "DT_UINT8" in shown and "(-1, 128, 128, 3)" in shown and "(-1, 128, 128, 1)" in shown


def tiny_model():
    """A one-conv stand-in with the hallucinator's inputs and outputs: fast to export."""
    import keras

    image = keras.Input((128, 128, 3), name="masked_image")
    mask = keras.Input((128, 128, 1), name="mask")
    out = keras.layers.Conv2D(3, 1, activation="tanh")(keras.layers.Concatenate()([image, mask]))
    return keras.Model({"masked_image": image, "mask": mask}, {"image_128": out})


def test_versions_never_overwritten_unless_asked(tmp_path):
    model = tiny_model()
    first = export_savedmodel(model, tmp_path, "m", version=3)
    marker = first / "marker.txt"
    marker.write_text("old")
    with pytest.raises(ExportError, match="already exists"):
        export_savedmodel(model, tmp_path, "m", version=3)
    assert marker.is_file()
    assert export_savedmodel(model, tmp_path, "m").name == "4"  # next free version
    again = export_savedmodel(model, tmp_path, "m", version=3, overwrite=True)
    assert again == first and not marker.exists() and (again / "saved_model.pb").is_file()
    with pytest.raises(ExportError, match="name"):
        export_savedmodel(model, tmp_path, "../evil")


@pytest.fixture(scope="module")
def keras_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "model.keras"
    model.save(path)  # a real CascadedHallucinator: its class must be found on load
    return path


def test_cli_from_keras_file(keras_file, tmp_path):
    from keras_facehallu.export.__main__ import main

    args = ["savedmodel", "--model", str(keras_file), "--model-dir", str(tmp_path / "a"),
            "--name", "fh"]
    assert main(args) == 0
    assert (tmp_path / "a" / "fh" / "1" / "saved_model.pb").is_file()
    assert main([*args, "--version", "1"]) == 2  # refused: exists
    assert main(["savedmodel", "--model", str(tmp_path / "nope.keras"), "--model-dir",
                 str(tmp_path / "a")]) == 2


def test_config_and_weights_give_the_same_model(model, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(model.get_config()))
    weights = tmp_path / "model.weights.h5"
    model.save_weights(weights)
    rebuilt = load_model(config=config, weights=weights)
    for a, b in zip(model.weights, rebuilt.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_model_arguments_are_clear(tmp_path):
    with pytest.raises(ExportError, match=r"--model: expected an existing \.keras file"):
        load_model(model=tmp_path / "missing.keras")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(ExportError, match="--weights"):
        load_model(config=tmp_path / "c.json")
    with pytest.raises(ExportError, match="exactly one"):
        load_model()


@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_portable_export_parity(model, keras_file, tmp_path, fmt):
    from keras_facehallu.export.__main__ import main
    from keras_facehallu.export.portable import FORMATS, check_parity

    path = tmp_path / f"facehallu{FORMATS[fmt]}"
    # the command loads the .keras file, exports, and checks the file against that model
    assert main([fmt, "--model", str(keras_file), "--out", str(path)]) == 0
    assert check_parity(model, path, fmt, batch=2) <= 1e-4  # and against the original model


def test_load_model_from_a_preset_folder(tmp_path):
    from keras_facehallu.models.cascade import CascadedHallucinator
    from keras_facehallu.presets import save_to_preset

    model = CascadedHallucinator(width=1 / 32, seed=1)
    folder = save_to_preset(model, tmp_path / "preset")
    loaded = load_model(preset=str(folder))
    assert loaded.count_params() == model.count_params()
    with pytest.raises(ExportError, match="unknown preset"):
        load_model(preset="no_such_preset")

"""Presets: save_to_preset / load_preset round trip, hash checks, override dir, download path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_facehallu import presets
from keras_facehallu.models import load_preset, save_to_preset
from keras_facehallu.presets import Preset, PresetError


@pytest.fixture(scope="module")
def tiny_model():
    from keras_facehallu.models.cascade import CascadedHallucinator

    return CascadedHallucinator(width=1 / 32, seed=3)


@pytest.fixture
def inputs(rng):
    mask = np.zeros((2, 128, 128, 1), np.float32)
    mask[:, 40:90, 45:85] = 1
    image = rng.uniform(-1, 1, (2, 128, 128, 3)).astype(np.float32)
    return image * mask - (1 - mask), mask


def test_round_trip_gives_identical_outputs(tiny_model, inputs, tmp_path):
    folder = save_to_preset(tiny_model, tmp_path / "p", metadata={"description": "test"})
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "metadata.json", "model.weights.h5"
    ]
    loaded = load_preset(folder, seed=123)  # other initial weights: the file must overwrite them
    np.testing.assert_array_equal(tiny_model.hallucinate(*inputs), loaded.hallucinate(*inputs))
    assert loaded.preset_metadata["description"] == "test"
    with pytest.raises(PresetError, match="exists already"):
        save_to_preset(tiny_model, folder)


def test_overrides_and_class_check(tiny_model, inputs, tmp_path):
    from keras_facehallu.models.cascade import CascadedHallucinator

    folder = save_to_preset(tiny_model, tmp_path / "p")
    pasted = CascadedHallucinator.from_preset(str(folder), paste_face=True)
    out = pasted.hallucinate(*inputs)
    masked, mask = inputs
    np.testing.assert_allclose(out * mask, masked * mask, atol=1e-6)
    with pytest.raises(PresetError, match="do not fit"):
        load_preset(folder, width=1 / 16)


def test_corrupt_weights_are_refused(tiny_model, tmp_path):
    folder = save_to_preset(tiny_model, tmp_path / "p")
    with open(folder / "model.weights.h5", "r+b") as f:
        f.seek(2000)
        f.write(b"\x00garbage\x00")
    with pytest.raises(PresetError, match="sha256"):
        load_preset(folder)


def test_not_a_preset_folder_and_unknown_name(tmp_path):
    with pytest.raises(PresetError, match="not a preset folder"):
        load_preset(tmp_path)
    with pytest.raises(PresetError, match="unknown preset 'no_such_preset'"):
        load_preset("no_such_preset")


def test_registered_preset_download_override_and_bad_hash(
    tiny_model, inputs, tmp_path, monkeypatch
):
    published = save_to_preset(tiny_model, tmp_path / "published")
    files = json.loads((published / "metadata.json").read_text())["files"]
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    remote = Preset("test_remote", "test", url=published.as_uri(), files=files)
    monkeypatch.setitem(presets.PRESETS, remote.name, remote)
    # Download path (a file:// URL stands in for the web): fetched once into the cache.
    loaded = load_preset("test_remote", seed=5)
    np.testing.assert_array_equal(tiny_model.hallucinate(*inputs), loaded.hallucinate(*inputs))
    assert (tmp_path / "keras_home" / "facehallu" / "presets" / "test_remote").is_dir()
    # No network: a clear error naming the URL and the override variable.
    offline = Preset("test_offline", "test", url="https://example.invalid/x", files=files)
    monkeypatch.setitem(presets.PRESETS, offline.name, offline)
    with pytest.raises(PresetError, match="KERAS_FACEHALLU_PRESETS"):
        load_preset("test_offline")
    # Override directory.
    monkeypatch.setenv("KERAS_FACEHALLU_PRESETS", str(tmp_path))
    (tmp_path / "test_offline").symlink_to(published)
    assert load_preset("test_offline").count_params() == tiny_model.count_params()
    # A registered hash that does not match the file.
    badhash = Preset("test_badhash", "test", url=published.as_uri(),
                     files={**files, "model.weights.h5": "0" * 64})
    monkeypatch.setitem(presets.PRESETS, badhash.name, badhash)
    (tmp_path / "test_badhash").symlink_to(published)
    with pytest.raises(PresetError, match="expected 0000"):
        load_preset("test_badhash")


def test_weights_argument(tiny_model, inputs, tmp_path):
    from keras_facehallu.models.cascade import CascadedHallucinator

    folder = save_to_preset(tiny_model, tmp_path / "p")
    again = CascadedHallucinator(width=1 / 32, seed=99, weights=str(folder))
    np.testing.assert_array_equal(tiny_model.hallucinate(*inputs), again.hallucinate(*inputs))
    from_file = CascadedHallucinator(width=1 / 32, weights=str(folder / "model.weights.h5"))
    np.testing.assert_array_equal(tiny_model.hallucinate(*inputs), from_file.hallucinate(*inputs))
    with pytest.raises(PresetError, match="width"):
        CascadedHallucinator(width=1 / 16, weights=str(folder))


def test_model_class_comes_from_the_keras_registry():
    from keras_facehallu.models import CascadedHallucinator

    assert presets.model_class("CascadedHallucinator") is CascadedHallucinator
    with pytest.raises(PresetError, match=r"x/config.json: unknown class_name 'Dense'"):
        presets.model_class("Dense", "x/config.json")


def test_load_preset_weights_names_the_file_when_they_do_not_fit(tiny_model, tmp_path):
    from keras_facehallu.models.cascade import CascadedHallucinator

    folder = save_to_preset(tiny_model, tmp_path / "p", metadata={"description": "d"})
    other = presets.load_preset_weights(CascadedHallucinator(width=1 / 32, seed=9), folder)
    assert other.preset_metadata["name"] == "p" and other.preset_metadata["description"] == "d"
    with pytest.raises(PresetError, match=r"p/model.weights.h5: weights do not fit "
                                          r"CascadedHallucinator\(\{'width': 0.0625"):
        presets.load_preset_weights(CascadedHallucinator(width=1 / 16), folder)


def test_registries_are_a_dict_and_get_list_functions():
    from keras_facehallu import assets
    from keras_facehallu.metrics import registry
    from keras_facehallu.training import configs

    assert presets.list_presets() == tuple(presets.PRESETS)
    assert "lfw_cascade_small" in presets.PRESETS
    assert presets.get_preset("lfw_cascade_small").packaged
    with pytest.raises(PresetError, match="unknown preset 'nope'"):
        presets.get_preset("nope")
    assert assets.list_assets() == tuple(assets.ASSETS) and "fid_inception" in assets.ASSETS
    assert registry.list_metrics() == tuple(registry.METRICS)
    assert registry.get_metric("ssim").name == "ssim"
    assert configs.list_configs() == tuple(configs.CONFIGS)
    assert configs.get_config("tiny").name == "tiny"

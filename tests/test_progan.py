"""The ProGAN variant: fade-in gates, loss weights, the growing callback, round-trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_facehallu.models.cascade import CascadedHallucinator
from keras_facehallu.models.progan import ProGANHallucinator, ProgressiveFade, ProgressiveGrowing
from keras_facehallu.models.pyramid import SCALES

pytestmark = pytest.mark.multibackend
WIDTH = 1 / 16


def np_(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def model():
    return ProGANHallucinator(width=WIDTH, seed=0)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(3)
    mask = np.zeros((2, 128, 128, 1), "float32")
    mask[:, 36:100, 40:88] = 1.0
    image = rng.uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    return {"masked_image": np.where(mask > 0, image, -1.0).astype("float32"), "mask": mask}


def nearest(x):
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def test_scale_gates_follow_phase_and_alpha(model):
    expected = {
        (0, 1.0): [1, 0, 0, 0, 0],
        (1, 0.25): [1, 0.25, 0, 0, 0],
        (3, 1.0): [1, 1, 1, 1, 0],
        (4, 0.5): [1, 1, 1, 1, 0.5],
        (4, 1.0): [1, 1, 1, 1, 1],
    }
    for (phase, alpha), weights in expected.items():
        model.set_progress(phase, alpha)
        assert model.progress == (phase, alpha)
        got = model.scale_gates()
        assert sorted(got) == list(SCALES)
        assert [float(np_(got[s])) for s in SCALES] == weights
    with pytest.raises(ValueError, match="phase must be an integer in 0..4"):
        model.set_progress(5)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        model.set_progress(1, 1.5)


def test_fade_in_blends_with_the_upsampled_previous_output(model, inputs):
    model.set_progress(1, 0.25)
    out = {k: np_(v) for k, v in model(inputs).items()}
    assert {k: v.shape for k, v in out.items()} == {
        f"image_{s}": (2, s, s, 3) for s in SCALES
    }
    probe = keras.Model(model.inputs, model.get_layer("composite_16").output)
    new16 = np_(model.block(16)(probe(inputs)))
    np.testing.assert_allclose(out["image_16"], 0.25 * new16 + 0.75 * nearest(out["image_8"]),
                               atol=1e-5)
    # Scales not grown yet repeat the last output, upsampled.
    for s in SCALES[2:]:
        np.testing.assert_allclose(out[f"image_{s}"], nearest(out[f"image_{s // 2}"]), atol=1e-6)


def test_fully_grown_equals_the_cascade(inputs):
    grown = ProGANHallucinator(width=WIDTH, seed=0, phase=4, alpha=1.0)
    cascade = CascadedHallucinator(width=WIDTH, seed=0)
    a, b = grown(inputs), cascade(inputs)
    for s in SCALES:
        np.testing.assert_allclose(np_(a[f"image_{s}"]), np_(b[f"image_{s}"]), atol=1e-6)


def test_schedule():
    cb = ProgressiveGrowing(steps_per_phase=4, fade_fraction=0.5)
    got = [cb.schedule(t) for t in range(0, 22)]
    assert got[:4] == [(0, 1.0)] * 4
    assert got[4:8] == [(1, 0.5), (1, 1.0), (1, 1.0), (1, 1.0)]
    assert got[8] == (2, 0.5) and got[16] == (4, 0.5) and got[21] == (4, 1.0)
    with pytest.raises(ValueError, match="steps_per_phase must be >= 1"):
        ProgressiveGrowing(0)


def test_callback_grows_the_model_during_fit(inputs):
    """Phase 0 for 4 steps, then block_16 fades in: only blocks 8 and 16 may change."""
    keras.utils.set_random_seed(0)
    model = ProGANHallucinator(width=1 / 32, seed=1)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss={f"image_{s}": "mse" for s in SCALES})
    before = {s: [w.copy() for w in model.block(s).get_weights()] for s in SCALES}
    targets = {f"image_{s}": np.zeros((2, s, s, 3), "float32") for s in SCALES}
    x = {k: np.concatenate([v, v, v]) for k, v in inputs.items()}  # 6 samples
    y = {k: np.concatenate([v, v, v]) for k, v in targets.items()}
    model.fit(x, y, batch_size=1, epochs=1, steps_per_epoch=5, verbose=0,
              callbacks=[ProgressiveGrowing(steps_per_phase=4, fade_fraction=0.5)])
    assert model.progress == (1, 0.5)
    changed = {s: any(not np.array_equal(a, b) for a, b in
                      zip(before[s], model.block(s).get_weights(), strict=True))
               for s in SCALES}
    assert changed == {8: True, 16: True, 32: False, 64: False, 128: False}


def test_callback_needs_a_progan_model():
    cb = ProgressiveGrowing(2)
    cb.set_model(keras.Sequential([keras.layers.Dense(1)]))
    with pytest.raises(ValueError, match="ProGANHallucinator"):
        cb.on_train_batch_begin(0)


def test_config_and_save_load_round_trip(model, inputs, tmp_path):
    model.set_progress(2, 0.75)
    config = model.get_config()
    assert config == {"width": WIDTH, "paste_face": False, "seed": 0, "phase": 0, "alpha": 1.0,
                      "name": "progan_hallucinator"}
    clone = ProGANHallucinator.from_config(config)
    assert clone.get_config() == config and clone.progress == (0, 1.0)
    model.save(tmp_path / "progan.keras")
    loaded = keras.saving.load_model(tmp_path / "progan.keras")
    assert isinstance(loaded, ProGANHallucinator)
    assert loaded.progress == (2, 0.75)  # the state variables are saved with the weights
    a, b = model(inputs), loaded(inputs)
    for s in SCALES:
        np.testing.assert_array_equal(np_(a[f"image_{s}"]), np_(b[f"image_{s}"]))
    fade = ProgressiveFade.from_config(ProgressiveFade(1, 0.5).get_config())
    assert float(np_(fade.gate(1))) == 0.5

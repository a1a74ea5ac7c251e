"""TFRecord format and the tf.data input pipeline, on a tiny prepared folder made in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest

from keras_facehallu.data import records
from keras_facehallu.data.pipeline import make_dataset

SIZE = 32


def _examples(rng, count: int, start: int = 0) -> list[dict]:
    out = []
    for i in range(start, start + count):
        image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        mask = np.zeros((SIZE, SIZE, 1), np.uint8)
        mask[8:24, 4 + i % 8:20 + i % 8] = 1  # asymmetric, so a flip is visible
        out.append({
            "image": image, "mask": mask,
            "landmarks": rng.uniform(0, SIZE, (68, 2)).astype(np.float32),
            "transform": np.array([[0.5, 0.1, 3.0], [-0.1, 0.5, 4.0]]),
            "person": f"Person_{i % 4}", "person_index": i % 4, "source": f"Person_{i % 4}/{i}.jpg",
        })
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("prepared")
    examples = {"train": _examples(rng, 10), "validation": _examples(rng, 4, start=10)}
    names = {
        "train": [records.shard_name("train", i, 2) for i in range(2)],
        "validation": [records.shard_name("validation", 0, 1)],
    }
    records.write_examples(folder / names["train"][0], examples["train"][:6])
    records.write_examples(folder / names["train"][1], examples["train"][6:])
    records.write_examples(folder / names["validation"][0], examples["validation"])
    records.write_manifest(folder, {"shards": names})
    return folder, examples


def test_write_and_load_round_trip(prepared):
    folder, examples = prepared
    loaded = list(records.load_examples(folder, "train").as_numpy_iterator())
    assert len(loaded) == 10
    for got, want in zip(loaded, examples["train"], strict=True):
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["mask"], want["mask"])
        assert got["mask"].dtype == np.uint8 and set(np.unique(got["mask"])) <= {0, 1}
        np.testing.assert_allclose(got["landmarks"], want["landmarks"], rtol=1e-6)
        np.testing.assert_allclose(got["transform"], want["transform"], rtol=1e-6)
        assert got["person"].decode() == want["person"]
        assert got["person_index"] == want["person_index"]
        assert got["source"].decode() == want["source"]
    assert records.read_manifest(folder)["format_version"] == records.FORMAT_VERSION


def test_atomic_write_leaves_no_partial_shard(tmp_path, rng):
    bad = _examples(rng, 3)
    bad[2]["image"] = np.zeros((SIZE, SIZE), np.uint8)  # fails validation half-way through
    target = tmp_path / records.shard_name("train", 0, 1)
    with pytest.raises(ValueError, match=r"example 2 .*image must be uint8"):
        records.write_examples(target, bad)
    assert list(tmp_path.iterdir()) == []


def test_missing_data_errors(tmp_path, prepared):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_dataset(tmp_path / "nothing", "train", 2)
    with pytest.raises(FileNotFoundError, match="no train shards"):
        make_dataset(tmp_path, "train", 2)
    with pytest.raises(ValueError, match="split"):
        records.load_examples(prepared[0], "holdout")
    with pytest.raises(FileNotFoundError, match="no test shards"):  # a valid split, none written
        records.load_examples(prepared[0], "test")
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(prepared[0], "train", 0)


def test_batches_follow_the_model_conventions(prepared):
    folder, examples = prepared
    batches = list(make_dataset(folder, "train", 4, shuffle=False).as_numpy_iterator())
    assert [b[1].shape[0] for b in batches] == [4, 4, 2]
    inputs, target = batches[0]
    assert set(inputs) == {"masked_image", "mask"}
    assert target.shape == (4, SIZE, SIZE, 3) and target.dtype == np.float32
    assert inputs["mask"].shape == (4, SIZE, SIZE, 1) and inputs["mask"].dtype == np.float32
    assert target.min() >= -1.0 and target.max() <= 1.0
    assert set(np.unique(inputs["mask"])) == {0.0, 1.0}
    np.testing.assert_allclose(target[0], examples["train"][0]["image"] / 127.5 - 1.0, atol=1e-6)
    outside = inputs["mask"][..., 0] == 0
    assert np.all(inputs["masked_image"][outside] == -1.0)
    np.testing.assert_array_equal(inputs["masked_image"][~outside], target[~outside])


def test_flip_moves_image_and_mask_together(prepared):
    folder, examples = prepared
    flipped = unflipped = 0
    dataset = make_dataset(folder, "train", 1, flip=True, shuffle=False, seed=3)
    for (inputs, target), example in zip(dataset.as_numpy_iterator(), examples["train"],
                                         strict=True):
        image = example["image"] / 127.5 - 1.0
        if np.allclose(target[0], image, atol=1e-6):
            unflipped += 1
            np.testing.assert_array_equal(inputs["mask"][0], example["mask"])
        else:
            flipped += 1
            np.testing.assert_allclose(target[0], image[:, ::-1], atol=1e-6)
            np.testing.assert_array_equal(inputs["mask"][0], example["mask"][:, ::-1])
    assert flipped > 0 and unflipped > 0


def test_deterministic_with_a_seed(prepared):
    folder, _ = prepared

    def first_epoch(seed):
        ds = make_dataset(folder, "train", 3, flip=True, shuffle=True, seed=seed)
        return np.concatenate([t for _, t in ds.as_numpy_iterator()])

    np.testing.assert_array_equal(first_epoch(5), first_epoch(5))
    assert not np.array_equal(first_epoch(5), first_epoch(6))
    repeated = make_dataset(folder, "validation", 3, repeat=True, shuffle=False)
    assert len(list(repeated.take(5))) == 5


@pytest.mark.multibackend
def test_model_fit_consumes_the_dataset(prepared):
    import keras

    folder, _ = prepared
    keras.utils.set_random_seed(0)
    masked = keras.Input((SIZE, SIZE, 3), name="masked_image")
    mask = keras.Input((SIZE, SIZE, 1), name="mask")
    x = keras.layers.Concatenate()([masked, mask])
    out = keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(x)
    model = keras.Model({"masked_image": masked, "mask": mask}, out)
    model.compile(optimizer="adam", loss="mae")
    train = make_dataset(folder, "train", 2, flip=True, seed=1)
    validation = make_dataset(folder, "validation", 2, shuffle=False)
    history = model.fit(train, validation_data=validation, epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["val_loss"]).all()

"""The packed (TensorFlow-free) training data: export, reading, batches, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_facehallu.data.packed import (
    PackedBatches,
    PackedDataError,
    PackedSplit,
    export_prepared,
    is_packed,
    make_packed_dataset,
    split_path,
    write_packed,
)
from tests.tiny_data import make_tiny_packed, make_tiny_prepared, tiny_examples


@pytest.fixture(scope="module")
def examples(faces_dir):
    return tiny_examples(faces_dir, 10)


@pytest.fixture(scope="module")
def raw_split(examples, tmp_path_factory):
    path = tmp_path_factory.mktemp("packed") / "train.npz"
    write_packed(path, examples, "train", codec="raw")
    return PackedSplit(path)


def test_raw_round_trip_is_exact_and_jpeg_is_close(examples, raw_split, tmp_path):
    images = np.stack([e["image"] for e in examples])
    masks = np.stack([e["mask"] for e in examples])
    np.testing.assert_array_equal(raw_split.images, images)
    np.testing.assert_array_equal(raw_split.masks, masks)
    assert raw_split.sources == [e["source"] for e in examples]
    assert raw_split.person_index.tolist() == list(range(10))

    write_packed(tmp_path / "train.npz", examples, "train", codec="jpeg", quality=85)
    jpeg = PackedSplit(tmp_path / "train.npz")
    np.testing.assert_array_equal(jpeg.masks, masks)
    mse = np.mean((jpeg.images.astype(float) - images) ** 2)
    assert 10 * np.log10(255**2 / mse) > 35  # dB


def test_batches_follow_the_model_conventions(raw_split):
    x, y = PackedBatches(raw_split, 4, shuffle=False)[0]
    assert x["masked_image"].shape == y.shape == (4, 128, 128, 3)
    assert x["mask"].shape == (4, 128, 128, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y, raw_split.images[:4] / 127.5 - 1.0, atol=1e-6)
    outside = x["mask"][..., 0] == 0
    assert np.all(x["masked_image"][outside] == -1.0)
    inside = ~outside
    np.testing.assert_array_equal(x["masked_image"][inside], y[inside])


def test_flips_move_image_and_mask_together(raw_split):
    flipped = PackedBatches(raw_split, 10, flip=True, shuffle=False, seed=3)
    index, flips = flipped.indices(0)
    assert 0 < flips.sum() < 10  # seed 3 flips some and keeps some
    x, y = flipped[0]
    plain_x, plain_y = PackedBatches(raw_split, 10, shuffle=False)[0]
    for k in range(10):
        want = (lambda a: a[:, ::-1]) if flips[k] else (lambda a: a)
        np.testing.assert_array_equal(y[k], want(plain_y[k]))
        np.testing.assert_array_equal(x["mask"][k], want(plain_x["mask"][k]))


def test_shuffle_is_a_seeded_permutation_per_pass_and_resumable(raw_split):
    stream = PackedBatches(raw_split, 3, shuffle=True, flip=True, seed=7, repeat=True,
                           drop_remainder=True)
    assert stream.batches_per_pass == 3 and stream.num_batches is None
    first = np.concatenate([stream.indices(i)[0] for i in range(3)])
    second = np.concatenate([stream.indices(i)[0] for i in range(3, 6)])
    assert len(set(first.tolist())) == 9 and not np.array_equal(first, second)
    again = PackedBatches(raw_split, 3, shuffle=True, flip=True, seed=7, repeat=True,
                          drop_remainder=True)
    resumed = PackedBatches(raw_split, 3, shuffle=True, flip=True, seed=7, repeat=True,
                            drop_remainder=True, start=4)
    for i in range(4):
        np.testing.assert_array_equal(resumed[i][1], again[4 + i][1])
    other = PackedBatches(raw_split, 3, shuffle=True, seed=8, repeat=True, drop_remainder=True)
    assert not np.array_equal(other.indices(0)[0], stream.indices(0)[0])


def test_finite_stream_keeps_the_remainder_unless_dropped(raw_split):
    assert [len(b[1]) for b in PackedBatches(raw_split, 4, shuffle=False)] == [4, 4, 2]
    assert len(list(PackedBatches(raw_split, 4, drop_remainder=True))) == 2
    with pytest.raises(IndexError):
        PackedBatches(raw_split, 4)[3]
    with pytest.raises(ValueError, match="fewer than one batch"):
        PackedBatches(raw_split, 11, drop_remainder=True)
    with pytest.raises(ValueError, match="batch_size"):
        PackedBatches(raw_split, 0)


def test_keras_dataset_wraps_the_batches(faces_dir, tmp_path):
    folder = make_tiny_packed(tmp_path / "packed", faces_dir, n_train=6, n_val=2)
    assert is_packed(folder) and not is_packed(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["splits"]["train"]["count"] == 6
    ds = make_packed_dataset(folder, "validation", 2, shuffle=False)
    assert ds.num_batches == len(ds) == 1 and ds.batches_per_pass == 1
    (x, y), = list(ds)
    assert y.shape == (2, 128, 128, 3)
    train = make_packed_dataset(folder, "train", 2, flip=True, repeat=True, drop_remainder=True)
    assert train.num_batches is None and train.batches_per_pass == 3


def test_export_keeps_the_split_and_matches_make_dataset(faces_dir, tmp_path):
    pytest.importorskip("tensorflow")
    from keras_facehallu.data.pipeline import make_dataset

    prepared = make_tiny_prepared(tmp_path / "prepared", faces_dir, n_train=6, n_val=3)
    manifest = export_prepared(prepared, tmp_path / "packed")
    assert {k: v["count"] for k, v in manifest["splits"].items()} == {"train": 6, "validation": 3}
    x, y = next(iter(make_dataset(prepared, "validation", 3, shuffle=False)))
    px, py = make_packed_dataset(tmp_path / "packed", "validation", 3, shuffle=False)[0]
    np.testing.assert_array_equal(np.asarray(x["mask"]), px["mask"])
    assert np.mean((np.asarray(y) - py) ** 2) < 4 * 10 ** (-35 / 10)  # PSNR > 35 dB on [-1, 1]
    with pytest.raises(ValueError, match="beside the prepared one"):
        export_prepared(prepared, prepared)


def test_splits_sharing_a_person_are_refused(examples, tmp_path):
    from keras_facehallu.data.packed import _check_person_split

    with pytest.raises(PackedDataError, match="share people"):
        _check_person_split(
            {"train": np.array([0, 1]), "validation": np.array([1, 2])}, ["a", "b", "c"], tmp_path
        )


def test_bad_files_name_the_file_and_the_problem(examples, tmp_path):
    with pytest.raises(FileNotFoundError, match="no packed split"):
        PackedSplit(tmp_path, "train")
    path = split_path(tmp_path, "train")
    write_packed(path, examples[:2], "train")
    with pytest.raises(PackedDataError, match="holds split 'train', expected 'validation'"):
        PackedSplit(path, "validation")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PackedDataError, match=f"{path}: not a readable .npz"):
        PackedSplit(path)
    np.savez(path, meta=np.frombuffer(b"{}", np.uint8), image_bytes=np.zeros(3, np.uint8),
             image_offsets=np.zeros(1), mask_bits=np.zeros((0, 2048), np.uint8),
             person_index=np.zeros(0, np.int32))
    with pytest.raises(PackedDataError, match="format None"):
        PackedSplit(path)
    broken = dict(examples[0], image=np.zeros((100, 128, 3), np.uint8))
    with pytest.raises(ValueError, match="example 1"):
        write_packed(path, [examples[0], broken], "train")
    with pytest.raises(ValueError, match="codec"):
        write_packed(path, examples, "train", codec="gif")

"""Baselines: OpenCV inpainting keeps the face exactly and fills the rest; the mean context."""

from __future__ import annotations

import numpy as np
import pytest

from keras_facehallu.baselines import MeanContext, inpaint_context, paste_face


@pytest.fixture
def faces(rng):
    images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    masks = np.zeros((2, 64, 64, 1), np.float32)
    masks[0, 16:48, 20:44] = 1
    masks[1, 10:40, 10:30] = 1
    return images, masks


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_inpainting_keeps_the_face_and_fills_the_rest(faces, method):
    images, masks = faces
    masked = images * masks.astype(np.uint8)
    out = inpaint_context(masked, masks, method=method)
    assert out.shape == images.shape and out.dtype == np.uint8
    face = masks[..., 0].astype(bool)
    np.testing.assert_array_equal(out[face], images[face])
    # the black context is filled with colours drawn from the face, not left black
    outside = out[~face]
    assert outside.mean() > 60
    # what lay outside the mask in the input does not matter
    np.testing.assert_array_equal(inpaint_context(images, masks, method=method), out)


def test_inpainting_radius_and_method_change_the_fill(faces):
    images, masks = faces
    telea = inpaint_context(images, masks, "telea", radius=3)
    assert not np.array_equal(telea, inpaint_context(images, masks, "ns", radius=3))
    assert not np.array_equal(telea, inpaint_context(images, masks, "telea", radius=9))


def test_inpainting_rejects_bad_inputs(faces):
    images, masks = faces
    with pytest.raises(ValueError, match="method: expected one of"):
        inpaint_context(images, masks, method="patchmatch")
    with pytest.raises(ValueError, match="expected uint8"):
        inpaint_context(images.astype(np.float32), masks)
    with pytest.raises(ValueError, match="masks: expected shape"):
        inpaint_context(images, masks[:, :32])
    with pytest.raises(ValueError, match="masks: expected values"):
        inpaint_context(images, masks * 0.5)
    with pytest.raises(ValueError, match="is empty"):
        inpaint_context(images, np.zeros_like(masks))
    with pytest.raises(ValueError, match="radius"):
        inpaint_context(images, masks, radius=0)


def test_mean_context_pastes_the_face_over_the_mean_image(faces, rng):
    images, masks = faces
    train = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    baseline = MeanContext.from_images(train)
    expected_mean = np.round(train.astype(np.float64).mean(axis=0)).astype(np.uint8)
    np.testing.assert_array_equal(baseline.mean_image, expected_mean)
    out = baseline(images, masks)
    face = masks[..., 0].astype(bool)
    np.testing.assert_array_equal(out[face], images[face])
    np.testing.assert_array_equal(out[~face], np.broadcast_to(expected_mean, images.shape)[~face])
    np.testing.assert_array_equal(out, paste_face(expected_mean, images, masks))
    with pytest.raises(ValueError, match="like the mean image"):
        baseline(images[:, :32, :32], masks[:, :32, :32])
    with pytest.raises(ValueError, match="mean_image"):
        MeanContext(np.zeros((64, 64)))


def test_mean_context_from_a_prepared_split_is_cached(tmp_path, rng):
    from keras_facehallu.data.records import shard_name, write_examples, write_manifest

    train = rng.integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    examples = [
        dict(image=im, mask=np.ones((128, 128, 1), np.uint8), landmarks=np.zeros((68, 2)),
             transform=np.eye(2, 3), person=f"p{i}", person_index=i, source=f"p{i}.jpg")
        for i, im in enumerate(train)
    ]
    folder = tmp_path / "prepared"
    name = shard_name("train", 0, 1)
    write_examples(folder / name, examples)
    write_manifest(folder, {"shards": {"train": [name], "validation": []}})
    cache = tmp_path / "cache"
    first = MeanContext.from_prepared(folder, cache_dir=cache)
    expected = np.round(train.astype(np.float64).mean(axis=0)).astype(np.uint8)
    np.testing.assert_array_equal(first.mean_image, expected)
    assert len(list(cache.glob("*.npz"))) == 1
    # a cache hit does not read the shards
    (folder / name).unlink()
    np.testing.assert_array_equal(
        MeanContext.from_prepared(folder, cache_dir=cache).mean_image, expected
    )
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        MeanContext.from_prepared(tmp_path, cache_dir=cache)

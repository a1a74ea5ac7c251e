"""prepare_face / prepare_faces end to end on real LFW photos and files made from them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from keras_facehallu.face import align, canonical
from keras_facehallu.face.io import load_image
from keras_facehallu.face.pipeline import FaceResult, prepare_face, prepare_faces


@pytest.fixture(scope="module")
def results(lfw_photos) -> list[FaceResult]:
    return prepare_faces(lfw_photos[:10])


@pytest.fixture(scope="module")
def photo(lfw_photos) -> np.ndarray:
    return load_image(lfw_photos[0])


def test_real_photos_are_aligned(results, lfw_photos):
    ok = [r for r in results if r.ok]
    assert len(ok) >= 9, [r.message for r in results if not r.ok]
    for result, path in zip(results, lfw_photos, strict=False):
        assert result.source == str(path)
    for r in ok:
        assert r.image.shape == (128, 128, 3) and r.image.dtype == np.uint8
        assert r.mask.shape == (128, 128, 1) and r.mask.dtype == np.uint8
        assert r.landmarks.shape == (68, 2) and r.transform.shape == (2, 3)
        assert 0.9 <= r.confidence <= 1.0 and r.num_faces >= 1


def test_eyes_at_canonical_points(results):
    expected = np.array(canonical.eye_points(128))
    for r in (r for r in results if r.ok):
        np.testing.assert_allclose(np.stack(align.eye_centres(r.landmarks)), expected, atol=1e-3)


def test_round_trip_into_the_photo(results, lfw_photos):
    for r, path in zip(results[:3], lfw_photos, strict=False):
        photo = load_image(path)
        inverse = align.invert_transform(r.transform)
        back = align.transform_points(align.transform_points(r.landmarks, inverse), r.transform)
        np.testing.assert_allclose(back, r.landmarks, atol=1e-3)
        restored = align.unwarp_image(r.image, r.transform, photo.shape[:2])
        face = align.unwarp_image(r.mask, r.transform, photo.shape[:2])[..., 0] > 0
        # the face region maps back onto the photo (only resampling blur remains)
        diff = np.abs(restored.astype(int) - photo)[face]
        assert diff.mean() < 12


def test_mask_covers_landmarks_and_blacks_out_the_rest(results):
    for r in (r for r in results if r.ok):
        outline = np.clip(np.round(r.landmarks[list(range(27))]).astype(int), 0, 127)
        assert all(r.mask[y, x, 0] == 1 for x, y in outline)
        inner = np.clip(np.round(r.landmarks[27:]).astype(int), 0, 127)
        assert all(r.mask[y, x, 0] == 1 for x, y in inner)
        assert r.masked_image[r.mask[..., 0] == 0].max() == 0
        inside = r.mask[..., 0] == 1
        np.testing.assert_array_equal(r.masked_image[inside], r.image[inside])
        assert 0.08 < r.mask.mean() < 0.45


def test_forehead_margin(lfw_photos, results):
    wide = prepare_face(lfw_photos[0], forehead_margin=0.25)
    assert wide.mask.sum() > results[0].mask.sum()
    assert np.all(wide.mask >= results[0].mask)


def test_custom_size_and_eye_points(lfw_photos):
    r = prepare_face(lfw_photos[0], size=64, left_eye=(0.35, 0.4), right_eye=(0.65, 0.4))
    assert r.image.shape == (64, 64, 3) and r.mask.shape == (64, 64, 1)
    np.testing.assert_allclose(np.stack(align.eye_centres(r.landmarks)),
                               [[22.4, 25.6], [41.6, 25.6]], atol=1e-3)


def test_no_face_is_a_result_not_an_exception(tmp_path):
    flat = tmp_path / "wall.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(flat)
    r = prepare_face(flat)
    assert not r.ok and r.reason == "no_face" and str(flat) in r.message
    assert prepare_face(flat, all_faces=True)[0].reason == "no_face"


def test_several_faces(photo):
    import cv2

    small = cv2.resize(photo, (150, 150), interpolation=cv2.INTER_AREA)
    both = np.zeros((250, 400, 3), np.uint8)
    both[:, :250] = photo
    both[50:200, 250:] = small
    largest = prepare_face(both)
    assert largest.ok and largest.num_faces >= 2 and largest.box[0] < 250
    every = prepare_face(both, all_faces=True)
    assert len(every) >= 2 and [r.face_index for r in every] == list(range(len(every)))
    assert any(r.ok and r.box[0] >= 250 for r in every)


def test_face_cut_by_border(photo):
    r = prepare_face(np.ascontiguousarray(photo[:, :135]))
    assert not r.ok and r.reason in ("face_cut_by_border", "no_face"), r.message
    r = prepare_face(np.ascontiguousarray(photo[:150]))
    assert not r.ok and r.reason == "face_cut_by_border", r.message
    assert "border" in r.message


def test_messy_files_in_one_batch(tmp_path, lfw_photos, photo):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    data = lfw_photos[1].read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    tiny = tmp_path / "tiny.jpg"
    Image.fromarray(photo).resize((24, 24)).save(tiny)
    gray = tmp_path / "gray.jpg"
    Image.fromarray(photo).convert("L").save(gray)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated 90° counter-clockwise; view by rotating clockwise
    Image.fromarray(np.ascontiguousarray(np.rot90(photo, k=1))).save(rotated, exif=exif)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(photo).convert("RGBA").save(rgba)
    items = [text, empty, truncated, tiny, lfw_photos[0], gray, rotated, rgba, photo]
    out = prepare_faces(items, max_pixels=1_000_000)
    reasons = [r.reason for r in out]
    assert reasons[:4] == ["not_an_image", "empty", "corrupt", "too_small"]
    for r, item in zip(out[:4], items, strict=False):
        assert str(item) in r.message
    assert all(r.ok for r in out[4:]), [r.message for r in out[4:]]
    upright = out[4]
    for r in out[5:]:
        # same face found at the same place, whatever the file's encoding or orientation
        np.testing.assert_allclose(r.landmarks, upright.landmarks, atol=3.0)
    assert prepare_face(lfw_photos[0], max_pixels=10_000).reason == "too_large"


def test_bad_arguments(lfw_photos):
    with pytest.raises(ValueError, match="border"):
        prepare_face(lfw_photos[0], border="wrap")
    with pytest.raises(TypeError, match="expected a path"):
        prepare_face(3.5)


def test_select_central_face(photo):
    import cv2

    small = cv2.resize(photo, (150, 150), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((250, 500, 3), np.uint8)
    canvas[:, :250] = photo  # large face, away from the centre
    canvas[50:200, 175:325] = small  # small face over the centre (249.5, 124.5)
    assert prepare_face(canvas).box[0] < 175
    central = prepare_face(canvas, select="central")
    assert central.ok and central.box[0] >= 175 and central.face_index > 0
    with pytest.raises(ValueError, match="select"):
        prepare_face(canvas, select="nearest")

"""Large photos: detection on a shrunk copy mapped back, landmarks and alignment at full
resolution, an antialiased warp for big faces, paste-back touching only the crop's part."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keras_facehallu.face import align
from keras_facehallu.face.detect import DETECT_MAX_SIDE, FaceDetector, shrink_for_detection
from keras_facehallu.face.io import load_image
from keras_facehallu.face.pipeline import memory_budget, prepare_face

UPSCALE = 8  # the 250x250 face becomes 2000x2000
OFFSET = (700, 400)  # (x, y) of the upscaled face in the canvas


@pytest.fixture(scope="module")
def small(lfw_photos):
    photo = load_image(lfw_photos[0])
    return photo, prepare_face(photo)


@pytest.fixture(scope="module")
def canvas(small):
    """A 4000x3000 photo (12 MP): the fixture face upscaled 8x, padded with a flat grey."""
    photo = small[0]
    big = cv2.resize(photo, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
    out = np.full((3000, 4000, 3), 90, np.uint8)
    x, y = OFFSET
    out[y : y + big.shape[0], x : x + big.shape[1]] = big
    return out


def _to_canvas(points):
    """Small-photo pixels -> canvas pixels (pixel centres onto pixel centres)."""
    return (np.asarray(points, np.float64) + 0.5) * UPSCALE - 0.5 + OFFSET


def _photo_points(result):
    return align.transform_points(result.landmarks, align.invert_transform(result.transform))


def test_shrink_for_detection_keeps_small_photos_and_the_scale():
    photo = np.zeros((1600, 900, 3), np.uint8)
    same, scale = shrink_for_detection(photo)
    assert same is photo and scale == (1.0, 1.0)
    small, (sx, sy) = shrink_for_detection(np.zeros((3000, 4000, 3), np.uint8))
    assert small.shape == (1200, 1600, 3) and small.dtype == np.uint8 and sx == sy == 2.5
    thin, (sx, sy) = shrink_for_detection(np.zeros((100, 8000, 3), np.uint8))
    assert thin.shape == (64, 5120, 3) and sx == sy == 1.5625
    full, scale = shrink_for_detection(np.zeros((3000, 4000, 3), np.uint8), None)
    assert full.shape == (3000, 4000, 3) and scale == (1.0, 1.0)
    with pytest.raises(ValueError, match="max_side"):
        FaceDetector(max_side=10)


def test_big_face_is_found_mapped_back_and_aligned(small, canvas):
    photo, expected = small
    assert expected.ok and max(canvas.shape) > DETECT_MAX_SIDE
    result = prepare_face(canvas)
    assert result.ok, result.message
    # the detector's box lands where the small photo's box goes in the canvas
    box = np.asarray(result.box)
    scaled = np.concatenate([_to_canvas(expected.box[:2]), np.asarray(expected.box[2:]) * UPSCALE])
    eye_distance = np.linalg.norm(np.subtract(*align.eye_centres(_to_canvas(_photo_points(
        expected)))))
    assert np.abs(box - scaled).max() < 0.25 * eye_distance, (box, scaled)
    # dlib's 68 points at full resolution match the small photo's, scaled
    error = np.linalg.norm(_photo_points(result) - _to_canvas(_photo_points(expected)), axis=1)
    assert error.mean() < 0.04 * eye_distance and error.max() < 0.10 * eye_distance, error
    # and the aligned crop is the same picture
    in_crop = np.linalg.norm(result.landmarks - expected.landmarks, axis=1)
    assert in_crop.mean() < 1.0 and in_crop.max() < 3.0, in_crop
    assert np.abs(result.image.astype(int) - expected.image).mean() < 6
    assert result.outside_fraction == pytest.approx(0.0)


def test_normal_photos_are_processed_exactly_as_before(lfw_photos):
    """Below DETECT_MAX_SIDE nothing is shrunk, and LFW's faces are aligned at scales >= 0.5,
    so the warp is the plain one: the same results as the full-size detector, bit for bit."""
    full_size = FaceDetector(max_side=None)
    for path in lfw_photos[:3]:
        now, before = prepare_face(path), prepare_face(path, detector=full_size)
        assert now.ok and before.ok
        assert now.box == before.box and now.confidence == before.confidence
        np.testing.assert_array_equal(now.transform, before.transform)
        np.testing.assert_array_equal(now.image, before.image)
        assert align.transform_scale(now.transform) >= align.ANTIALIAS_BELOW


def test_no_face_in_a_big_photo_says_it_was_shrunk():
    result = prepare_face(np.full((1800, 2400, 3), 128, np.uint8))
    assert not result.ok and result.reason == "no_face"
    assert "2400x1800" in result.message and "shrunk to 1600 px" in result.message


def test_warp_antialiases_when_shrinking_a_lot():
    """1-pixel stripes shrunk 10x: a plain bilinear warp picks single stripes (aliasing); the
    antialiased warp averages them to grey, as the eye sees them."""
    stripes = np.zeros((2000, 2000, 3), np.uint8)
    stripes[:, ::2] = 255
    transform = np.array([[0.1, 0.0, -36.0], [0.0, 0.1, -36.0]])  # 1280 px -> the 128 crop
    plain = align.warp_image(stripes, transform, antialias=False).astype(float)
    smooth = align.warp_image(stripes, transform).astype(float)
    assert np.abs(plain - 127.5).mean() > 50  # every 10th column: all white here
    assert np.abs(smooth - 127.5).max() < 3
    # a normal reduction (scale 0.5 and above) is the plain warp, bit for bit
    normal = np.array([[0.6, 0.0, -10.0], [0.0, 0.6, -10.0]])
    np.testing.assert_array_equal(
        align.warp_image(stripes, normal), align.warp_image(stripes, normal, antialias=False)
    )


def test_antialiased_warp_keeps_the_geometry():
    """A bright square ends up where the transform says, also through the shrunk copy."""
    photo = np.zeros((3000, 3000, 3), np.uint8)
    photo[1490:1510, 1290:1310] = 255  # centre (1299.5, 1499.5)
    angle = np.deg2rad(15.0)
    linear = 0.08 * np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    transform = np.hstack([linear, (np.array([64.0, 64.0]) - linear @ [1400.0, 1500.0])[:, None]])
    crop = align.warp_image(photo, transform, border="constant")[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:128, :128]
    centre = np.array([(xs * crop).sum(), (ys * crop).sum()]) / crop.sum()
    expected = align.transform_points(np.array([[1299.5, 1499.5]]), transform)[0]
    assert np.linalg.norm(centre - expected) < 0.3


def test_paste_back_only_changes_the_covered_part():
    from keras_facehallu.outputs import paste_into_photo

    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    linear = 0.25 * np.array([[np.cos(0.3), np.sin(0.3)], [-np.sin(0.3), np.cos(0.3)]])
    transform = np.hstack([linear, (np.array([64.0, 64.0]) - linear @ [800.0, 600.0])[:, None]])
    crop = np.full((128, 128, 3), 7, np.uint8)
    out = paste_into_photo(photo, crop, transform)
    x0, y0, x1, y1 = align.covered_box(transform, 128, photo.shape)
    outside = np.ones(photo.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], photo[outside])
    assert out[600, 800].tolist() == [7, 7, 7]
    # a crop that lies wholly outside the photo leaves it as it was
    away = transform.copy()
    away[:, 2] += 5000
    np.testing.assert_array_equal(paste_into_photo(photo, crop, away), photo)


def test_memory_budget_is_documented_and_bounded():
    assert memory_budget(250, 250) < 800 * 2**20
    assert memory_budget(6300, 6300) < 1300 * 2**20  # was 4.5 GB and more before

"""Alignment transform and face mask on synthetic landmarks (no detector needed)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_facehallu.face import align, canonical
from keras_facehallu.face.mask import apply_mask, face_mask, face_polygon


def _landmarks(rng, angle=0.3, scale=1.7, offset=(60.0, 40.0)) -> np.ndarray:
    """A plausible 68-point face in canonical-ish layout, rotated, scaled and moved."""
    t = np.linspace(np.pi * 0.95, np.pi * 0.05, 17)
    jaw = np.stack([64 - 30 * np.cos(t), 55 + 40 * np.sin(t)], axis=1)
    brows = np.stack([np.linspace(38, 90, 10), np.full(10, 45.0)], axis=1)
    inner = np.stack([rng.uniform(45, 83, 41), rng.uniform(50, 90, 41)], axis=1)
    points = np.concatenate([jaw, brows, inner])  # 17 + 10 + 41 = 68
    points[36:42] = [51.2, 53.76] + rng.normal(0, 2, (6, 2))
    points[36:42] -= points[36:42].mean(0) - [51.2, 53.76]
    points[42:48] = [76.8, 53.76] + rng.normal(0, 2, (6, 2))
    points[42:48] -= points[42:48].mean(0) - [76.8, 53.76]
    c, s = np.cos(angle), np.sin(angle)
    return (points @ (scale * np.array([[c, -s], [s, c]])).T + offset).astype(np.float32)


def test_eyes_land_on_canonical_points(rng):
    points = _landmarks(rng)
    for size in (128, 64):
        transform = align.alignment_transform(points, size)
        left, right = align.eye_centres(align.transform_points(points, transform))
        expected = canonical.eye_points(size)
        np.testing.assert_allclose(left, expected[0], atol=1e-4)
        np.testing.assert_allclose(right, expected[1], atol=1e-4)
    custom = align.alignment_transform(points, 100, (0.3, 0.5), (0.7, 0.5))
    left, right = align.eye_centres(align.transform_points(points, custom))
    np.testing.assert_allclose([left, right], [[30, 50], [70, 50]], atol=1e-4)


def test_transform_is_a_similarity(rng):
    transform = align.alignment_transform(_landmarks(rng))
    linear = transform[:, :2]
    np.testing.assert_allclose(linear @ linear.T, np.eye(2) * np.linalg.det(linear), atol=1e-9)
    assert np.linalg.det(linear) > 0  # no reflection


def test_point_round_trip(rng):
    points = _landmarks(rng)
    transform = align.alignment_transform(points)
    back = align.transform_points(
        align.transform_points(points, transform), align.invert_transform(transform)
    )
    np.testing.assert_allclose(back, points, atol=1e-4)


def test_image_round_trip_within_a_pixel(rng):
    """A bright dot in the photo goes to the crop and back within a pixel of where it was."""
    photo = np.zeros((250, 250, 3), np.uint8)
    points = _landmarks(rng, angle=-0.2, scale=1.1, offset=(50.0, 45.0))
    transform = align.alignment_transform(points)
    for dot in [(120.0, 110.0), (100.5, 140.25), (135.0, 95.0)]:
        photo[:] = 0
        x, y = int(dot[0]), int(dot[1])
        photo[y - 2:y + 3, x - 2:x + 3] = 255
        crop = align.warp_image(photo, transform, border="constant")
        back = align.unwarp_image(crop, transform, photo.shape[:2])
        weights = back[..., 0].astype(np.float64)
        ys, xs = np.mgrid[: back.shape[0], : back.shape[1]]
        centre = np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()
        assert np.linalg.norm(centre - [x, y]) < 1.0
        # and the crop shows the dot where the transform says it goes
        wc = crop[..., 0].astype(np.float64)
        yc, xc = np.mgrid[:128, :128]
        in_crop = np.array([(xc * wc).sum(), (yc * wc).sum()]) / wc.sum()
        expected = align.transform_points(np.array([[x, y]]), transform)[0]
        assert np.linalg.norm(in_crop - expected) < 1.0


def test_border_modes_and_outside_fraction():
    photo = np.full((100, 100, 3), 200, np.uint8)
    shift = np.array([[1.0, 0.0, 50.0], [0.0, 1.0, 0.0]])  # photo moved right: crop's left empty
    constant = align.warp_image(photo, shift, 128, border="constant")
    assert constant[:, :40].max() == 0 and constant[:99, 60:].min() == 200
    assert align.warp_image(photo, shift, 128, border="reflect").min() == 200
    assert align.outside_fraction(shift, photo.shape, 128) > 0.3
    with pytest.raises(ValueError, match="border"):
        align.warp_image(photo, shift, 128, border="wrap")


def test_bad_landmarks():
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        align.eye_centres(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="coincide"):
        align.similarity_transform((1, 1), (1, 1), (0, 0), (1, 0))


def test_mask_properties(rng):
    points = _landmarks(rng, angle=0.0, scale=1.0, offset=(0.0, 0.0))
    mask = face_mask(points, 128)
    assert mask.shape == (128, 128, 1) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    outline = np.round(face_polygon(points)).astype(int)
    assert all(mask[y, x, 0] == 1 for x, y in outline)
    image = rng.integers(1, 256, (128, 128, 3), dtype=np.uint8)
    masked = apply_mask(image, mask)
    assert masked[mask[..., 0] == 0].max() == 0
    np.testing.assert_array_equal(masked[mask[..., 0] == 1], image[mask[..., 0] == 1])
    bigger = face_mask(points, 128, forehead_margin=0.3)
    assert bigger.sum() > mask.sum() and np.all(bigger >= mask)
    with pytest.raises(ValueError, match="forehead_margin"):
        face_mask(points, 128, forehead_margin=-1)

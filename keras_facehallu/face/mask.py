"""The face mask: the inner face bounded by the 68 landmarks (jaw line and eyebrows).

The region is the convex hull of the polygon jaw 0–16 followed by the eyebrows 26…17 (reversed, so
the outline runs around the face), filled at the crop's resolution. ``forehead_margin`` (a fraction
of the brow-to-chin distance) lifts the eyebrow points towards the top of the head to keep some
forehead. The mask is uint8 ``{0, 1}`` of shape ``[size, size, 1]``; the masked image is the crop
with every pixel outside the mask set to black.

Example:
    >>> mask = face_mask(crop_landmarks, size=128)  # doctest: +SKIP
    >>> masked = apply_mask(crop, mask)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from keras_facehallu.face import canonical

OUTLINE = tuple(range(0, 17)) + tuple(range(26, 16, -1))
CHIN = 8


def face_polygon(landmarks: np.ndarray, forehead_margin: float = 0.0) -> np.ndarray:
    """The outline ``[27, 2]``: jaw 0–16 then eyebrows 26…17, brows lifted by the margin."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"landmarks: expected shape (68, 2), found {landmarks.shape}")
    if forehead_margin < 0:
        raise ValueError(f"forehead_margin: expected >= 0, found {forehead_margin}")
    outline = landmarks[list(OUTLINE)].copy()
    if forehead_margin > 0:
        brows = landmarks[17:27].mean(axis=0)
        up = brows - landmarks[CHIN]
        outline[17:] += forehead_margin * up  # outline[17:] are the ten eyebrow points
    return outline


def face_mask(
    landmarks: np.ndarray,
    size: int = canonical.CROP_SIZE,
    forehead_margin: float = 0.0,
) -> np.ndarray:
    """Binary face mask ``[size, size, 1]`` uint8 in ``{0, 1}`` from crop-frame landmarks.

    Args:
        landmarks: ``[68, 2]`` (x, y) in the crop's pixels.
        size: crop size.
        forehead_margin: lift of the eyebrow points as a fraction of the brow-to-chin distance.
    """
    import cv2

    outline = face_polygon(landmarks, forehead_margin)
    hull = cv2.convexHull(np.round(outline).astype(np.int32))
    mask = np.zeros((int(size), int(size)), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask[..., None]


def apply_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with every pixel outside ``mask`` (``[H, W, 1]``, {0, 1}) set to black (0)."""
    image = np.asarray(image)
    mask = np.asarray(mask)
    if mask.shape[:2] != image.shape[:2]:
        raise ValueError(f"mask: expected spatial shape {image.shape[:2]}, found {mask.shape[:2]}")
    if mask.ndim == 2:
        mask = mask[..., None]
    return np.where(mask > 0, image, np.zeros_like(image))

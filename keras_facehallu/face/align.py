"""Alignment about the eyes: a similarity transform into the canonical crop, and back.

The transform (rotation, uniform scale, translation; no shear) maps the two eye centres -- the means
of landmarks 36–41 and 42–47 -- exactly onto the canonical points of
:mod:`keras_facehallu.face.canonical`. It is kept as a 2×3 matrix ``T`` (original → crop:
``[x', y'] = T @ [x, y, 1]``), so a crop or crop coordinates map back into the photo with
:func:`invert_transform`, :func:`transform_points` and :func:`unwarp_image`.

Border handling: parts of the crop that fall outside the photo are filled by mirroring the photo
(``border="reflect"``, OpenCV's BORDER_REFLECT_101) by default, so the target image has no hard
black edges for the hallucination model to learn; ``"replicate"`` and ``"constant"`` (black) are
available. :func:`outside_fraction` reports how much of a crop came from outside the photo.

Large faces: bilinear sampling that shrinks by more than 2× skips pixels and aliases (jagged hair
and edges). When the transform's scale is below :data:`ANTIALIAS_BELOW` (0.5; LFW's 250×250
photos are aligned at 0.58–0.78 and are warped exactly as before), :func:`warp_image` first
shrinks only the part of the photo the crop covers by an integer factor with area averaging, then
warps that small copy; the photo itself is never copied or converted to float.

Example:
    >>> T = alignment_transform(landmarks)  # doctest: +SKIP
    >>> crop = warp_image(photo, T)  # doctest: +SKIP
    >>> back = unwarp_image(crop, T, photo.shape[:2])  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from keras_facehallu.face import canonical
from keras_facehallu.face.landmarks import EYE_ON_IMAGE_LEFT, EYE_ON_IMAGE_RIGHT

BORDERS = ("reflect", "replicate", "constant")
ANTIALIAS_BELOW = 0.5


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the eye on the image's left (points 36–41) and on its right (42–47)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"landmarks: expected shape (68, 2), found {landmarks.shape}")
    left = landmarks[list(EYE_ON_IMAGE_LEFT)].mean(axis=0)
    right = landmarks[list(EYE_ON_IMAGE_RIGHT)].mean(axis=0)
    return left, right


def similarity_transform(src_left, src_right, dst_left, dst_right) -> np.ndarray:
    """The 2×3 similarity transform mapping two source points exactly onto two target points."""
    src_left, src_right = np.asarray(src_left, np.float64), np.asarray(src_right, np.float64)
    dst_left, dst_right = np.asarray(dst_left, np.float64), np.asarray(dst_right, np.float64)
    src = complex(*(src_right - src_left))
    dst = complex(*(dst_right - dst_left))
    if abs(src) < 1e-6:
        raise ValueError(
            f"source points coincide ({src_left.tolist()}, {src_right.tolist()}); "
            "cannot build a similarity transform"
        )
    z = dst / src  # scale * exp(i * angle)
    linear = np.array([[z.real, -z.imag], [z.imag, z.real]])
    offset = dst_left - linear @ src_left
    return np.concatenate([linear, offset[:, None]], axis=1)


def alignment_transform(
    landmarks: np.ndarray,
    size: int = canonical.CROP_SIZE,
    left_eye=canonical.LEFT_EYE,
    right_eye=canonical.RIGHT_EYE,
) -> np.ndarray:
    """The 2×3 transform (photo → ``size``×``size`` crop) putting the eyes at the canonical points.

    Args:
        landmarks: ``[68, 2]`` landmarks in the photo.
        size: crop size in pixels.
        left_eye, right_eye: canonical eye centres as fractions of ``size``.
    """
    dst_left, dst_right = canonical.eye_points(size, left_eye, right_eye)
    src_left, src_right = eye_centres(landmarks)
    return similarity_transform(src_left, src_right, dst_left, dst_right)


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """The inverse of a 2×3 affine transform."""
    transform = np.asarray(transform, np.float64)
    full = np.vstack([transform, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Applies a 2×3 transform to ``[N, 2]`` points (same dtype as float64)."""
    points = np.asarray(points, np.float64)
    transform = np.asarray(transform, np.float64)
    return points @ transform[:, :2].T + transform[:, 2]


def _border(border: str):
    import cv2

    modes = {
        "reflect": cv2.BORDER_REFLECT_101,
        "replicate": cv2.BORDER_REPLICATE,
        "constant": cv2.BORDER_CONSTANT,
    }
    if border not in modes:
        raise ValueError(f"border: expected one of {BORDERS}, found {border!r}")
    return modes[border]


def transform_scale(transform: np.ndarray) -> float:
    """The uniform scale of a 2×3 similarity transform (crop pixels per photo pixel)."""
    linear = np.asarray(transform, np.float64)[:, :2]
    return float(np.sqrt(abs(np.linalg.det(linear))))


def covered_box(
    transform: np.ndarray, size: int, image_shape: tuple[int, int], margin: int = 2
) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of the photo a ``size``×``size`` crop covers, plus
    ``margin`` pixels, clipped to the photo (empty, ``x1 <= x0`` or ``y1 <= y0``, when the crop
    lies outside it). Work that touches only the crop's pixels of a large photo is done there.

    Example:
        >>> covered_box(np.array([[1.0, 0, -10], [0, 1.0, -20]]), 128, (250, 250), margin=0)
        (9, 19, 138, 148)
    """
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64) - 0.5
    footprint = transform_points(corners, invert_transform(transform))
    height, width = image_shape[:2]
    x0, y0 = (int(v) - margin for v in np.floor(footprint.min(axis=0)))
    x1, y1 = (int(v) + margin for v in np.ceil(footprint.max(axis=0)))
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def _whole_blocks(start: int, stop: int, factor: int, limit: int) -> tuple[int, int]:
    """``[start, stop)`` grown to a multiple of ``factor`` pixels inside ``[0, limit)`` where the
    photo is wide enough, so area averaging works on whole ``factor``-pixel blocks."""
    need = -(-(stop - start) // factor) * factor
    if start + need <= limit:
        return start, start + need
    return max(0, limit - need), limit


def _shrink_covered_part(image: np.ndarray, transform: np.ndarray, size: int):
    """The part of ``image`` that the crop covers, shrunk by an integer factor with area averaging
    so that the remaining warp scales by about 1, and the transform from that copy to the crop."""
    import cv2

    factor = int(1.0 / transform_scale(transform) + 1e-6)
    x0, y0, x1, y1 = covered_box(transform, size, image.shape, margin=2 * factor + 2)
    if x1 - x0 < 1 or y1 - y0 < 1:  # the crop lies wholly outside the photo
        return image, transform
    x0, x1 = _whole_blocks(x0, x1, factor, image.shape[1])
    y0, y1 = _whole_blocks(y0, y1, factor, image.shape[0])
    part = image[y0:y1, x0:x1]
    new_w, new_h = max(1, round((x1 - x0) / factor)), max(1, round((y1 - y0) / factor))
    small = cv2.resize(part, (new_w, new_h), interpolation=cv2.INTER_AREA)
    small = small.reshape(new_h, new_w, *image.shape[2:])
    ax, ay = (x1 - x0) / new_w, (y1 - y0) / new_h  # photo pixels per pixel of the copy
    to_photo = np.array([[ax, 0.0, x0 + 0.5 * ax - 0.5], [0.0, ay, y0 + 0.5 * ay - 0.5]])
    transform = np.asarray(transform, np.float64)
    linear = transform[:, :2] @ to_photo[:, :2]
    offset = transform[:, :2] @ to_photo[:, 2] + transform[:, 2]
    return small, np.concatenate([linear, offset[:, None]], axis=1)


def warp_image(
    image: np.ndarray,
    transform: np.ndarray,
    size: int = canonical.CROP_SIZE,
    border: str = "reflect",
    antialias: bool = True,
) -> np.ndarray:
    """Warps a photo into the ``size``×``size`` crop (bilinear; ``border`` as in the module doc).

    With ``antialias`` (default), a transform that shrinks by more than 2× (scale below
    :data:`ANTIALIAS_BELOW`) first area-averages the covered part of the photo (module doc).
    """
    import cv2

    transform = np.asarray(transform, np.float64)
    if antialias and transform_scale(transform) < ANTIALIAS_BELOW:
        image, transform = _shrink_covered_part(image, transform, int(size))
    out = cv2.warpAffine(
        np.ascontiguousarray(image),
        transform,
        (int(size), int(size)),
        flags=cv2.INTER_LINEAR,
        borderMode=_border(border),
        borderValue=0,
    )
    return out.reshape(int(size), int(size), *image.shape[2:])


def unwarp_image(
    crop: np.ndarray,
    transform: np.ndarray,
    shape: tuple[int, int],
    border: str = "constant",
) -> np.ndarray:
    """Maps a crop back into the photo's frame (``shape`` = photo ``(H, W)``; black outside)."""
    import cv2

    height, width = int(shape[0]), int(shape[1])
    out = cv2.warpAffine(
        np.ascontiguousarray(crop),
        np.asarray(transform, np.float64),
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=_border(border),
        borderValue=0,
    )
    return out.reshape(height, width, *crop.shape[2:])


def outside_fraction(
    transform: np.ndarray, image_shape: tuple[int, int], size: int = canonical.CROP_SIZE
) -> float:
    """Fraction of the crop's pixels whose source lies outside the photo."""
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), axis=-1).reshape(-1, 2)
    src = transform_points(grid, invert_transform(transform))
    height, width = image_shape[:2]
    inside = (src[:, 0] >= -0.5) & (src[:, 0] <= width - 0.5)
    inside &= (src[:, 1] >= -0.5) & (src[:, 1] <= height - 0.5)
    return float(1.0 - inside.mean())

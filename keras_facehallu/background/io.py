"""Reading the images and masks given to background replacement (paths or arrays).

Example:
    >>> import numpy as np
    >>> rgb, notes = as_rgb_uint8(np.zeros((8, 8), np.uint8), "background")
    >>> rgb.shape, notes
    ((8, 8, 3), ['background: grayscale image converted to RGB'])
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_facehallu.face.io import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    check_image_size,
    decode_image,
)
from keras_facehallu.preprocessing import to_uint8


def _pixels(img) -> np.ndarray:
    """L, RGB and RGBA kept as they are (masks are read from grey files), the rest made RGB(A)."""
    if img.mode in ("P", "LA", "PA"):
        img = img.convert("RGBA")
    elif img.mode not in ("L", "RGB", "RGBA", "1"):
        img = img.convert("RGB")
    return np.array(img.convert("L") if img.mode == "1" else img)


def _read(path: str | os.PathLike, what: str, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    path = Path(path)
    try:
        return decode_image(path, _pixels, f"{what} ({path})", max_pixels)
    except ImageLoadError as exc:
        if exc.reason == "missing":
            raise FileNotFoundError(f"{what}: {path} does not exist or is not a file") from None
        if exc.reason in ("too_large", "too_small"):
            raise
        raise ValueError(
            f"{what}: cannot read {path} as an image (expected PNG/JPEG/...): {exc}"
        ) from None


def _check_array_size(array: np.ndarray, what: str, max_pixels: int | None) -> None:
    if array.ndim >= 2:
        check_image_size(array.shape[1], array.shape[0], what, max_pixels)


def as_rgb_uint8(
    image, what: str, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, list[str]]:
    """A path or array as uint8 RGB [H, W, 3], with notes on any conversion made.

    Grayscale ([H, W] or [H, W, 1]) is repeated into 3 channels; RGBA drops its alpha channel
    (the picture is used as it is, without compositing). Float arrays are taken to be in the
    package's [-1, 1] range.

    Args:
        image: path, or uint8 / float array.
        what: the argument's name, used in notes and errors.
        max_pixels: refuse larger images (a file's size is read from its header, before
            decoding); the same limit as ``facehallu``'s photos. ``None``: no limit.

    Raises:
        FileNotFoundError, ValueError: naming ``what``, the file and what was found
            (:class:`~keras_facehallu.face.io.ImageLoadError`, reason ``too_large``, above the
            pixel limit or for a decompression bomb).
    """
    notes = []
    source = ""
    if isinstance(image, (str, os.PathLike)):
        source = f" ({image})"
        image = _read(image, what, max_pixels)
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:  # a batch of one, e.g. model.hallucinate(...)
        array = array[0]
    _check_array_size(array, f"{what}{source}", max_pixels)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if array.size and (np.nanmin(array) < -1.01 or np.nanmax(array) > 1.01):
            raise ValueError(
                f"{what}{source}: float images must be in [-1, 1], found values in "
                f"[{float(np.nanmin(array)):.3g}, {float(np.nanmax(array)):.3g}]"
            )
        array = to_uint8(array)
    elif array.dtype != np.uint8:
        raise ValueError(
            f"{what}{source}: expected uint8 (0..255) or float ([-1, 1]) pixels, found "
            f"{array.dtype}"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        notes.append(f"{what}: grayscale image converted to RGB")
        array = np.repeat(array[..., None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        notes.append(f"{what}: RGBA image, alpha channel dropped")
        array = array[..., :3]
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise ValueError(
            f"{what}{source}: expected an image [H, W, 3] (RGB), [H, W] (grey) or [H, W, 4] "
            f"(RGBA), found shape {list(array.shape)}"
        )
    return np.ascontiguousarray(array), notes


def as_mask(mask, what: str, height: int, width: int) -> np.ndarray:
    """A path or array as a bool mask [H, W] (nonzero / > 0.5 = inside); size must match.

    Accepts [H, W], [H, W, 1] or [1, H, W, 1]; uint8 masks are 0/1 or 0/255.
    """
    source = ""
    if isinstance(mask, (str, os.PathLike)):
        source = f" ({mask})"
        mask = _read(mask, what)
        if mask.ndim == 3:  # RGB(A) mask file: any channel set
            mask = mask[..., :3].max(axis=2)
    array = np.asarray(mask)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.shape != (height, width):
        raise ValueError(
            f"{what}{source}: expected a mask of shape [{height}, {width}] (or [{height}, "
            f"{width}, 1]) to match the image, found {list(np.shape(mask))}"
        )
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return array > 0.5
    return array > (127 if array.max(initial=0) > 1 else 0)

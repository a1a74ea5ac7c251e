"""Safe image loading: a path, bytes or a numpy array in, an RGB uint8 array out.

Real photos are messy. :func:`load_image` reads the header first and refuses images above
``max_pixels`` before decoding them, applies the EXIF orientation, and turns grayscale, 16-bit,
RGBA/LA (composited on black), palette, CMYK and bilevel images into RGB uint8. Anything it cannot
read (a missing, empty, truncated or corrupt file, or a file that is not an image) raises
:class:`ImageLoadError`, whose message names the file and whose ``reason`` is a short code the
dataset builder records as the skip reason.

Example:
    >>> from keras_facehallu.face.io import load_image
    >>> rgb = load_image("photo.jpg")  # doctest: +SKIP
    >>> rgb.shape, rgb.dtype  # doctest: +SKIP
    ((250, 250, 3), dtype('uint8'))
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np

DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MIN_SIZE = 32


class ImageLoadError(ValueError):
    """An image could not be loaded.

    Args:
        message: what went wrong, naming the file.
        reason: short code: ``"missing"``, ``"empty"``, ``"not_an_image"``, ``"corrupt"``,
            ``"too_large"``, ``"too_small"`` or ``"bad_array"``.
        source: the file (or ``"<array>"``/``"<bytes>"``) that failed.
    """

    def __init__(self, message: str, reason: str, source: str):
        super().__init__(message)
        self.reason = reason
        self.source = source


def describe_source(source) -> str:
    """A short name for an image source, used in messages and skip reports."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return "<array>"


def check_image_size(
    width: int, height: int, name: str, max_pixels: int | None, min_size: int = 1
) -> None:
    """Refuses an image by its header's size: above ``max_pixels`` or a side below ``min_size``.

    Every command that reads user images uses it (``facehallu``, the background command), so one
    limit (:data:`DEFAULT_MAX_PIXELS`) holds everywhere.

    Raises:
        ImageLoadError: reason ``"too_large"`` or ``"too_small"``, naming ``name``.
    """
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{max_pixels:,} (max_pixels); refused before decoding",
            "too_large",
            name,
        )
    if min(width, height) < min_size:
        raise ImageLoadError(
            f"{name}: image is {width}x{height}, expected at least {min_size} pixels on each side "
            "(min_size)",
            "too_small",
            name,
        )


def _pil_to_rgb(image, name: str) -> np.ndarray:
    from PIL import Image

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grayscale: rescale to 8 bits instead of clipping.
        values = np.asarray(image).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        gray = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    # an RGB image is read as it is: convert() would first copy it (4 bytes a pixel)
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ImageLoadError(f"{name}: could not convert mode {mode!r} to RGB", "corrupt", name)
    return np.ascontiguousarray(rgb)


def decode_image(source, convert, name: str | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, min_size: int = 1):
    """Opens a path or encoded bytes safely and returns ``convert(image)`` of the decoded image.

    The one place that reads image files: a missing or empty file, a file that is not an image,
    one above ``max_pixels`` (checked from the header, before decoding), a decompression bomb and a
    truncated or corrupt file all raise :class:`ImageLoadError`; the EXIF orientation is applied.

    Args:
        source: a path or encoded bytes.
        convert: called with the loaded ``PIL.Image`` (still open); its result is returned.
        name: the name used in errors (default: the path, or ``"<bytes>"``).
        max_pixels: refuse larger images; ``None`` for no limit.
        min_size: refuse images whose shorter side is below this.

    Raises:
        ImageLoadError: naming ``name``, with a ``reason`` code.

    Example:
        >>> decode_image("mask.png", np.asarray)  # doctest: +SKIP
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = describe_source(source) if name is None else name

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(f"{name}: no such file", "missing", name)
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{name}: file is empty (0 bytes)", "empty", name)
        opener = path
    else:
        if len(source) == 0:
            raise ImageLoadError(f"{name}: no bytes given (empty)", "empty", name)
        opener = io.BytesIO(bytes(source))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(opener)  # reads the header only
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(f"{name}: {exc} (too_large)", "too_large", name) from None
        except UnidentifiedImageError:
            raise ImageLoadError(
                f"{name}: not an image (no decoder recognises its contents)", "not_an_image", name
            ) from None
        except OSError as exc:
            raise ImageLoadError(f"{name}: cannot be read: {exc}", "corrupt", name) from None
        with image:
            check_image_size(image.width, image.height, name, max_pixels, min_size)
            try:
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # no copy when upright
                return convert(image)
            except ImageLoadError:
                raise
            except (OSError, ValueError, SyntaxError) as exc:
                raise ImageLoadError(
                    f"{name}: truncated or corrupt {image.format or 'image'} file: {exc}",
                    "corrupt",
                    name,
                ) from None


def _array_to_rgb(array: np.ndarray, name: str, max_pixels: int | None, min_size: int):
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageLoadError(
            f"{name}: expected an array of shape [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], "
            f"found {array.shape}",
            "bad_array",
            name,
        )
    check_image_size(array.shape[1], array.shape[0], name, max_pixels, min_size)
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.uint16:
        pixels = np.round(array.astype(np.float64) / 257.0).astype(np.uint8)
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
            raise ImageLoadError(
                f"{name}: float images must be finite and in [0, 1], found range "
                f"[{np.nanmin(array):.3g}, {np.nanmax(array):.3g}]",
                "bad_array",
                name,
            )
        pixels = np.round(array * 255.0).astype(np.uint8)
    else:
        raise ImageLoadError(
            f"{name}: expected dtype uint8, uint16, bool or float in [0, 1], found {array.dtype}",
            "bad_array",
            name,
        )
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    elif pixels.shape[-1] == 4:
        alpha = pixels[..., 3:4].astype(np.float32) / 255.0
        pixels = np.round(pixels[..., :3].astype(np.float32) * alpha).astype(np.uint8)
    return np.ascontiguousarray(pixels)


def load_image(
    source,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_size: int = DEFAULT_MIN_SIZE,
) -> np.ndarray:
    """Loads an image as RGB uint8 ``[H, W, 3]``.

    Args:
        source: a path, encoded bytes, or a numpy array (uint8, uint16, bool, or float in [0, 1];
            ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA).
        max_pixels: refuse images with more pixels than this (checked from the header, before
            decoding); ``None`` for no limit.
        min_size: refuse images whose shorter side is below this.

    Returns:
        A C-contiguous uint8 array ``[H, W, 3]``, EXIF orientation applied.

    Raises:
        ImageLoadError: naming the file, with a ``reason`` code.

    Example:
        >>> load_image(np.zeros((64, 64), np.uint8)).shape
        (64, 64, 3)
    """
    name = describe_source(source)
    if isinstance(source, (str, os.PathLike, bytes, bytearray)):
        return decode_image(source, lambda image: _pil_to_rgb(image, name), name, max_pixels,
                            min_size)
    if hasattr(source, "numpy") and not isinstance(source, np.ndarray):
        source = source.numpy()
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, name, max_pixels, min_size)
    raise TypeError(
        f"image: expected a path, bytes or a numpy array, found {type(source).__name__}"
    )

"""Laplacian-pyramid blending (Burt & Adelson, 1983) and cover-resizing of a background.

Each image is split into band-pass levels (a Laplacian pyramid); the mask is smoothed into a
Gaussian pyramid; every band is blended with the mask at its own scale, and the pyramid is
collapsed. Coarse bands are mixed over a wide region and fine bands over a narrow one, so the seam
shows neither a hard edge nor a ghosted halo.

Example:
    >>> import numpy as np
    >>> fg = np.full((64, 64, 3), 200, np.uint8); bg = np.zeros((64, 64, 3), np.uint8)
    >>> mask = np.zeros((64, 64), np.float32); mask[:, :32] = 1
    >>> out = laplacian_blend(fg, bg, mask, levels=4)
    >>> int(out[32, 2, 0]), int(out[32, 61, 0])
    (200, 0)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

MIN_TOP_SIZE = 4  # the coarsest pyramid level keeps at least this many pixels per side


def max_levels(height: int, width: int) -> int:
    """Most pyramid levels (base included) whose coarsest level is >= ``MIN_TOP_SIZE`` px."""
    return max(1, int(math.floor(math.log2(max(1, min(height, width)) / MIN_TOP_SIZE))) + 1)


def _gaussian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    return pyramid


def _expand(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    up = cv2.pyrUp(image, dstsize=(like.shape[1], like.shape[0]))
    return up.reshape(like.shape)


def _laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    gaussian = _gaussian_pyramid(image, levels)
    bands = [g - _expand(gaussian[i + 1], g) for i, g in enumerate(gaussian[:-1])]
    return bands + [gaussian[-1]]


def _collapse(bands: list[np.ndarray]) -> np.ndarray:
    image = bands[-1]
    for band in reversed(bands[:-1]):
        image = _expand(image, band) + band
    return image


def laplacian_blend(
    foreground: np.ndarray, background: np.ndarray, mask: np.ndarray, levels: int = 6
) -> np.ndarray:
    """Blends ``foreground`` over ``background`` where ``mask`` is 1.

    Args:
        foreground: [H, W, C] uint8 or float.
        background: same shape and dtype as ``foreground``.
        mask: [H, W] or [H, W, 1], float in [0, 1] (soft) or bool; 1 = foreground.
        levels: pyramid levels including the full-size one; clamped to ``[1, max_levels(H, W)]``
            (1 = plain alpha blending).

    Returns:
        The composite, same shape and dtype as ``foreground`` (uint8 rounded and clipped; float
        values where the mask is exactly 0 or 1 equal the inputs up to float rounding).

    Example:
        >>> out = laplacian_blend(face, new_background, soft_mask, levels=5)  # doctest: +SKIP
    """
    foreground = np.asarray(foreground)
    background = np.asarray(background)
    if foreground.shape != background.shape or foreground.ndim != 3:
        raise ValueError(
            f"foreground and background: expected the same [H, W, C] shape, found "
            f"{list(foreground.shape)} and {list(background.shape)}"
        )
    if foreground.dtype != background.dtype:
        raise ValueError(
            f"foreground and background: expected the same dtype, found {foreground.dtype} and "
            f"{background.dtype}"
        )
    height, width = foreground.shape[:2]
    mask = np.asarray(mask, np.float32)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.shape != (height, width):
        raise ValueError(
            f"mask: expected shape [{height}, {width}] or [{height}, {width}, 1] to match the "
            f"image, found {list(np.shape(mask))}"
        )
    levels = int(min(max(1, int(levels)), max_levels(height, width)))
    bg = background.astype(np.float32)
    # Collapsing is linear: sum_k up(w_k fg_k + (1 - w_k) bg_k) = bg + collapse(w_k (fg - bg)_k),
    # so one pyramid, of the difference, is enough.
    diff_bands = _laplacian_pyramid(foreground.astype(np.float32) - bg, levels)
    weights = _gaussian_pyramid(np.clip(mask, 0.0, 1.0), levels)
    if foreground.shape[2] > 1:
        weights = [w[..., None] for w in weights]
    out = bg + _collapse([w * d for w, d in zip(weights, diff_bands, strict=True)])
    if foreground.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(foreground.dtype)


def hard_paste(foreground: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The baseline: foreground pixels where ``mask > 0.5``, background elsewhere."""
    mask = np.asarray(mask)
    if mask.ndim == 2:
        mask = mask[..., None]
    return np.where(mask > 0.5, foreground, background)


def cover_resize(background: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scales ``background`` to cover ``height``×``width`` (aspect kept), then centre-crops it.

    Example:
        >>> cover_resize(np.zeros((100, 400, 3), np.uint8), 128, 128).shape
        (128, 128, 3)
    """
    background = np.asarray(background)
    bg_h, bg_w = background.shape[:2]
    scale = max(height / bg_h, width / bg_w)
    new_h = max(height, int(math.ceil(bg_h * scale - 1e-6)))
    new_w = max(width, int(math.ceil(bg_w * scale - 1e-6)))
    if (new_h, new_w) != (bg_h, bg_w):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        background = cv2.resize(background, (new_w, new_h), interpolation=interp)
        background = background.reshape(new_h, new_w, *np.shape(background)[2:])
    top = (new_h - height) // 2
    left = (new_w - width) // 2
    return np.ascontiguousarray(background[top : top + height, left : left + width])

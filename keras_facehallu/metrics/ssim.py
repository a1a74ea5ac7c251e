"""Mean SSIM on the whole image and on the hallucinated region alone.

A copied-in face inflates the whole-image score (its pixels are identical to the original), so the
evaluation reports both: SSIM averaged over the whole image, and the same SSIM map averaged only
over the hallucinated pixels (``1 - mask``).

The SSIM map is scikit-image's ``structural_similarity`` computed for a whole batch at once:
per-channel maps, averaged over channels, the border of half a window cropped before averaging.
The defaults follow Wang et al. (2004) -- Gaussian window, sigma 1.5, population covariance --
which in scikit-image is ``structural_similarity(a, b, channel_axis=-1, data_range=255,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.

Example:
    >>> import numpy as np
    >>> from keras_facehallu.metrics.ssim import ssim
    >>> a = np.zeros((2, 32, 32, 3), np.uint8)
    >>> float(ssim(a, a).mean())
    1.0
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from keras_facehallu.preprocessing import binary_mask

K1 = 0.01
K2 = 0.03
SIGMA = 1.5
TRUNCATE = 3.5


def _as_batch(images, name: str) -> np.ndarray:
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(
            f"{name}: expected images of shape [N, H, W, C] or [H, W, C], found {array.shape}"
        )
    return array


def _check_mask(mask, shape, name: str = "mask") -> np.ndarray:
    mask = _as_batch(mask, name)
    if mask.shape[:3] != tuple(shape[:3]) or mask.shape[3] != 1:
        raise ValueError(
            f"{name}: expected shape {tuple(shape[:3]) + (1,)} (the images' N, H, W and one "
            f"channel), found {mask.shape}"
        )
    return binary_mask(mask, name).astype(np.float64)


def window_size(gaussian_weights: bool = True, sigma: float = SIGMA) -> int:
    """Side of the SSIM window: 7 for the uniform window, ``2*int(3.5*sigma+0.5)+1`` (11) else."""
    if gaussian_weights:
        return 2 * int(TRUNCATE * sigma + 0.5) + 1
    return 7


def ssim_map(
    images_a,
    images_b,
    data_range: float = 255.0,
    gaussian_weights: bool = True,
    sigma: float = SIGMA,
    use_sample_covariance: bool = False,
) -> np.ndarray:
    """Per-pixel SSIM, averaged over channels, uncropped: [N, H, W] float64.

    Args:
        images_a, images_b: [N, H, W, C] (or [H, W, C]) arrays of the same shape.
        data_range: the images' value range (255 for uint8, 2 for [-1, 1]).
        gaussian_weights: Gaussian window (True) or 7×7 uniform window (False).
        sigma: the Gaussian's standard deviation.
        use_sample_covariance: normalise covariances by N-1 (scikit-image's default) or N.
    """
    a = _as_batch(images_a, "images_a").astype(np.float64)
    b = _as_batch(images_b, "images_b").astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images_a and images_b differ in shape: {a.shape} vs {b.shape}")
    win = window_size(gaussian_weights, sigma)
    if min(a.shape[1:3]) < win:
        raise ValueError(f"images of {a.shape[1:3]} are smaller than the {win}×{win} SSIM window")
    if gaussian_weights:
        def smooth(x):
            return ndimage.gaussian_filter(
                x, sigma=(0, sigma, sigma, 0), truncate=TRUNCATE, mode="reflect"
            )
    else:
        def smooth(x):
            return ndimage.uniform_filter(x, size=(1, win, win, 1), mode="reflect")
    count = win * win
    cov_norm = count / (count - 1) if use_sample_covariance else 1.0
    ux, uy = smooth(a), smooth(b)
    vx = cov_norm * (smooth(a * a) - ux * ux)
    vy = cov_norm * (smooth(b * b) - uy * uy)
    vxy = cov_norm * (smooth(a * b) - ux * uy)
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(axis=-1)


def ssim(
    images_a,
    images_b,
    mask=None,
    data_range: float = 255.0,
    gaussian_weights: bool = True,
    sigma: float = SIGMA,
    use_sample_covariance: bool = False,
) -> np.ndarray:
    """Mean SSIM per image, [N] float64; with ``mask``, over the hallucinated pixels only.

    Args:
        images_a, images_b: [N, H, W, C] images (e.g. originals and outputs, uint8).
        mask: optional [N, H, W, 1] face mask in {0, 1}; when given, the SSIM map is averaged over
            ``1 - mask`` (the hallucinated region). An image with no such pixel gives NaN.
        data_range, gaussian_weights, sigma, use_sample_covariance: see :func:`ssim_map`.

    Example:
        >>> import numpy as np
        >>> a = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
        >>> round(float(ssim(a, a)[0]), 6)
        1.0
    """
    s = ssim_map(images_a, images_b, data_range, gaussian_weights, sigma, use_sample_covariance)
    pad = (window_size(gaussian_weights, sigma) - 1) // 2
    inner = (slice(None), slice(pad, s.shape[1] - pad), slice(pad, s.shape[2] - pad))
    if mask is None:
        return s[inner].mean(axis=(1, 2))
    weights = 1.0 - _check_mask(mask, np.shape(_as_batch(images_a, "images_a")))[..., 0]
    weights = weights[inner]
    total = weights.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (s[inner] * weights).sum(axis=(1, 2)) / total


def mean_ssim(images_a, images_b, mask=None, **kwargs) -> float:
    """The mean of :func:`ssim` over the batch (images with no hallucinated pixel skipped)."""
    return float(np.nanmean(ssim(images_a, images_b, mask=mask, **kwargs)))

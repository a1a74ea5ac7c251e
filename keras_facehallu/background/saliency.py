"""Gradient saliency: the region inside the outermost strong contour of the gradient magnitude.

A hallucinated image has a sharp subject (face, hair, clothes) over a smoother background. The
saliency region is found in four steps:

1. Gradient magnitude of the lightly blurred grey image (Scharr operator).
2. Threshold: Otsu's threshold of the magnitude, and never below the ``percentile``-th percentile
   (default 75), so that a flat image with sensor noise does not turn into edges everywhere.
3. The strong-edge map is closed (kernel ~2% of the image's shorter side) to join broken outlines;
   on each image side, the border between the outermost edges reaching it is drawn, so that a
   subject cut by the frame (shoulders at the bottom) has a closed outline. The external contours
   (``cv2.findContours`` with ``RETR_EXTERNAL``) are filled; contours enclosing less than
   ``min_area`` of the image are dropped.
4. The filled region is eroded by the blur/gradient support (about 1 px per side), because the
   gradient of a step edge is one pixel wide on both sides of it.

When the filled region covers more than ``max_area`` of the image (a cluttered photo whose edges
reach everywhere), it carries no information about the subject; :func:`saliency_mask` then returns
an empty mask and :func:`saliency_details` says why.

Example:
    >>> import numpy as np, cv2
    >>> image = np.full((64, 64, 3), 200, np.uint8)
    >>> _ = cv2.circle(image, (32, 32), 15, (20, 40, 60), -1)
    >>> int(saliency_mask(image).sum()) > 600
    True
"""

from __future__ import annotations

import cv2
import numpy as np


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Scharr gradient magnitude (float32 [H, W]) of a uint8 RGB or grey image, blurred first."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    grey = cv2.GaussianBlur(grey.astype(np.float32), (3, 3), 0)
    gx = cv2.Scharr(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Scharr(grey, cv2.CV_32F, 0, 1)
    return cv2.magnitude(gx, gy)


def _close_along_border(edges: np.ndarray, depth: int) -> None:
    """Bridges each image side between the outermost edges that reach it (in place).

    A subject cut by the frame (a person's shoulders at the bottom) has an outline that runs into
    the border; drawing the border between its two ends closes the contour.
    """
    sides = (
        (edges[:depth].any(axis=0), lambda a, b: edges[0, a : b + 1]),
        (edges[-depth:].any(axis=0), lambda a, b: edges[-1, a : b + 1]),
        (edges[:, :depth].any(axis=1), lambda a, b: edges[a : b + 1, 0]),
        (edges[:, -depth:].any(axis=1), lambda a, b: edges[a : b + 1, -1]),
    )
    for hits, segment in sides:
        where = np.flatnonzero(hits)
        if where.size >= 2:
            segment(where[0], where[-1])[:] = 1


def saliency_details(
    image: np.ndarray,
    *,
    percentile: float = 75.0,
    min_area: float = 0.002,
    max_area: float = 0.95,
) -> tuple[np.ndarray, dict]:
    """Like :func:`saliency_mask`, and also returns what was found.

    Returns:
        ``(mask, details)``: mask bool [H, W]; details has ``threshold`` (gradient units),
        ``area`` (fraction of the image in the filled region before the ``max_area`` check),
        ``contours`` (how many were filled) and ``discarded`` (a reason, or ``None``).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"image: expected uint8 RGB [H, W, 3] or grey [H, W], found {image.dtype} "
            f"{list(image.shape)}"
        )
    height, width = image.shape[:2]
    magnitude = gradient_magnitude(image)
    peak = float(magnitude.max())
    details = {"threshold": None, "area": 0.0, "contours": 0, "discarded": None}
    if peak <= 1e-3:
        details["discarded"] = "the image is flat: no gradient"
        return np.zeros((height, width), bool), details
    scaled = np.clip(magnitude * (255.0 / peak), 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    level = max(float(otsu), float(np.percentile(scaled, percentile)))
    details["threshold"] = level * peak / 255.0
    edges = (scaled > level).astype(np.uint8)
    k = max(3, int(round(0.02 * min(height, width))) | 1)
    edges = cv2.morphologyEx(edges, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    _close_along_border(edges, depth=max(2, k // 2))
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    keep = [c for c in contours if cv2.contourArea(c) >= min_area * height * width]
    filled = np.zeros((height, width), np.uint8)
    if keep:
        cv2.drawContours(filled, keep, -1, 1, thickness=cv2.FILLED)
        filled = cv2.erode(filled, np.ones((3, 3), np.uint8))
    details["contours"] = len(keep)
    details["area"] = float(filled.mean())
    if not keep:
        details["discarded"] = "no strong closed contour"
    elif details["area"] > max_area:
        details["discarded"] = (
            f"the filled region covers {details['area']:.0%} of the image (> max_area "
            f"{max_area:.0%}): edges everywhere, no distinct subject"
        )
        filled[:] = 0
    return filled.astype(bool), details


def saliency_mask(
    image: np.ndarray,
    *,
    percentile: float = 75.0,
    min_area: float = 0.002,
    max_area: float = 0.95,
) -> np.ndarray:
    """The filled region inside the outermost strong gradient contours.

    Args:
        image: uint8 RGB [H, W, 3] (or grey [H, W]), any size.
        percentile: lower bound of the edge threshold, as a percentile of the gradient magnitude
            (the threshold is ``max(Otsu, percentile)``).
        min_area: contours enclosing less than this fraction of the image are dropped.
        max_area: a region covering more than this fraction is uninformative: empty mask.

    Returns:
        bool [H, W].

    Example:
        >>> mask = saliency_mask(image)  # doctest: +SKIP
    """
    return saliency_details(image, percentile=percentile, min_area=min_area, max_area=max_area)[0]

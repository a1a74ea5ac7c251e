"""Image sheets: rows of equally sized images with optional column labels, as one uint8 array.

Example:
    >>> import numpy as np

from keras_facehallu import preprocessing
    >>> tile = np.zeros((8, 8, 3), np.uint8)
    >>> image_grid([[tile, tile], [tile, tile]], labels=["a", "b"]).shape[1]
    22
"""

from __future__ import annotations

import numpy as np

from keras_facehallu import preprocessing


def to_uint8(images) -> np.ndarray:
    """Images in [-1, 1] (float) or 0..255 (uint8) → uint8; masks [H,W,1] become gray RGB."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = preprocessing.to_uint8(images)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def image_grid(rows, labels=None, pad: int = 2, label_height: int = 14) -> np.ndarray:
    """Lays out ``rows`` (lists of HxWx3 images, all the same size) on a white sheet.

    Args:
        rows: list of rows; each row a list of images (uint8, or float in [-1, 1]).
        labels: optional column titles, drawn above the first row.
        pad: white pixels between tiles.
        label_height: height of the title strip when ``labels`` is given.
    """
    rows = [[to_uint8(im) for im in row] for row in rows]
    if not rows or not rows[0]:
        raise ValueError("image_grid: expected at least one row with one image")
    h, w = rows[0][0].shape[:2]
    n_cols = max(len(r) for r in rows)
    top = label_height if labels else 0
    sheet = np.full(
        (top + len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8
    )
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            if im.shape[:2] != (h, w):
                raise ValueError(
                    f"image_grid: tile ({r}, {c}) is {im.shape[:2]}, expected {(h, w)}"
                )
            y, x = top + pad + r * (h + pad), pad + c * (w + pad)
            sheet[y : y + h, x : x + w] = im
    if labels:
        from PIL import Image, ImageDraw

        pil = Image.fromarray(sheet)
        draw = ImageDraw.Draw(pil)
        for c, text in enumerate(labels[:n_cols]):
            draw.text((pad + c * (w + pad) + 2, 1), str(text), fill=(0, 0, 0))
        sheet = np.asarray(pil)
    return sheet

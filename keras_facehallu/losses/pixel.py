"""L_pixel: the pixel loss of the paper (l1; l2 for the ablation), on pixels mapped to [0, 1]."""

from __future__ import annotations

from keras import ops

PIXEL_KINDS = ("l1", "l2")


def pixel_loss(y_true, y_pred, kind: str = "l1", mask=None):
    """Mean absolute (l1) or squared (l2) error between two images in [-1, 1], on a [0, 1] scale.

    Both images are mapped to [0, 1] first, as in the paper, so an l1 loss of 0.1 means pixels are
    off by 10 % of the full range on average.

    Args:
        y_true: target images, [N, H, W, C] in [-1, 1].
        y_pred: predicted images, same shape.
        kind: ``"l1"`` (the paper) or ``"l2"`` (the ablation).
        mask: optional weights broadcastable to [N, H, W, 1], e.g. ``1 - face_mask`` to measure the
            hallucinated region alone. The loss is then the mean over the weighted pixels only.

    Returns:
        A scalar tensor.

    Example:
        >>> import numpy as np
        >>> a, b = np.zeros((1, 2, 2, 3), "float32"), np.ones((1, 2, 2, 3), "float32")
        >>> float(pixel_loss(a, b))  # 0 and 1 in [-1, 1] are 0.5 and 1.0 in [0, 1]
        0.5
    """
    if kind not in PIXEL_KINDS:
        raise ValueError(f"pixel_loss: kind must be one of {PIXEL_KINDS}, found {kind!r}")
    y_true = ops.convert_to_tensor(y_true, "float32")
    y_pred = ops.convert_to_tensor(y_pred, "float32")
    diff = (y_true - y_pred) * 0.5  # [-1, 1] -> [0, 1] scale
    err = ops.abs(diff) if kind == "l1" else ops.square(diff)
    if mask is None:
        return ops.mean(err)
    weights = ops.broadcast_to(ops.convert_to_tensor(mask, "float32"), ops.shape(err))
    return ops.sum(err * weights) / ops.maximum(ops.sum(weights), 1e-6)

"""L_pc: the perceptual loss, a distance between feature maps of a frozen backbone."""

from __future__ import annotations

from keras import ops


def _as_list(features):
    if isinstance(features, dict):
        return [features[k] for k in sorted(features)]
    if isinstance(features, (list, tuple)):
        return list(features)
    return [features]


def feature_distance(features_true, features_pred, distance: str = "l1"):
    """Mean over layers of the mean l1 (or l2) difference between two lists of feature maps.

    Args:
        features_true: a feature map, or a list/dict of them, for the target images.
        features_pred: the same structure for the predicted images.
        distance: ``"l1"`` (mean absolute difference) or ``"l2"`` (mean squared difference).

    Example:
        >>> import numpy as np
        >>> float(feature_distance([np.zeros(4)], [np.ones(4)]))
        1.0
    """
    if distance not in ("l1", "l2"):
        raise ValueError(f"feature_distance: distance must be 'l1' or 'l2', found {distance!r}")
    true, pred = _as_list(features_true), _as_list(features_pred)
    if len(true) != len(pred) or not true:
        raise ValueError(
            f"feature_distance: expected two equally long, non-empty feature lists, "
            f"found {len(true)} and {len(pred)}"
        )
    total = 0.0
    for a, b in zip(true, pred, strict=True):
        diff = ops.convert_to_tensor(a, "float32") - ops.convert_to_tensor(b, "float32")
        total = total + ops.mean(ops.abs(diff) if distance == "l1" else ops.square(diff))
    return total / len(true)


def perceptual_loss(network, y_true, y_pred, distance: str = "l1"):
    """L_pc: ``feature_distance(network(y_true), network(y_pred))``.

    The target's features are computed without gradient. Images are passed as they come
    (in [-1, 1]); the network is expected to do its own preprocessing and resizing, as the models of
    ``keras_facehallu.nets.get_perceptual_network`` do.

    Args:
        network: a frozen ``keras.Model`` or any callable, images -> feature map or list of them.
        y_true: target images [N, H, W, 3] in [-1, 1].
        y_pred: predicted images, same shape.
        distance: ``"l1"`` or ``"l2"``.

    Example:
        >>> import keras, numpy as np
        >>> net = keras.layers.Conv2D(2, 3)  # a stand-in for a real backbone
        >>> x = np.zeros((1, 8, 8, 3), "float32")
        >>> float(perceptual_loss(net, x, x))
        0.0
    """
    features_true = [ops.stop_gradient(f) for f in _as_list(network(y_true))]
    return feature_distance(features_true, network(y_pred), distance)

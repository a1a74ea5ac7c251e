"""L_id: the identity loss, 1 - cosine similarity of face-recognition embeddings."""

from __future__ import annotations

from keras import ops


def cosine_identity_loss(embeddings_true, embeddings_pred):
    """Mean over the batch of ``1 - cos(e_true, e_pred)``; embeddings need not be normalised.

    Args:
        embeddings_true: [N, D] embeddings of the target images.
        embeddings_pred: [N, D] embeddings of the predicted images.

    Example:
        >>> float(cosine_identity_loss([[1.0, 0.0]], [[0.0, 2.0]]))
        1.0
    """
    a = ops.convert_to_tensor(embeddings_true, "float32")
    b = ops.convert_to_tensor(embeddings_pred, "float32")
    a = a / ops.maximum(ops.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / ops.maximum(ops.norm(b, axis=-1, keepdims=True), 1e-12)
    return ops.mean(1.0 - ops.sum(a * b, axis=-1))


def identity_loss(network, y_true, y_pred):
    """L_id: ``cosine_identity_loss(network(y_true), network(y_pred))``.

    The target's embedding is computed without gradient.

    Args:
        network: a frozen face-recognition ``keras.Model`` or callable, images -> [N, D], e.g.
            ``keras_facehallu.nets.get_identity_network("dlib")`` (canonical 128×128 in [-1, 1]).
        y_true: target images in [-1, 1].
        y_pred: predicted images, same shape.

    Example:
        >>> import numpy as np
        >>> net = lambda x: x.reshape(len(x), -1)  # a stand-in for a real face network
        >>> x = np.ones((2, 4, 4, 3), "float32")
        >>> round(float(identity_loss(net, x, x)), 6)
        0.0
    """
    return cosine_identity_loss(ops.stop_gradient(network(y_true)), network(y_pred))

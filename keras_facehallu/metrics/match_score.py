"""Identity preservation: mean match score and verification rate from face descriptors.

The match score of a pair is the cosine similarity of the face-recognition descriptors of the
original and the hallucinated image (the paper used a ResNet-50; this project uses the port of
dlib's face-recognition ResNet, :func:`keras_facehallu.nets.dlib_resnet.face_descriptors`, on the
canonical 128×128 crops). The verification rate is the fraction of pairs whose descriptors lie
closer than dlib's usual Euclidean threshold of 0.6 (on dlib's raw, unnormalised descriptors).

Example:
    >>> import numpy as np
    >>> d = np.random.default_rng(0).normal(size=(4, 128))
    >>> float(match_scores(d, d).mean())
    1.0
"""

from __future__ import annotations

import numpy as np

DLIB_THRESHOLD = 0.6


def _pair(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"descriptors: expected two [N, D] arrays, found {a.shape} and {b.shape}")
    return a, b


def match_scores(descriptors_a, descriptors_b) -> np.ndarray:
    """Cosine similarity of each pair of descriptors: [N] in [-1, 1]."""
    a, b = _pair(descriptors_a, descriptors_b)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)


def verification_rate(descriptors_a, descriptors_b, threshold: float = DLIB_THRESHOLD) -> float:
    """Fraction of pairs with Euclidean descriptor distance below ``threshold`` (dlib: 0.6)."""
    a, b = _pair(descriptors_a, descriptors_b)
    return float(np.mean(np.linalg.norm(a - b, axis=1) < threshold))


def face_descriptors(images_uint8, batch_size: int = 32) -> np.ndarray:
    """dlib-ResNet descriptors [N, 128] of canonical 128×128 uint8 crops (the dlib port)."""
    from keras_facehallu.nets.dlib_resnet import face_descriptors as describe

    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images: expected uint8 [N, 128, 128, 3] canonical crops, "
            f"found {images.dtype} {images.shape}"
        )
    out = [describe(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(out, axis=0) if out else np.zeros((0, 128))

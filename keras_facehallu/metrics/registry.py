"""The evaluation's metrics by name: column title, direction, and the function computing it.

Every metric takes an :class:`EvalBatch` (originals, outputs and masks as uint8 / {0,1} numpy)
and returns a float, or raises :class:`MetricUnavailable` with the reason (then the table prints
"unavailable"). Heavy networks (FID Inception, dlib ResNet, PieAPP) are built once per
:class:`EvalContext` and reused for every method in an evaluation.

Example:
    >>> from keras_facehallu.metrics.registry import get_metric, list_metrics
    >>> get_metric("ssim").title
    'SSIM'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from keras_facehallu.metrics import fid as fid_lib
from keras_facehallu.metrics import kid as kid_lib
from keras_facehallu.metrics import match_score as match_lib
from keras_facehallu.metrics import ssim as ssim_lib


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (missing weights or network); the message says why."""


@dataclasses.dataclass
class EvalBatch:
    """One method's outputs on the evaluation images.

    Args:
        originals: uint8 [N, 128, 128, 3] real images.
        outputs: uint8 [N, 128, 128, 3] the method's images.
        masks: float32/uint8 [N, 128, 128, 1] face masks in {0, 1}.
    """

    originals: np.ndarray
    outputs: np.ndarray
    masks: np.ndarray


class EvalContext:
    """Caches shared across methods: real-image features, descriptors, loaded networks.

    Args:
        real_data_hash: the data part of the FID statistics' cache key (see ``fid``).
        stats_cache_dir: where real features are cached (default ``fid.statistics_cache_dir()``).
        pieapp_weights: explicit PieAPP weight file, or None for the registered asset.
        download: whether networks may download their weights.
        kid_subsets: number of KID subsets.
        seed: seed of KID's subset sampling.
    """

    def __init__(self, real_data_hash=None, stats_cache_dir=None, pieapp_weights=None,
                 download: bool = True, kid_subsets: int = 100, seed: int = 0):
        self.real_data_hash = real_data_hash
        self.stats_cache_dir = stats_cache_dir
        self.pieapp_weights = pieapp_weights
        self.download = download
        self.kid_subsets = kid_subsets
        self.seed = seed
        self._memo: dict = {}
        self.kid_std: dict = {}  # method key -> KID's standard deviation over subsets

    def memo(self, key, compute):
        if key not in self._memo:
            try:
                self._memo[key] = ("ok", compute())
            except MetricUnavailable as exc:
                self._memo[key] = ("unavailable", str(exc))
        status, value = self._memo[key]
        if status == "unavailable":
            raise MetricUnavailable(value)
        return value

    # --- FID / KID features ---
    def fid_features(self, images: np.ndarray) -> np.ndarray:
        try:
            from keras_facehallu.nets.fid_inception import fid_features
        except ImportError as exc:
            raise MetricUnavailable(f"FID network missing: {exc}") from None
        from keras_facehallu.assets import AssetError

        try:
            return np.asarray(fid_features(images), dtype=np.float64)
        except AssetError as exc:
            raise MetricUnavailable(f"FID weights missing: {exc}") from None

    def detector_hash(self) -> str:
        """The FID detector's identity for the cache key: its weight file's sha256."""
        from keras_facehallu.assets import ASSETS

        return ASSETS["fid_inception"].sha256

    def real_features(self, originals: np.ndarray) -> np.ndarray:
        def compute():
            data_hash = self.real_data_hash or fid_lib.hash_images(originals)
            return fid_lib.cached_features(
                data_hash, self.detector_hash(), lambda: self.fid_features(originals),
                self.stats_cache_dir,
            )

        return self.memo(("real_features", id(originals)), compute)

    # --- descriptors ---
    def descriptors(self, images: np.ndarray, key) -> np.ndarray:
        def compute():
            from keras_facehallu.assets import AssetError

            try:
                return match_lib.face_descriptors(images)
            except ImportError as exc:
                raise MetricUnavailable(f"face-recognition network missing: {exc}") from None
            except AssetError as exc:
                raise MetricUnavailable(f"face-recognition weights missing: {exc}") from None

        return self.memo(("descriptors", key), compute)

    # --- PieAPP ---
    def pieapp(self):
        def compute():
            from keras_facehallu.metrics.pieapp import PieAPP, PieAPPUnavailable

            try:
                return PieAPP(self.pieapp_weights, download=self.download)
            except PieAPPUnavailable as exc:
                raise MetricUnavailable(str(exc)) from None
            except ImportError as exc:
                raise MetricUnavailable(f"PieAPP weight reader missing: {exc}") from None

        return self.memo("pieapp", compute)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A named metric: ``fn(batch, context, key) -> float``; ``key`` names the method's outputs."""

    name: str
    title: str
    higher_is_better: bool
    fn: Callable
    description: str = ""


def _ssim(batch, ctx, key):
    return ssim_lib.mean_ssim(batch.originals, batch.outputs)


def _ssim_hallucinated(batch, ctx, key):
    return ssim_lib.mean_ssim(batch.originals, batch.outputs, mask=batch.masks)


def _match(batch, ctx, key):
    a = ctx.descriptors(batch.originals, "originals")
    b = ctx.descriptors(batch.outputs, key)
    return float(match_lib.match_scores(a, b).mean())


def _verification(batch, ctx, key):
    a = ctx.descriptors(batch.originals, "originals")
    b = ctx.descriptors(batch.outputs, key)
    return match_lib.verification_rate(a, b)


def fake_features(batch, ctx, key):
    """The FID detector's features of ``batch.outputs``, computed once per method ``key``."""
    return ctx.memo(("fake_features", key), lambda: ctx.fid_features(batch.outputs))


def _fid(batch, ctx, key):
    return fid_lib.fid_from_features(ctx.real_features(batch.originals),
                                     fake_features(batch, ctx, key))


def _kid(batch, ctx, key):
    mean, std = kid_lib.kernel_inception_distance(
        ctx.real_features(batch.originals), fake_features(batch, ctx, key),
        num_subsets=ctx.kid_subsets, seed=ctx.seed,
    )
    ctx.kid_std[key] = std
    return mean


def _pieapp(batch, ctx, key):
    return float(np.mean(ctx.pieapp().score(batch.outputs, batch.originals)))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("match_score", "match score", True, _match,
               "mean cosine similarity of dlib-ResNet descriptors, original vs output"),
        Metric("ssim", "SSIM", True, _ssim, "mean SSIM over the whole image"),
        Metric("fid", "FID", False, _fid, "Fréchet Inception Distance to the originals"),
        Metric("pieapp", "perceptual error (PieAPP)", False, _pieapp,
               "PieAPP v0.1 error of the output against the original"),
        Metric("verification_rate", "verification rate", True, _verification,
               "fraction of pairs with dlib descriptor distance < 0.6"),
        Metric("ssim_hallucinated", "SSIM (hallucinated region)", True, _ssim_hallucinated,
               "mean SSIM over the pixels outside the face mask"),
        Metric("kid", "KID", False, _kid, "unbiased MMD² of Inception features, cubic kernel"),
    )
}

#: The paper's Table 6 columns, then this project's extra columns.
TABLE6_METRICS = ("match_score", "ssim", "fid", "pieapp")
EXTRA_METRICS = ("verification_rate", "ssim_hallucinated", "kid")


def list_metrics() -> tuple[str, ...]:
    """All metric names, Table 6 columns first."""
    return tuple(METRICS)


def get_metric(name: str) -> Metric:
    """The :class:`Metric` called ``name``."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(METRICS)}") from None

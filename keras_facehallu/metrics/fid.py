"""Fréchet Inception Distance from features, and an on-disk cache of real-image statistics.

FID = |mu_r - mu_g|² + Tr(S_r + S_g - 2 (S_r S_g)^½) on pool3 features of NVIDIA's FID
Inception-v3 (:func:`keras_facehallu.nets.fid_inception.fid_features`). :func:`frechet_distance`
is the reference formula with ``scipy.linalg.sqrtm``; :func:`fid_from_features` gets the same trace
exactly from the features by a Gram-matrix SVD or a symmetric eigen-decomposition, because
``sqrtm`` of a 2048×2048 matrix takes minutes on a small CPU (the routes are tested equal).

The real images' features are cached as ``.npz`` files (no pickle) under a key hashed from what
produced them: the data (the image bytes, or a prepared folder's ``manifest.json`` plus the split
and the image limit) and the detector (the weight file's sha256). Change either and the key
changes.

Example:
    >>> import numpy as np
    >>> from keras_facehallu.metrics.fid import feature_statistics, frechet_distance
    >>> f = np.random.default_rng(0).normal(size=(500, 8))
    >>> round(frechet_distance(*feature_statistics(f), *feature_statistics(f)), 6)
    0.0
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from scipy import linalg

from keras_facehallu.atomic import atomic_path


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (N-1 normalised, like the reference) of [N, D] features."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features: expected [N, D] with N >= 2, found shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
        mu1, mu2: [D] means.
        sigma1, sigma2: [D, D] covariances.
        eps: added to the diagonals when the product is singular (as in pytorch-fid).

    Returns:
        A float >= 0 (tiny negative round-off is clipped to 0).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"sqrtm gave a complex result, max imaginary part {np.abs(covmean.imag).max():.3g}"
            )
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return float(max(value, 0.0))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via ``eigh``."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(real_features, fake_features, method: str = "auto") -> float:
    """Tr((S_r S_g)^½) of the two feature sets' covariances, without ``sqrtm``.

    The eigenvalues of S_r S_g are real and >= 0 (it is similar to S_r^½ S_g S_r^½), so the trace
    of its square root is exact by two routes, both far faster than ``sqrtm`` at D = 2048:

    - ``"gram"``: S = X^T X / (n-1) for centred X, and the non-zero eigenvalues of S_r S_g are the
      squared singular values of X_r X_g^T / sqrt((n_r-1)(n_g-1)), an n_r × n_g matrix: the trace
      is its nuclear norm. Used when there are fewer images than feature dimensions.
    - ``"eigh"``: the eigenvalues of S_r^½ S_g S_r^½ (symmetric), S_r^½ by ``eigh``.

    Args:
        real_features, fake_features: [N, D] and [M, D].
        method: ``"gram"``, ``"eigh"`` or ``"auto"`` (gram when min(N, M) <= D).
    """
    x = np.asarray(real_features, np.float64)
    y = np.asarray(fake_features, np.float64)
    if method == "auto":
        method = "gram" if min(len(x), len(y)) <= x.shape[1] else "eigh"
    if method == "gram":
        xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
        cross = (xc @ yc.T) / np.sqrt((len(x) - 1) * (len(y) - 1))
        return float(np.linalg.svd(cross, compute_uv=False).sum())
    if method == "eigh":
        root = _psd_sqrt(np.cov(x, rowvar=False))
        inner = root @ np.cov(y, rowvar=False) @ root
        return float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum())
    raise ValueError(f"method: expected 'auto', 'gram' or 'eigh', found {method!r}")


def fid_from_features(real_features, fake_features, method: str = "auto") -> float:
    """FID between two [N, D] feature sets.

    Args:
        real_features, fake_features: [N, D] and [M, D] features.
        method: ``"sqrtm"`` (:func:`frechet_distance` on the statistics, scipy's ``sqrtm`` -- the
            reference formula, minutes at D = 2048 on a small CPU) or a route of
            :func:`trace_sqrt_product` (``"auto"``, ``"gram"``, ``"eigh"``; equal to it up to
            round-off, tested).
    """
    mu1, sigma1 = feature_statistics(real_features)
    mu2, sigma2 = feature_statistics(fake_features)
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature sizes differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    if method == "sqrtm":
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    trace_sqrt = trace_sqrt_product(real_features, fake_features, method)
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(value, 0.0))


def bootstrap_fid(real_features, fake_features: dict, resamples: int = 200, seed: int = 0,
                  progress: bool = False) -> dict:
    """FID of each method on ``resamples`` bootstrap resamples of the images, paired.

    Each resample draws N image indices with replacement and uses the same indices for the real
    features and for every method's, so differences between methods are compared on the same
    images (a paired bootstrap: it shows whether one method's lead survives resampling).

    Args:
        real_features: [N, D] features of the originals.
        fake_features: method name -> [N, D] features of its outputs, row i for image i.
        resamples: number of resamples.
        seed: seed of the index draws.
        progress: show a tqdm progress bar (one step per resample).

    Returns:
        method name -> [resamples] array of FIDs.

    Example:
        >>> f = np.random.default_rng(0).normal(size=(50, 8))
        >>> runs = bootstrap_fid(f, {"same": f, "shifted": f + 1.0}, resamples=20)
        >>> bool((runs["same"] < runs["shifted"]).all())
        True
    """
    from tqdm.auto import tqdm

    real = np.asarray(real_features, np.float64)
    fakes = {name: np.asarray(f, np.float64) for name, f in fake_features.items()}
    for name, f in fakes.items():
        if f.shape != real.shape:
            raise ValueError(
                f"bootstrap_fid: {name!r} has features of shape {f.shape}, the originals "
                f"{real.shape}; the bootstrap pairs image i of both"
            )
    if resamples < 1:
        raise ValueError(f"bootstrap_fid: resamples must be >= 1, found {resamples}")
    rng = np.random.default_rng(seed)
    out = {name: np.empty(resamples) for name in fakes}
    for b in tqdm(range(resamples), desc="FID bootstrap", unit="resample", disable=not progress):
        idx = rng.integers(0, len(real), len(real))
        for name, f in fakes.items():
            out[name][b] = fid_from_features(real[idx], f[idx])
    return out


def hash_images(images) -> str:
    """sha256 of a uint8 image array's shape, dtype and bytes: the data part of a cache key."""
    array = np.ascontiguousarray(images)
    digest = hashlib.sha256(f"{array.shape}|{array.dtype.str}|".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def hash_prepared_split(folder, split: str, limit: int | None = None) -> str:
    """sha256 of a prepared folder's ``manifest.json``, the split name and the image limit."""
    manifest = Path(folder) / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: prepared folder has no manifest.json")
    digest = hashlib.sha256(manifest.read_bytes())
    digest.update(f"|split={split}|limit={limit}".encode())
    return digest.hexdigest()


def statistics_cache_dir() -> Path:
    """``$KERAS_HOME/facehallu/fid_stats`` (``~/.keras`` when ``KERAS_HOME`` is unset)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "facehallu" / "fid_stats"


def statistics_key(data_hash: str, detector_hash: str) -> str:
    """Cache key: sha256 over the data hash and the detector's hash."""
    if not data_hash or not detector_hash:
        raise ValueError("statistics_key needs both a data hash and a detector hash")
    return hashlib.sha256(f"data={data_hash}|detector={detector_hash}".encode()).hexdigest()


def cached_features(data_hash: str, detector_hash: str, compute, cache_dir=None) -> np.ndarray:
    """The real images' [N, D] features, from the cache or from ``compute()`` (then cached).

    Features rather than only (mu, sigma) are cached, because KID needs the features themselves.

    Args:
        data_hash: from :func:`hash_images` or :func:`hash_prepared_split`.
        detector_hash: the detector's identity, e.g. its weight file's sha256.
        compute: a no-argument callable returning [N, D] features; called on a cache miss.
        cache_dir: default :func:`statistics_cache_dir`.

    Example:
        >>> import numpy as np, tempfile
        >>> f = cached_features("d", "x", lambda: np.ones((3, 2)), tempfile.mkdtemp())
    """
    folder = Path(cache_dir) if cache_dir is not None else statistics_cache_dir()
    path = folder / f"{statistics_key(data_hash, detector_hash)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return data["features"]
    features = np.asarray(compute(), dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"compute() returned shape {features.shape}, expected [N, D]")
    folder.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"data": data_hash, "detector": detector_hash})
    with atomic_path(path, suffix=".npz") as tmp:  # the umask's permissions, not mkstemp's 0600
        np.savez(tmp, features=features, meta=np.array(meta))
    return features

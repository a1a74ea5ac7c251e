"""The metrics against known answers: scikit-image's SSIM, FID closed forms, KID unbiasedness,
match score, PieAPP's port (built, unavailable without weights, parity with a PyTorch copy of the
authors' network on random weights) and the real-feature cache keys."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg
from skimage.metrics import structural_similarity

from keras_facehallu.metrics import (
    EvalBatch,
    EvalContext,
    MetricUnavailable,
    fid,
    get_metric,
    kid,
    match_score,
    ssim,
)


@pytest.fixture(autouse=True)
def _scratch_keras_home(tmp_path, monkeypatch):
    """No test may see (or fill) the user's asset and statistics caches."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv("KERAS_FACEHALLU_ASSETS", raising=False)


def _noisy_pair(rng, n=3, size=48):
    a = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    noise = rng.integers(-50, 50, a.shape)
    return a, np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)


# --- SSIM ---
@pytest.mark.parametrize(
    "settings",
    [
        dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False),  # Wang et al.
        dict(gaussian_weights=False, use_sample_covariance=True),  # scikit-image defaults
    ],
)
def test_ssim_matches_scikit_image(rng, settings):
    a, b = _noisy_pair(rng)
    ours = ssim.ssim(a, b, data_range=255, **settings)
    theirs = [
        structural_similarity(x, y, channel_axis=-1, data_range=255, **settings)
        for x, y in zip(a, b, strict=True)
    ]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_ssim_on_real_photos_matches_scikit_image(lfw_photos):
    from PIL import Image

    a = np.stack([np.asarray(Image.open(p).convert("RGB"))[61:189, 61:189] for p in lfw_photos[:2]])
    b = np.ascontiguousarray(a[::-1])
    ours = ssim.ssim(a, b)
    theirs = [
        structural_similarity(x, y, channel_axis=-1, data_range=255, gaussian_weights=True,
                              sigma=1.5, use_sample_covariance=False)
        for x, y in zip(a, b, strict=True)
    ]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_ssim_hallucinated_region_averages_the_map_outside_the_mask(rng):
    a, b = _noisy_pair(rng, n=2)
    mask = np.zeros(a.shape[:3] + (1,), np.float32)
    mask[:, 10:30, 12:34] = 1
    _, full = structural_similarity(a[0], b[0], channel_axis=-1, data_range=255, full=True,
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    pad = 5
    smap = full.mean(axis=-1)[pad:-pad, pad:-pad]
    outside = 1 - mask[0, pad:-pad, pad:-pad, 0]
    expected = (smap * outside).sum() / outside.sum()
    np.testing.assert_allclose(ssim.ssim(a, b, mask=mask)[0], expected, rtol=1e-10)
    # no face at all: the region is the whole image
    zeros = np.zeros_like(mask)
    np.testing.assert_allclose(ssim.ssim(a, b, mask=zeros), ssim.ssim(a, b), rtol=1e-12)
    # a copied face raises the whole-image score but not the hallucinated-region score
    pasted = np.where(mask.astype(bool), a, b)
    assert ssim.mean_ssim(a, pasted) > ssim.mean_ssim(a, b)


def test_ssim_rejects_bad_inputs(rng):
    a, b = _noisy_pair(rng, n=1)
    with pytest.raises(ValueError, match="differ in shape"):
        ssim.ssim(a, b[:, :40])
    with pytest.raises(ValueError, match="mask: expected values"):
        ssim.ssim(a, b, mask=np.full(a.shape[:3] + (1,), 0.5))
    with pytest.raises(ValueError, match="mask: expected shape"):
        ssim.ssim(a, b, mask=np.zeros(a.shape))
    with pytest.raises(ValueError, match="smaller than"):
        ssim.ssim(a[:, :8, :8], b[:, :8, :8])


# --- FID ---
@pytest.mark.parametrize("method", ["sqrtm", "gram", "eigh", "auto"])
def test_fid_of_a_set_against_itself_is_zero(rng, method):
    features = rng.normal(size=(300, 64)) @ rng.normal(size=(64, 64))
    value = fid.fid_from_features(features, features, method=method)
    trace = np.trace(np.cov(features, rowvar=False))
    assert abs(value) <= 1e-6 * trace


@pytest.mark.parametrize("shape", [(40, 30, 16), (5, 7, 24), (3, 3, 64)])
def test_fid_routes_agree_with_sqrtm(rng, shape):
    """The Gram-SVD and eigh routes equal scipy's sqrtm formula, also when N < D (singular)."""
    n, m, d = shape
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    y = rng.normal(size=(m, d)) + 0.3
    reference = fid.fid_from_features(x, y, method="sqrtm")
    for method in ("gram", "eigh", "auto"):
        np.testing.assert_allclose(fid.fid_from_features(x, y, method=method), reference,
                                   rtol=1e-6)
    with pytest.raises(ValueError, match="method"):
        fid.fid_from_features(x, y, method="svd")


def _random_spd(rng, d):
    q = rng.normal(size=(d, d))
    return q @ q.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_closed_forms(rng):
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # commuting (diagonal) covariances: |mu1-mu2|² + sum (sqrt(a)-sqrt(b))²
    a, b = rng.uniform(0.5, 2.0, d), rng.uniform(0.5, 2.0, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    np.testing.assert_allclose(
        fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), expected, rtol=1e-10
    )
    # general covariances: Tr(S1 + S2 - 2 (S1^½ S2 S1^½)^½), the symmetric form
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    root1 = linalg.sqrtm(s1).real
    expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                - 2 * np.trace(linalg.sqrtm(root1 @ s2 @ root1).real))
    np.testing.assert_allclose(fid.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-8)


def test_fid_of_gaussian_feature_sets_approaches_the_closed_form(rng):
    d, n = 4, 200_000
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = np.eye(d), np.diag([1.0, 2.0, 3.0, 4.0])
    x = rng.multivariate_normal(mu1, s1, size=n)
    y = rng.multivariate_normal(mu2, s2, size=n)
    expected = 4 * 0.25 + np.sum((1 - np.sqrt([1.0, 2.0, 3.0, 4.0])) ** 2)
    np.testing.assert_allclose(fid.fid_from_features(x, y), expected, rtol=0.02)
    np.testing.assert_allclose(fid.fid_from_features(x, y, method="sqrtm"), expected, rtol=0.02)


def test_fid_rejects_mismatched_statistics(rng):
    with pytest.raises(ValueError, match="statistics do not match"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="N >= 2"):
        fid.feature_statistics(np.zeros((1, 3)))


def test_statistics_cache_keys_change_with_data_and_detector(tmp_path, rng):
    images = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    other = images.copy()
    other[0, 0, 0, 0] ^= 1
    assert fid.hash_images(images) == fid.hash_images(images.copy())
    assert fid.hash_images(images) != fid.hash_images(other)
    assert fid.hash_images(images) != fid.hash_images(images.reshape(4, 16, 48, 1))
    key = fid.statistics_key(fid.hash_images(images), "detector-a")
    assert key != fid.statistics_key(fid.hash_images(other), "detector-a")
    assert key != fid.statistics_key(fid.hash_images(images), "detector-b")

    folder = tmp_path / "prepared"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"n": 1}')
    h1 = fid.hash_prepared_split(folder, "validation")
    assert h1 != fid.hash_prepared_split(folder, "train")
    assert h1 != fid.hash_prepared_split(folder, "validation", limit=10)
    (folder / "manifest.json").write_text('{"n": 2}')
    assert h1 != fid.hash_prepared_split(folder, "validation")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        fid.hash_prepared_split(tmp_path, "validation")

    calls = []

    def compute():
        calls.append(1)
        return rng.normal(size=(5, 3))

    cache = tmp_path / "stats"
    first = fid.cached_features("data", "det", compute, cache)
    again = fid.cached_features("data", "det", compute, cache)
    np.testing.assert_array_equal(first, again)
    assert len(calls) == 1
    fid.cached_features("data", "other-detector", compute, cache)
    fid.cached_features("other-data", "det", compute, cache)
    assert len(calls) == 3
    assert len(list(cache.glob("*.npz"))) == 3


def test_statistics_cache_file_keeps_the_umask_permissions(tmp_path):
    """The cache is written via atomic.atomic_path: 0o666 & ~umask, not mkstemp's 0600."""
    import os

    old = os.umask(0o022)
    try:
        fid.cached_features("data", "det", lambda: np.ones((3, 2)), tmp_path / "stats")
    finally:
        os.umask(old)
    (written,) = (tmp_path / "stats").glob("*.npz")
    assert written.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in (tmp_path / "stats").iterdir()] == [written.name]  # no temp left


# --- KID ---
def test_kid_estimator_is_unbiased_on_a_toy_case():
    """Samples from finite point sets: the true MMD² is exact, the estimator's mean matches it."""
    rng = np.random.default_rng(7)
    points_p = rng.normal(size=(6, 3))
    points_q = points_p + np.array([0.6, 0.0, -0.3])
    kpp = kid.polynomial_kernel(points_p, points_p).mean()
    kqq = kid.polynomial_kernel(points_q, points_q).mean()
    kpq = kid.polynomial_kernel(points_p, points_q).mean()
    true_mmd2 = kpp + kqq - 2 * kpq
    m, draws = 8, 4000
    unbiased, biased, same = [], [], []
    for _ in range(draws):
        x = points_p[rng.integers(0, 6, m)]
        y = points_q[rng.integers(0, 6, m)]
        x2 = points_p[rng.integers(0, 6, m)]
        unbiased.append(kid.mmd2_unbiased(x, y))
        biased.append(kid.mmd2_biased(x, y))
        same.append(kid.mmd2_unbiased(x, x2))
    unbiased, biased, same = map(np.asarray, (unbiased, biased, same))
    stderr = unbiased.std() / np.sqrt(draws)
    assert abs(unbiased.mean() - true_mmd2) < 4 * stderr
    assert abs(same.mean()) < 4 * same.std() / np.sqrt(draws)
    # the biased estimator is measurably off at this sample size: the test has power
    assert abs(biased.mean() - true_mmd2) > 10 * stderr


def test_kernel_inception_distance_subsets(rng):
    x = rng.normal(size=(120, 16))
    y = rng.normal(size=(100, 16)) + 0.5
    mean, std = kid.kernel_inception_distance(x, y, num_subsets=20, max_subset_size=50, seed=3)
    assert mean > 0 and std >= 0
    assert kid.kernel_inception_distance(x, y, 20, 50, seed=3) == (mean, std)
    same, _ = kid.kernel_inception_distance(x[:60], x[60:], num_subsets=20)
    assert abs(same) < mean / 5
    with pytest.raises(ValueError, match="expected \\[N, D\\]"):
        kid.mmd2_unbiased(x, y[:, :8])


# --- match score ---
def test_match_score_and_verification_rate(rng):
    d = rng.normal(size=(5, 128)) * 0.05
    np.testing.assert_allclose(match_score.match_scores(d, d), 1.0)
    assert match_score.verification_rate(d, d) == 1.0
    np.testing.assert_allclose(match_score.match_scores(d, -d), -1.0)
    far = d.copy()
    far[:2] += 1.0  # distance sqrt(128) > 0.6 for two pairs
    assert match_score.verification_rate(d, far) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="two \\[N, D\\]"):
        match_score.match_scores(d, d[:3])


def test_match_score_metric_on_identical_images_is_one(lfw_photos):
    """Uses the dlib ResNet port where it exists; skipped (visibly) where it does not."""
    pytest.importorskip("keras_facehallu.nets.dlib_resnet")
    from PIL import Image

    images = np.stack([
        np.asarray(Image.open(p).convert("RGB").resize((128, 128))) for p in lfw_photos[:2]
    ])
    masks = np.ones(images.shape[:3] + (1,), np.float32)
    ctx = EvalContext(download=False)
    batch = EvalBatch(images, images.copy(), masks)
    assert get_metric("match_score").fn(batch, ctx, "same") == pytest.approx(1.0, abs=1e-5)
    assert get_metric("verification_rate").fn(batch, ctx, "same") == 1.0


# --- PieAPP ---
def test_pieapp_is_unavailable_without_weights():
    from keras_facehallu.metrics.pieapp import PieAPP, PieAPPUnavailable

    with pytest.raises(PieAPPUnavailable, match="not available"):
        PieAPP(download=False)
    with pytest.raises(PieAPPUnavailable, match="no such file"):
        PieAPP(weights_path="/nonexistent/PieAPPv0.1.pth")
    ctx = EvalContext(download=False)
    images = np.zeros((1, 128, 128, 3), np.uint8)
    batch = EvalBatch(images, images, np.ones((1, 128, 128, 1), np.float32))
    with pytest.raises(MetricUnavailable, match="PieAPP"):
        get_metric("pieapp").fn(batch, ctx, "x")


def test_pieapp_patch_grid():
    from keras_facehallu.metrics.pieapp import extract_patches, patch_origins

    np.testing.assert_array_equal(patch_origins(128), [0, 27, 54])
    patches = extract_patches(np.arange(2 * 128 * 128 * 3).reshape(2, 128, 128, 3))
    assert patches.shape == (2, 9, 64, 64, 3)
    with pytest.raises(ValueError, match="smaller than"):
        patch_origins(32)


class _TorchPieAPP:
    """The authors' PyTorch network (PieAPPv0pt1_PT.py), rebuilt here for the parity test."""

    @staticmethod
    def build():
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                chans = [3, 64, 64, 64, 128, 128, 128, 256, 256, 256, 512, 512]
                for i in range(11):
                    setattr(self, f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], 3, padding=1))
                self.fc1_score = nn.Linear(120832, 512)
                self.fc2_score = nn.Linear(512, 1)
                self.fc1_weight = nn.Linear(2048, 512)
                self.fc2_weight = nn.Linear(512, 1)
                self.ref_score_subtract = nn.Linear(1, 1)

            def features(self, x):
                f = torch.nn.functional
                pool = lambda t: f.max_pool2d(t, 2, 2)
                x3 = f.relu(self.conv3(pool(f.relu(self.conv2(f.relu(self.conv1(x)))))))
                x5 = f.relu(self.conv5(pool(f.relu(self.conv4(x3)))))
                x7 = f.relu(self.conv7(pool(f.relu(self.conv6(x5)))))
                x9 = f.relu(self.conv9(pool(f.relu(self.conv8(x7)))))
                x11 = f.relu(self.conv11(pool(f.relu(self.conv10(x9))))).flatten(1)
                ms = torch.cat([x3.flatten(1), x5.flatten(1), x7.flatten(1), x9.flatten(1), x11], 1)
                return ms, x11

            def forward(self, a, ref):
                f = torch.nn.functional
                ms_a, c_a = self.features(a)
                ms_r, c_r = self.features(ref)
                score = self.ref_score_subtract(
                    0.01 * self.fc2_score(f.relu(self.fc1_score(ms_r - ms_a))))
                weight = self.fc2_weight(f.relu(self.fc1_weight(c_r - c_a))) + 1e-6
                return score, weight

        torch.manual_seed(0)
        net = Net().eval()
        with torch.no_grad():  # small weights keep the random net's activations moderate
            for p in net.parameters():
                p.mul_(0.5)
        return net


@pytest.mark.multibackend
def test_pieapp_port_matches_pytorch_reference_on_random_weights(tmp_path, lfw_photos):
    """Architecture and weight mapping, checked against the authors' design run by PyTorch."""
    torch = pytest.importorskip("torch")
    from PIL import Image

    from keras_facehallu.metrics.pieapp import PieAPP, pieapp_scores

    net = _TorchPieAPP.build()
    path = tmp_path / "random_pieapp.pth"
    torch.save(net.state_dict(), path)
    with pytest.warns(UserWarning, match="passed explicitly"):
        scorer = PieAPP(weights_path=path)

    ref = np.stack(
        [np.asarray(Image.open(p).convert("RGB"))[61:189, 61:189] for p in lfw_photos[:2]]
    )
    dist = np.clip(ref.astype(int) + np.random.default_rng(0).integers(-30, 30, ref.shape),
                   0, 255).astype(np.uint8)
    ours = pieapp_scores(scorer.network, dist, ref)

    expected = []
    for d_img, r_img in zip(dist, ref, strict=True):
        # the authors' test script: BGR float 0..255, strided 64×64 patches, weighted mean
        to_patches = lambda im: torch.from_numpy(
            np.stack([im[y:y + 64, x:x + 64, ::-1] for y in (0, 27, 54) for x in (0, 27, 54)])
            .astype(np.float32).transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            score, weight = net(to_patches(d_img), to_patches(r_img))
        expected.append(float((score * weight).sum() / weight.sum()))
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-5)


def test_bootstrap_fid_is_paired_seeded_and_checks_shapes(rng):
    from keras_facehallu.metrics.fid import bootstrap_fid

    real = rng.normal(size=(60, 6))
    close, far = real + 0.05 * rng.normal(size=real.shape), real + 1.0
    runs = bootstrap_fid(real, {"close": close, "far": far, "same": real}, resamples=12, seed=3)
    assert all(v.shape == (12,) for v in runs.values())
    assert (runs["close"] < runs["far"]).all()  # paired: the same images in every resample
    np.testing.assert_allclose(runs["same"], 0.0, atol=1e-6)
    again = bootstrap_fid(real, {"close": close}, resamples=12, seed=3)
    np.testing.assert_array_equal(again["close"], runs["close"])
    assert not np.allclose(runs["close"], runs["close"].mean())  # resamples differ
    with pytest.raises(ValueError, match="pairs image i"):
        bootstrap_fid(real, {"short": close[:-1]})
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_fid(real, {"close": close}, resamples=0)

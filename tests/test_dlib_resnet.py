"""dlib face-recognition ResNet port: the .dat reader, parity with dlib, the L_id network."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from keras_facehallu.assets import get_asset
from keras_facehallu.nets import dlib_resnet
from keras_facehallu.nets.dlib_dat import (
    TAG_OR_SKIP,
    DlibFormatError,
    parse_dlib_network,
    read_dlib_network,
)

dlib = pytest.importorskip("dlib")
cv2 = pytest.importorskip("cv2")


def _load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _canonical_crop(image: np.ndarray, shape68) -> np.ndarray:
    from keras_facehallu.face import align

    points = np.array([[p.x, p.y] for p in shape68.parts()], dtype=np.float64)
    transform = align.alignment_transform(points)
    return cv2.warpAffine(image, transform, (128, 128), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101), transform


@pytest.fixture(scope="module")
def dat_path() -> Path:
    return get_asset("dlib_face_recognition_resnet")


@pytest.fixture(scope="module")
def dlib_tools():
    detector = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(str(get_asset("shape_predictor_5")))
    sp68 = dlib.shape_predictor(str(get_asset("shape_predictor_68")))
    return detector, sp5, sp68


@pytest.fixture(scope="module")
def faces(lfw_photos, dlib_tools):
    """dlib chips, canonical crops and the chip boxes of the real LFW test photos."""
    detector, sp5, sp68 = dlib_tools
    chips, crops, corners = [], [], []
    for path in lfw_photos:
        image = _load_rgb(path)
        boxes = detector(image, 1)
        if not boxes:
            continue
        shape5 = sp5(image, boxes[0])
        chips.append(dlib_resnet.dlib_face_chips(image, [shape5])[0])
        crop, transform = _canonical_crop(image, sp68(image, boxes[0]))
        crops.append(crop)
        details = dlib.get_face_chip_details(shape5, 150, 0.25)
        rect, angle = details.rect, details.angle
        centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        tl_br = [np.array([rect.left(), rect.top()]), np.array([rect.right(), rect.bottom()])]
        corners.append([transform[:, :2] @ (centre + rot @ (p - centre)) + transform[:, 2]
                        for p in tl_br])
    assert len(chips) >= 8, f"dlib found faces in only {len(chips)} of {len(lfw_photos)} photos"
    return np.stack(chips), np.stack(crops), np.asarray(corners)


@pytest.fixture(scope="module")
def resnet(dat_path):
    return dlib_resnet.build_dlib_resnet(dat_path)


def _cosine(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def _outputs_and_input_gradient(model, x):
    """model(x) and d(sum(model(x) * direction))/dx, in one (compiled, on JAX) pass."""
    backend = keras.backend.backend()
    direction = np.linspace(-1, 1, 128, dtype=np.float32)
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = model(x)
            loss = tf.reduce_sum(out * direction)
        return out.numpy(), tape.gradient(loss, x).numpy()
    if backend == "jax":
        import jax

        def loss(v):
            out = model(v)
            return (out * direction).sum(), out

        (_, out), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(x)
        return np.asarray(out), np.asarray(grad)
    if backend == "torch":
        import torch

        x = torch.tensor(x, requires_grad=True)
        out = model(x)
        (out * torch.tensor(direction)).sum().backward()
        return out.detach().numpy(), x.grad.numpy()
    pytest.skip(f"no gradient helper for backend {backend}")


# --- the reader ---


def test_reader_parses_the_face_recognition_resnet(dat_path):
    net = read_dlib_network(dat_path)
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("fc") == 1 and kinds.count("affine") == 29
    assert kinds.count(TAG_OR_SKIP) == 22  # 10 blocks x tag1, 4 down blocks x tag1+tag2+skip1
    assert net.input.params["nr"] == net.input.params["nc"] == 150
    assert net.input.params["avg_red"] == pytest.approx(122.782, abs=1e-3)
    assert net.loss.params["distance_threshold"] == pytest.approx(0.6)
    first = net.layers[0]
    assert first.arrays["filters"].shape == (32, 3, 7, 7)
    assert (first.params["stride_y"], first.params["padding_y"]) == (2, 0)
    assert net.layers[-1].arrays["weights"].shape == (256, 128)


def test_reader_rejects_truncated_and_corrupt_files(dat_path, tmp_path):
    data = Path(dat_path).read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibFormatError, match=r"truncated\.dat.*truncated"):
        read_dlib_network(truncated)
    corrupt = bytearray(data[:4096])
    corrupt[4:17] = b"not_a_loss!!!"  # the loss layer's 13-byte version string
    with pytest.raises(DlibFormatError, match=r"loss layer 'not_a_loss!!!' is not supported"):
        parse_dlib_network(bytes(corrupt), source="corrupt.dat")
    with pytest.raises(DlibFormatError, match="unexpected bytes after the last layer"):
        parse_dlib_network(data + b"\x00", source="padded.dat")
    with pytest.raises(DlibFormatError, match="junk.dat"):
        parse_dlib_network(b"\x7fELF junk", source="junk.dat")


# --- the Keras port ---


@pytest.mark.multibackend
def test_parity_with_dlib_on_real_lfw_faces(faces, resnet, dat_path):
    chips = faces[0]
    reference = dlib.face_recognition_model_v1(str(dat_path))
    expected = np.stack([np.asarray(reference.compute_face_descriptor(c)) for c in chips])
    found = keras.ops.convert_to_numpy(resnet.predict_on_batch(chips.astype(np.float32)))
    cosine = _cosine(expected, found)
    assert cosine.min() >= 0.999, f"cosine per face: {np.round(cosine, 5)}"
    np.testing.assert_allclose(found, expected, atol=1e-4)


@pytest.mark.multibackend
def test_resnet_is_frozen_and_exposes_named_stages(resnet):
    assert resnet.trainable_weights == []
    shapes = {name: tuple(resnet.get_layer(name).output.shape[1:])
              for name in dlib_resnet.STAGE_NAMES}
    assert shapes == {
        "stem": (35, 35, 32), "stage_1": (35, 35, 32), "stage_2": (17, 17, 64),
        "stage_3": (8, 8, 128), "stage_4": (4, 4, 256), "stage_5": (2, 2, 256),
        "descriptor": (128,),
    }


def test_resnet_save_load_round_trip(resnet, tmp_path):
    path = tmp_path / "dlib_resnet.keras"
    resnet.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).uniform(0, 255, (2, 150, 150, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), resnet(x), atol=1e-5)


def test_layer_configs_round_trip():
    chip = dlib_resnet.CanonicalFaceChip(chip_size=150, padding=0.25)
    clone = dlib_resnet.CanonicalFaceChip.from_config(chip.get_config())
    assert clone.get_config() == chip.get_config()
    add = dlib_resnet.ZeroPadAdd()
    a, b = np.ones((1, 4, 4, 8), np.float32), np.ones((1, 3, 3, 4), np.float32)
    out = keras.ops.convert_to_numpy(add([a, b]))
    assert out.shape == (1, 4, 4, 8)
    assert out[0, 0, 0, 0] == 2 and out[0, 3, 3, 0] == 1 and out[0, 0, 0, 7] == 1


# --- the identity network on canonical crops ---


def test_canonical_chip_box_matches_dlib_chips(faces):
    """The derived box vs where dlib.get_face_chip actually falls in our canonical frame."""
    corners = faces[2].mean(axis=0)  # [[x0, y0], [x1, y1]] of dlib's chip rectangle
    xs, ys = dlib_resnet._canonical_chip_grid(128, 150, 0.25, (0.40, 0.42), (0.60, 0.42))
    derived = np.array([[xs[0], ys[0]], [xs[-1], ys[-1]]])
    np.testing.assert_allclose(derived, corners, atol=2.0)


@pytest.mark.multibackend
def test_identity_network_is_frozen_differentiable_and_close_to_dlib(faces, dat_path):
    chips, crops = faces[0][:8], faces[1][:8]
    net = dlib_resnet.build_identity_network(dat_path)
    assert net.trainable_weights == []
    x = crops.astype(np.float32) / 127.5 - 1.0
    out, grad = _outputs_and_input_gradient(net, x)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    reference = dlib.face_recognition_model_v1(str(dat_path))
    expected = np.stack([np.asarray(reference.compute_face_descriptor(c)) for c in chips])
    assert _cosine(out, expected).mean() > 0.97
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    border = np.abs(grad[:, :20]).sum()  # rows 0..19 lie above the chip box: no influence
    assert border == 0


def _people_with_two_photos(photos_dir: Path, count: int) -> list:
    found = []
    for person in sorted(p for p in photos_dir.iterdir() if p.is_dir()):
        photos = sorted(person.glob("*.jpg"))
        if len(photos) >= 2:
            found.append(photos[:2])
        if len(found) == count:
            return found
    return found


def test_same_person_pairs_score_higher_than_different_people(faces_dir, dlib_tools):
    detector, _, sp68 = dlib_tools
    crops, owners = [], []
    for index, photos in enumerate(_people_with_two_photos(faces_dir, 5)):
        for path in photos:
            image = _load_rgb(path)
            boxes = detector(image, 1)
            if boxes:
                crops.append(_canonical_crop(image, sp68(image, boxes[0]))[0])
                owners.append(index)
    descriptors = dlib_resnet.face_descriptors(np.stack(crops), batch_size=4)
    assert descriptors.shape == (len(crops), 128) and descriptors.dtype == np.float32
    owners = np.asarray(owners)
    distances = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=-1)
    same = owners[:, None] == owners[None]
    off_diagonal = ~np.eye(len(owners), dtype=bool)
    same_d, diff_d = distances[same & off_diagonal], distances[~same]
    assert len(same_d) >= 6
    # dlib's rule: the same person within a Euclidean distance of 0.6 (raw descriptors).
    assert same_d.max() < 0.6, f"same-person distances {np.round(same_d, 3)}"
    assert same_d.max() < diff_d.min(), f"{same_d.max():.3f} vs {diff_d.min():.3f}"
    assert _cosine(descriptors[:, None], descriptors[None])[same & off_diagonal].min() > 0.9


def test_face_descriptors_checks_its_input():
    with pytest.raises(ValueError, match=r"\[N,128,128,3\].*found shape \(2, 64, 64, 3\)"):
        dlib_resnet.face_descriptors(np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8.*float32"):
        dlib_resnet.face_descriptors(np.zeros((2, 128, 128, 3), np.float32))
    assert dlib_resnet.face_descriptors(np.zeros((0, 128, 128, 3), np.uint8)).shape == (0, 128)

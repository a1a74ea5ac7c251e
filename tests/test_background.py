"""Background replacement: blending, saliency, segmentation on real LFW photos, bad inputs, CLI."""

from __future__ import annotations

import argparse
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from keras_facehallu.assets import AssetError, get_asset
from keras_facehallu.background import blend, cli, replace, saliency, segmentation

SIZES = [(128, 128), (200, 300), (1024, 1024)]  # (height, width)


@pytest.fixture(scope="session")
def selfie_model():
    """The verified selfie-segmentation model (`make setup` fetches it into the cache)."""
    try:
        return get_asset("selfie_segmentation", download=False)
    except AssetError as exc:
        pytest.fail(f"{exc}\nRun `python -m keras_facehallu.assets fetch selfie_segmentation`.")


@pytest.fixture(scope="module")
def lfw_images(lfw_photos):
    return [np.array(Image.open(p).convert("RGB")) for p in lfw_photos]


def _textures(height, width, rng):
    fg = np.clip(rng.normal(170, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    bg = np.clip(rng.normal(60, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    return fg, bg


def _disc(height, width):
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (width // 4, height // 3), 0, 0, 360, 1, -1)
    return mask


# --- blending -------------------------------------------------------------------------------


@pytest.mark.parametrize("height,width", SIZES)
def test_blend_all_ones_and_all_zeros(height, width, rng):
    fg, bg = _textures(height, width, rng)
    ones = np.ones((height, width), np.float32)
    np.testing.assert_array_equal(blend.laplacian_blend(fg, bg, ones, levels=6), fg)
    np.testing.assert_array_equal(blend.laplacian_blend(fg, bg, 0 * ones, levels=6), bg)
    fgf, bgf = fg / 127.5 - 1, bg / 127.5 - 1
    out = blend.laplacian_blend(fgf.astype(np.float32), bgf.astype(np.float32), ones[..., None])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, fgf, atol=1e-5)


def test_blend_levels_are_clamped_and_one_level_is_alpha(rng):
    fg, bg = _textures(8, 12, rng)
    mask = np.zeros((8, 12), np.float32)
    mask[:, :6] = 1
    assert blend.max_levels(8, 12) == 2
    out = blend.laplacian_blend(fg, bg, mask, levels=100)
    assert out.shape == fg.shape and out.dtype == np.uint8
    alpha = blend.laplacian_blend(fg, bg, mask, levels=1)
    np.testing.assert_array_equal(alpha, blend.hard_paste(fg, bg, mask))


def test_seam_is_smoother_than_hard_paste(rng):
    height = width = 128
    fg, bg = _textures(height, width, rng)
    mask = _disc(height, width)
    band = cv2.dilate(mask, np.ones((7, 7), np.uint8)) - cv2.erode(mask, np.ones((7, 7), np.uint8))

    def energy(image):
        grad = saliency.gradient_magnitude(image)
        return float((grad[band > 0] ** 2).mean())

    hard = energy(blend.hard_paste(fg, bg, mask))
    soft = energy(blend.laplacian_blend(fg, bg, mask.astype(np.float32), levels=4))
    feathered = energy(blend.laplacian_blend(fg, bg, replace.feather_mask(mask > 0), levels=4))
    assert soft < 0.7 * hard
    assert feathered < soft


def test_cover_resize_keeps_aspect_and_centres():
    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, 175:225] = 255  # a centred bright column, 50 of 400 px wide
    out = blend.cover_resize(wide, 128, 128)  # scaled x1.28, the middle 128 of 512 px kept
    assert out.shape == (128, 128, 3)
    assert out[:, 40:88].min() == 255 and out[:, :28].max() == 0 and out[:, 100:].max() == 0
    assert blend.cover_resize(np.zeros((2000, 1000, 3), np.uint8), 200, 300).shape == (200, 300, 3)


# --- saliency -------------------------------------------------------------------------------


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize("textured", [False, True])
def test_saliency_recovers_object_on_plain_background(height, width, textured, rng):
    image = np.full((height, width, 3), (185, 190, 200), np.uint8)
    image = np.clip(image + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8)
    truth = _disc(height, width)
    cv2.rectangle(truth, (width // 2 - width // 10, height // 2), (width // 2 + width // 10,
                  height - 1), 1, -1)  # head and "body" touching the bottom edge
    inside = truth > 0
    colour = rng.integers(20, 120, (int(inside.sum()), 3)) if textured else (40, 60, 90)
    image[inside] = colour
    mask, details = saliency.saliency_details(image)
    iou = (mask & inside).sum() / (mask | inside).sum()
    assert iou >= 0.9, (iou, details)


def test_saliency_flat_image_is_empty():
    mask, details = saliency.saliency_details(np.full((64, 96, 3), 128, np.uint8))
    assert not mask.any() and "flat" in details["discarded"]


# --- segmentation and replacement on real photos --------------------------------------------


def test_asset_hash_checked(selfie_model, tmp_path, monkeypatch):
    asset = segmentation.SELFIE_SEGMENTATION
    assert selfie_model.name == asset.filename
    corrupt = tmp_path / asset.filename
    corrupt.write_bytes(selfie_model.read_bytes()[:-16] + b"\0" * 16)
    monkeypatch.setenv("KERAS_FACEHALLU_ASSETS", str(tmp_path))
    with pytest.raises(AssetError, match="sha256"):
        get_asset("selfie_segmentation")
    with pytest.raises(AssetError, match="sha256"):
        segmentation.PersonSegmenter()


def test_segmenter_reads_model_io(selfie_model, lfw_images):
    segmenter = segmentation.PersonSegmenter(selfie_model)
    assert segmenter.input_size == (256, 256)
    prob = segmenter(lfw_images[0])
    assert prob.shape == lfw_images[0].shape[:2] and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    assert prob[100:150, 100:150].mean() > 0.9  # the face in the middle of an LFW photo
    with pytest.raises(ValueError, match="uint8 RGB"):
        segmenter(lfw_images[0].astype(np.float32))


@pytest.fixture(scope="module")
def face_regions(lfw_images):
    """Per photo: dlib's face box and the hull of its 68 landmarks (None when no face found)."""
    import importlib.util
    from pathlib import Path

    import dlib

    models = Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models"
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    detector = dlib.get_frontal_face_detector()
    regions = []
    for image in lfw_images:
        boxes = detector(image, 1)
        if not boxes:
            regions.append(None)
            continue
        box = max(boxes, key=lambda r: r.area())
        points = np.array([(p.x, p.y) for p in predictor(image, box).parts()], np.int32)
        hull = np.zeros(image.shape[:2], np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(points[:27]), 1)
        regions.append((box, hull))
    return regions


def test_lfw_foreground_covers_face_and_shoulders(selfie_model, lfw_images, face_regions):
    background = np.zeros((300, 400, 3), np.uint8)
    background[..., 1] = 200
    shoulders = []
    for image, region in zip(lfw_images, face_regions, strict=True):
        if region is None:
            continue
        box, hull = region
        out, mask, details = replace.replace_background(image, background, return_details=True)
        assert out.shape == image.shape and mask.shape == image.shape[:2]
        fg = mask >= 0.5
        assert fg[hull > 0].mean() >= 0.97, details  # the face (landmark hull) is foreground
        left, right = max(box.left(), 0), min(box.right(), 249)
        top, bottom = max(box.top(), 0), min(box.bottom(), 249)
        size = bottom - top
        below = fg[min(bottom + size // 2, 249) :, max(left - size // 2, 0) : right + size // 2]
        shoulders.append(below.mean())
        # with a face mask given: all of it is foreground
        _, mask2 = replace.replace_background(image, background, hull)
        assert (mask2[hull > 0] >= 0.5).all()
    assert len(shoulders) >= 12
    assert min(shoulders) >= 0.6 and np.mean(shoulders) >= 0.85, shoulders


def test_no_person_warns_and_falls_back(selfie_model, lfw_images, monkeypatch):
    # a real "landscape" with no person: smooth sky over textured ground
    rng = np.random.default_rng(3)
    scene = np.zeros((160, 240, 3), np.uint8)
    scene[:80] = np.linspace(230, 150, 80)[:, None, None].astype(np.uint8)
    scene[80:] = np.clip(rng.normal(90, 25, (80, 240, 3)), 0, 255).astype(np.uint8)
    face = np.zeros((160, 240), np.uint8)
    cv2.circle(face, (120, 60), 20, 1, -1)
    with pytest.warns(replace.NoPersonFoundWarning, match="no person"):
        out, mask, details = replace.replace_background(
            scene, lfw_images[1], face, return_details=True
        )
    assert details["fallback"] and details["warnings"]
    assert (mask[face > 0] >= 0.5).all()
    assert out.shape == scene.shape
    # an all-background segmentation of a real photo: fallback to face mask ∪ saliency
    monkeypatch.setattr(segmentation, "segment_person", lambda img, path=None: 0 * img[..., 0])
    with pytest.warns(replace.NoPersonFoundWarning):
        _, mask, details = replace.replace_background(
            lfw_images[0], scene, np.pad(face, ((45, 45), (5, 5))), return_details=True
        )
    assert details["segmentation"] == 0.0 and details["fallback"]


def test_real_seam_smoother_than_hard_paste(selfie_model, lfw_images):
    image, background = lfw_images[4], lfw_images[5][:, ::-1].copy()
    out, soft, details = replace.replace_background(image, background, return_details=True)
    hard = blend.hard_paste(image, background, details["masks"]["foreground"])
    edge = details["masks"]["foreground"].astype(np.uint8)
    kernel = np.ones((5, 5), np.uint8)
    band = cv2.dilate(edge, kernel) - cv2.erode(edge, kernel)
    energy = [float((saliency.gradient_magnitude(x)[band > 0] ** 2).mean()) for x in (out, hard)]
    assert energy[0] < 0.8 * energy[1], energy


@pytest.mark.parametrize("height,width", SIZES)
def test_any_size_uint8_and_float(height, width, selfie_model, lfw_images):
    image = cv2.resize(lfw_images[2], (width, height), interpolation=cv2.INTER_LINEAR)
    background = lfw_images[3][::-1].copy()
    out, mask = replace.replace_background(image, background)
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    assert mask.shape == (height, width) and mask.dtype == np.float32
    assert 0.2 < (mask > 0.5).mean() < 0.98
    as_float = image.astype(np.float32) / 127.5 - 1.0
    out_f, _ = replace.replace_background(as_float[None], background, use_segmentation=False)
    assert out_f.shape == (height, width, 3)
    assert out_f.dtype == np.float32 and out_f.min() >= -1.0 and out_f.max() <= 1.0


def test_parts_can_be_switched_off(lfw_images):
    with pytest.warns(UserWarning, match="no foreground") as record:
        out, mask, details = replace.replace_background(
            lfw_images[0], lfw_images[1], use_segmentation=False, use_saliency=False,
            return_details=True,
        )
    assert not any(isinstance(w.message, replace.NoPersonFoundWarning) for w in record)
    assert details["segmentation"] is None and details["saliency"] is None
    assert not mask.any()
    np.testing.assert_array_equal(out, lfw_images[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, details = replace.replace_background(
            lfw_images[0], lfw_images[1], use_saliency=False, return_details=True
        )
    assert details["saliency"] is None and details["segmentation"] > 0.2


# --- bad inputs --------------------------------------------------------------------------------


def test_bad_inputs(lfw_photos, lfw_images, tmp_path, selfie_model):
    image = lfw_images[0]
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    with pytest.raises(ValueError, match="background: cannot read .*broken.png"):
        replace.replace_background(image, broken)
    with pytest.raises(FileNotFoundError, match="background: .*missing.jpg"):
        replace.replace_background(image, tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match=r"face_mask: expected a mask of shape \[250, 250\]"):
        replace.replace_background(image, lfw_images[1], np.ones((128, 128), np.uint8))
    with pytest.raises(ValueError, match=r"image: float images must be in \[-1, 1\]"):
        replace.replace_background(image.astype(np.float32), lfw_images[1])
    with pytest.raises(ValueError, match="image: expected an image"):
        replace.replace_background(np.zeros((4, 4, 5), np.uint8), lfw_images[1])
    grey = tmp_path / "grey.png"
    Image.fromarray(lfw_images[1][..., 0]).save(grey)
    rgba = np.concatenate([lfw_images[1], np.full((250, 250, 1), 128, np.uint8)], axis=2)
    for background, note in [(grey, "grayscale"), (rgba, "RGBA")]:
        out, _, details = replace.replace_background(
            lfw_photos[0], background, use_segmentation=False, return_details=True
        )
        assert out.shape == (250, 250, 3)
        assert any(note in n for n in details["notes"])


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_and_background_flag(lfw_photos, lfw_images, tmp_path, selfie_model, capsys):
    out_path, mask_path = tmp_path / "out" / "x.png", tmp_path / "mask.png"
    face = tmp_path / "face.png"
    face_mask = np.zeros((250, 250), np.uint8)
    cv2.circle(face_mask, (125, 120), 40, 255, -1)
    Image.fromarray(face_mask).save(face)
    argv = [str(lfw_photos[0]), "--background", str(lfw_photos[1]), "--face-mask", str(face),
            "-o", str(out_path), "--mask-output", str(mask_path)]
    assert cli.main(argv) == 0
    assert np.array(Image.open(out_path)).shape == (250, 250, 3)
    assert np.array(Image.open(mask_path))[face_mask > 0].min() >= 128
    assert cli.main([str(lfw_photos[0]), "--background", str(tmp_path / "no.png"), "-o",
                     str(tmp_path / "y.png")]) == 2
    assert "no.png" in capsys.readouterr().err

    parser = cli.add_background_argument(argparse.ArgumentParser())
    image = lfw_images[0]
    assert cli.apply_background(image, parser.parse_args([])) is image
    args = parser.parse_args(["--background", str(lfw_photos[1]), "--background-levels", "3"])
    composite = cli.apply_background(image, args)
    assert composite.shape == image.shape and not np.array_equal(composite, image)


@pytest.mark.slow
def test_tf_lite_interpreter_fallback(selfie_model, lfw_images, monkeypatch):
    import sys

    litert = segmentation.PersonSegmenter(selfie_model)(lfw_images[0])
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        tf_lite = segmentation.PersonSegmenter(selfie_model)(lfw_images[0])
    np.testing.assert_allclose(tf_lite, litert, atol=1e-3)

"""Safe image loading: every kind of bad or unusual file, generated from real LFW photos."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from keras_facehallu.face.io import ImageLoadError, load_image


@pytest.fixture(scope="module")
def photo(lfw_photos) -> np.ndarray:
    return np.asarray(Image.open(lfw_photos[0]).convert("RGB"))


def _expect(reason, source, **kwargs):
    with pytest.raises(ImageLoadError) as info:
        load_image(source, **kwargs)
    assert info.value.reason == reason
    name = str(source) if not isinstance(source, (bytes, np.ndarray)) else "<"
    assert name in str(info.value)
    return info.value


def test_real_jpeg(lfw_photos, photo):
    rgb = load_image(lfw_photos[0])
    assert rgb.dtype == np.uint8 and rgb.shape == (250, 250, 3)
    np.testing.assert_array_equal(rgb, photo)
    assert rgb.flags["C_CONTIGUOUS"]


def test_bytes_and_array_sources(lfw_photos, photo):
    np.testing.assert_array_equal(load_image(lfw_photos[0].read_bytes()), photo)
    np.testing.assert_array_equal(load_image(photo), photo)
    assert load_image(photo[..., 0]).shape == (250, 250, 3)


def test_missing_empty_and_not_an_image(tmp_path):
    _expect("missing", tmp_path / "nope.jpg")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    _expect("empty", empty)
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo\n" * 20)
    error = _expect("not_an_image", text)
    assert "not an image" in str(error)
    _expect("empty", b"")


def test_truncated_jpeg(tmp_path, lfw_photos):
    data = lfw_photos[0].read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    error = _expect("corrupt", truncated)
    assert "truncated" in str(error).lower()


def test_corrupt_png(tmp_path, photo):
    good = tmp_path / "good.png"
    Image.fromarray(photo).save(good)
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # zeroes inside the IDAT stream break the CRC/zlib data
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(bytes(data))
    _expect("corrupt", bad)


def test_grayscale_rgba_palette_cmyk(tmp_path, photo):
    gray = tmp_path / "gray.png"
    Image.fromarray(photo).convert("L").save(gray)
    rgb = load_image(gray)
    assert rgb.shape == (250, 250, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])

    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    rgba[:, :125, 3] = 0  # left half fully transparent: composited on black
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = load_image(path)
    assert out[:, :125].max() == 0
    np.testing.assert_array_equal(out[:, 125:], photo[:, 125:])

    palette = tmp_path / "palette.png"
    Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE).save(palette)
    assert np.abs(load_image(palette).astype(int) - photo).mean() < 12

    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(photo).convert("CMYK").save(cmyk, quality=95)
    assert Image.open(cmyk).mode == "CMYK"
    assert np.abs(load_image(cmyk).astype(int) - photo).mean() < 8


def test_sixteen_bit(tmp_path, photo):
    gray16 = (photo[..., 1].astype(np.uint16) * 257).astype(np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(gray16).save(path)
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_array_equal(load_image(path)[..., 0], photo[..., 1])
    np.testing.assert_array_equal(load_image(photo.astype(np.uint16) * 257), photo)


def test_exif_rotation(tmp_path, photo):
    # Stored rotated 90° clockwise with orientation 8 ("rotate 90 CW to view") -> upright again.
    stored = np.rot90(photo, k=-1)
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=98, exif=exif)
    out = load_image(path)
    assert out.shape == photo.shape
    assert np.abs(out.astype(int) - photo).mean() < 4


def test_tiny_and_huge(tmp_path, lfw_photos):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (20, 20)).save(tiny)
    _expect("too_small", tiny)
    _expect("too_large", lfw_photos[0], max_pixels=10_000)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"garbage")


def test_huge_refused_from_the_header(tmp_path):
    # The pixel data is garbage: a "corrupt" error would mean the loader tried to decode it.
    big = tmp_path / "huge.png"
    big.write_bytes(_png_header_only(30_000, 30_000))
    error = _expect("too_large", big)
    assert "before decoding" in str(error) or "pixels" in str(error)
    medium = tmp_path / "medium.png"
    medium.write_bytes(_png_header_only(3000, 3000))
    _expect("too_large", medium, max_pixels=1_000_000)


def test_bad_arrays():
    with pytest.raises(ImageLoadError, match="float images"):
        load_image(np.full((64, 64, 3), 2.0, np.float32))
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((64, 64, 5), np.uint8))
    with pytest.raises(ImageLoadError, match="dtype"):
        load_image(np.zeros((64, 64, 3), np.int64))
    with pytest.raises(TypeError, match="expected a path"):
        load_image(12)
    out = load_image(np.full((40, 40, 3), 0.5, np.float32))
    assert out.dtype == np.uint8 and int(out[0, 0, 0]) == 128


def test_decode_image_hands_the_opened_image_to_convert(tmp_path):
    from keras_facehallu.face.io import decode_image

    path = tmp_path / "grey.png"
    Image.fromarray(np.full((40, 50), 7, np.uint8)).save(path)
    assert decode_image(path, lambda image: (image.mode, image.size)) == ("L", (50, 40))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageLoadError, match="mask file: not an image") as info:
        decode_image(tmp_path / "text.png", np.asarray, name="mask file")
    assert info.value.reason == "not_an_image"
    with pytest.raises(ImageLoadError, match="too_large|above the limit"):
        decode_image(path, np.asarray, max_pixels=100)

"""Writing results: images marked as synthetic, safe output names, mapping a crop back into a photo.

Every image the package writes goes through :func:`write_image` (PNG, JPEG or WebP): it is written
atomically with the usual permissions, and marked as synthetic twice over -- PNG text chunks
(``Software``, ``Description``, ``facehallu:*``; a comment in JPEG) and an XMP packet with the
standard vocabulary, IPTC ``Iptc4xmpExt:DigitalSourceType`` =
``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia``.

Example:
    >>> meta = synthetic_metadata(model="CascadedHallucinator", preset="lfw_cascade_small")
    >>> meta["facehallu:synthetic"]
    'true'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from keras_facehallu.atomic import atomic_path
from keras_facehallu.version import __version__

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
XMP_KEY = "XML:com.adobe.xmp"  # the PNG iTXt keyword that holds an XMP packet
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def synthetic_metadata(model: str, preset: str, description: str | None = None, **extra) -> dict:
    """The keys that mark an image as made by this package (PNG text chunks; XMP from them)."""
    meta = {
        "Software": f"keras-facehallu {__version__}",
        "Description": description or (
            "Synthetic image: everything outside the face mask was hallucinated by a neural "
            "network (keras-facehallu)."
        ),
        "facehallu:synthetic": "true",
        "facehallu:model": str(model),
        "facehallu:preset": str(preset),
        "facehallu:version": __version__,
    }
    meta.update({f"facehallu:{k}": str(v) for k, v in extra.items()})
    return meta


def synthetic_xmp(metadata: dict) -> bytes:
    """An XMP packet saying the image is synthetic (IPTC DigitalSourceType), from ``metadata``.

    Example:
        >>> b"trainedAlgorithmicMedia" in synthetic_xmp(synthetic_metadata("m", "p"))
        True
    """
    description = metadata.get("Description", "Synthetic image (keras-facehallu).")
    software = metadata.get("Software", f"keras-facehallu {__version__}")
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f"    Iptc4xmpExt:DigitalSourceType={quoteattr(DIGITAL_SOURCE_TYPE)}\n"
        f"    xmp:CreatorTool={quoteattr(software)}>\n"
        "   <dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">"
        f"{escape(description)}</rdf:li></rdf:Alt></dc:description>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


def write_image(
    path: str | os.PathLike,
    image: np.ndarray,
    metadata: dict | None = None,
    overwrite: bool = True,
    quality: int = 95,
) -> Path:
    """Writes a uint8 RGB (or gray) image atomically, marked with ``metadata``; returns the path.

    The format follows the suffix (``.png``, ``.jpg``/``.jpeg``, ``.webp``). PNG keeps every key of
    ``metadata`` as a text chunk; all formats get :func:`synthetic_xmp` when ``metadata`` marks
    the image as synthetic (``facehallu:synthetic`` = ``"true"``, see
    :func:`synthetic_metadata`). The file gets the usual permissions (``0o666 & ~umask``); with
    ``overwrite=False`` an existing file is left alone and ``FileExistsError`` is raised.

    Example:
        >>> write_image("out.jpg", image, synthetic_metadata("m", "p"))  # doctest: +SKIP
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{path}: cannot write a {path.suffix or 'suffix-less'} file; expected one of "
            f"{sorted(_FORMATS)}"
        )
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"write_image({path}): expected uint8 pixels, found {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    metadata = dict(metadata or {})
    xmp = synthetic_xmp(metadata) if metadata.get("facehallu:synthetic") == "true" else None
    options = {}
    if fmt == "PNG":
        info = PngInfo()
        for key, value in metadata.items():
            info.add_text(key, value)
        if xmp is not None:
            info.add_itxt(XMP_KEY, xmp.decode("utf-8"))
        options["pnginfo"] = info
    else:
        options["quality"] = quality
        if xmp is not None:
            options["xmp"] = xmp
        if fmt == "JPEG" and "Description" in metadata:
            options["comment"] = metadata["Description"]
    with atomic_path(path, overwrite=overwrite, suffix=path.suffix) as tmp:
        Image.fromarray(image).save(tmp, format=fmt, **options)
    return path


def write_png(
    path: str | os.PathLike,
    image: np.ndarray,
    metadata: dict | None = None,
    overwrite: bool = True,
) -> Path:
    """:func:`write_image` for a ``.png`` path (kept for the callers that name the format)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"write_png({path}): expected a .png path")
    return write_image(path, image, metadata, overwrite=overwrite)


def safe_stem(name: str, max_length: int = 100) -> str:
    """A file-name stem made of ``[A-Za-z0-9._-]`` only, never empty, never ``.`` or ``..``.

    Example:
        >>> safe_stem("../../etc/passwd"), safe_stem("Jean Dupont/001.jpg")
        ('etc_passwd', 'Jean_Dupont_001')
    """
    stem = str(name)
    for suffix in (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tiff", ".tif", ".gif"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = _UNSAFE.sub("_", stem).strip("._-")
    return (stem or "image")[:max_length]


class OutputNamer:
    """Unique, safe names inside one output folder (``stem``, ``stem-2``, ...)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder).resolve()
        self._used: set[str] = set()

    def stem(self, name: str) -> str:
        base = safe_stem(name)
        stem, n = base, 1
        while stem in self._used:
            n += 1
            stem = f"{base}-{n}"
        self._used.add(stem)
        return stem

    def path(self, filename: str) -> Path:
        """``folder / filename``, refusing anything that would land outside the folder.

        A symbolic link already at that name is refused (never written through), so a link
        planted in the output folder fails that one output, not the run.
        """
        name = str(filename)
        if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
            raise ValueError(
                f"output name {filename!r} would leave the output folder {self.folder}"
            )
        path = self.folder / name
        if path.is_symlink():
            raise ValueError(
                f"{path} is a symbolic link (to {os.readlink(path)}); refusing to write through "
                "it. Remove it or choose another output folder"
            )
        return path


def seam_alpha(size: int, feather: float = 0.08) -> np.ndarray:
    """Float32 [size, size, 1] weight of a crop pasted into a photo: 1 inside, easing to 0 at the
    crop's border over ``feather`` × ``size`` pixels (smoothstep), so the rotated square's edge
    does not show.

    Example:
        >>> a = seam_alpha(128)
        >>> float(a[64, 64, 0]), float(a[0, 64, 0]) < 0.01
        (1.0, True)
    """
    ramp = max(1.0, feather * size)
    centres = np.arange(size, dtype=np.float32) + 0.5
    edge = np.minimum(centres, size - centres)  # distance of each pixel centre to the border
    t = np.clip(edge / ramp, 0.0, 1.0)
    t = t * t * (3.0 - 2.0 * t)
    return np.minimum(t[:, None], t[None, :])[..., None].astype(np.float32)


def paste_into_photo(
    photo: np.ndarray, crop: np.ndarray, transform: np.ndarray, feather: float = 0.08
) -> np.ndarray:
    """Maps a 128×128 result back into the original photo with the alignment ``transform``.

    Args:
        photo: the original photo, uint8 [H, W, 3].
        crop: the result in crop coordinates, uint8 [S, S, 3].
        transform: the 2×3 photo→crop affine of the face pipeline.
        feather: width of the blended seam, as a fraction of the crop side (0: a hard edge).

    Returns:
        uint8 [H, W, 3]: the photo with the crop's area replaced, the border of the square blended
        into the photo (:func:`seam_alpha`).
    """
    from keras_facehallu.face.align import covered_box, unwarp_image

    # only the part of the photo the crop covers is blended (no photo-sized float copies)
    out = photo.copy()
    x0, y0, x1, y1 = covered_box(transform, crop.shape[0], photo.shape)
    if x1 <= x0 or y1 <= y0:
        return out
    transform = np.asarray(transform, np.float64)
    transform = np.concatenate(
        [transform[:, :2], (transform[:, 2] + transform[:, :2] @ [x0, y0])[:, None]], axis=1
    )
    height, width = y1 - y0, x1 - x0
    warped = unwarp_image(crop, transform, (height, width)).astype(np.float32)
    if feather > 0:
        coverage = seam_alpha(crop.shape[0], feather)
    else:
        coverage = np.ones(crop.shape[:2] + (1,), np.float32)
    alpha = unwarp_image(coverage, transform, (height, width)).reshape(height, width, 1)
    part = photo[y0:y1, x0:x1].astype(np.float32) * (1.0 - alpha) + warped * alpha
    out[y0:y1, x0:x1] = np.clip(np.rint(part), 0, 255).astype(np.uint8)
    return out

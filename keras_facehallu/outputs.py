"""Writing results: PNGs marked as synthetic, safe output names, mapping a crop back into a photo.

Every PNG the package writes carries text chunks saying it is synthetic and which model, preset and
package version made it (``Software``, ``Description``, ``facehallu:*``).

Example:
    >>> meta = synthetic_metadata(model="CascadedHallucinator", preset="lfw_cascade_small")
    >>> meta["facehallu:synthetic"]
    'true'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from keras_facehallu.atomic import atomic_path
from keras_facehallu.version import __version__

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def synthetic_metadata(model: str, preset: str, **extra) -> dict:
    """PNG text chunks that mark an image as made by this package."""
    meta = {
        "Software": f"keras-facehallu {__version__}",
        "Description": (
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


def write_png(
    path: str | os.PathLike,
    image: np.ndarray,
    metadata: dict | None = None,
    overwrite: bool = True,
) -> Path:
    """Writes a uint8 RGB (or gray) image as PNG atomically, with text ``metadata``.

    The file gets the usual permissions (``0o666 & ~umask``). With ``overwrite=False`` an existing
    file is left alone and ``FileExistsError`` is raised.
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    info = PngInfo()
    for key, value in (metadata or {}).items():
        info.add_text(key, value)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"write_png({path}): expected uint8 pixels, found {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    with atomic_path(path, overwrite=overwrite) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", pnginfo=info)
    return path


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


def paste_into_photo(photo: np.ndarray, crop: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Maps a 128×128 result back into the original photo with the alignment ``transform``.

    Args:
        photo: the original photo, uint8 [H, W, 3].
        crop: the result in crop coordinates, uint8 [S, S, 3].
        transform: the 2×3 photo→crop affine of the face pipeline.

    Returns:
        uint8 [H, W, 3]: the photo with the crop's area replaced (edges anti-aliased).
    """
    from keras_facehallu.face.align import unwarp_image

    height, width = photo.shape[:2]
    warped = unwarp_image(crop, transform, (height, width)).astype(np.float32)
    coverage = np.ones(crop.shape[:2] + (1,), np.float32)
    alpha = unwarp_image(coverage, transform, (height, width)).reshape(height, width, 1)
    out = photo.astype(np.float32) * (1.0 - alpha) + warped * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)

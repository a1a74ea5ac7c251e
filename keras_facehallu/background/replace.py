"""Background replacement: foreground mask (segmentation ∪ saliency ∪ face mask) + pyramid blending.

The paper's post-process: keep the face and the hallucinated context, put a background the user
supplies behind them, with no visible seam.

1. Foreground parts, each can be switched off: the person found by MediaPipe's selfie
   segmentation (:mod:`.segmentation`, probability > ``segmentation_threshold``), the region
   inside the outermost strong gradient contour (:mod:`.saliency`), and the face mask.
2. Their union is cleaned with morphology, sizes relative to the image's shorter side ``s``:
   closed with a ~``0.01 s`` kernel, holes filled, parts smaller than ``speck_area`` of the image
   removed.
3. Feathered: Gaussian blur with sigma ``feather * s`` gives the soft mask; face-mask pixels keep
   weight 1 (feathering would otherwise halve the ones on the foreground's edge).
4. The background is scaled to cover the image and centre-cropped, and the image is blended over
   it with a Laplacian pyramid (:mod:`.blend`).

If segmentation is on and finds no person (less than ``min_person_area`` of the image), a
:class:`NoPersonFoundWarning` is issued and the foreground falls back to face mask ∪ saliency.

Example:
    >>> from keras_facehallu import replace_background
    >>> out, mask = replace_background("face.png", "beach.jpg")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings

import cv2
import numpy as np

from keras_facehallu.background.blend import cover_resize, laplacian_blend, max_levels
from keras_facehallu.background.io import as_mask, as_rgb_uint8
from keras_facehallu.background.saliency import saliency_details
from keras_facehallu.preprocessing import from_uint8


class NoPersonFoundWarning(UserWarning):
    """Segmentation found no person; the face mask and saliency were used instead."""


def clean_mask(mask: np.ndarray, speck_area: float = 0.005) -> np.ndarray:
    """Closes, fills holes and removes specks of a bool mask [H, W] (sizes relative to it).

    A closing with a kernel of ~1% of the shorter side joins near parts; then the external
    contours enclosing at least ``speck_area`` of the image are drawn filled, which both fills
    the holes and drops the specks.

    Args:
        mask: bool [H, W].
        speck_area: parts smaller than this fraction of the image are removed.

    Example:
        >>> clean_mask(np.ones((8, 8), bool)).all()  # doctest: +SKIP
        True
    """
    height, width = mask.shape
    k = max(3, int(round(0.01 * min(height, width))) | 1)
    binary = mask.astype(np.uint8)
    closed = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)) | binary
    contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    minimum = speck_area * height * width
    keep = [c for c in contours if cv2.contourArea(c) >= minimum]
    filled = np.zeros((height, width), np.uint8)
    if keep:
        cv2.drawContours(filled, keep, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def feather_mask(mask: np.ndarray, feather: float = 0.02) -> np.ndarray:
    """Soft float32 [H, W] mask: Gaussian blur with sigma ``feather`` × the shorter side.

    Wide blurs run on a downscaled mask (sigma ~4 px there) and are scaled back, which is
    indistinguishable for a mask this smooth and much faster at 1024 px.
    """
    soft = mask.astype(np.float32)
    height, width = mask.shape
    sigma = feather * min(height, width)
    if sigma <= 0.3:
        return soft
    factor = max(1, int(sigma // 4))
    small = soft
    if factor > 1:
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        small = cv2.resize(soft, size, interpolation=cv2.INTER_AREA)
    scale = small.shape[0] / height
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma * scale, sigmaY=sigma * scale)
    if factor > 1:
        small = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(small, 0.0, 1.0)


def auto_levels(height: int, width: int, feather: float = 0.02) -> int:
    """Pyramid levels whose coarsest band is about as wide as the feathering (at least 2).

    Example:
        >>> auto_levels(128, 128), auto_levels(250, 250), auto_levels(1024, 1024)
        (3, 4, 6)
    """
    sigma = max(1.0, feather * min(height, width))
    levels = max(2, int(round(np.log2(sigma))) + 2)
    return int(min(levels, max_levels(height, width)))


def replace_background(
    image,
    background,
    face_mask=None,
    *,
    use_segmentation: bool = True,
    use_saliency: bool = True,
    use_face_mask: bool = True,
    levels: int | None = None,
    feather: float = 0.02,
    saliency_reach: float | None = 0.05,
    segmentation_threshold: float = 0.5,
    min_person_area: float = 0.01,
    speck_area: float = 0.005,
    segmentation_model=None,
    return_details: bool = False,
):
    """Puts ``background`` behind the person in ``image``, blended without a visible seam.

    Args:
        image: the (hallucinated) picture: path, uint8 RGB [H, W, 3] or float [-1, 1]; any size.
        background: path or array (grayscale and RGBA are converted, with a note in details);
            scaled to cover the image and centre-cropped.
        face_mask: optional face mask (path or array [H, W] / [H, W, 1], {0, 1} or 0/255),
            the same size as ``image``.
        use_segmentation: include the person found by the selfie-segmentation model.
        use_saliency: include the region inside the outermost strong gradient contour.
        use_face_mask: include ``face_mask``.
        levels: Laplacian pyramid levels, clamped to what the image size allows; ``None``: match
            the feathering width (:func:`auto_levels`). Too many levels tint the subject with the
            background's colours.
        feather: sigma of the mask's Gaussian feathering, as a fraction of the shorter side.
        saliency_reach: when a person was segmented, only saliency within this distance (fraction
            of the shorter side) of the person is added, so that hair or a hat the segmenter missed
            joins the foreground but distant background objects do not; ``None``: the plain union.
        segmentation_threshold: person probability above which a pixel is foreground.
        min_person_area: a person smaller than this fraction of the image counts as not found.
        speck_area: foreground parts smaller than this fraction of the image are removed.
        segmentation_model: optional ``.tflite`` path (default: the ``selfie_segmentation`` asset).
        return_details: also return a dict of what each part found.

    Returns:
        ``(composite, foreground_mask)``: composite like ``image`` (uint8 for uint8 and paths,
        float32 [-1, 1] for float input), foreground_mask float32 [H, W] in [0, 1].
        With ``return_details``, a third item: dict with ``segmentation``, ``saliency``,
        ``face_mask`` (areas as fractions of the image, ``None`` when off), ``fallback``,
        ``levels``, ``warnings``, ``notes``, ``masks`` (the bool parts and their cleaned union,
        ``"foreground"``) and, with saliency on, ``saliency_info`` (threshold, whether and why
        the region was discarded).

    Raises:
        FileNotFoundError, ValueError: unreadable files, wrong shapes or mismatched mask sizes.

    Example:
        >>> out, mask = replace_background(face_uint8, "beach.jpg", face_mask)  # doctest: +SKIP
    """
    is_path = isinstance(image, (str, os.PathLike))
    float_input = not is_path and np.issubdtype(np.asarray(image).dtype, np.floating)
    if float_input and np.ndim(image) == 4 and np.shape(image)[0] == 1:
        image = np.asarray(image)[0]
    rgb, notes = as_rgb_uint8(image, "image")
    height, width = rgb.shape[:2]
    bg, bg_notes = as_rgb_uint8(background, "background")
    notes += bg_notes
    if bg.shape[:2] != (height, width):
        notes.append(
            f"background: {bg.shape[1]}x{bg.shape[0]} scaled to cover {width}x{height} and "
            "centre-cropped"
        )
        bg = cover_resize(bg, height, width)
    if levels is None:
        levels = auto_levels(height, width, feather)
    face = None
    if face_mask is not None:
        face = as_mask(face_mask, "face_mask", height, width)
    details = {
        "segmentation": None,
        "saliency": None,
        "face_mask": None,
        "fallback": False,
        "levels": int(min(max(1, int(levels)), max_levels(height, width))),
        "warnings": [],
        "notes": notes,
        "masks": {},
    }
    parts = []
    person_found = True
    if use_segmentation:
        from keras_facehallu.background.segmentation import segment_person

        person = segment_person(rgb, segmentation_model) > segmentation_threshold
        details["segmentation"] = float(person.mean())
        details["masks"]["segmentation"] = person
        person_found = details["segmentation"] >= min_person_area
        if person_found:
            parts.append(person)
        else:
            message = (
                f"segmentation found no person (person area {details['segmentation']:.2%} < "
                f"min_person_area {min_person_area:.2%}); falling back to the face mask and "
                "saliency"
            )
            details["fallback"] = True
            details["warnings"].append(message)
            warnings.warn(message, NoPersonFoundWarning, stacklevel=2)
    if use_saliency:
        salient, sal_details = saliency_details(rgb)
        if saliency_reach is not None and use_segmentation and person_found:
            reach = max(1, int(round(saliency_reach * min(height, width))))
            near = cv2.dilate(person.astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8))
            salient = salient & near.astype(bool)
        details["saliency"] = float(salient.mean())
        details["saliency_info"] = sal_details
        details["masks"]["saliency"] = salient
        parts.append(salient)
    if face is not None and use_face_mask:
        details["face_mask"] = float(face.mean())
        details["masks"]["face_mask"] = face
        parts.append(face)
    union = np.zeros((height, width), bool)
    for part in parts:
        union |= part
    clean = clean_mask(union, speck_area) if union.any() else union
    if face is not None and use_face_mask:
        clean |= face  # the face is never lost, even as a small speck
    details["masks"]["foreground"] = clean
    if not clean.any():
        message = "no foreground found by any enabled part: the result is the background alone"
        details["warnings"].append(message)
        warnings.warn(message, UserWarning, stacklevel=2)
    soft = feather_mask(clean, feather)
    if face is not None and use_face_mask:
        soft = np.maximum(soft, face.astype(np.float32))  # face pixels keep full weight
    if float_input:
        fg = np.asarray(image, np.float32)
        if fg.ndim == 2 or fg.shape[-1] != 3:
            fg = from_uint8(rgb)
        composite = laplacian_blend(fg, from_uint8(bg), soft, levels)
        composite = np.clip(composite, -1.0, 1.0)
    else:
        composite = laplacian_blend(rgb, bg, soft, levels)
    if return_details:
        return composite, soft, details
    return composite, soft

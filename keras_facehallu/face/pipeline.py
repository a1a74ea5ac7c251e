"""Photo → the paper's input: detect, find 68 landmarks, align about the eyes, mask.

:func:`prepare_face` takes one photo (path, bytes or numpy array) and returns a :class:`FaceResult`;
:func:`prepare_faces` does the same for many. Problems with one photo never raise: a file that
cannot be read, no face, or a face cut by the photo's border gives a result with ``ok=False``, a
short ``reason`` code and a ``message`` naming the file. Wrong argument types and values still
raise.

Large photos (up to ``max_pixels``, 40 MP by default) cost a bounded amount of memory and time:
MTCNN runs on a copy shrunk to at most 1600 px a side and its boxes and keypoints are mapped back
(:mod:`keras_facehallu.face.detect`); the 68 landmarks and the alignment use the full-resolution
photo, read in place, with area averaging where the crop shrinks a large face by more than 2×
(:func:`keras_facehallu.face.align.warp_image`). Photos of at most 1600 px a side are processed
exactly as before. :func:`memory_budget` states what one photo may cost (1.2 GiB at 40 MP; the
former pipeline took 4.5–20 GB and over a minute for a 6300×6300 PNG, see BENCHMARKS.md).

Skip reasons: ``missing``, ``empty``, ``not_an_image``, ``corrupt``, ``too_large``, ``too_small``,
``bad_array`` (from :mod:`keras_facehallu.face.io`), ``no_face``, ``face_cut_by_border``,
``landmarks_failed``.

Example:
    >>> from keras_facehallu import prepare_face
    >>> result = prepare_face("photo.jpg")  # doctest: +SKIP
    >>> result.ok, result.image.shape, result.mask.shape  # doctest: +SKIP
    (True, (128, 128, 3), (128, 128, 1))
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_facehallu.face import align, canonical
from keras_facehallu.face.detect import FaceDetector, get_detector
from keras_facehallu.face.io import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIZE,
    ImageLoadError,
    describe_source,
    load_image,
)
from keras_facehallu.face.landmarks import LandmarkPredictor, get_landmark_predictor
from keras_facehallu.face.mask import apply_mask, face_mask

SELECT = ("largest", "central")
MEMORY_BYTES_PER_PIXEL = 12
MEMORY_FIXED_BYTES = 768 << 20


def memory_budget(width: int, height: int) -> int:
    """The most memory (bytes) :func:`prepare_face` may add for one ``width``×``height`` photo,
    on top of the loaded MTCNN and dlib models: :data:`MEMORY_BYTES_PER_PIXEL` (12) bytes a pixel
    plus :data:`MEMORY_FIXED_BYTES` (768 MiB); 1226 MiB at the 40 MP limit.

    The per-pixel part is decoding (Pillow's 4-byte pixels, its packed copy and the uint8 RGB
    array, about 10 bytes a pixel); the fixed part is MTCNN on a copy of at most
    :data:`~keras_facehallu.face.detect.DETECT_MAX_SIDE` pixels a side (its cost grows with the
    number of candidate boxes: 0.3–0.7 GB for a busy 1600×1600 scene). Landmarks and the warp
    read the photo in place and copy only the part the crop covers, so nothing else grows with
    the photo. ``benchmarks/bench_large_photo.py`` measures the peak against this budget.

    Example:
        >>> round(memory_budget(6300, 6300) / 2**20)
        1222
    """
    return MEMORY_BYTES_PER_PIXEL * int(width) * int(height) + MEMORY_FIXED_BYTES


@dataclasses.dataclass
class FaceResult:
    """One prepared face, or the reason a photo gave none.

    Attributes:
        source: the file (or ``"<array>"``) it came from.
        ok: whether the face was aligned; the fields below the reason are ``None`` otherwise.
        reason: skip reason code (``None`` when ok).
        message: human-readable explanation naming the file.
        num_faces: faces the detector found in the photo.
        face_index: 0 for the largest face, 1 for the next, …
        image: aligned crop, uint8 ``[size, size, 3]``.
        mask: face mask, uint8 ``{0, 1}`` ``[size, size, 1]``.
        masked_image: ``image`` black outside the mask.
        landmarks: ``[68, 2]`` float32 in crop pixels.
        transform: ``[2, 3]`` float64, photo → crop.
        confidence: detection confidence.
        box: detection box ``(x, y, w, h)`` in the photo.
        outside_fraction: fraction of the crop that lies outside the photo (border-filled).
    """

    source: str
    ok: bool
    reason: str | None = None
    message: str = ""
    num_faces: int = 0
    face_index: int = 0
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    masked_image: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    transform: np.ndarray | None = None
    confidence: float | None = None
    box: tuple | None = None
    outside_fraction: float | None = None


def _skip(source: str, reason: str, message: str, num_faces: int = 0) -> FaceResult:
    return FaceResult(source=source, ok=False, reason=reason, message=message, num_faces=num_faces)


def keypoint_box(keypoints: dict) -> tuple[float, float, float, float]:
    """A square, dlib-detector-like box ``(x, y, w, h)`` from MTCNN's eye and mouth points."""
    eyes = (np.asarray(keypoints["left_eye"]) + np.asarray(keypoints["right_eye"])) / 2
    mouth = (np.asarray(keypoints["mouth_left"]) + np.asarray(keypoints["mouth_right"])) / 2
    side = 2.3 * max(float(np.linalg.norm(mouth - eyes)), 1.0)
    centre = np.array([(eyes[0] + mouth[0]) / 2, eyes[1] + 0.15 * side])
    return (float(centre[0] - side / 2), float(centre[1] - side / 2), side, side)


def _landmarks(rgb, face, predictor):
    """68 points from the MTCNN box; when they disagree with MTCNN's eyes by more than half the
    eye distance, from a box built on MTCNN's five points instead. Returns (points, error, ref)."""
    points = predictor.predict(rgb, face.box)
    keys = face.keypoints
    if not all(k in keys for k in ("left_eye", "right_eye", "mouth_left", "mouth_right")):
        return points, 0.0, 1.0
    detected = np.asarray([keys["left_eye"], keys["right_eye"]])
    reference = max(float(np.linalg.norm(detected[1] - detected[0])), 1.0)

    def error(candidate):
        return float(np.max(np.linalg.norm(np.stack(align.eye_centres(candidate)) - detected,
                                           axis=1)))

    best, best_error = points, error(points)
    if best_error > 0.5 * reference:
        retry = predictor.predict(rgb, keypoint_box(keys))
        if error(retry) < best_error:
            best, best_error = retry, error(retry)
    return best, best_error, reference


def _align_one(rgb, face, index, num_faces, name, predictor, *, size, left_eye, right_eye,
               forehead_margin, border, max_landmarks_outside, max_box_outside):
    points, error, reference = _landmarks(rgb, face, predictor)
    if error > 0.5 * reference:
        return _skip(
            name, "landmarks_failed",
            f"{name}: face {index}: the 68 landmarks disagree with the detector's eyes "
            f"(off by {error:.1f} px, eye distance {reference:.1f} px)",
            num_faces,
        )
    height, width = rgb.shape[:2]
    outside = (points[:, 0] < 0) | (points[:, 0] > width - 1)
    outside |= (points[:, 1] < 0) | (points[:, 1] > height - 1)
    x, y, w, h = face.box
    visible = max(0.0, min(x + w, width) - max(x, 0.0)) * max(0.0, min(y + h, height) - max(y, 0.0))
    box_outside = 1.0 - visible / max(w * h, 1e-6)
    if int(outside.sum()) > max_landmarks_outside or box_outside > max_box_outside:
        return _skip(
            name, "face_cut_by_border",
            f"{name}: face {index} is cut by the photo's border ({int(outside.sum())} of 68 "
            f"landmarks and {100 * box_outside:.0f}% of the face box outside the "
            f"{width}x{height} photo; at most {max_landmarks_outside} landmarks and "
            f"{100 * max_box_outside:.0f}% allowed)",
            num_faces,
        )
    transform = align.alignment_transform(points, size, left_eye, right_eye)
    crop = align.warp_image(rgb, transform, size, border)
    crop_points = align.transform_points(points, transform).astype(np.float32)
    mask = face_mask(crop_points, size, forehead_margin)
    return FaceResult(
        source=name,
        ok=True,
        message=f"{name}: face {index} of {num_faces} aligned",
        num_faces=num_faces,
        face_index=index,
        image=crop,
        mask=mask,
        masked_image=apply_mask(crop, mask),
        landmarks=crop_points,
        transform=transform,
        confidence=face.confidence,
        box=face.box,
        outside_fraction=align.outside_fraction(transform, rgb.shape, size),
    )


def prepare_face(
    image,
    *,
    all_faces: bool = False,
    size: int = canonical.CROP_SIZE,
    left_eye=canonical.LEFT_EYE,
    right_eye=canonical.RIGHT_EYE,
    forehead_margin: float = 0.0,
    border: str = "reflect",
    min_confidence: float = 0.9,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_size: int = DEFAULT_MIN_SIZE,
    max_landmarks_outside: int = 6,
    max_box_outside: float = 0.15,
    select: str = "largest",
    detector: FaceDetector | None = None,
    predictor: LandmarkPredictor | None = None,
):
    """Detects, aligns and masks the face in one photo.

    Args:
        image: a path, encoded bytes or a numpy array (see
            :func:`~keras_facehallu.face.io.load_image`).
        all_faces: return a list with every face (largest first) instead of the largest one.
        size: crop size in pixels.
        left_eye, right_eye: canonical eye centres as fractions of ``size``.
        forehead_margin: keep this much forehead above the eyebrows (fraction of brow-to-chin).
        border: how crop pixels outside the photo are filled: ``"reflect"``, ``"replicate"`` or
            ``"constant"`` (black).
        min_confidence: detections scored below this are ignored.
        max_pixels: refuse larger photos before decoding them.
        min_size: refuse photos whose shorter side is smaller.
        max_landmarks_outside, max_box_outside: a face with more landmarks, or a larger fraction of
            its detection box, outside the photo is skipped as cut by the border.
        select: which face is returned without ``all_faces``: ``"largest"``, or ``"central"``
            (the largest face whose box contains the photo's centre, else the largest; right
            for centred datasets such as LFW, where a bigger bystander can appear).
        detector, predictor: reuse instances (default: one shared per process).

    Returns:
        A :class:`FaceResult` (a list of them with ``all_faces=True``; a one-element list holding
        the failure when nothing was aligned).

    Example:
        >>> result = prepare_face("photo.jpg")  # doctest: +SKIP
        >>> if result.ok:  # doctest: +SKIP
        ...     model_in = (result.masked_image, result.mask)
    """
    name = describe_source(image)
    if border not in align.BORDERS:
        raise ValueError(f"border: expected one of {align.BORDERS}, found {border!r}")
    if select not in SELECT:
        raise ValueError(f"select: expected one of {SELECT}, found {select!r}")
    if int(size) < 16:
        raise ValueError(f"size: expected at least 16 pixels, found {size}")
    detector = detector or get_detector(min_confidence)
    predictor = predictor or get_landmark_predictor()
    try:
        rgb = load_image(image, max_pixels=max_pixels, min_size=min_size)
    except ImageLoadError as exc:
        result = _skip(name, exc.reason, str(exc))
        return [result] if all_faces else result
    faces = [f for f in detector.detect(rgb) if f.confidence >= min_confidence]
    if not faces:
        max_side = getattr(detector, "max_side", None)
        shrunk = ""
        if max_side is not None and max(rgb.shape[:2]) > max_side:
            shrunk = f", searched on a copy shrunk to {max_side} px a side"
        result = _skip(
            name, "no_face",
            f"{name}: no face found (MTCNN, confidence >= {min_confidence}) in the "
            f"{rgb.shape[1]}x{rgb.shape[0]} photo{shrunk}",
        )
        return [result] if all_faces else result
    options = dict(size=int(size), left_eye=left_eye, right_eye=right_eye,
                   forehead_margin=forehead_margin, border=border,
                   max_landmarks_outside=max_landmarks_outside, max_box_outside=max_box_outside)
    if not all_faces:
        index = 0
        if select == "central":
            cy, cx = (rgb.shape[0] - 1) / 2, (rgb.shape[1] - 1) / 2
            central = [i for i, f in enumerate(faces)
                       if f.box[0] <= cx <= f.box[0] + f.box[2]
                       and f.box[1] <= cy <= f.box[1] + f.box[3]]
            index = central[0] if central else 0
        return _align_one(rgb, faces[index], index, len(faces), name, predictor, **options)
    return [
        _align_one(rgb, face, i, len(faces), name, predictor, **options)
        for i, face in enumerate(faces)
    ]


def prepare_faces(items, *, progress: bool = False, **kwargs) -> list:
    """:func:`prepare_face` for many photos; one entry per item, in order, never raising per item.

    Args:
        items: iterable of paths, bytes or numpy arrays.
        progress: show a tqdm progress bar.
        **kwargs: passed to :func:`prepare_face` (e.g. ``all_faces=True``, ``size``).

    Returns:
        A list with a :class:`FaceResult` per item (a list of them per item with ``all_faces``).

    Example:
        >>> results = prepare_faces(["a.jpg", "b.png"])  # doctest: +SKIP
        >>> [r.reason for r in results if not r.ok]  # doctest: +SKIP
    """
    items = list(items)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="prepare_faces", unit="img")
    return [prepare_face(item, **kwargs) for item in items]

"""Face detection with MTCNN (the ``mtcnn`` package; its weights ship inside the wheel).

:class:`FaceDetector` returns every face above a confidence threshold, largest first. An image with
no face gives an empty list, never an exception, so one bad photo cannot stop a batch.

Large photos: MTCNN's image pyramid costs memory and time in proportion to the photo's pixels (a
6300x6300 photo took 89 s and 4.5 GB). A photo whose longest side exceeds ``max_side``
(:data:`DETECT_MAX_SIDE`, 1600 px) is detected on a uint8 copy shrunk to that side (OpenCV
``INTER_AREA``), and the boxes and keypoints are mapped back to the photo's pixels; smaller photos
are detected as they are, unchanged. The smallest face found in a shrunk photo is
``min_face_size`` pixels of the copy, i.e. ``min_face_size * longest_side / max_side`` photo pixels
(75 px in a 6000 px photo).

Example:
    >>> from keras_facehallu.face.detect import FaceDetector
    >>> faces = FaceDetector().detect(rgb_uint8)  # doctest: +SKIP
    >>> faces[0].box, faces[0].confidence  # doctest: +SKIP
    ((81.0, 69.0, 88.0, 115.0), 0.996)
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
DETECT_MAX_SIDE = 1600


def shrink_for_detection(image: np.ndarray, max_side: int | None = DETECT_MAX_SIDE):
    """A uint8 copy of ``image`` whose longest side is at most ``max_side`` (its short side at
    least 64 px), and the factors ``(sx, sy)`` = photo pixels per copy pixel; the image itself and
    ``(1.0, 1.0)`` when it is small enough (or ``max_side`` is None).

    Example:
        >>> small, (sx, sy) = shrink_for_detection(np.zeros((3000, 4000, 3), np.uint8))
        >>> small.shape, sx, sy
        ((1200, 1600, 3), 2.5, 2.5)
    """
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image, (1.0, 1.0)
    import cv2

    # a very long, thin photo keeps at least 64 px on its short side (MTCNN needs 12)
    factor = max(max_side / max(height, width), min(1.0, 64 / min(height, width)))
    new_width = max(1, min(width, round(width * factor)))
    new_height = max(1, min(height, round(height * factor)))
    small = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA)
    return small, (width / new_width, height / new_height)


def _to_photo(x: float, y: float, scale: tuple[float, float]) -> tuple[float, float]:
    """A point of the shrunk copy in photo pixels (pixel centres map onto pixel centres)."""
    return (x + 0.5) * scale[0] - 0.5, (y + 0.5) * scale[1] - 0.5


@dataclasses.dataclass(frozen=True)
class FaceDetection:
    """One detected face, in the photo's pixel coordinates.

    Args:
        box: ``(x, y, width, height)``, not clipped to the photo (a face cut by the border has a
            box reaching outside it).
        confidence: MTCNN's score in [0, 1].
        keypoints: the five MTCNN points by name (``left_eye`` is the eye on the image's left).
    """

    box: tuple[float, float, float, float]
    confidence: float
    keypoints: dict

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


class FaceDetector:
    """MTCNN face detector.

    Args:
        min_confidence: faces scored below this are dropped.
        min_face_size: the smallest face (pixels) MTCNN looks for, in the copy it runs on.
        device: TensorFlow device MTCNN runs on.
        max_side: photos with a longer side are detected on a copy shrunk to this side and the
            results mapped back (see the module docstring); ``None`` detects on the full photo.

    Example:
        >>> detector = FaceDetector(min_confidence=0.9)
        >>> detector.detect(np.zeros((64, 64, 3), np.uint8))  # doctest: +SKIP
        []
    """

    def __init__(self, min_confidence: float = 0.9, min_face_size: int = 20, device="CPU:0",
                 max_side: int | None = DETECT_MAX_SIDE):
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence: expected a value in [0, 1], found {min_confidence}")
        if max_side is not None and int(max_side) < 64:
            raise ValueError(f"max_side: expected None or at least 64 pixels, found {max_side}")
        self.max_side = None if max_side is None else int(max_side)
        self.min_confidence = float(min_confidence)
        self.min_face_size = int(min_face_size)
        self.device = device
        self._mtcnn = None

    @property
    def mtcnn(self):
        if self._mtcnn is None:
            from mtcnn import MTCNN

            self._mtcnn = MTCNN(device=self.device)
        return self._mtcnn

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces in an RGB uint8 ``[H, W, 3]`` image, largest box first, in its pixels."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image: expected RGB uint8 [H, W, 3], found {image.dtype} {image.shape}"
            )
        small, scale = shrink_for_detection(image, self.max_side)
        raw = self.mtcnn.detect_faces(
            small, fit_to_image=False, min_face_size=self.min_face_size
        )
        shrunk = small is not image
        faces = []
        for face in raw or []:
            confidence = float(face["confidence"])
            if confidence < self.min_confidence:
                continue
            x, y, w, h = (float(v) for v in face["box"])
            if w <= 1 or h <= 1:
                continue
            points = {
                k: (float(face["keypoints"][k][0]), float(face["keypoints"][k][1]))
                for k in KEYPOINTS
                if k in face.get("keypoints", {})
            }
            if shrunk:
                x, y = _to_photo(x, y, scale)
                w, h = w * scale[0], h * scale[1]
                points = {k: _to_photo(*p, scale) for k, p in points.items()}
            faces.append(FaceDetection((x, y, w, h), confidence, points))
        faces.sort(key=lambda f: (-f.area, -f.confidence))
        return faces


@functools.lru_cache(maxsize=4)
def get_detector(min_confidence: float = 0.9, min_face_size: int = 20,
                 max_side: int | None = DETECT_MAX_SIDE) -> FaceDetector:
    """A shared :class:`FaceDetector` per setting (MTCNN is built once per process)."""
    return FaceDetector(min_confidence=min_confidence, min_face_size=min_face_size,
                        max_side=max_side)

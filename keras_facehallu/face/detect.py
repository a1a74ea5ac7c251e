"""Face detection with MTCNN (the ``mtcnn`` package; its weights ship inside the wheel).

:class:`FaceDetector` returns every face above a confidence threshold, largest first. An image with
no face gives an empty list, never an exception, so one bad photo cannot stop a batch.

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
        min_face_size: the smallest face (pixels) MTCNN looks for.
        device: TensorFlow device MTCNN runs on.

    Example:
        >>> detector = FaceDetector(min_confidence=0.9)
        >>> detector.detect(np.zeros((64, 64, 3), np.uint8))  # doctest: +SKIP
        []
    """

    def __init__(self, min_confidence: float = 0.9, min_face_size: int = 20, device="CPU:0"):
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence: expected a value in [0, 1], found {min_confidence}")
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
        """Faces in an RGB uint8 ``[H, W, 3]`` image, largest box first."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image: expected RGB uint8 [H, W, 3], found {image.dtype} {image.shape}"
            )
        raw = self.mtcnn.detect_faces(
            image, fit_to_image=False, min_face_size=self.min_face_size
        )
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
            faces.append(FaceDetection((x, y, w, h), confidence, points))
        faces.sort(key=lambda f: (-f.area, -f.confidence))
        return faces


@functools.lru_cache(maxsize=4)
def get_detector(min_confidence: float = 0.9, min_face_size: int = 20) -> FaceDetector:
    """A shared :class:`FaceDetector` per setting (MTCNN is built once per process)."""
    return FaceDetector(min_confidence=min_confidence, min_face_size=min_face_size)

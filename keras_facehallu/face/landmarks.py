"""68 facial landmarks with dlib's shape predictor, run on an MTCNN box.

The model file ``shape_predictor_68_face_landmarks.dat`` (iBUG 300-W 68-point scheme) is the asset
``shape_predictor_68``; it is taken from the installed ``face_recognition_models`` package, the
cache, or its public URL, and always checked against its sha256 (see :mod:`keras_facehallu.assets`).

Point indices: jaw 0–16, eyebrows 17–26, nose 27–35, eyes 36–41 (the eye on the image's left)
and 42–47, mouth 48–67.

Example:
    >>> from keras_facehallu.face.landmarks import LandmarkPredictor
    >>> points = LandmarkPredictor().predict(rgb_uint8, (81, 69, 88, 115))  # doctest: +SKIP
    >>> points.shape  # doctest: +SKIP
    (68, 2)
"""

from __future__ import annotations

import functools

import numpy as np

from keras_facehallu.assets import ASSETS, get_asset

SHAPE_PREDICTOR_68 = ASSETS["shape_predictor_68"]

NUM_LANDMARKS = 68
JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE = tuple(range(27, 36))
EYE_ON_IMAGE_LEFT = tuple(range(36, 42))
EYE_ON_IMAGE_RIGHT = tuple(range(42, 48))
MOUTH = tuple(range(48, 68))


class LandmarkPredictor:
    """dlib's 68-point shape predictor.

    Args:
        asset: the registered asset name of the ``.dat`` model.

    Example:
        >>> predictor = LandmarkPredictor()  # doctest: +SKIP
        >>> predictor.predict(rgb_uint8, box_xywh)  # doctest: +SKIP
    """

    def __init__(self, asset: str = "shape_predictor_68"):
        self.asset = asset
        self._predictor = None

    @property
    def predictor(self):
        if self._predictor is None:
            import dlib

            self._predictor = dlib.shape_predictor(str(get_asset(self.asset)))
        return self._predictor

    def predict(self, image: np.ndarray, box) -> np.ndarray:
        """Landmarks ``[68, 2]`` float32 (x, y) of the face in ``box`` = ``(x, y, w, h)``."""
        import dlib

        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image: expected RGB uint8 [H, W, 3], found {image.dtype} {image.shape}"
            )
        x, y, w, h = (float(v) for v in box)
        if w <= 0 or h <= 0:
            raise ValueError(f"box: expected a positive width and height, found {tuple(box)}")
        rect = dlib.rectangle(round(x), round(y), round(x + w), round(y + h))
        shape = self.predictor(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


@functools.lru_cache(maxsize=2)
def get_landmark_predictor(asset: str = "shape_predictor_68") -> LandmarkPredictor:
    """A shared :class:`LandmarkPredictor` (the model is loaded once per process)."""
    return LandmarkPredictor(asset)

"""Face pipeline: load a photo safely, detect (MTCNN), 68 landmarks (dlib), align, mask.

Example:
    >>> from keras_facehallu.face import prepare_face
    >>> result = prepare_face("photo.jpg")  # doctest: +SKIP
"""

from keras_facehallu.face.io import ImageLoadError, load_image
from keras_facehallu.face.pipeline import FaceResult, prepare_face, prepare_faces

__all__ = ["FaceResult", "ImageLoadError", "load_image", "prepare_face", "prepare_faces"]

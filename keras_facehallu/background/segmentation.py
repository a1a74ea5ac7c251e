"""Person segmentation with MediaPipe's selfie-segmentation model, run by the TFLite interpreter.

The model (``selfie_segmentation.tflite``, MediaPipe's general 256×256 model, Apache-2.0) is an
asset: :func:`keras_facehallu.assets.get_asset` finds it in ``$KERAS_FACEHALLU_ASSETS``, the cache
(``python -m keras_facehallu.assets fetch selfie_segmentation`` extracts it from the
``mediapipe==0.10.21`` wheel) or downloads it. The ``mediapipe`` package itself is never
imported (it pins numpy<2 and an old protobuf); the model runs on LiteRT (``ai_edge_litert``) or,
when that is not installed, ``tf.lite.Interpreter``.

Pre/post-processing follows MediaPipe's ``selfie_segmentation_cpu.pbtxt``: the RGB image is
stretched (aspect ratio not kept) to the model's 256×256 input with values in [0, 1]; the output is
already a probability (the graph uses ``activation: NONE``; the model ends in a sigmoid), and is
resized back to the image size.

Example:
    >>> import numpy as np
    >>> from keras_facehallu.background.segmentation import segment_person
    >>> prob = segment_person(np.zeros((128, 128, 3), np.uint8))  # doctest: +SKIP
    >>> prob.shape, prob.dtype  # doctest: +SKIP
    ((128, 128), dtype('float32'))
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from keras_facehallu.assets import ASSETS, get_asset

# The sha256 below is that of the copy inside the PyPI wheel mediapipe==0.10.21
# (mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite); the URL is where MediaPipe
# publishes the same model.
SELFIE_SEGMENTATION = ASSETS["selfie_segmentation"]


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # LiteRT not installed: TensorFlow's own interpreter
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter


class PersonSegmenter:
    """Runs the selfie-segmentation model on RGB images of any size.

    Args:
        model_path: a ``.tflite`` file; default: the verified ``selfie_segmentation`` asset.
        num_threads: interpreter threads (``None``: the interpreter's default).

    Example:
        >>> segmenter = PersonSegmenter()  # doctest: +SKIP
        >>> prob = segmenter(image_uint8)  # [H, W] float32 in [0, 1]  # doctest: +SKIP
    """

    def __init__(self, model_path=None, num_threads: int | None = None):
        self.model_path = str(model_path or get_asset(SELFIE_SEGMENTATION))
        self.num_threads = num_threads
        from keras_facehallu.startup import native_stderr_to_file

        with native_stderr_to_file():  # "INFO: Created TensorFlow Lite XNNPACK delegate ..."
            self._interpreter = _interpreter_class()(
                model_path=self.model_path, num_threads=num_threads
            )
            self._interpreter.allocate_tensors()
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"{self.model_path}: expected a model with 1 input and 1 output, found "
                f"{len(inputs)} and {len(outputs)}"
            )
        self._input = inputs[0]
        self._output = outputs[0]
        shape = tuple(int(d) for d in self._input["shape"])
        if len(shape) != 4 or shape[3] != 3 or self._input["dtype"] != np.float32:
            raise ValueError(
                f"{self.model_path}: expected a float32 [1, H, W, 3] input, found "
                f"{self._input['dtype'].__name__} {list(shape)}"
            )
        self.input_size = (shape[1], shape[2])  # (height, width)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Person probability, float32 [H, W] in [0, 1], for a uint8 RGB image [H, W, 3]."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image: expected uint8 RGB [H, W, 3], found {image.dtype} {list(image.shape)}"
            )
        height, width = image.shape[:2]
        in_h, in_w = self.input_size
        interp = cv2.INTER_AREA if (height > in_h or width > in_w) else cv2.INTER_LINEAR
        tensor = cv2.resize(image, (in_w, in_h), interpolation=interp).astype(np.float32) / 255.0
        self._interpreter.set_tensor(self._input["index"], tensor[None])
        self._interpreter.invoke()
        prob = np.array(self._interpreter.get_tensor(self._output["index"])[0], np.float32)
        prob = prob.reshape(prob.shape[0], prob.shape[1])
        prob = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(prob, 0.0, 1.0)


@functools.lru_cache(maxsize=4)
def get_segmenter(model_path: str | None = None) -> PersonSegmenter:
    """A :class:`PersonSegmenter` built once per model path and reused."""
    return PersonSegmenter(model_path)


def segment_person(image: np.ndarray, model_path: str | None = None) -> np.ndarray:
    """Person probability map of a uint8 RGB image.

    Args:
        image: uint8 RGB [H, W, 3], any size.
        model_path: optional ``.tflite`` file; default: the ``selfie_segmentation`` asset.

    Returns:
        float32 [H, W] in [0, 1].

    Example:
        >>> prob = segment_person(image)  # doctest: +SKIP
        >>> person = prob > 0.5  # doctest: +SKIP
    """
    return get_segmenter(None if model_path is None else str(model_path))(image)

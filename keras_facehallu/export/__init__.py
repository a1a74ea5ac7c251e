"""Export a trained hallucinator: SavedModel for TF-Serving, ONNX and LiteRT.

From any folder; ``savedmodel`` needs the ``serving`` extra (TF-Serving's config and warm-up
protos), ``onnx`` and ``litert`` the ``export`` extra::

    facehallu-export savedmodel --model model.keras --model-dir models --name facehallu
    facehallu-export onnx --model model.keras --out facehallu.onnx
    facehallu-export litert --model model.keras --out facehallu.tflite
"""

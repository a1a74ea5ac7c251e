"""Export a trained hallucinator: SavedModel for TF-Serving, ONNX and LiteRT.

Run from the repository root::

    python -m export savedmodel --model model.keras --model-dir models --name facehallu
    python -m export onnx --model model.keras --out facehallu.onnx
    python -m export litert --model model.keras --out facehallu.tflite
"""

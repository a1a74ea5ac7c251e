"""ONNX and LiteRT exports through Keras 3's ``model.export(format="onnx" | "litert")``.

Both artifacts take the same float pair as the Keras model — ``masked_image`` float32
[N,128,128,3] in [-1,1] and ``mask`` float32 [N,128,128,1] in {0,1}, batch dynamic — and return the
model's outputs ``image_8`` … ``image_128`` (float32, [-1,1]). :func:`check_parity` runs the file
with onnxruntime / the LiteRT interpreter and reports the largest difference from Keras.

Example:
    facehallu-export onnx --model model.keras --out facehallu.onnx
    facehallu-export litert --model model.keras --out facehallu.tflite
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from keras_facehallu.export.loading import (
    ExportError,
    add_model_arguments,
    load_model,
    run_export,
)

FORMATS = {"onnx": ".onnx", "litert": ".tflite"}


def export_portable(model, path, fmt: str) -> Path:
    """Writes ``model`` to ``path`` as ``fmt`` (``"onnx"`` or ``"litert"``).

    Args:
        model: the Keras hallucinator.
        path: the output file.
        fmt: ``"onnx"`` or ``"litert"``.

    Returns:
        The written path.

    Raises:
        ExportError: the format is unknown or the converter failed (its reason is included).

    Example:
        >>> export_portable(model, "facehallu.onnx", "onnx")  # doctest: +SKIP
    """
    if fmt not in FORMATS:
        raise ExportError(f"format: expected one of {sorted(FORMATS)}, found {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not getattr(model, "_called", True):
        # a model fresh from load_model has never been called; Keras' ONNX export needs one call
        image, mask = sample_inputs(1)
        model({"masked_image": image, "mask": mask}, training=False)
    try:
        model.export(str(path), format=fmt, verbose=False)
    except Exception as err:  # the converters raise many types; report any of them clearly
        raise ExportError(f"cannot export to {fmt}: {type(err).__name__}: {err}") from err
    if not path.is_file():
        raise ExportError(f"cannot export to {fmt}: the converter wrote no file at {path}")
    return path


def run_onnx(path, masked_image, mask) -> dict[str, np.ndarray]:
    """Runs an exported ONNX file with onnxruntime on float inputs; returns outputs by name."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"masked_image": np.asarray(masked_image, np.float32),
             "mask": np.asarray(mask, np.float32)}
    names = [out.name for out in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def run_litert(path, masked_image, mask) -> dict[str, np.ndarray]:
    """Runs an exported LiteRT file (``serving_default`` signature); returns outputs by name."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - ai-edge-litert is in the export extra
        from tensorflow.lite import Interpreter
    interpreter = Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner("serving_default")
    outputs = runner(masked_image=np.asarray(masked_image, np.float32),
                     mask=np.asarray(mask, np.float32))
    return {name: np.asarray(value) for name, value in outputs.items()}


def sample_inputs(batch: int = 2, seed: int = 0):
    """A seeded float (masked_image, mask) pair in the model's conventions."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((batch, 128, 128, 1), np.float32)
    mask[:, 30:100, 36:92] = 1.0
    image = rng.uniform(-1.0, 1.0, (batch, 128, 128, 3)).astype(np.float32) * mask
    return image, mask


def check_parity(model, path, fmt: str, batch: int = 2, seed: int = 0) -> float:
    """Largest absolute difference between the exported file and ``model`` over all outputs.

    The reference is the Keras model called eagerly: with oneDNN on, TensorFlow's graph mode
    (``model.predict``) rounds differently from eager mode, and the converters follow eager.
    """
    image, mask = sample_inputs(batch, seed)
    expected = model({"masked_image": image, "mask": mask}, training=False)
    run = run_onnx if fmt == "onnx" else run_litert
    found = run(path, image, mask)
    worst = 0.0
    for name, value in expected.items():
        if name not in found:
            raise ExportError(f"{path}: output {name!r} missing, found {sorted(found)}")
        worst = max(worst, float(np.max(np.abs(np.asarray(value) - found[name]))))
    return worst


def main(argv=None, fmt: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"facehallu-export {fmt or 'onnx|litert'}",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    if fmt is None:
        parser.add_argument("--format", choices=sorted(FORMATS), required=True)
    parser.add_argument("--out", type=Path, required=True, help="output file")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest allowed difference from Keras in the check")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check")
    args = parser.parse_args(argv)
    fmt = fmt or args.format

    def write() -> Path:
        model = load_model(args.model, args.config, args.weights, args.preset)
        path = export_portable(model, args.out, fmt)
        if not args.no_check:
            diff = check_parity(model, path, fmt)
            print(f"{fmt}: max abs diff vs Keras {diff:.3g} (tolerance {args.tolerance:g})")
            if diff > args.tolerance:
                raise ExportError(f"{path} differs from the Keras model by {diff:.3g}", status=1)
        return path

    return run_export(write)


if __name__ == "__main__":
    sys.exit(main())

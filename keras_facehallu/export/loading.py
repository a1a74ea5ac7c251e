"""Loading the Keras model to export from a ``.keras`` file, a config + weights pair or a preset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register_model_classes() -> None:
    """Registers every class a saved hallucinator may name, so ``load_model`` (safe_mode on)
    can rebuild it: importing :mod:`keras_facehallu.models` does that."""
    import keras_facehallu.models  # noqa: F401


class ExportError(RuntimeError):
    """The model could not be loaded or written in the requested format.

    ``status`` is the export command's exit status for it: 2, or 1 for a written file that fails
    its parity check.
    """

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


def run_export(write) -> int:
    """An export command's ending: ``write()`` (which returns the written path), then
    ``wrote PATH`` and exit status 0, or ``error: ...`` on stderr and the ExportError's status.

    Example:
        >>> run_export(lambda: "facehallu.onnx")
        wrote facehallu.onnx
        0
    """
    try:
        path = write()
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.status
    print(f"wrote {path}")
    return 0


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the mutually exclusive ``--model`` / ``--config`` (+ ``--weights``) / ``--preset``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a model saved with model.save('x.keras')")
    source.add_argument("--config", type=Path, help="config.json of a CascadedHallucinator")
    source.add_argument("--preset",
                        help="a preset name or folder (CascadedHallucinator.from_preset)")
    parser.add_argument("--weights", type=Path, help="model.weights.h5 to load with --config")


def load_model(model=None, config=None, weights=None, preset=None):
    """Loads the Keras model to export.

    Exactly one of ``model``, ``config`` (with ``weights``) or ``preset`` is given.

    Args:
        model: path to a ``.keras`` file (loaded with ``safe_mode`` on).
        config: path to a ``config.json`` holding ``CascadedHallucinator.get_config()`` (or a
            serialized Keras object with ``class_name``/``config``).
        weights: path to ``model.weights.h5``; required with ``config``.
        preset: a preset name or folder for ``CascadedHallucinator.from_preset``.

    Returns:
        The ``keras.Model``.

    Example:
        >>> model = load_model(model="runs/0001/model.keras")  # doctest: +SKIP
    """
    import keras

    register_model_classes()
    given = [name for name, value in (("model", model), ("config", config), ("preset", preset))
             if value is not None]
    if len(given) != 1:
        raise ExportError(f"give exactly one of model, config or preset; found {given or 'none'}")
    if model is not None:
        path = Path(model)
        if not path.is_file() or path.suffix != ".keras":
            raise ExportError(f"--model: expected an existing .keras file, found {str(path)!r}")
        try:
            return keras.saving.load_model(path)
        except (TypeError, ValueError) as err:
            raise ExportError(f"--model {str(path)!r}: cannot load it ({err})") from err
    if preset is not None:
        from keras_facehallu.models import load_preset
        from keras_facehallu.presets import PresetError

        try:
            return load_preset(preset)
        except PresetError as err:
            raise ExportError(f"--preset {preset!r}: {err}") from err
    config_path = Path(config)
    if not config_path.is_file():
        raise ExportError(f"--config: expected a JSON file, found no file at {str(config_path)!r}")
    if weights is None or not Path(weights).is_file():
        raise ExportError("--weights: expected a .weights.h5 file to go with --config, "
                          f"found {weights!r}")
    try:
        config_dict = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ExportError(f"--config {str(config_path)!r}: not valid JSON ({err})") from err
    if "class_name" in config_dict:
        built = keras.saving.deserialize_keras_object(config_dict)
    else:
        from keras_facehallu.models.cascade import CascadedHallucinator

        built = CascadedHallucinator.from_config(config_dict)
    built.load_weights(weights)
    return built

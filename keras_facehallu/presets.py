"""Presets: a name that maps to a model's ``config.json`` and ``model.weights.h5``.

A preset folder holds ``config.json`` (the model class and its constructor arguments),
``model.weights.h5`` and ``metadata.json`` (version, sha256 of every file, how it was trained).
:func:`load_preset` resolves a name, trying in order:

1. a directory path given directly (a folder written by :func:`save_to_preset`);
2. ``$KERAS_FACEHALLU_PRESETS/<name>/`` -- an override directory for offline machines;
3. the copy shipped inside this package (``keras_facehallu/presets/<name>/``), when there is one;
4. the cache ``$KERAS_HOME/facehallu/presets/<name>/``, downloading each missing file once from the
   preset's ``url`` with ``keras.utils.get_file``.

Registered presets carry the sha256 of each file and every copy is checked against it; a folder
given by path is checked against the hashes in its own ``metadata.json`` -- which proves only that
the files were not damaged since that file was written, not who wrote them. A folder whose files
cannot be verified (no ``metadata.json``, or one that does not list ``config.json`` and
``model.weights.h5``) loads with an :class:`UnverifiedPresetWarning`. Every config is checked
(:func:`validate_config`: known arguments, sane types, ``0 < width <= 1``) before anything is built.

This module is a leaf: the model base class imports it, and it finds the model classes through
the Keras registry (:func:`model_class`), so nothing here imports a model back.

Example:
    >>> from keras_facehallu.models import CascadedHallucinator
    >>> model = CascadedHallucinator.from_preset("lfw_cascade_small")  # doctest: +SKIP
    >>> save_to_preset(model, "my_preset")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from keras_facehallu.assets import download_verified, sha256_of
from keras_facehallu.version import __version__

OVERRIDE_ENV = "KERAS_FACEHALLU_PRESETS"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
PACKAGED_DIR = Path(__file__).resolve().parent / "presets"
MAX_WIDTH = 1.0  # the paper's size (~370 M parameters); a preset asking for more is refused
PACKAGE = "keras_facehallu"  # the Keras registration package of the model classes
MODEL_CLASSES = ("CascadedHallucinator", "ProGANHallucinator")  # what a preset may hold


class PresetError(RuntimeError):
    """A preset could not be found, downloaded or verified."""


class UnverifiedPresetWarning(UserWarning):
    """A preset folder's files could not be checked against any recorded hash."""


@dataclasses.dataclass(frozen=True)
class Preset:
    """A registered preset.

    Args:
        name: the preset's name, e.g. ``"lfw_cascade_small"``.
        description: one line for :func:`preset_catalog`.
        url: base URL; each file is downloaded from ``url + "/" + filename``.
        files: ``{filename: sha256}`` for ``config.json`` and ``model.weights.h5``.
        packaged: whether a copy ships inside the package.
    """

    name: str
    description: str
    url: str
    files: dict
    packaged: bool = False


def _packaged_presets() -> dict[str, Preset]:
    """A :class:`Preset` for every folder shipped inside the package (from its metadata.json)."""
    found = {}
    for meta_path in sorted(PACKAGED_DIR.glob(f"*/{METADATA_FILE}")):
        meta = json.loads(meta_path.read_text())
        name = meta_path.parent.name
        found[name] = Preset(name=name, description=meta.get("description", ""),
                             url=meta.get("url", ""), files=dict(meta["files"]), packaged=True)
    return found


# Every preset, by name: the packaged ones (their metadata.json records the files' sha256).
PRESETS: dict[str, Preset] = _packaged_presets()


def list_presets() -> tuple[str, ...]:
    """The names of all presets."""
    return tuple(PRESETS)


def get_preset(name: str) -> Preset:
    """The :class:`Preset` called ``name``.

    Raises:
        PresetError: naming the known presets.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(
            f"unknown preset {name!r}: not a folder and not a registered name "
            f"(registered: {sorted(PRESETS)})"
        ) from None


def read_preset_metadata(folder: str | os.PathLike) -> dict:
    """A preset folder's ``metadata.json`` as a dict (``{}`` when there is none)."""
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise PresetError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    return meta


def _cache_dir() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "facehallu" / "presets"


def _check(path: Path, expected: str, where: str) -> Path:
    found = sha256_of(path)
    if found != expected:
        raise PresetError(
            f"preset file {path} ({where}) has sha256 {found}, expected {expected}; "
            "it is corrupt or belongs to another version of the preset"
        )
    return path


def _check_folder(folder: Path, files: dict, where: str) -> Path:
    for filename, digest in files.items():
        path = folder / filename
        if not path.is_file():
            raise PresetError(f"preset folder {folder} ({where}) has no {filename}")
        _check(path, digest, where)
    return folder


def resolve_preset(name_or_dir: str | os.PathLike, download: bool = True) -> Path:
    """Returns a local, verified preset folder for a registered name or a folder path.

    Args:
        name_or_dir: a registered preset name or a folder written by :func:`save_to_preset`.
        download: whether a missing file may be downloaded from the preset's URL.

    Raises:
        PresetError: unknown name, missing file, wrong hash or failed download (the message names
            every place that was tried).
    """
    path = Path(name_or_dir)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise PresetError(
                f"{path} is not a preset folder: expected {CONFIG_FILE} and {WEIGHTS_FILE} in it"
            )
        files = read_preset_metadata(path).get("files") or {}
        if not isinstance(files, dict):
            raise PresetError(f"{path / METADATA_FILE}: 'files' must map file names to sha256")
        unlisted = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if f not in files]
        if unlisted:
            why = (f"it has no {METADATA_FILE}" if not (path / METADATA_FILE).is_file()
                   else f"its {METADATA_FILE} lists no sha256 for {', '.join(unlisted)}")
            warnings.warn(
                f"preset folder {path}: its files cannot be verified ({why}); a damaged or "
                "tampered file would load unnoticed. Load only folders you trust, or write "
                "them with save_to_preset",
                UnverifiedPresetWarning,
                stacklevel=3,
            )
        _check_folder(path, files, "its metadata.json")
        return path
    name = str(name_or_dir)
    preset = get_preset(name)
    tried = []
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        folder = Path(override) / name
        if folder.is_dir():
            return _check_folder(folder, preset.files, f"${OVERRIDE_ENV}")
        tried.append(f"{folder} (${OVERRIDE_ENV}): missing")
    if preset.packaged and (PACKAGED_DIR / name).is_dir():
        return _check_folder(PACKAGED_DIR / name, preset.files, "packaged copy")
    folder = _cache_dir() / name
    for filename, digest in preset.files.items():
        target = folder / filename
        if target.is_file():
            _check(target, digest, "cache")
            continue
        if not download:
            raise PresetError(f"preset {name!r}: {target} is missing and download=False")
        try:
            download_verified(f"{preset.url.rstrip('/')}/{filename}", target, digest)
        except Exception as exc:  # network errors come in many types
            tried.append(f"{preset.url}/{filename}: {type(exc).__name__}: {exc}")
            raise PresetError(
                f"preset {name!r} could not be fetched. Tried: " + "; ".join(tried)
                + f". Offline: put the preset folder under ${OVERRIDE_ENV}/{name}/."
            ) from exc
    return folder


def model_class(class_name, source="config"):
    """The model class a preset names, found in the Keras registry (``keras_facehallu>Name``).

    This module imports no model: importing :mod:`keras_facehallu.models` registers the classes
    (``CascadedHallucinator.from_preset`` and ``keras_facehallu.models.load_preset`` have done
    that before they get here).

    Raises:
        PresetError: naming ``source``, when ``class_name`` is not one of :data:`MODEL_CLASSES`
            or is not registered.
    """
    import keras

    if class_name not in MODEL_CLASSES:
        raise PresetError(
            f"{source}: unknown class_name {class_name!r}; expected one of {sorted(MODEL_CLASSES)}"
        )
    cls = keras.saving.get_registered_object(f"{PACKAGE}>{class_name}")
    if cls is None:
        raise PresetError(
            f"{source}: class {class_name!r} is not registered with Keras; import "
            "keras_facehallu.models first (or load with keras_facehallu.models.load_preset)"
        )
    return cls


def _read_spec(folder: Path):
    """``(model class, config.json dict)`` of a resolved preset folder, checked for shape."""
    path = folder / CONFIG_FILE
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise PresetError(f"{path}: expected {{'class_name': ..., 'config': {{...}}}}")
    return model_class(spec.get("class_name"), path), spec


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_config(cls, config: dict, source="config") -> dict:
    """Checks a preset's constructor arguments before anything is built; returns ``config``.

    Only the arguments of ``cls.__init__`` are accepted; ``width`` must be a number in
    ``(0, MAX_WIDTH]`` (a bigger one would allocate tens of GiB before any other check),
    ``paste_face`` a bool, ``seed`` an int or null, ``phase`` an int and ``alpha`` a number.

    Raises:
        PresetError: naming ``source``, the argument, what was expected and what was found.

    Example:
        >>> validate_config(CascadedHallucinator, {"width": 64})  # doctest: +SKIP
        PresetError: config: width must be a number in (0, 1.0], found 64
    """
    accepted = {
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name not in ("self", "weights") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    } | {"name", "trainable", "dtype"}
    unknown = sorted(set(config) - accepted)
    if unknown:
        raise PresetError(
            f"{source}: unknown arguments {unknown} for {cls.__name__}; expected some of "
            f"{sorted(accepted)}"
        )

    def bad(key, expected):
        raise PresetError(f"{source}: {key} must be {expected}, found {config[key]!r}")

    if "width" in config:
        width = config["width"]
        if not (isinstance(width, (int, float)) and not isinstance(width, bool)
                and math.isfinite(width) and 0 < width <= MAX_WIDTH):
            bad("width", f"a number in (0, {MAX_WIDTH}]")
    if "paste_face" in config and not isinstance(config["paste_face"], bool):
        bad("paste_face", "true or false")
    if "seed" in config and config["seed"] is not None and not (
        _is_int(config["seed"]) and 0 <= config["seed"] < 2**32
    ):
        bad("seed", "null or an integer in [0, 2**32)")
    if "phase" in config and not _is_int(config["phase"]):
        bad("phase", "an integer")
    if "alpha" in config and not (
        isinstance(config["alpha"], (int, float)) and not isinstance(config["alpha"], bool)
    ):
        bad("alpha", "a number")
    if "name" in config and not isinstance(config["name"], str):
        bad("name", "a string")
    return config


def read_preset_config(name_or_dir: str | os.PathLike) -> dict:
    """The preset's ``config.json`` as a dict (``class_name``, ``config``), validated."""
    folder = resolve_preset(name_or_dir)
    cls, spec = _read_spec(folder)
    validate_config(cls, spec["config"], folder / CONFIG_FILE)
    return spec


def preset_catalog(cls=None) -> dict:
    """``{name: {"description", "class_name", "packaged", "url"}}`` of the registered presets.

    Args:
        cls: keep only presets known to hold this class (or a subclass); a preset that is not
            on this machine yet is kept (its class is known once it is fetched).

    Example:
        >>> "lfw_cascade_small" in preset_catalog()
        True
    """
    catalog = {}
    for name, preset in sorted(PRESETS.items()):
        class_name = None
        if preset.packaged and (PACKAGED_DIR / name / CONFIG_FILE).is_file():
            with contextlib.suppress(Exception):
                class_name = json.loads((PACKAGED_DIR / name / CONFIG_FILE).read_text())[
                    "class_name"
                ]
        if cls is not None and class_name is not None:
            try:
                known = model_class(class_name)
            except PresetError:
                continue
            if not issubclass(known, cls):
                continue
        catalog[name] = {
            "description": preset.description,
            "class_name": class_name,
            "packaged": preset.packaged,
            "url": preset.url,
        }
    return catalog


def load_preset(name_or_dir: str | os.PathLike, expected_class=None, **overrides):
    """Builds the preset's model and loads its weights.

    Args:
        name_or_dir: a registered preset name or a preset folder.
        expected_class: if given, the preset must hold this class (or a subclass of it).
        **overrides: constructor arguments to change (e.g. ``paste_face=True``); arguments that
            change the weights' shapes fail when the weights are loaded.

    Returns:
        The model, with ``model.preset_metadata`` set to the preset's metadata.
    """
    folder = resolve_preset(name_or_dir)
    cls, spec = _read_spec(folder)
    if expected_class is not None and not issubclass(cls, expected_class):
        raise PresetError(
            f"preset {str(name_or_dir)!r} holds a {cls.__name__}, not a {expected_class.__name__}"
        )
    config = validate_config(cls, {**spec["config"], **overrides}, folder / CONFIG_FILE)
    return load_preset_weights(cls.from_config(config), folder)


def load_preset_weights(model, folder: str | os.PathLike):
    """Loads a resolved preset folder's weights into ``model``; sets ``model.preset_metadata``.

    The one place preset weights go into a model (:func:`load_preset`, and ``weights=`` of the
    model constructors).

    Args:
        model: a built model whose variables match the preset's.
        folder: a folder from :func:`resolve_preset` (its files already verified).

    Returns:
        ``model``, with ``preset_metadata`` = the folder's ``metadata.json`` plus its ``name``.

    Raises:
        PresetError: naming the weights file and the model, when the weights do not fit.
    """
    folder = Path(folder)
    try:
        model.load_weights(str(folder / WEIGHTS_FILE))
    except Exception as exc:
        config = {k: v for k, v in model.get_config().items() if k not in ("name", "trainable")}
        raise PresetError(
            f"{folder / WEIGHTS_FILE}: weights do not fit {type(model).__name__}({config}): {exc}"
        ) from exc
    model.preset_metadata = read_preset_metadata(folder)
    model.preset_metadata.setdefault("name", folder.name)
    return model


def save_to_preset(model, folder: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Writes ``model`` as a preset folder (atomically: a partial folder is never left behind).

    Args:
        model: a :class:`CascadedHallucinator` or :class:`ProGANHallucinator`.
        folder: the folder to write; it must not exist yet.
        metadata: extra JSON-serialisable facts (training run, data, metrics).

    Returns:
        The folder.
    """
    folder = Path(folder)
    if folder.exists():
        raise PresetError(f"{folder} exists already; choose a new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        config = {k: v for k, v in model.get_config().items() if k not in ("name", "trainable")}
        spec = {"class_name": type(model).__name__, "config": config}
        (tmp / CONFIG_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
        model.save_weights(str(tmp / WEIGHTS_FILE))
        meta = dict(metadata or {})
        meta.setdefault("description", "")
        meta["keras_facehallu_version"] = __version__
        meta["files"] = {name: sha256_of(tmp / name) for name in (CONFIG_FILE, WEIGHTS_FILE)}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder

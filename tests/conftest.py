"""Shared test fixtures: real face photos shipped with the tests, the whole LFW folder (only for
tests marked ``lfw``), seeds.

Tests that need "a real face" use ``lfw_photos`` or ``faces_dir``: 27 LFW photos in
``tests/fixtures/faces`` (see its README), so the suite passes on a fresh clone. Tests that need the
whole LFW folder (../shared/data/lfw, or FACEHALLU_LFW) ask for ``lfw_dir``; they are marked
``lfw`` and skipped, with the reason, when that folder is absent.
"""

from __future__ import annotations

import os

# TensorFlow 2.21's oneDNN graph rewrites crash (SIGSEGV) now and then in the dlib ResNet port
# (seen in test_dlib_resnet's parity test on a loaded 2-core machine, and before in training's
# L_id network); the Eigen kernels are stable. Set before any test imports TensorFlow, as the
# training and evaluation commands do.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FACES_DIR = REPO / "tests" / "fixtures" / "faces"
LFW_DIR = Path(os.environ.get("FACEHALLU_LFW", REPO.parent / "shared" / "data" / "lfw"))
LFW_MISSING = (
    f"needs the whole LFW folder, not found at {LFW_DIR} "
    "(put LFW deep-funneled at ../shared/data/lfw or set FACEHALLU_LFW)"
)

# One photo each of 16 people, in this order: the photos that the former fixture picked from the
# whole LFW folder (every 323rd person, sorted by name), so tests keep their meaning.
PHOTOS = (
    "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
    "Antonio_Palocci/Antonio_Palocci_0001.jpg",
    "Bryan_Thomas/Bryan_Thomas_0001.jpg",
    "Cristian_Barros/Cristian_Barros_0001.jpg",
    "Drew_Barrymore/Drew_Barrymore_0001.jpg",
    "Gala_Leon_Garcia/Gala_Leon_Garcia_0001.jpg",
    "Hosni_Mubarak/Hosni_Mubarak_0001.jpg",
    "Jennifer_Garner/Jennifer_Garner_0001.jpg",
    "Joshua_Perper/Joshua_Perper_0001.jpg",
    "Lawrence_Di_Rita/Lawrence_Di_Rita_0001.jpg",
    "Marlene_Weingartner/Marlene_Weingartner_0001.jpg",
    "Mohammed_Mehdi_Saleh/Mohammed_Mehdi_Saleh_0001.jpg",
    "Penelope_Ann_Miller/Penelope_Ann_Miller_0001.jpg",
    "Robby_Ginepri/Robby_Ginepri_0001.jpg",
    "Shingo_Katayama/Shingo_Katayama_0001.jpg",
    "Todd_Haynes/Todd_Haynes_0001.jpg",
)


def pytest_collection_modifyitems(config, items):
    """Marks every test that uses ``lfw_dir`` as ``lfw``; skips them when the folder is absent."""
    skip = pytest.mark.skip(reason=LFW_MISSING)
    present = LFW_DIR.is_dir()
    for item in items:
        if "lfw_dir" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("lfw"):
            item.add_marker(pytest.mark.lfw)
        if item.get_closest_marker("lfw") and not present:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The shipped real face photos, laid out as LFW (``NAME/NAME_0001.jpg``); read-only."""
    missing = [name for name in PHOTOS if not (FACES_DIR / name).is_file()]
    if missing:
        pytest.fail(f"test photos missing from {FACES_DIR}: {', '.join(missing)}")
    return FACES_DIR


@pytest.fixture(scope="session")
def lfw_photos(faces_dir) -> list[Path]:
    """A fixed list of 16 real LFW photos of 16 different people (shipped with the tests)."""
    return [faces_dir / name for name in PHOTOS]


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """The whole LFW folder (../shared/data/lfw or FACEHALLU_LFW); read-only. Tests that use it
    are marked ``lfw``; they skip when ../shared/data/lfw (or FACEHALLU_LFW) is absent."""
    if not LFW_DIR.is_dir():
        pytest.skip(LFW_MISSING)
    return LFW_DIR


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def test_preset(tmp_path_factory):
    """An UNTRAINED width-1/32 cascade saved as a preset: exercises the plumbing only
    (CLI, bulk job); tests read it, never write to it."""
    from keras_facehallu.models.cascade import CascadedHallucinator
    from keras_facehallu.presets import save_to_preset

    folder = tmp_path_factory.mktemp("preset") / "untrained_test"
    model = CascadedHallucinator(width=1 / 32, seed=0)
    return save_to_preset(model, folder, metadata={"description": "untrained, tests only"})

"""Shared test fixtures: the LFW folder beside the checkout, seeds, and a scratch KERAS_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
LFW_DIR = Path(os.environ.get("FACEHALLU_LFW", REPO.parent / "shared" / "data" / "lfw"))


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """The real LFW photos (../shared/data/lfw); read-only."""
    if not LFW_DIR.is_dir():
        pytest.fail(f"LFW photos not found at {LFW_DIR} (set FACEHALLU_LFW)")
    return LFW_DIR


@pytest.fixture(scope="session")
def lfw_photos(lfw_dir) -> list[Path]:
    """A fixed, sorted list of 16 real LFW photos of 16 different people."""
    people = sorted(p for p in lfw_dir.iterdir() if p.is_dir())
    photos = []
    for person in people[:: max(1, len(people) // 16)]:
        files = sorted(person.glob("*.jpg"))
        if files:
            photos.append(files[0])
        if len(photos) == 16:
            break
    return photos


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

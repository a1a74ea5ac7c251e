"""Tiny prepared folders for model/training tests: real LFW photos, no detector.

The photos come from a folder laid out as LFW (``NAME/NAME_0001.jpg``), normally the photos shipped
in ``tests/fixtures/faces`` (the ``faces_dir`` fixture).

The photos are centre-cropped and resized to 128x128 and get an elliptic "face mask"; the format
is exactly that of ``facehallu-prepare`` (see ``keras_facehallu.data.records``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def ellipse_mask(size: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    cy, cx, ry, rx = 0.55 * size, 0.5 * size, 0.22 * size, 0.16 * size
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0).astype(np.uint8)[..., None]


def tiny_examples(photos_dir: Path, count: int) -> list[dict]:
    """Examples (dicts as ``records.write_examples`` takes) of the first photo of each of the
    first ``count`` people (by name) in ``photos_dir``; needs no TensorFlow."""
    from PIL import Image

    people = sorted(p for p in Path(photos_dir).iterdir() if p.is_dir())[:count]
    if len(people) < count:
        raise ValueError(f"{photos_dir}: {len(people)} people, need {count}")
    mask = ellipse_mask()
    examples = []
    for index, person in enumerate(people):
        photo = sorted(person.glob("*.jpg"))[0]
        image = Image.open(photo).convert("RGB").crop((45, 45, 205, 205)).resize((128, 128))
        examples.append(
            {
                "image": np.asarray(image, np.uint8),
                "mask": mask,
                "landmarks": np.zeros(136, np.float32),
                "transform": np.array([1, 0, 0, 0, 1, 0], np.float32),
                "person": person.name,
                "person_index": index,
                "source": str(photo.relative_to(photos_dir)),
            }
        )
    return examples


def make_tiny_prepared(folder: Path, photos_dir: Path, n_train: int = 8, n_val: int = 4) -> Path:
    """Writes ``train`` and ``validation`` shards of real photos into ``folder``: the first photo
    of each of the first ``n_train + n_val`` people (by name) in ``photos_dir``."""
    from keras_facehallu.data.records import shard_name, write_examples, write_manifest

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    examples = tiny_examples(photos_dir, n_train + n_val)
    shards = {"train": [shard_name("train", 0, 1)], "validation": [shard_name("validation", 0, 1)]}
    write_examples(folder / shards["train"][0], examples[:n_train])
    write_examples(folder / shards["validation"][0], examples[n_train:])
    write_manifest(folder, {"shards": shards, "tiny_test_data": True})
    return folder


def make_tiny_packed(folder: Path, photos_dir: Path, n_train: int = 8, n_val: int = 4,
                     codec: str = "jpeg") -> Path:
    """The packed twin of :func:`make_tiny_prepared` (``keras_facehallu.data.packed``), written
    without TensorFlow."""
    from keras_facehallu.data.packed import split_path, write_manifest, write_packed

    folder = Path(folder)
    examples = tiny_examples(photos_dir, n_train + n_val)
    people = [e["person"] for e in examples]
    metas = {
        "train": write_packed(split_path(folder, "train"), examples[:n_train], "train",
                              codec=codec, people=people),
        "validation": write_packed(split_path(folder, "validation"), examples[n_train:],
                                   "validation", codec=codec, people=people),
    }
    write_manifest(folder, metas, people=people, config={"tiny_test_data": True})
    return folder

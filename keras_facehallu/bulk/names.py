"""Deterministic names and picks of the bulk job: stable functions of the input path.

A retried bundle or a re-run of the same job must write the same files, so nothing here depends on
the order, the worker or the time: a face's file stem is the photo's folder and file name (in face
datasets the folder is usually the identity), a short hash of the photo's full path (two
``001.jpg`` in same-named folders elsewhere never collide) and the face index.

Example:
    >>> face_stem("gs://bucket/lfw/Jean Dupont/001.jpg", 0)
    'Jean_Dupont_001_3bd039c832_face0'
    >>> pick_index("photo.jpg#0", 5, seed=0) == pick_index("photo.jpg#0", 5, seed=0)
    True
"""

from __future__ import annotations

import hashlib

from keras_facehallu.outputs import safe_stem

HASH_CHARS = 10


def stable_hash(text: str, chars: int = HASH_CHARS) -> str:
    """The first ``chars`` hex digits of the SHA-256 of ``text`` (same on every machine)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:chars]


def face_stem(source: str, face_index: int) -> str:
    """The file stem of face ``face_index`` of the photo at ``source`` (a path or URL).

    Only ``[A-Za-z0-9._-]``; the hash is of the full ``source`` string, so the same photo reached
    by another path (``./a.jpg`` and ``a.jpg``) gets another name.
    """
    if int(face_index) < 0:
        raise ValueError(f"face_index: expected 0 or more, found {face_index}")
    parts = [p for p in str(source).replace("\\", "/").split("/") if p]
    label = safe_stem("/".join(parts[-2:]), max_length=80)  # e.g. identity folder + file name
    return f"{label}_{stable_hash(str(source))}_face{int(face_index)}"


def pick_index(key: str, count: int, seed: int = 0) -> int:
    """A seeded, uniform-looking choice in ``range(count)`` that depends only on ``key``."""
    if count < 1:
        raise ValueError(f"count: expected at least 1 choice, found {count}")
    return int(stable_hash(f"{int(seed)}:{key}", 16), 16) % count

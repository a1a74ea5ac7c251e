"""Atomic file writes that keep the usual permissions (the umask's) and never half-write a file.

A temporary file beside the target is written, given the mode an ordinary ``open(path, "w")``
would have given it (``0o666 & ~umask``; ``mkstemp`` alone makes it 0600), then renamed onto the
target. With ``overwrite=False`` the rename becomes a hard link that fails when the target exists,
so two writers never silently replace each other's file.

Example:
    >>> with atomic_path("/tmp/example.txt") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("hello")
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode a new file gets from ``open(path, "w")``: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def _link_no_replace(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} exists already; not replaced") from None
    except OSError:  # a file system without hard links: check, then rename (small race)
        if os.path.lexists(path):
            raise FileExistsError(f"{path} exists already; not replaced") from None
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True, suffix: str = ".tmp"):
    """Yields a temporary path beside ``path``; on success it becomes ``path``.

    Args:
        path: the final file.
        overwrite: replace an existing ``path`` (default); with False an existing file (or
            symbolic link) raises ``FileExistsError`` and is left as it was.
        suffix: suffix of the temporary file (some writers need ``.npz``, ``.png``, ...).

    Raises:
        FileExistsError: ``overwrite=False`` and ``path`` exists.

    Example:
        >>> with atomic_path(folder / "x.json", overwrite=False) as tmp:  # doctest: +SKIP
        ...     tmp.write_text("{}")
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike, data, overwrite: bool = True, indent: int = 1) -> Path:
    """Writes ``data`` as JSON atomically, with the usual permissions; returns the path."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, sort_keys=True) + "\n")
    return path

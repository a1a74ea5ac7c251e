"""The key check shared by the configs' ``from_dict`` (``TrainConfig``, ``LossConfig``).

A leaf with no package imports: ``training/configs.py`` must stay importable without Keras (the
training command sets TensorFlow's environment after importing it), so the check cannot live in
``losses/``, whose package imports Keras.

Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Example:
    ...     a: int = 0
    >>> check_keys(Example, {"a": 1, "b": 2}, "Example")
    Traceback (most recent call last):
    ...
    ValueError: Example: unknown keys ['b']; expected some of ['a']
"""

from __future__ import annotations

import dataclasses


def check_keys(cls, d: dict, what: str) -> None:
    """Refuses keys of ``d`` that are not fields of the dataclass ``cls``.

    Raises:
        ValueError: ``"WHAT: unknown keys [...]; expected some of [...]"``, both lists sorted.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown}; expected some of {sorted(names)}")

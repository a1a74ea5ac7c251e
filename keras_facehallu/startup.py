"""A quiet start for the commands: the backend's native start-up logging kept off stderr.

TensorFlow (and XLA, LiteRT) print several lines from C++ when they load -- oneDNN notes, "Could
not find cuda drivers", even ``failed call to cuInit ... ERROR`` on a CPU machine -- before any
environment variable or ``absl`` setting can stop them. :func:`start_backend` loads the backend
with file descriptor 2 pointed at a temporary file, and prints what was caught only when the start
fails, so a command's stderr keeps a clean progress bar and its real errors.

Example:
    >>> from keras_facehallu.startup import start_backend
    >>> start_backend()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # later TensorFlow C++ INFO and WARNING lines
    "GRPC_VERBOSITY": "ERROR",
}


@contextlib.contextmanager
def native_stderr_to_file():
    """Points file descriptor 2 at a temporary file; on an exception, replays what was caught.

    Python's ``sys.stderr`` is flushed around the switch, so nothing is lost or reordered.
    """
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded, some notebooks)
        yield
        return
    with tempfile.TemporaryFile() as caught:
        for stream in (sys.stderr, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(caught.fileno(), fd)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            for stream in (sys.stderr, sys.__stderr__):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
            if failed:
                caught.seek(0)
                text = caught.read().decode("utf-8", "replace")
                if text:
                    sys.stderr.write(text)


def start_backend(quiet: bool = True) -> str:
    """Imports Keras and its backend (and lists the devices) with the native start-up noise hidden.

    Args:
        quiet: hide the noise (default); False only sets nothing and imports.

    Returns:
        The Keras backend's name.
    """
    if not quiet:
        import keras

        return keras.backend.backend()
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    with native_stderr_to_file():
        import keras

        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices()  # cuInit and its messages happen here
        elif backend == "jax":
            import jax

            jax.devices()
    import logging

    with contextlib.suppress(ImportError):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.ERROR)
    return backend


def available_devices() -> list[str]:
    """The backend's devices as ``"cpu:0"``, ``"gpu:0"``, ... (what ``keras.device`` accepts)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        names = [d.name.split("device:")[-1] for d in tf.config.list_logical_devices()]
    elif backend == "jax":
        import jax

        names = [f"{'gpu' if d.platform in ('gpu', 'cuda', 'rocm') else d.platform}:{d.id}"
                 for d in jax.devices()] + [f"cpu:{d.id}" for d in jax.devices("cpu")]
    else:
        names = ["cpu:0"]
    return sorted({n.lower() for n in names})


def device_scope(device: str | None):
    """``keras.device(device)`` after checking that the backend has it; ``None``: its choice.

    Raises:
        ValueError: the device is not one of :func:`available_devices`.
    """
    if device is None:
        return contextlib.nullcontext()
    import keras

    name = device.lower() if ":" in device else f"{device.lower()}:0"
    found = available_devices()
    if name not in found:
        raise ValueError(
            f"--device {device}: not available to the {keras.backend.backend()} backend here; "
            f"found {found}"
        )
    return keras.device(name)

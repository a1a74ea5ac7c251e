"""Serving the exported hallucinator: a TF-Serving client (gRPC and REST) and a stand-in server.

Production serving is TensorFlow Serving (``tensorflow/serving``, see ``serving/`` at the
repository root for a compose file) with the SavedModel written by ``facehallu-export savedmodel``;
``facehallu-serve`` (:mod:`.server`) is a small Python server with the same gRPC and REST API for
development and tests, and ``facehallu-client`` (:mod:`.client`) talks to either. Both need the
``serving`` extra (``pip install "keras-facehallu[serving]"``).

Modules: :mod:`.model` (the served SavedModel and request checks), :mod:`.server` (gRPC front end,
the ``Server`` and its command line), :mod:`.rest` (the bounded REST front end), :mod:`.security`
(TLS, bearer token, exposure warnings), :mod:`.config` (TF-Serving's ``models.config`` and batching
file from its protos), :mod:`.client`. What the server and clients defend against:
``docs/reliability.md``, "Serving".
"""

from __future__ import annotations

import importlib
import sys

# Top-level modules of the ``serving`` extra (grpcio, tensorflow-serving-api and its protobuf).
_EXTRA_MODULES = ("grpc", "tensorflow_serving")


def _run(command: str, module: str, argv) -> int:
    """``module.main(argv)``, or one stderr line naming the ``serving`` extra when it is missing."""
    try:
        return importlib.import_module(module).main(argv)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in _EXTRA_MODULES:
            raise
        print(f"{command}: {err.name} is not installed; it comes with the serving extra: "
              "pip install 'keras-facehallu[serving]'", file=sys.stderr)
        return 2


def serve(argv=None) -> int:
    """Console script ``facehallu-serve``: the stand-in server (:func:`.server.main`)."""
    return _run("facehallu-serve", "keras_facehallu.serving.server", argv)


def client(argv=None) -> int:
    """Console script ``facehallu-client``: the client's command line (:func:`.client.main`)."""
    return _run("facehallu-client", "keras_facehallu.serving.client", argv)

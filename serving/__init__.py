"""Serving the exported hallucinator: a TF-Serving client (gRPC and REST) and a stand-in server.

Production serving is TensorFlow Serving (``tensorflow/serving``) with the SavedModel written by
``python -m export savedmodel``; :mod:`serving.server` is a small Python server with the same gRPC
and REST API for development and tests, and :mod:`serving.client` talks to either.

Modules: :mod:`serving.model` (the served SavedModel and request checks), :mod:`serving.server`
(gRPC front end, the ``Server`` and its command line), :mod:`serving.rest` (the bounded REST front
end), :mod:`serving.security` (TLS, bearer token, exposure warnings), :mod:`serving.config`
(TF-Serving's ``models.config`` and batching file from its protos), :mod:`serving.client`.
What the server and clients defend against: ``docs/reliability.md``, "Serving".
"""

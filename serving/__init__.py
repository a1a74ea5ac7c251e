"""Serving the exported hallucinator: a TF-Serving client (gRPC and REST) and a stand-in server.

Production serving is TensorFlow Serving (``tensorflow/serving``) with the SavedModel written by
``python -m export savedmodel``; :mod:`serving.server` is a small Python server with the same gRPC
and REST API for development and tests, and :mod:`serving.client` talks to either.
"""

"""``facehallu-bulk``: hallucinate context for a whole face dataset on Apache Beam.

Needs the ``[beam]`` extra (``pip install keras-facehallu[beam]``); the rest of the package does
not import Beam. The same pipeline runs locally (DirectRunner) and on Dataflow, Flink or Spark
(see ``docs/beam.md``). Modules: :mod:`~keras_facehallu.bulk.pipeline` (the stages),
:mod:`~keras_facehallu.bulk.dofns` (prepare and write steps),
:mod:`~keras_facehallu.bulk.model_handler` (the model for ``RunInference``),
:mod:`~keras_facehallu.bulk.manifest` (manifest and dead-letter rows),
:mod:`~keras_facehallu.bulk.names` (deterministic output names),
:mod:`~keras_facehallu.bulk.files` (Beam file systems), :mod:`~keras_facehallu.bulk.cli`.

Example:
    >>> from keras_facehallu.bulk.pipeline import BulkConfig, run_pipeline  # doctest: +SKIP
    >>> run_pipeline(BulkConfig(inputs=["photos/**.jpg"], output="out/"))  # doctest: +SKIP
    {'photos_read': 10, 'faces_aligned': 9, 'faces_written': 9, 'failures': 1}
"""

"""Training, evaluation and data preparation of the hallucination GAN.

Console scripts: ``facehallu-prepare`` (:mod:`.prepare`: photos → aligned, masked TFRecord shards),
``facehallu-train`` (:mod:`.train`, with :mod:`.configs`, :mod:`.callbacks`, :mod:`.checkpoint`)
and ``facehallu-evaluate`` (:mod:`.evaluate`); ``python -m keras_facehallu.training.figure`` and
``.export_generator`` make the snapshot figure and a preset from a run's latest checkpoint.
Launch notes (which config, how to resume): ``training/README.md`` in the repository.
"""

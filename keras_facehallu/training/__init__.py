"""Training, evaluation and data preparation of the hallucination GAN.

Console scripts: ``facehallu-prepare`` (:mod:`.prepare`: photos → aligned, masked TFRecord shards),
``facehallu-train`` (:mod:`.train`, with :mod:`.configs`, :mod:`.callbacks`, :mod:`.checkpoint`)
and ``facehallu-evaluate`` (:mod:`.evaluate`); ``python -m keras_facehallu.training.figure`` and
``.export_generator`` make the snapshot figure and a preset from a run's latest checkpoint.
The GAN itself: :mod:`.gan` (``HallucinationGAN``: the losses per scale, the moving average, R1)
with its backend's gradient plumbing in :mod:`.train_step_tf` / :mod:`.train_step_jax`;
:mod:`.throughput` (images/s, MFU), :mod:`.time_budget` and :mod:`.weight_parts` (a generator as
small files, for accelerator runs). Launch notes (which config, how to resume):
``training/README.md`` in the repository.
"""

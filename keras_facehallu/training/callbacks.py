"""Callbacks of ``facehallu-train``: NaN guard, checkpoints, snapshots, image grids.

Example:
    >>> guard = NonFiniteGuard()  # doctest: +SKIP
    >>> checkpoint = EpochCheckpoint(run_dir, guard, snapshots=(10, 20))  # doctest: +SKIP
    >>> gan.fit(data, callbacks=[guard, checkpoint])  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from keras_facehallu.sheets import image_grid
from keras_facehallu.training.checkpoint import save_checkpoint


def _non_finite(logs) -> list[str]:
    bad = []
    for key, value in (logs or {}).items():
        try:
            if not math.isfinite(float(value)):
                bad.append(f"{key}={float(value)}")
        except (TypeError, ValueError):
            continue
    return bad


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first NaN or inf in the logs and records where it happened.

    After it fires, :class:`EpochCheckpoint` writes nothing more, so the last good checkpoint stays
    the latest one.
    """

    def __init__(self):
        super().__init__()
        self.failure: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _check(self, logs, where):
        bad = _non_finite(logs)
        if bad and self.failure is None:
            self.failure = f"non-finite loss at {where} (epoch {self._epoch + 1}): {', '.join(bad)}"
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"training step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, "the end of the epoch")


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes an atomic checkpoint after every epoch and keeps snapshots as preset folders.

    A failed write (e.g. a full disk) raises :class:`~training.checkpoint.CheckpointWriteError`
    out of ``fit``, naming the epoch and the folder; the previous checkpoint stays the latest.

    Args:
        run_dir: the run folder (``checkpoints/`` and ``snapshots/`` go inside).
        guard: the run's :class:`NonFiniteGuard`; nothing is written once it has fired.
        snapshots: epochs (1-based) whose generator is saved as ``snapshots/epoch-NNNN``.
        metadata: extra facts stored in each snapshot's ``metadata.json``.
    """

    def __init__(self, run_dir, guard: NonFiniteGuard, snapshots=(), metadata=None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.guard = guard
        self.snapshots = {int(e) for e in snapshots}
        self.metadata = dict(metadata or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failure is not None:
            return
        done = epoch + 1
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if done in self.snapshots:  # before the checkpoint: a finished epoch has its snapshot
            import shutil

            from keras_facehallu.presets import save_to_preset

            target = self.run_dir / "snapshots" / f"epoch-{done:04d}"
            if target.exists():  # left by a killed run that redid this epoch after --resume
                shutil.rmtree(target)
            meta = {**self.metadata, "epoch": done, "logs": logs}
            with self.model.averaged() as generator:
                save_to_preset(generator, target, metadata=meta)
        save_checkpoint(self.model, self.run_dir / "checkpoints", done, logs)


class SampleGrid(keras.callbacks.Callback):
    """Renders fixed validation faces after each epoch: original | masked input | output (of the
    generator's moving average when the GAN keeps one).

    Writes ``samples/epoch-NNNN.png`` and, when TensorFlow is installed, an image summary in
    ``tensorboard/validation``.
    """

    def __init__(self, run_dir, inputs: dict, targets: np.ndarray):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.inputs = {k: np.asarray(v) for k, v in inputs.items()}
        self.targets = np.asarray(targets)

    def on_epoch_end(self, epoch, logs=None):
        with self.model.averaged() as generator:
            out = generator.predict(self.inputs, verbose=0)["image_128"]
        rows = [
            [t, m, o]
            for t, m, o in zip(
                self.targets, self.inputs["masked_image"], np.asarray(out), strict=True
            )
        ]
        sheet = image_grid(rows, labels=["original", "masked", f"epoch {epoch + 1}"])
        folder = self.run_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        from keras_facehallu.outputs import synthetic_metadata, write_image

        meta = synthetic_metadata(
            type(self.model.generator).__name__, str(self.run_dir),
            description=f"Training samples after epoch {epoch + 1}: the third column is "
                        "hallucinated by a neural network (keras-facehallu).",
        )
        write_image(folder / f"epoch-{epoch + 1:04d}.png", sheet, meta)
        try:
            import tensorflow as tf
        except ImportError:
            return
        writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard" / "validation"))
        with writer.as_default():
            tf.summary.image("samples", sheet[None], step=epoch + 1)
        writer.close()

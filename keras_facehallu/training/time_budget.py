"""A wall-clock budget for ``fit``: stop at the last epoch that ends inside it.

Example:
    >>> budget = TimeBudget(600)  # doctest: +SKIP
    >>> gan.fit(data, epochs=1000, callbacks=[budget, checkpoint])  # doctest: +SKIP
    >>> budget.stopped_after  # doctest: +SKIP
    12
"""

from __future__ import annotations

import time

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stops training when another epoch would not end within ``seconds`` of the start.

    After each epoch it predicts the next one's length as the longest epoch so far, each
    measured from the end of its first step (which, in the first epoch, holds the compilation)
    and scaled up by one step; when that would pass the budget, training stops there, so the run
    ends on a finished, checkpointed epoch. An epoch already over the budget (a first epoch too
    long for it) stops training after its second step or any later one (so that each epoch has
    a step timed after compilation); that epoch still ends normally (validation, checkpoint).

    Args:
        seconds: the budget, counted from the start of ``fit``.
        clock: a function returning seconds (for tests).
    """

    def __init__(self, seconds: float, clock=time.monotonic):
        super().__init__()
        if not seconds > 0:
            raise ValueError(f"time budget: expected a positive number of seconds, found {seconds}")
        self.seconds = float(seconds)
        self.clock = clock
        self.stopped_after: int | None = None
        self._start = None
        self._epoch_start = None
        self._first_step_end = None
        self._steps = 0
        self._longest = 0.0

    def on_train_begin(self, logs=None):
        self._start = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._first_step_end, self._steps = self.clock(), None, 0

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        self._steps += 1
        if self._first_step_end is None:
            self._first_step_end = now
        if batch >= 1 and now - self._start > self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        if self._steps >= 2:  # the steps after the first (and validation), plus one more step
            length = (now - self._first_step_end) * self._steps / (self._steps - 1)
        else:
            length = now - self._epoch_start
        self._longest = max(self._longest, length)
        if now - self._start + self._longest > self.seconds:
            self.model.stop_training = True
            self.stopped_after = epoch + 1
            print(f"time budget of {self.seconds:.0f} s: stopping after epoch {epoch + 1} "
                  f"({now - self._start:.0f} s used, an epoch takes up to {self._longest:.0f} s)",
                  flush=True)

"""Prepared training data: the TFRecord format (:mod:`.records`) and the input pipeline
(:mod:`.pipeline`).

Example:
    >>> from keras_facehallu.data.pipeline import make_dataset
    >>> ds = make_dataset("work_data/lfw_prepared", "train", batch_size=16)  # doctest: +SKIP
"""

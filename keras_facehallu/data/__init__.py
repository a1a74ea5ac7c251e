"""Prepared training data: the TFRecord format (:mod:`.records`), the ``tf.data`` input pipeline
(:mod:`.pipeline`), and the packed, TensorFlow-free form of the same data with its numpy batches
(:mod:`.packed`).

Example:
    >>> from keras_facehallu.data.pipeline import make_dataset
    >>> ds = make_dataset("work_data/lfw_prepared", "train", batch_size=16)  # doctest: +SKIP
"""

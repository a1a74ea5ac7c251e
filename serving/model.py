"""The served model: a SavedModel version loaded with ``tf.saved_model.load`` plus request checks.

Shared by the gRPC and REST front ends of :mod:`serving.server`. Requests are checked against the
signature before anything runs: missing or unexpected inputs, a wrong dtype or shape, or a batch
above ``max_batch`` raise :class:`RequestError` with the gRPC status code to answer with.

Example:
    >>> served = ServedModel("models", "facehallu")  # doctest: +SKIP
    >>> served.predict("serving_default", {"masked_image": x, "mask": m})["image"]  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_SIGNATURE = "serving_default"


class RequestError(Exception):
    """A request the server refuses; ``code`` is the ``grpc.StatusCode`` name to answer with."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ServedModel:
    """One version of one model from a TF-Serving model folder.

    Args:
        model_dir: the base folder (``MODEL_DIR`` holding ``NAME/VERSION/``).
        name: the model name.
        version: the version to serve; default the highest (TF-Serving's default policy).
        max_batch: the largest batch a request may carry.
    """

    def __init__(self, model_dir, name: str, version: int | None = None, max_batch: int = 16):
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        root = Path(model_dir) / name
        versions = sorted(int(p.name) for p in root.iterdir() if p.name.isdigit()) \
            if root.is_dir() else []
        if not versions:
            raise FileNotFoundError(f"no version folders (integers) under {root}")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise FileNotFoundError(f"version {version} not under {root}; found {versions}")
        self.name = name
        self.version = int(version)
        self.max_batch = int(max_batch)
        self.path = root / str(version)
        self._loaded = tf.saved_model.load(str(self.path))
        self.signatures = {k: v for k, v in self._loaded.signatures.items()}
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((self.path / "saved_model.pb").read_bytes())
        self.signature_defs = {key: sig for key, sig in proto.meta_graphs[0].signature_def.items()
                               if not key.startswith("__")}
        self.input_specs = {key: dict(fn.structured_input_signature[1])
                            for key, fn in self.signatures.items()}

    def check_target(self, name: str, version: int | None) -> None:
        """Raises NOT_FOUND unless ``name`` (and ``version``, when given) is what is served."""
        if name != self.name:
            raise RequestError("NOT_FOUND", f"Servable not found for request: model {name!r} "
                                            f"(this server serves {self.name!r})")
        if version is not None and int(version) != self.version:
            raise RequestError("NOT_FOUND", f"Servable not found for request: {name!r} version "
                                            f"{version} (serving version {self.version})")

    def signature(self, signature_name: str) -> str:
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signatures:
            raise RequestError("INVALID_ARGUMENT", f"signature_name: expected one of "
                                                   f"{sorted(self.signatures)}, found {key!r}")
        return key

    def check_inputs(self, signature_name: str, inputs: dict) -> None:
        """Checks names, dtypes, shapes and the batch size of ``inputs`` (numpy arrays)."""
        specs = self.input_specs[signature_name]
        missing = sorted(set(specs) - set(inputs))
        extra = sorted(set(inputs) - set(specs))
        if missing or extra:
            raise RequestError("INVALID_ARGUMENT",
                               f"inputs: expected {sorted(specs)}, missing {missing}, "
                               f"unexpected {extra}")
        batches = set()
        for key, spec in specs.items():
            value = inputs[key]
            if value.dtype != spec.dtype.as_numpy_dtype:
                raise RequestError("INVALID_ARGUMENT",
                                   f"input {key!r}: expected dtype {spec.dtype.name}, "
                                   f"found {value.dtype.name}")
            want = spec.shape.as_list()
            if len(value.shape) != len(want) or any(
                    w is not None and w != f for w, f in zip(want, value.shape, strict=True)):
                shape = ["N" if w is None else w for w in want]
                raise RequestError("INVALID_ARGUMENT", f"input {key!r}: expected shape {shape}, "
                                                       f"found {list(value.shape)}")
            batches.add(value.shape[0])
        if len(batches) > 1:
            raise RequestError("INVALID_ARGUMENT",
                               f"inputs: batch sizes differ between inputs: {sorted(batches)}")
        batch = batches.pop()
        if batch < 1 or batch > self.max_batch:
            raise RequestError("INVALID_ARGUMENT",
                               f"batch size: expected 1..{self.max_batch}, found {batch}")

    def predict(self, signature_name: str, inputs: dict, output_filter=()) -> dict:
        """Checks ``inputs`` and runs the signature; returns numpy outputs by name."""
        import tensorflow as tf

        key = self.signature(signature_name)
        self.check_inputs(key, inputs)
        outputs = self.signatures[key](**{k: tf.constant(v) for k, v in inputs.items()})
        if output_filter:
            unknown = sorted(set(output_filter) - set(outputs))
            if unknown:
                raise RequestError("INVALID_ARGUMENT", f"output_filter: unknown outputs "
                                                       f"{unknown}, expected {sorted(outputs)}")
            outputs = {k: outputs[k] for k in output_filter}
        return {k: v.numpy() for k, v in outputs.items()}

"""The served model: a SavedModel version loaded with ``tf.saved_model.load`` plus request checks.

Shared by the gRPC and REST front ends of :mod:`.server`. Requests are checked against the
signature before anything runs: missing or unexpected inputs, a wrong dtype or shape, or a batch
above ``max_batch`` raise :class:`RequestError` with the gRPC status code to answer with. A gRPC
request is checked on the shapes it declares and the exact length of its content before any of it
is decoded (:meth:`ServedModel.decode_tensors`).

Example:
    >>> served = ServedModel("models", "facehallu")  # doctest: +SKIP
    >>> served.predict("serving_default", {"masked_image": x, "mask": m})["image"]  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_SIGNATURE = "serving_default"
# TensorProto's repeated field for each dtype (tensorflow/core/framework/tensor.proto)
_VALUE_FIELDS = {"float32": "float_val", "float64": "double_val", "int32": "int_val",
                 "uint8": "int_val", "int8": "int_val", "int16": "int_val", "uint16": "int_val",
                 "int64": "int64_val", "bool": "bool_val", "float16": "half_val",
                 "uint32": "uint32_val", "uint64": "uint64_val"}


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

    def check_declared(self, signature_name: str, declared: dict) -> None:
        """Checks input names, dtypes, shapes and the batch size before any data is decoded.

        ``declared`` maps each input name to ``(numpy dtype, shape)`` as the request states them,
        so a request is refused on what it claims before its content costs any memory.
        """
        specs = self.input_specs[signature_name]
        missing = sorted(set(specs) - set(declared))
        extra = sorted(set(declared) - set(specs))
        if missing or extra:
            raise RequestError("INVALID_ARGUMENT",
                               f"inputs: expected {sorted(specs)}, missing {missing}, "
                               f"unexpected {extra}")
        batches = set()
        for key, spec in specs.items():
            dtype, shape = declared[key]
            if np.dtype(dtype) != np.dtype(spec.dtype.as_numpy_dtype):
                raise RequestError("INVALID_ARGUMENT",
                                   f"input {key!r}: expected dtype {spec.dtype.name}, "
                                   f"found {np.dtype(dtype).name}")
            want = spec.shape.as_list()
            shape = [int(d) for d in shape]
            if len(shape) != len(want) or any(d < 0 for d in shape) or any(
                    w is not None and w != f for w, f in zip(want, shape, strict=True)):
                expected = ["N" if w is None else w for w in want]
                raise RequestError("INVALID_ARGUMENT", f"input {key!r}: expected shape "
                                                       f"{expected}, found {shape}")
            batches.add(shape[0])
        if len(batches) > 1:
            raise RequestError("INVALID_ARGUMENT",
                               f"inputs: batch sizes differ between inputs: {sorted(batches)}")
        batch = batches.pop()
        if batch < 1 or batch > self.max_batch:
            raise RequestError("INVALID_ARGUMENT",
                               f"batch size: expected 1..{self.max_batch}, found {batch}")

    def check_inputs(self, signature_name: str, inputs: dict) -> None:
        """Checks names, dtypes, shapes and the batch size of ``inputs`` (numpy arrays)."""
        self.check_declared(signature_name, {k: (v.dtype, v.shape) for k, v in inputs.items()})

    def example_size(self) -> int:
        """The most numbers one example carries, summed over the inputs, in any signature.

        ``0`` when a signature has a dimension besides the batch that is not fixed.
        """
        sizes = []
        for specs in self.input_specs.values():
            total = 0
            for spec in specs.values():
                dims = spec.shape.as_list()[1:]
                if any(d is None for d in dims):
                    return 0
                total += int(np.prod(dims, dtype=np.int64))
            sizes.append(total)
        return max(sizes, default=0)

    def decode_tensors(self, signature_name: str, protos) -> dict:
        """numpy inputs from ``TensorProto`` messages, checked before anything is allocated.

        The declared dtype and shape are checked against the signature and ``max_batch`` first
        (:meth:`check_declared`), then the content must hold exactly the declared number of
        values — ``tensor_content`` of ``elements × itemsize`` bytes, or that many entries of the
        dtype's repeated field (TF-Serving's fill-with-the-last-value shorthand is refused).
        """
        import tensorflow as tf

        declared = {}
        for name, proto in protos.items():
            try:
                dtype = tf.dtypes.as_dtype(proto.dtype).as_numpy_dtype
            except (TypeError, ValueError) as err:
                raise RequestError("INVALID_ARGUMENT",
                                   f"input {name!r}: unknown dtype {proto.dtype}") from err
            if proto.tensor_shape.unknown_rank:
                raise RequestError("INVALID_ARGUMENT", f"input {name!r}: shape of unknown rank")
            declared[name] = (dtype, [d.size for d in proto.tensor_shape.dim])
        self.check_declared(signature_name, declared)
        arrays = {}
        for name, proto in protos.items():
            dtype, shape = declared[name]
            count = int(np.prod(shape, dtype=np.int64))
            itemsize = np.dtype(dtype).itemsize
            fields = [f.name for f, _ in proto.ListFields()
                      if f.name not in ("dtype", "tensor_shape", "version_number")]
            if len(fields) != 1:
                raise RequestError("INVALID_ARGUMENT", f"input {name!r}: expected the values in "
                                                       f"one field, found {fields or 'none'}")
            field = fields[0]
            if field == "tensor_content":
                found = len(proto.tensor_content)
                if found != count * itemsize:
                    raise RequestError("INVALID_ARGUMENT",
                                       f"input {name!r}: tensor_content holds {found} bytes, "
                                       f"shape {shape} of {np.dtype(dtype).name} needs "
                                       f"{count * itemsize}")
                arrays[name] = np.frombuffer(proto.tensor_content, dtype).reshape(shape).copy()
                continue
            expected_field = _VALUE_FIELDS.get(np.dtype(dtype).name)
            found = len(getattr(proto, field))
            if field != expected_field or found != count:
                raise RequestError("INVALID_ARGUMENT",
                                   f"input {name!r}: expected {count} values in tensor_content "
                                   f"or {expected_field}, found {found} in {field}")
            try:
                arrays[name] = tf.make_ndarray(proto)
            except (TypeError, ValueError, OverflowError) as err:
                raise RequestError("INVALID_ARGUMENT",
                                   f"input {name!r}: cannot decode tensor ({err})") from err
        return arrays

    def predict(self, signature_name: str, inputs: dict, output_filter=()) -> dict:
        """Checks ``inputs`` and runs the signature; returns numpy outputs by name."""
        import tensorflow as tf

        key = self.signature(signature_name)
        self.check_inputs(key, inputs)
        names = sorted(self.signatures[key].structured_outputs)
        unknown = sorted(set(output_filter) - set(names))
        if unknown:  # before the model runs
            raise RequestError("INVALID_ARGUMENT", f"output_filter: unknown outputs {unknown}, "
                                                   f"expected {names}")
        outputs = self.signatures[key](**{k: tf.constant(v) for k, v in inputs.items()})
        if output_filter:
            outputs = {k: outputs[k] for k in output_filter}
        return {k: v.numpy() for k, v in outputs.items()}

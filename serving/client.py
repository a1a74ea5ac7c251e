"""A client for TensorFlow Serving (and :mod:`serving.server`) over gRPC or REST, numpy in and out.

:class:`PredictionClient` uses ``tensorflow-serving-api``'s ``PredictionServiceStub`` and
``ModelServiceStub``; :class:`RestClient` makes the same calls on the REST API (port 8501, JSON).
Both give every call a deadline, retry UNAVAILABLE with bounded exponential backoff, split batches
above ``max_batch`` into chunks, and raise :class:`ServingError` (with a ``grpc.StatusCode``) when
the server refuses a request.

Command line (masked image + mask prepared from each photo by the face pipeline, or given as
pre-aligned 128×128 PNG pairs with ``--masks``)::

    python -m serving.client photo.jpg --host 127.0.0.1 --port 8500 --out results/
    python -m serving.client face.png --masks mask.png --port 8501 --rest --out results/

Example:
    >>> with PredictionClient("127.0.0.1", 8500) as client:  # doctest: +SKIP
    ...     image = client.hallucinate(masked_image_uint8, mask)  # uint8 [N,128,128,3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

DEFAULT_SIGNATURE = "serving_default"
MiB = 1024 * 1024


class ServingError(RuntimeError):
    """The server refused or failed a call; ``code`` is a ``grpc.StatusCode``."""

    def __init__(self, code, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def _retrying(call, max_retries: int, backoff: float, max_backoff: float):
    """Runs ``call()``, retrying ServingError(UNAVAILABLE) up to ``max_retries`` times."""
    import grpc

    for attempt in range(max_retries + 1):
        try:
            return call()
        except ServingError as err:
            if err.code != grpc.StatusCode.UNAVAILABLE or attempt == max_retries:
                raise
            time.sleep(min(max_backoff, backoff * 2 ** attempt))
    raise AssertionError("unreachable")


def _chunks(inputs: dict, max_batch: int):
    sizes = {np.shape(v)[0] if np.ndim(v) else 0 for v in inputs.values()}
    if len(sizes) != 1:
        raise ValueError(f"inputs: expected one batch size for all inputs, found {sorted(sizes)}")
    n = sizes.pop()
    for start in range(0, max(n, 1), max_batch):
        yield {k: np.asarray(v)[start:start + max_batch] for k, v in inputs.items()}


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def hallucination_inputs(masked_image, mask) -> dict:
    """uint8 ``serving_default`` inputs from a masked image (uint8) and a mask (bool/0-1/0-255)."""
    image = np.asarray(masked_image)
    face = np.asarray(mask)
    if image.ndim == 3:
        image, face = image[None], face[None] if face.ndim in (2, 3) else face
    if face.ndim == 3:
        face = face[..., None]
    if image.dtype != np.uint8 or image.shape[1:] != (128, 128, 3):
        raise ValueError(f"masked_image: expected uint8 [N,128,128,3], "
                         f"found {image.dtype} {list(image.shape)}")
    if face.shape[:3] != image.shape[:3] or face.shape[-1] != 1:
        raise ValueError(f"mask: expected [N,128,128,1] matching masked_image, "
                         f"found {list(face.shape)}")
    return {"masked_image": image, "mask": (face > 0).astype(np.uint8)}


class _Client:
    """Behaviour shared by the gRPC and REST clients."""

    def hallucinate(self, masked_image, mask) -> np.ndarray:
        """Runs ``serving_default``: uint8 masked image + mask → uint8 [N,128,128,3]."""
        return self.predict(hallucination_inputs(masked_image, mask),
                            signature=DEFAULT_SIGNATURE)["image"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        pass


class PredictionClient(_Client):
    """gRPC client for TF-Serving's ``PredictionService`` and ``ModelService``.

    Args:
        host: server address.
        port: gRPC port (TF-Serving's default is 8500).
        model_name: served model name.
        signature: default signature for :meth:`predict`.
        version: model version to ask for; ``None`` means the server's latest.
        timeout: deadline of each call, in seconds.
        max_retries: retries on UNAVAILABLE (0 disables), with backoff ``backoff * 2**k`` seconds
            capped at ``max_backoff``.
        max_batch: largest batch per request; larger batches are sent in chunks.
        max_message_mb: gRPC message limit of this client's channel, in MiB.

    Example:
        >>> client = PredictionClient("127.0.0.1", 8500, model_name="facehallu")  # doctest: +SKIP
        >>> client.predict({"masked_image": x, "mask": m})["image"].shape  # doctest: +SKIP
        (2, 128, 128, 3)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8500, model_name: str = "facehallu",
                 signature: str = DEFAULT_SIGNATURE, version: int | None = None,
                 timeout: float = 30.0, max_retries: int = 4, backoff: float = 0.1,
                 max_backoff: float = 2.0, max_batch: int = 16, max_message_mb: float = 64.0):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if max_batch < 1:
            raise ValueError(f"max_batch: expected at least 1, found {max_batch}")
        self.target = f"{host}:{port}"
        self.model_name, self.signature, self.version = model_name, signature, version
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff, self.max_backoff, self.max_batch = backoff, max_backoff, max_batch
        limit = int(max_message_mb * MiB)
        self._channel = grpc.insecure_channel(self.target, options=[
            ("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)])
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def _spec(self, spec, signature: str | None = None) -> None:
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = int(self.version)
        if signature is not None:
            spec.signature_name = signature

    def _call(self, method, request):
        import grpc

        def once():
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as err:
                raise ServingError(err.code(), err.details() or "") from err

        return _retrying(once, self.max_retries, self.backoff, self.max_backoff)

    def predict(self, inputs: dict, signature: str | None = None,
                output_filter=None) -> dict[str, np.ndarray]:
        """Runs ``signature`` on ``inputs`` (name → numpy array, batch first); outputs by name."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        parts = []
        for chunk in _chunks(inputs, self.max_batch):
            request = predict_pb2.PredictRequest()
            self._spec(request.model_spec, signature or self.signature)
            for name, value in chunk.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(np.ascontiguousarray(value)))
            request.output_filter.extend(output_filter or ())
            response = self._call(self._predict.Predict, request)
            parts.append({k: tf.make_ndarray(v) for k, v in response.outputs.items()})
        return _concat(parts)

    def get_model_metadata(self) -> dict:
        """Signatures as ``{name: {"inputs": {in: (dtype, shape)}, "outputs": {...}}}``."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._call(self._predict.GetModelMetadata, request)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sig_map)
        return _describe(sig_map)

    def get_model_status(self) -> list[tuple[int, str]]:
        """``[(version, state name)]`` of the model, e.g. ``[(1, "AVAILABLE")]``."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec)
        response = self._call(self._models.GetModelStatus, request)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [(s.version, states.Name(s.state)) for s in response.model_version_status]


def _describe(sig_map) -> dict:
    from google.protobuf import json_format

    return _describe_json(json_format.MessageToDict(sig_map, preserving_proto_field_name=True))


_DTYPES = {"DT_UINT8": "uint8", "DT_FLOAT": "float32", "DT_INT32": "int32", "DT_INT64": "int64"}


def _describe_json(sig_map: dict) -> dict:
    def tensors(infos: dict) -> dict:
        out = {}
        for name, info in infos.items():
            shape = info.get("tensor_shape", info.get("tensorShape", {}))
            dims = shape.get("dim", [])
            out[name] = (_DTYPES.get(info.get("dtype"), info.get("dtype")),
                         tuple(int(d.get("size", 0)) for d in dims))
        return out

    return {key: {"inputs": tensors(sig.get("inputs", {})),
                  "outputs": tensors(sig.get("outputs", {}))}
            for key, sig in sig_map.get("signature_def", sig_map.get("signatureDef", {})).items()
            if not key.startswith("__")}


_HTTP_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 413: "RESOURCE_EXHAUSTED",
               429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
               504: "DEADLINE_EXCEEDED"}


class RestClient(_Client):
    """The same calls on TF-Serving's REST API (``/v1/models/NAME[/versions/V]``), JSON bodies.

    Args: as :class:`PredictionClient`; ``port`` is the REST port (TF-Serving's default 8501).

    Example:
        >>> client = RestClient("127.0.0.1", 8501, model_name="facehallu")  # doctest: +SKIP
        >>> client.get_model_status()  # doctest: +SKIP
        [(1, 'AVAILABLE')]
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8501, model_name: str = "facehallu",
                 signature: str = DEFAULT_SIGNATURE, version: int | None = None,
                 timeout: float = 30.0, max_retries: int = 4, backoff: float = 0.1,
                 max_backoff: float = 2.0, max_batch: int = 16):
        if max_batch < 1:
            raise ValueError(f"max_batch: expected at least 1, found {max_batch}")
        self.base = f"http://{host}:{port}/v1/models/{model_name}"
        if version is not None:
            self.base += f"/versions/{int(version)}"
        self.model_name, self.signature, self.version = model_name, signature, version
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff, self.max_backoff, self.max_batch = backoff, max_backoff, max_batch
        self._metadata = None

    def _request(self, url: str, body: dict | None = None) -> dict:
        import grpc

        data = None if body is None else json.dumps(body).encode()

        def once():
            request = urllib.request.Request(url, data=data, method="GET" if data is None
                                             else "POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    return json.loads(reply.read())
            except urllib.error.HTTPError as err:
                text = err.read().decode(errors="replace")
                try:
                    text = json.loads(text).get("error", text)
                except (json.JSONDecodeError, AttributeError):
                    pass
                code = getattr(grpc.StatusCode, _HTTP_CODES.get(err.code, "UNKNOWN"))
                raise ServingError(code, f"HTTP {err.code}: {text}") from err
            except TimeoutError as err:
                raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{url}: {err}") from err
            except (urllib.error.URLError, ConnectionError) as err:
                if isinstance(getattr(err, "reason", None), TimeoutError):
                    raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{url}: {err}") from err
                raise ServingError(grpc.StatusCode.UNAVAILABLE, f"{url}: {err}") from err

        return _retrying(once, self.max_retries, self.backoff, self.max_backoff)

    def get_model_metadata(self) -> dict:
        """Signatures as ``{name: {"inputs": {in: (dtype, shape)}, "outputs": {...}}}``."""
        if self._metadata is None:
            reply = self._request(self.base + "/metadata")
            self._metadata = _describe_json(reply["metadata"]["signature_def"])
        return self._metadata

    def get_model_status(self) -> list[tuple[int, str]]:
        """``[(version, state name)]`` of the model, e.g. ``[(1, "AVAILABLE")]``."""
        reply = self._request(self.base)
        return [(int(s["version"]), s["state"]) for s in reply["model_version_status"]]

    def predict(self, inputs: dict, signature: str | None = None,
                output_filter=None) -> dict[str, np.ndarray]:
        """Runs ``signature`` on ``inputs`` via ``:predict`` (columnar ``inputs`` format)."""
        signature = signature or self.signature
        outputs = self.get_model_metadata().get(signature, {}).get("outputs", {})
        parts = []
        for chunk in _chunks(inputs, self.max_batch):
            body = {"signature_name": signature,
                    "inputs": {k: np.asarray(v).tolist() for k, v in chunk.items()}}
            reply = self._request(self.base + ":predict", body)["outputs"]
            if not isinstance(reply, dict):  # one output: TF-Serving leaves out its name
                reply = {next(iter(outputs), "output"): reply}
            parts.append({k: np.asarray(v, dtype=outputs.get(k, ("float32",))[0])
                          for k, v in reply.items() if not output_filter or k in output_filter})
        return _concat(parts)


def load_pairs(images, masks=None):
    """(masked_image uint8 [N,128,128,3], mask uint8 [N,128,128,1]) for the CLI's IMAGE args.

    With ``masks``, each IMAGE is a pre-aligned 128×128 RGB image and its mask a 128×128 PNG
    (non-zero = face); the image is masked here. Without, each IMAGE is a photo that
    ``keras_facehallu.face.pipeline.prepare_face`` detects, aligns and masks.
    """
    from PIL import Image

    pairs = []
    if masks:
        if len(masks) != len(images):
            raise ValueError(f"--masks: expected one mask per IMAGE ({len(images)}), "
                             f"found {len(masks)}")
        for image_path, mask_path in zip(images, masks, strict=True):
            image = np.asarray(Image.open(image_path).convert("RGB"))
            mask = np.asarray(Image.open(mask_path).convert("L"))
            if image.shape != (128, 128, 3) or mask.shape != (128, 128):
                raise ValueError(f"{image_path} / {mask_path}: expected a 128×128 image and mask, "
                                 f"found {image.shape[:2]} and {mask.shape}")
            face = (mask > 0).astype(np.uint8)[..., None]
            pairs.append((image * face, face))
    else:
        from keras_facehallu.face.pipeline import prepare_face

        for image_path in images:
            prepared = prepare_face(image_path)
            masked, face = _from_prepared(prepared, image_path)
            pairs.append((masked, face))
    return (np.stack([p[0] for p in pairs]).astype(np.uint8),
            np.stack([p[1] for p in pairs]).astype(np.uint8))


def _from_prepared(prepared, source):
    """Masked uint8 image and uint8 mask from whatever ``prepare_face`` returned."""
    get = prepared.get if isinstance(prepared, dict) else lambda k: getattr(prepared, k, None)
    if get("ok") is False:
        raise ValueError(get("message") or f"{source}: no face ({get('reason')})")
    image, mask = get("masked_image"), get("mask")
    if image is None:
        image = get("image")
    if image is None or mask is None:
        raise ValueError(f"{source}: prepare_face returned no image/mask")
    image, mask = np.asarray(image), np.asarray(mask)
    if image.dtype != np.uint8:  # float in [-1, 1]
        image = np.round((np.clip(image, -1, 1) + 1) * 127.5).astype(np.uint8)
    mask = (mask.reshape(128, 128, 1) > 0).astype(np.uint8)
    return image * mask, mask


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="photos (or aligned images)")
    parser.add_argument("--masks", nargs="+", metavar="MASK", help="masks for aligned IMAGEs")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="gRPC port (8500) or REST port with --rest (8501)")
    parser.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    parser.add_argument("--model-name", default="facehallu")
    parser.add_argument("--version", type=int)
    parser.add_argument("--signature", default=DEFAULT_SIGNATURE,
                        choices=[DEFAULT_SIGNATURE, "serving_float"])
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline per call, seconds")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the results")
    parser.add_argument("--metadata", action="store_true", help="print status and signatures")
    args = parser.parse_args(argv)
    if not args.images and not args.metadata:
        parser.error("give IMAGE files, or --metadata")
    port = args.port or (8501 if args.rest else 8500)
    kind = RestClient if args.rest else PredictionClient
    client = kind(args.host, port, model_name=args.model_name, signature=args.signature,
                  version=args.version, timeout=args.timeout, max_batch=args.max_batch)
    try:
        with client:
            if args.metadata:
                print(json.dumps({"status": client.get_model_status(),
                                  "signatures": client.get_model_metadata()}, indent=2))
            if args.images:
                masked, mask = load_pairs(args.images, args.masks)
                if args.signature == DEFAULT_SIGNATURE:
                    result = client.hallucinate(masked, mask)
                else:
                    inputs = {"masked_image": masked.astype(np.float32) / 127.5 - 1.0,
                              "mask": mask.astype(np.float32)}
                    out = client.predict(inputs)["image"]
                    result = np.round((np.clip(out, -1, 1) + 1) * 127.5).astype(np.uint8)
                write_results(result, args.images, args.out)
    except (ServingError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def write_results(images: np.ndarray, sources, out: Path) -> list[Path]:
    """Writes ``OUT/<stem>_hallucinated.png`` for each result; returns the paths."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for image, source in zip(images, sources, strict=True):
        path = out / f"{Path(source).stem}_hallucinated.png"
        Image.fromarray(image).save(path)
        print(path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    sys.exit(main())

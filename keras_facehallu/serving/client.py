"""A client for TensorFlow Serving (and :mod:`.server`) over gRPC or REST, numpy in and out.

:class:`PredictionClient` uses ``tensorflow-serving-api``'s ``PredictionServiceStub`` and
``ModelServiceStub``; :class:`RestClient` makes the same calls on the REST API (port 8501, JSON).
Both give every call a deadline, retry only what may succeed later with bounded exponential
backoff (gRPC: UNAVAILABLE, by gRPC's own retry policy in the channel's service config; REST:
connection failures, HTTP 503 and 429 — never another 4xx), split batches above ``max_batch``
into chunks, and raise :class:`ServingError` (with a ``grpc.StatusCode``) when the server refuses
a request. Both take ``ca_file`` (TLS, checked against that CA) and ``token`` (a bearer token).

Command line (masked image + mask prepared from each photo by the face pipeline, or given as
pre-aligned 128×128 PNG pairs with ``--masks``)::

    facehallu-client photo.jpg --host 127.0.0.1 --port 8500 --out results/
    facehallu-client face.png --masks mask.png --port 8501 --rest --out results/

A photo that cannot be prepared (not an image, no face) is reported as ``FAILED PATH: reason`` on
stderr and the others are still served; the exit status is 1 when any failed (as ``facehallu``).
Results are PNGs marked as synthetic (text chunks and IPTC ``DigitalSourceType`` in XMP).

Example:
    >>> with PredictionClient("127.0.0.1", 8500) as client:  # doctest: +SKIP
    ...     image = client.hallucinate(masked_image_uint8, mask)  # uint8 [N,128,128,3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import time
from pathlib import Path

import numpy as np

from keras_facehallu.preprocessing import from_uint8, to_uint8

DEFAULT_SIGNATURE = "serving_default"
MiB = 1024 * 1024


class ServingError(RuntimeError):
    """The server refused or failed a call; ``code`` is a ``grpc.StatusCode``.

    ``retryable`` says whether the same call may succeed later (REST client's retries).
    """

    def __init__(self, code, message: str, retryable: bool = False):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


def _retrying(call, max_retries: int, backoff: float, max_backoff: float):
    """Runs ``call()``, retrying a ``retryable`` ServingError up to ``max_retries`` times."""
    for attempt in range(max_retries + 1):
        try:
            return call()
        except ServingError as err:
            if not err.retryable or attempt == max_retries:
                raise
            time.sleep(min(max_backoff, backoff * 2 ** attempt))
    raise AssertionError("unreachable")


GRPC_MAX_ATTEMPTS = 5  # gRPC caps a retry policy's maxAttempts at 5


def grpc_service_config(max_retries: int, backoff: float, max_backoff: float) -> dict:
    """The channel's service config: retry UNAVAILABLE with exponential backoff, nothing else.

    ``max_retries`` is capped at 4 (gRPC allows at most 5 attempts); 0 gives no retry policy.
    gRPC waits a random time up to ``backoff * 2**k`` (capped at ``max_backoff``) before retry
    ``k + 1``, and every attempt stays within the call's deadline.
    """
    services = [{"service": "tensorflow.serving.PredictionService"},
                {"service": "tensorflow.serving.ModelService"}]
    if max_retries < 1:
        return {"methodConfig": [{"name": services}]}
    return {"methodConfig": [{"name": services, "retryPolicy": {
        "maxAttempts": min(GRPC_MAX_ATTEMPTS, max_retries + 1),
        "initialBackoff": f"{max(backoff, 1e-3):.3f}s",
        "maxBackoff": f"{max(max_backoff, backoff, 1e-3):.3f}s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]}}]}


def _read_text(path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise OSError(f"{what} {path}: cannot read ({err.strerror or err})") from err


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
        timeout: deadline of each call (all its retries included), in seconds.
        max_retries: retries on UNAVAILABLE (0 disables, at most 4), by gRPC's retry policy
            (:func:`grpc_service_config`): backoff up to ``backoff * 2**k`` seconds capped at
            ``max_backoff``. Other codes (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...) are final.
        max_batch: largest batch per request; larger batches are sent in chunks.
        max_message_mb: gRPC message limit of this client's channel, in MiB.
        ca_file: PEM CA certificate(s) to check the server's TLS certificate against; with it
            the channel uses TLS.
        token: bearer token sent as ``authorization`` metadata on every call.
        tls_server_name: the name to check the server certificate for, when it differs from
            ``host``.

    Example:
        >>> client = PredictionClient("127.0.0.1", 8500, model_name="facehallu")  # doctest: +SKIP
        >>> client.predict({"masked_image": x, "mask": m})["image"].shape  # doctest: +SKIP
        (2, 128, 128, 3)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8500, model_name: str = "facehallu",
                 signature: str = DEFAULT_SIGNATURE, version: int | None = None,
                 timeout: float = 30.0, max_retries: int = 4, backoff: float = 0.1,
                 max_backoff: float = 2.0, max_batch: int = 16, max_message_mb: float = 64.0,
                 ca_file=None, token: str | None = None, tls_server_name: str | None = None):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if max_batch < 1:
            raise ValueError(f"max_batch: expected at least 1, found {max_batch}")
        if max_retries < 0:
            raise ValueError(f"max_retries: expected 0 or more, found {max_retries}")
        self.target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.model_name, self.signature, self.version = model_name, signature, version
        self.timeout, self.max_retries = timeout, min(max_retries, GRPC_MAX_ATTEMPTS - 1)
        self.backoff, self.max_backoff, self.max_batch = backoff, max_backoff, max_batch
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        limit = int(max_message_mb * MiB)
        options = [("grpc.max_send_message_length", limit),
                   ("grpc.max_receive_message_length", limit),
                   ("grpc.enable_retries", 1 if self.max_retries else 0),
                   ("grpc.per_rpc_retry_buffer_size", limit),
                   ("grpc.service_config", json.dumps(
                       grpc_service_config(self.max_retries, backoff, max_backoff)))]
        if ca_file is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read_text(ca_file, "CA certificate"))
            if tls_server_name:
                options.append(("grpc.ssl_target_name_override", tls_server_name))
            self._channel = grpc.secure_channel(self.target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(self.target, options=options)
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

        try:  # retries, when any, are gRPC's (the channel's service config)
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise ServingError(err.code(), err.details() or "") from err

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


_HTTP_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
               404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 411: "INVALID_ARGUMENT",
               413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
               501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_HTTP_RETRYABLE = {429, 503}  # the server is busy: the same request may succeed later


class RestClient(_Client):
    """The same calls on TF-Serving's REST API (``/v1/models/NAME[/versions/V]``), JSON bodies.

    Args: as :class:`PredictionClient` (no ``tls_server_name``: connect by the certificate's name);
    ``port`` is the REST port (TF-Serving's default 8501).
    ``timeout`` bounds each connect, send and receive; ``max_retries`` (any number here) retries
    connection failures and HTTP 503/429 only: a 4xx answer (400, 401, 404, 413, ...) is final
    and raised at once. With ``ca_file`` the client speaks HTTPS and checks the server against it;
    ``token`` is sent as ``Authorization: Bearer TOKEN``. ``max_response_mb`` bounds the answer.

    Example:
        >>> client = RestClient("127.0.0.1", 8501, model_name="facehallu")  # doctest: +SKIP
        >>> client.get_model_status()  # doctest: +SKIP
        [(1, 'AVAILABLE')]
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8501, model_name: str = "facehallu",
                 signature: str = DEFAULT_SIGNATURE, version: int | None = None,
                 timeout: float = 30.0, max_retries: int = 4, backoff: float = 0.1,
                 max_backoff: float = 2.0, max_batch: int = 16, ca_file=None,
                 token: str | None = None, max_response_mb: float = 256.0):
        if max_batch < 1:
            raise ValueError(f"max_batch: expected at least 1, found {max_batch}")
        self.host, self.port = host, int(port)
        self.base = f"/v1/models/{model_name}"
        if version is not None:
            self.base += f"/versions/{int(version)}"
        scheme = "https" if ca_file is not None else "http"
        self.url = f"{scheme}://{host}:{port}{self.base}"
        self.model_name, self.signature, self.version = model_name, signature, version
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff, self.max_backoff, self.max_batch = backoff, max_backoff, max_batch
        self.max_response = int(max_response_mb * MiB)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._tls = None
        if ca_file is not None:
            from keras_facehallu.serving.security import client_tls_context

            self._tls = client_tls_context(ca_file)
        self._metadata = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._tls is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                           context=self._tls)

    def _exchange(self, method: str, path: str, data: bytes | None) -> dict:
        import grpc

        url = self.url + path
        connection = self._connection()
        try:
            send_error = None
            try:
                connection.request(method, self.base + path, body=data, headers=self._headers)
            except (BrokenPipeError, ConnectionResetError) as err:
                send_error = err  # the server may have answered early (e.g. 413) and closed
            try:
                reply = connection.getresponse()
                payload = reply.read(self.max_response + 1)
            except (BrokenPipeError, ConnectionResetError, http.client.HTTPException) as err:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, f"{url}: {send_error or err}",
                                   retryable=True) from err
        except TimeoutError as err:
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{url}: no answer within "
                                                                  f"{self.timeout} s") from err
        except ssl.SSLError as err:  # a certificate that does not check out is not transient
            raise ServingError(grpc.StatusCode.UNAVAILABLE, f"{url}: TLS: {err}") from err
        except OSError as err:  # refused, unreachable, reset while connecting
            raise ServingError(grpc.StatusCode.UNAVAILABLE, f"{url}: {err}",
                               retryable=True) from err
        finally:
            connection.close()
        if len(payload) > self.max_response:
            raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{url}: answer above {self.max_response} bytes")
        if reply.status >= 400:
            text = payload.decode(errors="replace")
            try:
                text = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                pass
            code = getattr(grpc.StatusCode, _HTTP_CODES.get(
                reply.status, "INVALID_ARGUMENT" if reply.status < 500 else "UNKNOWN"))
            raise ServingError(code, f"HTTP {reply.status}: {str(text)[:2000]}",
                               retryable=reply.status in _HTTP_RETRYABLE)
        try:
            return json.loads(payload)
        except ValueError as err:
            raise ServingError(grpc.StatusCode.INTERNAL, f"{url}: answer is not JSON") from err

    def _request(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        method = "GET" if data is None else "POST"
        return _retrying(lambda: self._exchange(method, path, data), self.max_retries,
                         self.backoff, self.max_backoff)

    def get_model_metadata(self) -> dict:
        """Signatures as ``{name: {"inputs": {in: (dtype, shape)}, "outputs": {...}}}``."""
        if self._metadata is None:
            reply = self._request("/metadata")
            self._metadata = _describe_json(reply["metadata"]["signature_def"])
        return self._metadata

    def get_model_status(self) -> list[tuple[int, str]]:
        """``[(version, state name)]`` of the model, e.g. ``[(1, "AVAILABLE")]``."""
        reply = self._request("")
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
            reply = self._request(":predict", body)["outputs"]
            if not isinstance(reply, dict):  # one output: TF-Serving leaves out its name
                reply = {next(iter(outputs), "output"): reply}
            parts.append({k: np.asarray(v, dtype=outputs.get(k, ("float32",))[0])
                          for k, v in reply.items() if not output_filter or k in output_filter})
        return _concat(parts)


def load_pairs(images, masks=None):
    """Model inputs for the CLI's IMAGE args, going on past the ones that fail.

    With ``masks``, each IMAGE is a pre-aligned 128×128 RGB image and its mask a 128×128 PNG
    (non-zero = face); the image is masked here. Without, each IMAGE is a photo that
    ``keras_facehallu.face.pipeline.prepare_face`` detects, aligns and masks.

    Returns:
        ``(masked_image uint8 [N,128,128,3], mask uint8 [N,128,128,1], kept, failures)``: the
        N inputs that could be prepared, ``kept`` their IMAGE paths, and ``failures`` a list of
        ``(IMAGE, message)`` for the others (unreadable, wrong size, no face).
    """
    from keras_facehallu.face.io import decode_image, load_image

    if masks and len(masks) != len(images):
        raise ValueError(f"--masks: expected one mask per IMAGE ({len(images)}), "
                         f"found {len(masks)}")
    pairs, kept, failures = [], [], []
    for index, image_path in enumerate(images):
        try:
            if masks:
                mask_path = masks[index]
                image = load_image(image_path)
                mask = decode_image(mask_path, lambda img: np.asarray(img.convert("L")))
                if image.shape != (128, 128, 3) or mask.shape != (128, 128):
                    raise ValueError(f"{image_path} / {mask_path}: expected a 128×128 image and "
                                     f"mask, found {image.shape[:2]} and {mask.shape}")
                face = (mask > 0).astype(np.uint8)[..., None]
                pair = (image * face, face)
            else:
                from keras_facehallu.face.pipeline import prepare_face

                pair = _from_prepared(prepare_face(image_path), image_path)
        except (OSError, ValueError) as err:  # ImageLoadError is a ValueError
            failures.append((str(image_path), str(err)))
            continue
        pairs.append(pair)
        kept.append(image_path)
    if not pairs:
        empty = np.zeros((0, 128, 128, 3), np.uint8), np.zeros((0, 128, 128, 1), np.uint8)
        return (*empty, kept, failures)
    return (np.stack([p[0] for p in pairs]).astype(np.uint8),
            np.stack([p[1] for p in pairs]).astype(np.uint8), kept, failures)


def _from_prepared(prepared, source):
    """Masked uint8 image and uint8 mask from whatever ``prepare_face`` returned."""
    get = prepared.get if isinstance(prepared, dict) else lambda k: getattr(prepared, k, None)
    if get("ok") is False:
        reason = get("message") or get("reason") or "no face"
        raise ValueError(reason if str(source) in str(reason) else f"{source}: {reason}")
    image, mask = get("masked_image"), get("mask")
    if image is None:
        image = get("image")
    if image is None or mask is None:
        raise ValueError(f"{source}: prepare_face returned no image/mask")
    image, mask = np.asarray(image), np.asarray(mask)
    if image.dtype != np.uint8:  # float in [-1, 1]
        image = to_uint8(image)
    mask = (mask.reshape(128, 128, 1) > 0).astype(np.uint8)
    return image * mask, mask


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="facehallu-client", description=__doc__,
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
    parser.add_argument("--ca-file", help="PEM CA certificate: use TLS, check the server with it")
    parser.add_argument("--token-file", help="file whose first line is the bearer token (or set "
                                             "FACEHALLU_SERVING_TOKEN)")
    args = parser.parse_args(argv)
    if not args.images and not args.metadata:
        parser.error("give IMAGE files, or --metadata")
    port = args.port or (8501 if args.rest else 8500)
    kind = RestClient if args.rest else PredictionClient
    failures = []
    try:
        from keras_facehallu.serving.security import read_token

        client = kind(args.host, port, model_name=args.model_name, signature=args.signature,
                      version=args.version, timeout=args.timeout, max_batch=args.max_batch,
                      ca_file=args.ca_file, token=read_token(args.token_file))
        with client:
            if args.metadata:
                print(json.dumps({"status": client.get_model_status(),
                                  "signatures": client.get_model_metadata()}, indent=2))
            if args.images:
                masked, mask, kept, failures = load_pairs(args.images, args.masks)
                for source, message in failures:
                    print(f"FAILED {source}: {message}", file=sys.stderr, flush=True)
                if not kept:
                    print(f"0 of {len(args.images)} photos done, {len(failures)} failed",
                          file=sys.stderr)
                    return 1
                if args.signature == DEFAULT_SIGNATURE:
                    result = client.hallucinate(masked, mask)
                else:
                    inputs = {"masked_image": from_uint8(masked),
                              "mask": mask.astype(np.float32)}
                    out = client.predict(inputs)["image"]
                    result = to_uint8(out)
                write_results(result, kept, args.out, args.model_name,
                              f"{args.host}:{port}")
                print(f"{len(kept)} of {len(args.images)} photos done, {len(failures)} failed; "
                      f"results in {args.out}", file=sys.stderr)
    except (ServingError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 1 if failures else 0


def write_results(images: np.ndarray, sources, out: Path, model: str = "facehallu",
                  server: str = "") -> list[Path]:
    """Writes ``OUT/<stem>_hallucinated.png`` for each result; returns the paths.

    Each PNG is marked as synthetic like ``facehallu``'s (text chunks and an XMP packet with IPTC
    ``DigitalSourceType`` = ``trainedAlgorithmicMedia``), naming the served model and server.
    """
    from keras_facehallu.outputs import synthetic_metadata, write_image

    out.mkdir(parents=True, exist_ok=True)
    metadata = synthetic_metadata(f"served:{model}", "served", server=server)
    paths = []
    for image, source in zip(images, sources, strict=True):
        path = write_image(out / f"{Path(source).stem}_hallucinated.png", image, metadata)
        print(path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    sys.exit(main())

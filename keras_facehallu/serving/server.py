"""A stand-in for TensorFlow Serving: the same gRPC (and REST) API over an exported SavedModel.

``tensorflow_model_server`` cannot be installed from PyPI or Debian, so this small Python server
implements what :mod:`.client` uses — ``PredictionService.Predict``,
``PredictionService.GetModelMetadata`` and ``ModelService.GetModelStatus`` on gRPC, and the
``/v1/models/NAME[:predict|/metadata]`` REST routes on an optional second port — for development
and tests. Production serving is TF-Serving (see the README) with the same client.

It binds 127.0.0.1 by default, runs requests on a bounded thread pool, answers bad requests with
INVALID_ARGUMENT (missing/unexpected input, wrong dtype or shape, batch above ``--max-batch``,
content that does not match the declared shape — all checked before the tensors are decoded),
NOT_FOUND (unknown model or version) or RESOURCE_EXHAUSTED (message above ``--max-message-mb``, too
many requests in flight) and keeps serving; SIGTERM or SIGINT shuts it down cleanly. The REST
front end (:mod:`.rest`) bounds connections, time and body size and answers client errors
with 4xx. ``--tls-cert``/``--tls-key`` serve both over TLS and ``--token-file`` requires a bearer
token on every call (:mod:`.security`); bound beyond loopback without them, it warns on
stderr. Once ready it prints one line ``READY grpc=HOST:PORT rest=HOST:PORT ...`` (``rest=-``
without REST).

Example:
    facehallu-serve --model-dir models --name facehallu --port 8500 --rest-port 8501
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from keras_facehallu.serving.model import RequestError, ServedModel
from keras_facehallu.serving.rest import RestLimits, make_rest_server
from keras_facehallu.serving.security import (
    TOKEN_ENV,
    exposure_warnings,
    read_pem,
    read_token,
    server_tls_context,
    token_matches,
)

MiB = 1024 * 1024


def _status(code_name: str):
    return getattr(grpc.StatusCode, code_name)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``PredictionService`` (Predict, GetModelMetadata) over a :class:`ServedModel`."""

    def __init__(self, served: ServedModel):
        self.served = served

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        try:
            spec = request.model_spec
            self.served.check_target(spec.name, spec.version.value if spec.HasField("version")
                                     else None)
            key = self.served.signature(spec.signature_name)
            inputs = self.served.decode_tensors(key, request.inputs)
            outputs = self.served.predict(key, inputs, tuple(request.output_filter))
        except RequestError as err:
            context.abort(_status(err.code), err.message)
        except Exception as err:  # the model failed: report, keep serving
            context.abort(_status("INTERNAL"), f"{type(err).__name__}: {err}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.served.name
        response.model_spec.version.value = self.served.version
        response.model_spec.signature_name = key
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802 - gRPC method name
        from tensorflow_serving.apis import get_model_metadata_pb2

        try:
            spec = request.model_spec
            self.served.check_target(spec.name, spec.version.value if spec.HasField("version")
                                     else None)
            fields = list(request.metadata_field) or ["signature_def"]
            if fields != ["signature_def"]:
                raise RequestError("INVALID_ARGUMENT", f"metadata_field: expected "
                                                       f"['signature_def'], found {fields}")
        except RequestError as err:
            context.abort(_status(err.code), err.message)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in self.served.signature_defs.items():
            sig_map.signature_def[key].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.served.name
        response.model_spec.version.value = self.served.version
        response.metadata["signature_def"].Pack(sig_map)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``ModelService.GetModelStatus``: the served version is AVAILABLE."""

    def __init__(self, served: ServedModel):
        self.served = served

    def GetModelStatus(self, request, context):  # noqa: N802 - gRPC method name
        from tensorflow_serving.apis import get_model_status_pb2

        spec = request.model_spec
        try:
            self.served.check_target(spec.name, spec.version.value if spec.HasField("version")
                                     else None)
        except RequestError as err:
            context.abort(_status(err.code), err.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = self.served.version
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


class _TokenInterceptor(grpc.ServerInterceptor):
    """Refuses gRPC calls without ``authorization: Bearer TOKEN`` metadata (UNAUTHENTICATED)."""

    def __init__(self, token: str):
        self._token = token

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "missing or wrong bearer token (authorization metadata)")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, details):
        for key, value in details.invocation_metadata or ():
            if key == "authorization" and token_matches(value, self._token):
                return continuation(details)
        return self._deny


class Server:
    """The gRPC server (and optional REST server) for one model version.

    Args:
        model_dir: TF-Serving base folder (``MODEL_DIR/NAME/VERSION``).
        name: model name.
        host: address to bind (127.0.0.1 by default: loopback only).
        port: gRPC port; 0 picks a free one (see ``self.port`` after :meth:`start`).
        rest_port: REST port, 0 for a free one, ``None`` for no REST server.
        version: version to serve (default the highest).
        max_batch: largest batch per request.
        max_message_mb: largest gRPC message accepted, in MiB (REST bodies: 8× this, as JSON
            numbers take several bytes each).
        workers: threads running requests.
        max_concurrent: requests in flight before RESOURCE_EXHAUSTED (gRPC) or 429 (REST).
        max_connections: REST connections served at once; more get 503.
        idle_timeout: seconds a REST read may wait (idle keep-alive connections close after it).
        request_timeout: seconds to receive a whole REST request.
        tls_cert, tls_key: PEM certificate chain and key; both given, gRPC and REST use TLS.
        token: a bearer token every gRPC and REST call must carry; ``None`` for none.

    Example:
        >>> server = Server("models", "facehallu", port=0).start()  # doctest: +SKIP
        >>> server.port  # doctest: +SKIP
        40123
        >>> server.stop()  # doctest: +SKIP
    """

    def __init__(self, model_dir, name: str, host: str = "127.0.0.1", port: int = 8500,
                 rest_port: int | None = None, version: int | None = None, max_batch: int = 16,
                 max_message_mb: float = 4.0, workers: int = 8, max_concurrent: int = 64,
                 max_connections: int = 32, idle_timeout: float = 10.0,
                 request_timeout: float = 60.0, tls_cert=None, tls_key=None,
                 token: str | None = None):
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key: give both (TLS) or neither")
        for label, value in (("max_batch", max_batch), ("workers", workers),
                             ("max_concurrent", max_concurrent),
                             ("max_connections", max_connections)):
            if int(value) < 1:
                raise ValueError(f"{label}: expected at least 1, found {value}")
        for label, value in (("max_message_mb", max_message_mb), ("idle_timeout", idle_timeout),
                             ("request_timeout", request_timeout)):
            if not value > 0:
                raise ValueError(f"{label}: expected a positive number, found {value}")
        self.tls = self._tls_context = None
        if tls_cert is not None:
            self.tls = (read_pem(tls_cert, "TLS certificate"), read_pem(tls_key, "TLS key"))
            self._tls_context = server_tls_context(tls_cert, tls_key)
        self.token = token
        self.served = ServedModel(model_dir, name, version, max_batch)
        self.host, self.port, self.rest_port = host, port, rest_port
        self.max_message = int(max_message_mb * MiB)
        self.workers, self.max_concurrent = workers, max_concurrent
        self.rest_limits = RestLimits(max_body=self.max_message * 8,
                                      max_connections=max_connections,
                                      max_in_flight=max_concurrent, idle_timeout=idle_timeout,
                                      request_timeout=request_timeout)
        self._grpc = None
        self._http = None
        self._pool = None
        self._rest_pool = None

    def warnings(self) -> list[str]:
        """Warning lines when bound beyond loopback without TLS or a token."""
        return exposure_warnings(self.host, self.tls is not None, self.token is not None)

    def start(self) -> Server:
        self._pool = futures.ThreadPoolExecutor(max_workers=self.workers,
                                                thread_name_prefix="predict")
        self._grpc = grpc.server(
            self._pool,
            interceptors=[_TokenInterceptor(self.token)] if self.token else None,
            maximum_concurrent_rpcs=self.max_concurrent,
            options=[("grpc.max_receive_message_length", self.max_message),
                     ("grpc.max_send_message_length", max(self.max_message, 64 * MiB)),
                     ("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.served), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self.served), self._grpc)
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        if self.tls is not None:
            credentials = grpc.ssl_server_credentials([(self.tls[1], self.tls[0])])
            bound = self._grpc.add_secure_port(address, credentials)
        else:
            bound = self._grpc.add_insecure_port(address)
        if bound == 0:
            raise OSError(f"cannot bind gRPC to {address}")
        self.port = bound
        self._grpc.start()
        if self.rest_port is not None:
            self._rest_pool = futures.ThreadPoolExecutor(max_workers=self.workers,
                                                         thread_name_prefix="rest")
            self._http = make_rest_server(
                (self.host, self.rest_port), self.served, self.rest_limits, self._rest_pool,
                self.token, self._tls_context)
            self.rest_port = self._http.server_address[1]
            threading.Thread(target=self._http.serve_forever, name="rest", daemon=True).start()
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stops taking requests, lets running ones finish for up to ``grace`` seconds."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        for pool in (self._pool, self._rest_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._pool = self._rest_pool = None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="facehallu-serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="TF-Serving base folder")
    parser.add_argument("--name", default="facehallu", help="model name (folder under it)")
    parser.add_argument("--version", type=int, help="version to serve (default: highest)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: a free one)")
    parser.add_argument("--rest-port", type=int, help="REST port (0: a free one; default none)")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-message-mb", type=float, default=4.0,
                        help="largest gRPC message in MiB (REST bodies: 8x)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--max-concurrent", type=int, default=64,
                        help="requests in flight before RESOURCE_EXHAUSTED / HTTP 429")
    parser.add_argument("--max-connections", type=int, default=32,
                        help="REST connections served at once (more get HTTP 503)")
    parser.add_argument("--idle-timeout", type=float, default=10.0,
                        help="seconds a REST read may wait; idle connections close after it")
    parser.add_argument("--request-timeout", type=float, default=60.0,
                        help="seconds to receive a whole REST request")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve gRPC and REST over TLS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--token-file", help="file whose first line is the bearer token every "
                                             f"call must carry (or set {TOKEN_ENV})")
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    try:
        token = read_token(args.token_file)
        for line in exposure_warnings(args.host, args.tls_cert is not None, token is not None):
            print(line, file=sys.stderr, flush=True)
        server = Server(args.model_dir, args.name, args.host, args.port, args.rest_port,
                        args.version, args.max_batch, args.max_message_mb, args.workers,
                        args.max_concurrent, args.max_connections, args.idle_timeout,
                        args.request_timeout, args.tls_cert, args.tls_key, token).start()
    except (FileNotFoundError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    rest = f"{args.host}:{server.rest_port}" if server.rest_port is not None else "-"
    print(f"READY grpc={args.host}:{server.port} rest={rest} model={server.served.name} "
          f"version={server.served.version} tls={'on' if server.tls else 'off'} "
          f"token={'on' if token else 'off'}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

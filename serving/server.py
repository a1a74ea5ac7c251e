"""A stand-in for TensorFlow Serving: the same gRPC (and REST) API over an exported SavedModel.

``tensorflow_model_server`` cannot be installed from PyPI or Debian, so this small Python server
implements what :mod:`serving.client` uses — ``PredictionService.Predict``,
``PredictionService.GetModelMetadata`` and ``ModelService.GetModelStatus`` on gRPC, and the
``/v1/models/NAME[:predict|/metadata]`` REST routes on an optional second port — for development
and tests. Production serving is TF-Serving (see the README) with the same client.

It binds 127.0.0.1 by default, runs requests on a bounded thread pool, answers bad requests with
INVALID_ARGUMENT (missing/unexpected input, wrong dtype or shape, batch above ``--max-batch``),
NOT_FOUND (unknown model or version) or RESOURCE_EXHAUSTED (message above ``--max-message-mb``, too
many requests in flight) and keeps serving; SIGTERM or SIGINT shuts it down cleanly. Once ready it
prints one line ``READY grpc=HOST:PORT rest=HOST:PORT`` (``rest=-`` without REST).

Example:
    python -m serving.server --model-dir models --name facehallu --port 8500 --rest-port 8501
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving.model import RequestError, ServedModel

MiB = 1024 * 1024


def _status(code_name: str):
    import grpc

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
            inputs = {}
            for name, proto in request.inputs.items():
                try:
                    inputs[name] = tf.make_ndarray(proto)
                except Exception as err:  # malformed TensorProto (content size, dtype)
                    raise RequestError("INVALID_ARGUMENT",
                                       f"input {name!r}: cannot decode tensor ({err})") from err
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


_HTTP = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 413, "INTERNAL": 500}
_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                    r"(?P<verb>:predict|/metadata)?$")


def make_rest_handler(served: ServedModel, max_body: int, pool: futures.Executor,
                      max_concurrent: int):
    """A ``BaseHTTPRequestHandler`` class answering TF-Serving's REST routes for ``served``.

    Predictions run on ``pool``; more than ``max_concurrent`` in flight get HTTP 429.
    """
    in_flight = threading.BoundedSemaphore(max_concurrent)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep the server's output to the READY line and errors
            pass

        def _reply(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, verb: str):
            match = _ROUTE.match(self.path)
            if not match or (match["verb"] or "") != verb:
                raise RequestError("NOT_FOUND", f"no route {self.command} {self.path}")
            version = int(match["version"]) if match["version"] else None
            served.check_target(match["name"], version)

        def do_GET(self):  # noqa: N802 - http.server method name
            try:
                if self.path.endswith("/metadata"):
                    self._route("/metadata")
                    self._reply(200, rest_metadata(served))
                else:
                    self._route("")
                    self._reply(200, {"model_version_status": [{
                        "version": str(served.version), "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""}}]})
            except RequestError as err:
                self._reply(_HTTP.get(err.code, 400), {"error": err.message})

        def do_POST(self):  # noqa: N802 - http.server method name
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > max_body:
                    self.close_connection = True
                    raise RequestError("RESOURCE_EXHAUSTED", f"request body: expected at most "
                                                             f"{max_body} bytes, found {length}")
                body = self.rfile.read(length)
                self._route(":predict")
                if not in_flight.acquire(blocking=False):
                    self._reply(429, {"error": f"more than {max_concurrent} requests in flight"})
                    return
                try:
                    answer = pool.submit(rest_predict, served, body).result()
                finally:
                    in_flight.release()
                self._reply(200, answer)
            except RequestError as err:
                self._reply(_HTTP.get(err.code, 400), {"error": err.message})
            except Exception as err:  # the model failed: report, keep serving
                self._reply(500, {"error": f"{type(err).__name__}: {err}"})

    return Handler


def _json_to_array(value, spec, name: str) -> np.ndarray:
    dtype = spec.dtype.as_numpy_dtype
    try:
        array = np.asarray(value)
    except ValueError as err:
        raise RequestError("INVALID_ARGUMENT", f"input {name!r}: ragged list ({err})") from err
    if array.dtype.kind not in "iuf" and array.size:
        raise RequestError("INVALID_ARGUMENT", f"input {name!r}: expected numbers, "
                                               f"found {array.dtype.name}")
    if np.issubdtype(dtype, np.integer) and array.size:
        info = np.iinfo(dtype)
        if array.dtype.kind == "f" or array.min() < info.min or array.max() > info.max:
            raise RequestError("INVALID_ARGUMENT", f"input {name!r}: expected {np.dtype(dtype)} "
                                                   f"values {info.min}..{info.max}")
    return array.astype(dtype)


def rest_predict(served: ServedModel, body: bytes) -> dict:
    """Answers a REST ``:predict`` body (row ``instances`` or columnar ``inputs`` format)."""
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError("INVALID_ARGUMENT", f"request body: not JSON ({err})") from err
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        raise RequestError("INVALID_ARGUMENT",
                           "request body: expected an object with exactly one of "
                           "'instances' or 'inputs'")
    key = served.signature(request.get("signature_name", ""))
    specs = served.input_specs[key]
    if "inputs" in request:
        columns = request["inputs"]
        if not isinstance(columns, dict):
            raise RequestError("INVALID_ARGUMENT", "inputs: expected an object of named inputs")
    else:
        rows = request["instances"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RequestError("INVALID_ARGUMENT", "instances: expected a list of objects "
                                                   "of named inputs")
        columns = {k: [r.get(k) for r in rows] for k in set().union(*rows)} if rows else {}
    arrays = {k: _json_to_array(v, specs[k], k) if k in specs else np.asarray(0)
              for k, v in columns.items()}
    outputs = served.predict(key, arrays)
    if "inputs" in request:
        if len(outputs) == 1:
            return {"outputs": next(iter(outputs.values())).tolist()}
        return {"outputs": {k: v.tolist() for k, v in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values())).tolist()}
    names = list(outputs)
    return {"predictions": [{k: outputs[k][i].tolist() for k in names}
                            for i in range(len(outputs[names[0]]))]}


def rest_metadata(served: ServedModel) -> dict:
    """The REST ``/metadata`` answer: model spec and the signature map as JSON."""
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in served.signature_defs.items():
        sig_map.signature_def[key].CopyFrom(sig)
    return {"model_spec": {"name": served.name, "signature_name": "",
                           "version": str(served.version)},
            "metadata": {"signature_def": json_format.MessageToDict(
                sig_map, preserving_proto_field_name=True)}}  # field names as TF-Serving


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
        max_message_mb: largest gRPC message (and REST body) accepted, in MiB.
        workers: threads running requests.
        max_concurrent: requests in flight before RESOURCE_EXHAUSTED.

    Example:
        >>> server = Server("models", "facehallu", port=0).start()  # doctest: +SKIP
        >>> server.port  # doctest: +SKIP
        40123
        >>> server.stop()  # doctest: +SKIP
    """

    def __init__(self, model_dir, name: str, host: str = "127.0.0.1", port: int = 8500,
                 rest_port: int | None = None, version: int | None = None, max_batch: int = 16,
                 max_message_mb: float = 4.0, workers: int = 8, max_concurrent: int = 64):
        self.served = ServedModel(model_dir, name, version, max_batch)
        self.host, self.port, self.rest_port = host, port, rest_port
        self.max_message = int(max_message_mb * MiB)
        self.workers, self.max_concurrent = workers, max_concurrent
        self._grpc = None
        self._http = None
        self._pool = None
        self._rest_pool = None

    def start(self) -> Server:
        import grpc

        self._pool = futures.ThreadPoolExecutor(max_workers=self.workers,
                                                thread_name_prefix="predict")
        self._grpc = grpc.server(
            self._pool,
            maximum_concurrent_rpcs=self.max_concurrent,
            options=[("grpc.max_receive_message_length", self.max_message),
                     ("grpc.max_send_message_length", max(self.max_message, 64 * MiB)),
                     ("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.served), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self.served), self._grpc)
        bound = self._grpc.add_insecure_port(f"{self.host}:{self.port}")
        if bound == 0:
            raise OSError(f"cannot bind gRPC to {self.host}:{self.port}")
        self.port = bound
        self._grpc.start()
        if self.rest_port is not None:
            self._rest_pool = futures.ThreadPoolExecutor(max_workers=self.workers,
                                                         thread_name_prefix="rest")
            # JSON numbers take several bytes each: allow 8× the gRPC message size
            handler = make_rest_handler(self.served, self.max_message * 8, self._rest_pool,
                                        self.max_concurrent)
            self._http = ThreadingHTTPServer((self.host, self.rest_port), handler)
            self._http.daemon_threads = True
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
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="TF-Serving base folder")
    parser.add_argument("--name", default="facehallu", help="model name (folder under it)")
    parser.add_argument("--version", type=int, help="version to serve (default: highest)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: a free one)")
    parser.add_argument("--rest-port", type=int, help="REST port (0: a free one; default none)")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-message-mb", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--max-concurrent", type=int, default=64)
    args = parser.parse_args(argv)
    try:
        server = Server(args.model_dir, args.name, args.host, args.port, args.rest_port,
                        args.version, args.max_batch, args.max_message_mb, args.workers,
                        args.max_concurrent).start()
    except (FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    rest = f"{args.host}:{server.rest_port}" if server.rest_port is not None else "-"
    print(f"READY grpc={args.host}:{server.port} rest={rest} model={server.served.name} "
          f"version={server.served.version}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

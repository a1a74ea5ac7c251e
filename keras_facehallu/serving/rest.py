"""TF-Serving's REST API (``/v1/models/NAME[/versions/V][:predict|/metadata]``) over a ServedModel.

Every request is bounded before it costs memory or a thread for long:

- at most ``max_connections`` connections are served at once; one more gets HTTP 503 (with
  ``Retry-After``) and is closed, so half-open or idle clients cannot pile up threads;
- each read waits at most ``idle_timeout`` seconds (an idle keep-alive connection is closed after
  that) and a whole request (line, headers, body) must arrive within ``request_timeout``;
- ``Content-Length`` must be one non-negative decimal integer (400 otherwise, 411 when missing or
  chunked) and at most ``max_body`` bytes (413, answered before the body is read);
- before the JSON is parsed, the count of values and lists in the body is held against what
  ``max_batch`` examples can hold, so an oversized batch is refused without building it;
- JSON nested too deep, numbers out of range, ``NaN`` or ``Infinity`` are 400, not 500;
- with a ``token``, every request needs ``Authorization: Bearer TOKEN`` (401 otherwise); with a
  ``tls_context``, connections are TLS, the handshake also bounded by ``idle_timeout``.

Client errors are 4xx, a failing model is 500; the server keeps serving either way.

Example:
    >>> limits = RestLimits(max_body=32 * 2**20)  # doctest: +SKIP
    >>> httpd = make_rest_server(("127.0.0.1", 8501), served, limits, pool)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from keras_facehallu.serving.model import RequestError, ServedModel
from keras_facehallu.serving.security import token_matches

_HTTP = {"INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401, "NOT_FOUND": 404,
         "RESOURCE_EXHAUSTED": 413, "INTERNAL": 500}
_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d{1,18}))?"
                    r"(?P<verb>:predict|/metadata)?$")
_LENGTH = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class RestLimits:
    """Bounds of the REST front end.

    Args:
        max_body: largest request body, bytes.
        max_connections: connections served at once (each has its own thread).
        max_in_flight: predictions running or queued at once before HTTP 429.
        idle_timeout: seconds one read may wait (also the keep-alive idle time).
        request_timeout: seconds to receive one whole request.
    """

    max_body: int
    max_connections: int = 32
    max_in_flight: int = 64
    idle_timeout: float = 10.0
    request_timeout: float = 60.0


class HttpError(Exception):
    """A REST request refused with an HTTP ``status`` (and optional extra headers)."""

    def __init__(self, status: int, message: str, headers: tuple = ()):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class _DeadlineReader(io.RawIOBase):
    """Socket reads that each wait at most ``idle`` seconds and stop at ``deadline``."""

    def __init__(self, sock, idle: float):
        super().__init__()
        self._sock, self._idle = sock, idle
        self.deadline = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        timeout = self._idle
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request not received within the request timeout")
            timeout = min(timeout, left)
        self._sock.settimeout(timeout)
        return self._sock.recv_into(buffer)


def _example_containers(served: ServedModel) -> int:
    """The most JSON lists and objects one example needs (row or columnar format)."""
    most = 0
    for specs in served.input_specs.values():
        total = 1  # the example's object in the "instances" format
        for spec in specs.values():
            dims = spec.shape.as_list()[1:]
            if any(d is None for d in dims):
                return 0
            count, lists = 1, 1  # the example's outermost list
            for d in dims[:-1]:
                count *= int(d)
                lists += count
            total += lists
        most = max(most, total)
    return most


def check_body_size(body, served: ServedModel) -> None:
    """Refuses a body that holds more JSON values than ``max_batch`` examples, before parsing.

    Values in a JSON array or object are separated by commas, so ``commas + lists + objects``
    bounds from above the Python objects the parse would build; a request of at most
    ``max_batch`` examples stays under ``max_batch × (values + 2 × lists) per example``.
    """
    numbers = served.example_size()
    containers = _example_containers(served)
    if not numbers or not containers:
        return
    items = body.count(b",") + body.count(b"[") + body.count(b"{")
    limit = served.max_batch * (numbers + 2 * containers) + 1024
    if items > limit:
        raise RequestError("INVALID_ARGUMENT",
                           f"batch size: expected at most {served.max_batch} examples "
                           f"(at most {limit} JSON values), the body holds about {items}")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number this server accepts")


def _json_to_array(value, spec, name: str) -> np.ndarray:
    dtype = spec.dtype.as_numpy_dtype
    try:
        array = np.asarray(value)
    except (ValueError, RecursionError) as err:
        raise RequestError("INVALID_ARGUMENT", f"input {name!r}: ragged or too deeply nested "
                                               f"list ({err})") from err
    if array.dtype.kind not in "iuf" and array.size:
        raise RequestError("INVALID_ARGUMENT", f"input {name!r}: expected numbers, "
                                               f"found {array.dtype.name}")
    if np.issubdtype(dtype, np.integer) and array.size:
        info = np.iinfo(dtype)
        if array.dtype.kind == "f" or array.min() < info.min or array.max() > info.max:
            raise RequestError("INVALID_ARGUMENT", f"input {name!r}: expected {np.dtype(dtype)} "
                                                   f"values {info.min}..{info.max}")
    if np.issubdtype(dtype, np.floating) and array.size:
        with np.errstate(over="ignore"):
            converted = array.astype(dtype)
        if not np.isfinite(converted).all():
            raise RequestError("INVALID_ARGUMENT", f"input {name!r}: expected finite "
                                                   f"{np.dtype(dtype)} values")
        return converted
    return array.astype(dtype)


def rest_predict(served: ServedModel, body: bytes) -> dict:
    """Answers a REST ``:predict`` body (row ``instances`` or columnar ``inputs`` format)."""
    check_body_size(body, served)
    try:
        request = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError as err:
        raise RequestError("INVALID_ARGUMENT", "request body: JSON nested too deeply") from err
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestError("INVALID_ARGUMENT", f"request body: not JSON ({err})") from err
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        raise RequestError("INVALID_ARGUMENT",
                           "request body: expected an object with exactly one of "
                           "'instances' or 'inputs'")
    signature_name = request.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise RequestError("INVALID_ARGUMENT", "signature_name: expected a string")
    key = served.signature(signature_name)
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
        if len(rows) > served.max_batch:
            raise RequestError("INVALID_ARGUMENT", f"batch size: expected 1..{served.max_batch}, "
                                                   f"found {len(rows)}")
        columns = {k: [r.get(k) for r in rows] for k in set().union(*rows)} if rows else {}
    for k, v in columns.items():  # the batch size, before any array is built
        if k in specs and isinstance(v, list) and len(v) > served.max_batch:
            raise RequestError("INVALID_ARGUMENT", f"batch size: expected 1..{served.max_batch}, "
                                                   f"found {len(v)}")
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


def make_rest_handler(served: ServedModel, limits: RestLimits, pool, token: str | None = None,
                      tls_context=None):
    """A ``BaseHTTPRequestHandler`` class answering TF-Serving's REST routes for ``served``.

    Predictions run on ``pool``; more than ``limits.max_in_flight`` at once get HTTP 429.
    """
    in_flight = threading.BoundedSemaphore(limits.max_in_flight)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "facehallu-serving"
        sys_version = ""

        def setup(self):
            self.request.settimeout(limits.idle_timeout)
            if tls_context is not None:  # the handshake runs here, bounded by the timeout
                self.request = tls_context.wrap_socket(self.request, server_side=True)
            super().setup()
            self.rfile.close()
            self._reader = _DeadlineReader(self.connection, limits.idle_timeout)
            self.rfile = io.BufferedReader(self._reader, 64 * 1024)

        def finish(self):
            try:
                super().finish()
            finally:
                if tls_context is not None:
                    self.connection.close()

        def handle_one_request(self):
            self._reader.deadline = time.monotonic() + limits.request_timeout
            super().handle_one_request()

        def log_message(self, *args):  # keep the server's output to the READY line and errors
            pass

        def _reply(self, code: int, body: dict, headers=()) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _authorize(self) -> None:
            if token is not None and not token_matches(self.headers.get("Authorization"), token):
                raise HttpError(401, "missing or wrong bearer token (Authorization: Bearer ...)",
                                (("WWW-Authenticate", 'Bearer realm="facehallu"'),))

        def _route(self, verb: str) -> None:
            match = _ROUTE.match(self.path)
            if not match or (match["verb"] or "") != verb:
                raise HttpError(404, f"no route {self.command} {self.path[:200]}")
            version = int(match["version"]) if match["version"] else None
            served.check_target(match["name"], version)

        def _content_length(self) -> int:
            if self.headers.get("Transfer-Encoding"):
                raise HttpError(411, "Transfer-Encoding is not supported: send Content-Length")
            values = self.headers.get_all("Content-Length") or []
            if not values:
                raise HttpError(411, "Content-Length: required")
            if len(values) > 1 or not _LENGTH.fullmatch(values[0].strip()):
                raise HttpError(400, f"Content-Length: expected one non-negative integer, "
                                     f"found {', '.join(values)[:40]!r}")
            length = int(values[0])
            if length > limits.max_body:
                raise HttpError(413, f"request body: expected at most {limits.max_body} bytes, "
                                     f"found {length}")
            return length

        def _read_body(self, length: int) -> bytearray:
            body = bytearray(length)
            view, got = memoryview(body), 0
            while got < length:
                count = self.rfile.readinto(view[got:])
                if not count:
                    raise HttpError(400, f"request body: expected {length} bytes, the connection "
                                         f"closed after {got}")
                got += count
            return body

        def _refuse(self, status: int, message: str, headers=()) -> None:
            try:
                self._reply(status, {"error": message}, headers)
            except OSError:
                self.close_connection = True

        def do_GET(self):  # noqa: N802 - http.server method name
            if self.headers.get("Transfer-Encoding") or (self.headers.get("Content-Length")
                                                         or "0").strip() != "0":
                self.close_connection = True  # a body is not read: it cannot start the next one
            try:
                self._authorize()
                if self.path.endswith("/metadata"):
                    self._route("/metadata")
                    self._reply(200, rest_metadata(served))
                else:
                    self._route("")
                    self._reply(200, {"model_version_status": [{
                        "version": str(served.version), "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""}}]})
            except HttpError as err:
                self._refuse(err.status, err.message, err.headers)
            except RequestError as err:
                self._refuse(_HTTP.get(err.code, 400), err.message)

        def do_POST(self):  # noqa: N802 - http.server method name
            body_read = False
            try:
                self._authorize()
                self._route(":predict")
                length = self._content_length()
                try:
                    body = self._read_body(length)
                except TimeoutError as err:
                    raise HttpError(408, f"request body: not received in time ({err})") from err
                body_read = True
                if not in_flight.acquire(blocking=False):
                    raise HttpError(429, f"more than {limits.max_in_flight} requests in flight",
                                    (("Retry-After", "1"),))
                try:
                    answer = pool.submit(rest_predict, served, body).result()
                finally:
                    in_flight.release()
                self._reply(200, answer)
            except (HttpError, RequestError) as err:
                if not body_read:  # the unread body cannot be taken for the next request
                    self.close_connection = True
                if isinstance(err, HttpError):
                    self._refuse(err.status, err.message, err.headers)
                else:
                    self._refuse(_HTTP.get(err.code, 400), err.message)
            except OSError:
                raise
            except Exception as err:  # the model failed: report, keep serving
                self._refuse(500, f"{type(err).__name__}: {err}")

    return Handler


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most ``max_connections`` connections at once.

    A connection above the bound gets ``503 Service Unavailable`` (plain HTTP) or is closed (TLS)
    at once, without a thread. Connection errors of clients are not logged as tracebacks.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address, handler, max_connections: int, tls: bool = False):
        self._slots = threading.BoundedSemaphore(max_connections)
        self._tls = tls
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            if not self._tls:
                body = b'{"error": "too many connections, retry later"}'
                try:
                    request.settimeout(0.5)
                    request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                    b"application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
                                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                except OSError:
                    pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # resets, broken pipes, timeouts, TLS handshakes
            return
        print(f"rest: {client_address[0]}: {type(error).__name__}: {error}", file=sys.stderr,
              flush=True)


def make_rest_server(address, served: ServedModel, limits: RestLimits, pool,
                     token: str | None = None, tls_context=None) -> BoundedHTTPServer:
    """The REST server for ``served`` bound to ``address`` (not yet serving)."""
    handler = make_rest_handler(served, limits, pool, token, tls_context)
    return BoundedHTTPServer(address, handler, limits.max_connections, tls_context is not None)

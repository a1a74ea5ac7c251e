"""Hostile requests against the real stand-in server on loopback, bounded in count and time.

One server subprocess with tight limits (batch 4, 1 MiB messages, 8 REST connections, 1 s idle
timeout, 3 s request timeout) takes malformed and oversized gRPC and REST requests; each must be
answered with a 4xx / INVALID_ARGUMENT without a large allocation (the process's peak memory is
read from /proc), and the server must keep serving and log no tracebacks. Then the TLS and token
options on an in-process server, and the clients' retry rules against small counting servers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import numpy as np
import pytest

from keras_facehallu.export.savedmodel import export_savedmodel
from keras_facehallu.serving.client import PredictionClient, RestClient, ServingError
from keras_facehallu.serving.security import exposure_warnings, is_loopback

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
MAX_BATCH = 4
MAX_BODY = 8 * 1024 * 1024  # --max-message-mb 1: REST bodies up to 8 MiB
IDLE, REQUEST = 1.0, 3.0
MAX_CONNECTIONS = 8
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from keras_facehallu.models.cascade import CascadedHallucinator

    root = tmp_path_factory.mktemp("hostile_models")
    export_savedmodel(CascadedHallucinator(width=1 / 32, seed=0), root, "facehallu")
    return root


def _start(model_dir, log_path, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keras_facehallu.serving.server",
             "--model-dir", str(model_dir), "--port", "0",
             "--rest-port", "0", "--max-batch", str(MAX_BATCH), "--max-message-mb", "1",
             "--workers", "2", "--max-connections", str(MAX_CONNECTIONS),
             "--idle-timeout", str(IDLE), "--request-timeout", str(REQUEST), *extra],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    for _ in range(1200):  # up to 120 s for TensorFlow to import and the model to load
        ready = [line for line in log_path.read_text().splitlines() if line.startswith("READY")]
        if ready:
            fields = dict(f.split("=", 1) for f in ready[0].split()[1:])
            return proc, int(fields["grpc"].rsplit(":", 1)[1]), int(
                fields["rest"].rsplit(":", 1)[1])
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"server did not start:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(model_dir):
    log_path = model_dir / "server.log"
    proc, grpc_port, rest_port = _start(model_dir, log_path)
    yield {"proc": proc, "grpc": grpc_port, "rest": rest_port, "log": log_path}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _proc_status(pid: int) -> dict:
    """VmHWM and VmRSS (KiB) of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields


def _python_threads(pid: int) -> int:
    """Threads of a process that carry the main thread's name: Python's own threads.

    gRPC's event engine and TensorFlow grow and shrink named native thread pools of their own
    under load; the connection threads this module bounds are Python threads.
    """
    tasks = Path(f"/proc/{pid}/task")
    main = (tasks / str(pid) / "comm").read_text()
    count = 0
    for task in tasks.iterdir():
        try:
            count += (task / "comm").read_text() == main
        except OSError:  # the thread ended while being counted
            pass
    return count


def _good_inputs(n=1):
    mask = np.zeros((n, 128, 128, 1), np.uint8)
    mask[:, 30:98, 36:92] = 1
    return {"masked_image": np.full((n, 128, 128, 3), 100, np.uint8) * mask, "mask": mask}


def _assert_serving(server):
    with PredictionClient(HOST, server["grpc"], timeout=60) as client:
        inputs = _good_inputs()
        assert client.hallucinate(inputs["masked_image"], inputs["mask"]).shape == (1, 128, 128, 3)


def _tensor(dtype, shape, **content):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    proto = tensor_pb2.TensorProto(dtype=getattr(types_pb2, dtype) if isinstance(dtype, str)
                                   else dtype)
    proto.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]))
    for field, value in content.items():
        if field == "tensor_content":
            proto.tensor_content = value
        else:
            getattr(proto, field).extend(value)
    return proto


def _predict_raw(port, inputs: dict, signature="serving_default"):
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "facehallu"
    request.model_spec.signature_name = signature
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    with grpc.insecure_channel(f"{HOST}:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request, timeout=30)
    return request.ByteSize(), info.value


def test_grpc_declared_shapes_and_content_length_are_checked_before_decoding(server):
    pid = server["proc"].pid
    _assert_serving(server)
    before = _proc_status(pid)["VmHWM"]
    mask_ok = _tensor("DT_UINT8", [2, 128, 128, 1], tensor_content=bytes(2 * 128 * 128))
    cases = [
        # 16 KB declaring [20000,128,128,3]: 0.9 GB if decoded
        ("huge batch", {"masked_image": _tensor("DT_UINT8", [20000, 128, 128, 3],
                                                tensor_content=bytes(16 * 1024)),
                        "mask": _tensor("DT_UINT8", [20000, 128, 128, 1],
                                        tensor_content=bytes(16))}, "batch size"),
        # the same with 8 KB of values that TensorFlow would pad ("edge") to the declared size
        ("huge batch by fill", {"masked_image": _tensor("DT_UINT8", [20000, 128, 128, 3],
                                                        int_val=[255] * 4000),
                                "mask": _tensor("DT_UINT8", [20000, 128, 128, 1], int_val=[1])},
         "batch size"),
        # under 100 bytes declaring 49 GB of float32, one value to "fill" it
        ("49 GB by fill", {"masked_image": _tensor("DT_FLOAT", [250000, 128, 128, 3],
                                                   float_val=[0.5]),
                           "mask": _tensor("DT_FLOAT", [250000, 128, 128, 1], float_val=[1.0])},
         "batch size"),
        ("short content", {"masked_image": _tensor("DT_UINT8", [2, 128, 128, 3],
                                                   tensor_content=bytes(100)),
                           "mask": mask_ok}, "tensor_content holds 100 bytes"),
        ("fill shorthand", {"masked_image": _tensor("DT_UINT8", [2, 128, 128, 3], int_val=[7]),
                            "mask": mask_ok}, "expected 98304 values"),
        ("wrong field", {"masked_image": _tensor("DT_UINT8", [2, 128, 128, 3],
                                                 float_val=[0.0] * 98304),
                         "mask": mask_ok}, "found 98304 in float_val"),
        ("huge spatial dims", {"masked_image": _tensor("DT_UINT8", [1, 100000, 100000, 3],
                                                       tensor_content=b"x"),
                               "mask": mask_ok}, "expected shape"),
        ("negative dim", {"masked_image": _tensor("DT_UINT8", [-1, 128, 128, 3]),
                          "mask": mask_ok}, "expected shape"),
        ("unknown dtype", {"masked_image": _tensor(999, [1, 128, 128, 3]), "mask": mask_ok},
         "dtype"),
        ("no content", {"masked_image": _tensor("DT_UINT8", [2, 128, 128, 3]), "mask": mask_ok},
         "one field"),
    ]
    for label, inputs, words in cases:
        signature = "serving_float" if label == "49 GB by fill" else "serving_default"
        size, error = _predict_raw(server["grpc"], inputs, signature)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (label, error.details())
        assert words in error.details(), (label, error.details())
        if label == "49 GB by fill":
            assert size < 120, size
    grown_mib = (_proc_status(pid)["VmHWM"] - before) / 1024
    assert grown_mib < 150, f"peak memory grew by {grown_mib:.0f} MiB on refused requests"
    with PredictionClient(HOST, server["grpc"], timeout=60) as client:
        with pytest.raises(ServingError, match="output_filter") as info:
            client.predict(_good_inputs(), output_filter=["nope"])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    _assert_serving(server)


def _http(port, raw: bytes, read_timeout=10.0, send_timeout=10.0) -> tuple[int, bytes]:
    """Sends raw bytes on a fresh connection; returns (status, body) of the answer (0 if none)."""
    with socket.create_connection((HOST, port), timeout=send_timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(read_timeout)
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                if _ and b"content-length:" in head.lower():
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    if len(body) >= length:
                        break
        except (ConnectionResetError, TimeoutError):
            pass
    if not data.startswith(b"HTTP/1."):
        return 0, data
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


def _post(port, headers: str, body: bytes = b"") -> tuple[int, bytes]:
    raw = (f"POST /v1/models/facehallu:predict HTTP/1.1\r\nHost: {HOST}\r\n{headers}"
           f"\r\n").encode() + body
    return _http(port, raw)


def test_rest_content_length_is_checked_before_the_body_is_read(server):
    pid = server["proc"].pid
    before = _proc_status(pid)["VmHWM"]
    body = b'{"inputs": {}}'
    for headers, status, words in [
        ("Content-Length: -1\r\n", 400, b"Content-Length"),
        ("Content-Length: abc\r\n", 400, b"Content-Length"),
        ("Content-Length: 1e3\r\n", 400, b"Content-Length"),
        ("Content-Length: 14\r\nContent-Length: 14\r\n", 400, b"Content-Length"),
        ("", 411, b"Content-Length"),
        ("Transfer-Encoding: chunked\r\n", 411, b"Transfer-Encoding"),
        (f"Content-Length: {200 * MiB}\r\n", 413, b"at most"),
        (f"Content-Length: {10 ** 30}\r\n", 400, b"Content-Length"),
    ]:
        got, answer = _post(server["rest"], headers, body)
        assert got == status, (headers, got, answer[:200])
        assert words in answer, (headers, answer[:200])
    grown_mib = (_proc_status(pid)["VmHWM"] - before) / 1024
    assert grown_mib < 50, f"peak memory grew by {grown_mib:.0f} MiB"


def test_rest_oversized_batch_and_bad_json_are_4xx_before_parsing(server):
    pid = server["proc"].pid
    before = _proc_status(pid)["VmHWM"]
    example = json.dumps(np.zeros((128, 128, 1), np.uint8).tolist()).encode()
    n = 10 * MAX_BATCH  # about 2.8 MB: under the body limit, 10x the batch limit
    big = b'{"inputs": {"mask": [' + b",".join([example] * n) + b"]}}"
    assert len(big) < MAX_BODY
    cases = [
        ("batch x10", big, b"batch size"),
        ("deep nesting", b'{"inputs": ' + b"[" * 200000 + b"]" * 200000 + b"}", b"nested"),
        ("nesting within the recursion limit", b'{"inputs": {"mask": ' + b"[" * 500 + b"1"
         + b"]" * 500 + b"}}", b"mask"),
        ("not JSON", b"\xff\xfe{{{", b"not JSON"),
        ("NaN", b'{"inputs": {"mask": [NaN]}}', b"not JSON"),
        ("huge integer", b'{"inputs": {"mask": [' + b"9" * 5000 + b"]}}", b"not JSON"),
        ("signature not a string", b'{"signature_name": [1], "inputs": {}}', b"signature_name"),
        ("instances above batch", json.dumps({"instances": [{}] * (MAX_BATCH + 1)}).encode(),
         b"batch size"),
    ]
    for label, body, words in cases:
        got, answer = _post(server["rest"], f"Content-Length: {len(body)}\r\n", body)
        assert got == 400, (label, got, answer[:200])
        assert words in answer, (label, answer[:200])
    grown_mib = (_proc_status(pid)["VmHWM"] - before) / 1024
    assert grown_mib < 100, f"peak memory grew by {grown_mib:.0f} MiB"
    _assert_serving(server)


def test_rest_idle_slow_and_surplus_connections_are_bounded(server):
    pid = server["proc"].pid
    threads_before = _python_threads(pid)
    # an idle connection is closed after the idle timeout
    with socket.create_connection((HOST, server["rest"]), timeout=10) as idle:
        start = time.monotonic()
        assert idle.recv(1024) == b""
        assert time.monotonic() - start < IDLE + 5
    # a client trickling its headers (each byte within the idle timeout) is cut at the deadline
    with socket.create_connection((HOST, server["rest"]), timeout=10) as slow:
        start = time.monotonic()
        slow.sendall(b"GET /v1/models/facehallu HTTP/1.1\r\n")
        closed = False
        for _ in range(int(4 * REQUEST / 0.4)):
            try:
                slow.sendall(b"X")
                time.sleep(0.4)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed and time.monotonic() - start < REQUEST + 5
    # connections above the bound get 503 at once, without a thread each; the held ones trickle
    # their headers so that the idle timeout does not free them during the check
    held = [socket.create_connection((HOST, server["rest"]), timeout=10)
            for _ in range(MAX_CONNECTIONS)]
    stop = threading.Event()

    def keep_busy():
        while not stop.wait(0.2):
            for sock in held:
                try:
                    sock.sendall(b"X")
                except OSError:
                    pass

    for sock in held:
        sock.sendall(b"GET /v1/models/facehallu HTTP/1.1\r\nX-Pad: ")
    keeper = threading.Thread(target=keep_busy, daemon=True)
    keeper.start()
    try:
        time.sleep(0.2)
        status, answer = _http(server["rest"], b"GET /v1/models/facehallu HTTP/1.1\r\n\r\n",
                               read_timeout=5)
        assert status == 503, answer[:200]
        assert _python_threads(pid) <= threads_before + MAX_CONNECTIONS + 2
    finally:
        stop.set()
        keeper.join()
        for sock in held:
            sock.close()
    time.sleep(0.5)
    with RestClient(HOST, server["rest"], timeout=30) as rest:
        assert rest.get_model_status() == [(1, "AVAILABLE")]
    # many half-open connections that vanish: no tracebacks, threads back to the baseline
    for _ in range(40):
        sock = socket.create_connection((HOST, server["rest"]), timeout=5)
        sock.sendall(b"POST /v1/models/facehallu:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # reset, not a clean close
    deadline = time.monotonic() + REQUEST + 5
    while _python_threads(pid) > threads_before + 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _python_threads(pid) <= threads_before + 1
    assert "Traceback" not in server["log"].read_text()


def test_rest_client_does_not_resend_a_refused_body(server):
    inputs = _good_inputs(40)  # about 10 MB of JSON: above the 8 MiB body limit
    with RestClient(HOST, server["rest"], timeout=30, max_batch=64, max_retries=4) as rest:
        with pytest.raises(ServingError) as info:
            rest.predict(inputs)
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
    assert "413" in info.value.message


def test_server_log_has_no_tracebacks(server):
    _assert_serving(server)
    log = server["log"].read_text()
    assert "Traceback" not in log and "BrokenPipe" not in log, log[-2000:]


# --- the clients' retry rules, against small counting servers on loopback --------------------


class _CountingModelService:
    """A gRPC ModelService answering every GetModelStatus with ``code``, counting the calls."""

    def __init__(self, code):
        from tensorflow_serving.apis import model_service_pb2_grpc

        self.code, self.calls = code, 0
        outer = self

        class Servicer(model_service_pb2_grpc.ModelServiceServicer):
            def GetModelStatus(self, request, context):  # noqa: N802 - gRPC method name
                outer.calls += 1
                context.abort(outer.code, "counted")

        from concurrent import futures

        self.server = grpc.server(futures.ThreadPoolExecutor(2))
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port(f"{HOST}:0")
        self.server.start()


@pytest.mark.parametrize("code,retries,calls", [
    (grpc.StatusCode.UNAVAILABLE, 3, 4),
    (grpc.StatusCode.UNAVAILABLE, 0, 1),
    (grpc.StatusCode.INVALID_ARGUMENT, 3, 1),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 3, 1),
])
def test_grpc_client_retries_unavailable_only_by_its_service_config(code, retries, calls):
    counting = _CountingModelService(code)
    try:
        with PredictionClient(HOST, counting.port, timeout=20, max_retries=retries,
                              backoff=0.01, max_backoff=0.05) as client:
            with pytest.raises(ServingError) as info:
                client.get_model_status()
        assert info.value.code == code
        assert counting.calls == calls
    finally:
        counting.server.stop(0)


@pytest.mark.parametrize("status,code,calls", [
    (413, "RESOURCE_EXHAUSTED", 1), (400, "INVALID_ARGUMENT", 1), (404, "NOT_FOUND", 1),
    (401, "UNAUTHENTICATED", 1), (503, "UNAVAILABLE", 3), (429, "RESOURCE_EXHAUSTED", 3),
])
def test_rest_client_retries_only_busy_answers(status, code, calls):
    count = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server method name
            count.append(1)
            body = json.dumps({"error": f"status {status}"}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer((HOST, 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with RestClient(HOST, httpd.server_address[1], timeout=10, max_retries=2,
                        backoff=0.01) as rest:
            with pytest.raises(ServingError) as info:
                rest.get_model_status()
        assert info.value.code == getattr(grpc.StatusCode, code)
        assert len(count) == calls
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- TLS, bearer token and the exposure warning -------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost: (cert.pem, key.pem)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is installed: "
                        "cannot make a test certificate")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True, timeout=60)
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def secure_server(model_dir, tmp_path_factory):
    from keras_facehallu.serving.server import Server

    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    server = Server(model_dir, "facehallu", port=0, rest_port=0, max_batch=MAX_BATCH,
                    workers=2, tls_cert=cert, tls_key=key, token=TOKEN, idle_timeout=2).start()
    yield {"server": server, "cert": cert}
    server.stop(0)


def test_tls_and_token_on_grpc(secure_server):
    server, cert = secure_server["server"], secure_server["cert"]
    inputs = _good_inputs()
    with PredictionClient(HOST, server.port, timeout=30, ca_file=cert, token=TOKEN) as client:
        assert client.get_model_status() == [(1, "AVAILABLE")]
        assert client.hallucinate(inputs["masked_image"], inputs["mask"]).shape == (
            1, 128, 128, 3)
    with PredictionClient(HOST, server.port, timeout=10, ca_file=cert, max_retries=0) as anon:
        with pytest.raises(ServingError) as info:
            anon.get_model_status()
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    with PredictionClient(HOST, server.port, timeout=10, ca_file=cert, token="x" * 20,
                          max_retries=0) as wrong:
        with pytest.raises(ServingError) as info:
            wrong.get_model_status()
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    with PredictionClient(HOST, server.port, timeout=5, token=TOKEN, max_retries=0) as plain:
        with pytest.raises(ServingError) as info:  # clear text to a TLS port
            plain.get_model_status()
    assert info.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_tls_and_token_on_rest(secure_server):
    server, cert = secure_server["server"], secure_server["cert"]
    inputs = _good_inputs()
    with RestClient(HOST, server.rest_port, timeout=30, ca_file=cert, token=TOKEN) as rest:
        assert rest.get_model_status() == [(1, "AVAILABLE")]
        assert rest.hallucinate(inputs["masked_image"], inputs["mask"]).shape == (1, 128, 128, 3)
    for token in (None, "y" * 20):
        with RestClient(HOST, server.rest_port, timeout=10, ca_file=cert, token=token) as anon:
            with pytest.raises(ServingError) as info:
                anon.get_model_status()
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED, token
    other = Path(cert).parent / "other"
    other.mkdir(exist_ok=True)
    other_ca, _ = _self_signed(other)
    with RestClient(HOST, server.rest_port, timeout=10, ca_file=other_ca, token=TOKEN) as wary:
        with pytest.raises(ServingError) as info:  # a certificate the client does not trust
            wary.get_model_status()
    assert "TLS" in info.value.message and not info.value.retryable
    start = time.monotonic()  # clear-text HTTP to the TLS port: refused, not hanging
    status, _ = _http(server.rest_port, b"GET /v1/models/facehallu HTTP/1.1\r\n\r\n",
                      read_timeout=10)
    assert status in (0, 400) and time.monotonic() - start < 10


def test_exposure_warnings():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    assert exposure_warnings("127.0.0.1", tls=False, token=False) == []
    lines = exposure_warnings("0.0.0.0", tls=False, token=False)
    assert len(lines) == 2 and "TLS" in lines[0] and "token" in lines[1]
    assert exposure_warnings("192.168.1.5", tls=True, token=True) == []
    assert len(exposure_warnings("::", tls=True, token=False)) == 1


def test_server_cli_warns_before_binding_beyond_loopback(tmp_path, capsys):
    from keras_facehallu.serving.server import main

    # the model folder is missing, so the server stops before binding anything
    assert main(["--model-dir", str(tmp_path / "none"), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "without TLS" in err and "without a token" in err and "no version folders" in err
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    assert main(["--model-dir", str(tmp_path), "--token-file", str(token_file)]) == 2
    assert "at least 16" in capsys.readouterr().err
    assert main(["--model-dir", str(tmp_path), "--tls-cert", str(tmp_path / "c.pem"),
                 "--tls-key", str(tmp_path / "k.pem")]) == 2
    assert "TLS certificate" in capsys.readouterr().err

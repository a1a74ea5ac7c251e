"""End to end on loopback: export → stand-in server subprocess → gRPC and REST clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from keras_facehallu.export.savedmodel import (
    export_savedmodel,
    numpy_float_to_uint8,
    numpy_uint8_to_float,
)
from keras_facehallu.serving.client import PredictionClient, RestClient, ServingError, main

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
MAX_BATCH = 8


@pytest.fixture(scope="module")
def model():
    from keras_facehallu.models.cascade import CascadedHallucinator

    return CascadedHallucinator(width=1 / 32, seed=0)


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """One server subprocess for the module, on free ports; stopped with SIGTERM at the end."""
    model_dir = tmp_path_factory.mktemp("models")
    export_savedmodel(model, model_dir, "facehallu")
    log_path = model_dir / "server.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keras_facehallu.serving.server",
             "--model-dir", str(model_dir), "--name",
             "facehallu", "--port", "0", "--rest-port", "0", "--max-batch", str(MAX_BATCH),
             "--max-message-mb", "2", "--workers", "4"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    ports = None
    for _ in range(1200):  # up to 120 s for TensorFlow to import and the model to load
        ready = [line for line in log_path.read_text().splitlines() if line.startswith("READY")]
        if ready:
            fields = dict(f.split("=", 1) for f in ready[0].split()[1:])
            ports = int(fields["grpc"].rsplit(":", 1)[1]), int(fields["rest"].rsplit(":", 1)[1])
            break
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if ports is None:
        proc.kill()
        pytest.fail(f"server did not start:\n{log_path.read_text()[-3000:]}")
    yield {"proc": proc, "grpc": ports[0], "rest": ports[1], "log": log_path}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(3)
    mask = np.zeros((5, 128, 128, 1), np.uint8)
    mask[:, 30:98, 36:92] = 1
    return rng.integers(0, 256, (5, 128, 128, 3), dtype=np.uint8) * mask, mask


@pytest.fixture(scope="module")
def expected(model, batch):
    x, m = numpy_uint8_to_float(*batch)
    out = model.predict({"masked_image": x, "mask": m}, verbose=0)["image_128"]
    return out, numpy_float_to_uint8(out)


@pytest.fixture(scope="module")
def client(server):
    with PredictionClient(HOST, server["grpc"], timeout=60, max_batch=MAX_BATCH) as c:
        yield c


def test_grpc_predict_equals_local_inference(client, batch, expected):
    image, mask = batch
    got = client.hallucinate(image, mask)
    assert got.dtype == np.uint8 and got.shape == (5, 128, 128, 3)
    assert np.abs(got.astype(int) - expected[1]).max() <= 1
    x, m = numpy_uint8_to_float(image, mask)
    out = client.predict({"masked_image": x, "mask": m}, signature="serving_float")["image"]
    assert out.dtype == np.float32 and np.abs(out - expected[0]).max() <= 1e-5


def test_large_batches_are_chunked(server, batch, expected):
    image, mask = batch
    with PredictionClient(HOST, server["grpc"], timeout=60, max_batch=2) as small:
        got = small.hallucinate(image, mask)  # 5 images → 3 requests
    assert np.abs(got.astype(int) - expected[1]).max() <= 1


def test_metadata_and_status(client):
    meta = client.get_model_metadata()
    assert set(meta) == {"serving_default", "serving_float"}
    assert meta["serving_default"]["inputs"] == {"masked_image": ("uint8", (-1, 128, 128, 3)),
                                                 "mask": ("uint8", (-1, 128, 128, 1))}
    assert meta["serving_default"]["outputs"] == {"image": ("uint8", (-1, 128, 128, 3))}
    assert meta["serving_float"]["outputs"] == {"image": ("float32", (-1, 128, 128, 3))}
    assert client.get_model_status() == [(1, "AVAILABLE")]


def _bad_requests(batch):
    image, mask = batch
    big = np.zeros((MAX_BATCH + 1, 128, 128, 3), np.uint8)
    return [
        ("missing input", {"masked_image": image[:1]}, "INVALID_ARGUMENT", "missing"),
        ("extra input", {"masked_image": image[:1], "mask": mask[:1], "x": mask[:1]},
         "INVALID_ARGUMENT", "unexpected"),
        ("wrong dtype", {"masked_image": image[:1].astype(np.float32), "mask": mask[:1]},
         "INVALID_ARGUMENT", "dtype"),
        ("wrong shape", {"masked_image": image[:1, :64], "mask": mask[:1]},
         "INVALID_ARGUMENT", "shape"),
        ("batch above limit", {"masked_image": big, "mask": big[..., :1]},
         "INVALID_ARGUMENT", "batch size"),
        ("oversized message", {"masked_image": np.zeros((MAX_BATCH, 128, 128, 3), np.float32),
                               "mask": np.zeros((MAX_BATCH, 128, 128, 1), np.float32)},
         "RESOURCE_EXHAUSTED", ""),
    ]


def test_bad_requests_get_errors_and_the_server_keeps_serving(server, client, batch, expected):
    image, mask = batch
    unchunked = PredictionClient(HOST, server["grpc"], timeout=60, max_batch=64, max_retries=0)
    with unchunked:
        for label, inputs, code, words in _bad_requests(batch):
            signature = "serving_float" if label == "oversized message" else None
            with pytest.raises(ServingError) as info:
                unchunked.predict(inputs, signature=signature)
            assert info.value.code == getattr(grpc.StatusCode, code), label
            assert words in info.value.message, label
            got = client.hallucinate(image[:1], mask[:1])  # the next good request succeeds
            assert np.abs(got.astype(int) - expected[1][:1]).max() <= 1, label
    for kwargs, code in (({"model_name": "other"}, "NOT_FOUND"),
                         ({"version": 7}, "NOT_FOUND"),
                         ({"signature": "nope"}, "INVALID_ARGUMENT")):
        with PredictionClient(HOST, server["grpc"], **kwargs) as wrong:
            with pytest.raises(ServingError) as info:
                wrong.hallucinate(image[:1], mask[:1]) if "signature" not in kwargs else \
                    wrong.predict({"masked_image": image[:1], "mask": mask[:1]})
            assert info.value.code == getattr(grpc.StatusCode, code)


def test_concurrent_clients(server, batch, expected):
    image, mask = batch
    errors, done = [], []

    def worker(index):
        with PredictionClient(HOST, server["grpc"], timeout=120) as own:
            for request in range(50):
                i = (index + request) % len(image)
                try:
                    got = own.hallucinate(image[i:i + 1], mask[i:i + 1])
                    if np.abs(got.astype(int) - expected[1][i:i + 1]).max() > 1:
                        errors.append(f"client {index} request {request}: wrong result")
                    done.append(1)
                except ServingError as err:
                    errors.append(f"client {index} request {request}: {err}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors[:5]
    assert len(done) == 8 * 50


def test_rest_predict_metadata_status_and_errors(server, batch, expected):
    image, mask = batch
    with RestClient(HOST, server["rest"], timeout=60, max_batch=MAX_BATCH) as rest:
        assert rest.get_model_status() == [(1, "AVAILABLE")]
        meta = rest.get_model_metadata()
        assert meta["serving_default"]["inputs"]["mask"] == ("uint8", (-1, 128, 128, 1))
        got = rest.hallucinate(image[:2], mask[:2])
        assert got.dtype == np.uint8 and np.abs(got.astype(int) - expected[1][:2]).max() <= 1
        with pytest.raises(ServingError) as info:
            rest.predict({"masked_image": image[:1].astype(np.float32), "mask": mask[:1]})
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert rest.hallucinate(image[:1], mask[:1]).shape == (1, 128, 128, 3)
    # the row ("instances") format, as TF-Serving's REST API accepts it
    body = json.dumps({"instances": [{"masked_image": image[0].tolist(),
                                      "mask": mask[0].tolist()}]}).encode()
    url = f"http://{HOST}:{server['rest']}/v1/models/facehallu:predict"
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=60) as reply:
        rows = np.asarray(json.loads(reply.read())["predictions"])
    assert rows.shape == (1, 128, 128, 3) and np.abs(rows - expected[1][:1]).max() <= 1
    with RestClient(HOST, server["rest"], version=1) as versioned:
        assert versioned.get_model_status() == [(1, "AVAILABLE")]
    with RestClient(HOST, server["rest"], model_name="other", max_retries=0) as wrong:
        with pytest.raises(ServingError) as info:
            wrong.get_model_status()
        assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_retry_on_unavailable_is_bounded_and_deadlines_apply(server, batch):
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind((HOST, 0))
        dead_port = sock.getsockname()[1]
    start = time.monotonic()
    with PredictionClient(HOST, dead_port, timeout=2, max_retries=2, backoff=0.05) as dead:
        with pytest.raises(ServingError) as info:
            dead.get_model_status()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start < 20
    with RestClient(HOST, dead_port, timeout=2, max_retries=2, backoff=0.05) as dead:
        with pytest.raises(ServingError) as info:
            dead.get_model_status()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    image, mask = batch
    with PredictionClient(HOST, server["grpc"], timeout=1e-4) as hurried:
        with pytest.raises(ServingError) as info:
            hurried.hallucinate(image, mask)
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_cli_with_aligned_pairs(server, batch, expected, tmp_path):
    from PIL import Image

    image, mask = batch
    Image.fromarray(image[0]).save(tmp_path / "face.png")
    Image.fromarray(mask[0, ..., 0] * 255).save(tmp_path / "face_mask.png")
    out = tmp_path / "out"
    for extra in (["--port", str(server["grpc"])], ["--rest", "--port", str(server["rest"])]):
        assert main([str(tmp_path / "face.png"), "--masks", str(tmp_path / "face_mask.png"),
                     *extra, "--out", str(out)]) == 0
        result = np.asarray(Image.open(out / "face_hallucinated.png"))
        assert np.abs(result.astype(int) - expected[1][0]).max() <= 1
    assert main([str(tmp_path / "face.png"), "--masks", str(tmp_path / "face_mask.png"),
                 str(tmp_path / "face_mask.png"), "--port", str(server["grpc"])]) == 1


def test_cli_with_a_real_photo(server, model, lfw_photos, tmp_path):
    from PIL import Image

    from keras_facehallu.face.pipeline import prepare_face

    photo = lfw_photos[0]
    assert main([str(photo), "--port", str(server["grpc"]), "--out", str(tmp_path)]) == 0
    result = np.asarray(Image.open(tmp_path / f"{photo.stem}_hallucinated.png"))
    face = prepare_face(photo)
    x, m = numpy_uint8_to_float(face.masked_image[None], face.mask[None])
    local = model.predict({"masked_image": x, "mask": m}, verbose=0)["image_128"]
    assert np.abs(result.astype(int) - numpy_float_to_uint8(local)[0]).max() <= 1


def test_cli_goes_on_past_photos_that_fail(server, lfw_photos, tmp_path, capsys):
    """A photo with no face or an unreadable file is reported; the other photos are served."""
    import skimage.data
    from PIL import Image

    no_face = tmp_path / "coffee.png"  # a real photo with no face in it
    Image.fromarray(skimage.data.coffee()).save(no_face)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    photo = lfw_photos[0]
    out = tmp_path / "out"
    for extra in (["--port", str(server["grpc"])], ["--rest", "--port", str(server["rest"])]):
        code = main([str(no_face), str(photo), str(broken), *extra, "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 1
        assert f"FAILED {no_face}" in err and "no face" in err
        assert f"FAILED {broken}" in err and "not an image" in err
        assert "1 of 3 photos done, 2 failed" in err
        assert [p.name for p in out.iterdir()] == [f"{photo.stem}_hallucinated.png"]
        written = Image.open(out / f"{photo.stem}_hallucinated.png")
        assert written.text["facehallu:synthetic"] == "true"  # marked like facehallu's
        assert "trainedAlgorithmicMedia" in written.text["XML:com.adobe.xmp"]
    assert main([str(no_face), "--port", str(server["grpc"]), "--out", str(out)]) == 1


def test_sigterm_shuts_down_cleanly(server):
    proc = server["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert "stopped" in server["log"].read_text()


def test_tf_serving_config_files_are_built_from_the_protos(tmp_path):
    from keras_facehallu.export.savedmodel import write_batching_parameters, write_models_config
    from keras_facehallu.serving import config

    (tmp_path / "facehallu" / "1").mkdir(parents=True)
    (tmp_path / "empty").mkdir()  # no version: not listed
    models = write_models_config(tmp_path, "/models/")
    batching = write_batching_parameters(tmp_path, max_batch_size=8)
    assert config.check_model_dir(tmp_path) == ["facehallu"]
    assert config.main([str(tmp_path)]) == 0
    parsed = config.parse_models_config(models)
    entry = parsed.model_config_list.config[0]
    assert (entry.name, entry.base_path, entry.model_platform) == (
        "facehallu", "/models/facehallu", "tensorflow")
    assert "max_batch_size { value: 8 }" in batching.read_text()
    assert config.parse_batching_parameters(batching).max_batch_size.value == 8
    # names and values are checked when building, not pasted into the text
    for entries in ([('a"b', "/models/x")], [("ok", "relative/path")], [("", "/m")]):
        with pytest.raises(ValueError):
            config.models_config(entries)
    with pytest.raises(ValueError, match="max_batch_size"):
        config.batching_parameters(max_batch_size=0)
    # a broken or inconsistent file is refused with its name
    for name, text, words in [
            ("models.config", "model_config_list { config { name: 'x' }",
             "not a ModelServerConfig"),
            ("models.config", "model_config_list { config { name: 'gone' base_path: '/m/gone' "
                              "model_platform: 'tensorflow' } }", "no version folder"),
            ("batching_parameters.txt", "max_batch_size { value: 0 }", "max_batch_size"),
            ("batching_parameters.txt", "max_batch_size { value: 8 } allowed_batch_sizes: 4 "
                                        "allowed_batch_sizes: 2", "allowed_batch_sizes"),
            ("batching_parameters.txt", "max_batch_size: 8", "not BatchingParameters")]:
        good = (tmp_path / name).read_text()
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=words) as info:
            config.check_model_dir(tmp_path)
        assert name in str(info.value)
        assert config.main([str(tmp_path)]) == 1
        (tmp_path / name).write_text(good)

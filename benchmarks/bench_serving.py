"""Serving latency and throughput: gRPC to the stand-in server next to in-process inference.

Exports a ``CascadedHallucinator`` (small width, random weights: speed does not depend on training)
to a temporary TF-Serving folder, starts ``facehallu-serve`` on a free loopback port and
measures p50/p99 latency per request and images/s at batch 1 and 16 with 1, 4 and 16 concurrent
clients (threads, one gRPC channel each). The baseline, in the same run and at the same batch and
concurrency, calls the same SavedModel's ``serving_default`` signature in this process (no RPC, no
serialization). Ratio = gRPC images/s ÷ in-process images/s. Prints a Markdown table.

Run from the repository root:
    python benchmarks/bench_serving.py [--width 0.0625] [--requests 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
from keras_facehallu.export.savedmodel import export_savedmodel  # noqa: E402
from keras_facehallu.serving.client import PredictionClient  # noqa: E402

try:  # run as a script or as a module
    from _machine import cpu_model
except ImportError:
    from benchmarks._machine import cpu_model


def _inputs(batch: int):
    rng = np.random.default_rng(0)
    mask = np.zeros((batch, 128, 128, 1), np.uint8)
    mask[:, 30:98, 36:92] = 1
    return rng.integers(0, 256, (batch, 128, 128, 3), dtype=np.uint8) * mask, mask


def _run_clients(make_call, clients: int, requests: int):
    """Runs ``requests`` calls in each of ``clients`` threads; returns (latencies s, wall s)."""
    latencies, lock = [], threading.Lock()

    def worker():
        call = make_call()
        call()  # warm-up, not timed
        own = []
        barrier.wait()
        for _ in range(requests):
            start = time.perf_counter()
            call()
            own.append(time.perf_counter() - start)
        with lock:
            latencies.extend(own)

    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return np.asarray(latencies), time.perf_counter() - start


def _start_server(model_dir: Path):
    log_path = model_dir / "server.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keras_facehallu.serving.server",
             "--model-dir", str(model_dir), "--name",
             "facehallu", "--port", "0", "--max-batch", "16", "--workers", "16"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    for _ in range(1800):
        ready = [ln for ln in log_path.read_text().splitlines() if ln.startswith("READY")]
        if ready:
            return proc, int(ready[0].split()[1].rsplit(":", 1)[1])
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start:\n{log_path.read_text()[-2000:]}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=1 / 16, help="width multiplier")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per client")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args(argv)

    import tensorflow as tf

    from keras_facehallu.models.cascade import CascadedHallucinator

    model = CascadedHallucinator(width=args.width, seed=0)
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmp:
        path = export_savedmodel(model, tmp, "facehallu")
        local = tf.saved_model.load(str(path)).signatures["serving_default"]
        proc, port = _start_server(Path(tmp))
        rows = []
        try:
            for batch in args.batches:
                image, mask = _inputs(batch)
                tensors = {"masked_image": tf.constant(image), "mask": tf.constant(mask)}
                for clients in args.clients:
                    def grpc_call(image=image, mask=mask):
                        client = PredictionClient("127.0.0.1", port, timeout=300)
                        return lambda: client.hallucinate(image, mask)

                    def local_call(tensors=tensors):
                        return lambda: local(**tensors)["image"].numpy()

                    results = []
                    for make_call in (grpc_call, local_call):
                        lat, wall = _run_clients(make_call, clients, args.requests)
                        results.append((1000 * np.percentile(lat, 50),
                                        1000 * np.percentile(lat, 99),
                                        batch * len(lat) / wall))
                    (g50, g99, gips), (l50, l99, lips) = results
                    rows.append(f"| {batch} | {clients} | {g50:.1f} | {g99:.1f} | {gips:.0f} | "
                                f"{l50:.1f} | {l99:.1f} | {lips:.0f} | {gips / lips:.2f} |")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    print(f"Serving benchmark: CascadedHallucinator(width={args.width:g}) "
          f"({model.count_params():,} parameters), random weights, uint8 `serving_default`; "
          f"{args.requests} timed requests per client after one warm-up each; "
          f"{cpu_model()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}.\n")
    print("| batch | clients | gRPC p50 ms | gRPC p99 ms | gRPC img/s | in-process p50 ms | "
          "in-process p99 ms | in-process img/s | ratio (gRPC ÷ in-process img/s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

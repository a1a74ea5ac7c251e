"""Inference benchmark of the full cascade: forward FLOPs, images/s, peak memory, CPU FLOP rate.

- FLOPs are counted **analytically** from the layer shapes (2 × multiply-accumulates of every
  Conv2D and Dense, biases included; activations, pixel shuffle, pooling and the composites are
  left out, they are < 0.1 % here).
- images/s: ``model.predict_on_batch`` (the backend's compiled predict function) after one
  warm-up call; the median over the repeats.
- Memory: each (width, batch) runs in its own subprocess; "RSS after build" is the resident
  memory once the model is built and warmed up, "peak RSS" the process's high-water mark
  (``resource.getrusage``), so it includes building the weights.
- CPU reference: the best time of a 2048×2048×2048 float32 ``keras.ops.matmul`` in the same run;
  the last column is the model's achieved FLOP/s as a fraction of it.

Run from the repo root: ``python benchmarks/bench_model.py`` (about 3–5 min on 2 cores);
``KERAS_BACKEND=jax`` for the JAX backend; ``--quick`` for a 1-minute smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

try:  # run as a script or as a module
    from _machine import cpu_model
except ImportError:
    from benchmarks._machine import cpu_model

REPO = Path(__file__).resolve().parents[1]


def count_flops(model) -> int:
    """Forward FLOPs for one image: :func:`keras_facehallu.training.throughput.forward_flops`."""
    from keras_facehallu.training.throughput import forward_flops

    return forward_flops(model)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(width: float, batch: int, repeats: int) -> dict:
    import keras
    import numpy as np

    from keras_facehallu.models.cascade import CascadedHallucinator

    model = CascadedHallucinator(width=width, seed=0)
    rng = np.random.default_rng(0)
    mask = np.zeros((batch, 128, 128, 1), "float32")
    mask[:, 36:100, 40:88] = 1.0
    image = rng.uniform(-1, 1, (batch, 128, 128, 3)).astype("float32")
    inputs = {"masked_image": np.where(mask > 0, image, -1.0).astype("float32"), "mask": mask}
    start = time.perf_counter()
    model.predict_on_batch(inputs)  # warm-up: traces / compiles
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(inputs)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "width": width, "batch": batch, "repeats": repeats, "backend": keras.backend.backend(),
        "params": model.count_params(), "flops": count_flops(model),
        "first_call_s": first, "median_s": median, "images_per_s": batch / median,
        "rss_mib": rss_mib(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    import keras
    import numpy as np

    a = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal((n, n), "float32"))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small widths, few repeats")
    parser.add_argument("--worker", nargs=3, metavar=("WIDTH", "BATCH", "REPEATS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        w, b, r = args.worker
        print(json.dumps(worker(float(w), int(b), int(r))))
        return

    configs = [(1.0, 1, 5), (1.0, 16, 2), (0.25, 1, 10), (0.25, 16, 3),
               (1 / 16, 1, 20), (1 / 16, 16, 5)]
    if args.quick:
        configs = [(1 / 16, 1, 5), (1 / 16, 16, 2)]
    rows = []
    for width, batch, repeats in configs:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", str(width), str(batch), str(repeats)],
            capture_output=True, text=True, cwd=REPO, check=False,
        )
        if proc.returncode:
            sys.exit(f"worker width={width} batch={batch} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    peak = matmul_rate()
    load = os.getloadavg()

    print(f"Machine: {os.cpu_count()}-core CPU VM, no GPU, {cpu_model()}; "
          f"backend {rows[0]['backend']}; {date.today().isoformat()}; "
          f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)")
    print(f"CPU reference: 2048³ float32 matmul, best of 5: {peak / 1e9:.1f} GFLOP/s\n")
    print("| width | batch | params | GFLOPs / image | images/s | ms / batch | first call s "
          "| RSS after build MiB | peak RSS MiB | % of matmul FLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        achieved = r["flops"] * r["images_per_s"]
        print(f"| {r['width']:g} | {r['batch']} | {r['params']:,} | {r['flops'] / 1e9:.3f} "
              f"| {r['images_per_s']:.2f} | {r['median_s'] * 1e3:.1f} | {r['first_call_s']:.1f} "
              f"| {r['rss_mib']:.0f} | {r['peak_rss_mib']:.0f} | {100 * achieved / peak:.1f} |")


if __name__ == "__main__":
    main()

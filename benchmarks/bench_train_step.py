"""Training-step benchmark of the full cascade GAN: FLOPs, steps/s, images/s, CPU FLOP rate.

- One step = ``HallucinationGAN.train_step``: a D step then a G step, with L_pixel + L_adv at all
  five scales (``LossConfig(no_pc=True, no_id=True)``: the perceptual and face networks are
  measured in ``bench_networks.py``; with them add their forward ×2 and backward per scale).
- FLOPs per image are an **analytic estimate** from the forward FLOPs of the generator ``F_G``
  and of the five discriminators ``F_D`` (``bench_model.count_flops``: 2 × MACs of every Conv2D
  and Dense), with a backward pass counted as 2 × its forward:
  D step = G forward + D forward on real and fake + D backward = ``F_G + 6·F_D``;
  G step = G forward + backward + D forward on fake + D backward to its input only
  = ``3·F_G + 2·F_D``; one step ≈ ``4·F_G + 8·F_D`` (G runs forward twice: once per step).
- Timing: ``train_on_batch`` (the backend's compiled train function) after one warm-up step; the
  median over the repeats. Each (width, batch) runs in its own subprocess.
- CPU reference: the best time of a 2048³ float32 ``keras.ops.matmul`` in the same run; the last
  column is the step's achieved FLOP/s as a fraction of it.

Run from the repo root: ``python benchmarks/bench_train_step.py`` (``--quick`` for small widths
only); ``KERAS_BACKEND=jax`` for the JAX backend.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import count_flops, cpu_model, matmul_rate  # noqa: E402


def worker(width: float, batch: int, repeats: int) -> dict:
    import keras
    import numpy as np

    from keras_facehallu.losses import LossConfig
    from keras_facehallu.models.cascade import CascadedHallucinator
    from keras_facehallu.training.gan import HallucinationGAN

    keras.utils.set_random_seed(0)
    gan = HallucinationGAN(CascadedHallucinator(width=width, seed=0), seed=0)
    gan.compile(loss_config=LossConfig(no_pc=True, no_id=True))
    rng = np.random.default_rng(0)
    mask = np.zeros((batch, 128, 128, 1), "float32")
    mask[:, 36:100, 40:88] = 1.0
    image = rng.uniform(-1, 1, (batch, 128, 128, 3)).astype("float32")
    x = {"masked_image": np.where(mask > 0, image, -1.0).astype("float32"), "mask": mask}
    start = time.perf_counter()
    gan.train_on_batch(x, image)  # warm-up: traces / compiles
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        gan.train_on_batch(x, image)
        times.append(time.perf_counter() - start)
    f_g = count_flops(gan.generator)
    f_d = sum(count_flops(d) for d in gan.discriminators)
    median = statistics.median(times)
    return {
        "width": width, "batch": batch, "repeats": repeats, "backend": keras.backend.backend(),
        "g_params": gan.generator.count_params(),
        "d_params": sum(d.count_params() for d in gan.discriminators),
        "f_g": f_g, "f_d": f_d, "step_flops": 4 * f_g + 8 * f_d,
        "first_call_s": first, "median_s": median,
    }


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

    configs = [(1 / 16, 1, 10), (1 / 16, 16, 3), (0.25, 1, 5), (0.25, 16, 2),
               (1.0, 1, 3), (1.0, 16, 1)]
    if args.quick:
        configs = [(1 / 16, 1, 5), (1 / 16, 16, 2)]
    rows, failed = [], []
    for width, batch, repeats in configs:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", str(width), str(batch), str(repeats)],
            capture_output=True, text=True, cwd=REPO, check=False,
        )
        if proc.returncode:
            failed.append((width, batch, proc.stderr.strip().splitlines()[-1:]))
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    peak = matmul_rate()
    load = os.getloadavg()
    backend = rows[0]["backend"] if rows else os.environ.get("KERAS_BACKEND", "tensorflow")
    print(f"Machine: {os.cpu_count()}-core CPU VM, no GPU, {cpu_model()}; backend {backend}; "
          f"{date.today().isoformat()}; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f} (1/5/15 min)")
    print(f"CPU reference: 2048³ float32 matmul, best of 5: {peak / 1e9:.1f} GFLOP/s\n")
    print("| width | batch | G params | D params (5) | GFLOPs / image / step | steps/s | "
          "images/s | s / step | first step s | % of matmul FLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        images_per_s = r["batch"] / r["median_s"]
        achieved = r["step_flops"] * images_per_s
        print(f"| {r['width']:g} | {r['batch']} | {r['g_params']:,} | {r['d_params']:,} "
              f"| {r['step_flops'] / 1e9:.3f} | {1 / r['median_s']:.3f} | {images_per_s:.2f} "
              f"| {r['median_s']:.3f} | {r['first_call_s']:.1f} | {100 * achieved / peak:.1f} |")
    for width, batch, why in failed:
        print(f"\nwidth {width:g}, batch {batch}: failed ({' '.join(why)})")


if __name__ == "__main__":
    main()

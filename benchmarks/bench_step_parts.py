"""Where a training step of ``cpu_small`` goes, part by part, and what each speed lever buys.

The setup is the one that trained the packaged model (``facehallu-train --config cpu_small``):
width 0.125, batch 16, L_pixel + L_adv at five scales, L_pc (Inception's ``conv_2``, ``pool1``,
``mixed_2`` at 128×128) and L_id (dlib ResNet port) on the 128×128 output, Adam for G and for D.

Two tables, each measured in its own subprocess per row, in one run:

- **Parts** (TensorFlow, each part a ``tf.function``, median of the repeats after a warm-up):
  G forward; G forward + backward of L_pixel; per discriminator the D-step work (forward on real
  and fake, backward to its weights) and the G-step work (forward on fake, backward to the fake);
  L_pc and L_id (forward on target and prediction, backward to the prediction); the two Adam
  updates.
- **Whole step** (``train_on_batch`` of ``HallucinationGAN``, median after a warm-up) for each
  lever: the step as trained so far (TensorFlow, two generator forwards per step), XLA
  (``TrainConfig.jit_compile``), one generator forward shared by the D and G steps
  (``share_forward``, the same maths), L_pc and L_id on part of the batch
  (``LossConfig.network_batch``, an unbiased but noisier estimate), and the JAX backend. Ratios
  are images/s against the first row of the same run.

Run from the repo root: ``python benchmarks/bench_step_parts.py`` (``--repeats N``, ``--quick``,
``--no-parts``). Within a backend the variants are built side by side in one process and timed in
interleaved rounds; the JAX rows come from a second process, run right after the TensorFlow one.
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

from bench_model import cpu_model  # noqa: E402

CONFIG = "cpu_small"
BATCH = 16

# (label, backend, TrainConfig overrides); "network_batch" goes into the loss config.
STEP_VARIANTS = [
    ("TensorFlow, two G forwards (the step as trained so far)", "tensorflow",
     {"share_forward": False}),
    ("TensorFlow + XLA, two G forwards", "tensorflow",
     {"share_forward": False, "jit_compile": True}),
    ("TensorFlow, shared G forward", "tensorflow", {}),
    ("TensorFlow + XLA, shared G forward", "tensorflow", {"jit_compile": True}),
    ("TensorFlow, shared, L_pc/L_id on 8 of 16", "tensorflow", {"network_batch": 8}),
    ("TensorFlow, shared, L_pc/L_id on 4 of 16", "tensorflow", {"network_batch": 4}),
    ("TensorFlow + XLA, shared, L_pc/L_id on 4 of 16", "tensorflow",
     {"network_batch": 4, "jit_compile": True}),
    ("JAX, shared G forward", "jax", {}),
    ("JAX, shared, L_pc/L_id on 4 of 16", "jax", {"network_batch": 4}),
]


def _batch(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    mask = np.zeros((BATCH, 128, 128, 1), "float32")
    mask[:, 36:100, 40:88] = 1.0
    image = rng.uniform(-1, 1, (BATCH, 128, 128, 3)).astype("float32")
    x = {"masked_image": np.where(mask > 0, image, -1.0).astype("float32"), "mask": mask}
    return x, image


def _gan(overrides: dict | None = None):
    from keras_facehallu.training.configs import CONFIGS, get_config
    from keras_facehallu.training.train import build_gan

    overrides = dict(overrides or {})
    if "network_batch" in overrides:
        overrides["loss"] = {**CONFIGS[CONFIG]["loss"],
                             "network_batch": overrides.pop("network_batch")}
    return build_gan(get_config(CONFIG, **overrides))


def _interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds of each function, timed in rounds (one call of each per round) after a
    warm-up call of each, so that a change in the machine's load hits every entry alike."""
    for fn in fns.values():
        fn()  # warm-up: traces / compiles
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def step_worker(backend: str, repeats: int) -> dict:
    """Every step variant of ``backend``, built side by side in this process, timed interleaved."""
    import keras

    x, y = _batch()
    steps = {}
    for label, variant_backend, overrides in STEP_VARIANTS:
        if variant_backend != backend:
            continue
        keras.utils.set_random_seed(0)
        gan = _gan(overrides)
        steps[label] = lambda gan=gan: gan.train_on_batch(x, y)
    return _interleaved_medians(steps, repeats)


def parts_worker(repeats: int) -> dict:
    import tensorflow as tf
    from keras import ops

    from keras_facehallu.losses.identity import identity_loss
    from keras_facehallu.losses.perceptual import perceptual_loss
    from keras_facehallu.losses.pixel import pixel_loss
    from keras_facehallu.models.pyramid import image_pyramid, masked_pyramid

    gan = _gan({"share_forward": False})
    G, scales = gan.generator, gan.scales
    x, y = _batch()
    x = {k: tf.constant(v) for k, v in x.items()}
    y = tf.constant(y)
    targets = image_pyramid(y, scales)
    conditions = masked_pyramid(x["masked_image"], x["mask"], scales)
    fakes = [tf.constant(ops.convert_to_numpy(o)) for o in
             (G(x, training=False)[f"image_{s}"] for s in scales)]
    g_vars = G.trainable_variables

    @tf.function
    def g_forward():
        return G(x, training=True)

    @tf.function
    def g_forward_backward():
        with tf.GradientTape() as tape:
            out = G(x, training=True)
            loss = sum(pixel_loss(t, out[f"image_{s}"], "l1")
                       for s, t in zip(scales, targets, strict=True))
        return tape.gradient(loss, g_vars)

    parts = {"G forward": g_forward, "G forward + backward (L_pixel)": g_forward_backward}
    for i, s in enumerate(scales):
        d = gan.discriminators[i]

        def d_step(d=d, i=i):
            with tf.GradientTape() as tape:
                real = d([targets[i], conditions[i]], training=True)
                fake = d([fakes[i], conditions[i]], training=True)
                loss = tf.reduce_mean(real) - tf.reduce_mean(fake)
            return tape.gradient(loss, d.trainable_variables)

        def d_in_g_step(d=d, i=i):
            with tf.GradientTape() as tape:
                tape.watch(fakes[i])
                loss = tf.reduce_mean(d([fakes[i], conditions[i]], training=False))
            return tape.gradient(loss, fakes[i])

        parts[f"D_{s}: D step (real + fake, to weights)"] = tf.function(d_step)
        parts[f"D_{s}: in the G step (fake, to its input)"] = tf.function(d_in_g_step)

    pred = tf.constant(fakes[-1])

    def network_part(loss_fn, net):
        @tf.function
        def run():
            with tf.GradientTape() as tape:
                tape.watch(pred)
                loss = loss_fn(net, targets[-1], pred)
            return tape.gradient(loss, pred)

        return run

    parts["L_pc network (Inception to mixed_2, 128×128)"] = network_part(
        perceptual_loss, gan.perceptual_net)
    parts["L_id network (dlib ResNet, 128×128)"] = network_part(identity_loss, gan.identity_net)
    g_grads = [tf.zeros_like(v) for v in g_vars]
    d_vars = gan.discriminator_variables()
    d_grads = [tf.zeros_like(v) for v in d_vars]
    parts["Adam update of G"] = tf.function(lambda: gan.g_optimizer.apply(g_grads, g_vars))
    parts["Adam update of the five D"] = tf.function(lambda: gan.d_optimizer.apply(d_grads, d_vars))
    return _interleaved_medians(parts, repeats)


def _subprocess(args: list[str], backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_ENABLE_ONEDNN_OPTS": "0",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          cwd=REPO, env=env, check=False)
    if proc.returncode:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": " ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats, whole steps only")
    parser.add_argument("--no-parts", action="store_true", help="whole steps only")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--parts-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(step_worker(args.worker[0], int(args.worker[1]))))
        return
    if args.parts_worker:
        print(json.dumps(parts_worker(args.parts_worker)))
        return
    repeats = 2 if args.quick else args.repeats
    print(f"Machine: {os.cpu_count()}-core CPU VM, no GPU, {cpu_model()}; {date.today()}; "
          f"config {CONFIG}, batch {BATCH}, median of {repeats} interleaved rounds after a warm-up")
    if not (args.quick or args.no_parts):
        parts = _subprocess(["--parts-worker", str(repeats)], "tensorflow")
        print("\n| part (TensorFlow, tf.function) | ms | share of the sum |\n|---|---|---|")
        if "error" in parts:
            print(f"| failed: {parts['error']} | | |")
        else:
            total = sum(parts.values())
            for name, seconds in parts.items():
                print(f"| {name} | {1000 * seconds:.0f} | {100 * seconds / total:.1f} % |")
            print(f"| **sum of the parts** | **{1000 * total:.0f}** | 100 % |")
    print("\n| step | s / step | images / s | × first row |\n|---|---|---|---|")
    base = None
    for backend in ("tensorflow", "jax"):
        r = _subprocess(["--worker", backend, str(repeats)], backend)
        if "error" in r:
            print(f"| {backend} | failed: {r['error']} | | |")
            continue
        for label, seconds in r.items():
            base = base or seconds
            print(f"| {label} | {seconds:.2f} | {BATCH / seconds:.1f} | {base / seconds:.2f} |",
                  flush=True)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()

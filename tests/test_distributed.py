"""Data-parallel training: TF MirroredStrategy on 2 logical CPUs and JAX DataParallel on 2 host
devices give the same updated weights as one device with the same global batch.

Each check runs in a subprocess, because the devices must be configured before the backend starts.
Plain SGD is used so that a wrong loss scaling (gradients summed instead of averaged over the
replicas) would double the update and be caught; Adam's first step is nearly scale-invariant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

COMMON = """
import json, sys
import numpy as np
import keras
import tensorflow as tf
from keras_facehallu.models.cascade import CascadedHallucinator
from keras_facehallu.training.gan import HallucinationGAN
from keras_facehallu.losses import LossConfig
from tests.standins import standin_identity_net, standin_perceptual_net

def data(n=4):
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (n, 128, 128, 3)).astype("float32")
    mask = np.zeros((n, 128, 128, 1), "float32")
    mask[:, 36:92, 40:88] = 1.0
    x = {"masked_image": image * mask - (1 - mask), "mask": mask}
    return tf.data.Dataset.from_tensor_slices((x, image)).batch(n)  # one global batch of 4

def one_step():
    keras.utils.set_random_seed(0)
    gan = HallucinationGAN(CascadedHallucinator(width=1 / 32, seed=0), seed=0)
    gan.compile(g_optimizer=keras.optimizers.SGD(0.01), d_optimizer=keras.optimizers.SGD(0.01),
                loss_config=LossConfig(),
                perceptual_net=standin_perceptual_net(seed=0),  # test stand-ins
                identity_net=standin_identity_net(seed=0))
    initial = [np.array(w) for w in gan.get_weights()]
    logs = gan.fit(data(), epochs=1, verbose=0).history
    return initial, [np.array(w) for w in gan.get_weights()], logs

def report(single, multi, devices):
    init, one, logs1 = single
    _, two, logs2 = multi
    step = max(float(np.abs(a - b).max()) for a, b in zip(one, init))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
    print(json.dumps({"devices": devices, "step": step, "diff": diff,
                      "g_loss": [logs1["g_loss"][0], logs2["g_loss"][0]]}))
"""

TF_SCRIPT = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
{common}
single = one_step()
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    multi = one_step()
report(single, multi, strategy.num_replicas_in_sync)
"""

JAX_SCRIPT = """
import jax
{common}
single = one_step()
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
multi = one_step()
report(single, multi, len(jax.devices()))
"""


def run_script(tmp_path, source, backend, extra_env=None):
    path = tmp_path / f"distributed_{backend}.py"
    path.write_text(textwrap.dedent(source.format(common=COMMON)))
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", **(extra_env or {})}
    # the script imports tests.standins: the repository root must be on its path
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, str(path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check(result):
    assert result["devices"] == 2
    assert result["step"] > 1e-3, result  # the step moved the weights noticeably
    # ... and 2 replicas moved them the same way (a 2x loss-scaling error would give diff ~ step)
    assert result["diff"] < 1e-3 * result["step"] + 1e-6, result
    assert result["g_loss"][0] == pytest.approx(result["g_loss"][1], rel=1e-4)


def test_mirrored_strategy_step_equals_single_device_step(tmp_path):
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("MirroredStrategy is TensorFlow-only")
    check(run_script(tmp_path, TF_SCRIPT, "tensorflow"))


@pytest.mark.multibackend
def test_jax_data_parallel_step_equals_single_device_step(tmp_path):
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("run in the JAX pass of the suite (KERAS_BACKEND=jax)")
    flags = "--xla_force_host_platform_device_count=2"
    check(run_script(tmp_path, JAX_SCRIPT, "jax", {"XLA_FLAGS": flags}))

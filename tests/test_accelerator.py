"""Pieces of the accelerator run: weight parts and back to a preset, the time budget, FLOP/s and
MFU. The whole script (training/accelerator/run.sh) is tested in test_no_tensorflow.py."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from keras_facehallu.models.cascade import CascadedHallucinator
from keras_facehallu.presets import load_preset
from keras_facehallu.training.throughput import ThroughputLog, peak_flops, step_flops_per_image
from keras_facehallu.training.time_budget import TimeBudget
from keras_facehallu.training.weight_parts import (
    WeightPartsError,
    parts_to_preset,
    read_weight_parts,
    write_weight_parts,
)


@pytest.fixture(scope="module")
def generator():
    return CascadedHallucinator(width=1 / 32, seed=3)


def _same_weights(a, b):
    return all(np.array_equal(np.asarray(x.value), np.asarray(y.value))
               for x, y in zip(a.weights, b.weights, strict=True))


def test_weight_parts_split_and_round_trip_into_a_preset(generator, tmp_path):
    index = write_weight_parts(generator, tmp_path / "out", metadata={"run": "x"},
                               max_part_bytes=100_000)
    assert index["dtype"] == "float32" and len(index["parts"]) > 1
    assert all((tmp_path / "out" / p["file"]).stat().st_size <= 100_000 for p in index["parts"])
    preset = parts_to_preset(tmp_path / "out", tmp_path / "preset")
    model = load_preset(preset)
    assert _same_weights(model, generator)
    assert model.preset_metadata["run"] == "x"


def test_float16_when_float32_is_over_the_limit_and_an_error_when_both_are(generator, tmp_path):
    count = generator.count_params()
    index = write_weight_parts(generator, tmp_path / "half", max_total_bytes=3 * count)
    assert index["dtype"] == "float16"
    _, arrays = read_weight_parts(tmp_path / "half")
    for v, a in zip(generator.weights, arrays, strict=True):
        np.testing.assert_allclose(a, np.asarray(v.value), rtol=1e-3, atol=1e-4)
    with pytest.raises(WeightPartsError, match="even in float16"):
        write_weight_parts(generator, tmp_path / "none", max_total_bytes=count)


def test_damaged_or_missing_parts_are_named(generator, tmp_path):
    index = write_weight_parts(generator, tmp_path, max_part_bytes=100_000)
    part = tmp_path / index["parts"][1]["file"]
    data = bytearray(part.read_bytes())
    data[10] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(WeightPartsError, match=f"{part}: .*damaged"):
        read_weight_parts(tmp_path)
    part.unlink()
    with pytest.raises(WeightPartsError, match=f"{part}: missing"):
        read_weight_parts(tmp_path)
    spec = json.loads((tmp_path / "generator.json").read_text())
    spec["format"] = "other"
    (tmp_path / "generator.json").write_text(json.dumps(spec))
    with pytest.raises(WeightPartsError, match="format 'other'"):
        read_weight_parts(tmp_path)
    with pytest.raises(FileNotFoundError, match="no weight index"):
        read_weight_parts(tmp_path / "nowhere")


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_budget_stops_before_an_epoch_that_would_overrun():
    clock = _Clock()
    budget = TimeBudget(100, clock=clock)
    model = keras.Sequential([keras.layers.Dense(1)])
    budget.set_model(model)
    model.stop_training = False
    budget.on_train_begin()
    for epoch in range(3):  # epochs of 30 s: after 3 (90 s) a fourth would end at 120 s
        budget.on_epoch_begin(epoch)
        clock.now += 30
        budget.on_train_batch_end(0)
        budget.on_epoch_end(epoch)
        if model.stop_training:
            break
    assert budget.stopped_after == 3
    compiled = TimeBudget(100, clock=clock)  # a first step of 50 s (compilation), then 2 s
    compiled.set_model(model)
    model.stop_training = False
    clock.now = 0.0
    compiled.on_train_begin()
    compiled.on_epoch_begin(0)
    for step, step_end in enumerate((50, 52, 54)):
        clock.now = step_end
        compiled.on_train_batch_end(step)
    clock.now = 55  # validation
    compiled.on_epoch_end(0)
    assert not model.stop_training  # the next epoch is predicted at 7.5 s, not 55 s
    late = TimeBudget(10, clock=clock)  # an epoch already past the budget: after step 2
    late.set_model(model)
    model.stop_training = False
    late.on_train_begin()
    late.on_epoch_begin(0)
    clock.now += 20
    late.on_train_batch_end(0)
    assert not model.stop_training
    late.on_train_batch_end(1)
    assert model.stop_training
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0)


def test_throughput_log_prints_flops_and_mfu_where_the_peak_is_known(generator):
    assert peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756e12
    assert peak_flops("NVIDIA H200", "float32") == 494e12
    assert peak_flops("cpu", "float32") is None
    lines = []
    log = ThroughputLog(1e9, 4, device="NVIDIA H200", dtype="bfloat16",
                        print_fn=lambda line, flush: lines.append(line))
    log.on_epoch_begin(0)
    for b in range(3):
        log.on_train_batch_end(b)
    log._first, log._end = 0.0, 0.008  # 2 timed steps of 4 images in 8 ms: 1000 images/s
    log.on_epoch_end(0)
    assert "1000.0 images/s" in lines[0] and "1 TFLOP/s" in lines[0]
    assert "MFU 0.1% of NVIDIA H200 bfloat16 peak" in lines[0]
    unknown = ThroughputLog(1e9, 4, device="cpu", dtype="float32",
                            print_fn=lambda line, flush: lines.append(line))
    unknown.on_epoch_begin(0)
    unknown.on_train_batch_end(0)
    unknown.on_train_batch_end(1)
    unknown.on_epoch_end(0)
    assert "MFU not computed" in lines[1]


def test_step_flops_follow_the_benchmark_formula():
    from keras_facehallu.training.gan import HallucinationGAN
    from keras_facehallu.training.throughput import forward_flops

    gan = HallucinationGAN(CascadedHallucinator(width=1 / 32, seed=0), seed=0)
    f_g = forward_flops(gan.generator)
    f_d = sum(forward_flops(d) for d in gan.discriminators)
    assert f_g > 0 and f_d > 0
    assert step_flops_per_image(gan) == 4 * f_g + 8 * f_d

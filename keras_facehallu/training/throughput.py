"""Training throughput: FLOPs of a GAN step, achieved FLOP/s and model FLOPs utilisation (MFU).

FLOPs are an analytic count (as in ``benchmarks/bench_train_step.py``): 2 × MACs (+ bias adds) of
every Conv2D and Dense layer of the generator ``F_G`` and of the discriminators ``F_D``, a
backward pass counted as 2 × its forward. One training step (a D step, then a G step) is about
``4·F_G + 8·F_D`` per image. The perceptual and identity networks of L_pc and L_id are not
counted, so with them the true rate is higher than the printed one.

MFU is achieved FLOP/s over the accelerator's dense peak for the step's compute dtype, from
:data:`PEAK_FLOPS` (matched against the device name); an unknown device prints FLOP/s only.

Example:
    >>> log = ThroughputLog(step_flops_per_image(gan), batch_size=16)  # doctest: +SKIP
    >>> gan.fit(data, callbacks=[log])  # doctest: +SKIP
    epoch 1: 212.4 images/s, 29.3 TFLOP/s, MFU 3.0% of NVIDIA H100 80GB HBM3 bfloat16 peak
"""

from __future__ import annotations

import time

import keras

# Dense (no sparsity) peak FLOP/s from NVIDIA's data sheets, SXM parts; float32 matmuls on these
# GPUs run on TF32 tensor cores under XLA's default precision, so TF32's peak is used for them.
# Keys are matched, longest first, as substrings of the device name.
PEAK_FLOPS = {
    "H100 PCIe": {"bfloat16": 756e12, "float16": 756e12, "float32": 378e12},
    "H100": {"bfloat16": 989e12, "float16": 989e12, "float32": 494e12},
    "H200": {"bfloat16": 989e12, "float16": 989e12, "float32": 494e12},
}


def forward_flops(model) -> int:
    """Forward FLOPs for one image: 2 × MACs (+ bias adds) of every Conv2D and Dense layer."""
    from keras_facehallu.models.layers import ResidualBlock

    def conv_flops(kernel_size, cin, cout, out_shape):
        h, w = out_shape[1], out_shape[2]
        return (2 * kernel_size[0] * kernel_size[1] * cin + 1) * cout * h * w

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_flops(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            cin = layer.kernel.shape[2]
            total += conv_flops(layer.kernel_size, cin, layer.filters, layer.output.shape)
        elif isinstance(layer, keras.layers.Dense):
            total += (2 * layer.kernel.shape[0] + 1) * layer.units
        elif isinstance(layer, ResidualBlock):
            for conv in (layer.conv1, layer.conv2):
                total += conv_flops(conv.kernel_size, layer.filters, layer.filters,
                                    layer.output.shape)
    return total


def step_flops_per_image(gan) -> int:
    """FLOPs of one GAN training step per image: ``4·F_G + 8·F_D`` (module docstring)."""
    f_g = forward_flops(gan.generator)
    f_d = sum(forward_flops(d) for d in gan.discriminators)
    return 4 * f_g + 8 * f_d


def device_name() -> str:
    """The first accelerator's name under the JAX backend ("cpu" elsewhere or without one)."""
    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        return device.device_kind if device.platform != "cpu" else "cpu"
    return "cpu"


def peak_flops(device: str, dtype: str) -> float | None:
    """The dense peak FLOP/s of ``device`` for ``dtype`` from :data:`PEAK_FLOPS`, or None."""
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):
        if key in device:
            return PEAK_FLOPS[key].get(dtype)
    return None


def compute_dtype() -> str:
    """The compute dtype of the global dtype policy (``bfloat16`` under ``mixed_bfloat16``)."""
    return keras.config.dtype_policy().compute_dtype


class ThroughputLog(keras.callbacks.Callback):
    """Prints images/s, achieved FLOP/s and (where the peak is known) MFU after each epoch.

    Timing runs from the end of an epoch's first training step (which includes compilation) to
    the end of its last; validation is not counted.

    Args:
        flops_per_image: FLOPs of one training step per image (:func:`step_flops_per_image`).
        batch_size: images per step.
        device: device name for the peak lookup (default: :func:`device_name`).
        dtype: compute dtype (default: :func:`compute_dtype`).
        print_fn: where the line goes.
    """

    def __init__(self, flops_per_image: int, batch_size: int, device: str | None = None,
                 dtype: str | None = None, print_fn=print):
        super().__init__()
        self.flops_per_image = int(flops_per_image)
        self.batch_size = int(batch_size)
        self.device = device or device_name()
        self.dtype = dtype or compute_dtype()
        self.peak = peak_flops(self.device, self.dtype)
        self.print_fn = print_fn
        self.last: dict | None = None
        self._first = None
        self._end = None
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._first, self._end, self._steps = None, None, 0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._first is None:
            self._first = now
        else:
            self._end, self._steps = now, self._steps + 1

    def on_epoch_end(self, epoch, logs=None):
        if not self._steps:
            return
        seconds = self._end - self._first
        images = self._steps * self.batch_size / seconds
        achieved = images * self.flops_per_image
        self.last = {"images_per_s": images, "flops_per_s": achieved,
                     "mfu": achieved / self.peak if self.peak else None}
        line = (f"epoch {epoch + 1}: {images:.1f} images/s, {achieved / 1e12:.3g} TFLOP/s "
                f"({self.flops_per_image / 1e9:.3g} GFLOPs / image / step, {self.dtype})")
        if self.peak:
            line += f", MFU {100 * achieved / self.peak:.1f}% of {self.device} {self.dtype} peak"
        else:
            line += f"; no peak known for {self.device} {self.dtype}: MFU not computed"
        self.print_fn(line, flush=True)

"""Train a hallucination GAN: ``facehallu-train --config NAME --data PREPARED_DIR``.

Each run gets a numbered folder ``RUNS/NNNNN-NAME/`` holding ``config.json`` (the resolved config,
data folder, backend, version), ``log.csv`` (every loss per epoch, validation included),
``checkpoints/`` (one atomic checkpoint per epoch), ``snapshots/epoch-NNNN/`` (preset folders of
the generator at the chosen epochs; its moving average when ``ema_decay`` is set),
``samples/`` (validation image grids), ``tensorboard/`` (when
TensorFlow is installed), ``final/`` (the last generator as a preset) and ``status.json``.

``--data`` is a prepared TFRecord folder or a packed one (``python -m
keras_facehallu.data.packed export``), read with numpy and no TensorFlow. ``--data-format``
picks: ``auto`` reads a packed folder as packed and TFRecords through ``tf.data``, or, where
TensorFlow is missing, from their packed export in ``RUNS/.packed/`` when one exists;
``packed`` exports TFRecords there once (with TensorFlow) and reads the export. Each epoch prints
images/s, achieved FLOP/s and, on a known accelerator, MFU.

``--resume RUN_DIR`` continues a killed run from its last finished epoch. A NaN or inf loss stops
the run with exit code 3 and a message naming the loss; the last good checkpoint stays the latest.
A failed write (a full disk) or a run whose checkpoints are all damaged stops with exit code 4 and
a clear message; ``status.json`` then says "failed" with the reason (never "running").

Example:
    facehallu-train --config cpu_small --data work_data/lfw_prepared
    facehallu-train --resume runs/00000-cpu_small
    KERAS_BACKEND=jax facehallu-train --config cascaded --data DIR --set batch_size=32
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from keras_facehallu.training.configs import CONFIGS, TrainConfig, get_config, parse_override

# TensorFlow 2.21's oneDNN graph rewrites crash (SIGSEGV) in the compiled test step once the
# perceptual and identity networks are in the graph; plain Eigen kernels are stable. Set before
# TensorFlow is imported; export TF_ENABLE_ONEDNN_OPTS=1 to override.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

EXIT_NON_FINITE = 3
EXIT_FAILED = 4  # a write failed (e.g. a full disk) or every checkpoint is damaged
DATA_FORMATS = ("auto", "tfrecord", "packed")
DTYPE_POLICIES = ("float32", "mixed_bfloat16")


def next_run_dir(runs: Path, name: str) -> Path:
    """``runs/NNNNN-name`` with NNNNN one above the highest existing number."""
    runs.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name.split("-", 1)[0]) for p in runs.iterdir() if p.name[:5].isdigit()]
    return runs / f"{max(numbers, default=-1) + 1:05d}-{name}"


def _write_json(path: Path, obj) -> None:
    from keras_facehallu.atomic import write_json

    write_json(path, obj, indent=2)


def _write_status(run_dir: Path, status: dict) -> None:
    """Writes ``status.json`` atomically; when that fails (a full disk) the old file is rewritten
    in place (a small file's block is allocated already), so it never keeps saying "running"."""
    path = run_dir / "status.json"
    try:
        _write_json(path, status)
        return
    except OSError as error:
        first = error
    try:
        with open(path, "r+") as f:
            f.write(json.dumps(status, sort_keys=True) + "\n")
            f.truncate()
    except OSError as error:
        print(f"could not write {path}: {first}; {error}", file=sys.stderr, flush=True)


def _failure_reason(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    if isinstance(error, SystemExit):
        return f"exited: {error.code}"
    return f"{type(error).__name__}: {error}"


def _on_sigterm(signum, frame):
    raise SystemExit("terminated by SIGTERM")


def _tensorflow_available() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def _packed_cache(data: Path, runs: Path) -> Path:
    """Where ``--data-format packed`` keeps the packed export of a TFRecord folder."""
    import hashlib

    manifest = data / "manifest.json"
    digest = hashlib.sha256(manifest.read_bytes() if manifest.is_file() else str(data).encode())
    return runs / ".packed" / f"{data.name}-{digest.hexdigest()[:12]}"


def resolve_data(data: Path, data_format: str, runs: Path) -> tuple[Path, str]:
    """``(folder, "packed" | "tfrecord")`` that a run reads for ``--data`` and ``--data-format``.

    Raises:
        ValueError: TFRecords that cannot be read (no TensorFlow) and have no packed export;
            the message names the export command.
    """
    from keras_facehallu.data.packed import export_prepared, is_packed

    if data_format not in DATA_FORMATS:
        raise ValueError(f"--data-format: expected one of {DATA_FORMATS}, found {data_format!r}")
    if is_packed(data):
        if data_format == "tfrecord":
            raise ValueError(f"--data {data}: a packed folder, not TFRecords (--data-format)")
        return data, "packed"
    if data_format == "tfrecord":
        return data, "tfrecord"
    cache = _packed_cache(data, runs)
    if is_packed(cache):
        if data_format == "packed" or not _tensorflow_available():
            print(f"reading the packed export {cache} of {data}", flush=True)
            return cache, "packed"
    if _tensorflow_available():
        if data_format == "auto":
            return data, "tfrecord"
        print(f"exporting {data} to the packed folder {cache} (once)", flush=True)
        export_prepared(data, cache, splits=("train", "validation"))
        return cache, "packed"
    raise ValueError(
        f"--data {data}: TFRecords need TensorFlow, which is not installed here. Export them "
        "once where it is: python -m keras_facehallu.data.packed export "
        f"{data} PACKED_DIR, and pass --data PACKED_DIR"
    )


def build_gan(cfg: TrainConfig):
    """The generator, its discriminators and the compiled :class:`HallucinationGAN` of ``cfg``."""
    import keras

    from keras_facehallu.losses.config import LossConfig
    from keras_facehallu.training.gan import HallucinationGAN

    if cfg.model == "cascade":
        from keras_facehallu.models.cascade import CascadedHallucinator

        generator = CascadedHallucinator(width=cfg.width, seed=cfg.seed)
    elif cfg.model == "progan":
        from keras_facehallu.models.progan import ProGANHallucinator

        generator = ProGANHallucinator(width=cfg.width, seed=cfg.seed)
    else:
        raise ValueError(
            f"config {cfg.name!r}: model must be 'cascade' or 'progan', found {cfg.model!r}"
        )
    if cfg.dtype_policy not in DTYPE_POLICIES:
        raise ValueError(
            f"config {cfg.name!r}: dtype_policy must be one of {DTYPE_POLICIES}, found "
            f"{cfg.dtype_policy!r}"
        )
    if cfg.icnr:
        from keras_facehallu.models.icnr import apply_icnr

        apply_icnr(generator, seed=cfg.seed)
    gan = HallucinationGAN(
        generator, discriminator_width=cfg.discriminator_width, spectral_norm=cfg.spectral_norm,
        ema_decay=cfg.ema_decay, r1_gamma=cfg.r1_gamma, r1_interval=cfg.r1_interval,
        share_forward=cfg.share_forward,
    )
    loss = LossConfig.ablation(cfg.loss_ablation, **cfg.loss)
    perceptual_net = None
    if loss.active("pc") and loss.perceptual_network == "inception":
        from keras_facehallu.nets.backbones import build_perceptual_network

        perceptual_net = build_perceptual_network(
            "inception", loss.perceptual_layers, resize=cfg.perceptual_resize
        )
    gan.compile(
        g_optimizer=keras.optimizers.Adam(cfg.lr_g, beta_1=cfg.beta_1, name="g_adam"),
        d_optimizer=keras.optimizers.Adam(cfg.lr_d, beta_1=cfg.beta_1, name="d_adam"),
        loss_config=loss,
        perceptual_net=perceptual_net,
        **({"jit_compile": True} if cfg.jit_compile and keras.backend.backend() == "tensorflow"
           else {}),
    )
    return gan


def init_generator_from(generator, preset: str | os.PathLike) -> dict:
    """Copies the weights of ``preset``'s generator into ``generator`` (a fine-tuning start).

    Args:
        generator: the run's generator, built (same class and width as the preset's).
        preset: a registered preset name or a preset folder.

    Returns:
        The preset's metadata.

    Example:
        >>> init_generator_from(gan.generator, "lfw_cascade_small")  # doctest: +SKIP
    """
    from keras_facehallu.models import load_preset

    source = load_preset(preset)
    if type(source) is not type(generator):
        raise ValueError(
            f"init_from {str(preset)!r}: the preset holds a {type(source).__name__}, the run "
            f"trains a {type(generator).__name__}"
        )
    ours, theirs = list(generator.weights), list(source.weights)
    if len(ours) != len(theirs):
        raise ValueError(
            f"init_from {str(preset)!r}: {len(theirs)} weights in the preset, {len(ours)} in the "
            "run's generator; set the run's width to the preset's"
        )
    for v, w in zip(ours, theirs, strict=True):
        if tuple(v.shape) != tuple(w.shape):
            raise ValueError(
                f"init_from {str(preset)!r}: {w.path} has shape {tuple(w.shape)}, the run's "
                f"{v.path} has {tuple(v.shape)}; set the run's width to the preset's"
            )
    for v, w in zip(ours, theirs, strict=True):
        v.assign(w.value)
    return source.preset_metadata


def _sample_batch(val_ds, count: int):
    import numpy as np

    if count < 1:  # sample_count=0: no sample grids
        return None, None
    inputs, targets = {"masked_image": [], "mask": []}, []
    for x, y in val_ds:
        inputs["masked_image"].append(np.asarray(x["masked_image"]))
        inputs["mask"].append(np.asarray(x["mask"]))
        targets.append(np.asarray(y))
        if sum(len(t) for t in targets) >= count:
            break
    if not targets:
        return None, None
    inputs = {k: np.concatenate(v)[:count] for k, v in inputs.items()}
    return inputs, np.concatenate(targets)[:count]


def _truncate_log(path: Path, epochs_done: int) -> None:
    """Keeps the rows of finished epochs only (a killed run may have logged one more)."""
    import csv

    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epochs_done]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, path)


def _count_batches(dataset) -> int:
    count = int(dataset.cardinality())
    return count if count >= 0 else sum(1 for _ in dataset)


def run(cfg: TrainConfig, data: Path, run_dir: Path, resume: bool = False, verbose="auto",
        data_format: str | None = None) -> int:
    """Trains ``cfg`` on the prepared folder ``data`` into ``run_dir``; returns an exit code.

    ``data_format`` is ``"packed"`` or ``"tfrecord"`` (None: packed when ``data`` is a packed
    folder; :func:`resolve_data` picks it for the command line).

    ``status.json`` says "running" only while the process runs: an exception ends it with
    "failed" and the reason. A write error (full disk) or a run whose checkpoints are all damaged
    is a clear message on stderr and exit code 4; other exceptions are raised again.
    """
    import keras

    from keras_facehallu.training.checkpoint import CheckpointError, latest_checkpoint

    if data_format is None:
        from keras_facehallu.data.packed import is_packed

        data_format = "packed" if is_packed(data) else "tfrecord"
    policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(cfg.dtype_policy)  # the models are built under it
        return _run(cfg, data, run_dir, resume=resume, verbose=verbose, data_format=data_format)
    except BaseException as error:
        try:
            latest = latest_checkpoint(run_dir / "checkpoints")
        except OSError:  # never hide the error that ended the run
            latest = None
        status = {"status": "failed", "reason": _failure_reason(error)}
        if latest is not None:
            status["last_checkpoint"] = latest.name
        _write_status(run_dir, status)
        if isinstance(error, (CheckpointError, OSError)):
            print(f"training failed: {error}", file=sys.stderr, flush=True)
            return EXIT_FAILED
        raise
    finally:
        keras.config.set_dtype_policy(policy)


def _datasets(cfg: TrainConfig, data: Path, data_format: str, initial_epoch: int):
    """``(train, validation, steps per epoch)``; the packed stream starts after the epochs done."""
    if data_format == "packed":
        from keras_facehallu.data.packed import PackedBatches, PackedSplit, make_packed_dataset

        train = PackedSplit(data, "train")
        steps = cfg.steps_per_epoch or PackedBatches(
            train, cfg.batch_size, drop_remainder=True
        ).batches_per_pass
        train_ds = make_packed_dataset(
            data, "train", cfg.batch_size, flip=cfg.flip, shuffle=True, seed=cfg.seed,
            repeat=True, drop_remainder=True, start=initial_epoch * steps, packed_split=train,
        )
        val_ds = make_packed_dataset(data, "validation", cfg.batch_size, shuffle=False)
        return train_ds, val_ds, steps
    from keras_facehallu.data.pipeline import make_dataset

    repeat = cfg.steps_per_epoch is not None
    train_ds = make_dataset(
        data, "train", cfg.batch_size, flip=cfg.flip, shuffle=True,
        seed=cfg.seed + initial_epoch, repeat=repeat, drop_remainder=True,
    )
    val_ds = make_dataset(data, "validation", cfg.batch_size, flip=False, shuffle=False)
    return train_ds, val_ds, cfg.steps_per_epoch


def _run(cfg: TrainConfig, data: Path, run_dir: Path, resume: bool, verbose,
         data_format: str) -> int:
    import keras

    from keras_facehallu.training.callbacks import EpochCheckpoint, NonFiniteGuard, SampleGrid
    from keras_facehallu.training.checkpoint import restore_checkpoint, sweep_partial_checkpoints
    from keras_facehallu.training.throughput import ThroughputLog, step_flops_per_image
    from keras_facehallu.version import __version__

    swept = sweep_partial_checkpoints(run_dir / "checkpoints")
    for path in (run_dir / "samples").glob(".epoch-*"):  # sample grids of a killed write
        if path.is_file():
            path.unlink(missing_ok=True)
            swept.append(path)
    if swept:
        print(f"removed {len(swept)} partial files left by a killed write", flush=True)
    keras.utils.set_random_seed(cfg.seed)
    gan = build_gan(cfg)
    state = restore_checkpoint(gan, run_dir / "checkpoints") if resume else None
    initial_epoch = state["epoch"] if state else 0
    if state is None and cfg.init_from:
        init_generator_from(gan.generator, cfg.init_from)
        if gan.average_variables:
            gan.reset_average()
        print(f"generator initialised from preset {cfg.init_from}", flush=True)
    if resume:
        print(f"resuming {run_dir} after epoch {initial_epoch}", flush=True)
    if initial_epoch >= cfg.epochs:
        print(f"{run_dir}: all {cfg.epochs} epochs are done already", flush=True)
        return 0
    train_ds, val_ds, steps_per_epoch = _datasets(cfg, data, data_format, initial_epoch)
    guard = NonFiniteGuard()
    meta = {
        "description": f"{cfg.name} run {run_dir.name}",
        "training": {"config": cfg.to_dict(), "data": str(data), "run": str(run_dir)},
    }
    if resume:
        _truncate_log(run_dir / "log.csv", initial_epoch)
    callbacks = [  # the log row is written before the checkpoint that makes the epoch count
        guard,
        keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=resume),
        EpochCheckpoint(run_dir, guard, snapshots=cfg.snapshots, metadata=meta),
    ]
    sample_inputs, sample_targets = _sample_batch(val_ds, cfg.sample_count)
    if sample_inputs is not None:
        callbacks.append(SampleGrid(run_dir, sample_inputs, sample_targets))
    if cfg.model == "progan":
        from keras_facehallu.models.progan import ProgressiveGrowing

        steps_done = initial_epoch * (steps_per_epoch or _count_batches(train_ds))
        callbacks.append(ProgressiveGrowing(cfg.steps_per_phase, initial_step=steps_done))
    try:
        if not cfg.tensorboard:
            raise ImportError("tensorboard switched off")
        import tensorboard  # noqa: F401  (tf.summary needs it; TensorFlow 2.21 does not pull it)
        import tensorflow  # noqa: F401

        board = keras.callbacks.TensorBoard(
            str(run_dir / "tensorboard"), write_graph=False, update_freq=50
        )
        callbacks.append(board)
    except ImportError:
        print("no TensorBoard logs (off, or TensorFlow or tensorboard not installed: pip install "
              "'keras-facehallu[train]'); log.csv has every loss", flush=True)
    try:
        callbacks.append(ThroughputLog(step_flops_per_image(gan), cfg.batch_size))
    except (AttributeError, ValueError, TypeError) as error:  # a model the count cannot read
        print(f"no FLOP/s: the step's FLOPs could not be counted ({error})", flush=True)
    if cfg.time_budget_s:
        from keras_facehallu.training.time_budget import TimeBudget

        callbacks.insert(1, TimeBudget(cfg.time_budget_s))  # before the checkpoint callback
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    _write_status(run_dir, {"status": "running", "epoch": initial_epoch, "pid": os.getpid()})
    history = gan.fit(
        train_ds,
        epochs=cfg.epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        shuffle=False,  # the datasets shuffle themselves
        validation_data=val_ds,
        validation_steps=cfg.validation_steps,
        callbacks=callbacks,
        verbose=verbose,
    )
    if guard.failure is not None:
        message = (
            f"training stopped: {guard.failure}. The last good checkpoint is kept in "
            f"{run_dir / 'checkpoints'}; lower the learning rates or loss weights and --resume."
        )
        print(message, file=sys.stderr, flush=True)
        _write_status(run_dir, {"status": "failed", "reason": guard.failure})
        return EXIT_NON_FINITE
    from keras_facehallu.presets import save_to_preset

    epochs_done = history.epoch[-1] + 1 if history.epoch else initial_epoch
    if epochs_done < cfg.epochs:
        print(f"stopped by the time budget after epoch {epochs_done} of {cfg.epochs}; "
              f"--resume {run_dir} continues", flush=True)
    final = run_dir / "final"
    if final.exists():
        import shutil

        shutil.rmtree(final)
    with gan.averaged() as generator:  # the moving average where the run keeps one
        save_to_preset(generator, final, metadata={**meta, "epoch": epochs_done})
    _write_status(run_dir, {"status": "finished", "epoch": epochs_done})
    print(f"finished: {run_dir} (generator preset in {final}, version {__version__})", flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="facehallu-train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", default="cascaded", choices=sorted(CONFIGS))
    parser.add_argument("--data", type=Path, help="prepared folder (facehallu-prepare)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder of numbered runs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one config field (JSON value), e.g. --set width=0.25")
    parser.add_argument("--epochs", type=int, help="shortcut for --set epochs=N")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a killed run")
    parser.add_argument("--verbose", default="auto", help="fit verbosity: auto, 0, 1 or 2")
    parser.add_argument("--data-format", default="auto", choices=DATA_FORMATS,
                        help="how to read --data (module docstring); packed needs no TensorFlow")
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)  # status.json says "failed", not "running"
    verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
    if args.resume:
        spec_path = args.resume / "config.json"
        if not spec_path.is_file():
            parser.error(f"--resume {args.resume}: no config.json there; is it a run folder?")
        spec = json.loads(spec_path.read_text())
        cfg = TrainConfig.from_dict(spec["train"])
        try:
            data, data_format = resolve_data(
                Path(spec["data"]), spec.get("data_format", "auto"), args.resume.parent
            )
        except ValueError as error:
            parser.error(str(error))
        return run(cfg, data, args.resume, resume=True, verbose=verbose, data_format=data_format)
    if args.data is None:
        parser.error("--data is required (a folder written by facehallu-prepare)")
    if not (args.data / "manifest.json").is_file():
        parser.error(f"--data {args.data}: no manifest.json; run facehallu-prepare first")
    overrides = dict(parse_override(s) for s in args.set)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    cfg = get_config(args.config, **overrides)
    try:
        data, data_format = resolve_data(args.data.resolve(), args.data_format, args.runs)
    except ValueError as error:
        parser.error(str(error))
    import keras

    from keras_facehallu.version import __version__

    run_dir = next_run_dir(args.runs, cfg.name)
    run_dir.mkdir(parents=True)
    _write_json(
        run_dir / "config.json",
        {
            "train": cfg.to_dict(),
            "data": str(data),
            "data_format": data_format,
            "backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "keras_facehallu_version": __version__,
        },
    )
    print(f"run folder: {run_dir}", flush=True)
    return run(cfg, data, run_dir, verbose=verbose, data_format=data_format)


if __name__ == "__main__":
    sys.exit(main())

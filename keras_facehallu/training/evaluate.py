"""Evaluate trained models and the baselines on a prepared split: the paper's Table 6 and more.

    facehallu-evaluate --data work_data/lfw_prepared [--split validation] \\
        --model runs/00001/model.keras [--model B.keras ...] [--limit N] --out eval/
    facehallu-evaluate --data work_data/lfw_prepared --baselines-only --out eval/

Every model and three baselines (OpenCV Telea and Navier–Stokes inpainting of everything outside
the face mask; the "mean context": the average train-split image with the face pasted in) run on
the same images. Written to ``--out``:

- ``results.md``: the paper's Table 6 columns (match score, SSIM, FID, perceptual error (PieAPP)),
  then this project's extras (verification rate, SSIM of the hallucinated region, KID), with the
  reason for every "unavailable" cell (PieAPP without its weights is one);
- ``results.csv`` and ``results.json`` (the JSON adds the settings, per-metric definitions and the
  KID standard deviations);
- ``sheet.png``: rows original | masked | each method's output, one column per image.

``--bootstrap B`` adds a paired bootstrap of FID (B resamples of the images, the same ones for
every method): each method's 5th/50th/95th percentile and, for each model, the share of resamples
in which its FID is below each baseline's — whether a lead survives resampling the faces.

Real-image Inception features are cached under a hash of the prepared folder's manifest, the split
and ``--limit``, and of the FID detector's sha256 (``--cache-dir``, default under ``$KERAS_HOME``).
FID and KID on a few hundred images are biased and noisy; compare numbers only at equal N.

Before any long work the command checks what it needs (the split, the train split that the mean
context is built from, every ``--model``, the output folder) and says which metrics will be
unavailable. The results files are rewritten after every method, so a late failure keeps what
was finished; a method that fails is reported (``failed`` in ``results.json``) and the others
still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from keras_facehallu.preprocessing import to_uint8

# The match score runs the dlib ResNet port, in which TensorFlow 2.21's oneDNN graph rewrites have
# crashed (SIGSEGV); set before TensorFlow is imported, as facehallu-train does.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

BASELINES = ("OpenCV Telea", "OpenCV Navier-Stokes", "mean context")


def load_split(folder, split: str, limit: int | None):
    """Originals uint8 [N,128,128,3], masks uint8 [N,128,128,1] and sources of a prepared split."""
    from keras_facehallu.data.records import load_examples

    dataset = load_examples(folder, split)
    if limit is not None:
        dataset = dataset.take(limit)
    images, masks, sources = [], [], []
    for example in dataset.as_numpy_iterator():
        images.append(example["image"])
        masks.append(example["mask"])
        sources.append(example["source"].decode("utf-8", "replace"))
    if not images:
        raise SystemExit(f"--data {folder}: split {split!r} holds no examples")
    return np.stack(images), np.stack(masks).astype(np.uint8), sources


def _register_model_classes() -> None:
    """Registers the classes a saved hallucinator may name (importing keras_facehallu.models)."""
    import keras_facehallu.models  # noqa: F401


def _unique_name(name: str, taken: set) -> str:
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name} ({i})", i + 1
    taken.add(candidate)
    return candidate


def build_methods(args, masked, masks):
    """[(name, kind, produce)] where ``produce()`` returns uint8 outputs for ``masked``."""
    from keras_facehallu.baselines import MeanContext, inpaint_context

    methods, taken = [], set()
    for path in args.model or []:
        def produce(path=path):
            import keras

            _register_model_classes()
            if str(path).endswith(".keras"):
                model = keras.saving.load_model(path)
            else:  # a preset folder or a registered preset name
                from keras_facehallu.models import load_preset

                model = load_preset(path, paste_face=not args.raw_output)
            if not hasattr(model, "hallucinate"):
                raise SystemExit(f"--model {path}: a {type(model).__name__}, not a hallucinator")
            return to_uint8(model.hallucinate(masked, masks.astype(np.float32),
                                              batch_size=args.batch_size))

        label = Path(path).stem if str(path).endswith(".keras") else Path(path).name
        if label in ("final", "") or label.startswith("epoch-"):
            label = "-".join(Path(path).parts[-2:])  # e.g. 00000-cpu_small-final
        methods.append((_unique_name(label, taken), "model", produce))
    if args.no_baselines:  # a selection run; a reported run always has the baselines
        return methods
    radius = args.inpaint_radius
    methods.append((_unique_name(BASELINES[0], taken), "baseline",
                    lambda: inpaint_context(masked, masks, "telea", radius)))
    methods.append((_unique_name(BASELINES[1], taken), "baseline",
                    lambda: inpaint_context(masked, masks, "ns", radius)))

    def mean_context():
        cache_dir = Path(args.cache_dir) / "mean_context" if args.cache_dir else None
        baseline = MeanContext.from_prepared(args.data, "train", limit=args.mean_context_limit,
                                             cache_dir=cache_dir)
        return baseline(masked, masks)

    if not args.no_mean_context:
        methods.append((_unique_name(BASELINES[2], taken), "baseline", mean_context))
    return methods


def format_value(name: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unavailable"
    if name == "fid":
        return f"{value:.2f}"
    if name == "kid":
        return f"{value:.4f}"
    return f"{value:.3f}"


def summarise_bootstrap(runs: dict, rows) -> dict:
    """Percentiles of each method's bootstrap FIDs and each model's share of wins per baseline."""
    kinds = {row["method"]: row["kind"] for row in rows}
    baselines = [name for name in runs if kinds.get(name) == "baseline"]
    summary = {"resamples": int(len(next(iter(runs.values())))), "percentiles": {}, "wins": {}}
    for name, values in runs.items():
        summary["percentiles"][name] = [float(np.percentile(values, q)) for q in (5, 50, 95)]
        if kinds.get(name) == "model":
            summary["wins"][name] = {b: float(np.mean(values < runs[b])) for b in baselines}
    return summary


def bootstrap_lines(summary: dict) -> list[str]:
    """The bootstrap section of results.md."""
    baselines = sorted({b for wins in summary["wins"].values() for b in wins},
                       key=lambda b: list(summary["percentiles"]).index(b))
    header = ["method", "FID 5 %", "FID 50 %", "FID 95 %",
              *[f"FID below {b} in" for b in baselines]]
    lines = ["", f"FID bootstrap ({summary['resamples']} paired resamples of the images):", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, (p5, p50, p95) in summary["percentiles"].items():
        wins = summary["wins"].get(name)
        shares = [f"{100 * wins[b]:.0f} %" if wins else "—" for b in baselines]
        cells = [name, f"{p5:.2f}", f"{p50:.2f}", f"{p95:.2f}", *shares]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_outputs(out: Path, rows, metric_names, reasons, settings, bootstrap=None) -> None:
    """results.md, results.csv and results.json."""
    from keras_facehallu.metrics import get_metric

    metrics = [get_metric(n) for n in metric_names]
    header = ["method"] + [f"{m.title} {'↑' if m.higher_is_better else '↓'}" for m in metrics]
    lines = [
        f"Evaluation on `{settings['data']}` split `{settings['split']}`, N = {settings['n']} "
        f"images, {settings['date']}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        cells = [row["method"]] + [format_value(n, row["values"].get(n)) for n in metric_names]
        lines.append("| " + " | ".join(cells) + " |")
    if bootstrap:
        lines += bootstrap_lines(bootstrap)
    if reasons:
        lines += ["", "Unavailable:"]
        lines += [f"- {title}: {reason}" for title, reason in sorted(reasons.items())]
    lines += ["", "Definitions:"]
    lines += [f"- {m.title}: {m.description}" for m in metrics]
    (out / "results.md").write_text("\n".join(lines) + "\n")

    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "kind", *metric_names])
        for row in rows:
            writer.writerow([row["method"], row["kind"]] + [
                "unavailable" if row["values"].get(n) is None else repr(row["values"][n])
                for n in metric_names
            ])

    payload = {
        "settings": settings,
        "metrics": {m.name: {"title": m.title, "higher_is_better": m.higher_is_better,
                             "description": m.description} for m in metrics},
        "unavailable": reasons,
        "results": rows,
    }
    if bootstrap:
        payload["fid_bootstrap"] = bootstrap
    (out / "results.json").write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")


def write_sheet(path: Path, originals, masked, outputs: dict, count: int = 8) -> None:
    """A PNG grid: rows original | masked | one per method; ``count`` image columns."""
    from PIL import Image, ImageDraw

    count = min(count, len(originals))
    rows = [("original", originals), ("masked", masked)] + list(outputs.items())
    size, label_w = originals.shape[1], 150
    sheet = Image.new("RGB", (label_w + count * size, len(rows) * size), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        draw.text((4, r * size + size // 2 - 6), label[:24], fill="black")
        for c in range(count):
            sheet.paste(Image.fromarray(images[c]), (label_w + c * size, r * size))
    from keras_facehallu.outputs import synthetic_metadata, write_image

    meta = synthetic_metadata(
        ", ".join(outputs), "evaluation", description="Evaluation sheet: the rows after "
        "'masked' are hallucinated (models) or inpainted (baselines) outside the face mask.",
    )
    write_image(path, np.asarray(sheet), meta)


def evaluate(args) -> dict:
    """Runs the evaluation described by parsed ``args``; returns the JSON payload's results."""
    from tqdm.auto import tqdm

    from keras_facehallu.metrics import EvalBatch, EvalContext, MetricUnavailable, get_metric
    from keras_facehallu.metrics import fid as fid_lib
    from keras_facehallu.metrics.registry import EXTRA_METRICS, TABLE6_METRICS

    if not args.model and not args.baselines_only:
        raise SystemExit("give at least one --model A.keras, or --baselines-only")
    if args.baselines_only and args.model:
        raise SystemExit("--baselines-only and --model exclude each other")
    for path in args.model or []:
        if str(path).endswith(".keras") and not Path(path).is_file():
            raise SystemExit(f"--model {path}: no such file (expected a .keras file)")
        if not str(path).endswith(".keras"):
            from keras_facehallu.presets import PresetError, resolve_preset

            try:
                resolve_preset(path)
            except PresetError as exc:
                raise SystemExit(f"--model {path}: {exc}") from None
    if not Path(args.data).is_dir():
        raise SystemExit(f"--data {args.data}: no such folder (expected a prepared folder)")
    metric_names = list(args.metrics or (*TABLE6_METRICS, *EXTRA_METRICS))
    for name in metric_names:
        get_metric(name)  # raises on unknown names
    preflight(args, metric_names)

    out = Path(args.out)
    originals, masks, sources = load_split(args.data, args.split, args.limit)
    masked = originals * masks
    if (Path(args.data) / "manifest.json").is_file():
        data_hash = fid_lib.hash_prepared_split(args.data, args.split, args.limit)
    else:
        data_hash = fid_lib.hash_images(originals)
    ctx = EvalContext(
        real_data_hash=data_hash,
        stats_cache_dir=Path(args.cache_dir) / "fid_stats" if args.cache_dir else None,
        pieapp_weights=args.pieapp_weights,
        download=not args.no_download,
        kid_subsets=args.kid_subsets,
        seed=args.seed,
    )
    methods = build_methods(args, masked, masks)
    settings = {
        "data": str(args.data), "split": args.split, "n": int(len(originals)),
        "limit": args.limit, "models": list(args.model or []), "seed": args.seed,
        "inpaint_radius": args.inpaint_radius, "kid_subsets": args.kid_subsets,
        "mean_context_limit": args.mean_context_limit, "real_data_hash": data_hash,
        "bootstrap": args.bootstrap,
        "date": datetime.date.today().isoformat(), "sources": sources,
        "complete": False, "failed": {},
    }
    rows, reasons, outputs = [], {}, {}
    progress = tqdm(total=len(methods) * (1 + len(metric_names)), desc="evaluate", unit="step",
                    disable=args.quiet)
    for name, kind, produce in methods:
        progress.set_postfix_str(f"{name}: outputs")
        try:
            images = produce()
        except Exception as exc:  # keep going: one broken method must not cost the others
            settings["failed"][name] = f"{type(exc).__name__}: {exc}"
            print(f"evaluate: {name} failed ({settings['failed'][name]}); going on",
                  file=sys.stderr, flush=True)
            progress.update(1 + len(metric_names))
            continue
        outputs[name] = images
        progress.update()
        batch = EvalBatch(originals, images, masks)
        values = {}
        for metric_name in metric_names:
            metric = get_metric(metric_name)
            progress.set_postfix_str(f"{name}: {metric.title}")
            try:
                values[metric_name] = float(metric.fn(batch, ctx, name))
            except MetricUnavailable as exc:
                values[metric_name] = None
                reasons[metric.title] = str(exc)
            progress.update()
        rows.append({"method": name, "kind": kind, "values": values,
                     "kid_std": ctx.kid_std.get(name)})
        write_outputs(out, rows, metric_names, reasons, settings)  # what is done so far
    progress.close()
    bootstrap = None
    if args.bootstrap and "fid" in metric_names and all(
        row["values"].get("fid") is not None for row in rows
    ):
        from keras_facehallu.metrics.registry import fake_features

        real = ctx.real_features(originals)
        fakes = {name: fake_features(EvalBatch(originals, outputs[name], masks), ctx, name)
                 for name in outputs}
        runs = fid_lib.bootstrap_fid(real, fakes, resamples=args.bootstrap, seed=args.seed,
                                     progress=not args.quiet)
        bootstrap = summarise_bootstrap(runs, rows)
    elif args.bootstrap:
        reasons["FID bootstrap"] = "needs FID for every method (in --metrics and available)"

    settings["complete"] = not settings["failed"]
    write_outputs(out, rows, metric_names, reasons, settings, bootstrap)
    if outputs:
        write_sheet(out / "sheet.png", originals, masked, outputs, args.sheet_count)
    if not args.quiet:
        print((out / "results.md").read_text())
    if settings["failed"]:
        raise SystemExit(
            f"evaluate: {len(settings['failed'])} method(s) failed: "
            + "; ".join(f"{k}: {v}" for k, v in settings["failed"].items())
            + f". The others are in {out}"
        )
    return {"rows": rows, "unavailable": reasons, "settings": settings}


def preflight(args, metric_names) -> None:
    """Checks, before any long work, everything the run needs; prints what will be unavailable.

    Raises SystemExit naming the first missing thing: the split's shards, the train split (the
    mean context is built from it), or an output folder that cannot be written.
    """
    from keras_facehallu.data.records import shard_paths

    try:
        shard_paths(args.data, args.split)
    except FileNotFoundError as exc:
        raise SystemExit(f"--data {args.data} --split {args.split}: {exc}") from None
    if not (args.no_mean_context or args.no_baselines):
        try:
            shard_paths(args.data, "train")
        except FileNotFoundError as exc:
            raise SystemExit(
                f"--data {args.data}: the mean-context baseline needs the train split: {exc} "
                "(or pass --no-mean-context)"
            ) from None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise SystemExit(f"--out {out}: cannot write there ({exc})") from None
    from keras_facehallu.assets import AssetError, get_asset

    fid, dlib = "fid_inception", "dlib_face_recognition_resnet"
    needs = {"fid": fid, "kid": fid, "match_score": dlib, "verification_rate": dlib}
    for name in metric_names:
        if name in needs:
            try:
                get_asset(needs[name], download=not args.no_download)
            except (AssetError, OSError) as exc:
                print(f"evaluate: {name} will be unavailable: {exc}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facehallu-evaluate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, help="prepared folder (manifest + shards)")
    parser.add_argument("--split", default="validation", choices=("train", "validation", "test"),
                        help="choose on validation; report once on test")
    parser.add_argument("--model", action="append",
                        help=".keras file, preset folder or preset name; repeat for several")
    parser.add_argument("--raw-output", action="store_true",
                        help="presets: score the generator's own face pixels (default: the "
                             "original face pasted back, as facehallu and the baselines do)")
    parser.add_argument("--baselines-only", action="store_true", help="evaluate no model")
    parser.add_argument("--no-baselines", action="store_true",
                        help="models only (for choosing on validation; compare with a baselines "
                             "run on the same split; report with the baselines)")
    parser.add_argument("--no-mean-context", action="store_true",
                        help="skip the mean-context baseline (it needs the train split)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--metrics", nargs="+", default=None,
                        help="metric names (default: all; see keras_facehallu.metrics)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--inpaint-radius", type=int, default=5,
                        help="OpenCV inpainting radius in pixels")
    parser.add_argument("--mean-context-limit", type=int, default=None,
                        help="average only the first N train images for the mean context")
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--bootstrap", type=int, default=0, metavar="B",
                        help="paired bootstrap of FID with B resamples of the images (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of KID's subset sampling")
    parser.add_argument("--pieapp-weights", default=None,
                        help="explicit PieAPPv0.1.pth (else the registered, verified asset)")
    parser.add_argument("--no-download", action="store_true",
                        help="never try to download weights")
    parser.add_argument("--cache-dir", default=None,
                        help="cache for real-image features and the mean context "
                             "(default: $KERAS_HOME/facehallu/...)")
    parser.add_argument("--sheet-count", type=int, default=8, help="images in sheet.png")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no table print")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 2:
        raise SystemExit(f"--limit: expected at least 2 images, found {args.limit}")
    if args.bootstrap < 0:
        raise SystemExit(f"--bootstrap: expected 0 or more resamples, found {args.bootstrap}")
    evaluate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

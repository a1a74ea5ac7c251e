"""``facehallu``: photo → detect → align → mask → hallucinate → (background) → PNGs.

For each face it writes, into the output folder:

- ``NAME_faceK.png``: the 128×128 result (the original face pixels pasted back);
- ``NAME_faceK_in_photo.png``: the result mapped back into the original photo;
- ``NAME_faceK_sheet.png``: aligned photo | masked input | result (| with new background);
- ``NAME_faceK_background.png`` with ``--background IMAGE``;

plus ``summary.json`` (every file: ok or its failure reason). Every PNG is marked as synthetic in
its metadata. Exit code: 0 when every input gave a result, 1 when any failed, 2 for usage errors.

Results of an earlier run are never replaced silently: a folder that holds a ``summary.json`` is
refused unless ``--overwrite`` (replace) or ``--skip-existing`` (keep what is there, do the rest) is
given, and a file that exists (or a symbolic link) fails that one output, not the run. Stdout holds
the results (the summary line or ``--json``); stderr the progress bar and the ``FAILED`` lines.

Example:
    facehallu photo.jpg folder_of_photos/ -o out/ --background beach.jpg --all-faces
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from keras_facehallu.preprocessing import to_uint8

DEFAULT_PRESET = "lfw_cascade_small"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


def collect_inputs(paths) -> list[tuple[Path, str]]:
    """Files given directly plus image files found (recursively) in given folders.

    Returns ``(path, display_name)`` pairs; a folder's files are named relative to the folder.
    A path that does not exist is kept, so it is reported as missing.
    """
    found = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            found += [(p, str(p.relative_to(path))) for p in files]
        else:
            found.append((path, path.name))
    return found



def build_parser() -> argparse.ArgumentParser:
    from keras_facehallu.version import __version__

    parser = argparse.ArgumentParser(
        prog="facehallu",
        description="Keep the inner face of each photo and hallucinate everything else.",
    )
    parser.add_argument("inputs", nargs="+", help="photos and/or folders of photos")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="preset name or folder")
    parser.add_argument("--background", type=Path, help="replace the background with this image")
    parser.add_argument("--all-faces", action="store_true", help="every face, not the largest")
    parser.add_argument("--batch-size", type=int, default=16, help="photos per batch")
    parser.add_argument("--no-paste-face", action="store_true",
                        help="keep the network's own face pixels instead of the original ones")
    parser.add_argument("--forehead-margin", type=float, default=0.0,
                        help="keep this much forehead in the face mask (fraction of face height)")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true",
                          help="replace results of an earlier run in the output folder")
    existing.add_argument("--skip-existing", action="store_true",
                          help="keep results already in the output folder; do only the rest")
    parser.add_argument("--device", default=None,
                        help="run the model on this device, e.g. cpu or gpu:0 (default: the "
                        "backend's choice)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no summary line; only FAILED lines and errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


class OutputFailed(Exception):
    """One output file could not be written; the face is reported and the run goes on."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _write_one(path_of, filename, image, meta, args) -> Path:
    """Writes one PNG of a face, applying --overwrite / --skip-existing; returns its path."""
    from keras_facehallu.outputs import write_png

    try:
        path = path_of(filename)
        if args.skip_existing and path.is_file():
            return path
        return write_png(path, image, meta, overwrite=args.overwrite)
    except FileExistsError:
        raise OutputFailed(
            f"{path} exists (results of another run?); not replaced. Use --overwrite to replace "
            "it, --skip-existing to keep it, or another output folder",
            "output_exists",
        ) from None
    except ValueError as exc:  # a symbolic link or an unsafe name
        raise OutputFailed(str(exc), "output_refused") from None
    except OSError as exc:  # permissions, a full disk, ...
        raise OutputFailed(f"cannot write {filename}: {exc}", "output_error") from None


def _write_face(result, stem, output, namer, photo, model_meta, background, args):
    from keras_facehallu.sheets import image_grid

    files = {}
    files["result"] = _write_one(namer.path, f"{stem}.png", output, model_meta, args)
    if photo is not None:
        from keras_facehallu.outputs import paste_into_photo

        mapped = paste_into_photo(photo, output, result.transform)
        files["in_photo"] = _write_one(namer.path, f"{stem}_in_photo.png", mapped, model_meta,
                                       args)
    tiles = [result.image, result.masked_image, output]
    labels = ["aligned", "input", "result"]
    if background is not None:
        from keras_facehallu.background.replace import replace_background

        composite, _ = replace_background(output, background, result.mask)
        files["background"] = _write_one(namer.path, f"{stem}_background.png", composite,
                                         model_meta, args)
        tiles.append(composite)
        labels.append("background")
    sheet = image_grid([tiles], labels=labels)
    files["sheet"] = _write_one(namer.path, f"{stem}_sheet.png", sheet, model_meta, args)
    return {k: str(v) for k, v in files.items()}


def _fail(entry, face_record, reason, message):
    entry["ok"] = False
    entry.setdefault("reason", reason)
    entry.setdefault("message", message)
    face_record.update(reason=reason, message=message)


def _check_output_folder(args) -> None:
    output = args.output
    if output.exists() and not output.is_dir():
        raise SystemExit(f"facehallu: output {output} exists and is not a folder")
    previous = output / "summary.json"
    if os.path.lexists(previous) and not (args.overwrite or args.skip_existing):
        raise SystemExit(
            f"facehallu: {output} holds the results of an earlier run ({previous}). Pass "
            "--overwrite to replace them, --skip-existing to keep them and do only what is "
            "missing, or choose another output folder"
        )


def _write_summary(folder: Path, summary: dict, replace: bool) -> Path:
    """``summary.json``; when another run wrote one meanwhile, ``summary-2.json``, ... instead."""
    from keras_facehallu.atomic import write_json

    path, n = folder / "summary.json", 1
    while True:
        try:
            return write_json(path, summary, overwrite=replace and n == 1)
        except FileExistsError:
            n += 1
            path = folder / f"summary-{n}.json"


def run(args) -> dict:
    """Runs the command for parsed ``args``; returns the summary dict."""
    from keras_facehallu.face.io import ImageLoadError, load_image
    from keras_facehallu.face.pipeline import prepare_face
    from keras_facehallu.models import load_preset
    from keras_facehallu.outputs import OutputNamer, safe_stem, synthetic_metadata

    if args.batch_size < 1:
        raise SystemExit(f"facehallu: --batch-size must be positive, found {args.batch_size}")
    _check_output_folder(args)
    background = None
    if args.background is not None:
        from keras_facehallu.background.io import as_rgb_uint8

        background, _ = as_rgb_uint8(str(args.background), "--background")
    inputs = collect_inputs(args.inputs)
    if not inputs:
        raise SystemExit("facehallu: no input images found")
    model = load_preset(args.preset, paste_face=not args.no_paste_face)
    preset_name = model.preset_metadata.get("name", str(args.preset))
    model_meta = synthetic_metadata(type(model).__name__, preset_name)
    args.output.mkdir(parents=True, exist_ok=True)
    namer = OutputNamer(args.output)
    summary = {"preset": preset_name, "output": str(args.output), "files": []}
    progress = None
    if not (args.no_progress or args.quiet):
        from tqdm import tqdm

        progress = tqdm(total=len(inputs), desc="facehallu", unit="photo", file=sys.stderr)
    for start in range(0, len(inputs), args.batch_size):
        chunk = inputs[start : start + args.batch_size]
        faces, entries = [], []
        for path, display in chunk:
            found = prepare_face(str(path), all_faces=True, forehead_margin=args.forehead_margin)
            if not args.all_faces:
                found = found[:1]
            entry = {"input": str(path), "ok": all(f.ok for f in found), "faces": []}
            failures = [f for f in found if not f.ok]
            if failures:
                entry["reason"] = failures[0].reason
                entry["message"] = failures[0].message
            for face in found:
                if not face.ok:
                    continue
                face.display, face.path = display, path
                stem = namer.stem(f"{safe_stem(display)}_face{face.face_index}")
                record = {"face_index": face.face_index, "confidence": face.confidence}
                entry["faces"].append(record)
                try:
                    result_path = namer.path(f"{stem}.png")
                except ValueError as exc:
                    _fail(entry, record, "output_refused", str(exc))
                    continue
                if args.skip_existing and result_path.is_file():
                    record.update(skipped=True, result=str(result_path))
                    continue
                faces.append((face, entry, record, stem))
            entries.append(entry)
        if faces:
            outputs = to_uint8(
                model.hallucinate(
                    np.stack([f.masked_image for f, *_ in faces]),
                    np.stack([f.mask for f, *_ in faces]),
                    batch_size=args.batch_size,
                )
            )
            photos = {}
            for (face, entry, record, stem), output in zip(faces, outputs, strict=True):
                if face.path not in photos:
                    try:
                        photos[face.path] = load_image(str(face.path))
                    except ImageLoadError:
                        photos[face.path] = None
                try:
                    record.update(_write_face(face, stem, output, namer, photos[face.path],
                                              model_meta, background, args))
                except OutputFailed as exc:
                    _fail(entry, record, exc.reason, str(exc))
        summary["files"].extend(entries)
        if progress is not None:
            progress.update(len(chunk))
    if progress is not None:
        progress.close()
    summary["ok"] = sum(e["ok"] for e in summary["files"])
    summary["failed"] = len(summary["files"]) - summary["ok"]
    summary["skipped"] = sum(
        bool(f.get("skipped")) for e in summary["files"] for f in e["faces"]
    )
    written = _write_summary(args.output, summary, replace=args.overwrite or args.skip_existing)
    summary["summary"] = str(written)
    return summary


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"facehallu: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from keras_facehallu.startup import device_scope, start_backend

        start_backend()
        with device_scope(args.device), warnings.catch_warnings():
            warnings.showwarning = _show_warning  # one plain line each, e.g. an unverified preset
            summary = run(args)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise
    except Exception as exc:  # preset, background or output-folder problems: one clear line
        from keras_facehallu.presets import PresetError

        if isinstance(exc, (PresetError, OSError, ValueError)):
            print(f"facehallu: {exc}", file=sys.stderr)
            return 2
        raise
    for entry in summary["files"]:
        if not entry["ok"]:
            print(f"FAILED {entry['input']}: {entry.get('message', entry.get('reason'))}",
                  file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        skipped = f", {summary['skipped']} faces kept from before" if summary["skipped"] else ""
        print(
            f"{summary['ok']} of {len(summary['files'])} photos done, {summary['failed']} failed"
            f"{skipped}; results in {summary['output']}"
        )
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

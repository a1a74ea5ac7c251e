"""``facehallu``: photo → detect → align → mask → hallucinate → (background) → PNGs.

For each face it writes, into the output folder:

- ``NAME_faceK.png``: the 128×128 result (the original face pixels pasted back);
- ``NAME_faceK_in_photo.png``: the result mapped back into the original photo;
- ``NAME_faceK_sheet.png``: aligned photo | masked input | result (| with new background);
- ``NAME_faceK_background.png`` with ``--background IMAGE``;

plus ``summary.json`` (every file: ok or its failure reason). Every PNG is marked as synthetic in
its metadata. Exit code: 0 when every input gave a result, 1 when any failed, 2 for usage errors.

Example:
    facehallu photo.jpg folder_of_photos/ -o out/ --background beach.jpg --all-faces
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

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


def _as_uint8(images) -> np.ndarray:
    return np.clip(np.rint((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _write_face(result, output, namer, photo, model_meta, background, paste):
    from keras_facehallu.outputs import paste_into_photo, safe_stem, write_png
    from keras_facehallu.sheets import image_grid

    stem = namer.stem(f"{safe_stem(result.display)}_face{result.face_index}")
    files = {}
    files["result"] = write_png(namer.path(f"{stem}.png"), output, model_meta)
    if photo is not None:
        mapped = paste_into_photo(photo, output, result.transform)
        files["in_photo"] = write_png(namer.path(f"{stem}_in_photo.png"), mapped, model_meta)
    tiles = [result.image, result.masked_image, output]
    labels = ["aligned", "input", "result"]
    if background is not None:
        from keras_facehallu.background.replace import replace_background

        composite, _ = replace_background(output, background, result.mask)
        files["background"] = write_png(namer.path(f"{stem}_background.png"), composite, model_meta)
        tiles.append(composite)
        labels.append("background")
    sheet = image_grid([tiles], labels=labels)
    files["sheet"] = write_png(namer.path(f"{stem}_sheet.png"), sheet, model_meta)
    return {k: str(v) for k, v in files.items()}


def run(args) -> dict:
    """Runs the command for parsed ``args``; returns the summary dict."""
    from keras_facehallu.face.io import ImageLoadError, load_image
    from keras_facehallu.face.pipeline import prepare_face
    from keras_facehallu.outputs import OutputNamer, synthetic_metadata
    from keras_facehallu.presets import load_preset

    if args.batch_size < 1:
        raise SystemExit(f"facehallu: --batch-size must be positive, found {args.batch_size}")
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
    if not args.no_progress:
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
                if face.ok:
                    face.display, face.path = display, path
                    faces.append((face, entry))
            entries.append(entry)
        if faces:
            outputs = _as_uint8(
                model.hallucinate(
                    np.stack([f.masked_image for f, _ in faces]),
                    np.stack([f.mask for f, _ in faces]),
                    batch_size=args.batch_size,
                )
            )
            photos = {}
            for (face, entry), output in zip(faces, outputs, strict=True):
                if face.path not in photos:
                    try:
                        photos[face.path] = load_image(str(face.path))
                    except ImageLoadError:
                        photos[face.path] = None
                files = _write_face(
                    face, output, namer, photos[face.path], model_meta, background,
                    not args.no_paste_face,
                )
                entry["faces"].append(
                    {"face_index": face.face_index, "confidence": face.confidence, **files}
                )
        summary["files"].extend(entries)
        if progress is not None:
            progress.update(len(chunk))
    if progress is not None:
        progress.close()
    summary["ok"] = sum(e["ok"] for e in summary["files"])
    summary["failed"] = len(summary["files"]) - summary["ok"]
    from keras_facehallu.data.records import write_json_atomic

    write_json_atomic(args.output / "summary.json", summary)
    return summary


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        summary = run(args)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise
    except Exception as exc:  # preset, background or output-folder problems: one clear line
        from keras_facehallu.presets import PresetError

        if isinstance(exc, (PresetError, FileNotFoundError, ValueError)):
            print(f"facehallu: {exc}", file=sys.stderr)
            return 2
        raise
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for entry in summary["files"]:
            if not entry["ok"]:
                print(f"FAILED {entry['input']}: {entry.get('message', entry.get('reason'))}")
        print(
            f"{summary['ok']} of {len(summary['files'])} photos done, {summary['failed']} failed; "
            f"results in {summary['output']}"
        )
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

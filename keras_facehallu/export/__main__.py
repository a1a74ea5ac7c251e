"""``facehallu-export {savedmodel,onnx,litert} ...``: dispatch to the export commands."""

from __future__ import annotations

import sys

USAGE = "usage: facehallu-export {savedmodel,onnx,litert} [options]  (add -h for each command)"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("savedmodel", "onnx", "litert"):
        print(USAGE, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "savedmodel":
        from keras_facehallu.export.savedmodel import main as run
        return run(rest)
    from keras_facehallu.export.portable import main as run
    return run(rest, fmt=command)


if __name__ == "__main__":
    sys.exit(main())

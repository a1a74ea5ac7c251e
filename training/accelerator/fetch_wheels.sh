#!/usr/bin/env bash
# Downloads the wheels that training/accelerator/run.sh installs on a machine with JAX, no
# TensorFlow and no network: keras and the dependencies that such a machine lacks, at the
# versions installed here. Run here (where pip reaches PyPI), from the repository root:
#
#   training/accelerator/fetch_wheels.sh                  # for the accelerator's Python (3.12)
#   training/accelerator/fetch_wheels.sh --python 3.11    # for another Python (e.g. this one)
#
# The wheels land in training/accelerator/wheels/ (git-ignored; --dest to change), about 2 MB.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/wheels"
pyver=3.12
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] && python="${PYTHON:-.venv/bin/python}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dest) dest="$2"; shift 2 ;;
    --python) pyver="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "fetch_wheels.sh: unknown argument $1 (expected --dest DIR, --python X.Y)" >&2; exit 2 ;;
  esac
done
# keras and the two of its dependencies that the accelerator image does not hold (absl-py, rich,
# h5py, ml-dtypes, numpy, packaging and pillow are there); pinned to this environment's versions.
pins=$("$python" - <<'PY'
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in ("keras", "namex", "optree")))
PY
)
mkdir -p "$dest"
rm -f "$dest"/*.whl
platforms=""
for n in 17 24 27 28 31 34 35; do platforms="$platforms --platform manylinux_2_${n}_x86_64"; done
# shellcheck disable=SC2086
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
  --implementation cp $platforms --platform manylinux2014_x86_64 -d "$dest" $pins
ls -1 "$dest"
du -sh "$dest"

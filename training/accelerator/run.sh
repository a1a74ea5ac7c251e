#!/usr/bin/env bash
# One command for an accelerator machine that has JAX and no TensorFlow and no network: install
# keras from carried wheels, train for a wall-clock budget (checkpoint after every epoch), and
# write the averaged generator as weight files of at most 16 MB each plus the logs into one folder.
#
#   training/accelerator/run.sh --data PACKED_DIR --out OUT_DIR [--budget SECONDS] \
#       [--config NAME] [--wheels DIR] [--runs DIR] [--assets DIR] [--set KEY=VALUE ...]
#
#   --data     a packed folder (python -m keras_facehallu.data.packed export ...)
#   --out      output folder: generator.json + generator.part-NNN.bin (the weights),
#              run.log (everything printed), log.csv (losses per epoch), sample.png (last grid)
#   --budget   training seconds, counted from the start of fit (compilation included; default
#              480); the run stops after the last epoch that ends inside it
#   --config   a named training config (default cpu_small); --set changes single fields
#   --wheels   folder of wheels to install first (default training/accelerator/wheels; skipped
#              when it holds none and keras is importable)
#   --runs     where the run folder goes (default /tmp/facehallu-runs)
#   --assets   folder of asset files (KERAS_FACEHALLU_ASSETS), e.g. the dlib network for L_id
#
# Back here: python -m keras_facehallu.training.weight_parts to-preset OUT_DIR PRESET_DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
data="" out="" budget=480 config=cpu_small wheels="$here/wheels" runs=/tmp/facehallu-runs
assets=""
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --assets) assets="$2"; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$data" ] || [ -z "$out" ]; then
  echo "run.sh: --data PACKED_DIR and --out OUT_DIR are required (see --help)" >&2; exit 2
fi
if [ ! -f "$data/manifest.json" ] || [ ! -f "$data/train.npz" ]; then
  echo "run.sh: --data $data: no packed folder (manifest.json, train.npz); export one with" \
       "python -m keras_facehallu.data.packed export PREPARED_DIR OUT_DIR" >&2; exit 2
fi
data="$(cd "$data" && pwd)"
mkdir -p "$out" "$runs"
out="$(cd "$out" && pwd)"
exec > >(tee "$out/run.log") 2>&1
tee_pid=$!
trap 'exec 1>&- 2>&-; wait "$tee_pid" 2>/dev/null || true' EXIT  # run.log complete on return
echo "run.sh: $(date -u +%FT%TZ) on $(hostname); budget ${budget}s; config $config ${sets[*]:-}"
command -v nvidia-smi >/dev/null && nvidia-smi -L || true

shopt -s nullglob
whl=("$wheels"/*.whl)
site=/tmp/facehallu-site
if [ ${#whl[@]} -gt 0 ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "${whl[@]}"
  export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}"
  echo "installed $(basename -a "${whl[@]}" | tr '\n' ' ')into $site"
else
  export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
  if ! "$python" -c "import keras" 2>/dev/null; then
    echo "run.sh: keras is not installed and $wheels holds no wheels; run" \
         "training/accelerator/fetch_wheels.sh here first and carry that folder" >&2; exit 2
  fi
  echo "no wheels in $wheels: using the installed keras"
fi
export KERAS_BACKEND=jax
[ -n "$assets" ] && export KERAS_FACEHALLU_ASSETS="$(cd "$assets" && pwd)"
"$python" -c "import jax, keras; print('keras', keras.__version__, 'jax', jax.__version__, \
jax.devices())"

before=$(ls "$runs" | sort | tail -1 || true)
status=0
(cd "$repo" && "$python" -m keras_facehallu.training.train --config "$config" --data "$data" \
  --data-format packed --runs "$runs" --set "time_budget_s=$budget" --set tensorboard=false \
  "${sets[@]}" --verbose 2) || status=$?
run="$runs/$(ls "$runs" | sort | tail -1)"
if [ "$(basename "$run")" = "$before" ] || [ ! -d "$run" ]; then
  echo "run.sh: training made no run folder (exit $status)" >&2; exit $(( status ? status : 1 ))
fi
[ -f "$run/log.csv" ] && cp "$run/log.csv" "$out/log.csv"
grids=("$run"/samples/epoch-*.png)
[ ${#grids[@]} -gt 0 ] && cp "${grids[-1]}" "$out/sample.png"
if [ ! -d "$run/final" ]; then
  echo "run.sh: training ended with exit $status and wrote no final generator ($run)" >&2
  exit $(( status ? status : 1 ))
fi
"$python" -m keras_facehallu.training.weight_parts from-preset "$run/final" "$out"
echo "run.sh: done $(date -u +%FT%TZ); $out holds $(ls "$out" | wc -l) files:"
ls -l "$out"

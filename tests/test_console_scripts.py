"""The installed console scripts run from any folder: ``--help`` of each from a temporary folder.

They are the wrapper scripts pip writes next to the interpreter (``make setup`` installs them with
``pip install -e``); the repository root is neither the working folder nor on ``PYTHONPATH``, so
only the installed package can answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# script -> a line its help must show (its own name in the usage line, or the command list)
SCRIPTS = {
    "facehallu-prepare": "usage: facehallu-prepare",
    "facehallu-train": "usage: facehallu-train",
    "facehallu-evaluate": "usage: facehallu-evaluate",
    "facehallu-export": "usage: facehallu-export {savedmodel,onnx,litert}",
    "facehallu-serve": "usage: facehallu-serve",
    "facehallu-client": "usage: facehallu-client",
}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return dict(env, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_from_another_folder(script, tmp_path):
    path = Path(sys.executable).parent / script
    if not path.is_file():
        pytest.fail(f"{path}: console script not installed; run `pip install -e .` (make setup)")
    done = subprocess.run([str(path), "--help"], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{script} --help exited {done.returncode}:\n{output[-2000:]}"
    assert SCRIPTS[script] in output, output[-2000:]


def test_serving_extra_missing_is_named_in_one_line(tmp_path):
    """Without grpc / tensorflow-serving-api the packages still import and the scripts say what
    to install, instead of a traceback."""
    code = (
        "import sys\n"
        "sys.modules['grpc'] = sys.modules['tensorflow_serving'] = None  # not installed\n"
        "import keras_facehallu, keras_facehallu.serving, keras_facehallu.export\n"
        "from keras_facehallu.export.__main__ import main as export_main\n"
        "assert export_main(['--help']) == 0\n"
        "from keras_facehallu.serving import serve\n"
        "sys.exit(serve(['--help']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("facehallu-serve: grpc is not installed"), done.stderr[-2000:]
    assert "pip install 'keras-facehallu[serving]'" in last
    assert "Traceback" not in done.stderr

"""What every benchmark prints about the machine: the CPU model and where the LFW photos are.

Imported by the ``bench_*.py`` scripts (run as ``python benchmarks/bench_x.py`` or
``python -m benchmarks.bench_x``).
"""

from __future__ import annotations

import platform
from pathlib import Path

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"

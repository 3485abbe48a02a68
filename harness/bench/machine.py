"""The machine a benchmark measures, as bench.json and peers.json record it; progress lines on stderr."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path


def machine_info() -> dict:
    """The machine a benchmark ran on (bench.json / peers.json `machine`): CPU, cores, threads, versions, commit."""
    import torch

    from harness.runs.provenance import git_commit

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_start": load_average(),
        "git_commit": git_commit(),
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (a busy machine measures slower)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def log(prefix: str, msg: str) -> None:
    print(f"[{prefix}] {msg}", file=sys.stderr, flush=True)

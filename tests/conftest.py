"""Shared test helpers: tiny configs (hidden 8-32, tens of steps) and the data-root skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import data_root

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("WANDB_SILENT", "true")
# fixture plugins: `slurm_cluster`, a real single-node SLURM cluster; `postgres_url`, a throw-away PostgreSQL server
pytest_plugins = ["tests.slurm_cluster", "tests.postgres_server"]

# a run that finishes in a few seconds on one core
TINY = [
    "data.synthetic.train_size=200",
    "data.synthetic.val_size=20",
    "data.synthetic.test_size=40",
    "data.synthetic.min_len=2",
    "data.synthetic.max_len=10",
    "data.synthetic.vocab_size=16",
    "model.emb_size=16",
    "model.hidden_size=16",
    "train.max_steps=20",
    "train.val_every=10",
    "train.batch_size=16",
    "tracking.wandb.mode=disabled",
]


def needs_data(*folders: str):
    """Skip unless the shared data folders exist (CI has ../shared beside the clone)."""
    missing = [f for f in folders if not (data_root() / f).is_dir()]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"shared data not found: {data_root()}/{missing[0] if missing else ''} (set HARNESS_DATA_DIR)",
    )


def run_cli(*args: str, stdin: str | None = None, timeout: int = 300, env: dict | None = None):
    """Run `harness ...` in a subprocess; returns CompletedProcess (text)."""
    e = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=e,
    )

"""What a run records about where it came from: the package versions, the git commit and the machine it trained
on, and the config document (RUN_DIR/config.yaml: the resolved config plus `_meta`), read back by
load_run_config. W&B runs (tracking.py) and bench reports carry the same versions and commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from harness.config import ExperimentConfig, read_yaml, to_dict
from harness.experiment import from_dict
from harness.paths import PROJECT_ROOT
from harness.runs.layout import CONFIG_FILE

PACKAGES = ["torch", "lightning", "sacrebleu", "sentencepiece", "optuna", "wandb", "numpy", "attention-harness"]


def versions() -> dict[str, str]:
    """The Python version and the versions of the packages a run's numbers depend on."""
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def hardware() -> str:
    """The machine a run trained on, in one line (metrics.json `hardware`; RESULTS.md shows it)."""
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.system()} {cpu}, {os.cpu_count()} CPUs, {gpu}, {torch.get_num_threads()} torch threads"


def git_commit() -> str | None:
    """The project's commit, with `-dirty` when tracked files changed; None outside a git checkout."""
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        if r.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return r.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def config_document(cfg: ExperimentConfig) -> dict:
    """What RUN_DIR/config.yaml holds: the resolved config, and under `_meta` the seed, versions and commit."""
    return {**to_dict(cfg), "_meta": {"seed": cfg.seed, "versions": versions(), "git_commit": git_commit()}}


def load_run_config(run_dir: Path) -> ExperimentConfig:
    """A run directory's config.yaml, validated like a loaded config (its `_meta` left out)."""
    doc = read_yaml(run_dir / CONFIG_FILE)
    doc.pop("_meta", None)
    return from_dict(doc, f"config {run_dir / CONFIG_FILE}")

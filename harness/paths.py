"""Where things live: project root, data root (HARNESS_DATA_DIR), caches."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """The shared data folder: $HARNESS_DATA_DIR, else ../shared/data beside the project root."""
    env = os.environ.get("HARNESS_DATA_DIR")
    return Path(env) if env else (PROJECT_ROOT.parent / "shared" / "data")


def cache_dir() -> Path:
    """Cache for derived artefacts (sentencepiece models, tokenized corpora); $HARNESS_CACHE_DIR overrides."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    path = Path(env) if env else Path.home() / ".cache" / "attention-harness"
    path.mkdir(parents=True, exist_ok=True)
    return path

"""The loader every entry point uses: an experiment config (harness/config.py: types, ranges, cross-key rules)
whose model section is also checked against the registries it names (harness/models/registry.py: architectures,
score functions, what applies where). It sits above models/, so config.py stays below data/ and models/."""

from __future__ import annotations

from pathlib import Path

from harness.config import ExperimentConfig, build, check, parse_config
from harness.models.registry import check_model_config


def validate(cfg: ExperimentConfig, source: str = "config") -> None:
    """Every cross-key rule: the config's own, then the model section against the registries."""
    check(cfg, source)
    check_model_config(cfg.model, source)


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> ExperimentConfig:
    """Load an experiment config file (or the defaults) and apply dotted overrides; validate everything."""
    return parse_config(path, overrides, validate)


def from_dict(data: dict, source: str = "config") -> ExperimentConfig:
    """A config from a nested mapping (a run's config.yaml, a checkpoint's), validated like a loaded one."""
    cfg = build(data, source)
    validate(cfg, source)
    return cfg

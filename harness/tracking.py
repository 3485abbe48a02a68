"""Weights & Biases through Lightning's WandbLogger: offline by default, never fatal."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from harness.config import ExperimentConfig, flatten, to_dict

log = logging.getLogger(__name__)


def run_name(cfg: ExperimentConfig) -> str:
    if cfg.tracking.wandb.name:
        return cfg.tracking.wandb.name
    return f"{cfg.model.arch}-{cfg.model.score}-s{cfg.seed}"


def wandb_mode(cfg: ExperimentConfig) -> str:
    return cfg.tracking.wandb.mode


def make_wandb_logger(cfg: ExperimentConfig, run_dir: Path, data, params: int, trial_info: dict | None = None):
    """A WandbLogger writing under RUN_DIR/wandb, or None when disabled or when W&B cannot start."""
    w = cfg.tracking.wandb
    if w.mode == "disabled":
        return None
    try:
        from lightning.pytorch.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        config = flatten(to_dict(cfg))
        config.update({"params": params, **{f"data.size.{k}": v for k, v in data.sizes().items()}})
        if trial_info:
            config.update(trial_info)
        logger = WandbLogger(
            name=run_name(cfg),
            project=os.environ.get("WANDB_PROJECT", w.project),
            entity=os.environ.get("WANDB_ENTITY", w.entity) or None,
            group=w.group or None,
            job_type=w.job_type,
            save_dir=str(run_dir),
            mode=w.mode,
            config=config,
            settings=None,
        )
        _ = logger.experiment  # start now, so a failure is caught here and not mid-training
        return logger
    except Exception as e:  # W&B must never kill training
        log.warning("W&B disabled for this run: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
        return None


def finish_tracking(logger, metrics: dict, data, run_dir: Path) -> None:
    if logger is None:
        return
    try:
        exp = logger.experiment
        for k, v in metrics.items():
            if isinstance(v, int | float | str) or v is None:
                exp.summary[k] = v
        exp.finish()
    except Exception as e:
        log.warning("W&B summary not written: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)

"""The Lightning Trainer of a harness run and its callbacks: the checkpoints (best.ckpt by the stopping rule's
metric, last.ckpt for --resume), the throughput meter, the validation history, Ctrl-C / SIGTERM checkpoints, the
exact-resume state and the stopping rule, in the order harness/runs/run.py has always added them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl

from harness.config import ExperimentConfig
from harness.metrics.keys import MODE
from harness.train.callbacks import (
    DistributedShutdown,
    FinalCheckpoint,
    ResumeState,
    RunCheckpoint,
    SignalCheckpoint,
    StoppingRule,
    ThroughputMeter,
    ValidationHistory,
)


@dataclass
class Training:
    """A Trainer and the callbacks whose state the run reads when fit() returns."""

    trainer: pl.Trainer
    best: RunCheckpoint  # best.ckpt
    meter: ThroughputMeter
    history: ValidationHistory
    rule: StoppingRule | None  # train.early_stopping > 0
    val_every: int  # optimizer steps between validations
    last: Path  # last.ckpt


def validation_interval(cfg: ExperimentConfig) -> int:
    """train.val_every, or max_steps when training is shorter than one interval."""
    t = cfg.train
    return t.val_every if t.max_steps <= 0 else min(t.val_every, t.max_steps)


def make_trainer(
    cfg: ExperimentConfig,
    work: Path,
    checkpoints: Path,
    loggers: list,
    callbacks: list | None = None,
    progress: bool = True,
    spawned: bool = False,
) -> Training:
    """The Trainer writing into `work` (RUN_DIR.partial/): best.ckpt and last.ckpt (Lightning's name for
    save_last) in `checkpoints`, logs to `loggers`; `callbacks` come after the harness's own; `spawned`: the
    ranks train in ddp_spawn processes (FinalCheckpoint)."""
    ckpt_dir = Path(checkpoints)
    last = ckpt_dir / "last.ckpt"
    monitor = cfg.train.early_stopping_metric  # best.ckpt = the best validation by the stopping rule's metric
    best = RunCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=monitor,
        mode=MODE[monitor],
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    meter, history = ThroughputMeter(), ValidationHistory()
    cbs = [best, meter, history, SignalCheckpoint(last), ResumeState()]
    if spawned:
        cbs.append(FinalCheckpoint(last))
    if cfg.train.devices > 1 or cfg.train.strategy.startswith("ddp"):
        cbs.append(DistributedShutdown())
    cbs += list(callbacks or [])
    rule = None
    if cfg.train.early_stopping:
        rule = StoppingRule(monitor, cfg.train.early_stopping, cfg.train.early_stopping_min_delta)
        cbs.append(rule)
    t = cfg.train
    val_every = validation_interval(cfg)
    # Lightning warns on every machine with SLURM's srun on PATH that it is not run through srun; sweep jobs
    # on SLURM are started by submitit, single runs need not be, so the hint is only noise on stderr
    warnings.filterwarnings("ignore", message=r".*`srun` command is available on your system")
    trainer = pl.Trainer(
        max_steps=t.max_steps,
        max_epochs=t.max_epochs if t.max_epochs > 0 else (-1 if t.max_steps > 0 else 10),
        max_time={"seconds": t.max_time} if t.max_time else None,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        gradient_clip_val=t.grad_clip or None,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        precision=t.precision,
        callbacks=cbs,
        logger=loggers,
        log_every_n_steps=t.log_every,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=t.accelerator == "cpu",
        use_distributed_sampler=False,
        default_root_dir=work,
    )
    return Training(trainer, best, meter, history, rule, val_every, last)

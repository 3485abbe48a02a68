"""`harness train` and `harness evaluate` as Python functions: train a model into a run directory (layout.py),
evaluate it on its test split and write metrics.json; re-evaluate a finished run on any split."""

from __future__ import annotations

import errno
import json
import logging
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from harness.config import ExperimentConfig, dump_yaml, replace
from harness.errors import HarnessError
from harness.io import atomic_write_bytes, atomic_write_text, write_json
from harness.metrics import keys
from harness.runs.layout import (
    CONFIG_FILE,
    LOG_BEFORE_RESUME,
    LOG_FILE,
    METRICS_FILE,
    RunDir,
    checkpoint_path,
    load_module,
    write_evaluation,
)
from harness.runs.provenance import config_document, hardware
from harness.train.memory import keep_freed_memory, set_malloc_mmap_threshold

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ train
def _csv_rows(path: Path, before_step: int) -> list[dict]:
    """Rows of a Lightning metrics.csv logged before `before_step` (what a resumed run keeps of the log)."""
    import csv

    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) < before_step]


def _write_csv_rows(path: Path, rows: list[dict]) -> list[str]:
    """Write `rows` as a CSV file at once (atomically), columns sorted like Lightning's writer. Returns them."""
    import csv
    import io

    fields = sorted({k for r in rows for k in r if k is not None})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return fields


def _fit_seconds_before(state: dict) -> float:
    """Training wall time before a resume, from the checkpoint: the throughput meter's `fit_seconds`, or for a
    checkpoint written before it had one, the fit-stage time of Lightning's Timer (there when train.max_time is set),
    else 0 (only this stretch is counted, as it used to be)."""
    for cb in (state.get("callbacks") or {}).values():
        if isinstance(cb, dict) and "fit_seconds" in cb:
            return float(cb["fit_seconds"])
    for key, cb in (state.get("callbacks") or {}).items():
        if str(key).startswith("Timer") and isinstance(cb, dict):
            return float((cb.get("time_elapsed") or {}).get("train", 0.0))
    return 0.0


def _rows_before_resume(work: Path, resumed_step: int) -> list[dict]:
    """Every row logged before step `resumed_step`, also across several kills: the rows an earlier resume kept
    aside (LOG_BEFORE_RESUME, there when that resumed run was killed before it put them back) and then the rows
    metrics.csv has from after them. Written to LOG_BEFORE_RESUME before Lightning deletes metrics.csv."""
    kept = _csv_rows(work / LOG_BEFORE_RESUME, before_step=resumed_step)
    after = max((int(r["step"]) for r in kept), default=-1)  # metrics.csv may hold them again: put back, not removed
    rows = kept + [r for r in _csv_rows(work / LOG_FILE, before_step=resumed_step) if int(r["step"]) > after]
    if rows:
        _write_csv_rows(work / LOG_BEFORE_RESUME, rows)
    return rows


def _prepend_csv_rows(path: Path, rows: list[dict], csv_logger, at: tuple[int, int] | None = None) -> None:
    """logs/metrics.csv of a resumed run = the rows before the resume + the rows the resumed run logged.
    at=(step, epoch): the newer rows were logged by a launcher process whose loop counters are 0 (the final
    validation after a ddp_spawn fit): give them the real step and epoch."""
    import csv

    newer: list[dict] = []
    if path.is_file():
        with open(path, newline="") as f:
            newer = list(csv.DictReader(f))
    if at is not None:
        for r in newer:
            r["step"], r["epoch"] = str(at[0]), str(at[1])
    experiment = csv_logger.experiment  # a writer Lightning creates now deletes metrics.csv: let it, before we write
    # sorted like Lightning's writer, which keeps appending (e.g. the final validation) with these keys
    fields = _write_csv_rows(path, rows + newer)
    # Lightning's writer must know every column of the file now, or rewriting it with a new column (the final
    # validation's val_* keys after a resumed fit) fails on the training columns ("dict contains fields not in
    # fieldnames")
    experiment.metrics_keys = list(fields)


def _validation(cfg: ExperimentConfig, data):
    """What the module scores at every validation: BLEU against the val references, and AER on the data set's
    gold dev sentences where it has them (Corpus.align_dev)."""
    from harness.decode.evaluate import split_aer
    from harness.train.module import Validation

    dev = data.splits.get(data.corpus.align_dev) if data.corpus.align_dev else None
    aer = None
    if dev is not None and dev.raw.gold:  # a partial, not a closure: ddp_spawn pickles the module for its ranks
        aer = partial(split_aer, split=dev, cfg=cfg, tokenizers=(data.src_tok, data.tgt_tok))
    return Validation(data.splits["val"].raw.tgt, data.tgt_tok.decode, aer)


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict


def train(
    cfg: ExperimentConfig,
    output: str | Path,
    overwrite: bool = False,
    resume: bool = False,
    callbacks: list | None = None,
    progress: bool = True,
    trial_info: dict | None = None,
) -> TrainResult:
    """Train, evaluate on the test split, write the run directory. Returns its path and metrics."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from harness.data.datamodule import TranslationDataModule, prepare
    from harness.data.guidance import make_guide
    from harness.decode.evaluate import evaluate_split
    from harness.metrics import convergence
    from harness.metrics.keys import MODE
    from harness.runs.tracking import finish_tracking, make_wandb_logger
    from harness.train.callbacks import ThroughputMeter, ValidationHistory, stop_reason
    from harness.train.checkpoints import best_score_in, load_checkpoint
    from harness.train.module import TranslationModule
    from harness.train.trainer import make_trainer

    # Everything that can fail on bad input happens before the run directory is created.
    data = prepare(cfg)
    validation = _validation(cfg, data)
    guide = make_guide(cfg, data) if cfg.train.guided_alignment.weight > 0 else None
    spawned = cfg.train.devices > 1 and cfg.train.strategy == "ddp_spawn"  # ranks train in child processes
    if spawned:
        # the default file-descriptor sharing fails for spawned ranks in containers with a small /dev/shm
        # ("unable to resize file ... Invalid argument")
        torch.multiprocessing.set_sharing_strategy("file_system")
    run = RunDir(output, overwrite, resume)
    work = run.open()
    try:
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if cfg.train.malloc_mmap_threshold:
            set_malloc_mmap_threshold(cfg.train.malloc_mmap_threshold)
        if cfg.train.malloc_keep_freed:
            keep_freed_memory()
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        atomic_write_text(work / CONFIG_FILE, dump_yaml(config_document(cfg)))
        module = TranslationModule.build(
            cfg, data.src_vocab.itos, data.tgt_vocab.itos, validation=validation, guide=guide
        )
        dm = TranslationDataModule(cfg, data)
        ckpt_dir, last = checkpoint_path(work).parent, checkpoint_path(work, "last")
        ckpt_path = str(last) if resume and last.is_file() else None  # what training continues from
        monitor = cfg.train.early_stopping_metric  # best.ckpt = the best validation by the stopping rule's metric
        loggers = [CSVLogger(work, name="logs", version="")]
        wandb_logger = make_wandb_logger(cfg, work, data, module.params, trial_info, resume=ckpt_path is not None)
        if wandb_logger is not None:
            loggers.append(wandb_logger)
        training = make_trainer(cfg, work, ckpt_dir, loggers, callbacks, progress, spawned)
        trainer, meter, history, rule = training.trainer, training.meter, training.history, training.rule
        csv_log = work / LOG_FILE
        earlier_log: list[dict] = []
        if ckpt_path:
            state = load_checkpoint(last)  # refuses a truncated or code-carrying file
            earlier_log = _rows_before_resume(work, state["global_step"])  # Lightning's CSVLogger deletes metrics.csv
            meter.fit_offset = _fit_seconds_before(state)
        t0 = time.perf_counter()
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
        except FloatingPointError as e:
            kept = (
                f"the last good checkpoint is kept in {last}" if last.is_file() else "no checkpoint was saved before it"
            )
            raise HarnessError(f"training diverged: {e}; {kept} (run directory {work})") from None
        except SystemExit:
            # Lightning turns Ctrl-C into sys.exit(1) after SignalCheckpoint saved last.ckpt (and leaves SIGINT
            # ignored): report it as the interruption it is, so the CLI prints how to resume
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            if earlier_log:
                _prepend_csv_rows(csv_log, earlier_log, loggers[0])
                (work / LOG_BEFORE_RESUME).unlink(missing_ok=True)
        train_time = meter.fit_offset + (time.perf_counter() - t0)  # every stretch of a resumed run
        if trainer.interrupted:
            raise KeyboardInterrupt
        if trainer.global_rank != 0:
            return TrainResult(work, {})
        if spawned:  # rank 0 wrote the final state (FinalCheckpoint); this process has the weights only
            final_state = load_checkpoint(last)
            steps, epochs = int(final_state["global_step"]), int(final_state["epoch"])
            ranks = final_state.get("callbacks", {})
            rank0 = ranks.get(ThroughputMeter.__qualname__, {})
            history.load_state_dict(ranks.get(ValidationHistory.__qualname__, {}))
            best_score = best_score_in(checkpoint_path(work, "best"))
            if rule is not None:
                rule.load_state_dict(ranks.get(rule.state_key, rule.state_dict()))
        else:
            trainer.save_checkpoint(last, weights_only=False)  # the full state: --resume continues from it
            steps, epochs, rank0 = int(trainer.global_step), int(trainer.current_epoch), {}
            best_score = float(training.best.best_model_score) if training.best.best_model_score is not None else None
        reason = stop_reason(trainer, rule, steps)
        # the final weights may not have been validated (max_steps not a multiple of val_every)
        if steps % training.val_every != 0 or best_score is None:
            # spawned: this process's CSVLogger starts a fresh file; keep the ranks' training log
            kept = _csv_rows(csv_log, before_step=steps + 1) if spawned else []
            final = trainer.validate(module, datamodule=dm, verbose=False)[0][monitor]
            if spawned:
                _prepend_csv_rows(csv_log, kept, loggers[0], at=(steps, epochs))
            better = best_score is None or (final > best_score if MODE[monitor] == "max" else final < best_score)
            if better:
                atomic_write_bytes(checkpoint_path(work, "best"), last.read_bytes())  # last.ckpt: the final state
                best_score = float(final)  # the checkpoint callback never sees this last validation
        best = load_module(work, "best")
        device = next(module.parameters()).device
        best.to(device)
        evaluation = evaluate_split(best, data, data.corpus.test_split, cfg, progress=progress)
        write_evaluation(work, data, data.corpus.test_split, evaluation)
        metrics = evaluation.metrics
        metrics.update(
            {
                keys.VAL_PPL: float(trainer.callback_metrics.get(keys.VAL_PPL, float("nan"))),
                **convergence.summary(history.history, monitor, reason),
                keys.PARAMS: module.params,
                keys.TRAIN_SPEED: (
                    rank0["tokens"] / rank0["seconds"] if rank0.get("seconds") else meter.tokens_per_sec
                ),
                keys.TRAIN_TIME: train_time,
                keys.STEPS: steps,
                keys.EPOCHS: epochs,
                keys.PEAK_RSS: max(meter.peak_rss_mb, rank0.get("peak_rss_mb", 0.0)),
                keys.HARDWARE: hardware(),
                keys.SEED: cfg.seed,
                keys.ARCH: cfg.model.arch,
                keys.SCORE: cfg.model.score,
                keys.DATA: cfg.data.name,
                keys.TRAIN_PAIRS: len(data.splits["train"].src_ids),
                keys.FILTERED_TRAIN_PAIRS: data.filtered,
                keys.DROPPED_EMPTY_PAIRS: data.corpus.dropped_empty,
            }
        )
        write_json(work / METRICS_FILE, metrics)
        finish_tracking(wandb_logger, metrics, data, work)
        final_dir = run.finish()
        return TrainResult(final_dir, metrics)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise HarnessError(
            f"{e.filename or work}: {e.strerror}; the previous files are intact and the run is kept "
            f"in {work} (free some space, then rerun with --resume)"
        ) from None
    finally:
        run.release()


def evaluate(
    run_dir: str | Path,
    split: str | None = None,
    beam: int | None = None,
    forced: bool | None = None,
    progress: bool = True,
    n_best: int | None = None,
) -> dict:
    """`harness evaluate`: reload the best checkpoint, decode a split and update metrics.json (the test split's
    keys, or splits.<name> for another split); returns the split's metrics."""
    from harness.data.datamodule import prepare
    from harness.decode.evaluate import evaluate_split

    run_dir = Path(run_dir)
    module = load_module(run_dir, "best")
    cfg = module.cfg
    if n_best is not None:  # n-best lists (RUN_DIR/<split>.nbest) need beam search with at least n beams
        cfg = replace(cfg, {"decode.n_best": n_best})
        beam = max(beam or cfg.decode.beam, n_best)
    data = prepare(cfg, vocabs=(module.src_vocab.itos, module.tgt_vocab.itos))
    split = split or data.corpus.test_split
    if split not in data.splits:
        raise HarnessError(f"--split {split}: not a split of data set {cfg.data.name} (have {', '.join(data.splits)})")
    metrics_path = run_dir / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    evaluation = evaluate_split(module, data, split, cfg, beam, progress, forced)
    write_evaluation(run_dir, data, split, evaluation)
    new = evaluation.metrics
    if split == data.corpus.test_split:
        metrics.update(new)
    else:
        metrics.setdefault(keys.SPLITS, {})[split] = new
    write_json(metrics_path, metrics)
    return new

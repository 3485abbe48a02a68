"""`harness train` / `evaluate` / `translate` as Python functions: the one run-directory layout.

RUN_DIR/
  config.yaml          resolved config + seed, package versions, git commit
  checkpoints/best.ckpt, last.ckpt
  test.hyp             detokenized translations of the test split, one per line
  metrics.json         flat metrics (README documents every key)
  attention/test.npz   attention per test sentence (+ test.forced.npz: forced decoding of the references)
  logs/                Lightning CSV metrics; wandb/ the W&B offline run

While training, everything is written to RUN_DIR.partial/ (with a lock file and an INCOMPLETE marker); it is
renamed to RUN_DIR only when the run has finished, so a crash never leaves a RUN_DIR that looks finished.
`--resume` continues from RUN_DIR.partial/checkpoints/last.ckpt.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from harness.config import ExperimentConfig, dump_yaml, read_yaml, replace, to_dict
from harness.errors import HarnessError
from harness.experiment import from_dict
from harness.io import atomic_write_bytes, atomic_write_text, write_json
from harness.paths import PROJECT_ROOT

log = logging.getLogger(__name__)

PACKAGES = ["torch", "lightning", "sacrebleu", "sentencepiece", "optuna", "wandb", "numpy", "attention-harness"]


def versions() -> dict[str, str]:
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
    return {**to_dict(cfg), "_meta": {"seed": cfg.seed, "versions": versions(), "git_commit": git_commit()}}


def load_run_config(run_dir: Path) -> ExperimentConfig:
    doc = read_yaml(run_dir / "config.yaml")
    doc.pop("_meta", None)
    return from_dict(doc, f"config {run_dir / 'config.yaml'}")


# ------------------------------------------------------------------------------------------ run directory
class RunDir:
    """The partial → final protocol and the lock that stops two processes training into one directory."""

    def __init__(self, output: str | Path, overwrite: bool = False, resume: bool = False):
        self.final = Path(output)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.overwrite, self.resume = overwrite, resume
        self._lock = None

    def open(self) -> Path:
        final_busy = self.final.exists() and any(self.final.iterdir()) if self.final.exists() else False
        if self.final.exists() and not self.final.is_dir():
            raise HarnessError(f"output {self.final}: exists and is not a directory")
        if self.resume:
            if not self.partial.exists() and final_busy:
                os.replace(self.final, self.partial)  # continue a finished run (e.g. with more steps)
        elif final_busy and not self.overwrite:
            raise HarnessError(
                f"output {self.final}: directory is not empty (use --overwrite, or --resume to continue)"
            )
        self.partial.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.partial / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise HarnessError(
                f"output {self.final}: another process is training into it (lock {self.partial / '.lock'})"
            ) from None
        if not self.resume:
            for child in self.partial.iterdir():
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        (self.partial / "INCOMPLETE").write_text("this run has not finished; rerun with --resume to continue\n")
        return self.partial

    def finish(self) -> Path:
        (self.partial / "INCOMPLETE").unlink(missing_ok=True)
        if self.final.exists():
            shutil.rmtree(self.final)
        self.release()
        (self.partial / ".lock").unlink(missing_ok=True)
        os.replace(self.partial, self.final)
        return self.final

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


# ------------------------------------------------------------------------------------------ checkpoints
def _best_score_in(path: Path) -> float | None:
    """The best validation BLEU recorded in best.ckpt's ModelCheckpoint state (None without one)."""
    if not path.is_file():
        return None
    for key, state in load_checkpoint(path).get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            return float(state["best_model_score"])
    return None


def load_checkpoint(path: Path) -> dict:
    """Checkpoints are plain data: torch.load(weights_only=True) refuses anything that would execute code."""
    if not path.is_file():
        raise HarnessError(f"checkpoint {path}: not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, foreign pickle, ...
        text = str(e)
        called = re.search(r"GLOBAL (\S+)", text) or re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if called or "Unsupported global" in text:
            what = f" ({called[1]})" if called else ""
            raise HarnessError(
                f"checkpoint {path}: refused, it contains objects other than plain data{what}, "
                "a pickle that could run code; expected a harness checkpoint"
            ) from None
        # torch's weights-only message wraps the cause in advice lines: keep the cause
        lines = [
            x.strip()
            for x in text.splitlines()
            if x.strip()
            and not x.startswith(("Weights only load failed", "Please file an issue", "Check the documentation"))
        ]
        msg = (lines[0] if lines else type(e).__name__).removeprefix("WeightsUnpickler error:").strip()
        raise HarnessError(f"checkpoint {path}: cannot be read ({msg[:160]}); expected a harness checkpoint") from None
    if not isinstance(ckpt, dict) or "harness" not in ckpt or "state_dict" not in ckpt:
        raise HarnessError(f"checkpoint {path}: not a harness checkpoint (no 'harness' config entry)")
    return ckpt


def _check_same_model(ckpt: dict, run_dir: Path, ckpt_path: Path) -> None:
    """A checkpoint copied in from another run (another architecture, score, size) is refused: its model config
    must be the one the run directory's config.yaml records."""
    cfg_path = run_dir / "config.yaml"
    theirs = (ckpt["harness"].get("config") or {}).get("model") if isinstance(ckpt["harness"], dict) else None
    if not cfg_path.is_file() or not isinstance(theirs, dict):
        return
    ours = read_yaml(cfg_path).get("model") or {}
    for key, value in ours.items():
        if theirs.get(key) != value:
            raise HarnessError(
                f"checkpoint {ckpt_path}: was trained with model.{key}={theirs.get(key)!r} but "
                f"{cfg_path} has model.{key}={value!r} (a checkpoint from another run?)"
            )


def load_module(run_dir: Path, which: str = "best"):
    from harness.train.module import TranslationModule

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"run directory {run_dir}: not found")
    ckpt_path = run_dir / "checkpoints" / f"{which}.ckpt"
    ckpt = load_checkpoint(ckpt_path)
    _check_same_model(ckpt, run_dir, ckpt_path)
    try:
        return TranslationModule.from_checkpoint_dict(ckpt)
    except RuntimeError as e:
        raise HarnessError(
            f"checkpoint {ckpt_path}: weights do not match its config ({str(e).splitlines()[0][:160]})"
        ) from None


# ------------------------------------------------------------------------------------------ train
def _csv_rows(path: Path, before_step: int) -> list[dict]:
    """Rows of a Lightning metrics.csv logged before `before_step` (what a resumed run keeps of the log)."""
    import csv

    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) < before_step]


def _prepend_csv_rows(path: Path, rows: list[dict], csv_logger, at: tuple[int, int] | None = None) -> None:
    """logs/metrics.csv of a resumed run = the rows before the resume + the rows the resumed run logged.
    at=(step, epoch): the newer rows were logged by a launcher process whose loop counters are 0 (the final
    validation after a ddp_spawn fit): give them the real step and epoch."""
    import csv
    import io

    newer: list[dict] = []
    if path.is_file():
        with open(path, newline="") as f:
            newer = list(csv.DictReader(f))
    if at is not None:
        for r in newer:
            r["step"], r["epoch"] = str(at[0]), str(at[1])
    writer = csv_logger.experiment  # a writer Lightning creates now deletes metrics.csv: let it, before we write
    # sorted like Lightning's writer, which keeps appending (e.g. the final validation) with these keys
    fields = sorted({k for r in rows + newer for k in r if k is not None})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows + newer)
    atomic_write_text(path, buf.getvalue())
    writer.metrics_keys = fields


def _validation(cfg: ExperimentConfig, data):
    """What the module scores at every validation: BLEU against the val references, and AER on the data set's
    gold dev sentences where it has them (Corpus.align_dev)."""
    from harness.decode.evaluate import split_aer
    from harness.train.module import Validation

    dev = data.splits.get(data.corpus.align_dev) if data.corpus.align_dev else None
    tokenizers = (data.src_tok, data.tgt_tok)
    aer = (lambda model: split_aer(model, dev, cfg, tokenizers)) if dev is not None and dev.raw.gold else None
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
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from harness.train.callbacks import (
        DistributedShutdown,
        FinalCheckpoint,
        ResumeState,
        SignalCheckpoint,
        StoppingRule,
        ThroughputMeter,
        ValidationHistory,
        stop_reason,
    )
    from harness.data.datamodule import TranslationDataModule, prepare
    from harness.data.guidance import make_guide
    from harness.decode.evaluate import evaluate_split
    from harness.train.module import TranslationModule
    from harness.metrics import convergence
    from harness.metrics.keys import MODE
    from harness.runs.tracking import finish_tracking, make_wandb_logger

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
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        atomic_write_text(work / "config.yaml", dump_yaml(config_document(cfg)))
        module = TranslationModule.build(
            cfg, data.src_vocab.itos, data.tgt_vocab.itos, validation=validation, guide=guide
        )
        dm = TranslationDataModule(cfg, data)
        ckpt_dir = work / "checkpoints"
        last = ckpt_dir / "last.ckpt"
        ckpt_path = str(last) if resume and last.is_file() else None  # what training continues from
        monitor = cfg.train.early_stopping_metric  # best.ckpt = the best validation by the stopping rule's metric
        best_cb = ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor=monitor,
            mode=MODE[monitor],
            save_top_k=1,
            save_last=True,
            enable_version_counter=False,
        )
        meter, history = ThroughputMeter(), ValidationHistory()
        cbs = [best_cb, meter, history, SignalCheckpoint(last), ResumeState()]
        if spawned:
            cbs.append(FinalCheckpoint(last))
        if cfg.train.devices > 1 or cfg.train.strategy.startswith("ddp"):
            cbs.append(DistributedShutdown())
        cbs += list(callbacks or [])
        rule = None
        if cfg.train.early_stopping:
            rule = StoppingRule(monitor, cfg.train.early_stopping, cfg.train.early_stopping_min_delta)
            cbs.append(rule)
        loggers = [CSVLogger(work, name="logs", version="")]
        wandb_logger = make_wandb_logger(cfg, work, data, module.params, trial_info, resume=ckpt_path is not None)
        if wandb_logger is not None:
            loggers.append(wandb_logger)
        t = cfg.train
        val_every = t.val_every if t.max_steps <= 0 else min(t.val_every, t.max_steps)
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
        csv_log = work / "logs" / "metrics.csv"
        earlier_log: list[dict] = []
        if ckpt_path:
            resumed_step = load_checkpoint(last)["global_step"]  # refuses a truncated or code-carrying file
            earlier_log = _csv_rows(csv_log, before_step=resumed_step)  # Lightning's CSVLogger deletes the file
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
        train_time = time.perf_counter() - t0
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
            best_score = _best_score_in(ckpt_dir / "best.ckpt")
            if rule is not None:
                rule.load_state_dict(ranks.get(rule.state_key, rule.state_dict()))
        else:
            trainer.save_checkpoint(last, weights_only=False)  # the full state: --resume continues from it
            steps, epochs, rank0 = int(trainer.global_step), int(trainer.current_epoch), {}
            best_score = float(best_cb.best_model_score) if best_cb.best_model_score is not None else None
        reason = stop_reason(trainer, rule, steps)
        # the final weights may not have been validated (max_steps not a multiple of val_every)
        if steps % val_every != 0 or best_score is None:
            # spawned: this process's CSVLogger starts a fresh file; keep the ranks' training log
            kept = _csv_rows(csv_log, before_step=steps + 1) if spawned else []
            final = trainer.validate(module, datamodule=dm, verbose=False)[0][monitor]
            if spawned:
                _prepend_csv_rows(csv_log, kept, loggers[0], at=(steps, epochs))
            better = best_score is None or (final > best_score if MODE[monitor] == "max" else final < best_score)
            if better:
                atomic_write_bytes(ckpt_dir / "best.ckpt", last.read_bytes())  # last.ckpt holds the final state
                best_score = float(final)  # the checkpoint callback never sees this last validation
        best = load_module(work, "best")
        device = next(module.parameters()).device
        best.to(device)
        metrics = evaluate_split(best, data, data.corpus.test_split, cfg, work, progress=progress)
        metrics.update(
            {
                "val_ppl": float(trainer.callback_metrics.get("val_ppl", float("nan"))),
                **convergence.summary(history.history, monitor, reason),
                "params": module.params,
                "train_tokens_per_sec": (
                    rank0["tokens"] / rank0["seconds"] if rank0.get("seconds") else meter.tokens_per_sec
                ),
                "train_time_s": train_time,
                "steps": steps,
                "epochs": epochs,
                "peak_rss_mb": max(meter.peak_rss_mb, rank0.get("peak_rss_mb", 0.0)),
                "hardware": hardware(),
                "seed": cfg.seed,
                "arch": cfg.model.arch,
                "score": cfg.model.score,
                "data": cfg.data.name,
                "train_pairs": len(data.splits["train"].src_ids),
                "filtered_train_pairs": data.filtered,
                "dropped_empty_pairs": data.corpus.dropped_empty,
            }
        )
        write_json(work / "metrics.json", metrics)
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
    metrics_path = run_dir / "metrics.json"
    import json

    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    new = evaluate_split(module, data, split, cfg, run_dir, beam, progress, forced)
    if split == data.corpus.test_split:
        metrics.update(new)
    else:
        metrics.setdefault("splits", {})[split] = new
    write_json(metrics_path, metrics)
    return new

"""The objective a sweep worker optimises: suggest a trial's values, admit it (exactly the trial budget, no grid
point twice, whatever the other workers do), train it with harness.runs.run.train into
REPORTS/<study>/trials/<number>/ (a retried trial continues the failed one's checkpoint), store its metrics, run
directory, flattened config and seed as trial user attrs, and return the objective value(s)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import flatten, to_dict
from harness.errors import HarnessError
from harness.experiment import load_config
from harness.metrics import keys
from harness.runs.layout import checkpoint_path, is_locked, partial_path
from harness.storage import is_rdb, quiet_optuna
from harness.study.spec import SweepSpec
from harness.study.study import EXTENDS, grid_point, is_extension, progress

POLL_S = 0.5  # seconds between a waiting worker's looks at the storage


class NotRun(Exception):
    """A trial a worker created but must not run (budget reached by other workers, duplicate grid point)."""


class TrialFailed(Exception):
    """A trial that cannot run (invalid config, training failed): FAIL with fail_reason; worker goes on."""


@dataclass
class Context:
    """What a worker process knows: the spec and study it serves, where trials write, its number (0 = the
    coordinator's own process), and how it polls the storage. Plain data: submitit pickles it for SLURM jobs."""

    spec_path: str
    cli_overrides: list[str]
    n_trials: int | None
    study: str
    storage: str
    reports: str  # absolute folder that holds <study>/
    quiet: bool = False
    heartbeat: float = 10.0
    gpus_per_trial: int = 1
    worker: int = 0
    poll: float = POLL_S
    max_consecutive_failures: int = 3


def _at_end(trainer, step: int) -> bool:
    """The validation of the final weights (max_steps reached, or the last batch of the last epoch)."""
    if 0 < trainer.max_steps <= step:
        return True
    epochs = trainer.max_epochs
    return epochs is not None and epochs > 0 and trainer.current_epoch + 1 >= epochs and trainer.is_last_batch


def pruning_callback(trial):
    from optuna_integration import PyTorchLightningPruningCallback

    class StepPruningCallback(PyTorchLightningPruningCallback):
        """Reports val_bleu at the global step (validation runs every train.val_every steps, often several
        times per epoch; the stock callback reports at the epoch and would drop those values). The validation of
        the final weights (train.max_steps, or the last epoch's last batch) is reported but never pruned: the
        trial has already spent its whole budget, and pruning it would only hide a finished result from the
        sampler (and, when the pruner's median sits above most trials, keep the study from ever reaching
        n_trials COMPLETE)."""

        def on_validation_end(self, trainer, pl_module):
            if self.is_ddp_backend or trainer.sanity_checking:
                return super().on_validation_end(trainer, pl_module)
            score = trainer.callback_metrics.get(self.monitor)
            if score is None:
                return
            step = int(trainer.global_step)
            self._trial.report(float(score), step=step)
            if _at_end(trainer, step):
                return
            if self._trial.should_prune():
                import optuna

                raise optuna.TrialPruned(f"pruned at step {step} ({self.monitor} {float(score):.2f})")

    return StepPruningCallback(trial, monitor=keys.VAL_BLEU)


class CtrlC:
    """Ctrl-C in a sweep worker: remember it, then raise KeyboardInterrupt as Python's own handler does.
    Python drops ("Exception ignored in ...") an exception raised while it runs a garbage-collection or weakref
    callback (seen inside SQLAlchemy), so the worker also checks the flag at every trial boundary: a Ctrl-C
    can delay the stop to the end of the running trial, never cancel it. (During training the run's own
    handler (harness.train.callbacks.ResumeState) takes over and stops after the current step.)"""

    def __init__(self) -> None:
        self.pressed = False
        self._previous = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handler(self, signum, frame) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt


def stop_when_pressed(ctrl_c: CtrlC):
    """A Ctrl-C whose KeyboardInterrupt Python dropped (raised inside a __del__, seen in the regex module while
    the data are tokenized) left only CtrlC's flag: the trial's training stops at its next step instead of
    running to the end. (Once training runs, harness.train.callbacks.ResumeState handles SIGINT itself.)"""
    import lightning.pytorch as pl

    class StopWhenPressed(pl.Callback):
        def _check(self, *args) -> None:
            if ctrl_c.pressed:
                raise KeyboardInterrupt

        on_train_start = on_train_batch_end = on_validation_batch_end = _check

    return StopWhenPressed()


class Objective:
    """The objective one worker runs: suggest, admit, train, store, return the metric value(s)."""

    def __init__(self, spec: SweepSpec, ctx: Context, study, ctrl_c: CtrlC | None = None):
        self.spec, self.ctx, self.study, self.ctrl_c = spec, ctx, study, ctrl_c

    # -- params
    def suggest(self, trial) -> dict[str, Any]:
        spec = self.spec
        if spec.sampler == "grid":
            return {name: trial.suggest_categorical(name, values) for name, values in spec.grid_space.items()}
        out = {}
        for name, p in spec.space.items():
            if p.type == "categorical":
                out[name] = trial.suggest_categorical(name, p.choices)
            elif p.type == "int":
                out[name] = trial.suggest_int(name, p.low, p.high, step=p.step or 1, log=p.log)
            else:
                out[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
        return out

    # -- admission: exact budget and no duplicate grid point, whatever the other workers do
    def admit(self, trial, params: dict) -> None:
        import optuna
        from optuna.trial import TrialState

        spec, me = self.spec, trial.number
        if is_extension(trial):  # it replaces a finished trial (no budget of its own); once per finished trial
            of = trial.user_attrs[EXTENDS]
            for t in self.study.get_trials(deepcopy=False):
                if t.number != me and t.user_attrs.get(EXTENDS) == of:
                    if t.state == TrialState.COMPLETE or (t.state == TrialState.RUNNING and t.number < me):
                        raise NotRun(f"trial {of} is already continued by trial {t.number}")
            trial.set_user_attr("admitted", True)
            return
        mine = tuple(params[n] for n in spec.grid_space) if spec.sampler == "grid" else None
        while True:
            trials = self.study.get_trials(deepcopy=False)
            if mine is not None:
                for t in trials:
                    if t.number == me or grid_point(spec, t) != mine:
                        continue
                    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
                        raise NotRun(f"grid point already done by trial {t.number}")
                    if t.state == TrialState.RUNNING and (t.number < me or t.user_attrs.get("admitted")):
                        raise NotRun(f"grid point already running as trial {t.number}")
            prog = progress(spec, trials)
            if prog.finished >= spec.n_trials:
                raise NotRun(f"the study already has its {spec.n_trials} trials")
            ahead = sum(t.state == TrialState.RUNNING and t.number < me for t in trials)
            if prog.finished + ahead < spec.n_trials:
                trial.set_user_attr("admitted", True)
                return
            # the budget is taken by running trials; one may still fail or be pruned, so wait
            if is_rdb(self.study._storage):
                optuna.storages.fail_stale_trials(self.study)
            time.sleep(self.ctx.poll)

    def resume_from(self, trial, out: Path) -> bool:
        """A retried trial (its worker died: SIGKILL, pre-emption, a lost machine; or Ctrl-C) continues the
        failed trial's training from that trial's last.ckpt instead of starting at step 0: the failed trial's
        unfinished run directory (trials/<n>.partial) becomes this trial's, and training resumes from it (exactly,
        on CPU: harness.train.callbacks.ResumeState). Returns whether it does."""
        from optuna.storages import RetryFailedTrialCallback

        # the latest failed attempt: a copy that RetryFailedTrialCallback made of a dead trial inherits its user
        # attrs, so the resume_from it carries names the attempt before (whose partial the dead trial took over),
        # and its retried_trial_number is the first of a chain of retries; retry_history ends with the dead one
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (Optuna marks retry_history experimental; system_attrs deprecated)
            history = RetryFailedTrialCallback.retry_history(trial)
        source = history[-1] if history else trial.user_attrs.get("resume_from")
        if source is None:
            return False
        from harness.train.checkpoints import load_checkpoint

        extends = trial.user_attrs.get(EXTENDS)
        if extends is not None and int(source) == int(extends):
            return self._continue(trial, out, int(extends))
        partial = partial_path(out.parent / str(source))
        last = checkpoint_path(partial, "last")
        if not last.is_file() or is_locked(partial):
            return False

        try:
            step = int(load_checkpoint(last)["global_step"])
        except HarnessError:
            return False  # a truncated checkpoint (killed while writing it): start over
        target = partial_path(out)
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
        trial.set_user_attr("resumed_from", {"trial": int(source), "step": step})
        return True

    def _continue(self, trial, out: Path, of: int) -> bool:
        """An extension (harness.study.study.enqueue_extensions) starts as a copy of the finished trial's run
        directory, made beside it and renamed into place whole (a kill while copying leaves no half copy to
        resume from), without its W&B folder: the extension is a W&B run of its own. The finished trial's
        directory is left as it is. The copy's `extends.json` says what it continues."""
        from harness.io import atomic_write_text
        from harness.runs.layout import EXTENDS_FILE
        from harness.train.checkpoints import load_checkpoint

        finished = out.parent / str(of)
        last = checkpoint_path(finished, "last")
        step = int(load_checkpoint(last)["global_step"])  # a missing or truncated one: the trial fails, says so
        target, staging = partial_path(out), out.with_name(out.name + ".copying")
        for stale in (target, staging):
            if stale.exists():
                shutil.rmtree(stale)
        shutil.copytree(finished, staging, ignore=shutil.ignore_patterns("wandb"))
        note = {"trial": of, "step": step, **(trial.user_attrs.get("extends_budget") or {})}
        atomic_write_text(staging / EXTENDS_FILE, json.dumps(note, indent=1) + "\n")
        os.replace(staging, target)
        trial.set_user_attr("resumed_from", {"trial": of, "step": step, "extends": True})
        return True

    def __call__(self, trial):
        try:
            return self._run(trial)
        except KeyboardInterrupt:  # anywhere in the trial: imports, data, fit, test-set decoding
            trial.set_user_attr("fail_reason", "interrupted")
            raise

    def _run(self, trial):
        import optuna

        from harness.runs.run import train

        quiet_optuna()  # importing lightning resets its loggers to INFO
        spec, ctx = self.spec, self.ctx
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("admitted", False)  # a retried copy inherits the dead trial's user attrs
        params = self.suggest(trial)
        try:
            self.admit(trial, params)
        except NotRun as e:
            trial.set_user_attr("fail_reason", f"not run: {e}")
            raise
        seed = params["seed"] if spec.sampler == "grid" else int(trial.user_attrs.get("seed", spec.seeds[0]))
        trial.set_user_attr("seed", seed)
        over = spec.trial_overrides(params, seed)
        over["tracking.wandb.group"] = ctx.study
        over["tracking.wandb.job_type"] = "trial"
        if ctx.gpus_per_trial > 1 and os.environ.get("CUDA_VISIBLE_DEVICES"):
            # several GPUs per trial: DDP inside the trial (ddp_spawn, see below)
            over.update({"train.devices": ctx.gpus_per_trial, "train.strategy": "ddp_spawn"})
        try:
            cfg = load_config(spec.base, over)
        except HarnessError as e:
            trial.set_user_attr("fail_reason", str(e))
            raise TrialFailed(str(e)) from None
        if cfg.train.devices > 1 and cfg.train.strategy != "ddp_spawn":
            # Lightning's ddp launcher re-runs this very command line in every other rank (it would start
            # more sweeps); ddp_spawn starts the ranks from this process, as Optuna's DDP example does
            cfg = load_config(spec.base, {**over, "train.strategy": "ddp_spawn"})
        trial.set_user_attr("config", flatten(to_dict(cfg)))
        callbacks = []
        if cfg.train.devices == 1:  # (ddp_spawn pickles callbacks for its ranks; these hold this process's state)
            if self.ctrl_c is not None:
                callbacks.append(stop_when_pressed(self.ctrl_c))
            if spec.pruner != "none":
                callbacks.append(pruning_callback(trial))
        out = Path(ctx.reports) / ctx.study / "trials" / str(trial.number)
        info = {"trial": trial.number, "study": ctx.study, **params, "seed": seed}
        resumed = self.resume_from(trial, out)
        try:
            result = train(
                cfg,
                output=out,
                overwrite=not resumed,
                resume=resumed,
                trial_info=info,
                callbacks=callbacks,
                progress=False,
            )
        except optuna.TrialPruned as e:
            trial.set_user_attr("fail_reason", str(e) or "pruned")
            trial.set_user_attr("run_dir", str(partial_path(out)))
            raise
        except SystemExit:
            # Lightning turns Ctrl-C during fit into sys.exit(1); make it an interrupt again so that Optuna
            # marks the trial FAIL (the rerun re-queues it) and the sweep stops with status 130
            trial.set_user_attr("fail_reason", "interrupted")
            raise KeyboardInterrupt from None
        except HarnessError as e:
            trial.set_user_attr("fail_reason", str(e))
            if "diverged" in str(e):
                raise optuna.TrialPruned(str(e)) from None
            raise TrialFailed(str(e)) from None
        metrics = result.metrics
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("run_dir", str(result.run_dir))
        values = []
        for o in spec.objectives:
            v = metrics.get(o.metric)
            if v is None or not isinstance(v, int | float) or math.isnan(v) or math.isinf(v):
                reason = f"objective {o.metric} is {v!r} for this run"
                trial.set_user_attr("fail_reason", reason)
                raise optuna.TrialPruned(reason)
            values.append(float(v))
        if spec.sampler != "grid" and len(spec.seeds) > 1 and "repeat_of" not in trial.user_attrs:
            # a sampled configuration is repeated with the other seeds (queued trials run before new samples)
            for s in spec.seeds[1:]:
                self.study.enqueue_trial(trial.params, user_attrs={"seed": s, "repeat_of": trial.number})
        return values[0] if len(values) == 1 else tuple(values)

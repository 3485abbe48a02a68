"""Lightning callbacks of the harness: throughput/memory meter, the Ctrl-C checkpoint, exact resume state, the
validation history and the stopping rule."""

from __future__ import annotations

import resource
import signal
import sys
import threading
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from harness.data.tokenize import PAD_ID
from harness.metrics.keys import MODE, VALIDATION


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


class ThroughputMeter(pl.Callback):
    """Target tokens per second over training batches only (validation excluded); the first
    `warmup` batches are not counted (allocator and thread-pool warm-up)."""

    def __init__(self, warmup: int = 5):
        self.warmup = warmup
        self.tokens = 0
        self.seconds = 0.0
        self.batches = 0
        self._t = 0.0
        # wall seconds of fit() over every stretch of a resumed run: earlier stretches (from the checkpoint) + this
        self.fit_offset = 0.0
        self._fit_t0: float | None = None

    def on_fit_start(self, trainer, pl_module):
        self._fit_t0 = time.perf_counter()

    @property
    def fit_seconds(self) -> float:
        return self.fit_offset + (time.perf_counter() - self._fit_t0 if self._fit_t0 is not None else 0.0)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1
        if self.batches <= self.warmup:
            return
        self.seconds += time.perf_counter() - self._t
        self.tokens += int((batch.tgt_out != PAD_ID).sum())

    @property
    def tokens_per_sec(self) -> float | None:
        return self.tokens / self.seconds if self.seconds > 0 else None

    def state_dict(self) -> dict:
        # goes into checkpoints: with ddp_spawn the process that writes metrics.json reads rank 0's figures there
        state = {"tokens": self.tokens, "seconds": self.seconds, "peak_rss_mb": peak_rss_mb()}
        return {**state, "fit_seconds": self.fit_seconds}

    def load_state_dict(self, state: dict) -> None:
        # a resumed run's training time counts the stretches before the resume (tokens/s stays this stretch's)
        if "fit_seconds" in state:
            self.fit_offset = float(state["fit_seconds"])

    @property
    def peak_rss_mb(self) -> float:
        return peak_rss_mb()


class RunCheckpoint(ModelCheckpoint):
    """best.ckpt / last.ckpt, whose state follows the run directory when it moves: a study hands a killed trial's
    directory to the trial that resumes it (trials/0.partial -> trials/1.partial). Lightning restores the best
    score and paths only when the saved dirpath equals today's; otherwise the first validation after the move
    would replace best.ckpt with whatever it scored, better or not."""

    def _generate_state_key(self, **kwargs) -> str:
        return f"ModelCheckpoint{kwargs!r}"  # Lightning's own key: checkpoints saved before this class resume

    def load_state_dict(self, state_dict: dict) -> None:
        old, new = state_dict.get("dirpath"), self.dirpath
        if old and new and old != new:

            def moved(path):
                return new + path[len(old) :] if isinstance(path, str) and path.startswith(old) else path

            state_dict = {
                **state_dict,
                "dirpath": new,
                **{
                    k: moved(state_dict[k])
                    for k in ("best_model_path", "kth_best_model_path", "last_model_path")
                    if k in state_dict
                },
                "best_k_models": {moved(k): v for k, v in state_dict.get("best_k_models", {}).items()},
            }
        super().load_state_dict(state_dict)


class SignalCheckpoint(pl.Callback):
    """On Ctrl-C (KeyboardInterrupt) or SIGTERM (a cluster's pre-emption notice, Lightning's SIGTERMException)
    save last.ckpt before Lightning shuts down, so --resume continues."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_exception(self, trainer, pl_module, exception):
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, KeyboardInterrupt | SIGTERMException) and trainer.global_step > 0:
            trainer.save_checkpoint(self.path, weights_only=False)


class ResumeState(pl.Callback):
    """What Lightning does not put in a checkpoint, so that a resumed run equals an uninterrupted one:
    - the random-number state: torch's global generator (dropout) and the teacher-forcing generator;
    - the training data position in trained batches (the loader is resumable: harness/data/datamodule.py);
    - Ctrl-C at a step boundary: the first Ctrl-C during training stops after the current optimizer step
      (not after an epoch's last batch or before a due validation), so SignalCheckpoint saves a last.ckpt
      that resumes exactly; a second Ctrl-C interrupts at once (that one resumes, but not bit-exactly).
    harness/runs/run.py adds it to every training; tests/integration/test_faults.py checks the exactness."""

    def __init__(self):
        self._module = None
        self._restored: dict | None = None
        self._stop_requested = False
        self._previous_handler = None

    def state_dict(self) -> dict:
        state = {"torch": torch.get_rng_state()}
        if self._module is not None:
            state["teacher_forcing"] = self._module._tf_generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        self._restored = state

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # the data position is the number of batches of this epoch whose step was done (processed):
        # a batch fetched but not trained on (interrupted inside a step) is fetched again on resume
        loops = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
        for state in loops.get("combined_loader") or []:
            if "position" in state:
                state["position"] = trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._module = pl_module

    def on_train_start(self, trainer, pl_module) -> None:
        # restore here (after Lightning's own restore and data set-up), right before the first resumed batch
        if self._restored is not None:
            torch.set_rng_state(self._restored["torch"])
            if "teacher_forcing" in self._restored:
                pl_module._tf_generator.set_state(self._restored["teacher_forcing"])
            self._restored = None
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        print("stopping after this training step (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # stop right after an optimizer step, where Lightning knows how to resume ("restarted on train
        # batch end"); not when a validation is due after this batch (Lightning would skip it on resume)
        if not self._stop_requested:
            return
        progress = trainer.fit_loop.epoch_loop.batch_progress
        every = trainer.val_check_batch
        validation_due = isinstance(every, int) and progress.total.ready % every == 0
        last_of_epoch = progress.current.ready >= trainer.num_training_batches  # resumes one batch off
        if not validation_due and not last_of_epoch:
            raise KeyboardInterrupt  # SignalCheckpoint saves last.ckpt, Lightning stops

    def _restore_handler(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore_handler()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore_handler()


class FinalCheckpoint(pl.Callback):
    """ddp_spawn: the ranks train in spawned processes and the launching process gets the final weights back,
    but not the loop state (its global_step stays 0). Rank 0 therefore writes last.ckpt with the full final
    state (step, epoch, optimizer, ThroughputMeter figures) where training ends; the launcher reads it."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_end(self, trainer, pl_module) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # every rank calls it; rank 0 writes


class DistributedShutdown(pl.Callback):
    """Orderly end of a DDP run: all ranks meet, then destroy the process group before the worker processes exit.
    Without it a gloo rank could still be tearing down while another had exited, and abort ("terminate called
    without an active exception", seen in about one CPU ddp_spawn run in three). Runs after Lightning's own
    strategy teardown (Trainer._teardown precedes the teardown hooks)."""

    def teardown(self, trainer, pl_module, stage: str) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


class ValidationHistory(pl.Callback):
    """Every validation's metrics (val_loss, val_ppl, val_bleu, val_aer where logged) by step, in the checkpoint
    too, so a resumed run knows its whole curve; metrics.json's best_step, slope and converged come from it
    (harness.metrics.convergence). A validation of the same step again (the final weights) replaces it."""

    def __init__(self):
        self.history: list[dict] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        row = {"step": int(trainer.global_step)}
        for key in VALIDATION:
            value = trainer.callback_metrics.get(key)
            if value is not None:
                row[key] = float(value)
        self.history = [h for h in self.history if h["step"] != row["step"]] + [row]

    def state_dict(self) -> dict:
        return {"history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.history = [dict(h) for h in state.get("history", [])]


class StoppingRule(EarlyStopping):
    """`train.early_stopping` validations without an improvement of `train.early_stopping_metric` by more than
    `train.early_stopping_min_delta` end training (Lightning's EarlyStopping, checked at every validation)."""

    def __init__(self, metric: str, patience: int, min_delta: float):
        super().__init__(monitor=metric, mode=MODE[metric], patience=patience, min_delta=min_delta)

    @property
    def fired(self) -> str | None:
        """'early_stopping' when patience ran out, 'non_finite_metric' when the metric became NaN/inf."""
        from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

        return {
            EarlyStoppingReason.PATIENCE_EXHAUSTED: "early_stopping",
            EarlyStoppingReason.NON_FINITE_METRIC: "non_finite_metric",
        }.get(self.stopping_reason)


def stop_reason(trainer, rule: StoppingRule | None, steps: int) -> str:
    """Why fit() returned after `steps` optimizer steps: the stopping rule, or the budget that ran out
    (harness.metrics.keys.STOP_REASONS)."""
    from lightning.pytorch.callbacks import Timer

    if rule is not None and rule.fired:
        return rule.fired
    if 0 < trainer.max_steps <= steps:
        return "max_steps"
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is not None and (timer.time_remaining() or 0.0) <= 0:
        return "max_time"
    return "max_epochs"

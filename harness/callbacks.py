"""Lightning callbacks of the harness: throughput/memory meter and the Ctrl-C checkpoint."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import lightning.pytorch as pl

from harness.data.tokenize import PAD_ID


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

    @property
    def peak_rss_mb(self) -> float:
        return peak_rss_mb()


class SignalCheckpoint(pl.Callback):
    """On Ctrl-C (KeyboardInterrupt) save last.ckpt before Lightning shuts down, so --resume continues."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_exception(self, trainer, pl_module, exception):
        if isinstance(exception, KeyboardInterrupt) and trainer.global_step > 0:
            trainer.save_checkpoint(self.path)

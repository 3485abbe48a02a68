"""`harness train` that pauses at a given optimizer step, for tests/integration/test_faults.py: the test signals the
run while it is known to be at that step, instead of after a random sleep.

    python -m tests.integration.paused_train STEP FOLDER train CONFIG ... --output RUN

When training has finished optimizer step STEP, FOLDER/paused appears and the run waits (inside the training loop,
after that step's callbacks of the harness) until FOLDER/go exists; everything else is the `harness` command.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lightning.pytorch as pl


class PauseAt(pl.Callback):
    def __init__(self, step: int, folder: Path):
        self.step, self.folder = step, folder

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            (self.folder / "paused").write_text(f"{self.step}\n")
            while not (self.folder / "go").exists():
                time.sleep(0.01)


def main() -> None:
    step, folder, argv = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    import harness.runs.run as run

    train = run.train

    def paused_train(*args, callbacks=None, **kwargs):
        return train(*args, callbacks=[*(callbacks or []), PauseAt(step, folder)], **kwargs)

    run.train = paused_train  # what `harness train` calls
    from harness.cli import entry

    sys.argv = ["harness", *argv]
    entry()


if __name__ == "__main__":
    main()

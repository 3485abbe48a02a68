"""The run directory: where `harness train` puts each file, and the attention .npz format. Every module that
reads or writes a run directory goes through the names here.

RUN_DIR/
  config.yaml          resolved config + seed, package versions, git commit (provenance.py)
  checkpoints/best.ckpt, last.ckpt
  test.hyp             detokenized translations of the test split, one per line (+ test.nbest, test.align)
  metrics.json         flat metrics (README documents every key; harness/metrics/keys.py names them)
  attention/test.npz   attention per test sentence (+ test.forced.npz: forced decoding of the references)
  logs/                Lightning CSV metrics; wandb/ the W&B offline run
  extends.json         only in a sweep trial that continued a budget-stopped trial under a raised budget:
                       {"trial": <the trial it continues>, "step": ..., "stop_reason", "budget", "was", "now"}

While training, everything is written to RUN_DIR.partial/ (with a lock file and an INCOMPLETE marker); it is
renamed to RUN_DIR only when the run has finished, so a crash never leaves a RUN_DIR that looks finished.
`--resume` continues from RUN_DIR.partial/checkpoints/last.ckpt.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.data.alignments import Alignment, write_pharaoh
from harness.errors import HarnessError
from harness.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # (the report reads run directories: importing this module loads no model code)
    from harness.data.datamodule import EncodedSplit
    from harness.decode.evaluate import Evaluation
    from harness.train.module import TranslationModule

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
CHECKPOINTS = "checkpoints"  # best.ckpt (the best validation by the stopping rule's metric), last.ckpt
LOG_FILE = Path("logs") / "metrics.csv"  # Lightning's CSVLogger
# the rows logged before a resume, kept on disk while the resumed run trains (Lightning's CSVLogger deletes
# metrics.csv as it starts; they go back into it when the run ends), so a run killed again loses none of them
LOG_BEFORE_RESUME = Path("logs") / "metrics.before-resume.csv"
ATTENTION = "attention"
PARTIAL = ".partial"  # RUN_DIR.partial/: the run while it trains
LOCK_FILE = ".lock"  # RUN_DIR.partial/.lock, held (flock) by the process training into it
INCOMPLETE = "INCOMPLETE"  # RUN_DIR.partial/INCOMPLETE: says the run has not finished
EXTENDS_FILE = "extends.json"  # a sweep trial that continues another (harness.study.study.enqueue_extensions)


def checkpoint_path(run_dir: Path, which: str = "best") -> Path:
    return Path(run_dir) / CHECKPOINTS / f"{which}.ckpt"


def attention_path(run_dir: Path, split: str = "test", forced: bool = False) -> Path:
    return Path(run_dir) / ATTENTION / f"{split}{'.forced' if forced else ''}.npz"


def hypotheses_path(run_dir: Path, split: str = "test") -> Path:
    return Path(run_dir) / f"{split}.hyp"


def partial_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + PARTIAL)


def is_locked(partial: Path) -> bool:
    """Whether another process holds the lock of an unfinished run directory (RunDir): it is still training."""
    lock = Path(partial) / LOCK_FILE
    if not lock.exists():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


# ------------------------------------------------------------------------------------------ partial -> final
class RunDir:
    """The partial → final protocol and the lock that stops two processes training into one directory."""

    def __init__(self, output: str | Path, overwrite: bool = False, resume: bool = False):
        self.final = Path(output)
        self.partial = partial_path(self.final)
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
        self._lock = open(self.partial / LOCK_FILE, "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise HarnessError(
                f"output {self.final}: another process is training into it (lock {self.partial / LOCK_FILE})"
            ) from None
        if not self.resume:
            for child in self.partial.iterdir():
                if child.name != LOCK_FILE:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        (self.partial / INCOMPLETE).write_text("this run has not finished; rerun with --resume to continue\n")
        return self.partial

    def finish(self) -> Path:
        (self.partial / INCOMPLETE).unlink(missing_ok=True)
        if self.final.exists():
            shutil.rmtree(self.final)
        self.release()
        (self.partial / LOCK_FILE).unlink(missing_ok=True)
        os.replace(self.partial, self.final)
        return self.final

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def load_module(run_dir: Path, which: str = "best") -> TranslationModule:
    """The trained module of a run directory (checkpoints/<which>.ckpt, checked against its config.yaml)."""
    from harness.train.checkpoints import load_trained

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"run directory {run_dir}: not found")
    return load_trained(checkpoint_path(run_dir, which), run_dir / CONFIG_FILE)


# ------------------------------------------------------------------------------------------ attention .npz
def save_attention(path: Path, split: EncodedSplit, tokens: list[list[str]], attention: list) -> None:
    """attention/<split>.npz, loadable with numpy alone (allow_pickle=False):
    `attn_<i>` float32 (|y|+1, |x|) per sentence i with attention; `src_<i>`, `tgt_<i>` token arrays (str);
    `count` = number of sentences. Sentences without attention (no-attention models) have no `attn_<i>`."""
    arrays: dict[str, np.ndarray] = {"count": np.array(len(tokens))}
    for i, (toks, a) in enumerate(zip(tokens, attention)):
        arrays[f"src_{i}"] = np.array(split.src_tokens[i], dtype=str)
        arrays[f"tgt_{i}"] = np.array(toks, dtype=str)
        if a is not None:
            arrays[f"attn_{i}"] = a.astype(np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_attention(run_dir: Path, split: str = "test", forced: bool = False):
    """The run's attention file as a dict-like NpzFile (numpy only), or None when absent."""
    path = attention_path(run_dir, split, forced)
    if not path.is_file():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.load(path, allow_pickle=False)


# ------------------------------------------------------------------------------------------ a split's files
def write_evaluation(out_dir: Path, data, split_name: str, evaluation: Evaluation) -> None:
    """A split's hypotheses (<split>.hyp, .nbest), word links (.align) and attention (attention/<split>.npz, and
    .forced.npz from forced decoding) in the run directory; the test split is always test.*."""
    out_dir = Path(out_dir)
    split, decoded = data.splits[split_name], evaluation.decoded
    stem = "test" if split_name == data.corpus.test_split else split_name
    atomic_write_text(hypotheses_path(out_dir, stem), "".join(t + "\n" for t in decoded.texts))
    save_attention(attention_path(out_dir, stem), split, decoded.tokens, decoded.attention)
    if decoded.nbest:  # Moses n-best format: sentence index ||| hypothesis ||| score (best first)
        lines = [f"{i} ||| {text} ||| {score:.4f}\n" for i in sorted(decoded.nbest) for text, score in decoded.nbest[i]]
        atomic_write_text(out_dir / f"{stem}.nbest", "".join(lines))
    if evaluation.links is not None:  # the attention's links (eval.align_method), Pharaoh i-j, source first
        write_pharaoh([Alignment(x, set()) for x in evaluation.links], out_dir / f"{stem}.align")
    forced = evaluation.forced_attention
    if forced:
        tokens = [split.tgt_tokens[i] for i in range(len(forced))]
        save_attention(attention_path(out_dir, stem, forced=True), split, tokens, forced)


def read_hypotheses(run_dir: Path, split: str = "test") -> list[str] | None:
    """RUN_DIR/<split>.hyp as lines, or None when absent."""
    path = hypotheses_path(run_dir, split)
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines

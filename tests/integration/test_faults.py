"""Faults during `harness train`: SIGKILL and Ctrl-C with --resume, two trainers on one directory, a diverging
loss, a full disk while writing a checkpoint or metrics.json.

What is bit-exact after a resume (CPU, same seed, `train.accelerator=cpu` so Lightning runs deterministic):
- the weights, optimizer (Adam moments), LR-scheduler and ModelCheckpoint state: Lightning restores them from
  last.ckpt;
- the data order: the training DataLoader is resumable (harness/data/datamodule.py ResumableDataLoader): the
  batch sampler's (epoch, position) goes into the checkpoint and the resumed run starts with the batch the
  uninterrupted run drew next. Without it Lightning restarts a mid-epoch checkpoint's epoch from its first
  batch ("dataloader is not resumable" warning) - and Lightning never called BucketBatchSampler.set_epoch
  either (it looks for `set_epoch` on `batch_sampler.sampler`), so every epoch repeated epoch 0's order;
- the random-number state (dropout, teacher forcing): saved by the ResumeState callback (harness/train/callbacks.py);
- Ctrl-C: the first one stops training after the current optimizer step (ResumeState), where Lightning's
  loop counters resume consistently; stopping inside a step (Lightning's default) left the counters one batch
  apart, so validation ran one batch early after the resume. A second Ctrl-C interrupts at once (that
  checkpoint resumes, but not bit-exactly).
So the final steps, val_ppl, val BLEU, test BLEU/chrF/AER and test.hyp equal those of an uninterrupted run
(the data-order and RNG fixes were each checked by reverting them: the SIGKILL test then fails).
logs/metrics.csv keeps the rows logged before the resume (Lightning's CSVLogger deletes an existing file as it
starts; harness/runs/run.py keeps them in logs/metrics.before-resume.csv and puts them back, also when the resumed
run is killed again), so every validation row equals the uninterrupted run's; after a Ctrl-C
the train_loss row of the step that was interrupted is missing (Lightning had not logged it yet).
What is not equal: wall-clock numbers (train_time_s, train_tokens_per_sec, decode speed, peak_rss_mb). The W&B
run after a resume continues the same run id (tests/integration/test_wandb.py).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.cli import main

from ..conftest import ROOT, TINY

PRESET = "experiments/bahdanau2015_synthetic.yaml"
# deterministic CPU training with dropout (so the RNG state matters) and enough steps to interrupt
RESUMABLE = [*TINY, "train.accelerator=cpu", "train.threads=1", "model.dropout=0.2"]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """train.threads sets torch's thread count for the whole process: restore it for the tests that follow."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _cmd(out: Path, *extra: str) -> list[str]:
    return ["train", PRESET, *RESUMABLE, *extra, "--output", str(out), "--quiet"]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_SILENT": "true"}
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *_cmd(out, *extra)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _start_paused(out: Path, pause: Path, stderr: Path, *extra: str, at: int | None = None) -> subprocess.Popen:
    """`harness train` in a subprocess that stops at optimizer step `at` (PAUSE_AT) until pause/go exists
    (tests/integration/paused_train.py); its stderr goes to the file `stderr`."""
    env = {**os.environ, "WANDB_SILENT": "true"}
    at = PAUSE_AT if at is None else at
    argv = [sys.executable, "-m", "tests.integration.paused_train", str(at), str(pause), *_cmd(out, *extra)]
    with open(stderr, "w") as err:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300, text: str | None = None) -> None:
    """Until `path` exists (and holds `text`, when given); fails when the process ends first or at the deadline."""
    t0 = time.monotonic()
    while not path.is_file() or (text is not None and text not in path.read_text(errors="replace")):
        if proc.poll() is not None:
            pytest.fail(f"training ended (rc {proc.returncode}) before {path} had {text or 'appeared'}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail(f"{path} did not have {text or 'appeared'} within {timeout} s")
        time.sleep(0.05)


def _step(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


EXACT = ("steps", "epochs", "val_ppl", "val_bleu_best", "bleu", "chrf", "aer", "attention_entropy")


STEPS = ["train.max_steps=60", "train.val_every=10"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run the resumed ones must equal."""
    ref = tmp_path_factory.mktemp("faults") / "reference"
    threads = torch.get_num_threads()
    assert main(_cmd(ref, *STEPS)) == 0
    torch.set_num_threads(threads)
    return ref


PAUSE_AT = 23  # optimizer steps: after the validation of step 20 (last.ckpt), before that of step 30, mid-epoch


def _interrupt_then_resume(tmp_path: Path, capsys, sig: int) -> tuple[Path, int, str, float, int]:
    """Start training in a subprocess, send `sig` while it is paused after optimizer step PAUSE_AT, then resume
    in-process. Returns (run dir, step of last.ckpt, stderr, mtime - signal time, exit status)."""
    out = tmp_path / "run"
    partial = tmp_path / "run.partial"
    last = partial / "checkpoints" / "last.ckpt"
    pause, stderr = tmp_path / "pause", tmp_path / "stderr.txt"
    pause.mkdir()
    proc = _start_paused(out, pause, stderr, *STEPS)
    try:
        _wait_for(pause / "paused", proc)  # training has finished step PAUSE_AT and waits
        signalled = time.time()
        proc.send_signal(sig)
        if sig == signal.SIGINT:  # the run's handler has seen the Ctrl-C: let it go on to the next step boundary
            _wait_for(stderr, proc, text="stopping after this training step")
            (pause / "go").touch()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr.read_text(errors="replace")
    assert partial.is_dir() and (partial / "INCOMPLETE").is_file() and not out.exists(), err[-2000:]
    step = _step(last)
    mtime = last.stat().st_mtime
    capsys.readouterr()
    assert main([*_cmd(out, *STEPS), "--resume"]) == 0, capsys.readouterr().err
    assert out.is_dir() and not partial.exists() and not (out / "INCOMPLETE").exists()
    assert not (out / ".lock").exists()
    return out, step, err, mtime - signalled, proc.returncode


def _validations(run: Path) -> list[tuple[str, str, str]]:
    with open(run / "logs" / "metrics.csv", newline="") as f:
        return [(r["step"], r["val_loss"], r["val_bleu"]) for r in csv.DictReader(f) if r.get("val_loss")]


def _assert_same_as(reference: Path, run: Path, step: int) -> None:
    a, b = _metrics(reference), _metrics(run)
    assert {k: a[k] for k in EXACT} == {k: b[k] for k in EXACT}, f"resumed from step {step}"
    assert (reference / "test.hyp").read_text() == (run / "test.hyp").read_text()
    # logs/metrics.csv keeps the rows from before the resume: every validation is there, with the same values
    assert _validations(reference) == _validations(run)


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, capsys, reference):
    run, step, _, _, status = _interrupt_then_resume(tmp_path, capsys, signal.SIGKILL)
    assert status == -signal.SIGKILL
    assert step == 20  # killed at step 23: the resume starts from the last checkpoint, the validation of step 20
    _assert_same_as(reference, run, step)


@pytest.mark.slow
def test_killed_again_after_a_resume_keeps_every_logged_row(tmp_path, capsys, reference):
    """SIGKILL, resume, SIGKILL again while the resumed run trains, resume: logs/metrics.csv still has every
    validation of the uninterrupted run. (The rows from before the first resume live only on disk in
    logs/metrics.before-resume.csv while the resumed run trains: Lightning deletes metrics.csv as it starts.)"""
    out, partial = tmp_path / "run", tmp_path / "run.partial"
    for attempt, (at, resume) in enumerate([(PAUSE_AT, ()), (PAUSE_AT + 20, ("--resume",))]):
        pause = tmp_path / f"pause{attempt}"
        pause.mkdir()
        proc = _start_paused(out, pause, tmp_path / f"stderr{attempt}.txt", *STEPS, *resume, at=at)
        try:
            _wait_for(pause / "paused", proc)
            proc.kill()
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert _step(partial / "checkpoints" / "last.ckpt") == 40  # the second kill: after the validation of step 40
    assert (partial / "logs" / "metrics.before-resume.csv").is_file()  # the rows before step 20, kept aside
    assert main([*_cmd(out, *STEPS), "--resume"]) == 0, capsys.readouterr().err
    assert not (out / "logs" / "metrics.before-resume.csv").exists()  # put back into metrics.csv
    _assert_same_as(reference, out, 40)


@pytest.mark.slow
def test_ctrl_c_saves_last_ckpt_marks_incomplete_and_resume_equals_an_uninterrupted_run(tmp_path, capsys, reference):
    run, step, err, saved_after_signal, status = _interrupt_then_resume(tmp_path, capsys, signal.SIGINT)
    assert status == 130, err[-2000:]
    assert step == PAUSE_AT + 1  # the first Ctrl-C stops after the step under way, where the resume is exact
    assert "interrupted" in err and "rerun with --resume" in err
    assert saved_after_signal >= 0  # SignalCheckpoint saved last.ckpt at the step reached
    _assert_same_as(reference, run, step)


@pytest.mark.slow
def test_second_trainer_into_the_same_output_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    partial = tmp_path / "run.partial"
    steps = ["train.max_steps=2000", "train.val_every=5"]
    proc = _start(out, *steps)
    try:
        _wait_for(partial / "checkpoints" / "last.ckpt", proc)
        before = sorted(p.name for p in (partial / "checkpoints").iterdir())
        capsys.readouterr()
        assert main(_cmd(out, *steps)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: output {out}: another process is training into it"), err
        assert len(err.strip().splitlines()) == 1
        # the first one is still training and its files are untouched
        assert proc.poll() is None and (partial / "INCOMPLETE").is_file()
        assert set(before) <= {p.name for p in (partial / "checkpoints").iterdir()}
        assert (partial / "config.yaml").is_file()
    finally:
        proc.kill()
        proc.communicate()


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    import dataclasses

    from harness.train.module import TranslationModule

    real_losses = TranslationModule.losses  # what training_step minimises

    def losses(self, batch, teacher_forcing=1.0):
        out = real_losses(self, batch, teacher_forcing)
        if self.training and self.global_step >= 13:
            out = dataclasses.replace(out, objective=out.objective * float("nan"))
        return out

    monkeypatch.setattr(TranslationModule, "losses", losses)
    out = tmp_path / "run"
    assert main(_cmd(out, "train.max_steps=40", "train.val_every=10")) == 2
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "non-finite loss" in line[0] and "at step 13" in line[0], err
    last = tmp_path / "run.partial" / "checkpoints" / "last.ckpt"
    assert str(last) in line[0] and not out.exists()
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 10
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())


def test_diverging_learning_rate_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_cmd(out, "train.lr=1e30", "train.grad_clip=0", "train.max_steps=20", "train.val_every=10")) == 2
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "training diverged: non-finite loss" in line[0] and "at step" in line[0], err
    assert not out.exists()


def _enospc_after_half(real_write):
    def write(self, data, *args, **kwargs):
        real_write(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return write


def test_disk_full_while_writing_metrics_keeps_the_previous_file(tmp_path, monkeypatch):
    from harness import io

    path = tmp_path / "metrics.json"
    io.write_json(path, {"bleu": 1.0})
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(io.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(OSError) as e:
        io.write_json(path, {"bleu": 2.0, "chrf": 3.0})
    assert e.value.errno == errno.ENOSPC
    assert json.loads(path.read_text()) == {"bleu": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_disk_full_at_the_end_of_training_is_one_line_and_keeps_the_partial_run(tmp_path, capsys, monkeypatch):
    from harness import io

    real = io.atomic_write_text

    def full(path, text):
        if Path(path).name == "metrics.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, text)

    monkeypatch.setattr("harness.runs.run.write_json", lambda p, obj: full(p, json.dumps(obj)))
    out = tmp_path / "run"
    assert main(_cmd(out, "train.max_steps=10", "train.val_every=10")) == 2
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "No space left on device" in line[0] and "metrics.json" in line[0], err
    partial = tmp_path / "run.partial"
    assert not out.exists() and (partial / "INCOMPLETE").is_file() and not (partial / "metrics.json").exists()
    assert (partial / "checkpoints" / "last.ckpt").is_file()


def test_disk_full_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    """torch.save writes half of the checkpoint, then the disk is full: the earlier last.ckpt and best.ckpt
    (step 10) stay complete and loadable, the run stays RUN.partial, the CLI prints one line."""
    real_save = torch.save
    ckpt_dir = tmp_path / "run.partial" / "checkpoints"

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("global_step", 0) >= 20:
            import io as _io

            buf = _io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    out = tmp_path / "run"
    assert main(_cmd(out, "train.max_steps=30", "train.val_every=10")) == 2
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "No space left on device" in line[0], err
    assert not out.exists()
    monkeypatch.setattr(torch, "save", real_save)
    for name in ("last.ckpt", "best.ckpt"):
        ckpt = torch.load(ckpt_dir / name, map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == 10 and "harness" in ckpt


def test_disk_full_in_the_file_write_of_a_checkpoint_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    """The same at the file level: Lightning writes checkpoints through an fsspec transaction (temp file,
    then move), so a write that fails half-way never replaces the previous last.ckpt."""
    from fsspec.implementations.local import LocalFileOpener

    real_write = LocalFileOpener.write
    state = {"armed": False}

    def write(self, data, *args, **kwargs):
        if state["armed"]:
            return _enospc_after_half(real_write)(self, data, *args, **kwargs)
        return real_write(self, data, *args, **kwargs)

    from lightning.pytorch.callbacks import Callback

    class ArmAfterFirstValidation(Callback):
        def on_validation_end(self, trainer, pl_module):
            state["armed"] = trainer.global_step >= 20

    monkeypatch.setattr(LocalFileOpener, "write", write)
    from harness.errors import HarnessError
    from harness.experiment import load_config
    from harness.runs.run import train
    from harness.train.checkpoints import load_checkpoint

    cfg = load_config(PRESET, [*RESUMABLE, "train.max_steps=30", "train.val_every=10"])
    with pytest.raises(HarnessError, match="No space left on device"):
        train(cfg, tmp_path / "run", callbacks=[ArmAfterFirstValidation()], progress=False)
    state["armed"] = False
    ckpt_dir = tmp_path / "run.partial" / "checkpoints"
    assert load_checkpoint(ckpt_dir / "last.ckpt")["global_step"] == 10
    assert load_checkpoint(ckpt_dir / "best.ckpt")["global_step"] == 10
    assert sorted(p.name for p in ckpt_dir.iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]  # no half-written leftovers


def test_batch_sampler_resumes_mid_epoch_and_reshuffles_every_epoch():
    """The two data-order fixes behind the bit-exact resume, without training."""
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    from harness.data.datamodule import BucketBatchSampler

    lengths = [1 + i % 7 for i in range(100)]
    first = BucketBatchSampler(lengths, 8, False, True, seed=5)
    it = iter(first)
    seen = [next(it) for _ in range(4)]
    state = first.state_dict()
    assert state == {"epoch": 0, "position": 4}
    rest = list(it)

    resumed = BucketBatchSampler(lengths, 8, False, True, seed=5)
    resumed.load_state_dict(state)
    resumed.set_epoch(0)  # Lightning sets the (same) epoch again after restoring
    assert list(resumed) == rest and seen + rest == first._make(0)

    # Lightning finds set_epoch through DataLoader.batch_sampler.sampler: a new epoch, a new order
    loader = DataLoader(list(range(100)), batch_sampler=BucketBatchSampler(lengths, 8, False, True, seed=5))
    epoch0 = list(loader.batch_sampler)
    _set_sampler_epoch(loader, 1)
    epoch1 = list(loader.batch_sampler)
    assert loader.batch_sampler.epoch == 1 and epoch1 != epoch0
    assert epoch1 == BucketBatchSampler(lengths, 8, False, True, seed=5)._make(1)


def test_a_resumed_run_that_ends_with_its_own_validation_keeps_the_whole_log(tmp_path, capsys):
    """A finished run continued with more steps (not a multiple of val_every) validates its final weights after
    fit: Lightning rewrites logs/metrics.csv with the new val_* columns, which must keep the training columns of
    the rows logged before the resume (it once failed: "dict contains fields not in fieldnames")."""
    out = tmp_path / "run"
    assert main(_cmd(out, "train.max_steps=20", "train.val_every=10")) == 0
    assert main([*_cmd(out, "train.max_steps=25", "train.val_every=10"), "--resume"]) == 0, capsys.readouterr().err
    with open(out / "logs" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    val_steps = [int(r["step"]) for r in rows if r.get("val_ppl")]
    # the two validations before the resume and the final weights' one (Lightning logs that one after step 25)
    assert val_steps[:2] == [9, 19] and len(val_steps) == 3 and val_steps[2] >= 24
    assert any(r.get("train_loss") for r in rows if int(r["step"]) < 20)  # training rows from before the resume
    assert json.loads((out / "metrics.json").read_text())["steps"] == 25


def test_a_resumed_run_counts_the_training_time_of_every_stretch(tmp_path):
    """train_time_s of a run continued from its checkpoint is the first stretch's time (stored in last.ckpt)
    plus the second's, not the second's alone (a study's trials resume in stretches: its cost was undercounted)."""
    from harness.runs.run import _fit_seconds_before
    from harness.train.checkpoints import load_checkpoint

    out = tmp_path / "run"
    assert main(_cmd(out, "train.max_steps=20", "train.val_every=10")) == 0
    first = json.loads((out / "metrics.json").read_text())["train_time_s"]
    stored = _fit_seconds_before(load_checkpoint(out / "checkpoints" / "last.ckpt"))
    assert 0 < stored and abs(stored - first) < 1.0
    assert main([*_cmd(out, "train.max_steps=30", "train.val_every=10"), "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["train_time_s"] > stored


def test_the_time_before_a_resume_comes_from_older_checkpoints_too():
    """Checkpoints written before the meter stored its fit time: Lightning's Timer state (train.max_time set)."""
    from harness.runs.run import _fit_seconds_before

    meter = {"tokens": 5, "seconds": 1.0, "peak_rss_mb": 1.0}
    timer = {"time_elapsed": {"train": 4405.9, "sanity_check": 0, "validate": 2.8}}
    assert _fit_seconds_before({"callbacks": {"ThroughputMeter": {**meter, "fit_seconds": 12.5}}}) == 12.5
    assert _fit_seconds_before({"callbacks": {"ThroughputMeter": meter, "Timer": timer}}) == 4405.9
    assert _fit_seconds_before({"callbacks": {"ThroughputMeter": meter}}) == 0.0

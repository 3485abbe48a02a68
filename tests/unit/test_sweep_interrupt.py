"""Ctrl-C is never lost: in a sweep worker even when Python drops the KeyboardInterrupt (issue 6); the CLI exits 130."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from harness.study.objective import CtrlC


class _SignalsInFinalizer:
    """Sends SIGINT to this process from __del__: the handler then runs inside the finalizer, where Python
    prints "Exception ignored in ..." and drops the KeyboardInterrupt (what happened inside SQLAlchemy)."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):  # bytecode for the interpreter to run the pending handler on
            pass


@pytest.fixture
def dropped(monkeypatch) -> list[type]:
    """Exceptions Python drops ("Exception ignored in ...") go to sys.unraisablehook: record them."""
    seen: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    return seen


@pytest.fixture
def default_sigint():
    """Python's own Ctrl-C handler for the test (an earlier in-process test may have left SIGINT ignored, as
    Lightning does after it handles an interrupted fit)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_python_drops_keyboard_interrupt_raised_in_a_finalizer(dropped, default_sigint):
    _SignalsInFinalizer()  # the bug class the flag guards against: no exception reaches this frame
    assert dropped == [KeyboardInterrupt]


def test_ctrl_c_dropped_in_a_finalizer_still_stops_at_the_trial_boundary(dropped):
    previous = signal.getsignal(signal.SIGINT)
    with CtrlC() as ctrl_c:
        ctrl_c.check()  # nothing pressed: no-op
        _SignalsInFinalizer()
        assert ctrl_c.pressed
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()
    assert signal.getsignal(signal.SIGINT) is previous  # the handler before the worker is back
    assert dropped == [KeyboardInterrupt]


def test_ctrl_c_dropped_before_training_stops_the_trial_at_its_first_step(dropped):
    """The flag also reaches the trial's training: a Ctrl-C dropped while the data were tokenized (seen in the
    regex module's __del__) stops the trial when training starts, not after it has run to the end."""
    from harness.study.objective import stop_when_pressed

    with CtrlC() as ctrl_c:
        stop = stop_when_pressed(ctrl_c)
        stop.on_train_start(None, None)  # nothing pressed: training goes on
        stop.on_train_batch_end(None, None, None, None, 0)
        _SignalsInFinalizer()
        with pytest.raises(KeyboardInterrupt):
            stop.on_train_start(None, None)
        with pytest.raises(KeyboardInterrupt):
            stop.on_train_batch_end(None, None, None, None, 0)
        with pytest.raises(KeyboardInterrupt):
            stop.on_validation_batch_end(None, None, None, None, 0)
    assert dropped == [KeyboardInterrupt]


def test_ctrl_c_outside_finalizers_raises_at_once():
    with CtrlC() as ctrl_c, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):
            pass
    assert ctrl_c.pressed


def _interrupted(monkeypatch):
    """Make every `harness` command raise KeyboardInterrupt, as a Ctrl-C in the middle of it would."""
    import argparse

    import harness.cli as cli

    def ctrl_c(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "parse_args", lambda parser, argv: argparse.Namespace(func=ctrl_c))
    return cli


def test_interrupted_main_returns_130_and_leaves_sigint_to_the_caller(monkeypatch, capsys):
    cli = _interrupted(monkeypatch)
    before = signal.getsignal(signal.SIGINT)
    assert cli.main([]) == 130
    assert "rerun with --resume" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # an in-process caller can still be interrupted


def test_console_entry_exits_130_and_ignores_a_late_ctrl_c(monkeypatch, capsys):
    cli = _interrupted(monkeypatch)
    before = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.entry()
        assert exit_.value.code == 130
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # interpreter shutdown can't turn 130 into a kill
    finally:
        signal.signal(signal.SIGINT, before)


def test_console_entry_exits_130_when_a_second_ctrl_c_interrupts_the_report(monkeypatch, capsys):
    """Seen once in a full test run: the sweep printed "interrupted: ..." and then died by SIGINT (status -2)
    instead of exiting 130; a KeyboardInterrupt that escapes main() is the same interruption."""
    import harness.cli as cli

    def main_interrupted_while_reporting(argv=None):
        print("interrupted: study k is kept; rerun the same command to resume", file=sys.stderr)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "main", main_interrupted_while_reporting)
    before = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.entry()
        assert exit_.value.code == 130
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)

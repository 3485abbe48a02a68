"""Ctrl-C in a sweep worker is never lost, even when Python drops the KeyboardInterrupt (issue 6)."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from harness.sweep import _CtrlC


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
    """Python's own Ctrl-C handler for the test (another test may have left SIGINT ignored, as the CLI does
    after a handled interruption)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_python_drops_keyboard_interrupt_raised_in_a_finalizer(dropped, default_sigint):
    _SignalsInFinalizer()  # the bug class the flag guards against: no exception reaches this frame
    assert dropped == [KeyboardInterrupt]


def test_ctrl_c_dropped_in_a_finalizer_still_stops_at_the_trial_boundary(dropped):
    previous = signal.getsignal(signal.SIGINT)
    with _CtrlC() as ctrl_c:
        ctrl_c.check()  # nothing pressed: no-op
        _SignalsInFinalizer()
        assert ctrl_c.pressed
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()
    assert signal.getsignal(signal.SIGINT) is previous  # the handler before the worker is back
    assert dropped == [KeyboardInterrupt]


def test_ctrl_c_outside_finalizers_raises_at_once():
    with _CtrlC() as ctrl_c, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):
            pass
    assert ctrl_c.pressed

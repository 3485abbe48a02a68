"""harness/cli.py is the one place that declares subcommands: every command is there, no other module builds an
argparse parser, and a command whose module cannot be imported fails loudly instead of disappearing."""

from __future__ import annotations

import argparse
import sys

import pytest

from harness.cli import build_parser, main
from harness.paths import PROJECT_ROOT

COMMANDS = [
    "list",
    "train",
    "evaluate",
    "translate",
    "plot-attention",
    "sweep",
    "report",
    "animate",
    "bench",
    "bench-peers",
    "reproduce",
    "align",
    "results",
]


def test_every_subcommand_is_declared_in_order():
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(sub.choices) == COMMANDS


def test_no_other_module_declares_options():
    with_argparse = sorted(
        str(p.relative_to(PROJECT_ROOT))
        for p in (PROJECT_ROOT / "harness").rglob("*.py")
        if "argparse" in p.read_text()
    )
    assert with_argparse == ["harness/cli.py"]


def test_a_command_whose_module_cannot_be_imported_fails_loudly(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "harness.study.sweep", None)  # `import harness.study.sweep` now raises
    with pytest.raises(ImportError, match="harness.study.sweep"):
        main(["sweep", str(tmp_path / "spec.yaml")])

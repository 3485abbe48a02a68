"""Comparison reports from an Optuna study or run directories: leaderboard (mean ± std over seeds),
paired-bootstrap significance, paper anchors, plots, attention heatmaps and a decoding animation.

    from harness.report import load, render, render_runs
    report = load("score_functions")                 # study in sqlite:///reports/score_functions/study.db
    report = load(["runs/a", "runs/b"])              # or run directories
    report.leaderboard, report.significance, report.runs, report.by_length, report.papers   # DataFrames
    render(report, "reports/score_functions")         # index.html, README.md, leaderboard.csv, runs.csv
"""

from __future__ import annotations

from pathlib import Path

from harness.report.build import Report, load


def render(report: Report, output_dir: str | Path, index: int = 0, with_animation: bool = True) -> Path:
    from harness.report.html import render as _render

    return _render(report, output_dir, index, with_animation)


def render_runs(run_dirs, output_dir: str | Path, title: str | None = None, index: int = 0) -> Path:
    """Report of run directories (e.g. the demo's) written to `output_dir`; returns index.html's path."""
    return render(load(run_dirs, title=title), output_dir, index)


def render_study(
    study: str,
    output_dir: str | Path | None = None,
    storage: str | None = None,
    title: str | None = None,
    index: int = 0,
) -> Path:
    return render(load(study, storage, title=title), output_dir or Path("reports") / study, index)


__all__ = ["Report", "load", "render", "render_runs", "render_study"]

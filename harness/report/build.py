"""`load(study_or_run_dirs) -> Report`: the report's tables, computed from a study or run directories."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.metrics.keys import BLEU_SIGNATURE, CHRF_SIGNATURE
from harness.report.load import RunRecord, Source, load_source, shown_path
from harness.report.significance import NOTE, SIGNIFICANCE_COLUMNS, References, significance_table
from harness.report.tables import (
    CURVE_COLUMNS,
    DIAGONAL_COLUMNS,
    add_below_diagonal,
    by_length_table,
    counted_runs,
    curve_stats,
    diagonal_table,
    group_keys,
    leaderboard,
    learning_curves_table,
    papers_table,
    runs_table,
    unconverged_table,
)


@dataclass
class Report:
    """Everything a report shows. The DataFrames are plain pandas, for notebooks as much as for the page."""

    title: str
    source: Source
    runs: pd.DataFrame  # one row per run: scalar metrics + flattened config keys, converged, stop_reason
    # one row per configuration with a converged seed, ranked on its converged seeds: <metric>_mean/_std/_n, n,
    # seeds, rank, convergence ("2/3 converged; unconverged: seed 3 max_epochs; ranked on seeds 1, 2"),
    # below_diagonal (mean AER below the positional baseline's)
    leaderboard: pd.DataFrame
    significance: pd.DataFrame  # paired bootstrap vs the best converged configuration / vs no-attention control
    by_length: pd.DataFrame  # BLEU per source-length bucket per run
    papers: pd.DataFrame  # paper anchors, as reported
    group_keys: list[str]  # config keys that define a configuration (vary across runs; seed excluded)
    groups: dict[str, list[RunRecord]]  # configuration label -> its runs, seed order
    objective: list[dict]
    shared_config: dict[str, Any]  # config keys with one value across all runs
    signatures: dict[str, list[str]]  # "BLEU", "chrF", "bootstrap" -> distinct signatures
    notes: list[str] = field(default_factory=list)
    bootstrap_note: str = ""
    references: References = field(default_factory=References)
    # configurations none of whose runs converged, not ranked: the leaderboard's columns over all their runs,
    # stop_reasons, val_metric_slope_mean
    unconverged: pd.DataFrame = field(default_factory=pd.DataFrame)
    diagonal: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DIAGONAL_COLUMNS))  # AER baseline
    # validation curves from logs/metrics.csv: configuration, run, seed, converged, step, metric, value
    learning_curves: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CURVE_COLUMNS))
    counted: dict[str, list[str]] = field(default_factory=dict)  # configuration -> runs its numbers are over
    stopping: dict[str, list] = field(default_factory=dict)  # train.early_stopping(_metric) values of the runs

    @property
    def configurations(self) -> list[str]:
        """Every configuration: the ranked ones in rank order, then the unconverged ones."""
        return [*self.leaderboard["configuration"], *self.unconverged.get("configuration", [])]

    def curve_stats(self) -> tuple[pd.DataFrame, list[str]]:
        """Per configuration, metric and step: mean and std over the runs its table row is over (its converged
        seeds where it has any), aligned on the steps they share; and notes on curves left out."""
        return curve_stats(self.learning_curves, self.counted)

    def __getitem__(self, key: str):  # report["leaderboard"] works as well as report.leaderboard
        return getattr(self, key)


def _shared_config(runs: list[RunRecord]) -> dict[str, Any]:
    keys = set().union(*(r.config for r in runs)) if runs else set()
    out = {}
    for k in sorted(keys):
        values = {repr(r.config.get(k)) for r in runs}
        if len(values) == 1:
            out[k] = runs[0].config.get(k)
    return out


def load(
    study_or_run_dirs,
    storage: str | None = None,
    *,
    significance: bool = True,
    n_bootstrap: int = 1000,
    bootstrap_seed: int = 12345,
    title: str | None = None,
) -> Report:
    """Build a Report from an Optuna study name (storage default sqlite:///reports/<study>/study.db) or from
    run directories (a path, or a list of paths; a folder of run directories stands for all of them)."""
    from harness.report.tables import _sort_value

    src = load_source(study_or_run_dirs, storage)
    keys = group_keys(src.runs)
    runs_df = runs_table(src.runs, keys)
    lb = leaderboard(runs_df, keys, src.objective)
    unconverged = unconverged_table(runs_df, keys, src.objective)
    counted = counted_runs(runs_df)
    groups: dict[str, list[RunRecord]] = {}
    for r, label in zip(src.runs, runs_df["configuration"]):
        groups.setdefault(label, []).append(r)
    for label in groups:
        groups[label].sort(key=lambda r: _sort_value(r.seed))
    # the positional AER baseline of the runs each table's AER is over
    diagonals = [
        diagonal_table(runs_df[runs_df["run"].isin([n for c in t["configuration"] for n in counted[c]])], name)
        for t, name in ((lb, "leaderboard"), (unconverged, "unconverged"))
    ]
    diagonal = pd.concat([d for d in diagonals if len(d)] or diagonals[:1], ignore_index=True)
    lb = add_below_diagonal(lb, diagonal[diagonal["table"] == "leaderboard"])
    unconverged = add_below_diagonal(unconverged, diagonal[diagonal["table"] == "unconverged"])
    refs = References()
    notes = list(src.notes)
    sig_df, boot_sigs = pd.DataFrame(columns=SIGNIFICANCE_COLUMNS), []
    if significance:
        pooled = {label: [r for r in groups[label] if r.name in counted[label]] for label in groups}
        sig_df, boot_sigs, sig_notes = significance_table(
            lb, pooled, n_bootstrap, bootstrap_seed, refs, unconverged=unconverged
        )
        notes += sig_notes
    signatures = {
        "BLEU": sorted({str(r.metrics[BLEU_SIGNATURE]) for r in src.runs if r.metrics.get(BLEU_SIGNATURE)}),
        "chrF": sorted({str(r.metrics[CHRF_SIGNATURE]) for r in src.runs if r.metrics.get(CHRF_SIGNATURE)}),
        "bootstrap": boot_sigs,
    }
    if title is None:
        title = f"Study {src.study_name}" if src.study_name else f"{len(src.runs)} runs"
    return Report(
        title=title,
        source=src,
        runs=runs_df,
        leaderboard=lb,
        significance=sig_df,
        by_length=by_length_table(src.runs, keys),
        papers=papers_table(),
        group_keys=keys,
        groups=groups,
        objective=src.objective,
        shared_config=_shared_config(src.runs),
        signatures=signatures,
        notes=notes,
        bootstrap_note=NOTE.format(n=n_bootstrap, seed=bootstrap_seed),
        references=refs,
        unconverged=unconverged,
        diagonal=diagonal,
        learning_curves=learning_curves_table(src.runs, list(runs_df["configuration"])),
        counted=counted,
        stopping={
            k: sorted({r.config[k] for r in src.runs if r.config.get(k) is not None}, key=str)
            for k in ("train.early_stopping", "train.early_stopping_metric")
        },
    )


def source_description(report: Report) -> str:
    s = report.source
    if s.study_name:
        return f"Optuna study '{s.study_name}' ({s.storage}), {len(s.runs)} completed trials"
    dirs = sorted({shown_path(Path(r.run_dir).parent) for r in s.runs if r.run_dir is not None})
    return f"{len(s.runs)} run directories under {', '.join(dirs)}"

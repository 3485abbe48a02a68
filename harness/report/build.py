"""`load(study_or_run_dirs) -> Report`: the report's tables, computed from a study or run directories."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report.load import RunRecord, Source, load_source
from harness.report.significance import NOTE, SIGNIFICANCE_COLUMNS, References, significance_table
from harness.report.tables import (
    by_length_table,
    group_keys,
    leaderboard,
    papers_table,
    runs_table,
)


@dataclass
class Report:
    """Everything a report shows. The DataFrames are plain pandas, for notebooks as much as for the page."""

    title: str
    source: Source
    runs: pd.DataFrame  # one row per run: scalar metrics + flattened config keys
    leaderboard: pd.DataFrame  # one row per configuration: <metric>_mean/_std/_n, n, seeds, rank
    significance: pd.DataFrame  # paired bootstrap vs best / vs no-attention control
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
    groups: dict[str, list[RunRecord]] = {}
    for r, label in zip(src.runs, runs_df["configuration"]):
        groups.setdefault(label, []).append(r)
    for label in groups:
        groups[label].sort(key=lambda r: _sort_value(r.seed))
    refs = References()
    notes = list(src.notes)
    sig_df, boot_sigs = pd.DataFrame(columns=SIGNIFICANCE_COLUMNS), []
    if significance:
        sig_df, boot_sigs, sig_notes = significance_table(lb, groups, n_bootstrap, bootstrap_seed, refs)
        notes += sig_notes
    signatures = {
        "BLEU": sorted(
            {str(r.metrics["sacrebleu_signature"]) for r in src.runs if r.metrics.get("sacrebleu_signature")}
        ),
        "chrF": sorted({str(r.metrics["chrf_signature"]) for r in src.runs if r.metrics.get("chrf_signature")}),
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
    )


def source_description(report: Report) -> str:
    s = report.source
    if s.study_name:
        return f"Optuna study '{s.study_name}' ({s.storage}), {len(s.runs)} completed trials"
    dirs = sorted({str(Path(r.run_dir).parent) for r in s.runs if r.run_dir is not None})
    return f"{len(s.runs)} run directories under {', '.join(dirs)}"

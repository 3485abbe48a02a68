"""The report's tables as (headers, rows) of plain cells: the leaderboard, the configurations without a converged
run, significance, ours beside the papers' anchors, every run. The HTML page and the Markdown README
(harness/report/html.py) render the same rows."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics.keys import (
    AER,
    AER_DIAGONAL,
    AER_THRESHOLD,
    ALIGNMENT_PRECISION,
    ALIGNMENT_RECALL,
    BEST_STEP,
    BLEU,
    CONVERGED,
    LENGTH_DROP,
    PARAMS,
    TRAIN_SPEED,
    VAL_METRIC,
    VAL_METRIC_SLOPE,
)
from harness.report.build import Report
from harness.report.tables import DIAGONAL_LABEL, DIGITS, METRICS, best_configurations, fmt_mean_std


def esc(x: Any) -> str:
    """Escaped text of a value (None/NaN -> en dash)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return html.escape(str(x), quote=True)


class Cell:
    def __init__(self, text: Any, cls: str = "", raw: bool = False):
        self.text, self.cls, self.raw = text, cls, raw

    def html(self) -> str:
        body = self.text if self.raw else esc(self.text)
        return f'<td class="{self.cls}">{body}</td>' if self.cls else f"<td>{body}</td>"


def fmt_num(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, int | np.integer) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1000):
        return f"{int(x):,}"
    if isinstance(x, float | np.floating):
        return f"{x:.{digits}f}"
    return str(x)


def yes_no(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else "yes" if x else "no"


UNCONVERGED_NOTE = (
    "None of these configurations' runs was ended by its stopping rule, so their numbers may still be moving: "
    "they are not ranked, not marked best and never the baseline of the significance tests. Stopped by: each "
    "run's stop reason. Slope: least-squares slope of the monitored validation metric over each run's last "
    "validations, per 1,000 training steps (mean ± std over seeds; for perplexity, negative = still improving)."
)
CURVE_NOTE = (
    "Validation metrics against the training step (logs/metrics.csv), one line per configuration: the mean over "
    "the seeds its table row is over (its converged seeds where it has any), aligned on the validation steps "
    "they all logged; the band is ± 1 sample std over those seeds (none for one seed). Dashed: a configuration "
    "without a converged run."
)


def diagonal_note(report: Report) -> str:
    if report.diagonal.empty:
        return ""
    return (
        f"{DIAGONAL_LABEL}: target word t linked to source word round(t·|x|/|y|), scored on the same gold "
        "sentences (mean over the table's runs, per gold set); AER below diagonal: the configuration's mean AER is "
        "lower than that baseline's."
    )


def convergence_line(report: Report) -> str:
    """One line: what "converged" means in this report (the runs' stopping rule) and what is not ranked."""
    patience = sorted({int(p) for p in report.stopping.get("train.early_stopping", []) if isinstance(p, int | float)})
    metric = sorted({str(m) for m in report.runs.get(VAL_METRIC, pd.Series(dtype=object)).dropna()})
    what = " or ".join(metric or map(str, report.stopping.get("train.early_stopping_metric", [])))
    what = what or "the monitored validation metric"
    if patience == [0] and not report.runs[CONVERGED].any():
        rule = f"train.early_stopping = 0 in these runs: the rule is off, so none can converge; it monitors {what}"
    elif any(patience):
        n = " or ".join(str(p) for p in patience if p)
        rule = f"{n} validations in a row without an improvement of {what}"
    else:
        rule = f"train.early_stopping validations in a row without an improvement of {what}"
    return (
        f"Converged = training was ended by its stopping rule ({rule}). Runs stopped by a budget (max_steps, "
        "max_epochs, max_time), by a non-finite metric, or trained before the rule existed are not converged and "
        "not ranked: the leaderboard ranks converged seeds only, and configurations without any are listed apart."
    )


def _metric_columns(table: pd.DataFrame, has_diagonal: bool) -> list[tuple[str, str, str | None]]:
    """The metrics with a value in the table (AER and its precision/recall also where only the baseline has
    one)."""
    always = (AER, ALIGNMENT_PRECISION, ALIGNMENT_RECALL) if has_diagonal else ()
    return [m for m in METRICS if m[0] in always or table[f"{m[0]}_mean"].notna().any()]


def _config_rows(
    table: pd.DataFrame, diagonal: pd.DataFrame, marker: str, lead: list[tuple[str, Any]], best=None
) -> tuple[list[str], list[list[Any]]]:
    """Rows of a per-configuration table (leaderboard or unconverged): the `lead` columns (header, function of
    the row), then mean ± std per metric, `AER below diagonal` after the AER columns where a positional
    baseline exists, and one row per baseline (gold set) at the end."""
    best = best or {}
    has_diag = len(diagonal) > 0
    metrics = _metric_columns(table, has_diag)
    keys = [k for k, _, _ in metrics]
    after = AER_THRESHOLD if AER_THRESHOLD in keys else AER  # `AER below diagonal` follows the AER columns
    headers = [h for h, _ in lead]
    for key, label, better in metrics:
        headers.append(f"{label} {'↑' if better == 'max' else '↓' if better == 'min' else ''}".strip())
        if key == after and has_diag:
            headers.append("AER below diagonal")
    rows = []
    for _, r in table.iterrows():
        row: list[Any] = [f(r) for _, f in lead]
        for key, _, _ in metrics:
            text = fmt_mean_std(r[f"{key}_mean"], r[f"{key}_std"], DIGITS.get(key, 2))
            if r[f"{key}_n"] and r[f"{key}_n"] != r["n"]:
                text += f" (n={int(r[f'{key}_n'])})"
            is_best = r["configuration"] in best.get(key, ())
            row.append(Cell(text + (f" {marker}" if is_best else ""), "best" if is_best else ""))
            if key == after and has_diag:
                row.append(yes_no(r.get("below_diagonal")))
        rows.append(row)
    several = len(set(diagonal["gold"]) | set(table.loc[table["aer_mean"].notna(), "gold"])) > 1  # name the set
    for _, d in diagonal.iterrows():
        label = DIAGONAL_LABEL + (f", gold {d['gold']}" if several else "")
        row = []
        for h, _ in lead:
            row.append(label if h == "configuration" else f"{int(d['aer_n'])} runs" if h.startswith("n ") else "–")
        for key, _, _ in metrics:
            if key == AER:
                row.append(fmt_mean_std(d["aer_mean"], d["aer_std"], 3))
            elif key in (ALIGNMENT_PRECISION, ALIGNMENT_RECALL):
                row.append(fmt_mean_std(d[f"{key}_mean"], np.nan, 3))
            else:
                row.append("–")
            if key == after:
                row.append("–")
        rows.append(row)
    return headers, rows


def leaderboard_rows(report: Report, marker: str) -> tuple[list[str], list[list[Any]]]:
    lb = report.leaderboard
    lead = [
        ("rank", lambda r: int(r["rank"])),
        ("configuration", lambda r: r["configuration"]),
        ("n (seeds)", lambda r: f"{int(r['n'])} ({r['seeds']})"),
        ("converged", lambda r: r["convergence"]),
    ]
    diag = report.diagonal[report.diagonal["table"] == "leaderboard"]
    return _config_rows(lb, diag, marker, lead, best_configurations(lb))


def _slope_text(r) -> str:
    text = fmt_mean_std(r["val_metric_slope_mean"], r["val_metric_slope_std"], 3)
    return text if text == "–" else f"{text} {r['val_metric'] or ''}/1k steps".replace(" /", "/")


def unconverged_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    """The configurations none of whose runs converged: why each run stopped, the monitored metric's slope over
    its last validations (how far from flat it still was), and the leaderboard's columns over all its runs."""
    lead = [
        ("configuration", lambda r: r["configuration"]),
        ("n (seeds)", lambda r: f"{int(r['n'])} ({r['seeds']})"),
        ("stopped by", lambda r: r["stop_reasons"]),
        ("slope of the monitored metric (last validations)", _slope_text),
        ("best step", lambda r: fmt_mean_std(r["best_step_mean"], r["best_step_std"], 0)),
    ]
    diag = report.diagonal[report.diagonal["table"] == "unconverged"]
    return _config_rows(report.unconverged, diag, "", lead)


def significance_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    headers = [
        "compared with",
        "baseline",
        "configuration",
        "baseline BLEU",
        "BLEU",
        "Δ BLEU",
        "p",
        "p < 0.05",
        "sentences",
        "paired on",
        "converged",
    ]
    rows = []
    for _, r in report.significance.iterrows():
        sig = bool(r["significant"])
        rows.append(
            [
                r["vs"],
                r["baseline"],
                r["configuration"],
                fmt_num(r["baseline BLEU"]),
                fmt_num(r["BLEU"]),
                f"{r['delta']:+.2f}",
                f"{r['p_value']:.4f}",
                Cell("yes" if sig else "no", "sig" if sig else "nsig"),
                int(r["sentences"]),
                r["paired on"],
                r[CONVERGED],
            ]
        )
    return headers, rows


def ours_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    headers = ["configuration", "converged", "BLEU (sacreBLEU)", "AER", "AER below diagonal", "n"]
    rows = []
    for table in (report.leaderboard, report.unconverged):
        for _, r in table.iterrows():
            rows.append(
                [
                    r["configuration"],
                    r["convergence"],
                    fmt_mean_std(r["bleu_mean"], r["bleu_std"]),
                    fmt_mean_std(r["aer_mean"], r["aer_std"], 3),
                    yes_no(r.get("below_diagonal")),
                    int(r["n"]),
                ]
            )
    several = report.diagonal["gold"].nunique() > 1
    for _, d in report.diagonal.iterrows():
        where = f"{d['table']} runs" + (f", gold {d['gold']}" if several else "")
        row = [f"{DIAGONAL_LABEL} ({where})", "–", "–", fmt_mean_std(d["aer_mean"], d["aer_std"], 3), "–"]
        rows.append([*row, int(d["aer_n"])])
    return headers, rows


def papers_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    headers = ["paper", "model (as named in the paper)", "metric", "value (as reported)", "details", "verify"]
    rows = []
    for _, r in report.papers.iterrows():
        v = r["value"]
        rows.append(
            [
                r["paper"],
                r["model"],
                r["metric"],
                "–" if v is None or (isinstance(v, float) and math.isnan(v)) else v,
                r["details"],
                "verify" if r["verify"] else "",
            ]
        )
    return headers, rows


def papers_source_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    from harness.report.tables import papers_notes

    headers = ["paper", "where", "data", "BLEU convention", "note"]
    return headers, [[p["short"], p["source"], p["data"], p["bleu"], p["note"]] for p in papers_notes()]


RUN_COLS = [
    ("run", "run"),
    ("configuration", "configuration"),
    ("seed", "seed"),
    (CONVERGED, "converged"),
    (BLEU, "BLEU"),
    ("chrf", "chrF"),
    (AER, "AER"),
    (AER_THRESHOLD, "AER (threshold)"),
    (AER_DIAGONAL, "AER (diagonal)"),
    ("below_diagonal", "AER below diagonal"),
    (LENGTH_DROP, "length drop"),
    (PARAMS, "params"),
    (TRAIN_SPEED, "train tok/s"),
    ("steps", "steps"),
    (BEST_STEP, "best step"),
    (VAL_METRIC_SLOPE, "slope /1k steps"),
    ("run_dir", "run directory"),
]
RUN_TEXT = ("run", "configuration", "run_dir", "seed")
OPTIONAL_RUN_COLS = (AER_THRESHOLD, AER_DIAGONAL, "below_diagonal", BEST_STEP, VAL_METRIC_SLOPE)


def _run_cell(r, key: str) -> Any:
    if key in RUN_TEXT:
        return r[key]
    if key == CONVERGED:
        return "yes" if r[CONVERGED] else f"no: {r['stop_reason']}"
    if key == "below_diagonal":
        return yes_no(r[key])
    if key == VAL_METRIC_SLOPE and not pd.isna(r[key]):
        return f"{r[key]:.3f} {r.get('val_metric') or ''}".strip()
    return fmt_num(r[key], 3 if key.startswith("aer") else DIGITS.get(key, 2))


def runs_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    runs = report.runs
    cols = [(k, h) for k, h in RUN_COLS if k in runs and (k not in OPTIONAL_RUN_COLS or runs[k].notna().any())]
    rows = [[_run_cell(r, k) for k, _ in cols] for _, r in runs.iterrows()]
    return [h for _, h in cols], rows


def config_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    return ["key", "value (same in every run)"], [
        [k, v] for k, v in report.shared_config.items() if not k.startswith("tracking.")
    ]


def configurations_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    keys = report.group_keys
    headers = ["configuration", *keys, "runs"]
    rows = [
        [r["configuration"], *[r.get(k) for k in keys], r["runs"]]
        for table in (report.leaderboard, report.unconverged)
        for _, r in table.iterrows()
    ]
    return headers, rows

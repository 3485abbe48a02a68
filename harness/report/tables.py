"""pandas tables of a report: runs (one row per run), leaderboard (one row per converged configuration, mean ±
std over seeds, ranked), unconverged configurations (listed apart, not ranked), the positional AER baseline,
BLEU by source length, and the paper anchors from papers.yaml.

Converged: a run whose stopping rule ended training (metrics.json `converged`); one stopped by a budget
(max_steps, max_epochs, max_time), by a non-finite metric, or trained before the rule existed is not. Only
converged seeds count towards a ranked configuration's numbers; a configuration without any is listed apart.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness.metrics.keys import (
    AER,
    AER_DIAGONAL,
    AER_DIAGONAL_PRECISION,
    AER_DIAGONAL_RECALL,
    AER_THRESHOLD,
    ALIGNMENT_PRECISION,
    ALIGNMENT_RECALL,
    ATTENTION_ENTROPY,
    BEST_STEP,
    BLEU,
    BUDGET_KEYS,
    BY_LENGTH,
    CHRF,
    CONVERGED,
    DECODE_SPEED,
    GOLD_ALIGNMENTS,
    LENGTH_DROP,
    PARAMS,
    STOP_REASON,
    TRAIN_SPEED,
    VAL_METRIC,
    VAL_METRIC_BEST,
    VAL_METRIC_SLOPE,
    VALIDATIONS,
)
from harness.report.load import LEGACY_STOP_REASON, RunRecord, read_validation_log, shown_path

# (metrics.json key, column label, which way is better: "max" | "min" | None = not ranked)
METRICS: list[tuple[str, str, str | None]] = [
    (BLEU, "BLEU", "max"),
    (CHRF, "chrF", "max"),
    (AER, "AER", "min"),
    (AER_THRESHOLD, "AER (threshold)", "min"),
    (ALIGNMENT_PRECISION, "precision", "max"),
    (ALIGNMENT_RECALL, "recall", "max"),
    (LENGTH_DROP, "length drop", "min"),
    (ATTENTION_ENTROPY, "attention entropy", None),
    (PARAMS, "params", None),
    (TRAIN_SPEED, "train tok/s", "max"),
    (DECODE_SPEED, "decode sent/s", "max"),
]
LABELS = {k: label for k, label, _ in METRICS}
BETTER = {k: better for k, _, better in METRICS}
# summarised per configuration (<key>_mean/_std/_n) but not leaderboard columns: the positional AER baseline
# (a row of its own, diagonal_table) and how training ended
EXTRA_STATS = [
    AER_DIAGONAL,
    AER_DIAGONAL_PRECISION,
    AER_DIAGONAL_RECALL,
    VAL_METRIC_SLOPE,
    VAL_METRIC_BEST,
    BEST_STEP,
    VALIDATIONS,
    "steps",
]
STATS = [k for k, _, _ in METRICS] + EXTRA_STATS
DIAGONAL_LABEL = "positional baseline (diagonal)"

ALWAYS_GROUP = ["model.arch", "model.score"]
NEVER_GROUP_PREFIXES = ("tracking.", "_meta")
# glibc's malloc settings change where memory comes from, never a result (tests/unit/test_memory.py: the same
# curve and hypotheses): a study that turns one on midway keeps its configurations whole
NEVER_GROUP = {"seed", "train.malloc_mmap_threshold", "train.malloc_keep_freed"}
# budgets: hard caps, not hyperparameters. One tells configurations apart only where the runs it ended (metrics.json
# stop_reason) differ in it, as in a sweep over the number of steps: a cap raised while a study ran does not split a
# configuration in two (a run its stopping rule ended is the same run under either cap).
BUDGET_OF = {key: reason for reason, key in BUDGET_KEYS.items()}  # config key -> the stop reason it causes


def _value(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def group_keys(runs: list[RunRecord]) -> list[str]:
    """Config keys that vary across runs, except the seed (and tracking) and budgets that ended no two runs at
    different values (BUDGET_OF): they define a configuration."""
    keys: set[str] = set()
    for r in runs:
        keys.update(r.config)
    varying = []
    for k in sorted(keys):
        if k in NEVER_GROUP or k.startswith(NEVER_GROUP_PREFIXES):
            continue
        ended = (BUDGET_OF.get(k), LEGACY_STOP_REASON)  # (runs from before the rule: their budget ended them)
        which = [r for r in runs if r.stop_reason in ended] if k in BUDGET_OF else runs
        values = {repr(_value(r.config.get(k))) for r in which}
        if len(values) > 1:
            varying.append(k)
    head = [k for k in ALWAYS_GROUP if k in keys]
    return head + [k for k in varying if k not in head]


def config_label(config: dict, keys: list[str]) -> str:
    """`bahdanau · additive` + `name=value` for every other varying key (its last dotted component when
    unique)."""
    parts = [str(config.get(k, "?")) for k in ALWAYS_GROUP if k in keys]
    rest = [k for k in keys if k not in ALWAYS_GROUP]
    tails = [k.rsplit(".", 1)[-1] for k in rest]
    for k, tail in zip(rest, tails):
        name = tail if tails.count(tail) == 1 else k
        parts.append(f"{name}={config.get(k, '-')}")
    return " · ".join(parts[:2]) if len(parts) <= 2 else " · ".join(parts[:2]) + ", " + ", ".join(parts[2:])


def _scalar_metrics(m: dict) -> dict:
    return {k: v for k, v in m.items() if not isinstance(v, list | dict)}


def gold_of(metrics: dict, config: dict, data_keys: list[str]) -> str:
    """The gold alignment set a run's AER is scored on: metrics.json `gold_alignments` (else data.gold_alignment
    or data.name), plus the values of the data.* keys that vary between the report's runs (`synthetic
    (test_size=40)`): one name can stand for several sets (every synthetic task is `synthetic`)."""
    gold = metrics.get(GOLD_ALIGNMENTS) or config.get("data.gold_alignment") or config.get("data.name") or "?"
    data = ", ".join(f"{k.rsplit('.', 1)[-1]}={config.get(k, '-')}" for k in data_keys)
    return f"{gold} ({data})" if data else str(gold)


def runs_table(runs: list[RunRecord], keys: list[str]) -> pd.DataFrame:
    """One row per run: run, configuration label, seed, converged + stop_reason, every scalar metric, every
    config key."""
    rows = []
    data_keys = [k for k in keys if k.startswith("data.")]
    for r in runs:
        row: dict[str, Any] = {"run": r.name, "configuration": config_label(r.config, keys), "seed": r.seed}
        row.update({k: v for k, v in _scalar_metrics(r.metrics).items() if k != "seed"})
        row.update({k: v for k, v in r.config.items() if k != "seed"})
        row[CONVERGED] = r.converged
        row[STOP_REASON] = r.stop_reason
        row["gold"] = gold_of(r.metrics, r.config, data_keys)
        row["run_dir"] = shown_path(r.run_dir) if r.run_dir is not None else None
        if r.trial is not None:
            row["trial"] = r.trial
        rows.append(row)
    df = pd.DataFrame(rows)
    for key in STATS:
        if key not in df:
            df[key] = np.nan
        df[key] = pd.to_numeric(df[key], errors="coerce")
    df[CONVERGED] = df[CONVERGED].astype(bool)
    df["below_diagonal"] = [
        bool(a < d) if not (math.isnan(a) or math.isnan(d)) else None for a, d in zip(df[AER], df[AER_DIAGONAL])
    ]
    return df


def _sort_value(x):
    try:
        return (0, float(x))
    except (TypeError, ValueError):
        return (1, str(x))


def _seed_list(g: pd.DataFrame) -> str:
    return ", ".join(str(x) for x in g["seed"].tolist())


def _unconverged_text(g: pd.DataFrame) -> str:
    """`seed 3 max_epochs, seed 4 max_time` for the runs of g that did not converge."""
    bad = g[~g[CONVERGED]]
    return ", ".join(f"seed {s} {why}" for s, why in zip(bad["seed"], bad[STOP_REASON]))


def convergence_text(g: pd.DataFrame) -> str:
    """What a configuration's row says about convergence: `2/2 converged`, `2/3 converged; unconverged: seed 3
    max_epochs; ranked on seeds 1, 2` or `0/2 converged; unconverged: seed 1 max_steps, seed 2 max_steps`."""
    n, ok = len(g), int(g[CONVERGED].sum())
    text = f"{ok}/{n} converged"
    if ok < n:
        text += f"; unconverged: {_unconverged_text(g)}"
        if ok:
            text += f"; ranked on seed{'s' if ok > 1 else ''} {_seed_list(g[g['converged']])}"
    return text


def _config_row(label: str, g_all: pd.DataFrame, g: pd.DataFrame, keys: list[str]) -> dict[str, Any]:
    """The row of one configuration: statistics over the runs `g` (its converged seeds, or all of them when it
    has none), convergence over all its runs `g_all`."""
    row: dict[str, Any] = {"configuration": label}
    first = g_all.iloc[0]
    for k in keys:
        row[k] = first.get(k)
    row["n"] = len(g)
    row["seeds"] = _seed_list(g)
    n_conv = int(g_all[CONVERGED].sum())
    row["n_runs"] = len(g_all)
    row["n_converged"] = n_conv
    row[CONVERGED] = n_conv == len(g_all)
    row["convergence"] = convergence_text(g_all)
    row["stop_reasons"] = _unconverged_text(g_all)
    metric = sorted({str(m) for m in g_all.get(VAL_METRIC, pd.Series(dtype=object)).dropna()})
    row[VAL_METRIC] = ", ".join(metric) if metric else None
    golds = sorted(set(g.loc[g[AER].notna() | g[AER_DIAGONAL].notna(), "gold"]))
    row["gold"] = golds[0] if len(golds) == 1 else (", ".join(golds) if golds else None)
    for key in STATS:
        vals = g[key].dropna().astype(float)
        row[f"{key}_mean"] = float(vals.mean()) if len(vals) else np.nan
        row[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
        row[f"{key}_n"] = len(vals)
    row["runs"] = ", ".join(g["run"].tolist())
    return row


def _sorted(df: pd.DataFrame, objective: list[dict]) -> pd.DataFrame:
    """Sorted by the study's objective (first objective first; NaN last)."""
    if df.empty:
        return df
    sort_cols, ascending = [], []
    for o in objective:
        col = f"{o['metric']}_mean"
        if col not in df:
            continue
        sort_cols.append(col)
        ascending.append(o.get("direction", "maximize").startswith("min"))
    if not sort_cols:
        sort_cols, ascending = ["bleu_mean"], [False]
    return df.sort_values(sort_cols, ascending=ascending, na_position="last", kind="stable").reset_index(drop=True)


def _configurations(runs_df: pd.DataFrame):
    for label, g in runs_df.groupby("configuration", sort=False):
        yield label, g.sort_values("seed", key=lambda s: s.map(_sort_value))


def counted_runs(runs_df: pd.DataFrame) -> dict[str, list[str]]:
    """configuration -> the runs its numbers are over: its converged seeds, or all of them when none converged."""
    out = {}
    for label, g in _configurations(runs_df):
        ok = g[g[CONVERGED]]
        out[label] = (ok if len(ok) else g)["run"].tolist()
    return out


def leaderboard(runs_df: pd.DataFrame, keys: list[str], objective: list[dict]) -> pd.DataFrame:
    """One row per configuration with at least one converged seed: for each metric mean, sample std (ddof=1, NaN
    for n=1) and n over its *converged* seeds; `convergence` says how many of its runs converged (and why the
    others stopped).

    Sorted by the study's objective (first objective first; NaN last); `rank` is the 1-based position.
    Configurations without a converged seed are not here: see `unconverged_table`.
    """
    rows = [_config_row(label, g, g[g[CONVERGED]], keys) for label, g in _configurations(runs_df) if g[CONVERGED].any()]
    lb = _sorted(pd.DataFrame(rows, columns=_columns(keys)), objective)
    lb.insert(0, "rank", range(1, len(lb) + 1))
    return lb


def unconverged_table(runs_df: pd.DataFrame, keys: list[str], objective: list[dict]) -> pd.DataFrame:
    """One row per configuration none of whose runs converged (not ranked): the leaderboard's columns over all its
    runs, with `stop_reasons` (seed and reason per run) and the monitored metric's slope over the last
    validations (`val_metric_slope_mean`, per 1,000 steps; metrics.json `val_metric_slope`)."""
    rows = [_config_row(label, g, g, keys) for label, g in _configurations(runs_df) if not g[CONVERGED].any()]
    return _sorted(pd.DataFrame(rows, columns=_columns(keys)), objective)


def _columns(keys: list[str]) -> list[str]:
    stats = [f"{k}_{s}" for k in STATS for s in ("mean", "std", "n")]
    head = ["configuration", *keys, "n", "seeds", "n_runs", "n_converged", CONVERGED, "convergence"]
    return [*head, "stop_reasons", VAL_METRIC, "gold", *stats, "runs"]


def best_configurations(lb: pd.DataFrame) -> dict[str, set[str]]:
    """metric key -> configurations holding the best mean (ties all marked); metrics without a direction are
    skipped."""
    out: dict[str, set[str]] = {}
    if len(lb) < 2:  # nothing to compare
        return out
    for key, _, better in METRICS:
        col = f"{key}_mean"
        if better is None or col not in lb or lb[col].isna().all():
            continue
        target = lb[col].max() if better == "max" else lb[col].min()
        out[key] = set(lb.loc[np.isclose(lb[col], target, rtol=0, atol=1e-12), "configuration"])
    return out


DIAGONAL_COLUMNS = [
    "table",
    "gold",
    "aer_mean",
    "aer_std",
    "aer_n",
    "alignment_precision_mean",
    "alignment_recall_mean",
    "runs",
]


def diagonal_table(runs_df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The positional AER baseline (target word t -> source word round(t·|x|/|y|), metrics.json `aer_diagonal`)
    of the given runs, one row per gold alignment set (gold_of: with the data keys that vary, which are part of
    every configuration, so each configuration has one): mean and sample std of their aer_diagonal (the baseline
    needs no model, so the runs of one gold set agree up to rounding), precision and recall means."""
    rows = []
    d = runs_df[runs_df[AER_DIAGONAL].notna()]
    for gold, g in d.groupby("gold", sort=True):
        vals = g[AER_DIAGONAL].astype(float)
        rows.append(
            {
                "table": table,
                "gold": gold,
                "aer_mean": float(vals.mean()),
                "aer_std": float(vals.std(ddof=1)) if len(vals) > 1 else np.nan,
                "aer_n": len(vals),
                "alignment_precision_mean": float(g[AER_DIAGONAL_PRECISION].mean()),
                "alignment_recall_mean": float(g[AER_DIAGONAL_RECALL].mean()),
                "runs": ", ".join(g["run"].tolist()),
            }
        )
    return pd.DataFrame(rows, columns=DIAGONAL_COLUMNS)


def add_below_diagonal(table: pd.DataFrame, diagonal: pd.DataFrame) -> pd.DataFrame:
    """`below_diagonal`: whether a configuration's mean (argmax) AER is below the positional baseline of its gold
    set (None when either is missing, e.g. the no-attention control); `aer_diagonal_baseline`: that baseline."""
    base = dict(zip(diagonal["gold"], diagonal["aer_mean"]))
    table = table.copy()
    ref = [base.get(g, np.nan) if isinstance(g, str) else np.nan for g in table["gold"]]
    table["aer_diagonal_baseline"] = ref
    table["below_diagonal"] = [
        bool(a < b) if not (math.isnan(a) or math.isnan(b)) else None for a, b in zip(table["aer_mean"], ref)
    ]
    return table


CURVE_COLUMNS = ["configuration", "run", "seed", CONVERGED, "step", "metric", "value"]


def learning_curves_table(runs: list[RunRecord], labels: list[str]) -> pd.DataFrame:
    """Every run's validation curve from logs/metrics.csv, long format: configuration, run, seed, converged,
    step (training step, as metrics.json's best_step counts it), metric (val_ppl, val_bleu, val_aer, val_loss),
    value."""
    rows = []
    for r, label in zip(runs, labels):
        if r.run_dir is None:
            continue
        for h in read_validation_log(r.run_dir, r.metrics.get("steps")):
            for metric, value in h.items():
                if metric != "step":
                    rows.append([label, r.name, r.seed, r.converged, h["step"], metric, value])
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def curve_stats(curves: pd.DataFrame, runs_of: dict[str, list[str]]) -> tuple[pd.DataFrame, list[str]]:
    """Mean and sample std (ddof=1; NaN for one seed) per configuration, metric and step over the runs
    `runs_of[configuration]` (the runs its table row is over), aligned on the steps all of them logged the
    metric at. Returns the table (configuration, metric, step, mean, std, n) and notes on curves left out."""
    rows, notes = [], []
    for label, names in runs_of.items():
        c = curves[(curves["configuration"] == label) & curves["run"].isin(names)]
        for metric, g in c.groupby("metric", sort=False):
            by_run = {run: d.set_index("step")["value"] for run, d in g.groupby("run", sort=False)}
            shared = sorted(set.intersection(*(set(v.index) for v in by_run.values())))
            if not shared:
                notes.append(f"{label}: its seeds share no validation step for {metric}; learning curve not drawn")
                continue
            values = np.array([[v[s] for s in shared] for v in by_run.values()], dtype=float)  # (runs, steps)
            std = values.std(axis=0, ddof=1) if len(values) > 1 else np.full(len(shared), np.nan)
            for s, m, sd in zip(shared, values.mean(axis=0), std):
                rows.append([label, metric, s, float(m), float(sd), len(values)])
    return pd.DataFrame(rows, columns=["configuration", "metric", "step", "mean", "std", "n"]), notes


def by_length_table(runs: list[RunRecord], keys: list[str]) -> pd.DataFrame:
    """BLEU/chrF per source-length bucket per run (metrics.json `by_length`)."""
    rows = []
    for r in runs:
        for b in r.metrics.get(BY_LENGTH) or []:
            rows.append(
                {
                    "run": r.name,
                    "configuration": config_label(r.config, keys),
                    "seed": r.seed,
                    "bucket": b.get("bucket"),
                    "lo": b.get("lo"),
                    "hi": b.get("hi"),
                    "n": b.get("n"),
                    "bleu": b.get("bleu"),
                    "chrf": b.get("chrf"),
                    "few": b.get("few"),
                }
            )
    cols = ["run", "configuration", "seed", "bucket", "lo", "hi", "n", "bleu", "chrf", "few"]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("bleu", "chrf"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


PAPERS_FILE = Path(__file__).with_name("papers.yaml")


def papers_table(path: Path = PAPERS_FILE) -> pd.DataFrame:
    """The paper anchors, one row per reported number (values exactly as printed in the papers)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    rows = []
    for p in doc.get("papers", []):
        for a in p.get("anchors", []):
            rows.append(
                {
                    "paper": p.get("short", p.get("paper")),
                    "source": p.get("source"),
                    "data": p.get("data"),
                    "model": a.get("model"),
                    "metric": a.get("metric"),
                    "value": a.get("value"),
                    "BLEU convention": p.get("bleu"),
                    "details": "; ".join(
                        str(v) if k == "note" else f"{k.replace('_', ' ')} {v}"
                        for k, v in a.items()
                        if k not in ("model", "metric", "value", "verify")
                    ),
                    "verify": bool(a.get("verify", p.get("verify", False))),
                }
            )
    return pd.DataFrame(rows)


def papers_notes(path: Path = PAPERS_FILE) -> list[dict]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [
        {k: p.get(k) for k in ("short", "paper", "url", "source", "data", "bleu", "verify", "note")}
        for p in doc.get("papers", [])
    ]


def fmt_mean_std(mean: float, std: float, digits: int = 2) -> str:
    """`26.75 ± 0.31`; the std is left out when it is undefined (n = 1)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if abs(mean) >= 1000:
        m = f"{mean:,.0f}"
        s = f"{std:,.0f}" if std is not None and not math.isnan(std) else None
    else:
        m = f"{mean:.{digits}f}"
        s = f"{std:.{digits}f}" if std is not None and not math.isnan(std) else None
    return f"{m} ± {s}" if s is not None else m


DIGITS = {AER: 3, AER_THRESHOLD: 3, ALIGNMENT_PRECISION: 3, ALIGNMENT_RECALL: 3, ATTENTION_ENTROPY: 3}

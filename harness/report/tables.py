"""pandas tables of a report: runs (one row per run), leaderboard (one row per configuration, mean ± std over
seeds), BLEU by source length, and the paper anchors from papers.yaml."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness.report.load import RunRecord

# (metrics.json key, column label, which way is better: "max" | "min" | None = not ranked)
METRICS: list[tuple[str, str, str | None]] = [
    ("bleu", "BLEU", "max"),
    ("chrf", "chrF", "max"),
    ("aer", "AER", "min"),
    ("alignment_precision", "precision", "max"),
    ("alignment_recall", "recall", "max"),
    ("length_drop", "length drop", "min"),
    ("attention_entropy", "attention entropy", None),
    ("params", "params", None),
    ("train_tokens_per_sec", "train tok/s", "max"),
    ("decode_sentences_per_sec", "decode sent/s", "max"),
]
LABELS = {k: label for k, label, _ in METRICS}
BETTER = {k: better for k, _, better in METRICS}

ALWAYS_GROUP = ["model.arch", "model.score"]
NEVER_GROUP_PREFIXES = ("tracking.", "_meta")
NEVER_GROUP = {"seed"}


def _value(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def group_keys(runs: list[RunRecord]) -> list[str]:
    """Config keys that vary across runs, except the seed (and tracking): they define a configuration."""
    keys: set[str] = set()
    for r in runs:
        keys.update(r.config)
    varying = []
    for k in sorted(keys):
        if k in NEVER_GROUP or k.startswith(NEVER_GROUP_PREFIXES):
            continue
        values = {repr(_value(r.config.get(k))) for r in runs}
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


def runs_table(runs: list[RunRecord], keys: list[str]) -> pd.DataFrame:
    """One row per run: run, configuration label, seed, every scalar metric, every config key."""
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run": r.name, "configuration": config_label(r.config, keys), "seed": r.seed}
        row.update({k: v for k, v in _scalar_metrics(r.metrics).items() if k != "seed"})
        row.update({k: v for k, v in r.config.items() if k != "seed"})
        row["run_dir"] = str(r.run_dir) if r.run_dir is not None else None
        if r.trial is not None:
            row["trial"] = r.trial
        rows.append(row)
    df = pd.DataFrame(rows)
    for key, _, _ in METRICS:
        if key not in df:
            df[key] = np.nan
        df[key] = pd.to_numeric(df[key], errors="coerce")
    return df


def _sort_value(x):
    try:
        return (0, float(x))
    except (TypeError, ValueError):
        return (1, str(x))


def leaderboard(runs_df: pd.DataFrame, keys: list[str], objective: list[dict]) -> pd.DataFrame:
    """One row per configuration: for each metric mean, sample std (ddof=1, NaN for n=1) and n over its seeds.

    Sorted by the study's objective (first objective first; NaN last); `rank` is the 1-based position.
    """
    rows = []
    for label, g in runs_df.groupby("configuration", sort=False):
        g = g.sort_values("seed", key=lambda s: s.map(_sort_value))
        row: dict[str, Any] = {"configuration": label}
        first = g.iloc[0]
        for k in keys:
            row[k] = first.get(k)
        row["n"] = len(g)
        row["seeds"] = ", ".join(str(s) for s in g["seed"].tolist())
        for key, _, _ in METRICS:
            vals = g[key].dropna().astype(float)
            row[f"{key}_mean"] = float(vals.mean()) if len(vals) else np.nan
            row[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
            row[f"{key}_n"] = len(vals)
        row["runs"] = ", ".join(g["run"].tolist())
        rows.append(row)
    lb = pd.DataFrame(rows)
    sort_cols, ascending = [], []
    for o in objective:
        col = f"{o['metric']}_mean"
        if col not in lb:
            continue
        sort_cols.append(col)
        ascending.append(o.get("direction", "maximize").startswith("min"))
    if not sort_cols:
        sort_cols, ascending = ["bleu_mean"], [False]
    lb = lb.sort_values(sort_cols, ascending=ascending, na_position="last", kind="stable").reset_index(drop=True)
    lb.insert(0, "rank", range(1, len(lb) + 1))
    return lb


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


def by_length_table(runs: list[RunRecord], keys: list[str]) -> pd.DataFrame:
    """BLEU/chrF per source-length bucket per run (metrics.json `by_length`)."""
    rows = []
    for r in runs:
        for b in r.metrics.get("by_length") or []:
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


DIGITS = {"aer": 3, "alignment_precision": 3, "alignment_recall": 3, "attention_entropy": 3}

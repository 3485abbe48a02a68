"""How far a run got: the validation history -> best step, the metric's recent slope, converged or not.

A run is `converged` only when its stopping rule ended it (patience exhausted on the monitored validation
metric); a run that hit a budget (max_steps, max_epochs, max_time) is not, however flat its curve looks. The
slope says how far from flat it was: the least-squares slope of the monitored metric against the step over
the last validations, per 1,000 steps (negative = still falling, for perplexity).
"""

from __future__ import annotations

import math

from harness.metrics.keys import (
    BEST_STEP,
    CONVERGED,
    MODE,
    STOP_REASON,
    VAL_BLEU,
    VAL_BLEU_BEST,
    VAL_METRIC,
    VAL_METRIC_BEST,
    VAL_METRIC_SLOPE,
    VAL_SLOPE_VALIDATIONS,
    VALIDATIONS,
)

SLOPE_VALIDATIONS = 5  # the last validations the slope is fitted to (fewer when the run has fewer)


def slope_per_1k_steps(steps: list[int], values: list[float]) -> float | None:
    """Least-squares slope of values against steps, per 1,000 steps; None with fewer than 2 distinct steps.

    >>> slope_per_1k_steps([0, 1000, 2000], [3.0, 2.0, 1.0])
    -1.0
    """
    pairs = [(s, v) for s, v in zip(steps, values) if v is not None and math.isfinite(v)]
    if len({s for s, _ in pairs}) < 2:
        return None
    n = len(pairs)
    mean_s = sum(s for s, _ in pairs) / n
    mean_v = sum(v for _, v in pairs) / n
    var = sum((s - mean_s) ** 2 for s, _ in pairs)
    cov = sum((s - mean_s) * (v - mean_v) for s, v in pairs)
    return 1000.0 * cov / var


def best_entry(history: list[dict], metric: str) -> dict | None:
    """The validation with the best value of `metric` (the first of equal ones, as a checkpoint keeps it)."""
    rows = [h for h in history if h.get(metric) is not None and math.isfinite(h[metric])]
    if not rows:
        return None
    sign = 1.0 if MODE[metric] == "max" else -1.0
    best = rows[0]
    for h in rows[1:]:
        if sign * h[metric] > sign * best[metric]:
            best = h
    return best


def summary(history: list[dict], metric: str, stop_reason: str) -> dict:
    """The metrics.json keys that say how training ended, from the validation history (rows with `step` and
    the validation metrics, in step order)."""
    best = best_entry(history, metric)
    recent = history[-SLOPE_VALIDATIONS:]
    bleu = best_entry(history, VAL_BLEU)
    return {
        CONVERGED: stop_reason == "early_stopping",
        STOP_REASON: stop_reason,
        VAL_METRIC: metric,
        VAL_METRIC_BEST: best[metric] if best else None,
        BEST_STEP: best["step"] if best else None,
        VAL_METRIC_SLOPE: slope_per_1k_steps([h["step"] for h in recent], [h.get(metric) for h in recent]),
        VAL_SLOPE_VALIDATIONS: len(recent),
        VALIDATIONS: len(history),
        VAL_BLEU_BEST: bleu[VAL_BLEU] if bleu else None,
    }

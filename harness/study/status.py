"""`harness reproduce TARGET --status`: how far a reproduction's studies are, read from its folder alone (nothing
is trained, loaded or written). Per study: the runs its grid has (points x seeds), how many finished (converged or
stopped by their budget), which are unfinished and how close each is to its stopping rule, and how many have not
started. Made for studies that run in stretches over days: the line to read before rerunning the command.

An unfinished run is a trials/<n>.partial/ folder: training now, or interrupted (rerun the reproduction to resume it
from its last checkpoint). Its validation history is logs/metrics.csv plus, after a resume, the rows kept aside in
logs/metrics.before-resume.csv (harness/runs/run.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.metrics.convergence import MODE, SLOPE_VALIDATIONS, slope_per_1k_steps
from harness.metrics.keys import BEST_STEP, BLEU, CONVERGED, STOP_REASON, VAL_METRIC, VAL_METRIC_BEST
from harness.paths import PROJECT_ROOT
from harness.report.load import read_validation_log
from harness.runs.layout import LOG_BEFORE_RESUME, METRICS_FILE, PARTIAL
from harness.study.spec import load_spec
from harness.study.summary import run_dirs_of, run_flat_config
from harness.study.targets import TARGETS, Target, row_of, spec_path, study_name


def _row(target: Target, flat: dict) -> str:
    row = row_of(target, flat)
    return row.name if row else "(no row of this target)"


def history(run_dir: Path) -> list[dict]:
    """Every validation of a run, also across resumes: the rows kept aside at the last resume, then the log's."""
    later = read_validation_log(run_dir)
    first = later[0]["step"] if later else None
    earlier = [h for h in read_validation_log(run_dir, log=LOG_BEFORE_RESUME) if first is None or h["step"] < first]
    return earlier + later


def patience_left(rows: list[dict], metric: str, min_delta: float) -> tuple[dict | None, int]:
    """The best validation and the validations since it without an improvement of more than `min_delta`, counted
    as the stopping rule counts them (Lightning's EarlyStopping)."""
    sign = 1.0 if MODE[metric] == "max" else -1.0
    best, waited = None, 0
    for h in rows:
        if metric not in h:
            continue
        if best is None or sign * (h[metric] - best[metric]) > min_delta:
            best, waited = h, 0
        else:
            waited += 1
    return best, waited


def _ago(path: Path) -> str:
    if not path.exists():
        return "no log yet"
    minutes = (time.time() - path.stat().st_mtime) / 60
    return f"last log {minutes:.0f} min ago" if minutes < 120 else f"last log {minutes / 60:.1f} h ago"


def unfinished_line(target: Target, run_dir: Path, flat: dict) -> str:
    metric = flat.get("train.early_stopping_metric") or "val_bleu"
    patience = flat.get("train.early_stopping") or 0
    rows = history(run_dir)
    head = f"trial {run_dir.name.removesuffix(PARTIAL)}: {_row(target, flat)}, seed {flat.get('seed')}"
    if not rows:
        return f"{head}: no validation yet ({_ago(run_dir / 'logs' / 'metrics.csv')})"
    last = rows[-1]
    best, waited = patience_left(rows, metric, float(flat.get("train.early_stopping_min_delta") or 0.0))
    recent = [h for h in rows if metric in h][-SLOPE_VALIDATIONS:]
    slope = slope_per_1k_steps([h["step"] for h in recent], [h[metric] for h in recent])
    parts = [f"step {last['step']:,}"]
    if metric in last:
        parts.append(f"{metric} {last[metric]:.2f}")
    if best is not None:
        rule = f", {waited} of {patience} validations without improvement" if patience else ""
        parts.append(f"best {best[metric]:.2f} at step {best['step']:,}{rule}")
    if slope is not None:
        parts.append(f"slope {slope:+.2f} per 1k steps")
    if "val_bleu" in last and metric != "val_bleu":
        parts.append(f"val_bleu {last['val_bleu']:.1f}")
    if "val_aer" in last:
        parts.append(f"val_aer {last['val_aer']:.3f}")
    parts.append(_ago(run_dir / "logs" / "metrics.csv"))
    return f"{head}: " + ", ".join(parts)


def finished_line(target: Target, run_dir: Path, flat: dict) -> str:
    m = json.loads((run_dir / METRICS_FILE).read_text())
    how = "converged" if m.get(CONVERGED) else f"stopped by its budget ({m.get(STOP_REASON)})"
    best = m.get(VAL_METRIC_BEST)
    at = f" (best {m.get(VAL_METRIC)} {best:.2f} at step {m.get(BEST_STEP):,})" if best is not None else ""
    score = f", BLEU {m[BLEU]:.2f}" if m.get(BLEU) is not None else ""
    aer = f", AER {m['aer']:.3f}" if m.get("aer") is not None else ""
    return f"trial {run_dir.name}: {_row(target, flat)}, seed {flat.get('seed')}: {how}{at}{score}{aer}"


def status(paper: str, scale: str, output: Path) -> str:
    """The progress report of one reproduction folder, as text."""
    target = TARGETS[paper]
    lines = [f"reproduce {paper} --scale {scale}: {output}"]
    for name in target.specs:
        path = spec_path(scale, name)
        spec = load_spec(path, check_points=False)
        study = study_name(paper, scale, path)
        trials = output / "runs" / study / "trials"
        done = run_dirs_of(output / "runs" / study)
        partial = [p for p in trials.glob(f"*{PARTIAL}") if p.name.removesuffix(PARTIAL).isdigit()]
        partial = sorted(
            (p for p in partial if (p / "config.yaml").is_file()), key=lambda p: int(p.name[: -len(PARTIAL)])
        )
        flats = {d: run_flat_config(d) for d in done + partial}
        total = spec.grid_size
        converged = sum(bool(json.loads((d / METRICS_FILE).read_text()).get(CONVERGED)) for d in done)
        # a run continued under a raised budget is one grid point with its stopped trial: count points, not trials
        started = len({(_row(target, f), f.get("seed")) for f in flats.values()})
        lines.append(
            f"  {study} ({path.relative_to(PROJECT_ROOT)}): {total} runs; {len(done)} finished ({converged} "
            f"converged, {len(done) - converged} stopped by their budget), {len(partial)} unfinished, "
            f"{max(0, total - started)} not started"
        )
        lines += [f"    {finished_line(target, d, flats[d])}" for d in done]
        lines += [f"    {unfinished_line(target, p, flats[p])}  [unfinished: rerun to resume]" for p in partial]
    return "\n".join(lines)

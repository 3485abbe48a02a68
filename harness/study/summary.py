"""A reproduction's numbers: each target row's runs (mean ± std over seeds, converged counts) beside the paper's
number, and reproduction.md, the page that shows them with the target's extra measurements."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from harness.config import flatten, read_yaml
from harness.metrics.keys import (
    AER,
    AER_DIAGONAL,
    AER_THRESHOLD,
    ALIGNMENT_PRECISION,
    ALIGNMENT_RECALL,
    BLEU,
    BY_LENGTH,
    CHRF,
    CONVERGED,
    EPOCHS,
    LENGTH_DROP,
    STOP_REASON,
    TRAIN_TIME,
    VAL_PPL,
)
from harness.report.load import without_continued
from harness.runs.layout import CONFIG_FILE, METRICS_FILE
from harness.study.targets import LENGTH_BUCKETS, Target, row_of


def expected_time(path: Path) -> str:
    """The `# expected time: ...` line of a spec/config header."""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#\s*expected (?:CPU )?time:\s*(.+)", line)
        if m:
            return m.group(1).strip()
    return "not stated"


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    # one run has no spread: None (shown without "±"), not 0.0
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return mean, std


def _fmt(mean, std, digits=2) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def run_dirs_of(study_dir: Path, superseded: bool = False) -> list[Path]:
    """Finished run directories of a study (trials/<n>/ with metrics.json), in trial order; without the trials
    that a later trial continued under a raised budget (its extends.json names them) unless `superseded`."""
    trials = Path(study_dir) / "trials"
    if not trials.is_dir():
        return []
    dirs = sorted(
        (d for d in trials.iterdir() if d.is_dir() and d.name.isdigit() and (d / METRICS_FILE).is_file()),
        key=lambda d: int(d.name),
    )
    return dirs if superseded else without_continued(dirs)


def run_flat_config(run_dir: Path) -> dict:
    doc = read_yaml(run_dir / CONFIG_FILE)
    doc.pop("_meta", None)
    return flatten(doc)


def summarize(target: Target, runs: list[Path], extras: dict) -> dict:
    """Our numbers per configuration (mean ± std over seeds) next to the paper's."""
    by_row: dict[str, list[tuple[Path, dict, dict]]] = {}
    unmatched = []
    for run in runs:
        flat = run_flat_config(run)
        metrics = json.loads((run / METRICS_FILE).read_text())
        row = row_of(target, flat)
        if row is None:
            unmatched.append(str(run))
            continue
        by_row.setdefault(row.name, []).append((run, flat, metrics))
    rows = []
    for r in target.rows:
        items = by_row.get(r.name, [])
        if not items and r.paper is None:
            continue
        # the numbers of a row are over its converged runs where it has any (an unconverged run's are not final:
        # never averaged with converged ones); a row without any shows all its runs, marked unconverged
        counted = [it for it in items if it[2].get(CONVERGED)] or items
        entry = {
            "configuration": r.name,
            "runs": len(items),
            "paper": r.paper,
            "paper_unk": r.paper_unk,
            "run_dirs": [str(p) for p, _, _ in items],
        }
        for metric in (
            BLEU,
            CHRF,
            AER,
            ALIGNMENT_PRECISION,
            ALIGNMENT_RECALL,
            AER_THRESHOLD,
            AER_DIAGONAL,
            LENGTH_DROP,
            TRAIN_TIME,
            VAL_PPL,
            EPOCHS,
        ):
            mean, std = _mean_std([m.get(metric) for _, _, m in counted])
            entry[metric] = mean
            entry[f"{metric}_std"] = std
        # converged: stopped by the stopping rule (metrics.json); runs from before it count as unconverged
        entry[CONVERGED] = sum(bool(m.get(CONVERGED)) for _, _, m in items)
        entry["stop_reasons"] = sorted({m.get(STOP_REASON) or "unknown" for _, _, m in items if not m.get(CONVERGED)})
        if target.unk_replace:
            effects = [extras.get("unk", {}).get(str(p)) for p, _, _ in counted]
            effects = [e for e in effects if e]
            if effects:
                entry["bleu_unk_replace"], entry["bleu_unk_replace_std"] = _mean_std(
                    [e["bleu_unk_replace"] for e in effects]
                )
                entry["unk_delta"], entry["unk_delta_std"] = _mean_std([e["delta"] for e in effects])
                entry["unk_tokens"] = sum(e["unk_tokens"] for e in effects) / len(effects)
        if target.length_data:
            buckets: dict[str, list[float]] = {}
            for _, _, m in counted:
                for b in m.get(BY_LENGTH) or []:
                    buckets.setdefault(b["bucket"], []).append(b["bleu"])
            entry[BY_LENGTH] = {b: _mean_std(v)[0] for b, v in buckets.items()}
        rows.append(entry)
    return {"rows": rows, "unmatched_runs": unmatched}


def render_markdown(target: Target, scale: str, summary: dict, extras: dict, meta: dict) -> str:
    lines = [f"# Reproduction: {target.title} ({scale} scale)", ""]
    lines += [
        f"Paper numbers: {target.source}. They are quoted as reported (the papers' data, model sizes and "
        f"tokenized BLEU); ours are {target.bleu_text} at the scale below, so compare directions "
        "and gaps, not absolute values.",
        "",
    ]
    lines += [
        f"- specs: {', '.join(meta['specs'])}",
        f"- expected time: {meta['expected_time']}",
        f"- wall time of this invocation: {meta['wall_s']:.0f} s",
        f"- runs: {meta['n_runs']}",
        "",
    ]
    rows = summary["rows"]
    has_aer = any(r.get(AER) is not None for r in rows)
    aer_head = ["AER (ours)", "P", "R", "AER > p", "diagonal AER", "beats diagonal"]
    head = ["configuration", "runs", "converged", "BLEU (ours)"] + (aer_head if has_aer else []) + ["paper"]
    lines += [
        "A run is converged when its stopping rule ended it (no improvement of the monitored validation metric "
        "for the rule's patience); a run stopped by its budget is not, and its numbers are not final. A row's "
        "numbers are over its converged runs where it has any, else over all its runs (then not final).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        conv = f"{r['converged']}/{r['runs']}" + (f" ({', '.join(r['stop_reasons'])})" if r["stop_reasons"] else "")
        cells = [r["configuration"], str(r["runs"]), conv, _fmt(r["bleu"], r["bleu_std"])]
        if has_aer:
            beats = "-" if r[AER] is None or r[AER_DIAGONAL] is None else ("yes" if r[AER] < r[AER_DIAGONAL] else "no")
            cells += [
                _fmt(r[AER], r["aer_std"], 3),
                _fmt(r[ALIGNMENT_PRECISION], None, 3),
                _fmt(r[ALIGNMENT_RECALL], None, 3),
                _fmt(r[AER_THRESHOLD], None, 3),
                _fmt(r[AER_DIAGONAL], None, 3),
                beats,
            ]
        cells.append(r["paper"] or "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if continued := extras.get("continued"):
        lines += [
            "Trials that their budget stopped and that a later trial continued from their last checkpoint under a "
            "raised budget (the continuation is counted above, in their place):",
            "",
        ]
        for c in continued:
            how = f": stopped by {c['stop_reason']} at {c['budget']}={c['was']}, continued under {c['now']}"
            lines.append(f"- {c['study']} trial {c['trial']} -> trial {c['by']}{how if c.get('budget') else ''}")
        lines.append("")
    if target.unk_replace:
        lines += [
            "## Unknown-word replacement (Luong et al. 2015 §4)",
            "",
            "Each attention run's test hypotheses decoded once; every `<unk>` then replaced by the source "
            "word with the highest attention weight (decode.unk_replace, harness/decode/evaluate.py "
            "replace_unknowns). " + target.paper_note,
            "",
            "| configuration | BLEU | BLEU + unk replace | delta | <unk> per run | paper before -> after |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            if r.get("bleu_unk_replace") is None:
                continue
            paper = f"{r['paper']} -> {r['paper_unk']}" if r.get("paper_unk") else "-"
            lines.append(
                f"| {r['configuration']} | {_fmt(r['bleu'], r['bleu_std'])} | "
                f"{_fmt(r['bleu_unk_replace'], r['bleu_unk_replace_std'])} | "
                f"{_fmt(r['unk_delta'], r['unk_delta_std'])} | {r['unk_tokens']:.0f} | {paper} |"
            )
        if skipped := extras.get("unk_skipped"):
            lines += ["", f"Not measured for {len(skipped)} run(s) restored from results/ without a checkpoint."]
        lines.append("")
    if target.aligner:
        lines += [
            "## Statistical aligner baseline",
            "",
            "Trained on the same training text + the gold test sentences (concatenated), scored on the gold "
            "test sentences (harness/data/aligners.py).",
            "",
            "| data | aligner | links | AER | P | R | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        for res in extras.get("aligner", []):
            for method, s in res["scores"].items():
                lines.append(
                    f"| {res['data']} ({res['test_pairs']} gold, {res['train_pairs']} train) | "
                    f"{res['aligner']} | {method} | {s['aer']:.3f} | {s['precision']:.3f} | "
                    f"{s['recall']:.3f} | {res['seconds']:.0f} |"
                )
        lines += ["", target.aligner_note, ""]
        sym = extras.get("symmetrised") or []
        if sym:
            lines += [
                "## Both directions, symmetrised (harness align)",
                "",
                "Each variant's two directions on the same gold (the reverse model's links transposed), and their "
                "links combined (Och & Ney 2003; Koehn et al. 2003); p: paired bootstrap of the combined links "
                "against the better direction's (1,000 resamples of the gold sentences).",
                "",
                "| configuration | seed | forward AER | reverse AER | intersection AER (P / R) | "
                "grow-diag-final-and AER (P / R) | beats the better direction |",
                "|---|---|---|---|---|---|---|",
            ]
            for e in sym:
                i, g = e["intersection"], e["grow-diag-final-and"]
                p = e.get("p_vs_better_direction") or {}
                beats = (
                    ", ".join(
                        m + (f" (p = {p[m]:.3f}{', not significant' if p[m] >= 0.05 else ''})" if m in p else "")
                        for m, b in e["beats_better_direction"].items()
                        if b
                    )
                    or "no"
                )
                lines.append(
                    f"| {e['configuration']} | {e['seed']} | {e['forward']['aer']:.3f} | {e['reverse']['aer']:.3f} | "
                    f"{i['aer']:.3f} ({i['precision']:.3f} / {i['recall']:.3f}) | "
                    f"{g['aer']:.3f} ({g['precision']:.3f} / {g['recall']:.3f}) | {beats} |"
                )
            lines.append("")
    if target.length_data:
        buckets = [f"{lo}-{hi}" for lo, hi in LENGTH_BUCKETS]
        lines += [
            "## BLEU by source length (words)",
            "",
            f"Test pairs per bucket: {extras.get('length_counts')}",
            "",
        ]
        keys = sorted(
            {b for r in rows for b in (r.get(BY_LENGTH) or {})},
            key=lambda b: float(re.findall(r"[0-9]+", str(b))[0]) if re.findall(r"[0-9]+", str(b)) else 0,
        )
        lines += [
            "| configuration | " + " | ".join(map(str, keys)) + " | paper (Fig. 2) |",
            "|" + "---|" * (len(keys) + 2),
        ]
        for r in rows:
            bl = r.get(BY_LENGTH) or {}
            lines.append(
                f"| {r['configuration']} | "
                + " | ".join(_fmt(bl.get(k), None) for k in keys)
                + f" | {r['paper'] or '-'} |"
            )
        lines += ["", f"(held-out buckets requested: {', '.join(buckets)})", ""]
    if summary["unmatched_runs"]:
        lines += [f"Runs that match no row: {', '.join(summary['unmatched_runs'])}", ""]
    lines += [
        "The full comparison report (leaderboard, significance, plots) is index.html / README.md in this folder.",
        "",
    ]
    return "\n".join(lines)

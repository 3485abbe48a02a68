"""`harness reproduce PAPER --scale tiny|small|paper`: rerun a paper's comparison and report it beside the
paper's numbers (as reported).

PAPER is one of the targets of harness/study/targets.yaml (their rows quote harness/report/papers.yaml). Scales:
* `tiny`  experiments/tiny/<spec>.yaml: tiny models, a few hundred sentences, seconds per run (smoke test);
* `small` experiments/small/<spec>.yaml: CPU-sized models on the real data, at most ~2 hours on 2 cores;
* `paper` experiments/paper/*.yaml: the papers' own sizes and data (WMT'14 via the hub; GPU cluster time).

tiny/small specs are sweep specs (harness/study/sweep.py): the reproduction runs them as Optuna studies (so a
second run resumes instead of starting over) into OUTPUT/runs/<study>/trials/<n>/, then adds what a plain
sweep does not measure: unknown-word replacement by attention (bahdanau2015, luong2015), the statistical
aligner baseline (alignment), and the held-out length-bucketed test set (length). Finally it renders the
comparison report (harness.report) into OUTPUT and writes OUTPUT/reproduction.md + reproduction.json with our
numbers next to the paper's (harness/study/summary.py); the extra measurements are
harness/study/measurements.py. OUTPUT defaults to reports/reproduce-<paper>/ (small) or
reports/reproduce-<paper>-<scale>/ (tiny, paper).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.experiment import load_config
from harness.io import atomic_write_text, write_json
from harness.paths import PROJECT_ROOT, data_root
from harness.report.load import continued_rows
from harness.report.significance import is_control
from harness.runs.layout import checkpoint_path
from harness.study.measurements import (
    aligner_baseline,
    prepare_length_data,
    symmetrised_rows,
    unk_replace_effect,
)
from harness.study.summary import expected_time, render_markdown, run_dirs_of, run_flat_config, summarize
from harness.study.sweep import sweep
from harness.study.targets import SCALES, TARGETS, Target, spec_path, study_name


def default_output(paper: str, scale: str = "small") -> Path:
    """reports/reproduce-PAPER/ (small scale) or reports/reproduce-PAPER-SCALE/."""
    return PROJECT_ROOT / "reports" / (f"reproduce-{paper}" if scale == "small" else f"reproduce-{paper}-{scale}")


def run_sweep(spec: Path, overrides: list[str], study: str, runs_dir: Path, workers: int, quiet: bool) -> int:
    """Run one sweep spec as an Optuna study, as `harness sweep` does (resumes when the study exists)."""
    # the study lives in an Optuna journal file beside its trials (plain text: results/ keeps a copy, so a fresh
    # clone can rebuild every table); a study started before on the default SQLite file stays there
    sqlite = runs_dir / study / "study.db"
    storage = f"sqlite:///{sqlite}" if sqlite.is_file() else f"journal:///{runs_dir / study / 'study.journal'}"
    return sweep(
        str(spec),
        overrides,
        study=study,
        storage=storage,
        workers=workers,
        reports=str(runs_dir),
        quiet=quiet,
    )


def run_paper_configs(target: Target, runs_dir: Path, overrides: list[str], quiet: bool) -> list[Path]:
    from harness.runs.run import train

    out = []
    for name in target.paper_configs:
        cfg = load_config(PROJECT_ROOT / "experiments" / "paper" / f"{name}.yaml", overrides)
        run_dir = runs_dir / name
        if not (run_dir / "metrics.json").is_file():
            train(cfg, run_dir, overwrite=True, progress=not quiet)
        out.append(run_dir)
    return out


def render_report(run_dirs: list[Path], out: Path, title: str, scale: str) -> str | None:
    """harness.report's page for the runs; returns a note when it could not be built."""
    if not run_dirs:
        return "no finished runs: report not built"
    from harness.report import load, render

    try:
        report = load([str(d) for d in run_dirs], title=title, n_bootstrap=100 if scale == "tiny" else 1000)
        render(report, out, with_animation=scale != "tiny")
    except HarnessError as e:
        return f"report not built: {e}"
    return None


def reproduce(
    paper: str,
    scale: str,
    output: Path | None = None,
    workers: int | None = None,
    overrides: list[str] | None = None,
    quiet: bool = False,
    dry_run: bool = False,
) -> dict:
    if paper not in TARGETS:
        raise HarnessError(f"reproduce: '{paper}' is not a reproduction target (expected one of {', '.join(TARGETS)})")
    if scale not in SCALES:
        raise HarnessError(f"reproduce --scale: '{scale}' is not one of {', '.join(SCALES)}")
    target = TARGETS[paper]
    overrides = list(overrides or [])
    out = Path(output) if output else default_output(paper, scale)
    workers = workers or (2 if scale == "small" else 1)
    if scale == "paper":
        if not target.paper_configs:
            raise HarnessError(
                f"reproduce {paper}: no paper-scale variant (the papers' models are trained on WMT'14; "
                "use --scale small)"
            )
        specs = [PROJECT_ROOT / "experiments" / "paper" / f"{n}.yaml" for n in target.paper_configs]
        expected = "GPU days per run (see each config's header); needs network access for hf:wmt14"
    else:
        specs = [spec_path(scale, s) for s in target.specs]
        expected = "; ".join(f"{s.stem}: {expected_time(s)}" for s in specs)
        missing = [f for f in target.data if not (data_root() / f).is_dir()]
        if missing:
            raise HarnessError(
                f"reproduce {paper}: shared data folder {data_root() / missing[0]} not found (set HARNESS_DATA_DIR)"
            )
    plan = {
        "paper": paper,
        "scale": scale,
        "output": str(out),
        "specs": [str(s.relative_to(PROJECT_ROOT)) for s in specs],
        "expected_time": expected,
        "workers": workers,
    }
    if not quiet or dry_run:
        print(f"reproduce {paper} --scale {scale}: {target.title}")
        print(f"  specs: {', '.join(plan['specs'])}")
        print(f"  expected time: {expected}")
        print(f"  output: {out}")
    if dry_run:
        return plan
    t0 = time.perf_counter()
    runs_dir = out / "runs"
    runs: list[Path] = []
    status = 0
    extras: dict = {}
    if scale == "paper":
        runs = run_paper_configs(target, runs_dir, overrides, quiet)
    else:
        for spec in specs:
            over = list(overrides)
            if target.length_data:
                over = prepare_length_data(out, scale) + over
                extras["length_counts"] = json.loads((out / "data" / "buckets.json").read_text())["test_per_bucket"]
            study = study_name(paper, scale, spec)
            rc = run_sweep(spec, over, study, runs_dir, workers, quiet)
            if rc == 130:  # Ctrl-C: the studies are kept; the same command resumes them
                raise KeyboardInterrupt
            status = max(status, rc)
            runs += run_dirs_of(runs_dir / study)
            if continued := continued_rows(runs_dir / study, run_dirs_of(runs_dir / study, superseded=True)):
                extras.setdefault("continued", []).extend(continued)
            if target.aligner:
                # tiny: a tenth of eflomal's iterations (its default grows as the corpus shrinks)
                rel = 0.1 if scale == "tiny" else 1.0
                extras.setdefault("aligner", []).append(aligner_baseline(spec, over, out, rel_iterations=rel))
    if target.aligner:
        extras["symmetrised"] = symmetrised_rows(runs, out)
    if target.unk_replace:
        extras["unk"] = {}
        for run in runs:
            if not (run / "unk_replace.json").is_file() and not checkpoint_path(run).is_file():
                # restored from results/ (harness results restore): no checkpoint to decode with; a model
                # without attention has nothing to copy from anyway
                if not is_control(run_flat_config(run)):
                    extras.setdefault("unk_skipped", []).append(str(run))
                continue
            effect = unk_replace_effect(run)
            if effect is not None:
                extras["unk"][str(run)] = effect
    summary = summarize(target, runs, extras)
    note = render_report(runs, out, f"Reproduction: {target.title} ({scale})", scale)
    meta = {**plan, "wall_s": time.perf_counter() - t0, "n_runs": len(runs)}
    text = render_markdown(target, scale, summary, extras, meta)
    if note:
        text += f"\nNote: {note}\n"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "reproduction.md", text)
    write_json(
        out / "reproduction.json",
        {
            "meta": meta,
            "summary": summary,
            "aligner": extras.get("aligner"),
            "unk_replace": extras.get("unk"),
            "symmetrised": extras.get("symmetrised"),
            "length_counts": extras.get("length_counts"),
            "continued": extras.get("continued"),
            "report_note": note,
            "status": status,
        },
    )
    print(text)
    return {
        "status": status,
        "output": str(out),
        "runs": [str(r) for r in runs],
        "summary": summary,
        "extras": extras,
    }

"""`harness report` (study or run directories -> HTML/Markdown/CSV report) and `harness animate` (GIF)."""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError


def cmd_report(args) -> int:
    from harness.report import load, render

    sources = args.sources
    runs_given = len(sources) > 1 or Path(sources[0]).is_dir()
    if runs_given:
        bad = [s for s in sources if not Path(s).is_dir()]
        if bad:
            raise HarnessError(
                f"report: {bad[0]} is not a run directory (with several arguments, each must be a "
                "run directory containing metrics.json)"
            )
        if args.output is None:
            raise HarnessError("report: --output DIR is required when reporting run directories")
        if args.storage:
            raise HarnessError("report: --storage applies to a study name, not to run directories")
        output = Path(args.output)
    else:
        output = Path(args.output) if args.output else Path("reports") / sources[0]
    if args.bootstrap < 1:
        raise HarnessError(f"--bootstrap {args.bootstrap}: expected a number of resamples >= 1")
    if args.index < 0:
        raise HarnessError(f"--index {args.index}: expected a test sentence index >= 0")
    report = load(
        sources if runs_given else sources[0],
        args.storage,
        significance=not args.no_significance,
        n_bootstrap=args.bootstrap,
        title=args.title,
    )
    page = render(report, output, args.index, with_animation=not args.no_animation)
    lb, unconverged = report.leaderboard, report.unconverged
    best = (
        f"best converged {lb.iloc[0]['configuration']} (BLEU {lb.iloc[0]['bleu_mean']:.2f})"
        if len(lb)
        else "no configuration converged: nothing ranked"
    )
    print(
        f"{page}: {len(report.runs)} runs, {len(lb) + len(unconverged)} configurations "
        f"({len(lb)} ranked, {len(unconverged)} without a converged run listed apart); {best}"
    )
    return 0


def cmd_animate(args) -> int:
    from harness.io import atomic_write_bytes
    from harness.report.animate import animate

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"run directory {run_dir}: not found")
    output = Path(args.output) if args.output else run_dir / "attention" / f"{args.split}-{args.index}.gif"
    data = animate(run_dir, args.index, args.split)
    atomic_write_bytes(output, data)
    print(output)
    return 0


def register(sub) -> None:
    s = sub.add_parser(
        "report",
        help="HTML/Markdown/CSV comparison report of a study or of run directories",
        description="harness report STUDY [--storage URL] [--output reports/STUDY/]  or  "
        "harness report RUN_DIR RUN_DIR ... --output DIR",
    )
    s.add_argument(
        "sources",
        nargs="+",
        help="an Optuna study name, or run directories (folders with metrics.json; "
        "a folder of run directories stands for all of them)",
    )
    s.add_argument("--storage", default=None, help="study storage URL (default sqlite:///reports/STUDY/study.db)")
    s.add_argument("--output", "-o", default=None, help="output folder (default reports/STUDY/)")
    s.add_argument("--title", default=None)
    s.add_argument("--index", type=int, default=0, help="test sentence shown in heatmaps and the animation")
    s.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (default 1000)")
    s.add_argument("--no-significance", action="store_true", help="skip the paired bootstrap tests")
    s.add_argument("--no-animation", action="store_true", help="skip the decoding animation")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("animate", help="animated GIF of a run decoding one test sentence, one frame per output word")
    s.add_argument("run_dir")
    s.add_argument("--index", type=int, default=0, help="sentence index in the split (default 0)")
    s.add_argument("--split", default="test")
    s.add_argument("--output", "-o", default=None, help="GIF file (default RUN_DIR/attention/<split>-<N>.gif)")
    s.set_defaults(func=cmd_animate)

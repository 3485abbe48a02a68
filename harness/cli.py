"""`harness` command line: the one place that declares every subcommand and its options; each command is a
plain function of its module, which a `cmd_*` function here calls with the parsed arguments. (Over 500 lines:
every subcommand's options in one file, on purpose.)

Errors from bad input are one line on stderr with exit status 2 (HarnessError); nothing else is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.bench import TOOLKIT_NAMES
from harness.bench.throughput import PRESETS
from harness.console import quiet_libraries
from harness.errors import HarnessError
from harness.metrics import keys
from harness.paths import PROJECT_ROOT
from harness.runs import align as align_runs
from harness.runs.align import METHODS
from harness.study.results import RESULTS
from harness.study.slurm import SLURM_TIME_MIN
from harness.study.targets import SCALES, TARGETS


# ------------------------------------------------------------------------------------------ commands
def cmd_list(args) -> int:
    from harness.data.corpora import available
    from harness.models.scores import ALIASES, SCORES
    from harness.models.seq2seq import ARCHS

    print("architectures (model.arch):")
    for name, spec in ARCHS.items():
        scores = ", ".join(spec.scores) if spec.scores else "any"
        types = ", ".join(spec.attention_types)
        print(f"  {name:<14} {spec.paper}  [scores: {scores}; attention_type: {types}]")
    print("score functions (model.score):")
    for name, cls in SCORES.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        alias = [a for a, c in ALIASES.items() if c == name]
        print(f"  {name:<14} {doc}" + (f"  (aliases: {', '.join(alias)})" if alias else ""))
    print(f"  {'none':<14} no attention: the decoder sees only the encoder's final summary (the control)")
    print("presets (experiments/):")
    for p in sorted((PROJECT_ROOT / "experiments").glob("*.yaml")):
        print(f"  {p.relative_to(PROJECT_ROOT)}")
    for p in sorted((PROJECT_ROOT / "experiments" / "paper").glob("*.yaml")):
        print(f"  {p.relative_to(PROJECT_ROOT)}")
    print("data sets found (data.name):")
    for name in available():
        print(f"  {name}")
    return 0


def cmd_train(args) -> int:
    from harness.experiment import load_config
    from harness.runs.run import train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, args.output, overwrite=args.overwrite, resume=args.resume, progress=not args.quiet)
    m = result.metrics
    print(
        f"{result.run_dir}: BLEU {m[keys.BLEU]:.2f}  chrF {m[keys.CHRF]:.2f}  "
        f"AER {m[keys.AER] if m.get(keys.AER) is None else round(m[keys.AER], 3)}  "
        f"params {m[keys.PARAMS]:,}  {m[keys.TRAIN_SPEED] or 0:.0f} tok/s"
    )
    return 0


def cmd_evaluate(args) -> int:
    from harness.runs.run import evaluate

    if args.n_best is not None and args.n_best < 1:
        raise HarnessError(f"--n-best: expected an integer >= 1, got {args.n_best}")
    m = evaluate(
        args.run_dir,
        args.split,
        args.beam,
        forced=True if args.forced else None,
        progress=not args.quiet,
        n_best=args.n_best,
    )
    print(json.dumps({k: v for k, v in m.items() if k != keys.BY_LENGTH}, indent=2))
    return 0


def cmd_translate(args) -> int:
    from harness.runs.translate import translate_stream

    translate_stream(args.run_dir, sys.stdin, sys.stdout, beam=args.beam, attention_file=args.attention)
    return 0


def cmd_plot_attention(args) -> int:
    from harness.report.heatmap import plot_attention

    if args.index < 0:
        raise HarnessError(f"--index {args.index}: expected a sentence index >= 0")
    print(plot_attention(args.run_dir, args.index, args.split, args.forced, args.output))
    return 0


def cmd_sweep(args) -> int:
    from harness.study.slurm import SlurmOptions
    from harness.study.sweep import sweep

    slurm = SlurmOptions(
        args.slurm,
        args.slurm_partition,
        args.slurm_time,
        args.slurm_cpus_per_task,
        args.slurm_gpus_per_node,
        args.slurm_mem,
        args.slurm_account,
        tuple(args.slurm_arg or ()),
        args.dry_run,
        args.slurm_cluster,
    )
    return sweep(
        args.spec,
        args.overrides,
        args.study,
        args.storage,
        args.workers,
        args.n_trials,
        args.gpus_per_trial,
        args.heartbeat,
        args.reports,
        args.worker,
        args.quiet,
        slurm,
    )


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


def cmd_bench(args) -> int:
    from harness.bench.profile import run_profile
    from harness.bench.throughput import render_bench_table, run_bench

    if args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        raise HarnessError("--steps and --repeats must be >= 1, --warmup >= 0")
    presets = [a.removesuffix("_multi30k") for a in args.archs]
    if args.scaling is not None:
        from harness.bench.scaling import AXES, parse_values, render_scaling_table, run_scaling, split_overrides

        if len(presets) > 1 and args.archs != PRESETS:
            raise HarnessError("--scaling measures one preset: give one with --archs (default bahdanau2015)")
        axis_items, over_1 = split_overrides(args.scaling)
        base_items, over_2 = split_overrides(args.scaling_base)
        axes = parse_values(axis_items or list(AXES), "--scaling")
        base = {k: v[0] for k, v in parse_values(base_items, "--scaling-base", single=True).items()}
        preset = "bahdanau2015" if args.archs == PRESETS else presets[0]
        overrides = [*args.overrides, *over_1, *over_2]
        doc = run_scaling(preset, axes, base, args.steps, args.warmup, Path(args.output), overrides)
        print(render_scaling_table(doc))
        out = Path(args.output)
        print(f"written: {out / 'scaling.json'}, {out / 'scaling.md'}, {out / 'scaling.png'}")
        return 0 if all(not r.get("error") for rows in doc["axes"].values() for r in rows) else 1
    if args.profile:
        if args.archs == PRESETS:
            presets = ["bahdanau2015"]
        run_profile(presets, args.steps, Path(args.output), args.overrides)
        print((Path(args.output) / "profile.md").read_text())
        print(f"written: {Path(args.output) / 'profile.json'}, {Path(args.output) / 'profile.md'}")
        return 0
    doc = run_bench(
        presets,
        args.steps,
        args.repeats,
        args.warmup,
        args.decode_sentences,
        Path(args.output),
        args.overrides,
        args.decode_after,
    )
    print(render_bench_table(doc))
    print(f"written: {Path(args.output) / 'bench.json'}, {Path(args.output) / 'bench.md'}")
    return 0 if all(not r.get("error") for r in doc["results"]) else 1


def cmd_bench_peers(args) -> int:
    from harness.bench.peers import run_peers

    return run_peers(args.steps, args.toolkits, args.cache, args.decode_sentences, args.skip_install, args.output)


def cmd_reproduce(args) -> int:
    from harness.study.reproduce import default_output, reproduce

    if args.status:
        from harness.study.status import status

        output = Path(args.output) if args.output else default_output(args.paper, args.scale)
        if not (output / "runs").is_dir():
            raise HarnessError(f"reproduce {args.paper} --status: {output} has no runs/ folder (nothing started yet)")
        print(status(args.paper, args.scale, output))
        return 0
    result = reproduce(args.paper, args.scale, args.output, args.workers, args.overrides, args.quiet, args.dry_run)
    return int(result.get("status", 0)) if isinstance(result, dict) else 0


def cmd_align(args) -> int:
    from harness.runs.align import align_files

    print(
        align_files(
            args.run_dir,
            args.output,
            args.reverse_run_dir,
            args.split,
            args.src,
            args.tgt,
            args.method,
            args.align_method,
            args.gold,
            args.gold_format,
            args.gold_target_first,
        )
    )
    return 0


def cmd_results(args) -> int:
    from harness.study.reproduce import default_output
    from harness.study.results import build, collect, restore

    if args.action == "restore":
        if not args.outputs:
            raise HarnessError("results restore: name the target, e.g. `harness results restore britz2017`")
        target, *rest = args.outputs
        output = Path(rest[0]) if rest else default_output(target)
        r = restore(target, output, Path(args.into))
        print(
            f"{r['output']}: {r['trials']} finished trials of {Path(args.into) / target}, {r['files_copied']} files "
            f"copied; rerun `harness reproduce {target} --scale small` to resume the study"
        )
        return 0
    if args.action == "collect":
        outputs = [Path(p) for p in args.outputs] or sorted(
            p for p in (PROJECT_ROOT / "reports").glob("reproduce-*") if (p / "runs").is_dir()
        )
        outputs = [p for p in outputs if p.name.removeprefix("reproduce-") in TARGETS]
        for output in outputs:
            r = collect(output, Path(args.into))
            where = Path(args.into) / r["target"]
            print(f"{output}: {r['trials']} finished trials, {r['files_copied']} files copied into {where}")
        return 0
    path = build(Path(args.into), report=not args.no_report)
    print(f"wrote {path}")
    return 0


# ------------------------------------------------------------------------------------------ parsers
class _IntermixedParser(argparse.ArgumentParser):
    """`harness sweep SPEC --study X data.name=multi30k`: key=value overrides may also follow the options
    (as `make sweep ARGS=...` puts them); plain argparse only takes positionals before them."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inside:  # parse_known_intermixed_args calls back into parse_known_args
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def add_plot_attention(sub) -> None:
    """`harness plot-attention`"""
    s = sub.add_parser("plot-attention", help="attention heatmap of one sentence of a run (PNG)")
    s.add_argument("run_dir")
    s.add_argument("--index", type=int, default=0, help="sentence index in the split (default 0)")
    s.add_argument("--split", default="test")
    s.add_argument("--forced", action="store_true", help="teacher-forced attention over the reference")
    s.add_argument("--output", "-o", default=None, help="PNG file (default RUN_DIR/attention/<split>-<N>.png)")
    s.set_defaults(func=cmd_plot_attention)


def add_sweep(sub) -> None:
    """`harness sweep`"""
    s = sub.add_parser("sweep", help="run an Optuna study from a sweeps/*.yaml spec with N workers")
    s.add_argument("spec", help="sweep spec, e.g. sweeps/score_functions.yaml")
    s.add_argument("overrides", nargs="*", help="dotted key=value overrides for every trial, e.g. data.name=multi30k")
    s.add_argument("--study", default=None, help="study name (default: the spec's file name)")
    s.add_argument(
        "--storage",
        default=None,
        help="sqlite:///FILE, postgresql://USER:PASS@HOST/DB or journal:///FILE "
        "(default: sqlite:///reports/STUDY/study.db)",
    )
    s.add_argument("--workers", type=int, default=1, help="worker processes (or SLURM jobs with --slurm)")
    s.add_argument("--n-trials", type=int, default=None, help="trial budget (default: the spec's n_trials)")
    s.add_argument("--gpus-per-trial", type=int, default=1, help="GPUs per trial; > 1 trains with DDP")
    s.add_argument("--slurm", action="store_true", help="submit the workers as SLURM jobs (submitit)")
    s.add_argument("--slurm-cluster", default=None, help=argparse.SUPPRESS)
    s.add_argument("--slurm-partition", default=None, help="--slurm: the partition of the worker jobs")
    s.add_argument(
        "--slurm-time", default=None, help=f"--slurm: time limit of a worker job in minutes ({SLURM_TIME_MIN})"
    )
    s.add_argument(
        "--slurm-cpus-per-task", default=None, help="--slurm: CPUs of a worker job (the partition's default)"
    )
    s.add_argument(
        "--slurm-gpus-per-node",
        default=None,
        help="--slurm: GPUs of a worker job (default: --gpus-per-trial; 0 on a CPU partition)",
    )
    s.add_argument(
        "--slurm-mem", default=None, help="--slurm: memory of a worker job, e.g. 8G (the partition's default)"
    )
    s.add_argument("--slurm-account", default=None, help="--slurm: the account the worker jobs are charged to")
    s.add_argument(
        "--slurm-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--slurm: any other sbatch option, e.g. qos=high or constraint=a100 (repeatable)",
    )
    s.add_argument(
        "--dry-run", action="store_true", help="--slurm: print the worker jobs' sbatch script, submit nothing"
    )
    s.add_argument(
        "--heartbeat",
        type=float,
        default=10.0,
        help="seconds between trial heartbeats (RDB storages); a trial silent for 3x this is retried",
    )
    s.add_argument("--reports", default="reports", help="folder for STUDY/ (trials, default storage)")
    s.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    s.add_argument("--quiet", action="store_true", help="no per-trial lines, only the summary")
    s.set_defaults(func=cmd_sweep)
    s.__class__ = _IntermixedParser


def add_report(sub) -> None:
    """`harness report` and `harness animate`"""
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


def add_bench(sub) -> None:
    """`harness bench` and `harness bench-peers`"""
    s = sub.add_parser("bench", help="training/decoding speed, memory and the matmul limit of every preset")
    s.add_argument(
        "--archs",
        nargs="+",
        default=PRESETS,
        metavar="PRESET",
        help=f"presets on Multi30k (default: {' '.join(PRESETS)})",
    )
    s.add_argument("--steps", type=int, default=30, help="training steps per timed window (default 30)")
    s.add_argument("--repeats", type=int, default=3, help="timed windows; the median is reported (default 3)")
    s.add_argument("--warmup", type=int, default=5, help="untimed training steps first (default 5)")
    s.add_argument(
        "--decode-sentences",
        type=int,
        default=500,
        help="test_2016_flickr sentences to decode (0 = all 1000; default 500)",
    )
    s.add_argument(
        "--decode-after",
        type=int,
        default=300,
        help="train on (untimed) to this many steps before decoding, so outputs have realistic lengths (default 300)",
    )
    s.add_argument("--output", default="reports/bench", help="folder for bench.json and bench.md")
    s.add_argument(
        "--profile",
        action="store_true",
        help="instead: torch.profiler of --steps training steps and of decoding (default preset "
        "bahdanau2015) -> profile.json, profile.md",
    )
    s.add_argument(
        "--scaling",
        nargs="*",
        default=None,
        metavar="AXIS[=V1,V2]",
        help="instead: how the cost grows, one preset (default bahdanau2015) along src_len, batch, vocab, hidden "
        "(all four by default; AXIS=V1,V2 picks the values) -> scaling.json, scaling.md, scaling.png",
    )
    s.add_argument(
        "--scaling-base",
        nargs="*",
        default=[],
        metavar="AXIS=V",
        help="--scaling: the value of the axes not varied (default src_len=20 batch=64 vocab=8000, hidden: the "
        "preset's)",
    )
    s.add_argument("overrides", nargs="*", help="key=value overrides for every preset, e.g. train.batch_size=32")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("bench-peers", help="train OpenNMT-py, JoeyNMT and this harness at one configuration")
    s.add_argument("--steps", type=int, default=880, help="training steps for every toolkit (default 880 ≈ 2 epochs)")
    s.add_argument(
        "--toolkits",
        nargs="+",
        default=list(TOOLKIT_NAMES),
        choices=list(TOOLKIT_NAMES),
    )
    s.add_argument(
        "--cache",
        default=None,
        help="where the virtualenvs, data and runs go (default ~/.cache/attention-harness/peers)",
    )
    s.add_argument("--decode-sentences", type=int, default=0, help="test sentences to decode (0 = all)")
    s.add_argument("--skip-install", action="store_true", help="use the virtualenvs as they are")
    s.add_argument("--output", default="reports/bench", help="folder for peers.json and peers.md")
    s.set_defaults(func=cmd_bench_peers)


def add_reproduce(sub) -> None:
    """`harness reproduce`"""
    s = sub.add_parser(
        "reproduce",
        help="rerun a paper's comparison (tiny / small / paper scale), reported beside the paper's numbers",
        description="targets: " + "; ".join(f"{t.name}: {t.title}" for t in TARGETS.values()),
    )
    s.add_argument("paper", choices=list(TARGETS), help="reproduction target")
    s.add_argument("overrides", nargs="*", help="dotted key=value overrides for every run, e.g. train.threads=2")
    s.add_argument(
        "--scale",
        default="small",
        choices=SCALES,
        help="tiny (seconds, smoke test), small (CPU, <= ~2 h on 2 cores), paper (GPU; WMT'14 via the hub)",
    )
    s.add_argument(
        "--output",
        "-o",
        default=None,
        help="output folder (default reports/reproduce-PAPER/ for small, reports/reproduce-PAPER-SCALE/)",
    )
    s.add_argument("--workers", type=int, default=None, help="sweep worker processes (default 2 for small, else 1)")
    s.add_argument("--dry-run", action="store_true", help="print the plan and the expected time, run nothing")
    s.add_argument(
        "--status",
        action="store_true",
        help="how far the studies in the output folder are (finished, unfinished with their stopping rule's "
        "patience, not started); runs nothing",
    )
    s.add_argument("--quiet", action="store_true", help="no per-trial lines or progress bars")
    s.set_defaults(func=cmd_reproduce)


def add_align(sub) -> None:
    """`harness align`"""
    s = sub.add_parser(
        "align",
        help="word-align a parallel text with a trained model (or two opposite directions, symmetrised)",
        description=align_runs.__doc__.split("\n\n")[0],
    )
    s.add_argument("run_dir", help="run directory of a model trained source -> target")
    s.add_argument("reverse_run_dir", nargs="?", default=None, help="optional: a model trained target -> source")
    s.add_argument("--split", default=None, help="a split of the first run's data set (e.g. test)")
    s.add_argument("--src", default=None, help="source sentences, one per line (with --tgt)")
    s.add_argument("--tgt", default=None, help="target sentences, one per line (with --src)")
    s.add_argument("--output", "-o", required=True, help="links file to write (Pharaoh i-j, source first, 0-based)")
    s.add_argument("--method", default="grow-diag-final-and", choices=METHODS, help="symmetrisation of 2 directions")
    s.add_argument("--align-method", default=None, choices=["argmax", "shift-att"], help="default: the run's")
    s.add_argument("--gold", default=None, help="gold alignments of the sentence pairs: prints AER / P / R")
    s.add_argument("--gold-format", default="pharaoh", choices=["pharaoh", "talp"])
    s.add_argument("--gold-target-first", action="store_true", help="the gold file's first index is the target")
    s.set_defaults(func=cmd_align)


def add_results(sub) -> None:
    """`harness results`"""
    s = sub.add_parser("results", help="collect the studies' light artifacts into results/, build RESULTS.md")
    s.add_argument("action", choices=["collect", "build", "restore"])
    s.add_argument(
        "outputs",
        nargs="*",
        help="collect: reproduction folders (default: reports/reproduce-*); restore: TARGET [FOLDER] (default "
        "reports/reproduce-TARGET), seeded from results/TARGET so that `harness reproduce` resumes the study",
    )
    s.add_argument("--into", default=str(RESULTS), help="the results folder (default: results/)")
    s.add_argument("--no-report", action="store_true", help="build: tables only, no report plots")
    s.set_defaults(func=cmd_results)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description="Benchmark and ablation harness for attention in NMT")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="architectures, score functions, presets, data sets")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("train", help="train, evaluate on the test split, write a run directory")
    s.add_argument("config", help="experiment YAML, e.g. experiments/bahdanau2015_synthetic.yaml")
    s.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. model.score=dot")
    s.add_argument("--output", "-o", required=True, help="run directory to create")
    s.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    s.add_argument("--resume", action="store_true", help="continue from OUTPUT(.partial)/checkpoints/last.ckpt")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="reload the best checkpoint and recompute metrics.json for a split")
    s.add_argument("run_dir")
    s.add_argument("--split", default=None, help="split name (default: the data set's test split)")
    s.add_argument("--beam", type=int, default=None, help="beam size (default: the run's decode.beam)")
    s.add_argument("--forced", action="store_true", help="also forced-decode the references for AER")
    s.add_argument("--n-best", type=int, default=None, help="write the K best hypotheses to RUN_DIR/<split>.nbest")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("translate", help="translate source sentences from stdin to stdout")
    s.add_argument("run_dir")
    s.add_argument("--beam", type=int, default=None)
    s.add_argument("--attention", default=None, help="write the attention of every translation to this .npz")
    s.set_defaults(func=cmd_translate)
    for add in (add_plot_attention, add_sweep, add_report, add_bench, add_reproduce, add_align, add_results):
        add(sub)
    return p


def demo_parser() -> argparse.ArgumentParser:
    """`make demo` (python -m harness.demo)."""
    p = argparse.ArgumentParser(prog="harness.demo")
    p.add_argument("overrides", nargs="*", help="key=value overrides for both models, e.g. train.max_steps=300")
    p.add_argument("--output", default=str(PROJECT_ROOT / "reports" / "demo"))
    p.add_argument("--quiet", action="store_true")
    return p


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """argparse, plus key=value overrides anywhere on the line: `harness reproduce X --scale small a.b=1`
    (argparse alone stops filling a `nargs="*"` positional once an option has come between)."""
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*(args.overrides or []), *extra]
    elif extra:
        parser.parse_args(argv)  # argparse's own one-line error for what is really unknown
    return args


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    parser = build_parser()
    args = parse_args(parser, argv)
    if getattr(args, "beam", None) is not None and args.beam < 1:
        print(f"error: --beam: expected an integer >= 1, got {args.beam}", file=sys.stderr)
        return 2
    try:
        status = args.func(args)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the run directory is marked incomplete; rerun with --resume to continue", file=sys.stderr)
        status = 130
    return status


def entry() -> None:
    """The `harness` console script and `python -m harness.cli`: main(), then exit with its status."""
    try:
        status = main()
    except KeyboardInterrupt:  # a second Ctrl-C while the first was being reported: the same interruption
        status = 130
    if status == 130:
        # the interruption is handled and reported: a late or repeated Ctrl-C while the interpreter shuts down
        # (library atexit hooks) must not turn exit status 130 into death by signal. Only here, in the process
        # that is about to exit: in-process callers of main() keep their own SIGINT handling.
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)


if __name__ == "__main__":
    entry()

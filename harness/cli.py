"""`harness` command line: a thin layer that parses arguments and wires the modules.

Errors from bad input are one line on stderr with exit status 2 (HarnessError); nothing else is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings

from harness.errors import HarnessError
from harness.paths import PROJECT_ROOT


def _quiet_libraries() -> None:
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "0")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*smaller than the logging interval.*")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)


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
        f"{result.run_dir}: BLEU {m['bleu']:.2f}  chrF {m['chrf']:.2f}  "
        f"AER {m['aer'] if m.get('aer') is None else round(m['aer'], 3)}  "
        f"params {m['params']:,}  {m['train_tokens_per_sec'] or 0:.0f} tok/s"
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
    print(json.dumps({k: v for k, v in m.items() if k != "by_length"}, indent=2))
    return 0


def cmd_translate(args) -> int:
    from harness.runs.translate import translate_stream

    translate_stream(args.run_dir, sys.stdin, sys.stdout, beam=args.beam, attention_file=args.attention)
    return 0


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

    for register in _extensions():
        register(sub)
    return p


def _extensions():
    """Subcommands contributed by later modules (sweep, report, bench, plots): each exposes register(sub)."""
    import importlib

    out = []
    for mod in (
        "harness.report.heatmap",
        "harness.study.sweep",
        "harness.report.cli",
        "harness.bench.throughput",
        "harness.study.reproduce",
        "harness.runs.align",
        "harness.report.results",
    ):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod or (e.name and mod.startswith(e.name)):
                continue
            raise
        out.append(m.register)
    return out


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
    _quiet_libraries()
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

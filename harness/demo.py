"""`make demo`: what attention fixes, in minutes on a CPU.

Trains `seq2seq` (no attention: one summary vector) and `bahdanau` (additive attention) on the synthetic
task, prints BLEU overall and for short vs long source sentences, and writes everything under
reports/demo/ (run directories, W&B offline runs, the HTML report).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.cli import demo_parser
from harness.config import replace
from harness.console import quiet_libraries
from harness.errors import HarnessError
from harness.experiment import load_config
from harness.metrics import keys
from harness.metrics.bleu import corpus_scores
from harness.paths import PROJECT_ROOT
from harness.runs.layout import hypotheses_path
from harness.runs.provenance import load_run_config

MODELS = [("seq2seq", "experiments/seq2seq_synthetic.yaml"), ("bahdanau", "experiments/bahdanau2015_synthetic.yaml")]
SHORT_MAX = 20  # source words; "long" is everything longer


def short_long_bleu(run_dir: Path) -> tuple[float, float, int, int]:
    from harness.data.corpora import load_corpus

    cfg = load_run_config(run_dir)
    test = load_corpus(cfg.data).splits["test"]
    hyps = hypotheses_path(run_dir).read_text(encoding="utf-8").splitlines()
    short = [i for i, s in enumerate(test.src) if len(s.split()) <= SHORT_MAX]
    long = [i for i, s in enumerate(test.src) if len(s.split()) > SHORT_MAX]
    b_short = corpus_scores([hyps[i] for i in short], [test.tgt[i] for i in short]).bleu
    b_long = corpus_scores([hyps[i] for i in long], [test.tgt[i] for i in long]).bleu
    return b_short, b_long, len(short), len(long)


def main(argv: list[str] | None = None) -> int:
    from harness.runs.run import train

    quiet_libraries()
    args = demo_parser().parse_args(argv)
    out = Path(args.output)
    runs = []
    try:
        for name, preset in MODELS:
            cfg = load_config(PROJECT_ROOT / preset, args.overrides)
            cfg = replace(cfg, {"tracking.wandb.group": cfg.tracking.wandb.group or "demo"})
            print(f"== training {name} ({preset}) ==", flush=True)
            result = train(cfg, out / name, overwrite=True, progress=not args.quiet)
            runs.append((name, result.run_dir, result.metrics))
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print()
    short, long = f"BLEU <={SHORT_MAX} words", f"BLEU >{SHORT_MAX} words"
    print(f"{'model':<10} {'BLEU':>6} {short:>18} {long:>17} {'AER':>6} {'params':>8}")
    rows = []
    for name, run_dir, m in runs:
        bs, bl, ns, nl = short_long_bleu(run_dir)
        aer = "-" if m.get(keys.AER) is None else f"{m[keys.AER]:.3f}"
        print(f"{name:<10} {m[keys.BLEU]:6.2f} {bs:18.2f} {bl:17.2f} {aer:>6} {m[keys.PARAMS]:8,}")
        rows.append(
            {"model": name, "bleu": m[keys.BLEU], "bleu_short": bs, "bleu_long": bl, "n_short": ns, "n_long": nl}
        )
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    gap = rows[1]["bleu_long"] - rows[0]["bleu_long"]
    print(
        f"\nOn long sentences attention {'wins' if gap > 0 else 'does NOT win'} by {gap:+.2f} BLEU "
        f"({rows[0]['n_long']} test sentences > {SHORT_MAX} words)."
    )
    from harness.report import render_runs

    page = render_runs([r for _, r, _ in runs], out, "attention-harness demo: seq2seq vs Bahdanau attention")
    print(f"report: {page}")
    wandb_dirs = sorted(str(d) for _, r, _ in runs for d in (r / "wandb").glob("offline-run-*"))
    if wandb_dirs:
        print("W&B offline runs (upload later with your key):")
        for d in wandb_dirs:
            print(f"  wandb sync {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Paired bootstrap resampling (Koehn 2004) of each configuration against the best converged one and against
the no-attention control, with sacreBLEU's implementation (`sacrebleu.significance.PairedTest`, the code behind
`sacrebleu --paired-bs`).

A configuration's hypotheses are those of the runs its table row is over: its converged seeds, or all of its
seeds when none converged (such a configuration is compared, but is never the "best" baseline).

Pooling over seeds: a configuration's test hypotheses are the concatenation of its runs' `test.hyp` in seed
order, the references repeated once per seed. Two configurations are paired on the seeds they share (seed k
of one with seed k of the other); without shared seeds, by seed rank. Sentences are what is resampled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.report.load import RunRecord
from harness.report.tables import _sort_value
from harness.runs.layout import read_hypotheses

SIGNIFICANCE_COLUMNS = [
    "vs",
    "baseline",
    "configuration",
    "baseline BLEU",
    "BLEU",
    "delta",
    "p_value",
    "significant",
    "sentences",
    "paired on",
    "converged",
]
ALPHA = 0.05
NOTE = (
    "Paired bootstrap resampling (Koehn 2004) with sacreBLEU's `--paired-bs` implementation, against the best "
    "converged configuration (leaderboard rank 1) and the best no-attention control; a configuration counts "
    "its converged seeds only (all seeds for an unconverged one, which is compared but never a baseline). {n} "
    "resamples of the test sentences (with replacement, the same sentences for both systems; seeds pooled "
    "by concatenating each configuration's test.hyp in seed order against the references repeated per "
    "seed), random seed {seed}. p is the share of resamples whose mean-centred absolute BLEU difference "
    "exceeds the observed one, i.e. how often a difference this large would appear by chance if the two "
    'systems were equally good. "significant" means p < 0.05. A configuration compared with itself '
    "(identical hypotheses) gets p = 1 (sacreBLEU's formula would return 1/(n+1) in that degenerate case). "
    "The test says nothing about variation between training seeds beyond what the pooled sentences show; "
    "see the ± columns for that."
)


@contextlib.contextmanager
def _sacrebleu_seed(seed: int):
    """sacreBLEU reads its bootstrap seed from $SACREBLEU_SEED when a PairedTest is built."""
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = old


@dataclass
class PairedResult:
    baseline_bleu: float
    system_bleu: float
    p_value: float
    signature: str


def paired_bootstrap(
    baseline: list[str],
    system: list[str],
    refs: list[str],
    n_samples: int = 1000,
    seed: int = 12345,
    lowercase: bool = False,
) -> PairedResult:
    """BLEU of both systems and the paired-bootstrap p-value of their difference (sacreBLEU `--paired-bs`)."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    if not len(baseline) == len(system) == len(refs):
        raise ValueError(f"{len(baseline)} baseline, {len(system)} system hypotheses, {len(refs)} references")
    with _sacrebleu_seed(seed):
        test = PairedTest(
            [("baseline", baseline), ("system", system)],
            {"BLEU": BLEU(lowercase=lowercase, tokenize="13a")},
            [refs],
            test_type="bs",
            n_samples=n_samples,
        )
        sigs, scores = test()
    bl, sys = scores["BLEU"][0], scores["BLEU"][1]
    p = 1.0 if list(baseline) == list(system) else float(sys.p_value)
    return PairedResult(float(bl.score), float(sys.score), p, str(sigs["BLEU"]))


class References:
    """Test sources and references per data config (loaded once each): the corpus' test split."""

    def __init__(self):
        self._cache: dict[str, tuple[list[str], list[str], bool]] = {}

    def _load(self, run_dir: Path) -> tuple[str, tuple[list[str], list[str], bool]]:
        from harness.config import to_dict
        from harness.data.corpora import load_corpus
        from harness.runs.provenance import load_run_config

        cfg = load_run_config(run_dir)
        key = json.dumps(to_dict(cfg.data), sort_keys=True)
        if key not in self._cache:
            corpus = load_corpus(cfg.data)
            test = corpus.splits[corpus.test_split]
            self._cache[key] = (list(test.src), list(test.tgt), cfg.data.lowercase)
        return key, self._cache[key]

    def get(self, run_dir: Path) -> tuple[list[str], bool, str]:
        """(references, lowercase BLEU?, test-set key) of the run's test split. Two runs are comparable when
        their keys match: the same references and the same casing (whatever else their data configs say)."""
        _, (src, tgt, lower) = self._load(run_dir)
        digest = hashlib.sha1("\x00".join([*src, "\x01", *tgt]).encode("utf-8")).hexdigest()
        return tgt, lower, f"{digest}-{lower}"

    def sources(self, run_dir: Path) -> list[str]:
        return self._load(run_dir)[1][0]


@dataclass
class _Pooled:
    by_seed: dict  # seed -> hypotheses
    order: list  # seeds in order
    refs: list[str]
    lowercase: bool
    data_key: str


def _pool(runs: list[RunRecord], references: References) -> tuple[_Pooled | None, str]:
    by_seed, refs, lower, key = {}, None, False, None
    for r in sorted(runs, key=lambda r: _sort_value(r.seed)):
        if r.run_dir is None:
            return None, f"{r.name}: no run directory"
        hyps = read_hypotheses(r.run_dir)
        if hyps is None:
            return None, f"{r.name}: no test.hyp"
        try:
            rr, lw, k = references.get(r.run_dir)
        except Exception as e:  # missing data files, unreadable config: skip this configuration, say why
            return None, f"{r.name}: references unavailable ({str(e).splitlines()[0][:100]})"
        if len(hyps) != len(rr):
            return None, f"{r.name}: {len(hyps)} hypotheses for {len(rr)} references"
        if key is not None and k != key:
            return None, f"{r.name}: different test data from the configuration's other seeds"
        by_seed[r.seed] = hyps
        refs, lower, key = rr, lw, k
    return _Pooled(by_seed, list(by_seed), refs, lower, key), ""


def _pair(a: _Pooled, b: _Pooled) -> tuple[list[str], list[str], list[str], str]:
    shared = [s for s in a.order if s in b.by_seed]
    if shared:
        pairs = [(s, s) for s in shared]
        how = "seeds " + ", ".join(map(str, shared))
    else:
        pairs = list(zip(a.order, b.order))
        how = "by seed rank " + ", ".join(f"{x}~{y}" for x, y in pairs)
    ha = [h for s, _ in pairs for h in a.by_seed[s]]
    hb = [h for _, s in pairs for h in b.by_seed[s]]
    return ha, hb, a.refs * len(pairs), how


def is_control(config: dict) -> bool:
    return config.get("model.score") == "none" or config.get("model.arch") == "seq2seq"


def _converged_text(row) -> str:
    n, ok = int(row["n_runs"]), int(row["n_converged"])
    return "yes" if ok == n else "no" if ok == 0 else f"{ok}/{n}"


def significance_table(
    lb: pd.DataFrame,
    groups: dict[str, list[RunRecord]],
    n_samples: int = 1000,
    seed: int = 12345,
    references: References | None = None,
    unconverged: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Rows: each configuration vs the best converged one (leaderboard rank 1) and vs the best no-attention
    control (a converged one where there is one). `groups` holds the runs to pool per configuration; the
    `unconverged` table's configurations are compared too, after the leaderboard's.

    Returns the table, the bootstrap signatures used and notes on comparisons that were skipped.
    """
    references = references or References()
    unconverged = unconverged if unconverged is not None else pd.DataFrame(columns=lb.columns)
    status = {r["configuration"]: _converged_text(r) for t in (lb, unconverged) for _, r in t.iterrows()}
    pooled: dict[str, _Pooled] = {}
    notes: list[str] = []
    ranked = list(lb["configuration"])
    for label in [*ranked, *unconverged["configuration"]]:
        p, why = _pool(groups[label], references)
        if p is None:
            notes.append(f"{label}: left out of the significance tests ({why})")
        else:
            pooled[label] = p
    order = [c for c in [*ranked, *unconverged["configuration"]] if c in pooled]
    baselines = []
    best = [c for c in ranked if c in pooled]
    if best:
        baselines.append(("best", best[0]))
    elif order:
        notes.append("no converged configuration: nothing compared with a best configuration")
    controls = [c for c in order if is_control(groups[c][0].config)]
    if controls:
        baselines.append(("no-attention control", controls[0]))
        if controls[0] not in ranked:
            notes.append(f"the no-attention control {controls[0]} did not converge (compared all the same)")
    elif order:
        notes.append("no no-attention control (model.score none / model.arch seq2seq) among the configurations")
    rows, signatures = [], set()
    for vs, base in baselines:
        for label in order:
            a, b = pooled[base], pooled[label]
            if a.data_key != b.data_key:
                notes.append(f"{label} vs {base}: different test sets, not compared")
                continue
            hb, hs, refs, how = _pair(a, b)
            r = paired_bootstrap(hb, hs, refs, n_samples, seed, a.lowercase)
            signatures.add(r.signature)
            rows.append(
                {
                    "vs": vs,
                    "baseline": base,
                    "configuration": label,
                    "baseline BLEU": r.baseline_bleu,
                    "BLEU": r.system_bleu,
                    "delta": r.system_bleu - r.baseline_bleu,
                    "p_value": r.p_value,
                    "significant": bool(r.p_value < ALPHA),
                    "sentences": len(refs),
                    "paired on": how,
                    "converged": status.get(label, "?"),
                }
            )
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS), sorted(signatures), notes

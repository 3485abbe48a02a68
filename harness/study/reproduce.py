"""`harness reproduce PAPER --scale tiny|small|paper`: rerun a paper's comparison and report it beside the
paper's numbers (as reported).

PAPER is one of the targets below. Scales:
* `tiny`  experiments/tiny/<spec>.yaml: tiny models, a few hundred sentences, seconds per run (smoke test);
* `small` experiments/small/<spec>.yaml: CPU-sized models on the real data, at most ~2 hours on 2 cores;
* `paper` experiments/paper/*.yaml: the papers' own sizes and data (WMT'14 via the hub; GPU cluster time).

tiny/small specs are sweep specs (harness/study/sweep.py): the reproduction runs them as Optuna studies (so a
second run resumes instead of starting over) into OUTPUT/runs/<study>/trials/<n>/, then adds what a plain
sweep does not measure: unknown-word replacement by attention (bahdanau2015, luong2015), the statistical
aligner baseline (alignment), and the held-out length-bucketed test set (length). Finally it renders the
comparison report (harness.report) into OUTPUT and writes OUTPUT/reproduction.md + reproduction.json with our
numbers next to the paper's. OUTPUT defaults to reports/reproduce-<paper>/ (small) or
reports/reproduce-<paper>-<scale>/ (tiny, paper).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import flatten, read_yaml, to_dict
from harness.errors import HarnessError
from harness.experiment import from_dict, load_config
from harness.io import atomic_write_text, write_json
from harness.paths import PROJECT_ROOT, data_root

SCALES = ("tiny", "small", "paper")


# ------------------------------------------------------------------------------------------ targets
@dataclass
class Row:
    """One configuration of a target: which runs belong to it (flattened config values) and the paper's
    number for it, as reported (None where the paper has none)."""

    name: str
    match: dict[str, Any]
    paper: str | None = None
    paper_unk: str | None = None  # BLEU after unknown-word replacement, as reported


@dataclass
class Target:
    name: str
    title: str
    specs: list[str]  # sweep specs: experiments/<scale>/<spec>.yaml
    paper_configs: list[str]  # experiments/paper/<name>.yaml for --scale paper
    source: str  # where the paper's numbers come from
    rows: list[Row] = field(default_factory=list)
    data: list[str] = field(default_factory=list)  # shared data folders it needs
    unk_replace: bool = False
    aligner: bool = False
    length_data: bool = False
    paper_note: str = ""


def _luong_rows() -> list[Row]:
    table4 = {  # Luong et al. 2015, Table 4: BLEU before / after unk replacement
        ("global", "location"): ("18.1", "19.3"),
        ("global", "dot"): ("18.6", "20.5"),
        ("global", "general"): ("17.3", "19.1"),
        ("local-m", "dot"): ("not reported (ppl > 7.0)", None),
        ("local-m", "general"): ("18.6", "20.4"),
        ("local-p", "dot"): ("18.0", "19.6"),
        ("local-p", "general"): ("19.0", "20.9"),
    }
    return [
        Row(f"{att} ({score})", {"model.attention_type": att, "model.score": score}, before, after)
        for (att, score), (before, after) in table4.items()
    ]


def _britz_rows() -> list[Row]:
    britz = {  # as reported (shared/anchors.md): additive and multiplicative (unscaled) at d = 128 and 512
        ("additive", 128): "22.23 ± 0.11 (Add-128)",
        ("general", 128): "22.03 ± 0.08 (Mul-128)",
        ("additive", 512): "22.47 ± 0.27 (Add-512; Add-1024 22.10)",
        ("general", 512): "21.78 ± 0.05 (Mul-512; Mul-1024 18.22)",
    }
    names = {"additive": "additive", "general": "multiplicative (general)", "scaled_dot": "scaled dot"}
    return [
        Row(
            f"{names[score]}, {size} units", {"model.score": score, "model.hidden_size": size}, britz.get((score, size))
        )
        for size in (128, 512)
        for score in ("additive", "general", "scaled_dot")
    ]


ALIGNMENT_VARIANTS = [  # (row label, the flattened config values that pick its runs)
    ("luong global (location)", {"model.arch": "luong", "model.attention_type": "global", "model.score": "location"}),
    ("luong local-m (general)", {"model.arch": "luong", "model.attention_type": "local-m", "model.score": "general"}),
    ("luong local-p (general)", {"model.arch": "luong", "model.attention_type": "local-p", "model.score": "general"}),
    ("RNNsearch (bahdanau, additive)", {"model.arch": "bahdanau", "train.guided_alignment.weight": 0.0}),
    ("cgru (additive)", {"model.arch": "cgru", "train.guided_alignment.weight": 0.0}),
    ("cgru + guided (eflomal links)", {"model.arch": "cgru", "train.guided_alignment.weight": 1.0}),
    ("RNNsearch + guided (eflomal links)", {"model.arch": "bahdanau", "train.guided_alignment.weight": 1.0}),
]
ALIGNMENT_DATA = [  # (data.name, label, directions); the first direction of each is the gold file's own
    ("hansards_enfr", "Hansards", [("en", "fr"), ("fr", "en")]),
    ("europarl_deen", "RWTH", [("en", "de"), ("de", "en")]),
]
TABLE6 = {"luong global (location)": "0.39", "luong local-m (general)": "0.34", "luong local-p (general)": "0.36"}


def _alignment_rows() -> list[Row]:
    rows = []
    for data, label, directions in ALIGNMENT_DATA:
        for src, tgt in directions:
            for name, match in ALIGNMENT_VARIANTS:
                # Luong et al. 2015 Table 6: the English->German models on the RWTH gold
                paper = TABLE6.get(name) if (data, src, tgt) == ("europarl_deen", "en", "de") else None
                rows.append(
                    Row(
                        f"{label} {src}->{tgt}: {name}",
                        {"data.name": data, "data.src_lang": src, "data.tgt_lang": tgt, **match},
                        f"AER {paper}" if paper else None,
                    )
                )
    return rows


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            "bahdanau2015",
            "Bahdanau et al. 2015: RNNsearch vs RNNencdec (Table 1)",
            ["bahdanau2015"],
            ["bahdanau2015_rnnsearch50", "bahdanau2015_rnnenc50"],
            "Bahdanau, Cho, Bengio 2015, Table 1 (WMT'14 En->Fr, news-test-2014, tokenized BLEU, column All)",
            [
                Row(
                    "RNNsearch (bahdanau, additive)",
                    {"model.arch": "bahdanau", "model.score": "additive"},
                    "26.75 (RNNsearch-50)",
                ),
                Row(
                    "RNNencdec (bahdanau, attention off)",
                    {"model.arch": "bahdanau", "model.score": "none"},
                    "17.82 (RNNencdec-50)",
                ),
                Row(
                    "seq2seq (Sutskever 2014, reversed)",
                    {"model.arch": "seq2seq"},
                    "30.59 (Sutskever 2014 Table 1, single reversed LSTM, beam 12, own data)",
                ),
            ],
            ["multi30k"],
            unk_replace=True,
            paper_note="No unk replacement in Bahdanau et al.; Luong et al. 2015 Table 4: +1.2 to +1.9 BLEU.",
        ),
        Target(
            "luong2015",
            "Luong et al. 2015: attention type x score function (Table 4)",
            ["luong2015"],
            [
                "luong2015_global_location",
                "luong2015_global_dot",
                "luong2015_global_general",
                "luong2015_localm_general",
                "luong2015_localp_general",
            ],
            "Luong, Pham, Manning 2015, Table 4 (WMT'14 En->De, newstest2014, tokenized BLEU; after unk "
            "replacement in the second column)",
            _luong_rows(),
            ["multi30k"],
            unk_replace=True,
        ),
        Target(
            "gnmt2016",
            "Wu et al. 2016 (GNMT): with vs without attention",
            ["gnmt2016"],
            ["gnmt2016_wmt14_enfr"],
            "Wu et al. 2016, Table 4 (WMT'14 En->Fr, newstest2014, WPM-32K single model, tokenized BLEU)",
            [
                Row("GNMT (additive attention)", {"model.score": "additive"}, "38.95"),
                Row("GNMT stack, attention off", {"model.score": "none"}, None),
            ],
            ["multi30k"],
        ),
        Target(
            "britz2017",
            "Britz et al. 2017: additive vs multiplicative vs scaled-dot attention as the size grows (§4.5)",
            ["britz2017"],
            [],
            "Britz, Goldie, Luong, Le 2017, attention table (WMT'15 En->De, newstest2013, tokenized BLEU, mean "
            "over 4 runs; the attention size varies inside a 512-unit model)",
            _britz_rows(),
            ["multi30k"],
        ),
        Target(
            "alignment",
            "Attention as word alignment: AER on human gold vs a statistical aligner (Luong 2015, Table 6)",
            ["alignment_hansards", "alignment_europarl"],
            [],
            "Luong, Pham, Manning 2015, Table 6 (RWTH de-en gold, 508 sentences; Berkeley aligner 0.32)",
            _alignment_rows(),
            ["hansards_enfr", "europarl_deen_comtrans", "rwth_deen_gold"],
            aligner=True,
        ),
        Target(
            "length",
            "BLEU by source length: RNNsearch vs seq2seq (Bahdanau et al. 2015, Fig. 2)",
            ["length_hansards"],
            [],
            "Bahdanau, Cho, Bengio 2015, Fig. 2 (qualitative: RNNencdec degrades with length, RNNsearch-50 "
            "does not up to 50+ words)",
            [
                Row(
                    "RNNsearch-30 (bahdanau, trained <= 30)",
                    {"model.arch": "bahdanau", "data.max_len": 30},
                    "below RNNsearch-50, above RNNencdec-50",
                ),
                Row(
                    "RNNsearch-50 (bahdanau, trained <= 50)",
                    {"model.arch": "bahdanau", "data.max_len": 50},
                    "no drop up to 50+ words",
                ),
                Row(
                    "seq2seq-30 (no attention, trained <= 30)",
                    {"model.arch": "seq2seq", "data.max_len": 30},
                    "drops sharply with length",
                ),
                Row(
                    "seq2seq-50 (no attention, trained <= 50)",
                    {"model.arch": "seq2seq", "data.max_len": 50},
                    "drops with length",
                ),
            ],
            ["hansards_enfr"],
            length_data=True,
        ),
    ]
}

# held-out length test set (the `length` target), per scale: training pairs, pool of held-out lines after
# them, test pairs per source-length bucket, validation pairs
LENGTH_SIZES = {"tiny": (1000, 6000, 12, 30), "small": (50000, 60000, 100, 300)}
LENGTH_BUCKETS = [(1, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, 60), (61, 80)]


# ------------------------------------------------------------------------------------------ helpers
def spec_path(scale: str, spec: str) -> Path:
    return PROJECT_ROOT / "experiments" / scale / f"{spec}.yaml"


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


def run_dirs_of(study_dir: Path) -> list[Path]:
    """Finished run directories of a study (trials/<n>/ with metrics.json), in trial order."""
    trials = study_dir / "trials"
    if not trials.is_dir():
        return []
    dirs = [
        d for d in trials.iterdir() if d.is_dir() and not d.name.endswith(".partial") and (d / "metrics.json").is_file()
    ]
    return sorted(dirs, key=lambda d: int(d.name) if d.name.isdigit() else 10**9)


def run_flat_config(run_dir: Path) -> dict:
    doc = read_yaml(run_dir / "config.yaml")
    doc.pop("_meta", None)
    return flatten(doc)


def _matches(flat: dict, match: dict) -> bool:
    return all(flat.get(k) == v for k, v in match.items())


# ------------------------------------------------------------------------------------------ running
def run_sweep(spec: Path, overrides: list[str], study: str, runs_dir: Path, workers: int, quiet: bool) -> int:
    """Run one sweep spec as an Optuna study through `harness sweep` (resumes when the study exists)."""
    try:
        import harness.study.sweep  # noqa: F401
    except ModuleNotFoundError:
        return run_spec_directly(spec, overrides, study, runs_dir, quiet)
    from harness.cli import build_parser

    # the study lives in an Optuna journal file beside its trials (plain text: results/ keeps a copy, so a fresh
    # clone can rebuild every table); a study started before on the default SQLite file stays there
    sqlite = runs_dir / study / "study.db"
    storage = f"sqlite:///{sqlite}" if sqlite.is_file() else f"journal:///{runs_dir / study / 'study.journal'}"
    argv = [
        "sweep",
        str(spec),
        *overrides,
        "--study",
        study,
        "--reports",
        str(runs_dir),
        "--workers",
        str(workers),
        "--storage",
        storage,
    ]
    if quiet:
        argv.append("--quiet")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def run_spec_directly(spec: Path, overrides: list[str], study: str, runs_dir: Path, quiet: bool) -> int:
    """Without harness.study.sweep: every grid point x seed of the spec, trained in a loop by harness.runs.run.train."""
    import itertools

    from harness.config import parse_overrides
    from harness.runs.run import train

    raw = read_yaml(spec)
    base = PROJECT_ROOT / raw["base"]
    space = raw.get("space") or {}
    dims = []
    for name, values in space.items():
        if values and all(isinstance(v, dict) for v in values):
            dims.append([dict(v) for v in values])
        else:
            dims.append([{name: v} for v in values])
    seeds = raw.get("seeds") or [1]
    cli = parse_overrides(overrides)
    n = 0
    for point in itertools.product(*dims):
        for seed in seeds:
            over = {**(raw.get("overrides") or {}), **cli, "seed": seed}
            for part in point:
                over.update(part)
            out = runs_dir / study / "trials" / str(n)
            n += 1
            if (out / "metrics.json").is_file():
                continue
            train(load_config(base, over), out, overwrite=True, progress=not quiet)
    return 0


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


# ------------------------------------------------------------------------------------------ length data
def prepare_length_data(out_dir: Path, scale: str) -> list[str]:
    """Write the `length` target's train/val/test files (Hansards en-fr) and return the data overrides.

    Training: the first N pairs of train.{en,fr}.gz (data.max_len filters them at training time).
    Test: from the next `pool` lines (held out), the first `per_bucket` pairs of each source-length bucket
    in LENGTH_BUCKETS (words of the English side), so long sentences are represented. Val: other held-out
    pairs of <= 50 words.
    """
    from harness.data.corpora import read_lines

    train_n, pool_n, per_bucket, val_n = LENGTH_SIZES[scale]
    root = data_root() / "hansards_enfr"
    en, fr = read_lines(root / "train.en.gz"), read_lines(root / "train.fr.gz")
    pool = range(train_n, min(len(en), train_n + pool_n))
    counts = [0] * len(LENGTH_BUCKETS)
    test, used = [], set()
    for i in pool:
        if not en[i] or not fr[i]:
            continue
        n = len(en[i].split())
        for b, (lo, hi) in enumerate(LENGTH_BUCKETS):
            if lo <= n <= hi and counts[b] < per_bucket:
                counts[b] += 1
                test.append(i)
                used.add(i)
    val = [i for i in pool if i not in used and en[i] and fr[i] and len(en[i].split()) <= 50][:val_n]
    folder = out_dir / "data"
    files = {"train": list(range(train_n)), "val": val, "test": sorted(test)}
    for split, idx in files.items():
        for lang, lines in (("en", en), ("fr", fr)):
            atomic_write_text(folder / f"{split}.{lang}", "".join(lines[i] + "\n" for i in idx))
    write_json(
        folder / "buckets.json",
        {
            "buckets": LENGTH_BUCKETS,
            "test_per_bucket": counts,
            "train_pairs": train_n,
            "pool": [pool.start, pool.stop],
        },
    )
    return [f"data.{split}_prefix={folder / split}" for split in files]


# ------------------------------------------------------------------------------------------ unk replacement
def unk_replace_effect(run_dir: Path) -> dict | None:
    """BLEU of one run's test split without and with unknown-word replacement (Luong et al. 2015 §4).

    One decode (the run's own decode settings, unk_replace off), then replace_unknowns on the same hypotheses:
    the two BLEU scores differ only by the replacement. Cached in RUN_DIR/unk_replace.json.
    None for a model without attention (nothing to copy from).
    """
    cache = run_dir / "unk_replace.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    from harness.data.datamodule import prepare
    from harness.data.tokenize import UNK
    from harness.decode.evaluate import decode_split, replace_unknowns
    from harness.metrics.bleu import corpus_scores
    from harness.runs.layout import load_module

    module = load_module(run_dir, "best")
    if not module.model.has_attention:
        return None
    doc = to_dict(module.cfg)
    doc["decode"]["unk_replace"] = False
    cfg = from_dict(doc, f"checkpoint {run_dir}")
    data = prepare(cfg, vocabs=(module.src_vocab.itos, module.tgt_vocab.itos))
    split = data.splits[data.corpus.test_split]
    decoded = decode_split(module, split, cfg, data.tgt_tok.decode, progress=False)
    replaced = [
        replace_unknowns(toks, att, split.src_tokens[i]) if att is not None else toks
        for i, (toks, att) in enumerate(zip(decoded.tokens, decoded.attention))
    ]
    refs = split.raw.tgt
    without = corpus_scores(decoded.texts, refs, cfg.data.lowercase)
    with_ = corpus_scores([data.tgt_tok.decode(t) for t in replaced], refs, cfg.data.lowercase)
    result = {
        "bleu": without.bleu,
        "bleu_unk_replace": with_.bleu,
        "delta": with_.bleu - without.bleu,
        "unk_tokens": sum(t.count(UNK) for t in decoded.tokens),
        "hyp_tokens": sum(len(t) for t in decoded.tokens),
        "sentences": len(refs),
        "sacrebleu_signature": without.bleu_signature,
    }
    write_json(cache, result)
    return result


# ------------------------------------------------------------------------------------------ aligner
def aligner_baseline(
    spec: Path, overrides: list[str], out_dir: Path, aligner: str | None = None, rel_iterations: float = 1.0
) -> dict:
    """The statistical aligner on the spec's training text + its gold test sentences (concatenated, so the
    test sentences are aligned with everything learned from the training text), scored on the gold."""
    from harness.config import parse_overrides
    from harness.data.aligners import align, available_aligner, symmetrize
    from harness.data.alignments import Alignment, write_pharaoh
    from harness.data.corpora import load_corpus
    from harness.metrics.alignment import alignment_scores

    raw = read_yaml(spec)
    # a spec that trains both directions aligns in the first one (the gold file's own orientation)
    direction = ((raw.get("space") or {}).get("direction") or [{}])[0]
    over = {**(raw.get("overrides") or {}), **direction, **parse_overrides(overrides)}
    cfg = load_config(PROJECT_ROOT / raw["base"], over)
    aligner = aligner or available_aligner()
    corpus = load_corpus(cfg.data)
    train, test = corpus.splits["train"], corpus.splits[corpus.test_split]
    cache = out_dir / "aligner" / f"{cfg.data.name}.json"
    key = {
        "aligner": aligner,
        "train_pairs": len(train.src),
        "test_pairs": len(test.src),
        "lowercase": cfg.data.lowercase,
        "rel_iterations": rel_iterations,
    }
    if cache.is_file():
        old = json.loads(cache.read_text())
        if old.get("key") == key:
            return old
    prep = (lambda s: s.lower()) if cfg.data.lowercase else (lambda s: s)
    src = [prep(s) for s in train.src + test.src]
    tgt = [prep(t) for t in train.tgt + test.tgt]
    t0 = time.perf_counter()
    name, fwd, rev = align(src, tgt, aligner, seed=cfg.seed, rel_iterations=rel_iterations)
    seconds = time.perf_counter() - t0
    k = len(test.src)
    fwd, rev = fwd[-k:], rev[-k:]
    methods = {
        "forward": fwd,
        "reverse": rev,
        "intersection": symmetrize(fwd, rev, "intersection"),
        "grow-diag-final-and": symmetrize(fwd, rev, "grow-diag-final-and"),
    }
    scores = {}
    for method, links in methods.items():
        s = alignment_scores(links, test.gold)
        scores[method] = {"aer": s["aer"], "precision": s["precision"], "recall": s["recall"]}
        write_pharaoh(
            [Alignment(set(x), set()) for x in links],
            _mkdir(out_dir / "aligner") / f"{cfg.data.name}.{method}.align",
        )
    result = {
        "key": key,
        "aligner": name,
        "data": cfg.data.name,
        "gold": test.gold_name,
        "seconds": seconds,
        "train_pairs": len(train.src),
        "test_pairs": k,
        "scores": scores,
    }
    write_json(cache, result)
    return result


def symmetrised_rows(runs: list[Path], out_dir: Path) -> list[dict]:
    """Every alignment variant trained in both directions of a data set (same seed): the two directions' links on
    the test gold combined by intersection and grow-diag-final-and (harness align), beside each direction's own
    AER (the reverse run's links are transposed onto the same gold, so its AER is comparable). Links are written
    to OUT/symmetrised/*.align; results are cached per pair of run directories."""
    from harness.data.aligners import symmetrize
    from harness.data.alignments import Alignment, write_pharaoh
    from harness.data.corpora import load_corpus
    from harness.metrics.alignment import alignment_scores
    from harness.runs.align import direction_links
    from harness.runs.provenance import load_run_config

    flat = {run: run_flat_config(run) for run in runs}
    rows = []
    for data, label, directions in ALIGNMENT_DATA:
        (fs, ft), (rs, rt) = directions
        for name, match in ALIGNMENT_VARIANTS:
            pick = {"data.name": data, **match}
            fwd = {f.get("seed"): r for r, f in flat.items() if _matches(f, {**pick, "data.src_lang": fs})}
            rev = {f.get("seed"): r for r, f in flat.items() if _matches(f, {**pick, "data.src_lang": rs})}
            for seed in sorted(set(fwd) & set(rev)):
                slug = re.sub(r"[^a-z0-9]+", "-", f"{data} {name} s{seed}".lower()).strip("-")
                cache = out_dir / "symmetrised" / f"{slug}.json"
                key = [str(fwd[seed]), str(rev[seed])]
                if cache.is_file() and (old := json.loads(cache.read_text())).get("key") == key:
                    rows.append(old)
                    continue
                test_cfg = load_run_config(fwd[seed])
                corpus = load_corpus(test_cfg.data)
                test = corpus.splits[corpus.test_split]
                forward = direction_links(fwd[seed], test.src, test.tgt)
                reverse = [{(s_, t_) for t_, s_ in x} for x in direction_links(rev[seed], test.tgt, test.src)]
                entry = {
                    "key": key,
                    "data": data,
                    "configuration": f"{label} {fs}<->{ft}: {name}",
                    "seed": seed,
                    "gold": test.gold_name,
                    "forward": alignment_scores(forward, test.gold),
                    "reverse": alignment_scores(reverse, test.gold),
                }
                for method in ("intersection", "grow-diag-final-and"):
                    links = symmetrize(forward, reverse, method)
                    entry[method] = alignment_scores(links, test.gold)
                    write_pharaoh([Alignment(x, set()) for x in links], _mkdir(cache.parent) / f"{slug}.{method}.align")
                better = min(entry["forward"]["aer"], entry["reverse"]["aer"])
                entry["beats_better_direction"] = {
                    m: entry[m]["aer"] < better for m in ("intersection", "grow-diag-final-and")
                }
                write_json(cache, entry)
                rows.append(entry)
    return rows


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# ------------------------------------------------------------------------------------------ summary
def summarize(target: Target, runs: list[Path], extras: dict) -> dict:
    """Our numbers per configuration (mean ± std over seeds) next to the paper's."""
    by_row: dict[str, list[tuple[Path, dict, dict]]] = {}
    unmatched = []
    for run in runs:
        flat = run_flat_config(run)
        metrics = json.loads((run / "metrics.json").read_text())
        row = next((r for r in target.rows if _matches(flat, r.match)), None)
        if row is None:
            unmatched.append(str(run))
            continue
        by_row.setdefault(row.name, []).append((run, flat, metrics))
    rows = []
    for r in target.rows:
        items = by_row.get(r.name, [])
        if not items and r.paper is None:
            continue
        entry = {
            "configuration": r.name,
            "runs": len(items),
            "paper": r.paper,
            "paper_unk": r.paper_unk,
            "run_dirs": [str(p) for p, _, _ in items],
        }
        for metric in (
            "bleu",
            "chrf",
            "aer",
            "alignment_precision",
            "alignment_recall",
            "aer_threshold",
            "aer_diagonal",
            "length_drop",
            "train_time_s",
            "val_ppl",
            "epochs",
        ):
            mean, std = _mean_std([m.get(metric) for _, _, m in items])
            entry[metric] = mean
            entry[f"{metric}_std"] = std
        # converged: stopped by the stopping rule (metrics.json); runs from before it count as unconverged
        entry["converged"] = sum(bool(m.get("converged")) for _, _, m in items)
        entry["stop_reasons"] = sorted(
            {m.get("stop_reason") or "unknown" for _, _, m in items if not m.get("converged")}
        )
        if target.unk_replace:
            effects = [extras.get("unk", {}).get(str(p)) for p, _, _ in items]
            effects = [e for e in effects if e]
            if effects:
                entry["bleu_unk_replace"], entry["bleu_unk_replace_std"] = _mean_std(
                    [e["bleu_unk_replace"] for e in effects]
                )
                entry["unk_delta"], entry["unk_delta_std"] = _mean_std([e["delta"] for e in effects])
                entry["unk_tokens"] = sum(e["unk_tokens"] for e in effects) / len(effects)
        if target.length_data:
            buckets: dict[str, list[float]] = {}
            for _, _, m in items:
                for b in m.get("by_length") or []:
                    buckets.setdefault(b["bucket"], []).append(b["bleu"])
            entry["by_length"] = {b: _mean_std(v)[0] for b, v in buckets.items()}
        rows.append(entry)
    return {"rows": rows, "unmatched_runs": unmatched}


def render_markdown(target: Target, scale: str, summary: dict, extras: dict, meta: dict) -> str:
    lines = [f"# Reproduction: {target.title} ({scale} scale)", ""]
    lines += [
        f"Paper numbers: {target.source}. They are quoted as reported (the papers' data, model sizes and "
        "tokenized BLEU); ours are sacreBLEU on detokenized text at the scale below, so compare directions "
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
    has_aer = any(r.get("aer") is not None for r in rows)
    aer_head = ["AER (ours)", "P", "R", "AER > p", "diagonal AER", "beats diagonal"]
    head = ["configuration", "runs", "converged", "BLEU (ours)"] + (aer_head if has_aer else []) + ["paper"]
    lines += [
        "A run is converged when its stopping rule ended it (no improvement of the monitored validation metric "
        "for the rule's patience); a run stopped by its budget is not, and its numbers are not final.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        conv = f"{r['converged']}/{r['runs']}" + (f" ({', '.join(r['stop_reasons'])})" if r["stop_reasons"] else "")
        cells = [r["configuration"], str(r["runs"]), conv, _fmt(r["bleu"], r["bleu_std"])]
        if has_aer:
            beats = (
                "-"
                if r["aer"] is None or r["aer_diagonal"] is None
                else ("yes" if r["aer"] < r["aer_diagonal"] else "no")
            )
            cells += [
                _fmt(r["aer"], r["aer_std"], 3),
                _fmt(r["alignment_precision"], None, 3),
                _fmt(r["alignment_recall"], None, 3),
                _fmt(r["aer_threshold"], None, 3),
                _fmt(r["aer_diagonal"], None, 3),
                beats,
            ]
        cells.append(r["paper"] or "-")
        lines.append("| " + " | ".join(cells) + " |")
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
        lines += [
            "",
            "Paper (Luong 2015 Table 6, RWTH gold, English->German models, as reported): attention 0.34-0.39, "
            "Berkeley aligner 0.32.",
            "",
        ]
        sym = extras.get("symmetrised") or []
        if sym:
            lines += [
                "## Both directions, symmetrised (harness align)",
                "",
                "Each variant's two directions on the same gold (the reverse model's links transposed), and their "
                "links combined (Och & Ney 2003; Koehn et al. 2003).",
                "",
                "| configuration | seed | forward AER | reverse AER | intersection AER (P / R) | "
                "grow-diag-final-and AER (P / R) | beats the better direction |",
                "|---|---|---|---|---|---|---|",
            ]
            for e in sym:
                i, g = e["intersection"], e["grow-diag-final-and"]
                beats = ", ".join(m for m, b in e["beats_better_direction"].items() if b) or "no"
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
            {b for r in rows for b in (r.get("by_length") or {})},
            key=lambda b: float(re.findall(r"[0-9]+", str(b))[0]) if re.findall(r"[0-9]+", str(b)) else 0,
        )
        lines += [
            "| configuration | " + " | ".join(map(str, keys)) + " | paper (Fig. 2) |",
            "|" + "---|" * (len(keys) + 2),
        ]
        for r in rows:
            bl = r.get("by_length") or {}
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


def render_report(run_dirs: list[Path], out: Path, title: str, scale: str) -> str | None:
    """harness.report's page for the runs; returns a note when it could not be built."""
    if not run_dirs:
        return "no finished runs: report not built"
    try:
        from harness.report import load, render
    except ImportError:
        try:
            from harness.report import render_runs
        except ImportError:
            return "harness.report not available: report not built"
        render_runs([str(d) for d in run_dirs], out, title)
        return None
    try:
        report = load([str(d) for d in run_dirs], title=title, n_bootstrap=100 if scale == "tiny" else 1000)
        render(report, out, with_animation=scale != "tiny")
    except HarnessError as e:
        return f"report not built: {e}"
    return None


# ------------------------------------------------------------------------------------------ command
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
    out = (
        Path(output)
        if output
        else PROJECT_ROOT / "reports" / (f"reproduce-{paper}" if scale == "small" else f"reproduce-{paper}-{scale}")
    )
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
            study = f"{paper}-{scale}-{spec.stem}" if spec.stem != paper else f"{paper}-{scale}"
            rc = run_sweep(spec, over, study, runs_dir, workers, quiet)
            if rc == 130:  # Ctrl-C: the studies are kept; the same command resumes them
                raise KeyboardInterrupt
            status = max(status, rc)
            runs += run_dirs_of(runs_dir / study)
            if target.aligner:
                # tiny: a tenth of eflomal's iterations (its default grows as the corpus shrinks)
                rel = 0.1 if scale == "tiny" else 1.0
                extras.setdefault("aligner", []).append(aligner_baseline(spec, over, out, rel_iterations=rel))
    if target.aligner:
        extras["symmetrised"] = symmetrised_rows(runs, out)
    if target.unk_replace:
        extras["unk"] = {}
        for run in runs:
            effect = unk_replace_effect(run)
            if effect is not None:
                extras["unk"][str(run)] = effect
    summary = summarize(target, runs, extras)
    note = render_report(runs, out, f"Reproduction: {target.title} ({scale})", scale)
    meta = {**plan, "wall_s": time.perf_counter() - t0, "n_runs": len(runs)}
    text = render_markdown(target, scale, summary, extras, meta)
    if note:
        text += f"\nNote: {note}\n"
    _mkdir(out)
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


def cmd_reproduce(args) -> int:
    result = reproduce(args.paper, args.scale, args.output, args.workers, args.overrides, args.quiet, args.dry_run)
    return int(result.get("status", 0)) if isinstance(result, dict) else 0


def register(sub) -> None:
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
    s.add_argument("--quiet", action="store_true", help="no per-trial lines or progress bars")
    s.set_defaults(func=cmd_reproduce)

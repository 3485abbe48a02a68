"""What a reproduction measures beyond its sweeps: the held-out length-bucketed test set (the `length` target),
BLEU with and without unknown-word replacement by attention (bahdanau2015, luong2015), the statistical aligner
baseline and both directions of every alignment variant symmetrised (alignment). Each result is cached beside the
runs, so a rerun only measures what is new."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from harness.config import read_yaml, to_dict
from harness.experiment import from_dict, load_config
from harness.io import atomic_write_text, write_json
from harness.paths import PROJECT_ROOT, data_root
from harness.study.summary import run_flat_config
from harness.study.targets import LENGTH_BUCKETS, LENGTH_SIZES, TARGETS, matches


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


SYM_P = "p_vs_better_direction"  # symmetrised row: paired-bootstrap p of each method against the better direction


def symmetrised_rows(runs: list[Path], out_dir: Path) -> list[dict]:
    """Every alignment variant trained in both directions of a data set (same seed): the two directions' links on
    the test gold combined by intersection and grow-diag-final-and (harness align), beside each direction's own
    AER (the reverse run's links are transposed onto the same gold, so its AER is comparable). Links are written
    to OUT/symmetrised/*.align; results are cached per pair of run directories."""
    from harness.data.aligners import symmetrize
    from harness.data.alignments import Alignment, write_pharaoh
    from harness.data.corpora import load_corpus
    from harness.metrics.alignment import aer_paired_bootstrap, alignment_scores
    from harness.runs.align import direction_links
    from harness.runs.layout import checkpoint_path
    from harness.runs.provenance import load_run_config

    target = TARGETS["alignment"]
    flat = {run: run_flat_config(run) for run in runs}
    rows = []
    for data, label, directions in target.alignment_data:
        (fs, ft), (rs, rt) = directions
        for name, match in target.variants:
            pick = {"data.name": data, **match}
            fwd = {f.get("seed"): r for r, f in flat.items() if matches(f, {**pick, "data.src_lang": fs})}
            rev = {f.get("seed"): r for r, f in flat.items() if matches(f, {**pick, "data.src_lang": rs})}
            for seed in sorted(set(fwd) & set(rev)):
                slug = re.sub(r"[^a-z0-9]+", "-", f"{data} {name} s{seed}".lower()).strip("-")
                cache = out_dir / "symmetrised" / f"{slug}.json"
                # keyed by the runs' paths inside OUT, so that a folder restored from results/ (harness results
                # restore: no checkpoints) finds its rows
                key = [_inside(fwd[seed], out_dir), _inside(rev[seed], out_dir)]
                if cache.is_file() and (old := json.loads(cache.read_text())).get("key") == key and SYM_P in old:
                    rows.append(old)
                    continue
                if not (checkpoint_path(fwd[seed]).is_file() and checkpoint_path(rev[seed]).is_file()):
                    continue  # nothing to force-decode with here, and no row measured before
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
                better = min(entry["forward"]["aer"], entry["reverse"]["aer"])
                better_links = forward if entry["forward"]["aer"] == better else reverse
                entry["beats_better_direction"], entry[SYM_P] = {}, {}
                for method in ("intersection", "grow-diag-final-and"):
                    links = symmetrize(forward, reverse, method)
                    entry[method] = alignment_scores(links, test.gold)
                    write_pharaoh([Alignment(x, set()) for x in links], _mkdir(cache.parent) / f"{slug}.{method}.align")
                    entry["beats_better_direction"][method] = entry[method]["aer"] < better
                    # paired bootstrap of the combined links against the better direction's, on the same gold
                    entry[SYM_P][method] = aer_paired_bootstrap(links, better_links, test.gold)["p_value"]
                write_json(cache, entry)
                rows.append(entry)
    return rows


def _inside(run: Path, out_dir: Path) -> str:
    run, out_dir = Path(run).resolve(), Path(out_dir).resolve()
    return run.relative_to(out_dir).as_posix() if run.is_relative_to(out_dir) else str(run)


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p

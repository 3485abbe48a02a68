"""`harness align`: a trained model as a word aligner for any parallel text.

One model forced-decodes the references (Luong et al. 2015 §5.4): each target word links to source words by its
attention row (eval.align_method: argmax, or shift-att with the architecture's query lag). With a second model of
the opposite direction, the two link sets are combined by the symmetrisation heuristics of statistical alignment
(Och & Ney 2003; Koehn, Och, Marcu 2003: intersection, union, grow-diag-final-and; harness.data.aligners.symmetrize),
which trade the precision of the intersection against the recall of the union.

Links are written in Pharaoh format, one line per sentence pair, `i-j` = source word i, target word j, 0-based,
the source being the first model's source language. Words are the model's tokens (whitespace words for
pre-tokenized text, e.g. the Hansards and Europarl gold sets); sentencepiece pieces are merged into whitespace
words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.data.alignments import Alignment, Link, read_alignments, write_pharaoh
from harness.errors import HarnessError

METHODS = ("intersection", "union", "grow-diag-final-and")


@dataclass
class AlignedText:
    links: list[set[Link]]  # per sentence pair, (source word, target word)
    scores: dict | None  # aer, precision, recall against the gold, where given
    directions: int  # 1 or 2 models


def direction_links(
    run_dir: str | Path, src: list[str], tgt: list[str], align_method: str | None = None
) -> list[set[Link]]:
    """Forced-decoding links of one model over (src, tgt) sentence pairs in its own direction."""
    from harness.config import to_dict
    from harness.data.corpora import Split
    from harness.data.datamodule import encode_split, prepare
    from harness.decode.evaluate import attention_links, forced_split_attention
    from harness.experiment import from_dict
    from harness.models.seq2seq import ARCHS
    from harness.runs.layout import load_module

    module = load_module(Path(run_dir), "best")
    cfg = module.cfg
    if not module.model.has_attention:
        raise HarnessError(f"run directory {run_dir}: model.score is 'none', a model without attention cannot align")
    if align_method is not None and align_method != cfg.eval.align_method:
        doc = to_dict(cfg)
        doc["eval"]["align_method"] = align_method
        cfg = from_dict(doc, f"--align-method {align_method}")
    data = prepare(cfg, vocabs=(module.src_vocab.itos, module.tgt_vocab.itos))
    split = encode_split(Split("align", src, tgt), data.src_tok, data.tgt_tok, module.src_vocab, module.tgt_vocab)
    lag = ARCHS[cfg.model.arch].query_lag
    extra = lag - 1 if cfg.eval.align_method == "shift-att" else 0
    forced = forced_split_attention(module.model.eval(), split, cfg.decode.batch_size, extra)
    return attention_links(forced, split, cfg, (data.src_tok, data.tgt_tok))


def align_text(
    run_dir: str | Path,
    src: list[str],
    tgt: list[str],
    reverse_dir: str | Path | None = None,
    method: str = "grow-diag-final-and",
    gold: list[Alignment] | None = None,
    align_method: str | None = None,
) -> AlignedText:
    """Links of (src, tgt) by the model in `run_dir` (src -> tgt), symmetrised with the model in `reverse_dir`
    (tgt -> src) when given; AER/precision/recall against `gold` (source-first links) when given."""
    from harness.data.aligners import symmetrize
    from harness.metrics.alignment import alignment_scores

    if len(src) != len(tgt):
        raise HarnessError(f"align: {len(src)} source but {len(tgt)} target sentences (expected the same number)")
    if method not in METHODS:
        raise HarnessError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    forward = direction_links(run_dir, src, tgt, align_method)
    links = forward
    if reverse_dir is not None:
        backward = direction_links(reverse_dir, tgt, src, align_method)
        reverse = [{(s, t) for t, s in x} for x in backward]  # (tgt word, src word) -> (src, tgt)
        links = symmetrize(forward, reverse, method)
    scores = None
    if gold is not None:
        if len(gold) != len(src):
            raise HarnessError(f"--gold: {len(gold)} alignments for {len(src)} sentence pairs")
        scores = alignment_scores(links, gold)
    return AlignedText(links, scores, 1 if reverse_dir is None else 2)


def _split_text(run_dir: Path, split: str) -> tuple[list[str], list[str], list[Alignment] | None]:
    from harness.data.corpora import load_corpus
    from harness.runs.provenance import load_run_config

    cfg = load_run_config(run_dir)
    corpus = load_corpus(cfg.data)
    name = corpus.test_split if split == "test" else split
    if name not in corpus.splits:
        raise HarnessError(
            f"--split {split}: not a split of data set {cfg.data.name} (have {', '.join(corpus.splits)})"
        )
    s = corpus.splits[name]
    return s.src, s.tgt, s.gold


def align_files(
    run_dir: str | Path,
    output: str | Path,
    reverse_run_dir: str | Path | None = None,
    split: str | None = None,
    src_file: str | Path | None = None,
    tgt_file: str | Path | None = None,
    method: str = "grow-diag-final-and",
    align_method: str | None = None,
    gold_file: str | Path | None = None,
    gold_format: str = "pharaoh",
    gold_target_first: bool = False,
) -> str:
    """`harness align`: a split of the run's data set (or --src/--tgt files) aligned, the links written to
    `output` (Pharaoh); returns the line the command prints (counts, and AER / P / R with a gold)."""
    from harness.data.corpora import read_lines

    run_dir = Path(run_dir)
    if (split is None) == (src_file is None or tgt_file is None):
        raise HarnessError("align: give either --split NAME or both --src FILE and --tgt FILE")
    if split is not None:
        src, tgt, gold = _split_text(run_dir, split)
    else:
        src, tgt, gold = read_lines(Path(src_file)), read_lines(Path(tgt_file)), None
    if gold_file:
        gold = read_alignments(
            gold_file,
            gold_format,
            not gold_target_first,
            src_lengths=[len(s.split()) for s in src],
            tgt_lengths=[len(t.split()) for t in tgt],
        )
    result = align_text(run_dir, src, tgt, reverse_run_dir, method, gold, align_method)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_pharaoh([Alignment(set(x), set()) for x in result.links], out)
    how = f"{method} of 2 directions" if result.directions == 2 else "1 direction"
    line = f"{out}: {len(result.links)} sentence pairs, {sum(map(len, result.links))} links ({how})"
    if result.scores is not None:
        s = result.scores
        line += f"; AER {s['aer']:.3f}  P {s['precision']:.3f}  R {s['recall']:.3f}"
    return line

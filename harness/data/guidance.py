"""Reference links for guided alignment training (train.guided_alignment; Chen et al. 2016, Marian's
--guided-alignment): where they come from, and a batch's links as attention targets.

Links are over words: the word tokenizer's tokens, or the whitespace words of the text for sentencepiece (whose
pieces are mapped back by `word_of_piece`); a link between two words guides every piece pair of them.
Sources (`train.guided_alignment.links`):
* a Pharaoh file, one line per training pair as the harness reads them (the training files' lines after
  data.train_limit, without pairs that have an empty side), `i-j` = source word i, target word j, 0-based;
* `eflomal`: the statistical aligner (harness/data/aligners.py: eflomal, or its IBM Model 2 fallback) on the training
  text, both directions, grow-diag-final-and; computed once and cached by a hash of the text and the aligner;
* `gold`: the synthetic task's exact alignments (an oracle upper bound; only data.name=synthetic has them).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from harness.data.alignments import Link, read_alignments
from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.paths import cache_dir


def _words(text: str, tokens: list[str], tokenizer) -> str:
    return " ".join(tokens) if tokenizer.kind == "word" else text


def eflomal_links(src: list[str], tgt: list[str]) -> list[set[Link]]:
    """grow-diag-final-and links of the statistical aligner, cached under cache_dir()/guided/ by content hash."""
    from harness.data.aligners import align, available_aligner, symmetrize

    aligner = available_aligner()
    digest = hashlib.sha256(json.dumps([aligner, src, tgt]).encode()).hexdigest()[:16]
    path = cache_dir() / "guided" / f"{aligner}-{digest}.align"
    if path.is_file():
        lines = path.read_text(encoding="utf-8").split("\n")[: len(src)]
        return [{tuple(map(int, x.split("-"))) for x in line.split()} for line in lines]
    _, fwd, rev = align(src, tgt, aligner)
    links = symmetrize(fwd, rev, "grow-diag-final-and")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(" ".join(f"{s}-{t}" for s, t in sorted(x)) + "\n" for x in links))
    return links


def training_links(cfg, data) -> list[set[Link]]:
    """Word links of every training pair the model trains on (after the length filter), in split order."""
    spec = cfg.train.guided_alignment.links
    train = data.splits["train"]
    raw = train.raw
    where = "train.guided_alignment.links"
    if not spec:
        raise HarnessError(
            f"{where}: required when train.guided_alignment.weight > 0 (a Pharaoh file, eflomal or gold)"
        )
    if spec == "gold":
        if raw.gold is None:
            raise HarnessError(
                f"{where} = 'gold': data set {cfg.data.name} has no gold alignments for its training pairs "
                "(only data.name=synthetic does); use eflomal or a Pharaoh file"
            )
        by_raw = [a.sure for a in raw.gold]
    else:
        src_tok, tgt_tok = data.src_tok, data.tgt_tok
        src = [_words(raw.src[i], src_tok.encode(raw.src[i]), src_tok) for i in range(len(raw.src))]
        tgt = [_words(raw.tgt[i], tgt_tok.encode(raw.tgt[i]), tgt_tok) for i in range(len(raw.tgt))]
        if spec == "eflomal":
            by_raw = eflomal_links(src, tgt)
        else:
            path = Path(spec)
            if not path.is_file():
                raise HarnessError(f"{where} = {spec!r}: not a file, and not 'eflomal' or 'gold'")
            gold = read_alignments(
                path, "pharaoh", True, [len(s.split()) for s in src], [len(t.split()) for t in tgt], name=str(path)
            )
            by_raw = [a.sure for a in gold]
    lines = train.lines if train.lines is not None else range(len(train.src_ids))
    return [by_raw[i] for i in lines]


class GuideTargets:
    """guide(batch) -> (B, T+1, S) attention targets: row t (the step predicting target token t) spreads 1 over
    the source tokens linked to t's word; rows without links (and the </s> row) are all zero."""

    def __init__(self, links: list[set[Link]], src_pieces: list[list[int]], tgt_pieces: list[list[int]]):
        """`links` per training pair over words; `src_pieces`/`tgt_pieces` the word of every piece."""
        self.pairs: list[list[tuple[int, int]]] = []
        for word_links, sw, tw in zip(links, src_pieces, tgt_pieces):
            src_of: dict[int, list[int]] = {}
            for p, w in enumerate(sw):
                src_of.setdefault(w, []).append(p)
            tgt_of: dict[int, list[int]] = {}
            for p, w in enumerate(tw):
                tgt_of.setdefault(w, []).append(p)
            self.pairs.append([(ps, pt) for s, t in word_links for ps in src_of.get(s, []) for pt in tgt_of.get(t, [])])

    def __call__(self, batch) -> torch.Tensor:
        B, S = batch.src.shape
        T1 = batch.tgt_in.size(1)
        target = torch.zeros(B, T1, S)
        for b, i in enumerate(batch.index.tolist()):
            pairs = self.pairs[i]
            if pairs:
                ps, pt = zip(*pairs)
                target[b, list(pt), list(ps)] = 1.0
        sums = target.sum(-1, keepdim=True)
        return target / sums.clamp_min(1.0)


def make_guide(cfg, data) -> GuideTargets:
    train = data.splits["train"]
    links = training_links(cfg, data)
    return GuideTargets(
        links,
        [data.src_tok.word_of_piece(t) for t in train.src_tokens],
        [data.tgt_tok.word_of_piece(t) for t in train.tgt_tokens],
    )

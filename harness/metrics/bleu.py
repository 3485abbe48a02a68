"""sacrebleu wrappers: corpus BLEU/chrF with signatures, paired bootstrap. Pure functions of strings."""

from __future__ import annotations

from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF


@dataclass
class CorpusScores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str


def _metrics(lowercase: bool) -> tuple[BLEU, CHRF]:
    # tokenize="13a" is sacreBLEU's default (WMT mteval-v13a); effective_order only matters sentence-level.
    return BLEU(lowercase=lowercase, tokenize="13a"), CHRF(lowercase=lowercase)


def corpus_scores(hyps: list[str], refs: list[str], lowercase: bool = False) -> CorpusScores:
    """Corpus BLEU and chrF of detokenized hypotheses against one reference each."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    bleu, chrf = _metrics(lowercase)
    if not hyps:  # the signature needs one scored call (it records the number of references)
        bleu.corpus_score([""], [[""]]), chrf.corpus_score([""], [[""]])
        return CorpusScores(0.0, 0.0, str(bleu.get_signature()), str(chrf.get_signature()))
    b = bleu.corpus_score(hyps, [refs])
    c = chrf.corpus_score(hyps, [refs])
    return CorpusScores(b.score, c.score, str(bleu.get_signature()), str(chrf.get_signature()))

"""Long-sentence degradation: corpus BLEU/chrF by source-length bucket.

Bahdanau, Cho, Bengio (2015) Fig. 2 and Luong, Pham, Manning (2015) Fig. 6 plot BLEU against source
sentence length to show that attention holds up on long sentences. Buckets are fixed (1-10, 11-20,
..., 51+) and always all reported, small or empty ones included (flagged ``few``), never merged, so
tables from different runs line up.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.metrics.bleu import corpus_scores


def bucket_label(lo: int, hi: int | None) -> str:
    """``"11-20"``, or ``"51+"`` for the open last bucket (``hi`` None)."""
    return f"{lo}+" if hi is None else f"{lo}-{hi}"


def by_length(
    src_lengths: list[int],
    hyps: list[str],
    refs: list[str],
    edges: Sequence[int] = (10, 20, 30, 40, 50),
    min_n: int = 30,
    lowercase: bool = False,
) -> list[dict]:
    """Corpus BLEU/chrF per source-length bucket, one dict per bucket, shortest first.

    Increasing upper ``edges`` e1 < e2 < ... give buckets 1..e1, e1+1..e2, ..., and an open last one
    (> last edge). An empty source (length 0) counts in the first bucket. Each dict: ``bucket``
    (label), ``lo``, ``hi`` (None for the open bucket), ``n``, ``bleu`` and ``chrf`` (None when
    ``n == 0``), ``few`` (``n < min_n``: too few sentences for a stable corpus BLEU).
    """
    if not len(src_lengths) == len(hyps) == len(refs):
        raise ValueError(f"{len(src_lengths)} lengths, {len(hyps)} hypotheses, {len(refs)} references")
    if not edges or edges[0] < 1 or any(a >= b for a, b in zip(edges, edges[1:])):
        raise ValueError(f"bucket edges must be positive and strictly increasing, got {list(edges)}")
    if any(length < 0 for length in src_lengths):
        raise ValueError("source lengths must be >= 0")
    buckets = []
    for lo, hi in zip([1, *(edge + 1 for edge in edges)], [*edges, None]):
        members = [k for k, n in enumerate(src_lengths) if (n >= lo or lo == 1) and (hi is None or n <= hi)]
        scores = None
        if members:  # corpus BLEU of an empty bucket is undefined, not 0
            scores = corpus_scores([hyps[k] for k in members], [refs[k] for k in members], lowercase)
        buckets.append(
            {
                "bucket": bucket_label(lo, hi),
                "lo": lo,
                "hi": hi,
                "n": len(members),
                "bleu": scores.bleu if scores is not None else None,
                "chrf": scores.chrf if scores is not None else None,
                "few": len(members) < min_n,
            }
        )
    return buckets


def length_drop(buckets: list[dict], min_n: int = 30) -> float | None:
    """BLEU lost on long sentences: BLEU of the shortest bucket with ``n >= min_n`` minus BLEU of the
    longest bucket with ``n >= min_n`` (positive = worse on long sentences).

    Buckets below ``min_n`` are skipped, not merged; returns None when fewer than two buckets qualify.
    ``buckets`` is the shortest-first list from ``by_length``.
    """
    qualifying = [b for b in buckets if b["n"] >= min_n and b["bleu"] is not None]
    if len(qualifying) < 2:
        return None
    return qualifying[0]["bleu"] - qualifying[-1]["bleu"]

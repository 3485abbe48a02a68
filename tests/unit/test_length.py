"""Source-length buckets and the long-sentence BLEU drop."""

from __future__ import annotations

import pytest

from harness.metrics.length import bucket_label, by_length, length_drop


def test_bucket_label():
    assert bucket_label(1, 10) == "1-10"
    assert bucket_label(11, 20) == "11-20"
    assert bucket_label(51, None) == "51+"


def _sentence(words: int, seed: int) -> str:
    return " ".join(f"w{seed}_{k}" for k in range(words))


def test_by_length_assigns_buckets_and_keeps_all():
    lengths = [5, 10, 11, 20, 21, 50, 51, 120, 0]
    refs = [_sentence(max(n, 4), k) for k, n in enumerate(lengths)]
    hyps = list(refs)
    hyps[6] = "completely different words here"  # one bad hypothesis in 51+
    buckets = by_length(lengths, hyps, refs, min_n=2)
    assert [b["bucket"] for b in buckets] == ["1-10", "11-20", "21-30", "31-40", "41-50", "51+"]
    assert [(b["lo"], b["hi"]) for b in buckets] == [
        (1, 10),
        (11, 20),
        (21, 30),
        (31, 40),
        (41, 50),
        (51, None),
    ]
    # 0 (empty source), 5 and 10 -> 1-10; 11, 20 -> 11-20; 21 -> 21-30; 50 -> 41-50; 51, 120 -> 51+
    assert [b["n"] for b in buckets] == [3, 2, 1, 0, 1, 2]
    assert [b["few"] for b in buckets] == [False, False, True, True, True, False]
    assert buckets[0]["bleu"] == pytest.approx(100.0)
    assert buckets[0]["chrf"] == pytest.approx(100.0)
    assert buckets[3]["bleu"] is None and buckets[3]["chrf"] is None  # empty bucket kept, not merged
    assert buckets[5]["bleu"] < 100.0


def test_by_length_custom_edges_and_errors():
    buckets = by_length([3, 7], ["a b c d", "e f g h"], ["a b c d", "e f g h"], edges=[5])
    assert [(b["bucket"], b["n"]) for b in buckets] == [("1-5", 1), ("6+", 1)]
    assert all(b["few"] for b in buckets)  # default min_n = 30
    with pytest.raises(ValueError, match="strictly increasing"):
        by_length([3], ["a"], ["a"], edges=[10, 10])
    with pytest.raises(ValueError):
        by_length([3, 4], ["a"], ["a"])


def _bucket(n: int, bleu: float | None) -> dict:
    return {"n": n, "bleu": bleu}


def test_length_drop_shortest_minus_longest_qualifying():
    buckets = [_bucket(5, 40.0), _bucket(100, 30.0), _bucket(80, 25.0), _bucket(40, 18.0), _bucket(3, 2.0)]
    # qualifying (n >= 30): 30.0 (shortest) ... 18.0 (longest); the small buckets at both ends are skipped
    assert length_drop(buckets) == pytest.approx(12.0)
    assert length_drop(buckets, min_n=1) == pytest.approx(38.0)
    assert length_drop(buckets, min_n=90) is None  # only one bucket qualifies
    assert length_drop([_bucket(0, None), _bucket(50, 20.0)]) is None
    assert length_drop([]) is None


def test_length_drop_from_by_length():
    lengths = [5] * 30 + [15] * 30 + [60] * 2
    refs = [_sentence(n, k) for k, n in enumerate(lengths)]
    hyps = refs[:30] + ["x y z w"] * 30 + refs[60:]
    buckets = by_length(lengths, hyps, refs)
    assert [b["n"] for b in buckets] == [30, 30, 0, 0, 0, 2]
    assert length_drop(buckets) == pytest.approx(100.0)  # 100 BLEU on 1-10, 0 on 11-20; 51+ too small

"""Attention -> word links -> AER / precision / recall, and attention entropy. Pure numpy functions.

Attention matrices follow one convention: ``attn`` has shape (T+1, S); row t (0-based) is the decoder
step that *predicts* target word t (its input is word t-1); the last row predicts end-of-sentence.
Links are (source_index, target_index), 0-indexed, as in ``harness.data.alignments``.
"""

from __future__ import annotations

import numpy as np

from harness.data.alignments import Alignment, Link


def links_from_attention(
    attn: np.ndarray,
    method: str = "argmax",
    lag: int = 1,
    threshold: float | None = None,
    target_words: int | None = None,
) -> set[Link]:
    """Word links from one sentence's attention matrix.

    Which row scores target word t:
    * ``"argmax"``: row t, the step that *predicts* word t (Luong, Pham, Manning 2015, "Effective Approaches to
      Attention-based NMT", §5.4 / Table 6 AER protocol).
    * ``"shift-att"``: row t + lag, the first step whose attention *query* has read word t (Chen et al. 2020,
      "Accurate Word Alignment Induction from Neural Machine Translation", shift-att): with word t known the
      attention aligns better than at the step that guesses it. lag = 1 where the query of step t has read
      y_{t−1} (Luong's h_t, the cgru's first GRU); lag = 2 where it is the previous state, which has read only
      y_{t−2} (RNNsearch's s_{i−1}, GNMT's bottom layer y^1_{i−1}): the matrix then needs the row of one extra
      forced step fed </s> (``harness.decode.search.forced_attention(extra_steps=1)``).

    How the row becomes links:
    * ``threshold=None``: one link per target word, to the argmax source word (ties: the lowest index);
    * ``threshold=p``: every source word whose weight exceeds p (Marian's ``--alignment p``); none if no weight
      does.

    End of sentence and punctuation: the step that predicts </s> is never a target word (the source has no
    </s> position to link to); punctuation tokens are words like any other and are linked and scored (both gold
    sets annotate them). ``target_words`` defaults to ``rows − 1`` (the last row predicts </s>), or
    ``rows − lag`` for shift-att with lag 2 (the extra row).
    """
    if attn.ndim != 2 or attn.shape[0] < 1:
        raise ValueError(f"attention must have shape (T+1, S) with T >= 0, got {attn.shape}")
    if method not in ("argmax", "shift-att"):
        raise ValueError(f"unknown alignment method {method!r} (expected 'argmax' or 'shift-att')")
    offset = 0 if method == "argmax" else lag
    if target_words is None:
        target_words = attn.shape[0] - max(1, offset)
    if target_words + offset > attn.shape[0]:
        raise ValueError(
            f"{method} with lag {lag} needs {target_words + offset} attention rows for {target_words} target "
            f"words, got {attn.shape[0]}"
        )
    if target_words and attn.shape[1] == 0:
        raise ValueError("attention has no source columns")
    rows = attn[offset : offset + target_words]
    if threshold is None:
        return {(int(source), target) for target, source in enumerate(rows.argmax(axis=1))}
    return {(int(source), int(target)) for target, source in zip(*np.nonzero(rows > threshold))}


def diagonal_links(src_words: int, tgt_words: int) -> set[Link]:
    """The positional baseline: target word t (0-based) links to source word round(t · |x| / |y|) (halves
    round up; clamped to the last word). No training, no text: what any aligner must beat."""
    if src_words == 0:
        return set()
    return {(min(src_words - 1, int(t * src_words / tgt_words + 0.5)), t) for t in range(tgt_words)}


def _one_hot(word_of_piece: list[int], pieces: int, side: str) -> np.ndarray:
    """(pieces, words) 0/1 matrix mapping each piece to its word."""
    if len(word_of_piece) != pieces:
        raise ValueError(f"{len(word_of_piece)} {side} piece->word entries for {pieces} {side} pieces")
    if any(word < 0 for word in word_of_piece):
        raise ValueError(f"negative {side} word index in {word_of_piece}")
    words = max(word_of_piece, default=-1) + 1
    matrix = np.zeros((pieces, words), dtype=float)
    matrix[np.arange(pieces), word_of_piece] = 1.0
    return matrix


def merge_subwords(
    attn: np.ndarray, src_word_of_piece: list[int], tgt_word_of_piece: list[int], extra_rows: int = 0
) -> np.ndarray:
    """Attention over subword pieces (T_pieces+1, S_pieces) -> over words (T_words+1, S_words).

    Columns are summed per source word: the attention mass a step puts on a word is the sum over its
    pieces. Rows are summed per target word (our choice; averaging gives the same argmax links, but
    summing keeps the mass, so a word's row sums to its number of pieces). The rows after the target pieces
    (the end-of-sentence step, and `extra_rows` forced steps after it) are kept, column-merged, as the last rows.
    Drop any source EOS column first.
    """
    if attn.ndim != 2 or attn.shape[0] < 1 + extra_rows:
        raise ValueError(f"attention must have shape (T+1+{extra_rows}, S), got {attn.shape}")
    pieces_t, pieces_s = attn.shape[0] - 1 - extra_rows, attn.shape[1]
    src_map = _one_hot(src_word_of_piece, pieces_s, "source")  # (S_pieces, S_words)
    tgt_map = _one_hot(tgt_word_of_piece, pieces_t, "target")  # (T_pieces, T_words)
    by_src_word = attn @ src_map  # (T_pieces+1, S_words)
    by_word = tgt_map.T @ by_src_word[:pieces_t]  # (T_words, S_words)
    return np.vstack([by_word, by_src_word[pieces_t:]])  # (T_words+1, S_words)


def alignment_counts(hyp: list[set[Link]], gold: list[Alignment]) -> np.ndarray:
    """Per sentence the four counts corpus AER sums: |A|, |S|, |A∩S|, |A∩P|; shape (sentences, 4)."""
    if len(hyp) != len(gold):
        raise ValueError(f"{len(hyp)} hypothesis alignments but {len(gold)} gold alignments")
    rows = [(len(a), len(g.sure), len(a & g.sure), len(a & g.possible)) for a, g in zip(hyp, gold)]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 4)


def _aer_of(totals: np.ndarray) -> np.ndarray:
    """Corpus AER of summed counts (..., 4); 0.0 where A and S are both empty."""
    proposed, sure, hit_sure, hit_possible = np.moveaxis(totals, -1, 0)
    return np.where(proposed + sure > 0, 1.0 - (hit_sure + hit_possible) / np.maximum(proposed + sure, 1), 0.0)


def alignment_scores(hyp: list[set[Link]], gold: list[Alignment]) -> dict:
    """Corpus AER, precision and recall (Och & Ney 2003), counts summed over sentences.

    precision = |A∩P| / |A|, recall = |A∩S| / |S|, AER = 1 − (|A∩S| + |A∩P|) / (|A| + |S|).
    Empty cases: precision is 1.0 when A is empty (no wrong link proposed), recall is 1.0 when S is
    empty (nothing to find), AER is 0.0 when both A and S are empty.
    """
    totals = alignment_counts(hyp, gold).sum(axis=0)
    proposed, sure, hit_sure, hit_possible = (int(v) for v in totals)
    return {
        "aer": float(_aer_of(totals)),
        "precision": hit_possible / proposed if proposed else 1.0,
        "recall": hit_sure / sure if sure else 1.0,
    }


def aer_paired_bootstrap(
    system: list[set[Link]], baseline: list[set[Link]], gold: list[Alignment], n_samples: int = 1000, seed: int = 12345
) -> dict:
    """Paired bootstrap resampling (Koehn 2004) of the corpus AER of two link sets on the same gold sentences.

    The statistic is sacreBLEU's `--paired-bs` (harness/report/significance.py, for BLEU), with AER for BLEU:
    `n_samples` resamples of the sentences (with replacement, the same ones for both), and p = (1 + the number
    of resamples whose mean-centred absolute AER difference exceeds the observed one) / (n_samples + 1): how
    often a difference this large appears by chance if both aligned equally well. Identical link sets get
    p = 1. sacreBLEU's implementation takes its own metrics only, hence this one.
    """
    if len(system) != len(baseline):
        raise ValueError(f"{len(system)} system alignments but {len(baseline)} baseline alignments")
    sys_counts, base_counts = alignment_counts(system, gold), alignment_counts(baseline, gold)
    aer, baseline_aer = float(_aer_of(sys_counts.sum(0))), float(_aer_of(base_counts.sum(0)))
    observed = abs(aer - baseline_aer)
    if system == baseline:
        p = 1.0
    else:
        picks = np.random.default_rng(seed).integers(0, len(gold), size=(n_samples, len(gold)))
        diffs = np.abs(_aer_of(sys_counts[picks].sum(1)) - _aer_of(base_counts[picks].sum(1)))
        p = (int(np.sum(diffs - diffs.mean() > observed)) + 1) / (n_samples + 1)
    return {
        "aer": aer,
        "baseline_aer": baseline_aer,
        "p_value": p,
        "sentences": len(gold),
    }


def attention_entropy(attns: list[np.ndarray]) -> float:
    """Mean Shannon entropy (nats) of the attention rows, over every row of every matrix.

    Each row is normalised to sum to 1 first (p_s = a_s / Σ a), so that models whose rows do not sum to 1 are
    comparable with the others: Luong's local-p multiplies the window's softmax by a Gaussian (eq. 10) and its
    rows sum to less than 1. H(row) = −Σ_s p_s ln p_s over the non-zero p_s; an all-zero row (an empty source)
    counts as 0. A uniform row over S words has entropy ln S; a one-hot row has 0.
    """
    total, rows = 0.0, 0
    for attn in attns:
        matrix = np.asarray(attn, dtype=float)  # (T+1, S)
        mass = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, mass, out=np.zeros_like(matrix), where=mass > 0)
        logs = np.log(matrix, out=np.zeros_like(matrix), where=matrix > 0)  # 0 log 0 = 0
        total -= float((matrix * logs).sum())
        rows += matrix.shape[0]
    if rows == 0:
        raise ValueError("no attention rows to average")
    return total / rows

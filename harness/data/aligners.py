"""Statistical word aligners: the baseline that attention-as-alignment is compared with (Luong et al. 2015,
Table 6 compares with the Berkeley aligner).

* `eflomal` (Östling & Tiedemann 2016, "Efficient word alignment with Markov Chain Monte Carlo", PBML 106):
  Bayesian IBM-style model with fertility and HMM-style distortion, trained by Gibbs sampling; the package
  `eflomal` (pip) ships the C sampler. Used when it is installed.
* `ibm2`: a fallback written here in numpy, IBM Model 1 lexical translation with fast_align's diagonal
  distortion prior (Dyer, Chahuneau, Smith 2013, "A Simple, Fast, and Effective Reparameterization of IBM
  Model 2"; fixed tension λ = 4, null probability p0 = 0.08), trained by EM. Much weaker than eflomal and
  memory-hungry (it keeps every (source word, target word) candidate of the corpus: ~0.5 GB per 100k pairs).

Both align in the two directions; `symmetrize` combines them (intersection, union, grow-diag-final-and of
Koehn, Och, Marcu 2003). Links are (source_index, target_index), 0-indexed, as in harness.data.alignments.
Sentences are whitespace-tokenized strings (the gold alignment sets are over whitespace words).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import numpy as np

from harness.data.alignments import Link
from harness.errors import HarnessError

METHODS = ("intersection", "union", "grow-diag-final-and")


def available_aligner() -> str:
    """'eflomal' when the package is installed, else the numpy fallback 'ibm2'."""
    return "eflomal" if importlib.util.find_spec("eflomal") is not None else "ibm2"


def parse_pharaoh_lines(lines: list[str]) -> list[set[Link]]:
    out = []
    for line in lines:
        links = set()
        for tok in line.split():
            s, t = tok.split("-")
            links.add((int(s), int(t)))
        out.append(links)
    return out


# ------------------------------------------------------------------------------------------ eflomal
def eflomal_align(
    src: list[str], tgt: list[str], seed: int = 1, rel_iterations: float = 1.0
) -> tuple[list[set[Link]], list[set[Link]]]:
    """Forward (source -> target) and reverse links from eflomal, both as (source, target) pairs.

    eflomal picks its number of sampling iterations from the corpus size (more for small corpora);
    `rel_iterations` scales it (1.0 = eflomal's default)."""
    try:
        import eflomal
    except ImportError:
        raise HarnessError("aligner eflomal: package not installed (pip install eflomal)") from None
    if len(src) != len(tgt):
        raise HarnessError(f"aligner eflomal: {len(src)} source but {len(tgt)} target sentences")
    del seed  # eflomal's C sampler takes no seed: links vary a little between runs (~0.005 AER)
    with tempfile.TemporaryDirectory(prefix="eflomal-") as tmp:
        fwd, rev = Path(tmp) / "fwd", Path(tmp) / "rev"
        aligner = eflomal.Aligner(rel_iterations=rel_iterations)
        aligner.align(
            [s + "\n" for s in src],
            [t + "\n" for t in tgt],
            links_filename_fwd=str(fwd),
            links_filename_rev=str(rev),
            quiet=True,
        )
        return (
            parse_pharaoh_lines(fwd.read_text().splitlines()),
            parse_pharaoh_lines(rev.read_text().splitlines()),
        )


# ------------------------------------------------------------------------------------------ IBM2 fallback
def _ibm2_direction(
    src: list[list[str]], tgt: list[list[str]], iterations: int, tension: float, p_null: float
) -> list[set[Link]]:
    """Each target word aligns to one source word or NULL; returns (source, target) links without NULL."""
    vocab_s: dict[str, int] = {"<null>": 0}
    vocab_t: dict[str, int] = {}
    src_ids, pair_keys, prior, group = [], [], [], []
    g = 0
    for s_words, t_words in zip(src, tgt):
        n, m = len(s_words), len(t_words)
        if m == 0:
            continue
        s_id = np.array([0] + [vocab_s.setdefault(w, len(vocab_s)) for w in s_words], dtype=np.int64)  # (n+1,)
        t_id = np.array([vocab_t.setdefault(w, len(vocab_t)) for w in t_words], dtype=np.int64)  # (m,)
        # fast_align prior: p(a_j = i) ∝ exp(-λ |(i+1)/n - (j+1)/m|) for real words, p0 for NULL
        if n:
            h = -np.abs((np.arange(1, n + 1)[None, :] / n) - (np.arange(1, m + 1)[:, None] / m))  # (m, n)
            z = np.exp(tension * h)
            p = np.concatenate([np.full((m, 1), p_null), (1 - p_null) * z / z.sum(1, keepdims=True)], 1)
        else:
            p = np.ones((m, 1))
        src_ids.append(np.broadcast_to(s_id[None, :], (m, n + 1)).ravel())
        pair_keys.append(np.broadcast_to(t_id[:, None], (m, n + 1)).ravel())
        prior.append(p.ravel())
        group.append(np.repeat(np.arange(g, g + m), n + 1))
        g += m
    if not src_ids:
        return [set() for _ in src]
    s_flat = np.concatenate(src_ids)
    t_flat = np.concatenate(pair_keys)
    prior_flat = np.concatenate(prior)
    group_flat = np.concatenate(group)
    keys = s_flat * max(1, len(vocab_t)) + t_flat
    uniq, pair = np.unique(keys, return_inverse=True)
    src_of_pair = uniq // max(1, len(vocab_t))
    t_table = np.ones(len(uniq))
    for _ in range(iterations):
        prob = prior_flat * t_table[pair]
        denom = np.bincount(group_flat, weights=prob, minlength=g)
        post = prob / np.maximum(denom[group_flat], 1e-300)
        counts = np.bincount(pair, weights=post, minlength=len(uniq))
        totals = np.bincount(src_of_pair, weights=counts)
        t_table = counts / np.maximum(totals[src_of_pair], 1e-300)
    prob = prior_flat * t_table[pair]
    # Viterbi link per target word: the first maximum within its group (groups are contiguous)
    starts = np.flatnonzero(np.r_[True, group_flat[1:] != group_flat[:-1]])
    best = np.maximum.reduceat(prob, starts)
    is_best = prob >= best[group_flat]
    _, first = np.unique(group_flat[is_best], return_index=True)
    best_entry = np.flatnonzero(is_best)[first]  # one entry per group (target word), in group order
    out: list[set[Link]] = []
    k = 0
    for s_words, t_words in zip(src, tgt):
        links = set()
        n = len(s_words)
        for j in range(len(t_words)):
            i = int(best_entry[k] - starts[k]) - 1  # position in the (n+1) row; 0 is NULL
            if 0 <= i < n:
                links.add((i, j))
            k += 1
        out.append(links)
    return out


def ibm2_align(
    src: list[str], tgt: list[str], iterations: int = 5, tension: float = 4.0, p_null: float = 0.08
) -> tuple[list[set[Link]], list[set[Link]]]:
    """Forward and reverse IBM2 (fast_align-style) links, both as (source, target) pairs."""
    s_tok, t_tok = [s.split() for s in src], [t.split() for t in tgt]
    fwd = _ibm2_direction(s_tok, t_tok, iterations, tension, p_null)
    rev_swapped = _ibm2_direction(t_tok, s_tok, iterations, tension, p_null)
    return fwd, [{(s, t) for t, s in links} for links in rev_swapped]


# ------------------------------------------------------------------------------------------ symmetrization
_NEIGHBOURS = [(-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]


def grow_diag_final_and(fwd: set[Link], rev: set[Link]) -> set[Link]:
    """Koehn, Och, Marcu (2003) / Moses `grow-diag-final-and`: start from the intersection, add union links
    that neighbour (incl. diagonally) an existing link and cover an unaligned word, then add remaining
    directional links whose source and target words are both unaligned."""
    union = fwd | rev
    links = set(fwd & rev)
    src_aligned = {s for s, _ in links}
    tgt_aligned = {t for _, t in links}
    added = True
    while added:
        added = False
        for s, t in sorted(links):
            for ds, dt in _NEIGHBOURS:
                cand = (s + ds, t + dt)
                if cand in union and cand not in links and (cand[0] not in src_aligned or cand[1] not in tgt_aligned):
                    links.add(cand)
                    src_aligned.add(cand[0])
                    tgt_aligned.add(cand[1])
                    added = True
    for direction in (fwd, rev):  # final-and
        for s, t in sorted(direction):
            if (s, t) not in links and s not in src_aligned and t not in tgt_aligned:
                links.add((s, t))
                src_aligned.add(s)
                tgt_aligned.add(t)
    return links


def symmetrize(fwd: list[set[Link]], rev: list[set[Link]], method: str = "grow-diag-final-and") -> list[set[Link]]:
    if method not in METHODS:
        raise HarnessError(f"symmetrization {method!r} is not one of {', '.join(METHODS)}")
    if method == "intersection":
        return [f & r for f, r in zip(fwd, rev)]
    if method == "union":
        return [f | r for f, r in zip(fwd, rev)]
    return [grow_diag_final_and(f, r) for f, r in zip(fwd, rev)]


def align(src: list[str], tgt: list[str], aligner: str | None = None, seed: int = 1, rel_iterations: float = 1.0):
    """(aligner name, forward links, reverse links) for whitespace-tokenized parallel sentences."""
    aligner = aligner or available_aligner()
    if aligner == "eflomal":
        return aligner, *eflomal_align(src, tgt, seed, rel_iterations)
    if aligner == "ibm2":
        return aligner, *ibm2_align(src, tgt)
    raise HarnessError(f"aligner {aligner!r} is not one of eflomal, ibm2")

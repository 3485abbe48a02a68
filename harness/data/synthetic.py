"""The synthetic translation task: a generated language pair with exact gold word alignments.

It exists so that the demo and the tests can show, in minutes on a CPU, what attention fixes: a decoder
that sees only one summary vector forgets long sentences; one with attention does not.

Construction (deterministic from `SyntheticConfig.seed`):
- Source vocabulary `s0 … s{V-1}` with Zipfian unigram frequencies (p(rank r) ∝ 1/(r+1)).
- Every source word has a word class: ADJ, NOUN, PART (particle) or OTHER.
- A fixed bilingual lexicon maps each source word to one target word `t…`; a share `one_to_many` maps
  to two target words (one-to-many), and particles (share `many_to_one`) emit nothing themselves but
  merge with the next word: that word's target words are aligned to both (many-to-one).
- Local reordering: an ADJ directly followed by a NOUN swaps with it on the target side (like de/en→fr).
- Gold alignment: every link produced by the construction is a sure link (there is no ambiguity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.config import SyntheticConfig

ADJ, NOUN, PART, OTHER = "ADJ", "NOUN", "PART", "OTHER"


@dataclass
class SyntheticPair:
    src: list[str]
    tgt: list[str]
    links: set[tuple[int, int]]  # (src index, tgt index), 0-indexed, all sure


class SyntheticLanguage:
    """The fixed lexicon and word classes of one synthetic language pair."""

    def __init__(self, cfg: SyntheticConfig):
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        V = cfg.vocab_size
        self.src_words = [f"s{i}" for i in range(V)]
        freq = 1.0 / np.arange(1, V + 1)
        self.probs = freq / freq.sum()
        classes = rng.choice([ADJ, NOUN, OTHER], size=V, p=[0.25, 0.35, 0.40]).tolist()
        n_part = int(round(cfg.many_to_one * V))
        for i in rng.choice(V, size=n_part, replace=False):
            classes[int(i)] = PART
        self.classes = classes
        # Lexicon: target ids are a permutation of the source ids, so the task is not a copy task.
        perm = rng.permutation(V)
        self.lexicon: list[list[str]] = []
        extra = V
        for i in range(V):
            if classes[i] == PART:
                self.lexicon.append([])
                continue
            words = [f"t{perm[i]}"]
            if rng.random() < cfg.one_to_many:
                words.append(f"t{extra}")
                extra += 1
            self.lexicon.append(words)

    def translate(self, src_ids: list[int]) -> SyntheticPair:
        src = [self.src_words[i] for i in src_ids]
        # 1) units: (source positions, target words) after particle merging
        units: list[tuple[list[int], list[str], str]] = []
        pending: list[int] = []
        for pos, wid in enumerate(src_ids):
            if self.classes[wid] == PART:
                pending.append(pos)
                continue
            units.append((pending + [pos], self.lexicon[wid], self.classes[wid]))
            pending = []
        if pending and units:  # trailing particles attach to the last unit
            positions, words, cls = units[-1]
            units[-1] = (positions + pending, words, cls)
        elif pending:  # a sentence of particles only: translate the last particle literally
            units.append((pending, [f"t{self.cfg.vocab_size * 2 + src_ids[pending[-1]]}"], OTHER))
        # 2) local reordering: ADJ NOUN -> NOUN ADJ
        if self.cfg.reorder:
            i = 0
            while i < len(units) - 1:
                if units[i][2] == ADJ and units[i + 1][2] == NOUN:
                    units[i], units[i + 1] = units[i + 1], units[i]
                    i += 2
                else:
                    i += 1
        tgt: list[str] = []
        links: set[tuple[int, int]] = set()
        for positions, words, _ in units:
            for w in words:
                for p in positions:
                    links.add((p, len(tgt)))
                tgt.append(w)
        return SyntheticPair(src, tgt, links)

    def sample(self, rng: np.random.Generator) -> SyntheticPair:
        n = int(rng.integers(self.cfg.min_len, self.cfg.max_len + 1))
        ids = rng.choice(self.cfg.vocab_size, size=n, p=self.probs).tolist()
        return self.translate(ids)


def generate(cfg: SyntheticConfig) -> dict[str, list[SyntheticPair]]:
    """Train/val/test splits; each split has its own seeded stream so sizes can change independently."""
    lang = SyntheticLanguage(cfg)
    out = {}
    for k, (split, size) in enumerate([("train", cfg.train_size), ("val", cfg.val_size), ("test", cfg.test_size)]):
        rng = np.random.default_rng([cfg.seed, k + 1])
        out[split] = [lang.sample(rng) for _ in range(size)]
    return out

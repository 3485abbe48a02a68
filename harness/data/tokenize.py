"""Tokenizers (word / sentencepiece) and the vocabulary."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

from harness.paths import cache_dir

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = [PAD, UNK, BOS, EOS]
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class Vocab:
    """Token <-> id; ids 0-3 are <pad>, <unk>, <s>, </s>."""

    def __init__(self, tokens: list[str]):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, sentences: list[list[str]], min_freq: int = 1, max_size: int = 0) -> Vocab:
        counts = Counter(tok for sent in sentences for tok in sent)
        kept = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
        kept = [t for t in kept if t not in SPECIALS]
        if max_size:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        return cls(SPECIALS + kept)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.stoi.get(t, UNK_ID) for t in tokens]

    def decode(self, ids) -> list[str]:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            out.append(self.itos[i])
        return out


class WordTokenizer:
    """Whitespace words; optional lowercasing and Moses punctuation splitting (sacremoses) for raw text."""

    kind = "word"

    def __init__(self, lang: str, lowercase: bool = False, moses: bool = False):
        self.lang, self.lowercase, self.moses = lang, lowercase, moses
        if moses:
            from sacremoses import MosesDetokenizer, MosesTokenizer

            self._tok = MosesTokenizer(lang=lang)
            self._detok = MosesDetokenizer(lang=lang)

    def encode(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.moses:
            return self._tok.tokenize(text, escape=False)
        return text.split()

    def decode(self, tokens: list[str]) -> str:
        if self.moses:
            return self._detok.detokenize(tokens)
        return " ".join(tokens)

    @staticmethod
    def word_of_piece(tokens: list[str]) -> list[int]:
        return list(range(len(tokens)))


class SentencePieceTokenizer:
    """sentencepiece BPE/unigram trained on the training side, cached by content hash."""

    kind = "sentencepiece"

    def __init__(self, model_file: str | Path, lowercase: bool = False):
        import sentencepiece as spm

        self.model_file = str(model_file)
        self.lowercase = lowercase
        self.sp = spm.SentencePieceProcessor(model_file=self.model_file)

    @classmethod
    def train(cls, texts: list[str], lang: str, vocab_size: int, model_type: str, lowercase: bool = False):
        import sentencepiece as spm

        h = hashlib.sha256()
        h.update(f"{lang}|{vocab_size}|{model_type}|{lowercase}|{spm.__version__}\n".encode())
        for t in texts:
            h.update(t.encode("utf-8") + b"\n")
        prefix = cache_dir() / "spm" / f"{lang}-{model_type}-{vocab_size}-{h.hexdigest()[:16]}"
        model = prefix.with_suffix(".model")
        if not model.exists():
            prefix.parent.mkdir(parents=True, exist_ok=True)
            tmp = prefix.parent / f"{prefix.name}.tmp{os.getpid()}"
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter([t.lower() if lowercase else t for t in texts]),
                model_prefix=str(tmp),
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=1.0,
                hard_vocab_limit=False,
                bos_id=-1,
                eos_id=-1,
                unk_id=0,
                num_threads=1,
                minloglevel=2,
            )
            os.replace(f"{tmp}.vocab", prefix.with_suffix(".vocab"))
            os.replace(f"{tmp}.model", model)
        return cls(model, lowercase)

    def encode(self, text: str) -> list[str]:
        return self.sp.encode(text.lower() if self.lowercase else text, out_type=str)

    def decode(self, tokens: list[str]) -> str:
        return self.sp.decode_pieces(tokens)

    @staticmethod
    def word_of_piece(tokens: list[str]) -> list[int]:
        """Word index of every piece: a piece starting with ▁ opens a new word (gold alignments are per word)."""
        out, w = [], -1
        for t in tokens:
            if t.startswith("▁") or w < 0:
                w += 1
            out.append(w)
        return out

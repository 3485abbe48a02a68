"""Tokenized, numericalized splits and the LightningDataModule: length-bucketed batches with padding masks."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import lightning.pytorch as pl
import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from harness.config import DataConfig, ExperimentConfig
from harness.data.batch import Batch, collate
from harness.data.corpora import Corpus, Split, load_corpus
from harness.data.tokenize import SentencePieceTokenizer, Vocab, WordTokenizer
from harness.errors import HarnessError

log = logging.getLogger(__name__)


@dataclass
class EncodedSplit:
    name: str
    src_tokens: list[list[str]]
    tgt_tokens: list[list[str]]
    src_ids: list[list[int]]
    tgt_ids: list[list[int]]
    raw: Split  # raw text (references are raw.tgt) and gold alignments
    lines: list[int] | None = None  # train: the raw split's index of each pair the length filter kept


@dataclass
class PreparedData:
    corpus: Corpus
    src_tok: object
    tgt_tok: object
    src_vocab: Vocab
    tgt_vocab: Vocab
    splits: dict[str, EncodedSplit] = field(default_factory=dict)
    filtered: int = 0  # training pairs removed by the length filter

    def sizes(self) -> dict[str, int]:
        return {k: len(v.src_ids) for k, v in self.splits.items()}


def make_tokenizers(cfg: DataConfig, corpus: Corpus):
    if cfg.tokenizer == "sentencepiece":
        train = corpus.splits["train"]
        src = SentencePieceTokenizer.train(train.src, corpus.src_lang, cfg.sp_vocab_size, cfg.sp_type, cfg.lowercase)
        tgt = SentencePieceTokenizer.train(train.tgt, corpus.tgt_lang, cfg.sp_vocab_size, cfg.sp_type, cfg.lowercase)
        return src, tgt
    moses = cfg.moses and not corpus.pretokenized
    return (
        WordTokenizer(corpus.src_lang, cfg.lowercase, moses),
        WordTokenizer(corpus.tgt_lang, cfg.lowercase, moses),
    )


def encode_split(split: Split, src_tok, tgt_tok, src_vocab: Vocab, tgt_vocab: Vocab) -> EncodedSplit:
    src_tokens = [src_tok.encode(s) for s in split.src]
    tgt_tokens = [tgt_tok.encode(t) for t in split.tgt]
    return EncodedSplit(
        split.name,
        src_tokens,
        tgt_tokens,
        [src_vocab.encode(t) for t in src_tokens],
        [tgt_vocab.encode(t) for t in tgt_tokens],
        split,
    )


def prepare(
    cfg: ExperimentConfig, corpus: Corpus | None = None, vocabs: tuple[list, list] | None = None
) -> PreparedData:
    """Load the corpus, train/restore tokenizers and vocabularies, encode every split, length-filter train.

    `vocabs` (src itos, tgt itos) restores the vocabularies of a trained model instead of rebuilding them.
    """
    corpus = corpus or load_corpus(cfg.data)
    src_tok, tgt_tok = make_tokenizers(cfg.data, corpus)
    train = corpus.splits["train"]
    if vocabs is None:
        src_vocab = Vocab.build(
            [src_tok.encode(s) for s in train.src], cfg.data.vocab_min_freq, cfg.data.vocab_max_size
        )
        tgt_vocab = Vocab.build(
            [tgt_tok.encode(t) for t in train.tgt], cfg.data.vocab_min_freq, cfg.data.vocab_max_size
        )
    else:
        src_vocab, tgt_vocab = Vocab(vocabs[0]), Vocab(vocabs[1])
    data = PreparedData(corpus, src_tok, tgt_tok, src_vocab, tgt_vocab)
    for name, split in corpus.splits.items():
        enc = encode_split(split, src_tok, tgt_tok, src_vocab, tgt_vocab)
        if name == "train":
            keep = [
                i
                for i in range(len(enc.src_ids))
                if 0 < len(enc.src_ids[i]) <= cfg.data.max_len and 0 < len(enc.tgt_ids[i]) <= cfg.data.max_len
            ]
            data.filtered = len(enc.src_ids) - len(keep)
            for attr in ("src_tokens", "tgt_tokens", "src_ids", "tgt_ids"):
                setattr(enc, attr, [getattr(enc, attr)[i] for i in keep])
            enc.lines = keep
            if not keep:
                raise HarnessError(f"data.max_len={cfg.data.max_len}: no training pair is left after length filtering")
        data.splits[name] = enc
    return data


class PairDataset(Dataset):
    def __init__(self, split: EncodedSplit):
        self.split = split

    def __len__(self) -> int:
        return len(self.split.src_ids)

    def __getitem__(self, i: int):
        return i, self.split.src_ids[i], self.split.tgt_ids[i]


class BucketBatchSampler(Sampler):
    """Batches of similar source length (less padding); by sentences or by target tokens; seeded shuffle.

    Sentences are sorted by length inside pools of 100 batches, cut into batches, and the batches shuffled
    with a generator seeded by (seed, epoch): the same seed gives the same batches on every run.

    Resuming: `position` counts the batches handed out in the current epoch; `state_dict()` /
    `load_state_dict()` carry (epoch, position) through a checkpoint so a resumed run continues with the
    very batch an uninterrupted run would have drawn next (see ResumableDataLoader).
    """

    def __init__(self, lengths: list[int], batch_size: int, by_tokens: bool, shuffle: bool, seed: int):
        self.lengths, self.batch_size, self.by_tokens = lengths, batch_size, by_tokens
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.position = 0  # batches handed out in this epoch
        self._resume_at = 0  # where the next iteration starts (set by load_state_dict only)
        self._batches = self._make(0)

    @property
    def sampler(self) -> BucketBatchSampler:
        # Lightning's _set_sampler_epoch calls set_epoch on dataloader.sampler and dataloader.batch_sampler.sampler,
        # never on the batch sampler itself; without this every epoch would repeat epoch 0's batch order.
        return self

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:  # Lightning sets the same epoch again after a mid-epoch resume: keep _resume_at
            self.position = self._resume_at = 0
        self.epoch = epoch
        self._batches = self._make(epoch)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.set_epoch(int(state["epoch"]))
        self.position = self._resume_at = int(state["position"])

    def _make(self, epoch: int) -> list[list[int]]:
        n = len(self.lengths)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        pool = self.batch_size * 100 if not self.by_tokens else max(1, self.batch_size * 100 // 20)
        batches: list[list[int]] = []
        for start in range(0, n, pool):
            chunk = sorted(order[start : start + pool].tolist(), key=lambda i: self.lengths[i])
            cur: list[int] = []
            for i in chunk:
                if self.by_tokens:
                    longest = max([self.lengths[j] for j in cur] + [self.lengths[i]])
                    if cur and longest * (len(cur) + 1) > self.batch_size:
                        batches.append(cur)
                        cur = []
                elif len(cur) == self.batch_size:
                    batches.append(cur)
                    cur = []
                cur.append(i)
            if cur:
                batches.append(cur)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self):
        start, self._resume_at = self._resume_at, 0
        for k in range(start, len(self._batches)):
            self.position = k + 1
            yield self._batches[k]

    def __len__(self) -> int:
        return len(self._batches)


class ResumableDataLoader(DataLoader):
    """A DataLoader Lightning treats as resumable: it saves `state_dict()` in the checkpoint (fit loop,
    'combined_loader') and calls `load_state_dict()` on resume before iterating. Lightning does not prefetch
    from a loader with a length, and there are no worker processes, so the batch sampler's position is exactly
    the number of batches trained on in the current epoch."""

    def state_dict(self) -> dict[str, int]:
        return self.batch_sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.load_state_dict(state)


def eval_batches(split: EncodedSplit, batch_size: int) -> list[Batch]:
    """Decoding batches in length order (less padding); `Batch.index` restores the file order."""
    order = sorted(range(len(split.src_ids)), key=lambda i: len(split.src_ids[i]))
    ds = PairDataset(split)
    return [collate([ds[i] for i in order[k : k + batch_size]]) for k in range(0, len(order), batch_size)]


class TranslationDataModule(pl.LightningDataModule):
    def __init__(self, cfg: ExperimentConfig, data: PreparedData):
        super().__init__()
        self.cfg, self.data = cfg, data
        self.train_sampler: BucketBatchSampler | None = None

    def train_dataloader(self) -> DataLoader:
        split = self.data.splits["train"]
        lengths = [len(t) + 1 for t in split.tgt_ids]
        self.train_sampler = BucketBatchSampler(
            lengths, self.cfg.train.batch_size, self.cfg.data.batch_by == "tokens", True, self.cfg.seed
        )
        return ResumableDataLoader(PairDataset(split), batch_sampler=self.train_sampler, collate_fn=collate)

    def val_dataloader(self) -> DataLoader:
        split = self.data.splits["val"]
        lengths = [len(s) for s in split.src_ids]
        sampler = BucketBatchSampler(lengths, self.cfg.decode.batch_size, False, False, 0)
        return DataLoader(PairDataset(split), batch_sampler=sampler, collate_fn=collate)

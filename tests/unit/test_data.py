"""Data sources: parallel file reading rules, synthetic task determinism and exact gold alignments."""

import gzip

import pytest

from harness.config import DataConfig, SyntheticConfig
from harness.data.batch import collate
from harness.data.corpora import load_corpus, read_lines, read_parallel
from harness.data.datamodule import BucketBatchSampler
from harness.data.synthetic import SyntheticLanguage, generate
from harness.data.tokenize import EOS_ID, PAD_ID, Vocab, WordTokenizer
from harness.errors import HarnessError

from ..conftest import needs_data


def test_read_lines_normalises_bom_crlf_and_gzip(tmp_path):
    p = tmp_path / "a.de"
    p.write_bytes("\ufeffeins  zwei\r\ndrei\r\n".encode())
    assert read_lines(p) == ["eins zwei", "drei"]
    g = tmp_path / "b.de.gz"
    with gzip.open(g, "wb") as f:
        f.write(b"x y\nz\n")
    assert read_lines(g) == ["x y", "z"]


def test_read_lines_errors(tmp_path):
    bad = tmp_path / "bad.en"
    bad.write_bytes(b"good line\nbad \xff byte\n")
    with pytest.raises(HarnessError, match=r"bad.en: not valid UTF-8 at byte offset 14"):
        read_lines(bad)
    empty = tmp_path / "empty.en"
    empty.write_bytes(b"")
    with pytest.raises(HarnessError, match="empty.en: is empty"):
        read_lines(empty)
    with pytest.raises(HarnessError, match="not found"):
        read_lines(tmp_path / "nope.en")


def test_parallel_line_counts_and_empty_lines(tmp_path):
    (tmp_path / "t.de").write_text("a\nb\n\nd\n")
    (tmp_path / "t.en").write_text("A\nB\nC\n")
    with pytest.raises(HarnessError, match=r"t.de \(4 lines\) and .*t.en \(3 lines\)"):
        read_parallel(tmp_path / "t.de", tmp_path / "t.en", "train", True)
    (tmp_path / "t.en").write_text("A\nB\nC\nD\n")
    train, dropped = read_parallel(tmp_path / "t.de", tmp_path / "t.en", "train", True)
    assert dropped == 1 and train.src == ["a", "b", "d"]
    test, dropped = read_parallel(tmp_path / "t.de", tmp_path / "t.en", "test", False)
    assert dropped == 0 and len(test.src) == 4  # kept (and translated) at test time


def test_synthetic_is_deterministic_and_gold_is_exact():
    cfg = SyntheticConfig(train_size=50, val_size=5, test_size=5, min_len=3, max_len=30)
    a, b = generate(cfg), generate(cfg)
    assert [p.src for p in a["train"]] == [p.src for p in b["train"]]
    assert [p.tgt for p in a["test"]] == [p.tgt for p in b["test"]]
    other = generate(SyntheticConfig(train_size=50, val_size=5, test_size=5, min_len=3, max_len=30, seed=99))
    assert [p.src for p in other["train"]] != [p.src for p in a["train"]]
    for p in a["train"]:
        assert 3 <= len(p.src) <= 30
        # every target word is aligned, every link is in range
        assert {t for _, t in p.links} == set(range(len(p.tgt)))
        assert all(0 <= s < len(p.src) and 0 <= t < len(p.tgt) for s, t in p.links)


def test_synthetic_reordering_one_to_many_and_many_to_one():
    cfg = SyntheticConfig(vocab_size=30, one_to_many=0.3, many_to_one=0.1)
    lang = SyntheticLanguage(cfg)
    adj = next(i for i, c in enumerate(lang.classes) if c == "ADJ" and len(lang.lexicon[i]) == 1)
    noun = next(i for i, c in enumerate(lang.classes) if c == "NOUN" and len(lang.lexicon[i]) == 1)
    pair = lang.translate([adj, noun])
    assert pair.tgt == lang.lexicon[noun] + lang.lexicon[adj]  # ADJ NOUN -> NOUN ADJ
    assert pair.links == {(1, 0), (0, 1)}
    multi = next(i for i, ws in enumerate(lang.lexicon) if len(ws) == 2 and lang.classes[i] == "OTHER")
    assert lang.translate([multi]).links == {(0, 0), (0, 1)}  # one-to-many
    part = next(i for i, c in enumerate(lang.classes) if c == "PART")
    other = next(i for i, c in enumerate(lang.classes) if c == "OTHER" and len(lang.lexicon[i]) == 1)
    merged = lang.translate([part, other])
    assert merged.tgt == lang.lexicon[other] and merged.links == {(0, 0), (1, 0)}  # many-to-one


def test_vocab_and_collate():
    v = Vocab.build([["a", "b", "a"], ["c"]], min_freq=2)
    assert v.itos[:5] == ["<pad>", "<unk>", "<s>", "</s>", "a"] and v.encode(["b"]) == [1]
    batch = collate([(0, [4, 5, 6], [7]), (1, [4], [7, 8, 9])])
    assert batch.src.tolist() == [[4, 5, 6], [4, 0, 0]]
    assert batch.src_mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.tgt_out.tolist() == [[7, EOS_ID, PAD_ID, PAD_ID], [7, 8, 9, EOS_ID]]


def test_bucket_sampler_is_seeded_and_complete():
    lengths = [i % 17 + 1 for i in range(500)]
    a = list(BucketBatchSampler(lengths, 32, False, True, seed=3))
    b = list(BucketBatchSampler(lengths, 32, False, True, seed=3))
    assert a == b and sorted(i for batch in a for i in batch) == list(range(500))
    by_tokens = list(BucketBatchSampler(lengths, 100, True, True, seed=3))
    assert all(max(lengths[i] for i in bt) * len(bt) <= 100 for bt in by_tokens if len(bt) > 1)


def test_moses_tokenizer_round_trip():
    tok = WordTokenizer("en", lowercase=True, moses=True)
    assert tok.encode("Hello, World!") == ["hello", ",", "world", "!"]
    assert tok.decode(["hello", ",", "world", "!"]) == "hello, world!"


@needs_data("multi30k")
def test_multi30k_source():
    corpus = load_corpus(DataConfig(name="multi30k", train_limit=100))
    assert corpus.test_split == "test_2016_flickr"
    assert len(corpus.splits["train"].src) == 100 and len(corpus.splits["test_2016_flickr"].src) == 1000


@needs_data("hansards_enfr")
def test_hansards_gold_matches_tokenization():
    corpus = load_corpus(DataConfig(name="hansards_enfr", src_lang="en", tgt_lang="fr", train_limit=10))
    test = corpus.splits["test"]
    assert len(test.src) == 447 and len(test.gold) == 447
    for s, t, g in zip(test.src, test.tgt, test.gold):
        assert all(i < len(s.split()) and j < len(t.split()) for i, j in g.possible)


def test_read_lines_reads_a_file_once_and_again_when_it_changes(tmp_path):
    from harness.data.corpora import _read_lines

    p = tmp_path / "a.txt"
    p.write_text("one  two\nthree\n", encoding="utf-8")
    first = read_lines(p)
    assert first == ["one two", "three"]
    first.append("mutated")  # the caller's list is its own: the kept copy is unchanged
    hits = _read_lines.cache_info().hits
    assert read_lines(p) == ["one two", "three"] and _read_lines.cache_info().hits == hits + 1
    p.write_text("four\n", encoding="utf-8")  # new size and mtime: read again
    assert read_lines(p) == ["four"]

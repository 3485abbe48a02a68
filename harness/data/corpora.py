"""Data sources behind one interface: `load_corpus(cfg) -> Corpus` with raw parallel splits and gold alignments.

Sources (`data.name`):
- `synthetic`        the built-in generated task (exact gold alignments), no files needed.
- `multi30k`         ../shared/data/multi30k (any language pair present; default test split test_2016_flickr).
- `hansards_enfr`    WPT'03 Hansards: train (first `data.train_limit` of 231k pairs), val = trial (37),
                     test = the 447 sentences with human gold (talp, English first).
- `europarl_deen`    Europarl ComTrans de-en for training (last 500 pairs held out as val);
                     test = the RWTH 508-sentence human gold set (talp, German first).
- `parallel`         any `<prefix>.<lang>[.gz]` file pair per split (data.train_prefix/val_prefix/test_prefix),
                     optional gold file for the test split (data.gold_alignment, data.gold_format).
- `hf:<id>`          a Hugging Face hub data set with a `translation` column (data.hub_config, e.g. wmt14 fr-en);
                     needs network access.

Policy for empty lines in parallel text: a pair with an empty side is dropped from training (the count is
reported); at test time it is kept and translated (its hypothesis may be empty), so line numbers match.
"""

from __future__ import annotations

import functools
import gzip
import logging
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import DataConfig
from harness.data.alignments import Alignment, read_alignments
from harness.errors import HarnessError
from harness.paths import data_root

log = logging.getLogger(__name__)


@dataclass
class Split:
    name: str
    src: list[str]
    tgt: list[str]
    gold: list[Alignment] | None = None
    gold_name: str | None = None
    lines: list[int] | None = None  # 0-based line of each pair in its files (None: pair i is line i)


@dataclass
class Corpus:
    name: str
    src_lang: str
    tgt_lang: str
    splits: dict[str, Split] = field(default_factory=dict)
    test_split: str = "test"
    pretokenized: bool = False  # text is already tokenized (no Moses splitting, gold indices are over words)
    dropped_empty: int = 0
    align_dev: str | None = None  # the split with gold alignments that val_aer is computed on at every validation


def read_lines(path: Path) -> list[str]:
    """UTF-8 lines of a plain or gzipped file; BOM and CRLF normalised; bad bytes named by byte offset.
    A process that trains many runs (a sweep worker, a reproduction) reads a corpus once: the last files read
    are kept, keyed by path, size and modification time, so a changed file is read again."""
    if not path.is_file():
        raise HarnessError(f"data file {path}: not found")
    st = path.stat()
    return list(_read_lines(path, st.st_size, st.st_mtime_ns))  # keyed by the path as given: messages name it


@functools.lru_cache(maxsize=16)
def _read_lines(path: Path, size: int, mtime_ns: int) -> tuple[str, ...]:
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HarnessError(
            f"data file {path}: not valid UTF-8 at byte offset {e.start} (expected UTF-8 text)"
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise HarnessError(f"data file {path}: is empty (expected one sentence per line)")
    return tuple(" ".join(line.split()) for line in lines)


def _find(prefix: Path | str, lang: str) -> Path:
    for cand in (Path(f"{prefix}.{lang}"), Path(f"{prefix}.{lang}.gz")):
        if cand.is_file():
            return cand
    raise HarnessError(f"data file {prefix}.{lang}[.gz]: not found")


def read_parallel(src_path: Path, tgt_path: Path, name: str, train: bool, limit: int = 0) -> tuple[Split, int]:
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise HarnessError(
            f"data files {src_path} ({len(src)} lines) and {tgt_path} ({len(tgt)} lines): "
            "expected the same number of lines"
        )
    if limit:
        src, tgt = src[:limit], tgt[:limit]
    dropped, keep = 0, None
    if train:
        keep = [i for i in range(len(src)) if src[i] and tgt[i]]
        dropped = len(src) - len(keep)
        src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
        if dropped:
            log.warning("%s: dropped %d training pairs with an empty side", src_path, dropped)
        else:
            keep = None
    return Split(name, src, tgt, lines=keep), dropped


def _attach_gold(split: Split, path: Path, fmt: str, src_first: bool, name: str) -> None:
    split.gold = read_alignments(
        path,
        fmt,
        src_first,
        src_lengths=[len(s.split()) for s in split.src],
        tgt_lengths=[len(t.split()) for t in split.tgt],
        name=f"gold alignment file {path}",  # error messages name the file; `name` labels the gold set
    )
    split.gold_name = name


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise HarnessError(
            f"data.name={what}: folder {path} not found (set HARNESS_DATA_DIR to the shared data folder)"
        )
    return path


def _synthetic(cfg: DataConfig) -> Corpus:
    from harness.data.synthetic import generate

    corpus = Corpus("synthetic", "src", "tgt", pretokenized=True)
    for split, pairs in generate(cfg.synthetic).items():
        corpus.splits[split] = Split(
            split,
            [" ".join(p.src) for p in pairs],
            [" ".join(p.tgt) for p in pairs],
            gold=[Alignment(set(p.links), set(p.links)) for p in pairs],
            gold_name="synthetic",
        )
    corpus.align_dev = "val"
    return corpus


def _multi30k(cfg: DataConfig) -> Corpus:
    root = _require_dir(data_root() / "multi30k", "multi30k")
    corpus = Corpus("multi30k", cfg.src_lang, cfg.tgt_lang, test_split=cfg.test_split or "test_2016_flickr")
    names = sorted({p.name.split(".")[0] for p in root.glob(f"*.{cfg.src_lang}.gz")})
    if not names:
        raise HarnessError(f"data.src_lang: no multi30k files for language '{cfg.src_lang}' in {root}")
    for split in names:
        if not (root / f"{split}.{cfg.tgt_lang}.gz").is_file():
            continue
        limit = {"train": cfg.train_limit, "val": cfg.val_limit}.get(split, cfg.test_limit)
        s, dropped = read_parallel(
            root / f"{split}.{cfg.src_lang}.gz", root / f"{split}.{cfg.tgt_lang}.gz", split, split == "train", limit
        )
        corpus.splits[split] = s
        corpus.dropped_empty += dropped
    return corpus


def _hansards(cfg: DataConfig) -> Corpus:
    root = _require_dir(data_root() / "hansards_enfr", "hansards_enfr")
    langs = {cfg.src_lang, cfg.tgt_lang}
    if langs != {"en", "fr"}:
        raise HarnessError(f"data.src_lang/tgt_lang: hansards_enfr has en and fr, got {cfg.src_lang}/{cfg.tgt_lang}")
    corpus = Corpus("hansards_enfr", cfg.src_lang, cfg.tgt_lang, pretokenized=True)
    full, corpus.dropped_empty = read_parallel(
        root / f"train.{cfg.src_lang}.gz", root / f"train.{cfg.tgt_lang}.gz", "train", True
    )
    # validation: the last 500 training pairs, held out (the WPT'03 trial set has only 37 sentences, too few
    # for a stopping rule on perplexity); data.train_limit keeps the first N of the others
    held = 500
    keep = len(full.src) - held if not cfg.train_limit else min(cfg.train_limit, len(full.src) - held)
    lines = full.lines if full.lines is not None else None
    corpus.splits["train"] = Split("train", full.src[:keep], full.tgt[:keep], lines=lines[:keep] if lines else None)
    corpus.splits["val"] = Split("val", full.src[-held:], full.tgt[-held:])
    # the 37 WPT'03 trial sentences have gold: val_aer at every validation
    trial, _ = read_parallel(root / f"trial.{cfg.src_lang}", root / f"trial.{cfg.tgt_lang}", "trial", False)
    _attach_gold(trial, root / "trial.gold.talp", "talp", cfg.src_lang == "en", "hansards_enfr_trial")
    corpus.splits["trial"] = trial
    corpus.align_dev = "trial"
    test, _ = read_parallel(root / f"test.{cfg.src_lang}", root / f"test.{cfg.tgt_lang}", "test", False, cfg.test_limit)
    gold_lines = root / "test.gold.talp"
    if cfg.test_limit:
        test.gold = read_alignments(gold_lines, "talp", cfg.src_lang == "en", name="hansards_enfr")[: cfg.test_limit]
        test.gold_name = "hansards_enfr"
    else:
        _attach_gold(test, gold_lines, "talp", cfg.src_lang == "en", "hansards_enfr")
    corpus.splits["test"] = test
    return corpus


def _europarl(cfg: DataConfig) -> Corpus:
    root = _require_dir(data_root() / "europarl_deen_comtrans", "europarl_deen")
    gold_root = _require_dir(data_root() / "rwth_deen_gold", "europarl_deen")
    if {cfg.src_lang, cfg.tgt_lang} != {"de", "en"}:
        raise HarnessError(f"data.src_lang/tgt_lang: europarl_deen has de and en, got {cfg.src_lang}/{cfg.tgt_lang}")
    corpus = Corpus("europarl_deen", cfg.src_lang, cfg.tgt_lang, pretokenized=True)
    full, corpus.dropped_empty = read_parallel(
        root / f"train.{cfg.src_lang}.gz", root / f"train.{cfg.tgt_lang}.gz", "train", True
    )
    held = 500  # ComTrans has no dev split: the last 500 pairs are held out for validation
    train = Split("train", full.src[:-held], full.tgt[:-held])
    if cfg.train_limit:
        train.src, train.tgt = train.src[: cfg.train_limit], train.tgt[: cfg.train_limit]
    corpus.splits["train"] = train
    corpus.splits["val"] = Split("val", full.src[-held:], full.tgt[-held:])
    test, _ = read_parallel(gold_root / f"gold.{cfg.src_lang}", gold_root / f"gold.{cfg.tgt_lang}", "test", False)
    _attach_gold(test, gold_root / "gold.talp", "talp", cfg.src_lang == "de", "rwth_deen")
    corpus.splits["test"] = test
    # val_aer: the 100 Biçici gold sentences (Europarl too) are lower-cased, so they score a model only when it
    # reads lower-cased text (data.lowercase=true); a cased model would see mostly unknown nouns in them
    bicici = data_root() / "bicici_deen_gold"
    if cfg.lowercase and bicici.is_dir():
        dev, _ = read_parallel(bicici / f"gold.{cfg.src_lang}", bicici / f"gold.{cfg.tgt_lang}", "align_dev", False)
        _attach_gold(dev, bicici / "gold.0idx.align", "pharaoh", cfg.src_lang == "de", "bicici_deen")
        corpus.splits["align_dev"] = dev
        corpus.align_dev = "align_dev"
    return corpus


def _parallel(cfg: DataConfig) -> Corpus:
    corpus = Corpus("parallel", cfg.src_lang, cfg.tgt_lang, pretokenized=not cfg.moses)
    for split, prefix, limit in (
        ("train", cfg.train_prefix, cfg.train_limit),
        ("val", cfg.val_prefix, cfg.val_limit),
        ("test", cfg.test_prefix, cfg.test_limit),
    ):
        if not prefix:
            raise HarnessError(f"data.{split}_prefix: required for data.name=parallel (files <prefix>.<lang>[.gz])")
        s, dropped = read_parallel(
            _find(prefix, cfg.src_lang), _find(prefix, cfg.tgt_lang), split, split == "train", limit
        )
        corpus.splits[split] = s
        corpus.dropped_empty += dropped
    if cfg.gold_alignment:
        gold = Path(cfg.gold_alignment)
        if not gold.is_file():
            raise HarnessError(f"data.gold_alignment {gold}: not found")
        _attach_gold(corpus.splits["test"], gold, cfg.gold_format, cfg.gold_src_first, gold.stem)
    return corpus


def _hub(cfg: DataConfig) -> Corpus:
    """A Hugging Face hub data set with a `translation` column, e.g. data.name=hf:wmt14 data.hub_config=fr-en."""
    import datasets

    hub_id = cfg.name.removeprefix("hf:")
    try:
        ds = datasets.load_dataset(hub_id, cfg.hub_config or None)
    except Exception as e:  # offline, unknown id, ... : one line
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise HarnessError(
            f"data.name={cfg.name}: cannot load hub data set '{hub_id}' ({first}); hub ids need network access"
        ) from None
    corpus = Corpus(cfg.name, cfg.src_lang, cfg.tgt_lang, test_split=cfg.test_split or "test")
    for split, rename in (("train", "train"), ("validation", "val"), ("test", "test")):
        if split not in ds:
            continue
        rows = ds[split]["translation"]
        limit = {"train": cfg.train_limit, "val": cfg.val_limit, "test": cfg.test_limit}[rename]
        if limit:
            rows = rows[:limit]
        src = [" ".join(r[cfg.src_lang].split()) for r in rows]
        tgt = [" ".join(r[cfg.tgt_lang].split()) for r in rows]
        corpus.splits[rename] = Split(rename, src, tgt)
    return corpus


SOURCES = {
    "synthetic": _synthetic,
    "multi30k": _multi30k,
    "hansards_enfr": _hansards,
    "europarl_deen": _europarl,
    "parallel": _parallel,
}


def load_corpus(cfg: DataConfig) -> Corpus:
    if cfg.name.startswith("hf:"):
        return _hub(cfg)
    if cfg.name not in SOURCES:
        raise HarnessError(
            f"data.name: '{cfg.name}' is not a data set (expected one of {', '.join(SOURCES)}, or hf:<hub id>)"
        )
    corpus = SOURCES[cfg.name](cfg)
    for need in ("train", "val", corpus.test_split):
        if need not in corpus.splits:
            raise HarnessError(f"data.name={cfg.name}: split '{need}' not found (have {', '.join(corpus.splits)})")
    return corpus


def available() -> list[str]:
    """Data sets whose files are present under the data root (for `harness list`)."""
    root = data_root()
    found = ["synthetic"]
    for name, folder in (
        ("multi30k", "multi30k"),
        ("hansards_enfr", "hansards_enfr"),
        ("europarl_deen", "rwth_deen_gold"),
    ):
        if (root / folder).is_dir():
            found.append(name)
    return found

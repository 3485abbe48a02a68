"""Bad input through the real CLI: one table row per case (inputs -> expected error substrings).

Every row runs `harness ...` in-process (harness.cli.main, the same code path as the console script) and must
give: exit status 2; exactly one line on stderr, `error: ...`, containing every expected substring (the file,
the line/key where it applies, what was expected); none of the forbidden substrings (passwords); and no file
created, changed or left half-written anywhere under the test's folder (the --output directory and
`<output>.partial` never appear; an existing non-empty output directory stays exactly as it was).

Inputs that are accepted by documented policy (empty lines in parallel data, a UTF-8 BOM and CRLF line ends,
`harness translate` input longer than data.max_len) are the tests after the table.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from harness.cli import main

from ..conftest import ROOT, TINY

PRESET = "experiments/bahdanau2015_synthetic.yaml"
BASE = str(ROOT / PRESET)
OUT = ["--output", "{out}", "--quiet"]
TRAIN = ["train", PRESET, *TINY]
PAR = [
    "data.name=parallel",
    "data.train_prefix={tmp}/train",
    "data.val_prefix={tmp}/val",
    "data.test_prefix={tmp}/test",
]
SECRET = "s3cret-Pw0rd"  # must never be printed

# ------------------------------------------------------------------------------------------ good data
SRC_WORDS = "der die das haus katze hund sieht klein gross rot".split()
TGT_WORDS = "the the the house cat dog sees small big red".split()


def _pair(i: int) -> tuple[str, str]:
    n = 2 + i % 4
    idx = [(i * 7 + k * 3) % len(SRC_WORDS) for k in range(n)]
    return " ".join(SRC_WORDS[j] for j in idx), " ".join(TGT_WORDS[j] for j in idx)


def _lines(n: int, offset: int) -> tuple[str, str]:
    pairs = [_pair(offset + i) for i in range(n)]
    return "".join(s + "\n" for s, _ in pairs), "".join(t + "\n" for _, t in pairs)


TEST_N = 8


def good_files() -> dict[str, str]:
    files = {}
    for split, n, offset in (("train", 60, 0), ("val", 8, 100), ("test", TEST_N, 200)):
        files[f"{split}.de"], files[f"{split}.en"] = _lines(n, offset)
    # gold for the test split: the i-th word translates the i-th word (pharaoh, 0-indexed)
    files["gold.align"] = "".join(
        " ".join(f"{k}-{k}" for k in range(len(_pair(200 + i)[0].split()))) + "\n" for i in range(TEST_N)
    )
    return files


def _replace_line(text: str, number: int, new: str) -> str:
    lines = text.splitlines()
    lines[number - 1] = new
    return "\n".join(lines) + "\n"


GOLD = good_files()["gold.align"]
GOLD_TALP_AS_0 = GOLD  # a 0-indexed file
GOLD_1_INDEXED = "".join(
    " ".join(f"{int(a) + 1}-{int(b) + 1}" for a, b in (lk.split("-") for lk in line.split())) + "\n"
    for line in GOLD.splitlines()
)
SPEC_HEAD = f"base: {BASE}\noverrides: {{train.max_steps: 5, tracking.wandb.mode: disabled}}\n"
OBJECTIVE = "objective: {metric: bleu, direction: maximize}\n"


# ------------------------------------------------------------------------------------------ the table
@dataclass
class Case:
    id: str
    argv: list[str]  # {tmp} = the test's folder, {out} = {tmp}/out
    expected: list[str]  # substrings of the one error line ({tmp} is formatted)
    files: dict[str, str | bytes] = field(default_factory=dict)  # written under {tmp} over good_files()
    prepare: Callable[[Path, dict], None] | None = None  # (tmp, trained runs) -> None
    forbidden: list[str] = field(default_factory=list)


def _copy_run(name: str, to: str = "run"):
    def prepare(tmp: Path, runs: dict) -> None:
        shutil.copytree(runs[name], tmp / to)

    return prepare


def _truncate_best(tmp: Path, runs: dict) -> None:
    shutil.copytree(runs["bahdanau"], tmp / "run")
    ckpt = tmp / "run" / "checkpoints" / "best.ckpt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])


def _other_arch_best(tmp: Path, runs: dict) -> None:
    shutil.copytree(runs["luong"], tmp / "run")
    shutil.copy(runs["bahdanau"] / "checkpoints" / "best.ckpt", tmp / "run" / "checkpoints" / "best.ckpt")


def _busy_output(tmp: Path, runs: dict) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("my earlier results\n")


CASES = [
    # --- config files and overrides
    Case(
        "yaml-syntax",
        ["train", "{tmp}/bad.yaml", *TINY, *OUT],
        ["config {tmp}/bad.yaml", "line 4", "YAML syntax error", "mapping values are not allowed here"],
        files={"bad.yaml": "seed: 1\ntrain:\n  lr: 0.1\n  batch_size: 32: 4\n"},
    ),
    Case(
        "config-not-utf8",
        ["train", "{tmp}/latin1.yaml", *TINY, *OUT],
        ["config {tmp}/latin1.yaml", "not UTF-8", "byte offset 6"],
        files={"latin1.yaml": b"seed: \xe9\n"},
    ),
    Case(
        "config-missing",
        ["train", "{tmp}/nope.yaml", *TINY, *OUT],
        ["config {tmp}/nope.yaml", "file not found"],
    ),
    Case(
        "config-unknown-key",
        ["train", "{tmp}/typo.yaml", *TINY, *OUT],
        ["config {tmp}/typo.yaml", "unknown config key 'model.scor'", "did you mean 'model.score'"],
        files={"typo.yaml": "model:\n  arch: luong\n  scor: dot\n"},
    ),
    Case(
        "override-unknown-key",
        [*TRAIN, "model.hiden_size=16", *OUT],
        ["override model.hiden_size", "unknown config key", "did you mean 'model.hidden_size'"],
    ),
    Case(
        "override-not-key-value",
        [*TRAIN, "model.score", *OUT],
        ["override 'model.score'", "expected key=value"],
    ),
    Case(
        "wrong-type-override",
        [*TRAIN, "model.hidden_size=abc", *OUT],
        ["model.hidden_size", "expected an integer", "'abc'"],
    ),
    Case(
        "wrong-type-in-file",
        ["train", "{tmp}/lr.yaml", *TINY, *OUT],
        ["config {tmp}/lr.yaml", "train.lr", "expected a number", "'fast'"],
        files={"lr.yaml": "train:\n  lr: fast\n"},
    ),
    Case(
        "negative-size",
        [*TRAIN, "model.hidden_size=-4", *OUT],
        ["model.hidden_size", "expected a value >= 1", "-4"],
    ),
    Case("dropout-ge-1", [*TRAIN, "model.dropout=1.0", *OUT], ["model.dropout", "< 1", "1.0"]),
    Case("beam-0-config", [*TRAIN, "decode.beam=0", *OUT], ["decode.beam", "expected a value >= 1", "got 0"]),
    Case(
        "beam-0-flag",
        ["evaluate", "{tmp}/run", "--beam", "0"],
        ["--beam", "expected an integer >= 1", "got 0"],
    ),
    Case(
        "unknown-arch",
        [*TRAIN, "model.arch=bahdanu", *OUT],
        [
            "override: model.arch 'bahdanu' is not an architecture",
            "did you mean 'bahdanau'",
            "valid: seq2seq, seq2seq_attn, bahdanau, cgru, luong, gnmt",
        ],
    ),
    Case(
        "unknown-score",
        [*TRAIN, "model.score=dott", *OUT],
        [
            "override: model.score 'dott' is not a score function",
            "did you mean 'dot'",
            "valid:",
            "scaled_dot",
            "additive",
            "location",
            "cosine",
        ],
    ),
    Case(
        "unknown-dataset",
        [*TRAIN, "data.name=wmt99", *OUT],
        [
            "data.name: 'wmt99' is not a data set",
            "expected one of synthetic, multi30k, hansards_enfr, europarl_deen, parallel",
        ],
    ),
    Case(
        "score-not-for-arch",
        [*TRAIN, "model.arch=seq2seq", "model.score=dot", *OUT],
        ["override: model.score 'dot' does not apply to model.arch 'seq2seq'", "valid: none"],
    ),
    Case(
        "score-not-for-arch-in-file",
        ["train", "{tmp}/s2s.yaml", *TINY, *OUT],
        [
            "config {tmp}/s2s.yaml: model.score 'general' does not apply to model.arch 'seq2seq'",
            "valid: none",
        ],
        files={"s2s.yaml": "model: {arch: seq2seq, score: general}\n"},
    ),
    Case(
        "unknown-choice",
        [*TRAIN, *PAR, "data.gold_format=giza", *OUT],
        ["data.gold_format", "'giza' is not one of", "pharaoh, talp"],
    ),
    # --- data files
    Case(
        "data-file-missing",
        [*TRAIN, *PAR, "data.val_prefix={tmp}/nowhere/val", *OUT],
        ["data file {tmp}/nowhere/val.de[.gz]", "not found"],
    ),
    Case(
        "data-prefix-missing",
        [*TRAIN, "data.name=parallel", "data.train_prefix={tmp}/train", *OUT],
        ["data.val_prefix", "required for data.name=parallel"],
    ),
    Case(
        "line-counts-differ",
        [*TRAIN, *PAR, *OUT],
        ["{tmp}/val.de (8 lines)", "{tmp}/val.en (7 lines)", "expected the same number of lines"],
        files={"val.en": _lines(7, 100)[1]},
    ),
    Case("empty-file", [*TRAIN, *PAR, *OUT], ["data file {tmp}/test.en", "is empty"], files={"test.en": ""}),
    Case(
        "not-utf8-data",
        [*TRAIN, *PAR, *OUT],
        ["data file {tmp}/train.de", "not valid UTF-8 at byte offset 13"],
        files={"train.de": b"das haus\nder \xff\xfe hund\n" + _lines(58, 2)[0].encode()},
    ),
    # --- gold alignments (test split: line 3 has 4 words on each side)
    Case(
        "gold-out-of-range",
        [*TRAIN, *PAR, "data.gold_alignment={tmp}/gold.align", *OUT],
        [
            "gold alignment file {tmp}/gold.align line 3",
            "link '2-9'",
            "target index 9",
            "target sentence has 4 words",
        ],
        files={"gold.align": _replace_line(GOLD, 3, "0-0 1-1 2-9")},
    ),
    Case(
        "gold-line-count",
        [*TRAIN, *PAR, "data.gold_alignment={tmp}/gold.align", *OUT],
        ["gold alignment file {tmp}/gold.align", "has 7 lines, expected 8"],
        files={"gold.align": "".join(GOLD.splitlines(keepends=True)[:7])},
    ),
    Case(
        "gold-malformed-link",
        [*TRAIN, *PAR, "data.gold_alignment={tmp}/gold.align", *OUT],
        ["gold alignment file {tmp}/gold.align line 2", "link '1:1' is not pharaoh", "expected 'i-j'"],
        files={"gold.align": _replace_line(GOLD, 2, "0-0 1:1")},
    ),
    Case(
        "gold-0-indexed-as-talp",
        [*TRAIN, *PAR, "data.gold_alignment={tmp}/gold.align", "data.gold_format=talp", *OUT],
        ["gold alignment file {tmp}/gold.align line 1", "talp is 1-indexed", "use format pharaoh"],
        files={"gold.align": GOLD_TALP_AS_0},
    ),
    Case(
        "gold-1-indexed-as-pharaoh",
        [*TRAIN, *PAR, "data.gold_alignment={tmp}/gold.align", *OUT],
        ["gold alignment file {tmp}/gold.align line 1", "looks 1-indexed (use format talp)"],
        files={"gold.align": GOLD_1_INDEXED},
    ),
    Case(
        "gold-missing",
        [*TRAIN, *PAR, "data.gold_alignment={tmp}/gold.missing", *OUT],
        ["data.gold_alignment {tmp}/gold.missing", "not found"],
    ),
    # --- sweeps
    Case(
        "sweep-empty-space",
        ["sweep", "{tmp}/spec.yaml", "--reports", "{tmp}/reports", "--quiet"],
        ["sweep {tmp}/spec.yaml: space", "empty search space"],
        files={"spec.yaml": SPEC_HEAD + "space: {}\n" + OBJECTIVE},
    ),
    Case(
        "sweep-unknown-sampler",
        ["sweep", "{tmp}/spec.yaml", "--reports", "{tmp}/reports", "--quiet"],
        ["sweep {tmp}/spec.yaml: sampler", "expected one of grid, tpe, random", "got 'bayes'"],
        files={
            "spec.yaml": SPEC_HEAD + "space: {model.score: [dot, general]}\nsampler: bayes\nn_trials: 2\n" + OBJECTIVE
        },
    ),
    Case(
        "storage-unreachable",
        [
            "sweep",
            "{tmp}/spec.yaml",
            "--reports",
            "{tmp}/reports",
            "--quiet",
            "--storage",
            f"postgresql://harness:{SECRET}@127.0.0.1:1/optuna",
        ],
        ["storage postgresql://harness:***@127.0.0.1:1/optuna", "cannot be opened"],
        forbidden=[SECRET],
        files={"spec.yaml": SPEC_HEAD + "space: {model.score: [dot, general]}\n" + OBJECTIVE},
    ),
    # --- checkpoints and run directories
    Case(
        "checkpoint-truncated",
        ["evaluate", "{tmp}/run", "--quiet"],
        ["checkpoint {tmp}/run/checkpoints/best.ckpt", "cannot be read", "expected a harness checkpoint"],
        prepare=_truncate_best,
    ),
    Case(
        "checkpoint-other-arch",
        ["evaluate", "{tmp}/run", "--quiet"],
        [
            "checkpoint {tmp}/run/checkpoints/best.ckpt",
            "model.arch='bahdanau'",
            "{tmp}/run/config.yaml",
            "model.arch='luong'",
        ],
        prepare=_other_arch_best,
    ),
    Case(
        "run-dir-missing",
        ["evaluate", "{tmp}/nowhere", "--quiet"],
        ["run directory {tmp}/nowhere", "not found"],
    ),
    Case(
        "output-not-empty",
        [*TRAIN, *OUT],
        ["output {tmp}/out", "directory is not empty", "--overwrite", "--resume"],
        prepare=_busy_output,
    ),
    Case(
        "results-restore-unknown-target",
        ["results", "restore", "bahdanau2016", "{tmp}/again", "--into", "{tmp}/results"],
        ["results restore", "unknown target 'bahdanau2016'", "expected one of", "britz2017"],
    ),
    Case(
        "results-restore-nothing-there",
        ["results", "restore", "britz2017", "{tmp}/again", "--into", "{tmp}/results"],
        ["results restore", "{tmp}/results/britz2017 holds no study", "<study>/study.journal"],
    ),
]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """train.threads sets torch's thread count for the whole process: restore it for the tests that follow."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny trained runs (bahdanau, luong) for the checkpoint rows and `harness translate`."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for arch, preset in (("bahdanau", PRESET), ("luong", "experiments/luong2015_synthetic.yaml")):
        argv = [
            "train",
            preset,
            *TINY,
            "train.threads=1",
            "train.max_steps=4",
            "train.val_every=4",
            "data.synthetic.test_size=8",
            "data.max_len=6",
            "--output",
            str(root / arch),
            "--quiet",
        ]
        assert main(argv) == 0
        out[arch] = root / arch
    return out


def test_the_table_has_at_least_25_distinct_cases():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys, request):
    for name, content in {**good_files(), **case.files}.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if case.prepare is not None:
        case.prepare(tmp_path, request.getfixturevalue("runs"))
    before = _snapshot(tmp_path)
    fmt = {"tmp": str(tmp_path), "out": str(tmp_path / "out")}
    argv = [a.format(**fmt) for a in case.argv]
    capsys.readouterr()

    status = main(argv)

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for want in case.expected:
        assert want.format(**fmt) in lines[0], f"{want.format(**fmt)!r} not in {lines[0]!r}"
    for secret in case.forbidden:
        assert secret not in captured.err + captured.out
    assert _snapshot(tmp_path) == before  # nothing created, changed or half-written
    assert not (tmp_path / "out.partial").exists()


# ---------------------------------------------------------------------------------------- accepted by policy
def _write(tmp: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        (tmp / name).write_bytes(content if isinstance(content, bytes) else content.encode())


PAR_RUN = [
    "train.threads=1",
    "train.max_steps=4",
    "train.val_every=4",
    "model.emb_size=8",
    "model.hidden_size=8",
]


def test_empty_lines_dropped_from_training_and_kept_at_test_time(tmp_path, capsys):
    """Policy (harness/data/corpora.py): a pair with an empty side is dropped from training and counted in
    metrics.json `dropped_empty_pairs`; in the test split it is kept and translated, so test.hyp keeps the
    line numbers of the source file."""
    files = good_files()
    files["train.de"] = _replace_line(_replace_line(files["train.de"], 5, ""), 9, "")
    files["train.en"] = _replace_line(files["train.en"], 20, "")  # three pairs have an empty side
    files["test.de"] = _replace_line(files["test.de"], 4, "")
    files["test.en"] = _replace_line(files["test.en"], 4, "")
    _write(tmp_path, files)
    out = tmp_path / "out"
    argv = [
        "train",
        PRESET,
        *TINY,
        *PAR_RUN,
        *(a.format(tmp=tmp_path) for a in PAR),
        "--output",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["dropped_empty_pairs"] == 3 and m["train_pairs"] == 57
    assert len((out / "test.hyp").read_text().split("\n")) == TEST_N + 1  # 8 lines, the empty one included


def test_utf8_bom_and_crlf_are_accepted_and_normalised(tmp_path, capsys):
    files = good_files()
    for name in ("train.de", "train.en", "test.de", "test.en"):
        files[name] = ("\ufeff" + files[name].replace("\n", "\r\n")).encode("utf-8")
    files["cfg.yaml"] = "\ufeffmodel:\r\n  arch: bahdanau\r\n".encode()
    _write(tmp_path, files)
    out = tmp_path / "out"
    argv = [
        "train",
        str(tmp_path / "cfg.yaml"),
        *TINY,
        *PAR_RUN,
        *(a.format(tmp=tmp_path) for a in PAR),
        "--output",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    vocab = ckpt["harness"]["src_itos"] + ckpt["harness"]["tgt_itos"]
    assert not any("\ufeff" in t or "\r" in t for t in vocab)  # no BOM or CR glued to the first/last word
    assert set(vocab) >= {"der", "haus", "the", "house"}
    hyp = (out / "test.hyp").read_bytes()
    assert b"\r" not in hyp and len(hyp.decode().splitlines()) == TEST_N


def test_translate_input_longer_than_max_len_is_chunked_with_a_warning(runs, capsys, monkeypatch):
    """data.max_len=6 in the trained run: a 20-token line is translated in chunks of 6 tokens (the rule in
    harness/runs/translate.py), with one warning naming the line; short lines are translated as usual."""
    long_line = " ".join(f"s{1 + i % 9}" for i in range(20))
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"s1 s2 s3\n{long_line}\ns4\n"))
    capsys.readouterr()
    assert main(["translate", str(runs["bahdanau"])]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3
    warnings = [x for x in captured.err.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1 and "stdin line 2" in warnings[0] and "20 tokens > data.max_len=6" in warnings[0]
    assert "Traceback" not in captured.err

"""`harness reproduce`: the targets, their specs, the aligner baseline, unknown-word replacement, and every
target's tiny scale end to end (slow; skipped without the shared data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.data.aligners import grow_diag_final_and, ibm2_align, symmetrize
from harness.data.alignments import Alignment
from harness.data.tokenize import UNK
from harness.decode.evaluate import replace_unknowns
from harness.errors import HarnessError
from harness.experiment import load_config
from harness.metrics.alignment import alignment_scores
from harness.paths import data_root
from harness.study.reproduce import reproduce
from harness.study.summary import expected_time
from harness.study.targets import SCALES, TARGETS, spec_path

from ..conftest import run_cli


# ------------------------------------------------------------------------------------------ unk replacement
def test_replace_unknowns_copies_the_argmax_attended_source_word():
    src = ["der", "Zauberer", "Gandalf", "lacht"]
    tokens = ["the", UNK, UNK, "laughs"]
    attention = np.array(
        [  # (|y| + 1, |x|): row t predicts target token t, the last row predicts </s>
            [0.90, 0.05, 0.03, 0.02],
            [0.10, 0.70, 0.15, 0.05],  # <unk> 1 attends most to "Zauberer"
            [0.05, 0.15, 0.60, 0.20],  # <unk> 2 attends most to "Gandalf"
            [0.02, 0.03, 0.05, 0.90],
            [0.25, 0.25, 0.25, 0.25],
        ],
        dtype=np.float32,
    )
    assert replace_unknowns(tokens, attention, src) == ["the", "Zauberer", "Gandalf", "laughs"]
    # known words are never touched, whatever they attend to
    assert replace_unknowns(["the", "laughs"], attention[[0, 1, 4]], src) == ["the", "laughs"]


# ------------------------------------------------------------------------------------------ aligners
def test_grow_diag_final_and_by_hand():
    fwd = {(0, 0), (1, 1), (2, 3)}
    rev = {(0, 0), (1, 1), (2, 2), (3, 3)}
    # intersection {(0,0),(1,1)}; grow adds the diagonal neighbour (2,2) of (1,1) (source 2 and target 2
    # unaligned); then (2,3) neighbours (2,2) with target 3 unaligned -> added; (3,3) neighbours (2,3) and
    # (2,2) with source 3 unaligned -> added as well
    assert grow_diag_final_and(fwd, rev) == {(0, 0), (1, 1), (2, 2), (2, 3), (3, 3)}
    assert symmetrize([fwd], [rev], "intersection") == [{(0, 0), (1, 1)}]
    assert symmetrize([fwd], [rev], "union") == [fwd | rev]
    with pytest.raises(HarnessError):
        symmetrize([fwd], [rev], "grow")


def test_ibm2_fallback_learns_a_toy_lexicon():
    # a monotone toy language: word i of the source translates to word i of the target
    lex = {"a": "x", "b": "y", "c": "z", "d": "w"}
    rng = np.random.default_rng(0)
    src, tgt = [], []
    for _ in range(200):
        words = list(rng.choice(list(lex), size=rng.integers(2, 5), replace=False))
        src.append(" ".join(words))
        tgt.append(" ".join(lex[w] for w in words))
    fwd, rev = ibm2_align(src, tgt)
    gold = [Alignment({(i, i) for i in range(len(s.split()))}, set()) for s in src]
    assert alignment_scores(fwd, gold)["aer"] < 0.05
    assert alignment_scores(symmetrize(fwd, rev), gold)["aer"] < 0.05


# ------------------------------------------------------------------------------------------ targets and specs
def test_every_target_has_tiny_and_small_specs_with_expected_time():
    from harness.study.spec import load_spec

    for name, target in TARGETS.items():
        for scale in ("tiny", "small"):
            for spec in target.specs:
                path = spec_path(scale, spec)
                assert path.is_file(), path
                assert expected_time(path) != "not stated", f"{path}: states its expected time"
                over = (
                    ["data.train_prefix=/x", "data.val_prefix=/x", "data.test_prefix=/x"] if target.length_data else []
                )
                loaded = load_spec(path, over)  # validates every grid point's config
                if scale == "small" and name in ("bahdanau2015", "luong2015", "gnmt2016", "britz2017"):
                    assert len(loaded.seeds) >= 3, f"{path}: >= 3 seeds at small scale"
                if scale == "small":  # every small target trains to a stopping rule (with a budget as hard cap)
                    cfg = load_config(loaded.base, loaded.trial_overrides(loaded.grid_points()[0], loaded.seeds[0]))
                    assert cfg.train.early_stopping > 0 and cfg.train.early_stopping_metric == "val_ppl", path


def test_dry_run_prints_the_plan(capsys):
    plan = reproduce("luong2015", "small", dry_run=True)
    out = capsys.readouterr().out
    assert "expected time" in out and "luong2015" in out and plan["scale"] == "small"
    assert plan["output"].endswith("reports/reproduce-luong2015")
    paper = reproduce("bahdanau2015", "paper", dry_run=True)
    assert paper["specs"] == [
        "experiments/paper/bahdanau2015_rnnsearch50.yaml",
        "experiments/paper/bahdanau2015_rnnenc50.yaml",
    ]
    assert SCALES == ("tiny", "small", "paper")


def test_cli_errors():
    r = run_cli("reproduce", "vaswani2017", "--scale", "tiny")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run_cli("reproduce", "alignment", "--scale", "paper")
    assert r.returncode == 2 and r.stderr.startswith("error: reproduce alignment: no paper-scale variant")


# ------------------------------------------------------------------------------------------ tiny end to end
@pytest.mark.slow
@pytest.mark.parametrize("paper", list(TARGETS))
def test_tiny_reproduction_end_to_end(paper, tmp_path, capsys):
    missing = [f for f in TARGETS[paper].data if not (data_root() / f).is_dir()]
    if missing:
        pytest.skip(f"shared data not found: {data_root() / missing[0]} (set HARNESS_DATA_DIR)")
    result = reproduce(paper, "tiny", output=tmp_path / "out", quiet=True)
    out = tmp_path / "out"
    assert result["status"] == 0
    doc = json.loads((out / "reproduction.json").read_text())
    md = (out / "reproduction.md").read_text()
    n_specs = len(TARGETS[paper].specs)
    assert doc["meta"]["n_runs"] == len(result["runs"]) >= 2 * n_specs
    assert (out / "index.html").is_file(), doc.get("report_note")
    rows = [r for r in doc["summary"]["rows"] if r["runs"]]
    assert sum(r["runs"] for r in rows) == len(result["runs"]) and not doc["summary"]["unmatched_runs"]
    assert "paper" in md and "expected time" in md
    if TARGETS[paper].unk_replace:
        assert doc["unk_replace"], "every attention run measured with and without unk replacement"
        for effect in doc["unk_replace"].values():
            assert effect["bleu_unk_replace"] >= 0 and effect["sentences"] > 0
    if TARGETS[paper].aligner:
        assert {a["data"] for a in doc["aligner"]} == {"hansards_enfr", "europarl_deen"}
        for a in doc["aligner"]:
            for s in a["scores"].values():
                assert 0 <= s["aer"] <= 1
            assert a["scores"]["grow-diag-final-and"]["aer"] < 0.6  # a statistical aligner, even on 300 pairs
        assert all(r["aer"] is not None and r["aer_diagonal"] is not None for r in rows)
        # every variant was trained in both directions: symmetrised beside the single directions
        assert {e["data"] for e in doc["symmetrised"]} == {"hansards_enfr", "europarl_deen"}
        for e in doc["symmetrised"]:
            for method in ("forward", "reverse", "intersection", "grow-diag-final-and"):
                assert 0 <= e[method]["aer"] <= 1
            assert e["intersection"]["recall"] <= e["grow-diag-final-and"]["recall"] + 1e-9  # a subset of its links
            assert all(0 < e["p_vs_better_direction"][m] <= 1 for m in ("intersection", "grow-diag-final-and"))
        assert "symmetrised" in md and "diagonal AER" in md
    if TARGETS[paper].length_data:
        assert doc["length_counts"] == [12] * 7
        assert all(len(r["by_length"]) == 7 for r in rows)
    if paper == "gnmt2016":  # a second invocation resumes the studies: nothing is trained again
        again = reproduce(paper, "tiny", output=out, quiet=True)
        assert sorted(again["runs"]) == sorted(result["runs"])

"""`harness align`: one model or two opposite directions as a word aligner, end to end on tiny synthetic models."""

from __future__ import annotations

import pytest

from harness.data.aligners import symmetrize
from harness.data.alignments import Alignment, read_alignments, write_pharaoh
from harness.data.synthetic import generate
from harness.experiment import load_config
from harness.metrics.alignment import alignment_scores

from ..conftest import TINY, run_cli


def test_symmetrisation_heuristics_by_hand():
    fwd = [{(0, 0), (1, 2), (2, 1)}]
    rev = [{(0, 0), (1, 1), (2, 1)}]
    assert symmetrize(fwd, rev, "intersection") == [{(0, 0), (2, 1)}]
    assert symmetrize(fwd, rev, "union") == [{(0, 0), (1, 1), (1, 2), (2, 1)}]
    # grow-diag-final-and: from the intersection, (1, 1) and (1, 2) are neighbours of (2, 1) / (0, 0) in the union;
    # (1, 1) joins first (source 1 unaligned, target 1 aligned: grow needs one side unaligned), then (1, 2)
    # has source 1 aligned now and target 2 unaligned: it joins too
    assert symmetrize(fwd, rev, "grow-diag-final-and") == [{(0, 0), (1, 1), (1, 2), (2, 1)}]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The synthetic task as plain parallel files, and two tiny models trained in opposite directions."""
    tmp = tmp_path_factory.mktemp("align")
    cfg = load_config(None, [t for t in TINY if t.startswith("data.synthetic")])
    splits = generate(cfg.data.synthetic)
    for name, pairs in splits.items():
        (tmp / f"{name}.src").write_text("".join(" ".join(p.src) + "\n" for p in pairs))
        (tmp / f"{name}.tgt").write_text("".join(" ".join(p.tgt) + "\n" for p in pairs))
    write_pharaoh([Alignment(set(p.links), set(p.links)) for p in splits["test"]], tmp / "test.gold")
    runs = {}
    for name, (src, tgt) in {"fwd": ("src", "tgt"), "rev": ("tgt", "src")}.items():
        over = [t for t in TINY if not t.startswith("data.synthetic")] + [
            "data.name=parallel",
            f"data.src_lang={src}",
            f"data.tgt_lang={tgt}",
            *(f"data.{s}_prefix={tmp / s}" for s in ("train", "val", "test")),
            "train.max_steps=30",  # the test checks what align does with any two models, not how well they align
            "train.val_every=30",
            "model.arch=cgru",
        ]
        r = run_cli("train", "experiments/cgru_synthetic.yaml", *over, "--output", str(tmp / name), "--quiet")
        assert r.returncode == 0, r.stderr
        runs[name] = tmp / name
    return tmp, runs


@pytest.mark.slow
def test_align_one_direction_and_symmetrised_end_to_end(pair):
    tmp, runs = pair
    n = len((tmp / "test.src").read_text().splitlines())
    gold_args = ["--gold", str(tmp / "test.gold")]
    outs, printed = {}, {}
    for method in ("intersection", "union", "grow-diag-final-and"):
        out = tmp / f"links.{method}"
        r = run_cli(
            "align",
            str(runs["fwd"]),
            str(runs["rev"]),
            "--src",
            str(tmp / "test.src"),
            "--tgt",
            str(tmp / "test.tgt"),
            "--method",
            method,
            "--output",
            str(out),
            *gold_args,
        )
        assert r.returncode == 0, r.stderr
        assert f"{n} sentence pairs" in r.stdout and "AER" in r.stdout and f"{method} of 2 directions" in r.stdout
        outs[method], printed[method] = out, r.stdout
    single = tmp / "links.fwd"
    r = run_cli("align", str(runs["fwd"]), "--split", "test", "--output", str(single), *gold_args)
    assert r.returncode == 0, r.stderr
    assert "1 direction" in r.stdout
    src = [len(s.split()) for s in (tmp / "test.src").read_text().splitlines()]
    tgt = [len(t.split()) for t in (tmp / "test.tgt").read_text().splitlines()]
    read = {k: [a.sure for a in read_alignments(p, "pharaoh", True, src, tgt)] for k, p in outs.items()}
    one = [a.sure for a in read_alignments(single, "pharaoh", True, src, tgt)]
    assert all(len(x) == t for x, t in zip(one, tgt))  # one link per target word (argmax)
    for i in range(n):
        assert read["intersection"][i] <= one[i] <= read["union"][i]
        assert read["intersection"][i] <= read["grow-diag-final-and"][i] <= read["union"][i]
    gold = read_alignments(tmp / "test.gold", "pharaoh", True, src, tgt)
    aer = alignment_scores(read["intersection"], gold)["aer"]
    assert f"AER {aer:.3f}" in printed["intersection"]  # the printed AER is the written links' AER


def test_align_refuses_what_it_cannot_do(pair, tmp_path):
    tmp, runs = pair
    r = run_cli("align", str(runs["fwd"]), "--output", str(tmp_path / "x"))
    assert r.returncode == 2 and "either --split NAME or both --src FILE and --tgt FILE" in r.stderr
    (tmp_path / "one.src").write_text("a b\n")
    (tmp_path / "two.tgt").write_text("a\nb\n")
    r = run_cli(
        "align",
        str(runs["fwd"]),
        "--src",
        str(tmp_path / "one.src"),
        "--tgt",
        str(tmp_path / "two.tgt"),
        "--output",
        str(tmp_path / "x"),
    )
    assert r.returncode == 2 and "1 source but 2 target sentences" in r.stderr
    assert not (tmp_path / "x").exists()

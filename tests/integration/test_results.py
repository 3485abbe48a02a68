"""results/ and RESULTS.md (harness/study/results.py): the light artifacts of a (tiny) reproduction are collected, and
RESULTS.md is rebuilt from them alone, judging each claim on converged runs only."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.errors import HarnessError
from harness.paths import data_root
from harness.report.significance import is_control
from harness.study.reproduce import reproduce
from harness.study.results import build, collect, restore, verdicts
from harness.study.summary import run_dirs_of, run_flat_config

pytestmark = pytest.mark.skipif(
    not (data_root() / "multi30k").is_dir(), reason=f"shared data not found: {data_root()}/multi30k"
)


def _set(run, **values):
    m = json.loads((run / "metrics.json").read_text())
    m.update(values)
    (run / "metrics.json").write_text(json.dumps(m))


@pytest.mark.slow
def test_collect_then_build_from_results_alone(tmp_path):
    out = tmp_path / "reproduce-bahdanau2015"
    reproduce("bahdanau2015", "tiny", output=out, quiet=True)
    into = tmp_path / "results"
    first = collect(out, into)
    assert first["target"] == "bahdanau2015" and first["trials"] == 3
    assert collect(out, into)["files_copied"] == 0  # nothing changed: nothing copied again
    dest = into / "bahdanau2015"
    (study,) = [p for p in dest.iterdir() if (p / "trials").is_dir()]
    assert (study / "study.journal").is_file()
    trials = run_dirs_of(study)
    assert len(trials) == 3
    for t in trials:
        for name in ("config.yaml", "metrics.json", "test.hyp", "logs/metrics.csv"):
            assert (t / name).is_file(), name
    assert not list(dest.rglob("*.ckpt")) and not list(dest.rglob("*.npz"))  # never checkpoints or attention

    shutil.rmtree(out)  # RESULTS.md needs results/ only
    _restore_resumes_without_retraining(tmp_path, into, study.name)
    md = build(into, tmp_path / "RESULTS.md").read_text()
    assert "RNNsearch (bahdanau, additive)" in md and "nrefs:1" in md and "| claim | verdict | why |" in md
    assert md.count("**not testable at this scale**") == 2  # tiny runs stop at max_steps: nothing is judged
    assert "Not run yet" in md  # the other targets
    assert (dest / "report" / "index.html").is_file()

    # the same runs, as if their stopping rule had ended them: judged now, by their BLEU
    rows = {"RNNsearch (bahdanau, additive)": [], "RNNencdec (bahdanau, attention off)": []}
    for t in trials:
        arch = json.loads((t / "metrics.json").read_text())
        _set(t, converged=True, stop_reason="early_stopping")
        cfg = (t / "config.yaml").read_text()
        if "score: additive" in cfg:
            rows["RNNsearch (bahdanau, additive)"].append(t)
            _set(t, bleu=30.0)
        elif "arch: bahdanau" in cfg:
            rows["RNNencdec (bahdanau, attention off)"].append(t)
            _set(t, bleu=20.0)
        del arch
    first_claim = verdicts("bahdanau2015", rows, [])[0]  # one seed per row: no verdict yet
    assert first_claim.verdict == "too few seeds yet" and "has 1 seed(s) finished" in first_claim.why
    for runs in rows.values():  # a second seed of each row
        twin = runs[0].parent / f"{runs[0].name}-seed2"
        shutil.copytree(runs[0], twin)
        _set(twin, seed=2)
        runs.append(twin)
    (first_claim, second) = verdicts("bahdanau2015", rows, [])
    assert first_claim.verdict == "reproduced" and "BLEU 30.00 vs 20.00" in first_claim.why
    assert second.verdict == "not run yet"  # the seq2seq row was left out of `rows`
    sig = [{"claim": first_claim.claim, "p_value": 0.2}]
    assert verdicts("bahdanau2015", rows, sig)[0].verdict == "not reproduced"  # not significant


def _restore_resumes_without_retraining(tmp_path, into, study):
    """A new machine: the folder is gone, results/ is all there is. restore seeds a folder from it, and the
    reproduction then finds every trial finished (none trains again, none is changed) and its unk-replacement
    effects without the checkpoints they were measured with."""
    src = into / "bahdanau2015" / study
    for cache in src.glob("trials/*/unk_replace.json"):
        cache.unlink()  # as in results/ collected before the reproduction measured them: reproduction.json has them
    again = tmp_path / "machine2" / "reproduce-bahdanau2015"
    r = restore("bahdanau2015", again, into)
    assert r["trials"] == 3
    trials = run_dirs_of(again / "runs" / study)
    assert [t.name for t in trials] == [t.name for t in run_dirs_of(src)]
    attends = [t.name for t in trials if not is_control(run_flat_config(t))]  # RNNencdec, seq2seq: nothing to copy
    assert attends and [t.name for t in trials if (t / "unk_replace.json").is_file()] == attends
    assert not list(again.rglob("*.ckpt"))
    before = {t.name: (t / "metrics.json").read_bytes() for t in trials}
    journal = (again / "runs" / study / "study.journal").read_bytes()
    assert journal == (src / "study.journal").read_bytes()

    done = reproduce("bahdanau2015", "tiny", output=again, quiet=True)
    assert done["status"] == 0 and len(done["runs"]) == 3
    assert {t.name: (t / "metrics.json").read_bytes() for t in run_dirs_of(again / "runs" / study)} == before
    assert not list(again.rglob("*.ckpt")) and not list((again / "runs" / study / "trials").glob("*.partial"))
    assert len(done["extras"]["unk"]) == len(attends) and not done["extras"].get("unk_skipped")
    grown = (again / "runs" / study / "study.journal").read_bytes()
    assert grown.startswith(journal)  # the folder's journal may only have grown

    # restoring again keeps the folder's journal (it is ahead of results/) and every file it has
    assert restore("bahdanau2015", again, into)["files_copied"] == 0
    assert (again / "runs" / study / "study.journal").read_bytes() == grown
    # a different study under the same name is refused, and nothing is written
    other = tmp_path / "machine3" / "reproduce-bahdanau2015"
    (other / "runs" / study).mkdir(parents=True)
    (other / "runs" / study / "study.journal").write_text('{"op_code": 0, "worker_id": "x"}\n')
    with pytest.raises(HarnessError, match="different studies"):
        restore("bahdanau2015", other, into)
    assert sorted(p.name for p in (other / "runs" / study).iterdir()) == ["study.journal"]


@pytest.mark.skipif(
    not (data_root() / "hansards_enfr").is_dir(), reason=f"shared data not found: {data_root()}/hansards_enfr"
)
def test_aer_claims_are_judged_by_a_paired_bootstrap_over_the_gold_sentences(tmp_path):
    """An AER claim (cgru aligns better than RNNsearch) and the positional-baseline claim are tested on the
    links the runs wrote (test.align) against the Hansards gold: a real difference is significant, a difference
    of a few sentences is not and then does not count as reproduced; links equal to the baseline's get p = 1."""
    from harness.config import dump_yaml, parse_config, to_dict
    from harness.data.alignments import Alignment, write_pharaoh
    from harness.data.corpora import load_corpus
    from harness.metrics.alignment import alignment_scores, diagonal_links
    from harness.study.results import _rows_runs, claim_significance, load_claims, target_runs

    data = {"data.name": "hansards_enfr", "data.src_lang": "en", "data.tgt_lang": "fr", "data.train_limit": 10}
    split = load_corpus(parse_config(None, data).data).splits["test"]
    gold = split.gold
    diagonal = [diagonal_links(len(s.split()), len(t.split())) for s, t in zip(split.src, split.tgt)]
    trials = tmp_path / "alignment" / "alignment-small-alignment_hansards" / "trials"

    def run(n, arch, links):
        d = trials / n
        d.mkdir(parents=True, exist_ok=True)
        cfg = parse_config(None, {**data, "model.arch": arch, "model.score": "additive", "seed": 1})
        (d / "config.yaml").write_text(dump_yaml(to_dict(cfg)))
        write_pharaoh([Alignment(set(x), set()) for x in links], d / "test.align")
        m = {"seed": 1, "converged": True, "stop_reason": "early_stopping", "aer": alignment_scores(links, gold)["aer"]}
        m["aer_diagonal"] = alignment_scores(diagonal, gold)["aer"]
        (d / "metrics.json").write_text(json.dumps(m))

    run("0", "cgru", [g.sure for g in gold])  # the gold's sure links: AER 0
    run("1", "bahdanau", diagonal)
    claims = {c["claim"]: c for c in load_claims()["alignment"]}
    (cgru_claim,) = [c for c in claims if c.startswith("The conditional GRU")]
    (diag_claim,) = [c for c in claims if claims[c]["kind"] == "below_diagonal"]

    sig = {s["claim"]: s for s in claim_significance("alignment", tmp_path / "alignment")}
    found = sig[cgru_claim]
    assert found["aer_a"] == 0.0 and found["aer_b"] > 0.3 and found["p_value"] < 0.01
    assert found["sentences"] == len(gold) == 447 and found["seeds"] == [1]
    per_row = sig[diag_claim]["rows"]
    assert per_row["Hansards en->fr: cgru (additive)"]["p_value"] < 0.01
    assert per_row["Hansards en->fr: RNNsearch (bahdanau, additive)"]["p_value"] == 1.0  # its links ARE the baseline
    rows = _rows_runs("alignment", target_runs(tmp_path / "alignment"))
    (v,) = [v for v in verdicts("alignment", rows, list(sig.values())) if v.claim == cgru_claim]
    assert v.verdict == "reproduced" and "paired bootstrap p = " in v.why

    few = [i for i, g in enumerate(gold) if len(g.sure) >= 10][:3]  # better than RNNsearch on 3 sentences only
    run("0", "cgru", [g.sure if i in few else d for i, (g, d) in enumerate(zip(gold, diagonal))])
    sig = claim_significance("alignment", tmp_path / "alignment")
    (found,) = [s for s in sig if s["claim"] == cgru_claim]
    assert found["aer_a"] < found["aer_b"] and found["p_value"] > 0.05
    rows = _rows_runs("alignment", target_runs(tmp_path / "alignment"))
    for r in rows["Hansards en->fr: cgru (additive)"]:  # the run's own metrics.json agree with its test.align
        assert json.loads((r / "metrics.json").read_text())["aer"] == pytest.approx(found["aer_a"])
    (v,) = [v for v in verdicts("alignment", rows, sig) if v.claim == cgru_claim]
    assert v.verdict == "not reproduced" and f"p = {found['p_value']:.3f}" in v.why

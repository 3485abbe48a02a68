"""Reproduction targets as data (harness/study/targets.yaml): each row quotes its paper number from the anchor it
names in harness/report/papers.yaml, formatted as the row shows it; a row naming no anchor there fails at load."""

from __future__ import annotations

import pytest
import yaml

from harness.errors import HarnessError
from harness.study.targets import PAPERS_FILE, TARGETS, TARGETS_FILE, load_targets


def _row(target: str, name: str):
    (row,) = [r for r in TARGETS[target].rows if r.name == name]
    return row


def test_rows_quote_their_anchors_as_the_reports_show_them():
    assert _row("bahdanau2015", "RNNsearch (bahdanau, additive)").paper == "26.75 (RNNsearch-50)"
    seq2seq = _row("bahdanau2015", "seq2seq (Sutskever 2014, reversed)").paper
    assert seq2seq == "30.59 (Sutskever 2014 Table 1, single reversed LSTM, beam 12, own data)"
    location = _row("luong2015", "global (location)")
    assert (location.paper, location.paper_unk) == ("18.1", "19.3")
    assert _row("luong2015", "local-p (general)").paper == "19.0"  # as printed, not 19
    not_reported = _row("luong2015", "local-m (dot)")
    assert (not_reported.paper, not_reported.paper_unk) == ("not reported (ppl > 7.0)", None)
    # two anchors in one row, trailing zeros kept as printed (22.10)
    assert _row("britz2017", "additive, 512 units").paper == "22.47 ± 0.27 (Add-512; Add-1024 22.10)"
    assert _row("britz2017", "scaled dot, 512 units").paper is None
    assert _row("gnmt2016", "GNMT (additive attention)").paper == "38.95"
    assert _row("length", "RNNsearch-50 (bahdanau, trained <= 50)").paper == "no drop up to 50+ words"
    # the range of Table 4's gains from unk replacement (19.3 - 18.1 ... 20.5 - 18.6), computed from the anchors
    note = TARGETS["bahdanau2015"].paper_note
    assert note == "No unk replacement in Bahdanau et al.; Luong et al. 2015 Table 4: +1.2 to +1.9 BLEU."


def test_alignment_rows_cross_data_directions_and_variants_with_table_6_on_rwth_en_de_only():
    rows = TARGETS["alignment"].rows
    assert len(rows) == 2 * 2 * 7
    shown = {r.name: r.paper for r in rows if r.paper}
    assert shown == {
        "RWTH en->de: luong global (location)": "AER 0.39",
        "RWTH en->de: luong local-m (general)": "AER 0.34",
        "RWTH en->de: luong local-p (general)": "AER 0.36",
    }
    alignment = TARGETS["alignment"]
    assert alignment.source.endswith("(RWTH de-en gold, 508 sentences; Berkeley aligner 0.32)")
    assert alignment.aligner_note.endswith("as reported): attention 0.34-0.39, Berkeley aligner 0.32.")
    row = _row("alignment", "Hansards fr->en: cgru + guided (eflomal links)")
    assert row.match == {
        "data.name": "hansards_enfr",
        "data.src_lang": "fr",
        "data.tgt_lang": "en",
        "model.arch": "cgru",
        "train.guided_alignment.weight": 1.0,
    }


def test_a_number_changed_in_papers_yaml_changes_the_row(tmp_path):
    doc = yaml.safe_load(PAPERS_FILE.read_text(encoding="utf-8"))
    (bahdanau,) = [p for p in doc["papers"] if p["short"] == "Bahdanau 2015"]
    for anchor in bahdanau["anchors"]:
        if anchor["model"].startswith("RNNsearch-50 (additive"):
            anchor["value"] = 99.5
    papers = tmp_path / "papers.yaml"
    papers.write_text(yaml.safe_dump(doc))
    targets = load_targets(TARGETS_FILE, papers)
    assert targets["bahdanau2015"].rows[0].paper == "99.5 (RNNsearch-50)"


def test_an_anchor_missing_from_papers_yaml_is_a_one_line_error(tmp_path):
    doc = yaml.safe_load(TARGETS_FILE.read_text(encoding="utf-8"))
    doc["gnmt2016"]["rows"][0]["paper"]["anchor"] = "GNMT 2016 / no such model"
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(HarnessError) as e:
        load_targets(path, PAPERS_FILE)
    assert str(e.value).startswith(f"{path}: gnmt2016: GNMT (additive attention): anchor 'GNMT 2016 / no such model'")
    assert "\n" not in str(e.value)


def test_reproduction_md_lists_the_trials_continued_under_a_raised_budget():
    from harness.study.summary import render_markdown, summarize
    from harness.study.targets import TARGETS

    target = TARGETS["gnmt2016"]
    note = {"trial": 0, "step": 9080, "stop_reason": "max_epochs", "budget": "train.max_epochs", "was": 20, "now": 60}
    extras = {"continued": [{"study": "gnmt2016-small", **note, "by": 7}]}
    meta = {"specs": ["experiments/small/gnmt2016.yaml"], "expected_time": "?", "wall_s": 1.0, "n_runs": 0}
    text = render_markdown(target, "small", summarize(target, [], extras), extras, meta)
    assert (
        "- gnmt2016-small trial 0 -> trial 7: stopped by max_epochs at train.max_epochs=20, continued under 60" in text
    )


def test_a_row_is_averaged_over_its_converged_runs_only(tmp_path):
    """A budget-stopped run's numbers are not final: a row with converged runs is over those alone; a row without
    any shows all its runs (and says none converged)."""
    import json

    import yaml

    from harness.study.summary import summarize
    from harness.study.targets import TARGETS

    def run(name, score, bleu, converged):
        d = tmp_path / name
        d.mkdir()
        (d / "config.yaml").write_text(yaml.safe_dump({"model": {"score": score, "hidden_size": 128}}))
        reason = "early_stopping" if converged else "max_epochs"
        (d / "metrics.json").write_text(json.dumps({"bleu": bleu, "converged": converged, "stop_reason": reason}))
        return d

    runs = [run("a", "general", 33.0, True), run("b", "general", 30.0, False), run("c", "additive", 29.0, False)]
    rows = {r["configuration"]: r for r in summarize(TARGETS["britz2017"], runs, {})["rows"]}
    general, additive = rows["multiplicative (general), 128 units"], rows["additive, 128 units"]
    assert (general["runs"], general["converged"], general["bleu"], general["bleu_std"]) == (2, 1, 33.0, None)
    assert (additive["runs"], additive["converged"], additive["bleu"]) == (1, 0, 29.0)
    assert additive["stop_reasons"] == ["max_epochs"]


def test_results_md_lists_the_trials_continued_under_a_raised_budget(tmp_path):
    import json

    from harness.study.results import _extras

    trials = tmp_path / "britz2017-small" / "trials"
    for n in ("2", "9"):
        (trials / n).mkdir(parents=True)
        (trials / n / "metrics.json").write_text("{}")
    note = {"trial": 2, "step": 11350, "stop_reason": "max_epochs", "budget": "train.max_epochs", "was": 25, "now": 60}
    (trials / "9" / "extends.json").write_text(json.dumps(note))
    assert _extras(tmp_path, [trials / "9"])["continued"] == [{"study": "britz2017-small", **note, "by": 9}]


def test_a_not_worse_claim_holds_when_a_is_below_but_not_significantly(tmp_path):
    """`not_worse` (harness/study/claims.yaml): row a at least as good as row b. Above b: reproduced; below b:
    reproduced only while the paired bootstrap finds no significant difference, else not (and says which is better)."""
    import json

    from harness.study.results import load_claims, verdicts

    (claim,) = [c for c in load_claims()["britz2017"] if c["kind"] == "not_worse"]

    made = iter(range(1000))

    def runs(*bleus):
        out = []
        for seed, bleu in enumerate(bleus, 1):
            d = tmp_path / f"run{next(made)}"
            d.mkdir()
            m = {"bleu": bleu, "seed": seed, "converged": True, "stop_reason": "early_stopping"}
            (d / "metrics.json").write_text(json.dumps(m))
            out.append(d)
        return out

    def verdict(a, b, p=None):
        rows = {claim["a"]: runs(*a), claim["b"]: runs(*b)}
        sig = [] if p is None else [{"claim": claim["claim"], "p_value": p}]
        (v,) = [v for v in verdicts("britz2017", rows, sig) if v.claim == claim["claim"]]
        return v

    assert verdict((33.0, 33.2), (32.0, 32.4)).verdict == "reproduced"
    assert verdict((32.3, 32.5), (33.3, 33.5)).verdict == "not reproduced"  # below, no test to say otherwise
    close = verdict((32.4, 32.6), (33.3, 33.6), p=0.2)
    assert close.verdict == "reproduced" and "BLEU 32.50 vs 33.45, paired bootstrap p = 0.200" in close.why
    far = verdict((32.4, 32.61), (33.3, 33.61), p=0.01)
    assert far.verdict == "not reproduced" and "additive, 512 units significantly better" in far.why


def test_a_row_beats_the_positional_baseline_only_when_the_bootstrap_says_so(tmp_path):
    """`below_diagonal`: every row's AER below its diagonal AER, and (where claims.json has the paired bootstrap
    of the row against the baseline) significantly so; a row below it by chance is named, with its p."""
    import json

    from harness.study.results import load_claims, verdicts

    (claim,) = [c for c in load_claims()["alignment"] if c["kind"] == "below_diagonal"]
    rows = {}
    for i, name in enumerate(claim["rows"]):
        d = tmp_path / f"run{i}"
        d.mkdir()
        m = {"aer": 0.40, "aer_diagonal": 0.55, "seed": 1, "converged": True, "stop_reason": "early_stopping"}
        (d / "metrics.json").write_text(json.dumps(m))
        rows[name] = [d]

    def verdict(p_values):
        sig = [{"claim": claim["claim"], "rows": {n: {"p_value": p} for n, p in p_values.items()}}]
        (v,) = [v for v in verdicts("alignment", rows, sig) if v.claim == claim["claim"]]
        return v

    assert verdict({}).verdict == "reproduced"  # no bootstrap on record: the means decide
    all_tested = verdict({n: 0.001 * (k + 1) for k, n in enumerate(claim["rows"])})
    assert all_tested.verdict == "reproduced" and "largest p = 0.010" in all_tested.why
    chance = verdict({n: 0.3 if k == 2 else 0.001 for k, n in enumerate(claim["rows"])})
    assert chance.verdict == "not reproduced"
    assert (
        chance.why
        == f"not below the diagonal: {claim['rows'][2]} 0.400 vs 0.550, paired bootstrap p = 0.300 (not significant)"
    )


def test_a_target_on_a_corpus_distributed_tokenized_says_its_bleu_is_tokenized():
    """Hansards (length, alignment) comes tokenized and is scored as it is: their reports must not claim
    detokenized sacreBLEU, as the Multi30k targets do."""
    from harness.study.summary import render_markdown

    def header(name):
        meta = {"specs": [], "expected_time": "", "wall_s": 0.0, "n_runs": 0}
        return render_markdown(TARGETS[name], "small", {"rows": [], "unmatched_runs": []}, {}, meta).split("\n")[2]

    assert "ours are sacreBLEU on detokenized text" in header("britz2017")
    for name in ("length", "alignment"):
        assert "already tokenized" in header(name) and "detokenized text" not in header(name)


def test_results_md_counts_cpu_time_as_wall_time_times_threads(tmp_path):
    """A run trained on 2 torch threads held 2 cores: RESULTS.md's CPU-hours count it twice its wall time."""
    import json

    import yaml

    from harness.study.results import build

    for n, threads in (("0", 1), ("1", 2)):
        d = tmp_path / "results" / "britz2017" / "britz2017-small" / "trials" / n
        d.mkdir(parents=True)
        cfg = {"seed": 1, "model": {"score": "additive", "hidden_size": 128}, "train": {"threads": threads}}
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        m = {"bleu": 30.0, "seed": 1, "converged": True, "stop_reason": "early_stopping", "train_time_s": 3600.0}
        (d / "metrics.json").write_text(json.dumps(m))
    md = build(tmp_path / "results", tmp_path / "RESULTS.md", report=False).read_text()
    assert "- training time: 3.0 CPU-hours (wall time × torch threads) over 2 runs" in md

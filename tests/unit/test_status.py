"""`harness reproduce TARGET --status` (harness/study/status.py): a reproduction folder's progress from its files
alone: finished runs, unfinished ones with how close their stopping rule is (counted across a resume), not started."""

from __future__ import annotations

import json

import pytest
import yaml

from harness.cli import main
from harness.study.status import patience_left, status


def _config(d, arch, max_len, seed):
    cfg = {
        "seed": seed,
        "data": {"max_len": max_len},
        "model": {"arch": arch},
        "train": {"early_stopping": 3, "early_stopping_metric": "val_ppl", "early_stopping_min_delta": 0.0},
    }
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))


def _log(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,step,train_loss,val_bleu,val_ppl"]
    for step, ppl in rows:  # Lightning logs a validation at global_step - 1
        lines += [f"0,{step - 10},3.0,,", f"0,{step - 1},,20.0,{ppl}"]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def folder(tmp_path):
    trials = tmp_path / "runs" / "length-small-length_hansards" / "trials"
    _config(trials / "0", "bahdanau", 30, 1)
    m = {"converged": True, "stop_reason": "early_stopping", "val_metric": "val_ppl", "val_metric_best": 10.5}
    (trials / "0" / "metrics.json").write_text(json.dumps({**m, "best_step": 9000, "bleu": 29.25}))
    _config(trials / "3.partial", "bahdanau", 50, 2)  # resumed at step 1,000: its earlier rows kept aside
    _log(trials / "3.partial" / "logs" / "metrics.before-resume.csv", [(500, 14.0), (1000, 12.0)])
    _log(trials / "3.partial" / "logs" / "metrics.csv", [(1500, 12.5), (2000, 12.2)])
    (trials / "old.partial").mkdir()  # not a trial's folder: left out, not a crash
    return tmp_path


def test_status_counts_finished_unfinished_and_not_started_runs(folder):
    text = status("length", "small", folder)
    assert "8 runs; 1 finished (1 converged, 0 stopped by their budget), 1 unfinished, 6 not started" in text
    assert (
        "trial 0: RNNsearch-30 (bahdanau, trained <= 30), seed 1: converged (best val_ppl 10.50 at step 9,000)" in text
    )
    (line,) = [x for x in text.splitlines() if x.strip().startswith("trial 3")]
    # no improvement on 12.0 (step 1,000, before the resume) in the two validations since
    assert "RNNsearch-50 (bahdanau, trained <= 50), seed 2: step 2,000, val_ppl 12.20" in line
    assert "best 12.00 at step 1,000, 2 of 3 validations without improvement" in line
    assert line.endswith("[unfinished: rerun to resume]")


def test_patience_is_counted_as_the_stopping_rule_counts_it():
    rows = [{"step": s, "val_ppl": v} for s, v in [(1, 10.0), (2, 9.5), (3, 9.45), (4, 9.6)]]
    assert patience_left(rows, "val_ppl", 0.0) == (rows[2], 1)
    assert patience_left(rows, "val_ppl", 0.1) == (rows[1], 2)  # 9.45 is not better by more than 0.1
    bleu = [{"step": 1, "val_bleu": 20.0}, {"step": 2, "val_bleu": 21.0}]
    assert patience_left(bleu, "val_bleu", 0.0) == (bleu[1], 0)


def test_status_from_the_command_line(folder, capsys, tmp_path):
    assert main(["reproduce", "length", "--status", "-o", str(folder)]) == 0
    assert "1 unfinished, 6 not started" in capsys.readouterr().out
    assert main(["reproduce", "length", "--status", "-o", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no runs/ folder" in err

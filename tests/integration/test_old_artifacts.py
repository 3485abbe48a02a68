"""What earlier versions of the harness left on disk keeps working: tests/data/ holds a study and a run directory
that `harness sweep` and `harness train` wrote at commit 1682788, before the package layout of issue 17 (see
tests/data/old_study/spec.yaml and tests/data/old_run/config.yaml `_meta`).

- the study (an Optuna journal with one of its two grid points COMPLETE) resumes: its stored fingerprint, spec,
  objectives and seeds still match today's spec, and the missing grid point runs;
- the run directory's checkpoints (plain data: config dict, vocabularies, state_dict) still load: `harness
  evaluate` and `harness translate` decode exactly what the run wrote then, and `harness train --resume`
  continues its training from last.ckpt.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ..conftest import ROOT, run_cli

DATA = Path(__file__).resolve().parents[1] / "data"
OLD_RUN = DATA / "old_run"
# the overrides the old run was trained with (its config.yaml has them resolved)
RUN_OVERRIDES = [
    "train.val_every=5",
    "train.threads=1",
    "train.accelerator=cpu",
    "data.synthetic.train_size=100",
    "data.synthetic.val_size=20",
    "data.synthetic.test_size=20",
    "data.synthetic.max_len=8",
    "data.synthetic.vocab_size=16",
    "model.hidden_size=8",
    "model.emb_size=8",
    "tracking.wandb.mode=disabled",
]
ENV = {"OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def _validations(run: Path) -> list[tuple[str, str]]:
    with open(run / "logs" / "metrics.csv", newline="") as f:
        return [(r["step"], r["val_ppl"]) for r in csv.DictReader(f) if r.get("val_ppl")]


@pytest.mark.slow
def test_a_study_created_before_the_layout_resumes_and_finishes(tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    def load():
        return optuna.load_study(study_name="old", storage=JournalStorage(JournalFileBackend(str(journal))))

    journal = tmp_path / "study.journal"
    shutil.copyfile(DATA / "old_study" / "study.journal", journal)
    url = f"journal:///{journal}"
    before = load()
    (done,) = before.get_trials(states=(TrialState.COMPLETE,))
    spec = (DATA / "old_study" / "spec.yaml").relative_to(ROOT)  # the study stores its paths as given then
    r = run_cli("sweep", str(spec), "--study", "old", "--storage", url, "--reports", str(tmp_path), "--quiet", env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 complete, 0 pruned, 0 failed" in r.stdout
    after = load()
    assert after.user_attrs == {**before.user_attrs, "n_trials": 2}  # fingerprint, spec, objectives, seeds kept
    complete = after.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.params["model.score"] for t in complete) == ["dot", "general"]
    assert after.trials[done.number].user_attrs == done.user_attrs and after.trials[done.number].value == done.value
    (new,) = [t for t in complete if t.number != done.number]
    assert Path(new.user_attrs["run_dir"]) == tmp_path / "old" / "trials" / str(new.number)
    assert new.user_attrs["metrics"]["bleu"] == new.value
    assert set(new.user_attrs) == set(done.user_attrs)  # the same trial attributes as the old version wrote


@pytest.mark.slow
def test_a_run_directory_from_before_the_layout_evaluates_translates_and_resumes(tmp_path):
    run = tmp_path / "old_run"
    shutil.copytree(OLD_RUN, run)
    old = json.loads((OLD_RUN / "metrics.json").read_text())

    r = run_cli("evaluate", str(run), "--quiet", env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    new = json.loads((run / "metrics.json").read_text())
    assert set(new) == set(old)
    for key in ("bleu", "chrf", "aer", "alignment_precision", "alignment_recall", "by_length"):
        assert new[key] == old[key], key  # functions of the hypotheses and argmax links: exact
    # a mean over attention weights: the last digits follow the CPU's float kernels (the old run was written on an
    # Intel Xeon; on an AMD EPYC it differs by 1e-10)
    assert new["attention_entropy"] == pytest.approx(old["attention_entropy"], rel=1e-7)
    assert (run / "test.hyp").read_text() == (OLD_RUN / "test.hyp").read_text()

    # the test sources (their tokens are in attention/test.npz) through `harness translate` give the test
    # hypotheses the run wrote (greedy, one per line)
    with np.load(OLD_RUN / "attention" / "test.npz", allow_pickle=False) as z:
        sources = [" ".join(z[f"src_{i}"].tolist()) for i in range(int(z["count"]))]
    r = run_cli("translate", str(run), stdin="".join(s + "\n" for s in sources), env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == (OLD_RUN / "test.hyp").read_text()

    # --resume continues from the old last.ckpt (step 10): the validations before it are the old run's
    r = run_cli(
        "train",
        "experiments/bahdanau2015_synthetic.yaml",
        *RUN_OVERRIDES,
        "train.max_steps=20",
        "--output",
        str(run),
        "--resume",
        "--quiet",
        env=ENV,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["steps"] == 20 and resumed["stop_reason"] == "max_steps"
    rows = _validations(run)
    assert rows[: len(_validations(OLD_RUN))] == _validations(OLD_RUN)
    assert [int(s) for s, _ in rows][-1] >= 19

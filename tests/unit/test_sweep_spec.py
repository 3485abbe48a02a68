"""Sweep spec validation (one-line HarnessError naming the spec file and key) and grid expansion."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import HarnessError
from harness.paths import PROJECT_ROOT
from harness.storage import mask_url, open_storage
from harness.study.spec import load_spec

BASE = "experiments/bahdanau2015_synthetic.yaml"


def spec_file(tmp_path: Path, **keys) -> Path:
    doc = {"base": BASE, "space": {"model.score": ["dot", "general"]}, "sampler": "grid"}
    doc.update(keys)
    for k in [k for k, v in doc.items() if v is _DROP]:
        del doc[k]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


_DROP = object()


def error(tmp_path, **keys) -> str:
    path = spec_file(tmp_path, **keys)
    with pytest.raises(HarnessError) as e:
        load_spec(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    return msg


@pytest.mark.parametrize(
    ("keys", "expect"),
    [
        ({"sampeler": "grid"}, "sampeler"),
        ({"space": {}}, "space: empty search space"),
        ({"space": _DROP}, "space: empty search space"),
        ({"sampler": "bayes"}, "sampler"),
        ({"pruner": "hyperband"}, "pruner"),
        ({"space": {"model.scor": ["dot"]}}, "model.scor"),
        ({"space": {"model.score": []}}, "space.model.score: empty list"),
        ({"space": {"seed": [1, 2]}}, "space.seed"),
        ({"overrides": {"train.max_stepz": 10}}, "overrides"),
        ({"overrides": {"train.max_steps": "many"}}, "train.max_steps"),
        ({"objective": {"metric": "bleu", "direction": "up"}}, "objective.direction"),
        ({"objective": {"metric": "bleux"}}, "objective.metric"),
        (
            {"objective": [{"metric": "bleu"}, {"metric": "aer", "direction": "minimise"}]},
            "objective[1].direction",
        ),
        (
            {
                "objective": [{"metric": "bleu"}, {"metric": "aer", "direction": "minimize"}],
                "pruner": "median",
            },
            "pruner",
        ),
        ({"seeds": []}, "seeds"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"n_trials": 5}, "n_trials"),  # grid of 2 points
        ({"sampler": "tpe"}, "n_trials: required"),
        ({"base": "experiments/nope.yaml"}, "base"),
        ({"timeout_per_trial": -1}, "timeout_per_trial"),
        ({"max_pruned": 3}, "max_pruned: only for sampler tpe or random"),  # grid: a pruned point is done
        ({"sampler": "random", "n_trials": 2, "max_pruned": 0}, "max_pruned: expected a positive integer"),
        ({"sampler_seed": 1}, "sampler_seed: only for sampler tpe or random"),
        ({"sampler": "tpe", "n_trials": 2, "sampler_seed": -1}, "sampler_seed: expected an integer >= 0"),
        ({"space": {"model.score": ["dot", "dott"]}}, "model.score"),  # invalid value, caught per grid point
        ({"space": {"model.arch": ["seq2seq"]}}, "grid point"),  # seq2seq needs score none
        ({"space": {"train.lr": {"type": "float", "low": 0.1, "high": 0.01}}}, "space.train.lr"),
        (
            {
                "space": {"train.lr": {"type": "float", "low": 0, "high": 1, "log": True}},
                "sampler": "tpe",
                "n_trials": 3,
            },
            "space.train.lr.log",
        ),
        ({"space": {"train.lr": {"type": "float", "low": 0.001, "high": 0.1}}}, "step"),  # grid needs a step
        ({"space": {"train.lr": {"type": "normal", "low": 0.001, "high": 0.1}}}, "space.train.lr.type"),
        ({"space": {"train.lr": {"kind": "float"}}}, "space.train.lr.kind"),
        ({"space": {"variant": [{"model.arch": "luong", "model.scor": "dot"}]}}, "model.scor"),
    ],
)
def test_spec_errors_name_the_key(tmp_path, keys, expect):
    assert expect in error(tmp_path, **keys)


def test_unknown_top_level_key_suggests(tmp_path):
    assert "did you mean 'sampler'" in error(tmp_path, sampeler="grid")


def test_grid_expansion_with_seeds(tmp_path):
    path = spec_file(
        tmp_path,
        space={
            "model.score": ["dot", "general", "cosine"],
            "model.hidden_size": {"type": "int", "low": 16, "high": 32, "step": 16},
            "train.lr": {"type": "float", "low": 0.001, "high": 0.003, "step": 0.001},
        },
        seeds=[1, 2],
    )
    spec = load_spec(path)
    assert spec.grid_space == {
        "model.score": ["dot", "general", "cosine"],
        "model.hidden_size": [16, 32],
        "train.lr": [0.001, 0.002, 0.003],
        "seed": [1, 2],
    }
    assert spec.grid_size == 3 * 2 * 3 * 2 == spec.n_trials
    points = spec.grid_points()
    assert len(points) == 36 and len({tuple(p.values()) for p in points}) == 36
    over = spec.trial_overrides(points[0], points[0]["seed"])
    assert over["seed"] == 1 and over["model.score"] == "dot"


def test_bundle_sets_several_keys(tmp_path):
    path = spec_file(
        tmp_path,
        space={
            "variant": [
                {"model.arch": "seq2seq", "model.score": "none"},
                {"model.arch": "luong", "model.score": "general"},
            ]
        },
    )
    spec = load_spec(path)
    assert spec.grid_space["variant"] == ["seq2seq/none", "luong/general"]
    assert spec.trial_overrides({"variant": "seq2seq/none"}, 3)["model.arch"] == "seq2seq"


def test_overrides_order_and_budget(tmp_path):
    path = spec_file(tmp_path, overrides={"train.max_steps": 7}, n_trials=1, timeout_per_trial=30)
    spec = load_spec(path, ["train.max_steps=9", "data.synthetic.train_size=50"], n_trials=2)
    assert spec.n_trials == 2
    over = spec.trial_overrides({"model.score": "dot", "seed": 1}, 1)
    assert over["train.max_steps"] == 9 and over["data.synthetic.train_size"] == 50
    assert over["train.max_time"] == 30
    with pytest.raises(HarnessError, match="model.score is a searched key"):
        load_spec(path, ["model.score=dot"])
    with pytest.raises(HarnessError, match="--n-trials"):
        load_spec(path, n_trials=3)


def test_tpe_space(tmp_path):
    path = spec_file(
        tmp_path,
        sampler="tpe",
        n_trials=10,
        pruner="median",
        space={
            "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "model.hidden_size": [16, 32],
            "model.dropout": {"type": "float", "low": 0, "high": 0.5},
        },
    )
    spec = load_spec(path)
    assert spec.space["train.lr"].log and spec.space["model.hidden_size"].choices == [16, 32]
    assert spec.max_pruned == 100  # default: 10 x n_trials
    assert load_spec(path, n_trials=3).max_pruned == 30


def _pruning_trial():
    """A trial whose pruner always says prune, and the sweep's pruning callback on it."""
    import optuna

    from harness.study.objective import pruning_callback

    class Always(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            return True

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    trial = optuna.create_study(direction="maximize", pruner=Always()).ask()
    return trial, pruning_callback(trial)


def _trainer(step: int, max_steps: int, *, max_epochs: int = -1, epoch: int = 0, last_batch: bool = False):
    from types import SimpleNamespace

    import torch

    return SimpleNamespace(
        sanity_checking=False,
        callback_metrics={"val_bleu": torch.tensor(float(step))},
        global_step=step,
        max_steps=max_steps,
        max_epochs=max_epochs,
        current_epoch=epoch,
        is_last_batch=last_batch,
    )


def test_pruning_spares_the_validation_of_the_final_weights():
    """A trial that has spent its whole budget is never pruned at its last validation (a pruner whose median
    sits above most trials would otherwise keep a TPE study from reaching n_trials COMPLETE: CI stalled on
    600 pruned trials); earlier validations are pruned, and every one is reported."""
    import optuna

    trial, cb = _pruning_trial()
    with pytest.raises(optuna.TrialPruned, match="pruned at step 4"):
        cb.on_validation_end(_trainer(4, 12), None)
    cb.on_validation_end(_trainer(12, 12), None)  # the final weights: reported, not pruned
    # epoch-bound training (no step limit): the last batch of the last epoch, not an earlier one
    with pytest.raises(optuna.TrialPruned):
        cb.on_validation_end(_trainer(5, -1, max_epochs=2, epoch=0, last_batch=True), None)
    with pytest.raises(optuna.TrialPruned):
        cb.on_validation_end(_trainer(6, -1, max_epochs=2, epoch=1, last_batch=False), None)
    cb.on_validation_end(_trainer(10, -1, max_epochs=2, epoch=1, last_batch=True), None)
    steps = trial.study._storage.get_trial(trial._trial_id).intermediate_values
    assert sorted(steps) == [4, 5, 6, 10, 12]


@pytest.mark.parametrize("name", sorted(p.name for p in (PROJECT_ROOT / "sweeps").glob("*.yaml")))
def test_shipped_sweeps_validate(name):
    spec = load_spec(PROJECT_ROOT / "sweeps" / name)
    assert spec.n_trials >= 1


def test_mask_url_and_unreachable_storage():
    assert mask_url("postgresql://bob:s3cret@db.example:5432/x") == "postgresql://bob:***@db.example:5432/x"
    assert mask_url("sqlite:///a/b.db") == "sqlite:///a/b.db"
    with pytest.raises(HarnessError) as e:
        open_storage("postgresql://bob:s3cret@127.0.0.1:1/nodb")
    assert "s3cret" not in str(e.value) and "bob:***@127.0.0.1:1" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(HarnessError, match="expected sqlite"):
        open_storage("redis://localhost")


def test_overrides_may_follow_the_options():
    """`make sweep ARGS="data.name=multi30k"` puts the overrides after --study/--workers."""
    from harness.cli import build_parser

    args = build_parser().parse_args(
        [
            "sweep",
            "sweeps/x.yaml",
            "model.dropout=0.1",
            "--study",
            "s",
            "data.name=multi30k",
            "--workers",
            "2",
        ]
    )
    assert args.spec == "sweeps/x.yaml" and args.study == "s" and args.workers == 2
    assert args.overrides == ["model.dropout=0.1", "data.name=multi30k"]


def test_a_study_refuses_a_changed_base_config(tmp_path):
    """Editing the base preset under an existing study would mix two configs in it: refused, one line."""
    from harness.study.study import create_or_load_study

    base = tmp_path / "base.yaml"
    base.write_text((PROJECT_ROOT / BASE).read_text())
    spec_path = spec_file(tmp_path, base=str(base))
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    create_or_load_study(load_spec(spec_path), "s", storage)
    base.write_text("# a comment does not change the resolved config\n" + base.read_text())
    create_or_load_study(load_spec(spec_path), "s", storage)  # same resolved content: resumes
    base.write_text(base.read_text().replace("lr: 0.001", "lr: 0.002"))
    with pytest.raises(HarnessError) as e:
        create_or_load_study(load_spec(spec_path), "s", storage)
    assert "different base config content" in str(e.value) and "\n" not in str(e.value)


def test_a_study_stored_without_the_base_digest_is_refused(tmp_path):
    """Every study since the base-config digest (f08fb45, before the reproduction studies) stores it; one stored
    without it (an older version) cannot prove its base config unchanged: refused like a changed base, one line.
    tests/integration/test_old_artifacts.py resumes a study written before the package layout."""
    from harness.study.study import create_or_load_study

    spec = load_spec(spec_file(tmp_path))
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = create_or_load_study(spec, "s", storage)
    old = {k: v for k, v in spec.fingerprint().items() if k != "base_config"}
    study.set_user_attr("fingerprint", old)  # what a version before the digest stored
    with pytest.raises(HarnessError) as e:
        create_or_load_study(spec, "s", storage)
    assert "exists with a different base config content" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_one_worker_samples_reproducibly_from_sampler_seed(tmp_path, sampler):
    """Worker 0 (`--workers 1`) draws from sampler_seed + the trials already in the study: the same spec gives
    the same points, a resumed study does not draw its first points again, parallel workers draw their own."""
    import optuna

    from harness.study.study import make_sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = load_spec(
        spec_file(
            tmp_path,
            sampler=sampler,
            n_trials=4,
            sampler_seed=7,
            space={"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        )
    )
    assert spec.sampler_seed == 7

    def draws(worker: int, done: int = 0) -> list[float]:
        study = optuna.create_study(sampler=make_sampler(spec, worker, done))
        study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-2, log=True), n_trials=4)
        return [t.params["lr"] for t in study.trials]

    first = draws(0)
    assert draws(0) == first
    assert draws(0, done=4) != first  # resumed after 4 trials: fresh points
    assert draws(1) != first and draws(1) != draws(2)


def test_keys_added_at_their_default_leave_the_base_config_digest_as_it_was(tmp_path):
    """A study fingerprints its base config's resolved content; a key added later (DIGEST_NEUTRAL_AT_DEFAULT) at
    its default must not change that digest, or every study created before it would refuse to resume."""
    import hashlib
    import json

    from harness.config import DIGEST_NEUTRAL_AT_DEFAULT, to_dict
    from harness.experiment import load_config
    from harness.study.spec import _config_digest

    base = tmp_path / "base.yaml"
    base.write_text("model: {arch: luong, score: general}\n")
    doc = to_dict(load_config(base))
    for dotted in DIGEST_NEUTRAL_AT_DEFAULT:  # the content as it was before those keys existed
        section, key = dotted.split(".")
        del doc[section][key]
    before = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert _config_digest(base) == before
    changed = tmp_path / "gru.yaml"
    changed.write_text("model: {arch: luong, score: general, rnn_cell: gru}\n")
    assert _config_digest(changed) != before  # set away from its default, the key counts


def _finished(study, score: str, reason: str, config: dict) -> None:
    import optuna

    dist = optuna.distributions.CategoricalDistribution
    study.add_trial(
        optuna.trial.create_trial(
            params={"model.score": score, "seed": 1},
            distributions={"model.score": dist(["dot", "general"]), "seed": dist([1])},
            value=1.0,
            user_attrs={"seed": 1, "metrics": {"stop_reason": reason}, "config": config},
        )
    )


def test_only_trials_stopped_by_a_budget_that_grew_are_continued(tmp_path):
    """enqueue_extensions: a trial its budget stopped is queued again when the spec's budget for it is larger now,
    and only where its last checkpoint is there; one the stopping rule stopped, or whose budget did not grow, not."""
    import optuna

    from harness.study.study import enqueue_extensions

    spec = load_spec(spec_file(tmp_path, seeds=[1], overrides={"train.max_epochs": 6, "train.max_steps": -1}))
    study = optuna.create_study(direction="maximize")
    trials = tmp_path / "trials"
    _finished(study, "dot", "max_epochs", {"train.max_epochs": 3})  # 0: continued
    _finished(study, "general", "early_stopping", {"train.max_epochs": 3})  # 1: the rule stopped it
    _finished(study, "dot", "max_epochs", {"train.max_epochs": 6})  # 2: the budget is the same
    _finished(study, "general", "max_epochs", {"train.max_epochs": 3})  # 3: no checkpoint
    (trials / "0" / "checkpoints").mkdir(parents=True)
    (trials / "0" / "checkpoints" / "last.ckpt").write_bytes(b"")
    lines = enqueue_extensions(spec, study, trials)
    assert lines[0] == "trial 0 stopped at train.max_epochs=3: queued to continue under train.max_epochs=6"
    assert lines[1].startswith("trial 3 stopped at train.max_epochs=3 (now 6) is not continued: ")
    assert str(trials / "3" / "checkpoints" / "last.ckpt") in lines[1] and len(lines) == 2
    (queued,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert queued.user_attrs["extends"] == 0 and queued.user_attrs["resume_from"] == 0
    assert queued.system_attrs["fixed_params"] == {"model.score": "dot", "seed": 1}
    assert enqueue_extensions(spec, study, trials) == lines[1:]  # trial 0 is queued already

    lower = load_spec(spec_file(tmp_path, seeds=[1], overrides={"train.max_epochs": 2, "train.max_steps": -1}))
    fresh = optuna.create_study(direction="maximize")
    _finished(fresh, "dot", "max_epochs", {"train.max_epochs": 3})
    assert enqueue_extensions(lower, fresh, trials) == []


def test_a_retried_trial_resumes_from_the_latest_failed_attempt(tmp_path):
    """A copy that Optuna's RetryFailedTrialCallback makes of a dead trial inherits the dead trial's user attrs
    (its resume_from names the attempt before it) and its retried_trial_number is the first of the chain: the copy
    must continue the dead trial's own partial directory, for a re-queued trial and for an extension alike."""
    import optuna
    import torch

    from harness.study.objective import Context, Objective

    spec = load_spec(spec_file(tmp_path, seeds=[1]))
    trials = tmp_path / "reports" / "s" / "trials"
    for n, step in ((1, 7), (2, 11)):  # trial 0's partial was taken over by 1, 1's by 2; 2 died at step 11
        (trials / f"{n}.partial" / "checkpoints").mkdir(parents=True)
        ckpt = {"harness": {}, "state_dict": {}, "global_step": step}
        torch.save(ckpt, trials / f"{n}.partial" / "checkpoints" / "last.ckpt")
    ctx = Context(str(spec.path), [], None, "s", "sqlite://", str(tmp_path / "reports"))
    for extra in ({}, {"extends": 0}):
        study = optuna.create_study(direction="maximize")
        study.enqueue_trial({"model.score": "dot", "seed": 1}, user_attrs={"resume_from": 1, **extra})
        trial = study.ask()
        storage = study._storage
        storage.set_trial_system_attr(trial._trial_id, "failed_trial", 0)  # as the callback writes them
        storage.set_trial_system_attr(trial._trial_id, "retry_history", [0, 2])
        out = trials / str(3 + bool(extra))
        assert Objective(spec, ctx, study).resume_from(trial, out)
        assert study.trials[-1].user_attrs["resumed_from"] == {"trial": 2, "step": 11}
        assert (out.parent / f"{out.name}.partial" / "checkpoints" / "last.ckpt").is_file()
        (out.parent / f"{out.name}.partial").rename(trials / "2.partial")  # (put it back for the second case)


def test_a_running_trial_is_failed_when_its_worker_pid_belongs_to_a_later_process(tmp_path):
    """Journal storages have no heartbeat: a RUNNING trial is failed when its worker ("host:pid") is gone. A machine
    that replaced the study's one (same host name, journal restored from results/) hands out the same pids again,
    and pids are reused on one machine too: a live process with the pid that started after the trial is not its
    worker, and the trial is failed; the live worker that started before its trial keeps it."""
    import datetime
    import os
    import socket
    import subprocess
    import sys

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from harness.study.study import fail_dead_local_trials

    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(tmp_path / "s.journal"))))
    host, now = socket.gethostname(), datetime.datetime.now()
    later = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        workers = {
            "reused": (f"{host}:{later.pid}", now - datetime.timedelta(hours=1)),  # started an hour after the trial
            "live": (f"{host}:{os.getpid()}", now),  # this process started before the trial
            "gone": (f"{host}:{gone.pid}", now),
            "elsewhere": (f"another-{host}:{later.pid}", now - datetime.timedelta(hours=1)),  # not ours to judge
        }
        for name, (worker, started) in workers.items():
            trial = optuna.trial.FrozenTrial(
                number=-1, state=TrialState.RUNNING, value=None, datetime_start=started, datetime_complete=None,
                params={}, distributions={}, user_attrs={"worker": worker, "name": name}, system_attrs={},
                intermediate_values={}, trial_id=-1,
            )  # fmt: skip
            study._storage.create_new_trial(study._study_id, template_trial=trial)
        assert fail_dead_local_trials(study) == 2
        states = {t.user_attrs["name"]: t.state for t in study.get_trials()}
        assert states == {
            "reused": TrialState.FAIL, "live": TrialState.RUNNING, "gone": TrialState.FAIL,
            "elsewhere": TrialState.RUNNING,
        }  # fmt: skip
        assert {t.user_attrs["fail_reason"] for t in study.get_trials(states=(TrialState.FAIL,))} == {
            f"worker {workers['reused'][0]} died",
            f"worker {workers['gone'][0]} died",
        }
    finally:
        later.communicate(b"")

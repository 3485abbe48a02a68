"""`harness sweep` end to end on tiny configs: N workers on SQLite, a journal file and PostgreSQL finish a
study with exactly the requested COMPLETE trials and no grid point twice; a SIGKILLed worker's trial is
retried on the rerun; Ctrl-C leaves a resumable study; TPE repeats seeds and prunes; DDP on CPU (gloo)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from harness.paths import PROJECT_ROOT

from ..postgres_server import PASSWORD

BASE = str(PROJECT_ROOT / "experiments" / "bahdanau2015_synthetic.yaml")
TINY = {
    "train.max_steps": 10,
    "train.val_every": 5,
    "train.threads": 1,
    "data.synthetic.train_size": 100,
    "data.synthetic.val_size": 20,
    "data.synthetic.test_size": 20,
    "data.synthetic.max_len": 8,
    "model.hidden_size": 8,
    "model.emb_size": 8,
    "tracking.wandb.mode": "disabled",
}


def write_spec(tmp_path: Path, name: str = "tiny.yaml", **keys) -> Path:
    spec = {
        "base": BASE,
        "overrides": dict(TINY),
        "space": {"model.score": ["dot", "general"]},
        "sampler": "grid",
        "seeds": [1, 2],
    }
    over = keys.pop("extra_overrides", {})
    spec["overrides"].update(over)
    spec.update(keys)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep_cmd(spec: Path, tmp_path: Path, study: str, *args: str, overrides: tuple = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness.cli",
        "sweep",
        str(spec),
        *overrides,
        "--study",
        study,
        "--reports",
        str(tmp_path / "reports"),
        *args,
    ]


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=PROJECT_ROOT)
    except subprocess.TimeoutExpired as e:  # say where it stopped: the sweep's own progress lines
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        pytest.fail(f"timed out after {timeout} s\n--- stdout (tail)\n{out[-4000:]}\n--- stderr (tail)\n{err[-4000:]}")


def load(study: str, url: str):
    import optuna

    from harness.storage import open_storage

    return optuna.load_study(study_name=study, storage=open_storage(url))


def check_grid_study(study, n: int) -> None:
    from optuna.trial import TrialState

    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == n, [(t.number, t.state, t.user_attrs.get("fail_reason")) for t in study.trials]
    points = [(t.params["model.score"], t.params["seed"]) for t in complete]
    assert len(set(points)) == n, points  # no grid point twice
    for t in complete:
        assert Path(t.user_attrs["run_dir"]).is_dir()
        assert (Path(t.user_attrs["run_dir"]) / "metrics.json").is_file()
        assert t.user_attrs["metrics"]["bleu"] == t.value
        assert t.user_attrs["metrics"]["by_length"]
        assert t.user_attrs["config"]["model.score"] == t.params["model.score"]
        assert t.user_attrs["config"]["tracking.wandb.group"] == study.study_name
        assert t.user_attrs["config"]["tracking.wandb.job_type"] == "trial"
        assert t.user_attrs["seed"] == t.params["seed"] == t.user_attrs["config"]["seed"]


@pytest.mark.slow
def test_four_workers_sqlite(tmp_path):
    spec = write_spec(tmp_path)
    r = run(sweep_cmd(spec, tmp_path, "sq", "--workers", "4", "--quiet"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "4 complete" in r.stdout
    check_grid_study(load("sq", f"sqlite:///{tmp_path / 'reports' / 'sq' / 'study.db'}"), 4)
    # a second run finds nothing missing and runs nothing
    r = run(sweep_cmd(spec, tmp_path, "sq", "--workers", "1", "--quiet"))
    assert r.returncode == 0, r.stderr[-3000:]
    study = load("sq", f"sqlite:///{tmp_path / 'reports' / 'sq' / 'study.db'}")
    assert len(study.trials) == 4


@pytest.mark.slow
def test_four_workers_journal(tmp_path):
    spec = write_spec(tmp_path)
    url = f"journal://{tmp_path / 'journal.log'}"
    r = run(sweep_cmd(spec, tmp_path, "jr", "--workers", "4", "--storage", url, "--quiet"))
    assert r.returncode == 0, r.stderr[-3000:]
    check_grid_study(load("jr", url), 4)


@pytest.mark.slow
def test_four_workers_postgres(tmp_path, postgres_url):
    spec = write_spec(tmp_path)
    r = run(sweep_cmd(spec, tmp_path, "pg", "--workers", "4", "--storage", postgres_url, "--quiet"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert PASSWORD not in r.stdout + r.stderr
    check_grid_study(load("pg", postgres_url), 4)
    # the report reads the same URL (the installed driver, psycopg2 here) and never shows its password
    out = tmp_path / "pg-report"
    report = ["report", "pg", "--storage", postgres_url, "--output", str(out), "--bootstrap", "20"]
    r = run([sys.executable, "-m", "harness.cli", *report])
    assert r.returncode == 0, r.stderr[-3000:]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "4 completed trials" in page and PASSWORD not in page + r.stdout + r.stderr


def _wait_running(url: str, study: str, timeout: float = 60) -> None:
    import optuna
    from optuna.trial import TrialState

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            s = optuna.load_study(study_name=study, storage=url)
            running = s.get_trials(states=(TrialState.RUNNING,))
            if running and running[0].user_attrs.get("admitted"):
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise AssertionError("no trial started")


def _wait_until_stale(url: str, study: str, heartbeat: float = 1.0, timeout: float = 60) -> None:
    """Until no trial of the study is RUNNING with a live heartbeat: each RUNNING trial's last heartbeat is older
    than the grace period (3 x `heartbeat`), so the rerun's fail_stale_trials re-queues it."""
    import optuna
    from optuna.trial import TrialState

    from harness.storage import open_storage

    storage = open_storage(url, heartbeat)
    deadline = time.time() + timeout
    while time.time() < deadline:
        study_ = optuna.load_study(study_name=study, storage=storage)
        running = {t._trial_id for t in study_.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        if running <= set(storage._get_stale_trial_ids(study_._study_id)):
            return
        time.sleep(0.2)
    raise AssertionError(f"a trial of study {study} still has a live heartbeat after {timeout} s")


def _wait_training(trials: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until some trial is inside its training loop: Lightning's CSV logger has flushed logs/metrics.csv, which it
    does after the first 100 optimizer steps."""
    deadline = time.time() + timeout
    while not list(trials.glob("*.partial/logs/metrics.csv")):
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended (status {proc.returncode}) before any trial trained 100 steps")
        if time.time() > deadline:
            raise AssertionError(f"no trial trained 100 steps within {timeout} s")
        time.sleep(0.05)


def _start_in_own_group(cmd: list[str], sigint=signal.SIG_DFL) -> subprocess.Popen:
    """A sweep in its own process group (signals go to it alone), with SIGINT at its default: a test run started
    in the background by a shell (CI, `make test &`) ignores SIGINT, and so would the sweep (Python keeps an
    inherited "ignore"); start it as a shell's foreground command would (or, sigint=SIG_IGN, as a background one)."""
    return subprocess.Popen(
        cmd,
        cwd=PROJECT_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "how",
    [
        "sigkill",
        "sigint",  # a Ctrl-C that Python drops inside a GC callback still stops it (tests/unit/test_sweep_interrupt.py)
    ],
)
def test_killed_sweep_resumes_to_exact_count(tmp_path, how):
    """SIGKILL: the worker's RUNNING trial goes stale (heartbeat), is failed and re-queued with the same
    parameters on the rerun. Ctrl-C: the trial is failed at once and the rerun re-queues its grid point."""
    from optuna.trial import TrialState

    spec = write_spec(tmp_path, seeds=[1], extra_overrides={"train.max_steps": 400, "train.val_every": 200})
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    cmd = sweep_cmd(spec, tmp_path, "k", "--storage", url, "--heartbeat", "1", "--quiet")
    proc = _start_in_own_group(cmd)
    try:
        _wait_running(url, "k")
        os.killpg(proc.pid, signal.SIGKILL if how == "sigkill" else signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if how == "sigint":
        assert proc.returncode == 130, err.decode()[-2000:]
        assert "resume" in err.decode()
    study = load("k", url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) < 2
    _wait_until_stale(url, "k")  # SIGKILL: the killed worker's trial goes stale after the heartbeat grace period
    # the rerun may change what is not in the study's fingerprint: shorter trials keep the test fast
    fast = ("train.max_steps=10", "train.val_every=5")
    r = run(sweep_cmd(spec, tmp_path, "k", "--storage", url, "--heartbeat", "1", "--quiet", overrides=fast))
    assert r.returncode == 0, r.stderr[-3000:]
    study = load("k", url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 2
    assert sorted(t.params["model.score"] for t in complete) == ["dot", "general"]
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1  # the killed trial, kept in the study as FAIL


@pytest.mark.slow
def test_interrupted_workers_stop_the_sweep_with_status_130_when_the_parent_ignores_sigint(tmp_path):
    """A sweep started in the background by a script ignores SIGINT (an inherited "ignore"); its workers install
    their own handler. `kill -INT -- -GROUP` then stops the workers only: the sweep used to report "N missing ...
    rerun" with status 1, so a chain of studies that stops on 130 went on to the next one. It is an interruption."""
    from optuna.trial import TrialState

    spec = write_spec(tmp_path, seeds=[1], extra_overrides={"train.max_steps": 400, "train.val_every": 200})
    url = f"sqlite:///{tmp_path / 'ig.db'}"
    cmd = sweep_cmd(spec, tmp_path, "ig", "--storage", url, "--workers", "2", "--quiet")
    proc = _start_in_own_group(cmd, sigint=signal.SIG_IGN)
    try:
        _wait_running(url, "ig")
        _wait_training(tmp_path / "reports" / "ig" / "trials", proc)
        os.killpg(proc.pid, signal.SIGINT)  # the parent ignores it; the workers stop
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "interrupted: study ig is kept" in err.decode() and "missing" not in err.decode()
    study = load("ig", url)
    assert all(t.state == TrialState.FAIL for t in study.trials), [t.state for t in study.trials]


@pytest.mark.slow
def test_sigint_to_the_parent_alone_stops_every_worker(tmp_path):
    """`kill -INT <sweep>` with no terminal (a scheduler, a script): the parent passes the interrupt on to its
    workers, each fails its running trial as interrupted and exits; no trial is left RUNNING."""
    from optuna.trial import TrialState

    spec = write_spec(tmp_path, seeds=[1], extra_overrides={"train.max_steps": 400, "train.val_every": 200})
    url = f"sqlite:///{tmp_path / 'pi.db'}"
    cmd = sweep_cmd(spec, tmp_path, "pi", "--storage", url, "--workers", "2", "--quiet")
    proc = _start_in_own_group(cmd)
    try:
        _wait_running(url, "pi")
        _wait_training(tmp_path / "reports" / "pi" / "trials", proc)
        status = Path(f"/proc/{proc.pid}/status")
        sig = [x for x in status.read_text().splitlines() if x.startswith("Sig")] if status.exists() else []
        os.kill(proc.pid, signal.SIGINT)  # the parent only
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, f"{sig}\n{err.decode()[-2000:]}"
    study = load("pi", url)
    states = [t.state for t in study.trials]
    assert states and all(s == TrialState.FAIL for s in states), states  # none RUNNING, none run to the end
    assert all(t.user_attrs.get("fail_reason") == "interrupted" for t in study.trials)


@pytest.mark.slow
def test_tpe_repeats_seeds_and_prunes(tmp_path):
    """TPE over a float and a categorical with 2 seeds: each sampled configuration runs with both seeds;
    the median pruner may prune, and the study still ends with exactly n_trials COMPLETE trials."""
    from optuna.trial import TrialState

    spec = write_spec(
        tmp_path,
        space={
            "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "model.score": ["dot", "general"],
        },
        sampler="tpe",
        n_trials=4,
        pruner="median",
        seeds=[1, 2],
        extra_overrides={"train.max_steps": 12, "train.val_every": 4},
    )
    r = run(sweep_cmd(spec, tmp_path, "tpe", "--workers", "1"), timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    study = load("tpe", f"sqlite:///{tmp_path / 'reports' / 'tpe' / 'study.db'}")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    # (a repeat queued when the budget was reached stays WAITING, without params)
    repeats = [t for t in study.trials if "repeat_of" in t.user_attrs and t.state != TrialState.WAITING]
    assert repeats and all(t.user_attrs["seed"] == 2 for t in repeats)
    for t in repeats:
        original = study.trials[t.user_attrs["repeat_of"]]
        assert original.params == t.params and original.user_attrs["seed"] == 1
    assert all(len(t.intermediate_values) >= 2 for t in complete)  # val_bleu reported at each validation


def test_a_study_that_only_prunes_stops_at_max_pruned(tmp_path):
    """Every sampled learning rate diverges (pruned): the workers stop after max_pruned trials with a one-line
    error naming the key, instead of sampling for ever."""
    spec = write_spec(
        tmp_path,
        space={"train.lr": {"type": "float", "low": 1e29, "high": 1e30, "log": True}},
        sampler="random",
        n_trials=2,
        max_pruned=3,
        seeds=[1],
        extra_overrides={"train.grad_clip": 0, "train.max_steps": 4, "train.val_every": 4},
    )
    r = run(sweep_cmd(spec, tmp_path, "dv", "--workers", "1"), timeout=120)
    assert r.returncode == 1, r.stderr[-3000:]
    err = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "0/2 complete after 3 pruned trials (max_pruned 3" in err[0], r.stderr[-3000:]
    study = load("dv", f"sqlite:///{tmp_path / 'reports' / 'dv' / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["PRUNED"] * 3
    assert all("diverged" in t.user_attrs["fail_reason"] for t in study.trials)


@pytest.mark.slow
def test_slurm_workers_with_local_executor(tmp_path):
    spec = write_spec(tmp_path, seeds=[1])
    r = run(
        sweep_cmd(spec, tmp_path, "sl", "--workers", "2", "--slurm", "--slurm-cluster", "local", "--quiet"),
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    check_grid_study(load("sl", f"sqlite:///{tmp_path / 'reports' / 'sl' / 'study.db'}"), 2)


@pytest.mark.slow
def test_ddp_on_cpu_two_processes(tmp_path):
    spec = write_spec(
        tmp_path,
        space={"model.score": ["general"]},
        seeds=[1],
        extra_overrides={"train.accelerator": "cpu", "train.devices": 2, "train.strategy": "ddp_spawn"},
    )
    r = run(sweep_cmd(spec, tmp_path, "ddp", "--quiet"), timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    study = load("ddp", f"sqlite:///{tmp_path / 'reports' / 'ddp' / 'study.db'}")
    (t,) = study.trials
    assert t.state.name == "COMPLETE"
    assert t.user_attrs["config"]["train.devices"] == 2
    run_dir = Path(t.user_attrs["run_dir"])
    # the launcher reports rank 0's loop state (it trained in spawned processes; the launcher's own is 0)
    m = json.loads((run_dir / "metrics.json").read_text())
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert m["steps"] == t.user_attrs["config"]["train.max_steps"] == last["global_step"] > 0
    assert last["optimizer_states"] and m["train_tokens_per_sec"] > 0
    with open(run_dir / "logs" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r for r in rows if r.get("train_loss")] and max(int(r["step"]) for r in rows if r.get("val_bleu")) > 0


def test_bad_spec_fails_before_any_trial(tmp_path):
    spec = write_spec(tmp_path, space={"model.scor": ["dot"]})
    r = run(sweep_cmd(spec, tmp_path, "bad"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "model.scor" in r.stderr and str(spec) in r.stderr
    assert not (tmp_path / "reports" / "bad").exists()


def _checkpoint_step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # not there yet, or being written
        return -1


@pytest.mark.slow
def test_a_killed_trial_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(tmp_path):
    """A worker SIGKILLed mid-trial (pre-emption, a lost machine): the rerun retries the trial from the killed
    trial's last.ckpt, not from step 0, and its final metrics equal those of a trial that was never interrupted."""
    from optuna.trial import TrialState

    long = {"train.max_steps": 100, "train.val_every": 20}
    spec = write_spec(tmp_path, space={"model.score": ["dot"]}, seeds=[1], extra_overrides=long)
    ref_url, url = f"journal:///{tmp_path / 'ref.journal'}", f"journal:///{tmp_path / 'k.journal'}"
    r = run(sweep_cmd(spec, tmp_path / "ref", "ref", "--storage", ref_url, "--quiet"))
    assert r.returncode == 0, r.stderr[-3000:]
    proc = _start_in_own_group(sweep_cmd(spec, tmp_path, "k", "--storage", url, "--quiet"))
    last = tmp_path / "reports" / "k" / "trials" / "0.partial" / "checkpoints" / "last.ckpt"
    try:
        deadline = time.time() + 120
        while _checkpoint_step(last) < 40 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        killed_at = _checkpoint_step(last)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert 40 <= killed_at < 100, f"no checkpoint to resume from in time (step {killed_at})"
    r = run(sweep_cmd(spec, tmp_path, "k", "--storage", url, "--quiet"))
    assert r.returncode == 0, r.stderr[-3000:]
    (done,) = load("k", url).get_trials(states=(TrialState.COMPLETE,))
    assert done.user_attrs["resumed_from"]["trial"] == 0
    assert done.user_attrs["resumed_from"]["step"] >= killed_at
    (ref,) = load("ref", ref_url).get_trials(states=(TrialState.COMPLETE,))
    mine, theirs = Path(done.user_attrs["run_dir"]), Path(ref.user_attrs["run_dir"])
    a, b = json.loads((mine / "metrics.json").read_text()), json.loads((theirs / "metrics.json").read_text())
    for key in ("bleu", "chrf", "val_ppl", "aer", "val_bleu_best", "best_step", "steps", "stop_reason"):
        assert a[key] == b[key], key
    assert (mine / "test.hyp").read_text() == (theirs / "test.hyp").read_text()
    with open(mine / "logs" / "metrics.csv") as f, open(theirs / "logs" / "metrics.csv") as g:
        curve = [(r["step"], r["val_ppl"]) for r in csv.DictReader(f) if r.get("val_ppl")]
        assert curve == [(r["step"], r["val_ppl"]) for r in csv.DictReader(g) if r.get("val_ppl")]
    assert not (tmp_path / "reports" / "k" / "trials" / "0.partial").exists()  # moved, not copied


@pytest.mark.slow
def test_a_budget_stopped_trial_continues_under_a_raised_budget(tmp_path):
    """A trial stopped by its epoch budget, rerun after the budget was raised: the rerun continues it from its last
    checkpoint as a new trial (the stopped trial and its directory stay), which ends as a trial trained under the
    larger budget from the start does; reports show the continuation in the stopped trial's place, and a third
    run has nothing left to do."""
    from optuna.trial import TrialState

    from harness.report.load import continuations, expand_run_dirs, from_study
    from harness.study.summary import run_dirs_of

    # 100 sentences in batches of 32: 4 steps an epoch; validations at epoch ends (every 4 steps), patience off
    budget = {"train.max_steps": -1, "train.val_every": 4, "train.early_stopping": 0}
    spec = write_spec(tmp_path, space={"model.score": ["dot"]}, seeds=[1], extra_overrides=budget)
    ref_url, url = f"journal:///{tmp_path / 'ref.journal'}", f"journal:///{tmp_path / 'x.journal'}"
    six = ("train.max_epochs=6",)
    r = run(sweep_cmd(spec, tmp_path / "ref", "ref", "--storage", ref_url, "--quiet", overrides=six))
    assert r.returncode == 0, r.stderr[-3000:]
    r = run(sweep_cmd(spec, tmp_path, "x", "--storage", url, "--quiet", overrides=("train.max_epochs=3",)))
    assert r.returncode == 0, r.stderr[-3000:]
    trials = tmp_path / "reports" / "x" / "trials"
    stopped = json.loads((trials / "0" / "metrics.json").read_text())
    assert (stopped["stop_reason"], stopped["steps"], stopped["converged"]) == ("max_epochs", 12, False)
    before = {p.relative_to(trials / "0"): p.read_bytes() for p in (trials / "0").rglob("*") if p.is_file()}

    r = run(sweep_cmd(spec, tmp_path, "x", "--storage", url, "--quiet", overrides=("train.max_epochs=6",)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trial 0 stopped at train.max_epochs=3: queued to continue under train.max_epochs=6" in r.stdout
    first, second = load("x", url).get_trials(states=(TrialState.COMPLETE,))
    assert first.number == 0 and second.user_attrs["extends"] == 0
    assert second.user_attrs["resumed_from"] == {"trial": 0, "step": 12, "extends": True}
    after = {p.relative_to(trials / "0"): p.read_bytes() for p in (trials / "0").rglob("*") if p.is_file()}
    assert after == before  # the stopped trial is left as it was
    note = {"trial": 0, "step": 12, "stop_reason": "max_epochs", "budget": "train.max_epochs", "was": 3, "now": 6}
    assert continuations(run_dirs_of(tmp_path / "reports" / "x", superseded=True)) == [(trials / "1", note)]
    assert not (trials / "1" / "wandb").exists() and not list(trials.glob("*.copying"))

    (ref,) = load("ref", ref_url).get_trials(states=(TrialState.COMPLETE,))
    mine, theirs = trials / "1", Path(ref.user_attrs["run_dir"])
    a, b = json.loads((mine / "metrics.json").read_text()), json.loads((theirs / "metrics.json").read_text())
    for key in ("bleu", "chrf", "val_ppl", "aer", "val_bleu_best", "best_step", "steps", "epochs", "stop_reason"):
        assert a[key] == b[key], key
    assert (mine / "test.hyp").read_text() == (theirs / "test.hyp").read_text()
    with open(mine / "logs" / "metrics.csv") as f, open(theirs / "logs" / "metrics.csv") as g:
        curve = [(r["step"], r["val_ppl"]) for r in csv.DictReader(f) if r.get("val_ppl")]
        assert curve == [(r["step"], r["val_ppl"]) for r in csv.DictReader(g) if r.get("val_ppl")]

    # reports: the continuation in the stopped trial's place
    assert [d.name for d in run_dirs_of(tmp_path / "reports" / "x")] == ["1"]
    assert [d.name for d in run_dirs_of(tmp_path / "reports" / "x", superseded=True)] == ["0", "1"]
    src = from_study("x", url)
    assert [run.trial for run in src.runs] == [1]
    assert any("trial 0: continued under a raised budget as trial 1" in n for n in src.notes)
    assert expand_run_dirs([trials]) == [trials / "1"]  # `harness report .../trials`
    assert expand_run_dirs([trials / "0"]) == [trials / "0"]  # (named on its own, it is reported)

    r = run(sweep_cmd(spec, tmp_path, "x", "--storage", url, "--quiet", overrides=("train.max_epochs=6",)))
    assert r.returncode == 0 and "to continue" not in r.stdout, r.stdout + r.stderr[-3000:]
    assert "2 complete (1 of them continued under a raised budget by another)" in r.stdout
    assert len(load("x", url).get_trials()) == 2

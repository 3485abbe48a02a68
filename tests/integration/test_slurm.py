"""`harness sweep --slurm` on a real single-node SLURM cluster (tests/slurm_cluster.py) with PostgreSQL storage:
two worker jobs finish a tiny grid with exactly its COMPLETE trials and the sbatch script `--dry-run` printed;
a pre-empted job (SIGTERM while training) and a killed one leave a study that the same command finishes; a
job that cannot reach the storage says so in one line of its log, and the submitting command names the log."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness.paths import PROJECT_ROOT

from ..postgres_server import PASSWORD
from .test_sweep import check_grid_study, load, run, sweep_cmd, write_spec

# CPU jobs on the test node; the other --slurm-* options as a real cluster would take them
CPU_JOBS = ("--slurm", "--slurm-gpus-per-node", "0", "--slurm-cpus-per-task", "1", "--slurm-time", "10")


def _running(name: str) -> list[str]:
    r = subprocess.run(
        ["squeue", "--noheader", "--format=%i", f"--name={name}", "--states=RUNNING"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return sorted(r.stdout.split(), key=int)


def _trials(study: str, storage):
    import optuna

    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


def _until(what: str, condition, timeout: float = 60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.mark.slow
def test_two_worker_jobs_finish_the_grid(tmp_path, slurm_cluster, postgres_url):
    import optuna

    from harness.storage import open_storage

    spec = write_spec(tmp_path)  # 2 scores x 2 seeds, 10 steps each
    opts = (
        *CPU_JOBS,
        "--workers",
        "2",
        "--storage",
        postgres_url,
        "--slurm-partition",
        "debug",
        "--slurm-mem",
        "1G",
        "--slurm-arg",
        "comment=harness-test",
    )
    dry = run(sweep_cmd(spec, tmp_path, "grid", *opts, "--dry-run"))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert dry.stdout.startswith("#!/bin/bash") and "nothing was submitted" in dry.stderr
    assert "grid" not in optuna.get_all_study_names(open_storage(postgres_url)) and not (tmp_path / "reports").exists()

    r = run(sweep_cmd(spec, tmp_path, "grid", *opts), timeout=150)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert PASSWORD not in r.stdout + r.stderr
    assert "study grid: 4 complete, 0 pruned, 0 failed" in r.stdout
    folder = tmp_path / "reports" / "grid" / "slurm"
    jobs = re.search(r"submitted 2 workers: (\d+), (\d+) \(logs in (.+)\)", r.stdout)
    assert jobs and Path(jobs[3]) == folder, r.stdout
    ids = [jobs[1], jobs[2]]
    # the controller's records: two jobs of this sweep, run to completion with the options asked for
    records = slurm_cluster.wait_jobcomp(ids)
    assert sorted(records) == sorted(ids), slurm_cluster.jobcomp()
    for rec in records.values():
        assert rec["Name"] == "sweep-grid" and rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", rec
        assert rec["Partition"] == "debug" and rec["TimeLimit"] == "10" and rec["ProcCnt"] == "1", rec
        assert "mem=1G" in rec["Tres"] and rec["NodeList"] == slurm_cluster.node, rec
    # what was submitted is what --dry-run printed; the jobs' logs are where the submitting command said
    for i in ids:
        assert (folder / f"{i}_submission.sh").read_text() == dry.stdout
    assert "#SBATCH --comment=harness-test" in dry.stdout and "--gpus-per-node" not in dry.stdout
    logs = "".join((folder / f"{i}_0_log.out").read_text() for i in ids)
    study = load("grid", postgres_url)
    check_grid_study(study, 4)
    for t in study.trials:  # each trial's line is in the log of the job that ran it
        assert re.search(rf"\[worker [12]\] trial {t.number} COMPLETE ", logs), logs[-3000:]


@pytest.mark.slow
def test_preempted_and_killed_jobs_resume_to_the_exact_count(tmp_path, slurm_cluster, postgres_url):
    """Job A gets a pre-emption notice (scancel --signal=TERM) while its trial trains: the trial is failed as
    interrupted and the job ends with a result. Job B's worker is killed (SIGKILL): its trial stays RUNNING until
    its heartbeat goes stale, and the submitting command (sacct cannot help here: no accounting storage) sees B
    leave the queue without a result. The same command run again retries both trials and finishes the study."""
    from optuna.trial import TrialState

    from harness.storage import open_storage

    if slurm_cluster.cpus < 2:
        pytest.skip(f"two jobs at once need 2 CPUs; the node {slurm_cluster.node} has {slurm_cluster.cpus}")
    storage = open_storage(postgres_url)
    spec = write_spec(tmp_path, seeds=[1], extra_overrides={"train.max_steps": 5000, "train.val_every": 2500})
    opts = (*CPU_JOBS, "--workers", "2", "--storage", postgres_url, "--heartbeat", "1")
    sweep = subprocess.Popen(
        sweep_cmd(spec, tmp_path, "pre", *opts),
        cwd=PROJECT_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        a, b = _until("two running worker jobs", lambda: (ids := _running("sweep-pre")) and len(ids) == 2 and ids)

        def training() -> bool:
            trials = _trials("pre", storage)
            return sum(t.state == TrialState.RUNNING and bool(t.user_attrs.get("admitted")) for t in trials) == 2

        _until("both trials admitted", training)

        def interrupted():
            # SLURM's pre-emption notice to job A's task; one before training starts is only logged (submitit)
            subprocess.run(["scancel", "--signal=TERM", a], check=True, timeout=30)
            deadline = time.time() + 1.0
            while time.time() < deadline:
                failed = [t for t in _trials("pre", storage) if t.state == TrialState.FAIL]
                if failed:
                    return failed
                time.sleep(0.2)
            return None

        (failed,) = _until("job A's trial failed", interrupted)
        assert failed.user_attrs["fail_reason"] == "interrupted"
        # job B's worker dies at once, as under the OOM killer (scancel would send SIGTERM first, as above)
        (other,) = [t for t in _trials("pre", storage) if t.state == TrialState.RUNNING]
        os.kill(int(other.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        out, err = sweep.communicate(timeout=90)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.communicate()
    folder = tmp_path / "reports" / "pre" / "slurm"
    assert sweep.returncode == 1, out[-2000:] + err[-3000:]
    assert f"worker job {a} was interrupted (pre-empted)" in err and f"see {folder / f'{a}_0_log.err'}" in err, err
    assert f"error: worker job {b} ended without a result" in err and f"see {folder / f'{b}_0_log.err'}" in err, err
    assert "study pre has 0/2 done" in err and "rerun the same command" in err
    assert "interrupted: the running trial is failed" in (folder / f"{a}_0_log.err").read_text()
    states = {t.state for t in _trials("pre", storage)}
    assert states == {TrialState.FAIL, TrialState.RUNNING}, states  # B's trial: RUNNING, its heartbeat stopped
    records = slurm_cluster.wait_jobcomp([a, b])
    assert records[a]["JobState"] == "COMPLETED" and records[b]["JobState"] != "COMPLETED", records

    # the same command (shorter trials: not part of the study's fingerprint) retries both and finishes
    fast = ("train.max_steps=10", "train.val_every=5")
    r = run(sweep_cmd(spec, tmp_path, "pre", *opts, overrides=fast), timeout=150)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    study = load("pre", postgres_url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.params["model.score"] for t in complete) == ["dot", "general"]
    fail = study.get_trials(states=(TrialState.FAIL,))
    assert len(fail) == 2 and not study.get_trials(states=(TrialState.RUNNING,)), [t.state for t in study.trials]


def test_a_job_that_cannot_reach_the_storage_says_so_in_its_log(tmp_path, slurm_cluster, postgres_url, monkeypatch):
    """The storage URL leaves the port to libpq's PGPORT: right where the command runs, a closed port in the job
    (sbatch --export through --slurm-arg), as on a compute node that cannot reach a login node's database."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    monkeypatch.setenv("PGPORT", str(url.port))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    storage = postgres_url.replace(f"@127.0.0.1:{url.port}/", "@127.0.0.1/")
    assert make_url(storage).port is None
    spec = write_spec(tmp_path, seeds=[1])
    job_env = f"export=ALL,PGPORT={closed}"
    r = run(sweep_cmd(spec, tmp_path, "far", *CPU_JOBS, "--storage", storage, "--slurm-arg", job_env), timeout=120)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-3000:]
    (job,) = re.search(r"submitted 1 workers: (\d+)", r.stdout).groups()
    log = tmp_path / "reports" / "far" / "slurm" / f"{job}_0_log.err"
    line = next(x for x in r.stderr.splitlines() if x.startswith(f"error: worker job {job}"))
    assert line.endswith(f"; see {log}") and "cannot be opened" in line, r.stderr
    errors = [x for x in log.read_text().splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "storage postgresql://postgres:***@127.0.0.1/harness_test" in errors[0], errors
    assert f"port {closed} failed" in errors[0] and "Traceback" not in log.read_text()
    assert PASSWORD not in r.stdout + r.stderr + log.read_text()

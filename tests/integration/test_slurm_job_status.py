"""What `harness sweep --slurm` says of each worker job that did not end well, on real jobs of submitit's local
executor (subprocesses: an integration test; tests/unit/test_sweep_slurm.py checks the options and --dry-run)."""

from __future__ import annotations

import sys


def test_each_job_that_did_not_end_well_is_named_with_its_log(tmp_path, capsys):
    """What the submitting command says of a worker job (real jobs of submitit's local executor; a job that left
    the SLURM queue without its result file is the one case made up)."""
    import types

    import submitit

    from harness.study.slurm import slurm_job_status

    def storage_down() -> int:
        print("error: storage postgresql://u:***@db/x: cannot be opened (refused)", file=sys.stderr, flush=True)
        return 2

    def crashed() -> int:
        raise ValueError("bad value 3")

    executor = submitit.AutoExecutor(folder=str(tmp_path), cluster="local")
    jobs = [executor.submit(f) for f in (lambda: 0, lambda: 130, storage_down, crashed)]
    assert [slurm_job_status(j, on_slurm=False) for j in jobs] == [0, 130, 2, 1]
    lost = types.SimpleNamespace(
        job_id="4713", paths=types.SimpleNamespace(stderr=tmp_path / "4713_0_log.err", result_pickle=tmp_path / "no")
    )
    assert slurm_job_status(lost, on_slurm=True) == 1
    interrupted, down, crash, killed = capsys.readouterr().err.splitlines()  # nothing for the job that ended well
    logs = [j.paths.stderr for j in jobs]
    assert interrupted == (
        f"worker job {jobs[1].job_id} was interrupted (pre-empted): its running trial is failed as interrupted; "
        f"see {logs[1]}"
    )
    assert down == (
        f"error: worker job {jobs[2].job_id} stopped (status 2): storage postgresql://u:***@db/x: cannot be opened "
        f"(refused); see {logs[2]}"
    )
    assert crash == f"error: worker job {jobs[3].job_id} failed: ValueError: bad value 3; see {logs[3]}"
    assert killed.startswith("error: worker job 4713 ended without a result (cancelled, killed, out of time or memory")
    assert killed.endswith(f"; see {tmp_path / '4713_0_log.err'}")

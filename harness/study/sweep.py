"""`harness sweep`: an Optuna study from a sweeps/*.yaml spec, run by N worker processes on one storage.

A spec names a base experiment config, overrides applied to every trial, a search space of dotted config
keys, a sampler (grid | tpe | random), the objective(s) read from metrics.json, seeds, a trial budget and a
pruner. The whole spec (every grid point) is validated with harness.experiment.load_config before any trial.

Each trial is one `harness.runs.run.train` into reports/<study>/trials/<number>/; its metrics, run directory,
flattened config and seed are stored as trial user attributes, so the study alone is enough for reports.

Budget: the study ends with exactly `n_trials` COMPLETE trials (grid: every grid point COMPLETE or PRUNED
exactly once). Re-running the same command resumes: only what is missing runs. Optuna does the rest:
GridSampler/TPESampler/RandomSampler, Median/SuccessiveHalving pruners, RDB (SQLite, PostgreSQL) and
journal-file storages, heartbeats with RetryFailedTrialCallback (a killed worker's trial is retried),
MaxTrialsCallback as the stop condition of every worker.

The pieces: spec.py (the spec), storage.py (the storage URL), study.py (the study, its fingerprint and
progress), objective.py (one trial), workers.py (the worker processes), slurm.py (workers as SLURM jobs); this
module is the coordinator that `harness sweep` runs.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.storage import default_storage, is_rdb, mask_url, open_storage
from harness.study.objective import Context
from harness.study.slurm import SlurmOptions, run_slurm, sbatch_script, slurm_folder, slurm_parameters
from harness.study.spec import load_spec
from harness.study.study import (
    create_or_load_study,
    enqueue_extensions,
    enqueue_missing_grid_points,
    fail_dead_local_trials,
    progress,
    summarize,
)
from harness.study.workers import run_subprocesses, run_worker


def sweep(
    spec_path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    study: str | None = None,
    storage: str | None = None,
    workers: int = 1,
    n_trials: int | None = None,
    gpus_per_trial: int = 1,
    heartbeat: float = 10.0,
    reports: str | Path = "reports",
    worker: int = 0,
    quiet: bool = False,
    slurm: SlurmOptions | None = None,
) -> int:
    """`harness sweep SPEC`: create or resume the study, run its missing trials with `workers` processes (or
    SLURM jobs), print the summary; returns the exit status. `worker` > 0: this process is that worker."""
    opts = slurm or SlurmOptions()
    overrides = list(overrides)
    reports = Path(reports).resolve()
    if workers < 1:
        raise HarnessError(f"--workers: expected an integer >= 1, got {workers}")
    if gpus_per_trial < 1:
        raise HarnessError(f"--gpus-per-trial: expected an integer >= 1, got {gpus_per_trial}")
    if n_trials is not None and n_trials < 1:
        raise HarnessError(f"--n-trials: expected an integer >= 1, got {n_trials}")
    if heartbeat <= 0:
        raise HarnessError(f"--heartbeat: expected seconds > 0, got {heartbeat}")
    # everything is validated before any trial (workers trust the coordinator's check of every grid point)
    spec = load_spec(spec_path, overrides, n_trials, check_points=not worker)
    name = study or spec.path.stem
    storage_url = storage or default_storage(reports, name)
    ctx = Context(
        str(Path(spec_path).resolve()),
        overrides,
        n_trials,
        name,
        storage_url,
        str(reports),
        quiet,
        heartbeat,
        gpus_per_trial,
        worker,
    )
    params = slurm_parameters(opts, name, gpus_per_trial)
    if opts.dry_run:  # the spec and the options are checked; the storage is not opened, nothing is submitted
        print(sbatch_script(ctx, params), end="")
        print(
            f"dry run: {workers} job{'s' if workers > 1 else ''} with this script would be submitted "
            f"(logs in {slurm_folder(ctx)}); nothing was submitted",
            file=sys.stderr,
        )
        return 0
    if worker:
        try:
            return run_worker(ctx)
        except KeyboardInterrupt:
            return 130

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = open_storage(storage_url, heartbeat)
    study_ = create_or_load_study(spec, name, opened)
    if is_rdb(opened):
        optuna.storages.fail_stale_trials(study_)  # also re-queues them (RetryFailedTrialCallback)
    else:
        fail_dead_local_trials(study_)
    if spec.sampler == "grid":
        requeued = enqueue_missing_grid_points(spec, study_)
        if requeued and not quiet:
            print(f"re-queued {requeued} grid points whose trials failed", flush=True)
    for line in enqueue_extensions(spec, study_, reports / name / "trials"):
        print(line, flush=True)  # (also with --quiet: a study that trains again after it finished says why)
    before = progress(spec, study_.get_trials(deepcopy=False))
    if not quiet:
        print(
            f"study {name} on {mask_url(storage_url)}: {before.finished}/{spec.n_trials} done, "
            f"{workers} worker{'s' if workers > 1 else ''}",
            flush=True,
        )
    t0 = time.perf_counter()
    interrupted = False
    try:
        if opts.enabled:  # a pre-empted worker job (status 130) is not a stopped sweep: the study says what is missing
            status = run_slurm(ctx, workers, params, opts.cluster)
        elif workers == 1 and gpus_per_trial == 1:
            status = run_worker(dataclasses.replace(ctx, worker=0))
        else:
            status = run_subprocesses(ctx, workers)
            # local workers stop on SIGINT when the sweep is being stopped, also where this process ignores it (a
            # job a script started in the background) and only the workers' own handlers saw it
            interrupted = status == 130
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        print(f"interrupted: study {name} is kept; rerun the same command to resume", file=sys.stderr)
        return 130
    trials = study_.get_trials(deepcopy=False)
    prog = progress(spec, trials)
    print(summarize(spec, study_))
    if not quiet:
        print(f"wall time {time.perf_counter() - t0:.1f} s; trials in {reports / name / 'trials'}", flush=True)
    if prog.gave_up(spec):
        print(
            f"error: study {name} stopped with {prog.finished}/{spec.n_trials} complete after {prog.pruned} "
            f"pruned trials (max_pruned {spec.max_pruned}; each trial's fail_reason says why): set a milder "
            "pruner (pruner: none) or a larger max_pruned in the spec and rerun the same command (a changed "
            "search space needs a new --study)",
            file=sys.stderr,
        )
        return 1
    if prog.finished < spec.n_trials:
        left = spec.n_trials - prog.finished
        print(
            f"error: study {name} has {prog.finished}/{spec.n_trials} done ({left} missing: see the trials' "
            "fail_reason); rerun the same command to retry them",
            file=sys.stderr,
        )
        return 1
    return status

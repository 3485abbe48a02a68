"""`harness sweep --slurm`: the workers as SLURM jobs (submitit), each running run_worker on the same storage.
The --slurm-* options become submitit parameters (each checked, one-line errors); `--dry-run` prints the sbatch
script; the submitting command waits for every job (squeue, not sacct) and names the log of each that did not end
well."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:  # (the command line reads this module's defaults: importing it loads no training code)
    from harness.study.objective import Context

# SLURM worker jobs (submitit). Not accepted through --slurm-arg: the sbatch options with a --slurm-* option of
# their own, and those the harness and submitit set (job name, one task, the logs under reports/STUDY/slurm/ that
# the messages name, submitit's time-limit signal)
SLURM_OPTIONS = {
    "partition": "--slurm-partition",
    "time": "--slurm-time",
    "cpus-per-task": "--slurm-cpus-per-task",
    "gpus-per-node": "--slurm-gpus-per-node",
    "mem": "--slurm-mem",
    "account": "--slurm-account",
    "job-name": None,
    "ntasks-per-node": None,
    "output": None,
    "error": None,
    "open-mode": None,
    "signal": None,
}
SLURM_TIME_MIN = 24 * 60  # default time limit of a worker job
SLURM_POLL_S = 5.0  # seconds between squeue calls while the worker jobs run
SLURM_RESULT_GRACE_S = 10.0  # a job that left the queue: how long its result file may take to appear (NFS)


@dataclass(frozen=True)
class SlurmOptions:
    """The --slurm* options of `harness sweep` as given on the command line (checked by slurm_parameters)."""

    enabled: bool = False  # --slurm
    partition: str | None = None
    time: str | None = None  # minutes
    cpus_per_task: str | None = None
    gpus_per_node: str | None = None
    mem: str | None = None
    account: str | None = None
    args: tuple[str, ...] = ()  # --slurm-arg KEY=VALUE, repeated
    dry_run: bool = False  # print the sbatch script, submit nothing
    cluster: str | None = None  # submitit's executor (hidden option: `local` in the tests)


def slurm_parameters(opts: SlurmOptions, study: str, gpus_per_trial: int = 1) -> dict[str, Any]:
    """submitit AutoExecutor parameters of the worker jobs, from the --slurm-* options (each checked, one-line
    errors). Generic names go to every executor (the local one of the tests too), slurm_* ones to sbatch."""
    given = {
        "--slurm-partition": opts.partition,
        "--slurm-time": opts.time,
        "--slurm-cpus-per-task": opts.cpus_per_task,
        "--slurm-gpus-per-node": opts.gpus_per_node,
        "--slurm-mem": opts.mem,
        "--slurm-account": opts.account,
        "--slurm-arg": list(opts.args) or None,
        "--dry-run": opts.dry_run or None,
    }
    if not opts.enabled:
        for option, value in given.items():
            if value is not None:
                raise HarnessError(f"{option}: only with --slurm (it sets the SLURM worker jobs)")
        return {}

    def count(option: str, raw: str | None, low: int, what: str = "an integer") -> int | None:
        if raw is None:
            return None
        if not re.fullmatch(r"\d+", raw.strip()) or int(raw) < low:
            raise HarnessError(f"{option}: expected {what} >= {low}, got {raw!r}")
        return int(raw)

    def name(option: str, raw: str | None) -> str | None:
        if raw is not None and not re.fullmatch(r"[\w.,:+-]+", raw):
            raise HarnessError(f"{option}: expected a SLURM name (letters, digits, _.,:+-), got {raw!r}")
        return raw

    time_min = count("--slurm-time", opts.time, 1, "minutes, an integer")
    gpus = count("--slurm-gpus-per-node", opts.gpus_per_node, 0)
    mem = opts.mem
    if mem is not None and not re.fullmatch(r"\d+([KMGT]B?)?", mem, flags=re.IGNORECASE):
        raise HarnessError(f"--slurm-mem: expected a size such as 8G, 500M or 0 (all of the node's), got {mem!r}")
    extra: dict[str, str] = {}
    for item in opts.args:
        key, eq, value = item.partition("=")
        key = key.strip().removeprefix("--").replace("_", "-")
        if not eq or not value or not re.fullmatch(r"[a-z][a-z0-9-]*", key):
            raise HarnessError(f"--slurm-arg: expected KEY=VALUE with an sbatch option as KEY (qos=high), got {item!r}")
        if key in SLURM_OPTIONS:
            own = SLURM_OPTIONS[key]
            why = f"use {own}" if own else "set by the harness: the logs go to reports/STUDY/slurm/"
            raise HarnessError(f"--slurm-arg: {key} cannot be set here ({why}), got {item!r}")
        if key in extra:
            raise HarnessError(f"--slurm-arg: {key} given twice, got {item!r}")
        extra[key] = value
    gpus = gpus_per_trial if gpus is None else gpus
    return {
        "name": f"sweep-{study}",
        "timeout_min": SLURM_TIME_MIN if time_min is None else time_min,
        "tasks_per_node": 1,
        "cpus_per_task": count("--slurm-cpus-per-task", opts.cpus_per_task, 1),
        "gpus_per_node": gpus or None,  # 0 (a CPU partition): no GPU request at all
        "slurm_partition": name("--slurm-partition", opts.partition),
        "slurm_mem": mem,
        "slurm_account": name("--slurm-account", opts.account),
        "slurm_additional_parameters": extra or None,
    }


def slurm_folder(ctx: Context) -> Path:
    """Where the worker jobs' sbatch scripts, pickles and logs go (<job id>_0_log.out, <job id>_0_log.err)."""
    return Path(ctx.reports) / ctx.study / "slurm"


def sbatch_script(ctx: Context, params: dict[str, Any]) -> str:
    """The sbatch script submitit writes for each worker job with these parameters (`--dry-run` prints it); the
    jobs differ only in the pickled Context next to it. Built the way SlurmExecutor builds it, without needing
    srun on this machine."""
    import shlex

    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    folder = slurm_folder(ctx)
    renamed = SlurmExecutor._equivalence_dict()  # generic -> sbatch names: name -> job_name, timeout_min -> time
    native = {renamed.get(k, k.removeprefix("slurm_")): v for k, v in params.items() if v is not None}
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    return _make_sbatch_string(command=command, folder=folder, **native)


def _slurm_job(ctx_dict: dict) -> int:
    """What one SLURM job runs (submitit pickles this function and its argument). A storage the node cannot
    reach (or any HarnessError) is one `error:` line in the job's log; a pre-emption notice (SIGTERM during
    training) fails the running trial as interrupted. Both return a status, so that submitit writes the
    result file the submitting command waits for."""
    from harness.study.objective import Context
    from harness.study.workers import run_worker

    try:
        return run_worker(Context(**ctx_dict))
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the running trial is failed; rerun the sweep to retry it", file=sys.stderr, flush=True)
        return 130


def _queued_slurm_jobs() -> set[str] | None:
    """Ids of this user's pending or running SLURM jobs; None when squeue does not answer."""
    import getpass

    try:
        out = subprocess.run(
            ["squeue", "--noheader", "--format=%i", "--user", getpass.getuser()],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(out.stdout.split()) if out.returncode == 0 else None


def _wait_slurm_jobs(jobs: list, on_slurm: bool) -> None:
    """Until every job has written its result or has left the queue without one. (submitit alone asks sacct,
    which fails without accounting storage (slurmdbd): a job killed before writing its result, by scancel, the
    time limit or a lost node, would be waited for forever.)"""
    left_at: dict[str, float] = {}  # job id -> when squeue stopped listing it
    next_squeue = 0.0
    while True:
        now = time.time()
        waiting = [
            j
            for j in jobs
            if not (j.paths.result_pickle.exists() if on_slurm else j.done())
            and now - left_at.get(j.job_id, now) < SLURM_RESULT_GRACE_S
        ]
        if not waiting:
            return
        if on_slurm and now >= next_squeue:
            queued = _queued_slurm_jobs()
            for j in waiting if queued is not None else []:
                if j.job_id in queued:
                    left_at.pop(j.job_id, None)  # (again: requeued)
                else:
                    left_at.setdefault(j.job_id, now)
            next_squeue = now + SLURM_POLL_S
        time.sleep(1)


def _last_error_line(log: Path) -> str:
    try:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.startswith("error: ")]
    except OSError:
        return ""
    return lines[-1].removeprefix("error: ") if lines else ""


def slurm_job_status(job, on_slurm: bool) -> int:
    """One finished worker job's exit status, and a line on stderr naming its log when it did not end well."""
    log = job.paths.stderr
    if on_slurm and not job.paths.result_pickle.exists():
        print(
            f"error: worker job {job.job_id} ended without a result (cancelled, killed, out of time or memory; "
            f"its running trial is retried by the rerun); see {log}",
            file=sys.stderr,
        )
        return 1
    try:
        code = int(job.result() or 0)
    except Exception as e:
        # submitit's FailedJobError holds the job's traceback, whose last "Name: message" line says what happened
        raised = re.findall(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b.*$", str(e), flags=re.MULTILINE)
        what = raised[-1] if raised else str(e).strip().split("\n", 1)[0] or type(e).__name__
        print(f"error: worker job {job.job_id} failed: {what}; see {log}", file=sys.stderr)
        return 1
    if code == 130:
        print(
            f"worker job {job.job_id} was interrupted (pre-empted): its running trial is failed as interrupted; "
            f"see {log}",
            file=sys.stderr,
        )
    elif code:
        why = _last_error_line(Path(log))
        print(
            f"error: worker job {job.job_id} stopped (status {code}){': ' + why if why else ''}; see {log}",
            file=sys.stderr,
        )
    return code


def run_slurm(ctx: Context, workers: int, params: dict[str, Any], cluster: str | None) -> int:
    import submitit

    folder = slurm_folder(ctx)
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(**params)
    jobs = [
        executor.submit(_slurm_job, dataclasses.asdict(dataclasses.replace(ctx, worker=i + 1))) for i in range(workers)
    ]
    if not ctx.quiet:
        print(
            f"submitted {len(jobs)} workers: {', '.join(j.job_id for j in jobs)} (logs in {folder})",
            flush=True,
        )
    on_slurm = executor.cluster == "slurm"
    _wait_slurm_jobs(jobs, on_slurm)
    return max(slurm_job_status(job, on_slurm) for job in jobs)

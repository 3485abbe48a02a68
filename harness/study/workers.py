"""Sweep workers: run_worker runs trials until the study holds its budget (the coordinator runs it in-process
for `--workers 1`, else starts N `harness sweep ... --worker I` processes on GPU slices, run_subprocesses);
Ctrl-C stops them at a trial boundary or after the current training step, with the running trial failed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from harness.storage import is_rdb, open_storage
from harness.study.objective import Context, CtrlC, NotRun, Objective, TrialFailed
from harness.study.spec import load_spec
from harness.study.study import create_or_load_study, describe, make_sampler, progress


def run_worker(ctx: Context) -> int:
    """One worker: run trials until the study holds its budget; returns an exit status."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = load_spec(ctx.spec_path, ctx.cli_overrides, ctx.n_trials, check_points=not ctx.worker)
    storage = open_storage(ctx.storage, ctx.heartbeat)
    study = create_or_load_study(spec, ctx.study, storage, ctx.worker, create=False)
    study.sampler = make_sampler(spec, ctx.worker, done=len(study.get_trials(deepcopy=False)))
    tag = f"[worker {ctx.worker}] " if ctx.worker else ""

    def report(study_, t) -> None:
        if not ctx.quiet and not (
            t.state == TrialState.FAIL and str(t.user_attrs.get("fail_reason", "")).startswith("not run")
        ):
            print(f"{tag}{describe(spec, t)}", flush=True)

    stop = MaxTrialsCallback(spec.n_trials, states=(TrialState.COMPLETE,))
    failures = 0
    with CtrlC() as ctrl_c:
        objective = Objective(spec, ctx, study, ctrl_c)
        while True:
            ctrl_c.check()
            trials = study.get_trials(deepcopy=False)
            prog = progress(spec, trials)
            if prog.finished >= spec.n_trials and not prog.extending:
                return 0
            if prog.gave_up(spec):
                return 1  # the coordinator says why
            if prog.extensions_waiting:
                can_start = True  # it continues a finished trial: outside the trial budget
            else:  # (running extensions take no place in the budget)
                can_start = prog.finished + prog.running - prog.extensions_running < spec.n_trials
                if spec.sampler == "grid":
                    can_start = can_start and (prog.waiting > 0 or prog.untouched > 0)
            if not can_start:
                if prog.running == 0 and prog.waiting == 0:
                    return 0 if prog.finished >= spec.n_trials else 1
                if is_rdb(study._storage):
                    optuna.storages.fail_stale_trials(study)
                time.sleep(ctx.poll)
                continue
            before = {t.number for t in trials}
            study.optimize(
                objective,
                n_trials=1,
                catch=(NotRun, TrialFailed),
                callbacks=[stop, report],
                gc_after_trial=True,
            )
            ctrl_c.check()
            mine = [
                t
                for t in study.get_trials(deepcopy=False)
                if t.number not in before and t.user_attrs.get("worker") == f"{socket.gethostname()}:{os.getpid()}"
            ]
            for t in mine:
                if t.state == TrialState.FAIL and not str(t.user_attrs.get("fail_reason", "")).startswith("not run"):
                    failures += 1
                elif t.state in (TrialState.COMPLETE, TrialState.PRUNED):
                    failures = 0
            if failures >= ctx.max_consecutive_failures:
                print(
                    f"{tag}error: {failures} trials in a row failed; last: "
                    f"{mine[-1].user_attrs.get('fail_reason', '?') if mine else '?'}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1


def gpu_slices(workers: int, per_trial: int) -> list[str | None]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d for d in visible.split(",") if d.strip()]
    else:
        try:
            import torch

            ids = [str(i) for i in range(torch.cuda.device_count())]
        except Exception:
            ids = []
    if not ids:
        return [None] * workers
    # worker i gets GPUs [i*G, (i+1)*G) modulo the GPUs there are (more workers than slices share them)
    return [",".join(ids[(i * per_trial + j) % len(ids)] for j in range(per_trial)) for i in range(workers)]


def worker_argv(ctx: Context, index: int) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "harness.cli",
        "sweep",
        ctx.spec_path,
        *ctx.cli_overrides,
        "--study",
        ctx.study,
        "--storage",
        ctx.storage,
        "--reports",
        ctx.reports,
        "--heartbeat",
        str(ctx.heartbeat),
        "--gpus-per-trial",
        str(ctx.gpus_per_trial),
        "--worker",
        str(index),
    ]
    if ctx.n_trials is not None:
        argv += ["--n-trials", str(ctx.n_trials)]
    if ctx.quiet:
        argv.append("--quiet")
    return argv


def _foreground_on_a_terminal() -> bool:
    """Whether this process runs in the foreground process group of a terminal (where Ctrl-C signals the group)."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return True
        except OSError:
            continue
    return False


def run_subprocesses(ctx: Context, workers: int) -> int:
    slices = gpu_slices(workers, ctx.gpus_per_trial)
    procs = []
    for i in range(workers):
        env = dict(os.environ)
        if slices[i] is not None:
            env["CUDA_VISIBLE_DEVICES"] = slices[i]
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
        procs.append(subprocess.Popen(worker_argv(ctx, i + 1), env=env, cwd=os.getcwd()))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        # Ctrl-C at a terminal reaches the whole foreground process group: each worker fails its running trial
        # and exits. A SIGINT sent to this process alone (kill -INT, a scheduler, no terminal) is passed on, so
        # the workers stop the same way instead of being terminated with their trials left RUNNING.
        if not _foreground_on_a_terminal():
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
        deadline = time.time() + 30
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.terminate()
        raise
    return max(codes) if all(c >= 0 for c in codes) else 1

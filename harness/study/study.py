"""The Optuna study of a sweep: sampler and pruner from the spec, creation with the fingerprint that a resumed
study must match (study user attrs: fingerprint, spec, objectives, seeds, description, n_trials), progress towards
the exact trial budget, re-queued grid points, budget-stopped trials continued under a raised budget (extensions)
and the one-line summaries of trials and studies."""

from __future__ import annotations

import dataclasses
import datetime
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.report.load import EXTENDS, is_extension, superseded
from harness.study.spec import SweepSpec


def _grid_sampler_class():
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's GridSampler; after_trial tolerates queued trials (re-queued grid points), which carry
        fixed params instead of a grid_id (the stock one raises KeyError when one grid point is left)."""

        def after_trial(self, study, trial, state, values):
            try:
                super().after_trial(study, trial, state, values)
            except KeyError:
                pass

    return GridSampler


def _GridSampler(space, seed):
    return _grid_sampler_class()(space, seed=seed)


def make_sampler(spec: SweepSpec, worker: int = 0, done: int = 0):
    import optuna

    if spec.sampler == "grid":
        # seed 0 in every worker: the same grid order everywhere (trial k -> grid point k)
        return _GridSampler(spec.grid_space, seed=0)
    # one worker (worker 0: `--workers 1`, in-process) samples from the spec's seed plus the trials the study
    # already holds (`done`), so a sequential sweep is reproducible and a resumed one does not draw its first
    # points again; parallel workers (1..N, on one or many nodes) draw entropy: their trial order depends on
    # timing anyway, and two of them seeded alike would sample in lock-step
    seed = spec.sampler_seed + done if worker == 0 else None
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(spec: SweepSpec):
    import optuna

    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if spec.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def create_or_load_study(spec: SweepSpec, name: str, storage, worker: int = 0, create: bool = True):
    import optuna

    directions = [o.direction for o in spec.objectives]
    kwargs = dict(study_name=name, storage=storage, sampler=make_sampler(spec, worker), pruner=make_pruner(spec))
    if not create:
        return optuna.load_study(**kwargs)
    study = optuna.create_study(directions=directions, load_if_exists=True, **kwargs)
    stored = study.user_attrs.get("fingerprint")
    mine = spec.fingerprint()
    if stored is None:
        study.set_user_attr("fingerprint", mine)
        study.set_user_attr("spec", str(spec.path))
        study.set_user_attr("objectives", [dataclasses.asdict(o) for o in spec.objectives])
        study.set_user_attr("seeds", spec.seeds)
        study.set_user_attr("description", spec.description)
    else:
        diff = [k for k in mine if stored.get(k) != mine[k]]
        if diff or [d.name.lower() for d in study.directions] != directions:
            what = {"base_config": "base config content"}.get(diff[0], diff[0]) if diff else "objective"
            raise HarnessError(
                f"--study {name}: exists with a different {what} (spec {study.user_attrs.get('spec')}); "
                "use another --study name"
            )
    study.set_user_attr("n_trials", spec.n_trials)
    return study


# what ended a budget-stopped run (metrics.json stop_reason) -> the config key of that budget and its "no limit"
NO_LIMIT = {"max_epochs": -1, "max_steps": -1, "max_time": 0}  # each budget's "no limit" (harness/config.py)


@dataclass
class Progress:
    finished: int  # COMPLETE trials (grid: distinct points COMPLETE or PRUNED), continued ones counted once
    running: int
    waiting: int
    untouched: int  # grid points no trial has touched yet
    failed_points: int  # grid points whose only trials failed (retried on the next run)
    pruned: int = 0  # PRUNED trials
    # queued / running extensions: they replace a finished trial, so they take no place in the trial budget
    extensions_waiting: int = 0
    extensions_running: int = 0

    @property
    def extending(self) -> int:
        return self.extensions_waiting + self.extensions_running

    def gave_up(self, spec: SweepSpec) -> bool:
        """tpe/random: the pruner stopped max_pruned trials before n_trials completed."""
        return spec.sampler != "grid" and self.finished < spec.n_trials and self.pruned >= spec.max_pruned


def grid_point(spec: SweepSpec, t) -> tuple | None:
    names = list(spec.grid_space)
    src = t.params if all(n in t.params for n in names) else t.system_attrs.get("fixed_params") or {}
    if not all(n in src for n in names):
        return None
    return tuple(src[n] for n in names)


def progress(spec: SweepSpec, trials) -> Progress:
    from optuna.trial import TrialState

    running = sum(t.state == TrialState.RUNNING for t in trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    ext = [sum(t.state == s and is_extension(t) for t in trials) for s in (TrialState.WAITING, TrialState.RUNNING)]
    if spec.sampler != "grid":
        gone = superseded(trials)
        complete = sum(t.state == TrialState.COMPLETE and t.number not in gone for t in trials)
        pruned = sum(t.state == TrialState.PRUNED for t in trials)
        return Progress(complete, running, waiting, 0, 0, pruned, *ext)
    done, touched = set(), set()
    for t in trials:
        p = grid_point(spec, t)
        if p is None:
            continue
        touched.add(p)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done.add(p)
    active = {grid_point(spec, t) for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)}
    all_points = [tuple(p.values()) for p in spec.grid_points()]
    untouched = sum(p not in touched for p in all_points)
    failed = sum(p in touched and p not in done and p not in active for p in all_points)
    return Progress(len(done), running, waiting, untouched, failed, 0, *ext)


def _raised(old, new, unlimited) -> bool:
    if old is None or old == unlimited:
        return False  # (a run stopped by a budget it did not have: nothing to raise)
    return new == unlimited or new > old


def enqueue_extensions(spec: SweepSpec, study, trials_dir: Path) -> list[str]:
    """Resume under a raised budget: a COMPLETE trial that its budget stopped (metrics stop_reason max_epochs,
    max_steps or max_time, not the stopping rule) while the spec's budget for it is now larger is queued again,
    as a new trial that continues from the stopped trial's last checkpoint (Objective.resume_from) and ends as a
    run trained under the larger budget from the start would (the resume is exact on CPU; the learning-rate
    schedules do not depend on the budget). The stopped trial and its run directory stay; reports show the
    extension instead (superseded). An extension that failed (Ctrl-C, a lost machine) is retried from its own
    checkpoint. Budgets are overrides, outside the study's fingerprint. Returns one line per trial looked at."""
    from optuna.trial import TrialState

    from harness.experiment import load_config
    from harness.metrics.keys import BUDGET_KEYS, STOP_REASON
    from harness.runs.layout import checkpoint_path, partial_path

    trials = study.get_trials(deepcopy=False)
    extensions: dict[int, list] = {}
    for t in trials:
        if is_extension(t):
            extensions.setdefault(int(t.user_attrs[EXTENDS]), []).append(t)
    lines = []
    for t in trials:
        reason = (t.user_attrs.get("metrics") or {}).get(STOP_REASON)
        if t.state != TrialState.COMPLETE or reason not in BUDGET_KEYS:
            continue
        later = extensions.get(t.number, [])
        if any(e.state != TrialState.FAIL for e in later):
            continue  # continued already, or being continued
        key, unlimited = BUDGET_KEYS[reason], NO_LIMIT[reason]
        seed = t.user_attrs.get("seed", t.params.get("seed"))
        point = {k: v for k, v in t.params.items() if k != "seed"}
        new = getattr(load_config(spec.base, spec.trial_overrides(point, seed)).train, reason)
        old = (t.user_attrs.get("config") or {}).get(key)
        if not _raised(old, new, unlimited):
            continue
        failed = [e.number for e in later if (partial_path(trials_dir / str(e.number)) / "checkpoints").is_dir()]
        source = failed[-1] if failed else t.number
        if source == t.number and not checkpoint_path(trials_dir / str(t.number), "last").is_file():
            lines.append(
                f"trial {t.number} stopped at {key}={old} (now {new}) is not continued: "
                f"{checkpoint_path(trials_dir / str(t.number), 'last')} is not there"
            )
            continue
        budget = {"stop_reason": reason, "budget": key, "was": old, "now": new}
        attrs = {EXTENDS: t.number, "extends_budget": budget, "resume_from": source, "seed": seed}
        study.enqueue_trial(dict(t.params), user_attrs=attrs)
        lines.append(f"trial {t.number} stopped at {key}={old}: queued to continue under {key}={new}")
    return lines


def enqueue_missing_grid_points(spec: SweepSpec, study) -> int:
    """Resume: grid points whose trials all failed (Ctrl-C, errors) go back into the queue; GridSampler
    would not hand them out again (it counts any finished trial as visited). Done, running and queued
    points stay as they are."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    names = list(spec.grid_space)
    busy = {
        grid_point(spec, t)
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    }
    failed = {grid_point(spec, t) for t in trials if t.state == TrialState.FAIL} - busy - {None}
    last_failed = {grid_point(spec, t): t.number for t in trials if t.state == TrialState.FAIL}  # the latest per point
    prog = progress(spec, trials)
    room = spec.n_trials - prog.finished - prog.running - prog.waiting
    n = 0
    for values in [tuple(p.values()) for p in spec.grid_points()]:
        if n >= room:
            break
        if values in failed:
            # the retry continues the failed trial's training where it has a checkpoint (Objective.resume_from)
            attrs = {"requeued": True, "resume_from": last_failed[values]}
            study.enqueue_trial(dict(zip(names, values)), user_attrs=attrs)
            n += 1
    return n


def process_started(pid: int) -> datetime.datetime | None:
    """When process `pid` of this machine started (local time, to about a second: /proc/stat's boot time is
    whole seconds), or None where /proc cannot tell (no such process, not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, after the parenthesised command name
    return datetime.datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"))


def worker_alive(worker: str, trial_started: datetime.datetime | None) -> bool:
    """Whether the process named by a trial's `worker` attr ("host:pid", this host) still runs that trial.
    A live process with that pid is the trial's worker only if it started before the trial did: process ids
    are reused, and a machine that replaced the one a study ran on (same host name, a journal restored from
    results/) hands out the same pids again, so a pid alone would keep a dead worker's trial RUNNING forever."""
    pid = int(worker.rsplit(":", 1)[1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = process_started(pid)
    if started is None or trial_started is None:
        return True  # cannot tell: keep the trial rather than fail a live worker's
    return started <= trial_started + datetime.timedelta(seconds=2)  # /proc's boot time is whole seconds


def fail_dead_local_trials(study) -> int:
    """Storages without heartbeats (journal files): a RUNNING trial whose worker process on this host is gone
    (or whose pid now belongs to a process that started after the trial, see worker_alive) is marked FAIL so
    that it can be run again."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        if not worker.startswith(host + ":") or worker_alive(worker, t.datetime_start):
            continue
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason", f"worker {worker} died")
        if study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
            n += 1
    return n


def describe(spec: SweepSpec, t) -> str:
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items() if k != "seed"
    )
    seed = t.user_attrs.get("seed", t.params.get("seed"))
    state = t.state.name
    if t.state.name == "COMPLETE" and t.values is not None:
        vals = "  ".join(f"{o.metric} {v:.3f}" for o, v in zip(spec.objectives, t.values))
    else:
        vals = t.user_attrs.get("fail_reason", "")
    secs = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else 0
    return f"trial {t.number} {state:<8} {vals}  ({params}{', ' if params else ''}seed={seed}) {secs:.1f} s"


def summarize(spec: SweepSpec, study) -> str:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    gone = superseded(trials)
    continued = f" ({len(gone)} of them continued under a raised budget by another)" if gone else ""
    line = (
        f"study {study.study_name}: {count[TrialState.COMPLETE]} complete{continued}, "
        f"{count[TrialState.PRUNED]} pruned, {count[TrialState.FAIL]} failed, "
        f"{count[TrialState.WAITING]} queued (budget {spec.n_trials})"
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.number not in gone]
    if complete and len(spec.objectives) == 1:
        sign = 1 if spec.objectives[0].direction == "maximize" else -1
        best = max(complete, key=lambda t: sign * t.value)
        line += f"\nbest {describe(spec, best)}"
    elif complete:
        line += f"\nPareto front: trials {', '.join(str(t.number) for t in study.best_trials)}"
    return line

"""`harness sweep`: an Optuna study from a sweeps/*.yaml spec, run by N worker processes on one storage.

A spec names a base experiment config, overrides applied to every trial, a search space of dotted config
keys, a sampler (grid | tpe | random), the objective(s) read from metrics.json, seeds, a trial budget and a
pruner. The whole spec (every grid point) is validated with harness.config.load_config before any trial.

Each trial is one `harness.runs.run.train` into reports/<study>/trials/<number>/; its metrics, run directory,
flattened config and seed are stored as trial user attributes, so the study alone is enough for reports.

Budget: the study ends with exactly `n_trials` COMPLETE trials (grid: every grid point COMPLETE or PRUNED
exactly once). Re-running the same command resumes: only what is missing runs. Optuna does the rest:
GridSampler/TPESampler/RandomSampler, Median/SuccessiveHalving pruners, RDB (SQLite, PostgreSQL) and
journal-file storages, heartbeats with RetryFailedTrialCallback (a killed worker's trial is retried),
MaxTrialsCallback as the stop condition of every worker.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import all_keys, flatten, parse_overrides, read_yaml, to_dict
from harness.errors import HarnessError
from harness.experiment import load_config
from harness.paths import PROJECT_ROOT

SPEC_KEYS = (
    "description",
    "base",
    "overrides",
    "space",
    "sampler",
    "objective",
    "seeds",
    "n_trials",
    "pruner",
    "timeout_per_trial",
    "max_pruned",
    "sampler_seed",
)
SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("none", "median", "successive_halving")
DIRECTIONS = ("maximize", "minimize")
PARAM_KEYS = ("type", "low", "high", "log", "step", "choices")
PARAM_TYPES = ("int", "float", "categorical")
# numeric metrics.json keys an objective may name (harness/runs/run.py, harness/decode/evaluate.py)
METRICS = (
    "bleu",
    "chrf",
    "length_drop",
    "aer",
    "alignment_precision",
    "alignment_recall",
    "attention_entropy",
    "val_ppl",
    "val_bleu_best",
    "params",
    "train_tokens_per_sec",
    "train_time_s",
    "steps",
    "epochs",
    "peak_rss_mb",
    "decode_sentences_per_sec",
)
POLL_S = 0.5


# ------------------------------------------------------------------------------------------ spec
@dataclass
class Param:
    """One search-space dimension. `bundle`: a categorical whose choices each set several config keys
    (e.g. architecture + score pairs that are not a full product); its values are labels."""

    name: str
    type: str = "categorical"
    choices: list = field(default_factory=list)
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    bundle: dict[str, dict] | None = None  # label -> {dotted key: value}

    def grid_values(self, where: str) -> list:
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            if self.log:
                raise HarnessError(f"{where}: sampler grid cannot expand a log int range; give a list of values")
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise HarnessError(f"{where}: sampler grid needs a list of values or a float range with step")
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [round(self.low + i * self.step, 12) for i in range(n)]

    def overrides(self, value) -> dict[str, Any]:
        """The config overrides one value of this dimension stands for."""
        return dict(self.bundle[value]) if self.bundle is not None else {self.name: value}


@dataclass
class Objective:
    metric: str
    direction: str


@dataclass
class SweepSpec:
    path: Path
    base: Path
    overrides: dict[str, Any]
    space: dict[str, Param]
    sampler: str
    objectives: list[Objective]
    seeds: list[int]
    n_trials: int
    pruner: str
    timeout_per_trial: float
    description: str = ""
    cli_overrides: dict[str, Any] = field(default_factory=dict)
    max_pruned: int = 0  # tpe/random: the workers give up after this many PRUNED trials (grid: 0, unused)
    sampler_seed: int = 0  # tpe/random, one worker: the sampler's seed (parallel workers draw their own)

    @functools.cached_property
    def grid_space(self) -> dict[str, list]:
        """GridSampler's search space: every dimension plus `seed`."""
        out = {name: p.grid_values(f"sweep {self.path}: space.{name}") for name, p in self.space.items()}
        out["seed"] = list(self.seeds)
        return out

    def grid_points(self) -> list[dict[str, Any]]:
        import itertools

        space = self.grid_space
        names = list(space)
        return [dict(zip(names, values)) for values in itertools.product(*space.values())]

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid_space.values())

    def trial_overrides(self, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """Every config override of one trial: spec overrides, command-line overrides, the point, the seed."""
        out = {**self.overrides, **self.cli_overrides}
        for name, value in params.items():
            if name == "seed":
                continue
            out.update(self.space[name].overrides(value))
        out["seed"] = seed
        if self.timeout_per_trial:
            out["train.max_time"] = self.timeout_per_trial
        return out

    def fingerprint(self) -> dict:
        """What must not change between runs of one study (overrides, n_trials and timeouts may). The base
        config counts by its resolved content too: editing a preset under a running study would mix two
        configs in one study."""
        return {
            "base": str(self.base),
            "base_config": _config_digest(self.base),
            "space": sorted(self.grid_space) if self.sampler == "grid" else sorted(self.space),
            "sampler": self.sampler,
            "objective": [dataclasses.asdict(o) for o in self.objectives],
        }


def _config_digest(path: Path) -> str:
    """Digest of a config file's resolved content (comments and key order do not count)."""
    doc = json.dumps(to_dict(load_config(path)), sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _where(path, key: str) -> str:
    return f"sweep {path}: {key}"


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _resolve_base(path: Path, base) -> Path:
    if not isinstance(base, str) or not base:
        raise HarnessError(f"{_where(path, 'base')}: expected the path of an experiment config, got {base!r}")
    for candidate in (Path(base), PROJECT_ROOT / base):
        if candidate.is_file():
            return candidate
    raise HarnessError(f"{_where(path, 'base')}: experiment config {base} not found")


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_param(path: Path, name: str, raw) -> Param:
    where = _where(path, f"space.{name}")
    keys = set(all_keys())
    if name == "seed":
        raise HarnessError(f"{where}: the seed is not searched; list seeds under the top-level key 'seeds'")
    if isinstance(raw, list) and raw and all(isinstance(v, dict) for v in raw):
        # a bundle: each choice sets several config keys at once
        if name in keys:
            raise HarnessError(f"{where}: a config key takes a list of values, not of mappings")
        bundle = {}
        for choice in raw:
            for k in choice:
                if k == "seed" or (k not in keys):
                    raise HarnessError(f"{where}: unknown config key '{k}'{_suggest(k, keys)}")
            label = "/".join(str(v) for v in choice.values())
            if label in bundle:
                raise HarnessError(f"{where}: choice {choice} appears twice")
            bundle[label] = dict(choice)
        return Param(name, "categorical", list(bundle), bundle=bundle)
    if name not in keys:
        raise HarnessError(f"{where}: unknown config key '{name}'{_suggest(name, keys)}")
    if isinstance(raw, list):
        if not raw:
            raise HarnessError(f"{where}: empty list of values")
        for v in raw:
            if not (v is None or isinstance(v, str | int | float | bool)):
                raise HarnessError(f"{where}: values must be scalars, got {v!r}")
        if len(set(map(repr, raw))) != len(raw):
            raise HarnessError(f"{where}: repeated values in {raw}")
        return Param(name, "categorical", list(raw))
    if not isinstance(raw, dict):
        raise HarnessError(f"{where}: expected a list of values or a mapping {{type, low, high, log, step, choices}}")
    for k in raw:
        if k not in PARAM_KEYS:
            raise HarnessError(
                f"{where}.{k}: unknown key (expected one of {', '.join(PARAM_KEYS)}){_suggest(k, PARAM_KEYS)}"
            )
    typ = raw.get("type", "categorical" if "choices" in raw else None)
    if typ not in PARAM_TYPES:
        raise HarnessError(
            f"{where}.type: expected one of {', '.join(PARAM_TYPES)}, got {typ!r}{_suggest(typ, PARAM_TYPES)}"
        )
    if typ == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise HarnessError(f"{where}.choices: expected a non-empty list of values")
        return _parse_param(path, name, choices)
    low, high, step, log = raw.get("low"), raw.get("high"), raw.get("step"), raw.get("log", False)
    for k, v in (("low", low), ("high", high)):
        if not _is_number(v) or (typ == "int" and not float(v).is_integer()):
            raise HarnessError(f"{where}.{k}: expected {'an integer' if typ == 'int' else 'a number'}, got {v!r}")
    if low >= high:
        raise HarnessError(f"{where}: low ({low}) must be < high ({high})")
    if not isinstance(log, bool):
        raise HarnessError(f"{where}.log: expected true/false, got {log!r}")
    if log and low <= 0:
        raise HarnessError(f"{where}.log: a log range needs low > 0, got {low}")
    if step is not None:
        if not _is_number(step) or step <= 0 or (typ == "int" and not float(step).is_integer()):
            raise HarnessError(
                f"{where}.step: expected a positive {'integer' if typ == 'int' else 'number'}, got {step!r}"
            )
        if log:
            raise HarnessError(f"{where}: step and log cannot be combined (Optuna)")
    if typ == "int":
        return Param(name, "int", low=int(low), high=int(high), log=log, step=int(step) if step else None)
    return Param(name, "float", low=float(low), high=float(high), log=log, step=float(step) if step else None)


def _parse_objectives(path: Path, raw) -> list[Objective]:
    if raw is None:
        return [Objective("bleu", "maximize")]
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise HarnessError(f"{_where(path, 'objective')}: empty list")
    out = []
    for i, item in enumerate(items):
        where = _where(path, "objective" + (f"[{i}]" if isinstance(raw, list) else ""))
        if not isinstance(item, dict):
            raise HarnessError(f"{where}: expected a mapping {{metric: bleu, direction: maximize}}, got {item!r}")
        for k in item:
            if k not in ("metric", "direction"):
                raise HarnessError(f"{where}.{k}: unknown key (expected metric, direction)")
        metric = item.get("metric")
        if metric not in METRICS:
            raise HarnessError(
                f"{where}.metric: {metric!r} is not a numeric metrics.json key{_suggest(metric, METRICS)}"
            )
        direction = item.get("direction", "maximize")
        if direction not in DIRECTIONS:
            raise HarnessError(
                f"{where}.direction: expected maximize or minimize, got {direction!r}{_suggest(direction, DIRECTIONS)}"
            )
        out.append(Objective(metric, direction))
    if len({o.metric for o in out}) != len(out):
        raise HarnessError(f"{_where(path, 'objective')}: a metric appears twice")
    return out


def load_spec(
    path: str | Path,
    cli_overrides: list[str] | None = None,
    n_trials: int | None = None,
    check_points: bool = True,
) -> SweepSpec:
    """Read and validate a sweep spec completely (every grid point's config) before anything runs.
    Workers pass check_points=False: the coordinator has checked every point already."""
    path = Path(path)
    try:
        raw = read_yaml(path)
    except HarnessError as e:
        raise HarnessError("sweep" + str(e).removeprefix("config")) from None
    for key in raw:
        if key not in SPEC_KEYS:
            raise HarnessError(
                f"{_where(path, key)}: unknown key (expected one of {', '.join(SPEC_KEYS)}){_suggest(key, SPEC_KEYS)}"
            )
    base = _resolve_base(path, raw.get("base"))
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise HarnessError(f"{_where(path, 'overrides')}: expected a mapping of dotted config keys to values")
    try:
        load_config(base, dict(overrides))
    except HarnessError as e:
        raise HarnessError(f"{_where(path, 'overrides')}: {e}") from None
    cli = parse_overrides(list(cli_overrides or []))
    try:
        base_cfg = load_config(base, {**overrides, **cli})
    except HarnessError as e:
        raise HarnessError(f"sweep {path}: command-line {e}") from None

    space_raw = raw.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise HarnessError(f"{_where(path, 'space')}: empty search space (expected a mapping of dotted config keys)")
    space = {str(k): _parse_param(path, str(k), v) for k, v in space_raw.items()}
    swept = {k for p in space.values() for k in (p.bundle and next(iter(p.bundle.values())) or {p.name: 0})}
    for k in cli:
        if k in swept:
            raise HarnessError(f"sweep {path}: command-line override {k} is a searched key of space")

    sampler = raw.get("sampler", "grid" if all(p.type == "categorical" for p in space.values()) else "tpe")
    if sampler not in SAMPLERS:
        raise HarnessError(
            f"{_where(path, 'sampler')}: expected one of {', '.join(SAMPLERS)}, got {sampler!r}"
            f"{_suggest(sampler, SAMPLERS)}"
        )
    pruner = raw.get("pruner", "none")
    if pruner not in PRUNERS:
        raise HarnessError(
            f"{_where(path, 'pruner')}: expected one of {', '.join(PRUNERS)}, got {pruner!r}{_suggest(pruner, PRUNERS)}"
        )
    objectives = _parse_objectives(path, raw.get("objective"))
    if len(objectives) > 1 and pruner != "none":
        raise HarnessError(
            f"{_where(path, 'pruner')}: pruning needs a single objective (Optuna), got "
            f"{len(objectives)}; set pruner: none"
        )
    seeds = raw.get("seeds", [base_cfg.seed])
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise HarnessError(f"{_where(path, 'seeds')}: expected a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise HarnessError(f"{_where(path, 'seeds')}: repeated seed in {seeds}")
    timeout = raw.get("timeout_per_trial", 0) or 0
    if not _is_number(timeout) or timeout < 0:
        raise HarnessError(f"{_where(path, 'timeout_per_trial')}: expected seconds >= 0, got {timeout!r}")

    spec = SweepSpec(
        path,
        base,
        dict(overrides),
        space,
        sampler,
        objectives,
        list(seeds),
        0,
        pruner,
        float(timeout),
        str(raw.get("description", "")),
        cli,
    )
    budget = n_trials if n_trials is not None else raw.get("n_trials")
    key = "--n-trials" if n_trials is not None else "n_trials"
    if sampler == "grid":
        for only, why in (
            ("max_pruned", "a pruned grid point counts as done"),
            ("sampler_seed", "grid order is fixed"),
        ):
            if only in raw:
                raise HarnessError(f"{_where(path, only)}: only for sampler tpe or random ({why})")
        size = spec.grid_size
        if budget is None:
            budget = size
        if not _is_int(budget) or not 1 <= budget <= size:
            raise HarnessError(
                f"{_where(path, key)}: expected an integer from 1 to the grid size {size}, got {budget!r}"
            )
        # every point without the seed (seeds are plain integers and cannot make a config invalid)
        points = {tuple((k, v) for k, v in p.items() if k != "seed"): p for p in spec.grid_points()}
        for point in points.values() if check_points else []:
            try:
                load_config(base, spec.trial_overrides(point, point["seed"]))
            except HarnessError as e:
                shown = ", ".join(f"{k}={v}" for k, v in point.items())
                raise HarnessError(f"{_where(path, 'space')}: grid point {shown}: {e}") from None
    else:
        if budget is None:
            raise HarnessError(f"{_where(path, 'n_trials')}: required for sampler {sampler} (the trial budget)")
        if not _is_int(budget) or budget < 1:
            raise HarnessError(f"{_where(path, key)}: expected a positive integer, got {budget!r}")
        # a pruner that stops nearly every trial would otherwise keep the workers sampling for ever
        max_pruned = raw.get("max_pruned", 10 * budget)
        if not _is_int(max_pruned) or max_pruned < 1:
            raise HarnessError(f"{_where(path, 'max_pruned')}: expected a positive integer, got {max_pruned!r}")
        spec.max_pruned = max_pruned
        sampler_seed = raw.get("sampler_seed", 0)
        if not _is_int(sampler_seed) or sampler_seed < 0:
            raise HarnessError(f"{_where(path, 'sampler_seed')}: expected an integer >= 0, got {sampler_seed!r}")
        spec.sampler_seed = sampler_seed
        # one dimension at a time (the others at the base value): every choice and both ends of every range
        for name, p in space.items():
            values = p.choices if p.type == "categorical" else [p.low, p.high]
            for v in values:
                try:
                    load_config(base, spec.trial_overrides({name: v}, seeds[0]))
                except HarnessError as e:
                    raise HarnessError(f"{_where(path, f'space.{name}')}: value {v!r}: {e}") from None
    spec.n_trials = budget
    return spec


# ------------------------------------------------------------------------------------------ storage
def mask_url(url: str) -> str:
    """The storage URL with its password replaced by ***."""
    if "://" not in url or "@" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}:***@{host}"


def default_storage(reports: Path, study: str) -> str:
    return f"sqlite:///{(reports / study / 'study.db').resolve()}"


def open_storage(url: str, heartbeat: float = 10.0):
    """An Optuna storage for a URL: sqlite:///, postgresql://, journal:///path/to/file.log."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    _quiet_optuna()

    shown = mask_url(url)
    try:
        if url.startswith("journal://"):
            path = Path(url[len("journal://") :])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        if not url.startswith(("sqlite://", "postgres", "mysql")):
            raise HarnessError(f"--storage {shown}: expected sqlite:///FILE, postgresql://..., or journal:///FILE")
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            engine_kwargs = {"connect_args": {"timeout": 120}}  # many workers: wait for the write lock
        else:
            engine_kwargs = {"pool_pre_ping": True}
            url = _postgres_driver(url)
        # heartbeats: a trial whose worker died (SIGKILL, node lost) is failed after the grace period and
        # re-queued with the same parameters by RetryFailedTrialCallback
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=max(1, round(heartbeat)),
            grace_period=max(2, round(3 * heartbeat)),
            **_retry_callback(),
        )
    except HarnessError:
        raise
    except (Exception, optuna.exceptions.OptunaError) as e:
        msg = " ".join(str(e).split()).split(" (Background on this error at:")[0]  # SQLAlchemy's link tail
        if len(msg) > 200:
            msg = msg[:200].rsplit(" ", 1)[0] + " ..."
        for secret in _passwords(url):
            msg = msg.replace(secret, "***")
        raise HarnessError(f"storage {shown}: cannot be opened ({msg})") from None


def _postgres_driver(url: str) -> str:
    """SQLAlchemy 2.1 maps postgresql:// to psycopg (3); use psycopg2 (psycopg2-binary) when that is what
    is installed."""
    import importlib.util

    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme) and importlib.util.find_spec("psycopg") is None:
            if importlib.util.find_spec("psycopg2") is not None:
                return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def _retry_callback() -> dict:
    """RetryFailedTrialCallback, named RetryHeartbeatStaleTrialCallback from Optuna 4.9 on."""
    import optuna.storages as st

    if hasattr(st, "RetryHeartbeatStaleTrialCallback"):
        return {"heartbeat_stale_trial_callback": st.RetryHeartbeatStaleTrialCallback(max_retry=3)}
    return {"failed_trial_callback": st.RetryFailedTrialCallback(max_retry=3)}


def _quiet_optuna() -> None:
    import logging
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _passwords(url: str) -> list[str]:
    try:
        from sqlalchemy.engine import make_url

        pw = make_url(url).password
        return [pw] if pw else []
    except Exception:
        return []


# ------------------------------------------------------------------------------------------ study
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
        # keys an older version did not store (base_config) are not compared: its studies still resume
        diff = [k for k in mine if k in stored and stored[k] != mine[k]]
        if diff or [d.name.lower() for d in study.directions] != directions:
            what = {"base_config": "base config content"}.get(diff[0], diff[0]) if diff else "objective"
            raise HarnessError(
                f"--study {name}: exists with a different {what} (spec {study.user_attrs.get('spec')}); "
                "use another --study name"
            )
    study.set_user_attr("n_trials", spec.n_trials)
    return study


@dataclass
class Progress:
    finished: int  # COMPLETE trials (grid: distinct points COMPLETE or PRUNED)
    running: int
    waiting: int
    untouched: int  # grid points no trial has touched yet
    failed_points: int  # grid points whose only trials failed (retried on the next run)
    pruned: int = 0  # PRUNED trials

    def gave_up(self, spec: SweepSpec) -> bool:
        """tpe/random: the pruner stopped max_pruned trials before n_trials completed."""
        return spec.sampler != "grid" and self.finished < spec.n_trials and self.pruned >= spec.max_pruned


def _point(spec: SweepSpec, t) -> tuple | None:
    names = list(spec.grid_space)
    src = t.params if all(n in t.params for n in names) else t.system_attrs.get("fixed_params") or {}
    if not all(n in src for n in names):
        return None
    return tuple(src[n] for n in names)


def progress(spec: SweepSpec, trials) -> Progress:
    from optuna.trial import TrialState

    running = sum(t.state == TrialState.RUNNING for t in trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    if spec.sampler != "grid":
        complete = sum(t.state == TrialState.COMPLETE for t in trials)
        return Progress(complete, running, waiting, 0, 0, sum(t.state == TrialState.PRUNED for t in trials))
    done, touched = set(), set()
    for t in trials:
        p = _point(spec, t)
        if p is None:
            continue
        touched.add(p)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done.add(p)
    active = {_point(spec, t) for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)}
    all_points = [tuple(p.values()) for p in spec.grid_points()]
    untouched = sum(p not in touched for p in all_points)
    failed = sum(p in touched and p not in done and p not in active for p in all_points)
    return Progress(len(done), running, waiting, untouched, failed)


def enqueue_missing_grid_points(spec: SweepSpec, study) -> int:
    """Resume: grid points whose trials all failed (Ctrl-C, errors) go back into the queue; GridSampler
    would not hand them out again (it counts any finished trial as visited). Done, running and queued
    points stay as they are."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    names = list(spec.grid_space)
    busy = {
        _point(spec, t)
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    }
    failed = {_point(spec, t) for t in trials if t.state == TrialState.FAIL} - busy - {None}
    last_failed = {_point(spec, t): t.number for t in trials if t.state == TrialState.FAIL}  # the latest per point
    prog = progress(spec, trials)
    room = spec.n_trials - prog.finished - prog.running - prog.waiting
    n = 0
    for values in [tuple(p.values()) for p in spec.grid_points()]:
        if n >= room:
            break
        if values in failed:
            # the retry continues the failed trial's training where it has a checkpoint (Objective_._resume_from)
            attrs = {"requeued": True, "resume_from": last_failed[values]}
            study.enqueue_trial(dict(zip(names, values)), user_attrs=attrs)
            n += 1
    return n


def fail_dead_local_trials(study) -> int:
    """Storages without heartbeats (journal files): a RUNNING trial whose worker process on this host is gone
    is marked FAIL so that it can be run again."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        if not worker.startswith(host + ":"):
            continue
        pid = int(worker.rsplit(":", 1)[1])
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", f"worker {worker} died")
            if study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                n += 1
    return n


# ------------------------------------------------------------------------------------------ worker
class _NotRun(Exception):
    """A trial a worker created but must not run (budget reached by other workers, duplicate grid point)."""


class _TrialFailed(Exception):
    """A trial that cannot run (invalid config, training failed): FAIL with fail_reason; worker goes on."""


@dataclass
class Context:
    spec_path: str
    cli_overrides: list[str]
    n_trials: int | None
    study: str
    storage: str
    reports: str  # absolute folder that holds <study>/
    quiet: bool = False
    heartbeat: float = 10.0
    gpus_per_trial: int = 1
    worker: int = 0
    poll: float = POLL_S
    max_consecutive_failures: int = 3


def _at_end(trainer, step: int) -> bool:
    """The validation of the final weights (max_steps reached, or the last batch of the last epoch)."""
    if 0 < trainer.max_steps <= step:
        return True
    epochs = trainer.max_epochs
    return epochs is not None and epochs > 0 and trainer.current_epoch + 1 >= epochs and trainer.is_last_batch


def _pruning_callback(trial):
    from optuna_integration import PyTorchLightningPruningCallback

    class StepPruningCallback(PyTorchLightningPruningCallback):
        """Reports val_bleu at the global step (validation runs every train.val_every steps, often several
        times per epoch; the stock callback reports at the epoch and would drop those values). The validation of
        the final weights (train.max_steps, or the last epoch's last batch) is reported but never pruned: the
        trial has already spent its whole budget, and pruning it would only hide a finished result from the
        sampler (and, when the pruner's median sits above most trials, keep the study from ever reaching
        n_trials COMPLETE)."""

        def on_validation_end(self, trainer, pl_module):
            if self.is_ddp_backend or trainer.sanity_checking:
                return super().on_validation_end(trainer, pl_module)
            score = trainer.callback_metrics.get(self.monitor)
            if score is None:
                return
            step = int(trainer.global_step)
            self._trial.report(float(score), step=step)
            if _at_end(trainer, step):
                return
            if self._trial.should_prune():
                import optuna

                raise optuna.TrialPruned(f"pruned at step {step} ({self.monitor} {float(score):.2f})")

    return StepPruningCallback(trial, monitor="val_bleu")


def _stop_when_pressed(ctrl_c: _CtrlC):
    """A Ctrl-C whose KeyboardInterrupt Python dropped (raised inside a __del__, seen in the regex module while
    the data are tokenized) left only _CtrlC's flag: the trial's training stops at its next step instead of
    running to the end. (Once training runs, harness.train.callbacks.ResumeState handles SIGINT itself.)"""
    import lightning.pytorch as pl

    class StopWhenPressed(pl.Callback):
        def _check(self, *args) -> None:
            if ctrl_c.pressed:
                raise KeyboardInterrupt

        on_train_start = on_train_batch_end = on_validation_batch_end = _check

    return StopWhenPressed()


class Objective_:
    """The objective one worker runs: suggest, admit, train, store, return the metric value(s)."""

    def __init__(self, spec: SweepSpec, ctx: Context, study, ctrl_c: _CtrlC | None = None):
        self.spec, self.ctx, self.study, self.ctrl_c = spec, ctx, study, ctrl_c

    # -- params
    def suggest(self, trial) -> dict[str, Any]:
        spec = self.spec
        if spec.sampler == "grid":
            return {name: trial.suggest_categorical(name, values) for name, values in spec.grid_space.items()}
        out = {}
        for name, p in spec.space.items():
            if p.type == "categorical":
                out[name] = trial.suggest_categorical(name, p.choices)
            elif p.type == "int":
                out[name] = trial.suggest_int(name, p.low, p.high, step=p.step or 1, log=p.log)
            else:
                out[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
        return out

    # -- admission: exact budget and no duplicate grid point, whatever the other workers do
    def admit(self, trial, params: dict) -> None:
        import optuna
        from optuna.trial import TrialState

        spec, me = self.spec, trial.number
        mine = tuple(params[n] for n in spec.grid_space) if spec.sampler == "grid" else None
        while True:
            trials = self.study.get_trials(deepcopy=False)
            if mine is not None:
                for t in trials:
                    if t.number == me or _point(spec, t) != mine:
                        continue
                    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
                        raise _NotRun(f"grid point already done by trial {t.number}")
                    if t.state == TrialState.RUNNING and (t.number < me or t.user_attrs.get("admitted")):
                        raise _NotRun(f"grid point already running as trial {t.number}")
            prog = progress(spec, trials)
            if prog.finished >= spec.n_trials:
                raise _NotRun(f"the study already has its {spec.n_trials} trials")
            ahead = sum(t.state == TrialState.RUNNING and t.number < me for t in trials)
            if prog.finished + ahead < spec.n_trials:
                trial.set_user_attr("admitted", True)
                return
            # the budget is taken by running trials; one may still fail or be pruned, so wait
            if _is_rdb(self.study._storage):
                optuna.storages.fail_stale_trials(self.study)
            time.sleep(self.ctx.poll)

    def _resume_from(self, trial, out: Path) -> bool:
        """A retried trial (its worker died: SIGKILL, pre-emption, a lost machine; or Ctrl-C) continues the
        failed trial's training from that trial's last.ckpt instead of starting at step 0: the failed trial's
        unfinished run directory (trials/<n>.partial) becomes this trial's, and training resumes from it (exactly,
        on CPU: harness.train.callbacks.ResumeState). Returns whether it does."""
        from optuna.storages import RetryFailedTrialCallback

        source = trial.user_attrs.get("resume_from")
        if source is None:
            source = RetryFailedTrialCallback.retried_trial_number(trial)
        if source is None:
            return False
        trials = out.parent
        partial = trials / f"{source}.partial"
        last = partial / "checkpoints" / "last.ckpt"
        if not last.is_file() or (partial / ".lock").exists() and _locked(partial / ".lock"):
            return False
        from harness.train.checkpoints import load_checkpoint

        try:
            step = int(load_checkpoint(last)["global_step"])
        except HarnessError:
            return False  # a truncated checkpoint (killed while writing it): start over
        target = out.with_name(out.name + ".partial")
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
        trial.set_user_attr("resumed_from", {"trial": int(source), "step": step})
        return True

    def __call__(self, trial):
        try:
            return self._run(trial)
        except KeyboardInterrupt:  # anywhere in the trial: imports, data, fit, test-set decoding
            trial.set_user_attr("fail_reason", "interrupted")
            raise

    def _run(self, trial):
        import optuna

        from harness.runs.run import train

        _quiet_optuna()  # importing lightning resets its loggers to INFO
        spec, ctx = self.spec, self.ctx
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("admitted", False)  # a retried copy inherits the dead trial's user attrs
        params = self.suggest(trial)
        try:
            self.admit(trial, params)
        except _NotRun as e:
            trial.set_user_attr("fail_reason", f"not run: {e}")
            raise
        seed = params["seed"] if spec.sampler == "grid" else int(trial.user_attrs.get("seed", spec.seeds[0]))
        trial.set_user_attr("seed", seed)
        over = spec.trial_overrides(params, seed)
        over["tracking.wandb.group"] = ctx.study
        over["tracking.wandb.job_type"] = "trial"
        if ctx.gpus_per_trial > 1 and os.environ.get("CUDA_VISIBLE_DEVICES"):
            # several GPUs per trial: DDP inside the trial (ddp_spawn, see below)
            over.update({"train.devices": ctx.gpus_per_trial, "train.strategy": "ddp_spawn"})
        try:
            cfg = load_config(spec.base, over)
        except HarnessError as e:
            trial.set_user_attr("fail_reason", str(e))
            raise _TrialFailed(str(e)) from None
        if cfg.train.devices > 1 and cfg.train.strategy != "ddp_spawn":
            # Lightning's ddp launcher re-runs this very command line in every other rank (it would start
            # more sweeps); ddp_spawn starts the ranks from this process, as Optuna's DDP example does
            cfg = load_config(spec.base, {**over, "train.strategy": "ddp_spawn"})
        trial.set_user_attr("config", flatten(to_dict(cfg)))
        callbacks = []
        if cfg.train.devices == 1:  # (ddp_spawn pickles callbacks for its ranks; these hold this process's state)
            if self.ctrl_c is not None:
                callbacks.append(_stop_when_pressed(self.ctrl_c))
            if spec.pruner != "none":
                callbacks.append(_pruning_callback(trial))
        out = Path(ctx.reports) / ctx.study / "trials" / str(trial.number)
        info = {"trial": trial.number, "study": ctx.study, **params, "seed": seed}
        resumed = self._resume_from(trial, out)
        try:
            result = train(
                cfg,
                output=out,
                overwrite=not resumed,
                resume=resumed,
                trial_info=info,
                callbacks=callbacks,
                progress=False,
            )
        except optuna.TrialPruned as e:
            trial.set_user_attr("fail_reason", str(e) or "pruned")
            trial.set_user_attr("run_dir", str(out.with_name(out.name + ".partial")))
            raise
        except SystemExit:
            # Lightning turns Ctrl-C during fit into sys.exit(1); make it an interrupt again so that Optuna
            # marks the trial FAIL (the rerun re-queues it) and the sweep stops with status 130
            trial.set_user_attr("fail_reason", "interrupted")
            raise KeyboardInterrupt from None
        except HarnessError as e:
            trial.set_user_attr("fail_reason", str(e))
            if "diverged" in str(e):
                raise optuna.TrialPruned(str(e)) from None
            raise _TrialFailed(str(e)) from None
        metrics = result.metrics
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("run_dir", str(result.run_dir))
        values = []
        for o in spec.objectives:
            v = metrics.get(o.metric)
            if v is None or not isinstance(v, int | float) or math.isnan(v) or math.isinf(v):
                reason = f"objective {o.metric} is {v!r} for this run"
                trial.set_user_attr("fail_reason", reason)
                raise optuna.TrialPruned(reason)
            values.append(float(v))
        if spec.sampler != "grid" and len(spec.seeds) > 1 and "repeat_of" not in trial.user_attrs:
            # a sampled configuration is repeated with the other seeds (queued trials run before new samples)
            for s in spec.seeds[1:]:
                self.study.enqueue_trial(trial.params, user_attrs={"seed": s, "repeat_of": trial.number})
        return values[0] if len(values) == 1 else tuple(values)


def _locked(path: Path) -> bool:
    """Whether another process holds the run directory's lock (harness.runs.run.RunDir): its trial still trains."""
    import fcntl

    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _is_rdb(storage) -> bool:
    from optuna.storages import RDBStorage

    return isinstance(storage, RDBStorage) or isinstance(getattr(storage, "_backend", None), RDBStorage)


def _describe(spec: SweepSpec, t) -> str:
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


class _CtrlC:
    """Ctrl-C in a sweep worker: remember it, then raise KeyboardInterrupt as Python's own handler does.
    Python drops ("Exception ignored in ...") an exception raised while it runs a garbage-collection or weakref
    callback (seen inside SQLAlchemy), so the worker also checks the flag at every trial boundary: a Ctrl-C
    can delay the stop to the end of the running trial, never cancel it. (During training the run's own
    handler (harness.train.callbacks.ResumeState) takes over and stops after the current step.)"""

    def __init__(self) -> None:
        self.pressed = False
        self._previous = None

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handler(self, signum, frame) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt


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
            print(f"{tag}{_describe(spec, t)}", flush=True)

    stop = MaxTrialsCallback(spec.n_trials, states=(TrialState.COMPLETE,))
    failures = 0
    with _CtrlC() as ctrl_c:
        objective = Objective_(spec, ctx, study, ctrl_c)
        while True:
            ctrl_c.check()
            trials = study.get_trials(deepcopy=False)
            prog = progress(spec, trials)
            if prog.finished >= spec.n_trials:
                return 0
            if prog.gave_up(spec):
                return 1  # the coordinator says why
            if spec.sampler == "grid":
                can_start = prog.finished + prog.running < spec.n_trials and (prog.waiting > 0 or prog.untouched > 0)
            else:
                can_start = prog.finished + prog.running < spec.n_trials
            if not can_start:
                if prog.running == 0 and prog.waiting == 0:
                    return 0 if prog.finished >= spec.n_trials else 1
                if _is_rdb(study._storage):
                    optuna.storages.fail_stale_trials(study)
                time.sleep(ctx.poll)
                continue
            before = {t.number for t in trials}
            study.optimize(
                objective,
                n_trials=1,
                catch=(_NotRun, _TrialFailed),
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


# ------------------------------------------------------------------------------------------ coordinator
def _gpu_slices(workers: int, per_trial: int) -> list[str | None]:
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


def _worker_argv(args, ctx: Context, index: int) -> list[str]:
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


def slurm_parameters(args, study: str) -> dict[str, Any]:
    """submitit AutoExecutor parameters of the worker jobs, from the --slurm-* options (each checked, one-line
    errors). Generic names go to every executor (the local one of the tests too), slurm_* ones to sbatch."""
    given = {
        "--slurm-partition": args.slurm_partition,
        "--slurm-time": args.slurm_time,
        "--slurm-cpus-per-task": args.slurm_cpus_per_task,
        "--slurm-gpus-per-node": args.slurm_gpus_per_node,
        "--slurm-mem": args.slurm_mem,
        "--slurm-account": args.slurm_account,
        "--slurm-arg": args.slurm_arg or None,
        "--dry-run": args.dry_run or None,
    }
    if not args.slurm:
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

    time_min = count("--slurm-time", args.slurm_time, 1, "minutes, an integer")
    gpus = count("--slurm-gpus-per-node", args.slurm_gpus_per_node, 0)
    mem = args.slurm_mem
    if mem is not None and not re.fullmatch(r"\d+([KMGT]B?)?", mem, flags=re.IGNORECASE):
        raise HarnessError(f"--slurm-mem: expected a size such as 8G, 500M or 0 (all of the node's), got {mem!r}")
    extra: dict[str, str] = {}
    for item in args.slurm_arg or []:
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
    gpus = args.gpus_per_trial if gpus is None else gpus
    return {
        "name": f"sweep-{study}",
        "timeout_min": SLURM_TIME_MIN if time_min is None else time_min,
        "tasks_per_node": 1,
        "cpus_per_task": count("--slurm-cpus-per-task", args.slurm_cpus_per_task, 1),
        "gpus_per_node": gpus or None,  # 0 (a CPU partition): no GPU request at all
        "slurm_partition": name("--slurm-partition", args.slurm_partition),
        "slurm_mem": mem,
        "slurm_account": name("--slurm-account", args.slurm_account),
        "slurm_additional_parameters": extra or None,
    }


def _slurm_folder(ctx: Context) -> Path:
    """Where the worker jobs' sbatch scripts, pickles and logs go (<job id>_0_log.out, <job id>_0_log.err)."""
    return Path(ctx.reports) / ctx.study / "slurm"


def sbatch_script(ctx: Context, params: dict[str, Any]) -> str:
    """The sbatch script submitit writes for each worker job with these parameters (`--dry-run` prints it); the
    jobs differ only in the pickled Context next to it. Built the way SlurmExecutor builds it, without needing
    srun on this machine."""
    import shlex

    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    folder = _slurm_folder(ctx)
    renamed = SlurmExecutor._equivalence_dict()  # generic -> sbatch names: name -> job_name, timeout_min -> time
    native = {renamed.get(k, k.removeprefix("slurm_")): v for k, v in params.items() if v is not None}
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    return _make_sbatch_string(command=command, folder=folder, **native)


def _slurm_job(ctx_dict: dict) -> int:
    """What one SLURM job runs (submitit pickles this function and its argument). A storage the node cannot
    reach (or any HarnessError) is one `error:` line in the job's log; a pre-emption notice (SIGTERM during
    training) fails the running trial as interrupted. Both return a status, so that submitit writes the
    result file the submitting command waits for."""
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


def _slurm_job_status(job, on_slurm: bool) -> int:
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


def _run_slurm(ctx: Context, workers: int, params: dict[str, Any], cluster: str | None) -> int:
    import submitit

    folder = _slurm_folder(ctx)
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
    return max(_slurm_job_status(job, on_slurm) for job in jobs)


def summarize(spec: SweepSpec, study) -> str:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    line = (
        f"study {study.study_name}: {count[TrialState.COMPLETE]} complete, "
        f"{count[TrialState.PRUNED]} pruned, {count[TrialState.FAIL]} failed, "
        f"{count[TrialState.WAITING]} queued (budget {spec.n_trials})"
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete and len(spec.objectives) == 1:
        sign = 1 if spec.objectives[0].direction == "maximize" else -1
        best = max(complete, key=lambda t: sign * t.value)
        line += f"\nbest {_describe(spec, best)}"
    elif complete:
        line += f"\nPareto front: trials {', '.join(str(t.number) for t in study.best_trials)}"
    return line


def cmd_sweep(args) -> int:
    reports = Path(args.reports).resolve()
    if args.workers < 1:
        raise HarnessError(f"--workers: expected an integer >= 1, got {args.workers}")
    if args.gpus_per_trial < 1:
        raise HarnessError(f"--gpus-per-trial: expected an integer >= 1, got {args.gpus_per_trial}")
    if args.n_trials is not None and args.n_trials < 1:
        raise HarnessError(f"--n-trials: expected an integer >= 1, got {args.n_trials}")
    if args.heartbeat <= 0:
        raise HarnessError(f"--heartbeat: expected seconds > 0, got {args.heartbeat}")
    # everything is validated before any trial (workers trust the coordinator's check of every grid point)
    spec = load_spec(args.spec, args.overrides, args.n_trials, check_points=not args.worker)
    name = args.study or spec.path.stem
    storage_url = args.storage or default_storage(reports, name)
    ctx = Context(
        str(Path(args.spec).resolve()),
        list(args.overrides),
        args.n_trials,
        name,
        storage_url,
        str(reports),
        args.quiet,
        args.heartbeat,
        args.gpus_per_trial,
        args.worker,
    )
    slurm = slurm_parameters(args, name)
    if args.dry_run:  # the spec and the options are checked; the storage is not opened, nothing is submitted
        print(sbatch_script(ctx, slurm), end="")
        print(
            f"dry run: {args.workers} job{'s' if args.workers > 1 else ''} with this script would be submitted "
            f"(logs in {_slurm_folder(ctx)}); nothing was submitted",
            file=sys.stderr,
        )
        return 0
    if args.worker:
        try:
            return run_worker(ctx)
        except KeyboardInterrupt:
            return 130

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url, args.heartbeat)
    study = create_or_load_study(spec, name, storage)
    if _is_rdb(storage):
        optuna.storages.fail_stale_trials(study)  # also re-queues them (RetryFailedTrialCallback)
    else:
        fail_dead_local_trials(study)
    if spec.sampler == "grid":
        requeued = enqueue_missing_grid_points(spec, study)
        if requeued and not args.quiet:
            print(f"re-queued {requeued} grid points whose trials failed", flush=True)
    before = progress(spec, study.get_trials(deepcopy=False))
    if not args.quiet:
        print(
            f"study {name} on {mask_url(storage_url)}: {before.finished}/{spec.n_trials} done, "
            f"{args.workers} worker{'s' if args.workers > 1 else ''}",
            flush=True,
        )
    t0 = time.perf_counter()
    try:
        if args.slurm:
            status = _run_slurm(ctx, args.workers, slurm, args.slurm_cluster)
        elif args.workers == 1 and args.gpus_per_trial == 1:
            status = run_worker(dataclasses.replace(ctx, worker=0))
        else:
            status = _run_subprocesses(args, ctx)
    except KeyboardInterrupt:
        print(f"interrupted: study {name} is kept; rerun the same command to resume", file=sys.stderr)
        return 130
    trials = study.get_trials(deepcopy=False)
    prog = progress(spec, trials)
    print(summarize(spec, study))
    if not args.quiet:
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


def _foreground_on_a_terminal() -> bool:
    """Whether this process runs in the foreground process group of a terminal (where Ctrl-C signals the group)."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return True
        except OSError:
            continue
    return False


def _run_subprocesses(args, ctx: Context) -> int:
    slices = _gpu_slices(args.workers, ctx.gpus_per_trial)
    procs = []
    for i in range(args.workers):
        env = dict(os.environ)
        if slices[i] is not None:
            env["CUDA_VISIBLE_DEVICES"] = slices[i]
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.workers)))
        procs.append(subprocess.Popen(_worker_argv(args, ctx, i + 1), env=env, cwd=os.getcwd()))
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


class _IntermixedParser(argparse.ArgumentParser):
    """`harness sweep SPEC --study X data.name=multi30k`: key=value overrides may also follow the options
    (as `make sweep ARGS=...` puts them); plain argparse only takes positionals before them."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inside:  # parse_known_intermixed_args calls back into parse_known_args
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def register(sub) -> None:
    s = sub.add_parser("sweep", help="run an Optuna study from a sweeps/*.yaml spec with N workers")
    s.add_argument("spec", help="sweep spec, e.g. sweeps/score_functions.yaml")
    s.add_argument("overrides", nargs="*", help="dotted key=value overrides for every trial, e.g. data.name=multi30k")
    s.add_argument("--study", default=None, help="study name (default: the spec's file name)")
    s.add_argument(
        "--storage",
        default=None,
        help="sqlite:///FILE, postgresql://USER:PASS@HOST/DB or journal:///FILE "
        "(default: sqlite:///reports/STUDY/study.db)",
    )
    s.add_argument("--workers", type=int, default=1, help="worker processes (or SLURM jobs with --slurm)")
    s.add_argument("--n-trials", type=int, default=None, help="trial budget (default: the spec's n_trials)")
    s.add_argument("--gpus-per-trial", type=int, default=1, help="GPUs per trial; > 1 trains with DDP")
    s.add_argument("--slurm", action="store_true", help="submit the workers as SLURM jobs (submitit)")
    s.add_argument("--slurm-cluster", default=None, help=argparse_suppress())
    s.add_argument("--slurm-partition", default=None, help="--slurm: the partition of the worker jobs")
    s.add_argument(
        "--slurm-time", default=None, help=f"--slurm: time limit of a worker job in minutes ({SLURM_TIME_MIN})"
    )
    s.add_argument(
        "--slurm-cpus-per-task", default=None, help="--slurm: CPUs of a worker job (the partition's default)"
    )
    s.add_argument(
        "--slurm-gpus-per-node",
        default=None,
        help="--slurm: GPUs of a worker job (default: --gpus-per-trial; 0 on a CPU partition)",
    )
    s.add_argument(
        "--slurm-mem", default=None, help="--slurm: memory of a worker job, e.g. 8G (the partition's default)"
    )
    s.add_argument("--slurm-account", default=None, help="--slurm: the account the worker jobs are charged to")
    s.add_argument(
        "--slurm-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--slurm: any other sbatch option, e.g. qos=high or constraint=a100 (repeatable)",
    )
    s.add_argument(
        "--dry-run", action="store_true", help="--slurm: print the worker jobs' sbatch script, submit nothing"
    )
    s.add_argument(
        "--heartbeat",
        type=float,
        default=10.0,
        help="seconds between trial heartbeats (RDB storages); a trial silent for 3x this is retried",
    )
    s.add_argument("--reports", default="reports", help="folder for STUDY/ (trials, default storage)")
    s.add_argument("--worker", type=int, default=0, help=argparse_suppress())
    s.add_argument("--quiet", action="store_true", help="no per-trial lines, only the summary")
    s.set_defaults(func=cmd_sweep)
    s.__class__ = _IntermixedParser


def argparse_suppress():
    return argparse.SUPPRESS

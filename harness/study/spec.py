"""A sweep spec (sweeps/*.yaml): a base experiment config, overrides applied to every trial, a search space of
dotted config keys, a sampler (grid | tpe | random), the objective(s) read from metrics.json, seeds, a trial
budget and a pruner. load_spec validates the whole spec (every grid point's config, with
harness.experiment.load_config) before any trial, with one-line errors naming the file and the key."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import all_keys, content_for_digest, parse_overrides, read_yaml
from harness.errors import HarnessError
from harness.experiment import load_config
from harness.metrics import keys
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
class ObjectiveMetric:
    """One objective of a study: a numeric metrics.json key (harness/metrics/keys.py OBJECTIVES) and which way is
    better."""

    metric: str
    direction: str


@dataclass
class SweepSpec:
    path: Path
    base: Path
    overrides: dict[str, Any]
    space: dict[str, Param]
    sampler: str
    objectives: list[ObjectiveMetric]
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
    """Digest of a config file's resolved content (comments and key order do not count; keys added since at
    their defaults neither: harness/config.py DIGEST_NEUTRAL_AT_DEFAULT)."""
    doc = json.dumps(content_for_digest(load_config(path)), sort_keys=True, default=str)
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


def _parse_objectives(path: Path, raw) -> list[ObjectiveMetric]:
    if raw is None:
        return [ObjectiveMetric(keys.BLEU, "maximize")]
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
        if metric not in keys.OBJECTIVES:
            raise HarnessError(
                f"{where}.metric: {metric!r} is not a numeric metrics.json key{_suggest(metric, keys.OBJECTIVES)}"
            )
        direction = item.get("direction", "maximize")
        if direction not in DIRECTIONS:
            raise HarnessError(
                f"{where}.direction: expected maximize or minimize, got {direction!r}{_suggest(direction, DIRECTIONS)}"
            )
        out.append(ObjectiveMetric(metric, direction))
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

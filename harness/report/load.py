"""Inputs of a report: an Optuna study (each trial carries its run directory) or loose run directories.

Everything is read from files: the study's trials (user attributes `metrics`, `run_dir`, `config`, `seed`,
written by `harness sweep`) and each run directory's `config.yaml`, `metrics.json`, `test.hyp`,
`attention/test.npz`, `logs/metrics.csv` (the validation curve). The report never imports model code.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import flatten, neutral_defaults, read_yaml
from harness.errors import HarnessError
from harness.metrics.keys import CONVERGED, STOP_REASON, VALIDATION
from harness.paths import PROJECT_ROOT
from harness.runs.layout import CONFIG_FILE, EXTENDS_FILE, LOG_FILE, METRICS_FILE

# stop_reason of a run whose metrics.json predates the stopping rule (no `converged` / `stop_reason` keys)
LEGACY_STOP_REASON = "unknown (trained before the stopping rule)"


@dataclass
class RunRecord:
    """One finished run: where it is, its flattened config and its metrics.json."""

    name: str
    run_dir: Path | None
    config: dict[str, Any]  # flattened, dotted keys ("model.score", "seed", ...)
    metrics: dict[str, Any]
    trial: int | None = None

    @property
    def seed(self) -> Any:
        return self.config.get("seed", self.metrics.get("seed"))

    @property
    def converged(self) -> bool:
        """True only when the stopping rule ended training (metrics.json `converged`); runs written before the
        key existed are not."""
        return self.metrics.get(CONVERGED) is True

    @property
    def stop_reason(self) -> str:
        """metrics.json `stop_reason` (early_stopping, max_steps, max_epochs, max_time, non_finite_metric)."""
        reason = self.metrics.get(STOP_REASON)
        return str(reason) if reason else LEGACY_STOP_REASON


@dataclass
class Source:
    """What was loaded: the runs, and the study they came from (None for loose run directories)."""

    runs: list[RunRecord]
    study: Any = None  # optuna.Study
    study_name: str | None = None
    storage: str | None = None
    objective: list[dict] = field(default_factory=lambda: [{"metric": "bleu", "direction": "maximize"}])
    notes: list[str] = field(default_factory=list)


def default_storage(study: str) -> str:
    return f"sqlite:///reports/{study}/study.db"


def is_run_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / METRICS_FILE).is_file()


def continued_by(run_dirs: list[Path]) -> dict[int, int]:
    """{trial: the trial that continued it under a raised budget} among a sweep's finished trial directories."""
    return {int(note["trial"]): int(Path(d).name) for d, note in continuations(run_dirs)}


def continuations(run_dirs: list[Path]) -> list[tuple[Path, dict]]:
    """The run directories among these that continue another trial, with their extends.json."""
    notes = [(Path(d), Path(d) / EXTENDS_FILE) for d in run_dirs]
    return [(d, json.loads(f.read_text())) for d, f in notes if f.is_file()]


def without_continued(run_dirs: list[Path]) -> list[Path]:
    """A sweep's trial directories without the trials that a later one continued under a raised budget."""
    gone = continued_by(run_dirs)
    return [d for d in run_dirs if not (Path(d).name.isdigit() and int(Path(d).name) in gone)]


def continued_rows(study_dir: Path, run_dirs: list[Path]) -> list[dict]:
    """One row per trial of this study that continues another: its extends.json, the study, and `by` (itself)."""
    return [{"study": Path(study_dir).name, **note, "by": int(d.name)} for d, note in continuations(run_dirs)]


def shown_path(path: Path) -> str:
    """A path as reports show it: relative to the project root when inside it (a report committed under results/
    reads the same from every clone), else as it is."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT.resolve()))
    except ValueError:
        return str(path)


def expand_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Run directories; a directory without metrics.json that holds run directories stands for all of them."""
    out: list[Path] = []
    for p in map(Path, paths):
        if is_run_dir(p):
            out.append(p)
        elif p.is_dir() and (kids := sorted(c for c in p.iterdir() if is_run_dir(c))):
            out.extend(without_continued(kids))  # a sweep's trials/: a continued trial stands aside
        elif p.is_dir():
            raise HarnessError(f"run directory {p}: no metrics.json (expected a finished `harness train` output)")
        else:
            raise HarnessError(f"run directory {p}: not found")
    return out


def _scalar(v: Any) -> Any:
    """Config values become hashable scalars (lists -> JSON text) so runs can be grouped by them."""
    if isinstance(v, list | dict | tuple):
        return json.dumps(v, sort_keys=True)
    return v


def with_neutral_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A run's flattened config with the keys added since it ran at the value it ran with (their default:
    harness/config.py DIGEST_NEUTRAL_AT_DEFAULT), so that a key new since a study began does not split its
    configurations into runs with and without it."""
    if not any(k.startswith(("model.", "train.")) for k in config):
        return config  # no config to complete (a run directory without config.yaml)
    return {**{k: _scalar(v) for k, v in neutral_defaults().items()}, **config}


def read_run_config(run_dir: Path) -> dict[str, Any]:
    doc = read_yaml(run_dir / CONFIG_FILE) if (run_dir / CONFIG_FILE).is_file() else {}
    doc.pop("_meta", None)
    return with_neutral_defaults({k: _scalar(v) for k, v in flatten(doc).items()})


def read_metrics(path: Path) -> dict:
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise HarnessError(f"metrics {path}: cannot be read as JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(m, dict):
        raise HarnessError(f"metrics {path}: expected a JSON object")
    return m


def _unique_names(dirs: list[Path]) -> list[str]:
    names = [d.name for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [f"{d.parent.name}/{d.name}" if names.count(d.name) > 1 else d.name for d in dirs]


def from_run_dirs(paths: list[str | Path]) -> Source:
    dirs = expand_run_dirs(paths)
    if not dirs:
        raise HarnessError("report: no run directories given")
    runs = []
    for name, d in zip(_unique_names(dirs), dirs):
        runs.append(RunRecord(name, d, read_run_config(d), read_metrics(d / METRICS_FILE)))
    return Source(runs)


def _objective_of(study) -> list[dict]:
    """The study's objective: user attr `objective` ([{"metric", "direction"}]), else its directions and
    metric names; default BLEU, maximised."""
    obj = study.user_attrs.get("objective", study.user_attrs.get("objectives"))  # harness sweep: "objectives"
    if isinstance(obj, dict):
        obj = [obj]
    if isinstance(obj, list) and obj and all(isinstance(o, dict) and "metric" in o for o in obj):
        return [{"metric": str(o["metric"]), "direction": str(o.get("direction", "maximize"))} for o in obj]
    names = getattr(study, "metric_names", None) or []
    dirs = [d.name.lower() for d in study.directions]
    if names and len(names) == len(dirs):
        return [{"metric": n, "direction": d} for n, d in zip(names, dirs)]
    if len(dirs) == 1:
        return [{"metric": "bleu", "direction": dirs[0]}]
    return [{"metric": "bleu", "direction": "maximize"}]


# user attr of a sweep trial that continues a budget-stopped COMPLETE trial (its number) under a raised budget
# (harness.study.study.enqueue_extensions); a report shows the continuation in the stopped trial's place
EXTENDS = "extends"


def is_extension(t) -> bool:
    return t.user_attrs.get(EXTENDS) is not None


def superseded(trials) -> dict[int, int]:
    """COMPLETE trials that a COMPLETE extension continued: {trial: the trial that continued it}. A report shows
    the extension in their place (a chain 0 -> 5 -> 9 supersedes 0 and 5)."""
    from optuna.trial import TrialState

    return {int(t.user_attrs[EXTENDS]): t.number for t in trials if t.state == TrialState.COMPLETE and is_extension(t)}


def from_study(name: str, storage: str | None = None) -> Source:
    """The completed trials of a study, from any storage a sweep writes (opened the way the sweep opens it:
    the PostgreSQL driver that is installed, journal files too); the URL is shown with its password masked."""
    import optuna

    from harness.storage import mask_url, open_storage

    storage = storage or default_storage(name)
    shown = mask_url(storage)
    for scheme in ("sqlite:///", "journal://"):
        path = Path(storage.removeprefix(scheme)) if storage.startswith(scheme) else None
        if path is not None and not path.is_file():  # opening would silently create an empty study file
            raise HarnessError(f"study storage {path}: not found (run `harness sweep` first, or pass --storage URL)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = open_storage(storage)  # a HarnessError naming the masked URL when the server cannot be reached
    try:
        study = optuna.load_study(study_name=name, storage=opened)
    except KeyError:
        try:
            have = ", ".join(optuna.get_all_study_names(opened)) or "none"
        except Exception:
            have = "?"
        raise HarnessError(f"study '{name}': not found in {shown} (studies there: {have})") from None
    except Exception as e:
        msg = str(e).splitlines()[0][:120].replace(storage, shown)
        raise HarnessError(f"study '{name}': cannot open storage {shown} ({msg})") from None
    src = Source([], study, name, shown, _objective_of(study))
    trials = study.get_trials(deepcopy=False)
    gone = superseded(trials)
    for t in trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        if t.number in gone:
            src.notes.append(f"trial {t.number}: continued under a raised budget as trial {gone[t.number]}")
            continue
        attrs = t.user_attrs
        run_dir = Path(attrs["run_dir"]) if attrs.get("run_dir") else None
        if run_dir is not None and not run_dir.is_absolute() and not run_dir.is_dir():
            run_dir = PROJECT_ROOT / run_dir  # sweeps store paths relative to where they ran (the project root)
        if run_dir is not None and not run_dir.is_dir():
            src.notes.append(f"trial {t.number}: run directory {run_dir} not found (metrics from the study only)")
            run_dir = None
        metrics = attrs.get("metrics")
        if not isinstance(metrics, dict):
            if run_dir is None or not (run_dir / METRICS_FILE).is_file():
                src.notes.append(f"trial {t.number}: no metrics (neither a `metrics` attribute nor a run directory)")
                continue
            metrics = read_metrics(run_dir / METRICS_FILE)
        config = attrs.get("config")
        if isinstance(config, dict):
            config = with_neutral_defaults({k: _scalar(v) for k, v in flatten(config).items()})
        else:
            config = (
                read_run_config(run_dir)
                if run_dir is not None
                else {f"params.{k}": _scalar(v) for k, v in t.params.items()}
            )
        if "seed" not in config and attrs.get("seed") is not None:
            config["seed"] = attrs["seed"]
        src.runs.append(RunRecord(f"trial {t.number}", run_dir, config, metrics, t.number))
    if not src.runs:
        raise HarnessError(f"study '{name}': no completed trials with metrics in {shown}")
    return src


def load_source(study_or_run_dirs, storage: str | None = None) -> Source:
    """A study name, or one or more run directories (str/Path or a list of them)."""
    if isinstance(study_or_run_dirs, str | Path):
        items = [study_or_run_dirs]
    else:
        items = list(study_or_run_dirs)
    if not items:
        raise HarnessError("report: expected a study name or run directories")
    if len(items) == 1 and not Path(items[0]).is_dir():
        name = str(items[0])
        if ("/" in name or name.startswith(".")) and storage is None:
            raise HarnessError(f"report: {name} is neither a run directory nor a study name")
        return from_study(name, storage)
    return from_run_dirs(items)


def read_validation_log(run_dir: Path, final_step: int | None = None, log: Path = LOG_FILE) -> list[dict]:
    """The validation rows of the run's logs/metrics.csv (Lightning's CSVLogger): [{"step", "val_ppl", ...}].

    `step` is the training step (optimizer steps so far) the validation scored, as metrics.json's `best_step`
    counts it: Lightning logs a validation during fit at global_step - 1, so the CSV step + 1; the final
    validation after fit (weights not validated at a multiple of val_every) is logged at global_step itself,
    hence the cap at `final_step` (metrics.json `steps`). A step validated twice keeps its last row. Empty and
    non-finite cells are left out; [] when the file is absent. `log`: another log of the run in the same format.
    """
    path = run_dir / log
    if not path.is_file():
        return []
    by_step: dict[int, dict] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            values = {}
            for key in VALIDATION:
                try:
                    v = float(row.get(key) or "nan")
                except ValueError:
                    continue
                if math.isfinite(v):
                    values[key] = v
            if not values or not (row.get("step") or "").strip():
                continue
            step = int(float(row["step"])) + 1
            if final_step is not None and final_step > 0:
                step = min(step, int(final_step))
            by_step[step] = {"step": step, **values}
    return [by_step[s] for s in sorted(by_step)]

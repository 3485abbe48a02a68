"""Weights & Biases through Lightning's WandbLogger: offline by default, never fatal.

What lands where (RUN_DIR/wandb/offline-run-<time>-<id>/, read back with harness/runs/wandb_reader.py):
  config   the resolved experiment config flattened (`model.arch`, `model.score`, ...), `seed`, `versions.*`,
           `git_commit`, `data.sizes.<split>`, `params`; for sweep trials `trial.*` (number, sampled values)
  history  what TranslationModule logs with `self.log`: train_loss, lr, grad_norm, tokens_per_sec every
           `train.log_every` steps; val_loss, val_ppl, val_bleu at each validation (x: trainer/global_step)
  summary  every scalar/string of metrics.json (bleu, chrf, signatures, aer, ..., speeds), plus
           `by_length` (wandb.Table) and `by_length_bleu` (line plot of BLEU against source length),
           `samples` (table of the first test translations), `attention/test_<i>` (heatmaps of i = 0, 1, 2)

Modes (`tracking.wandb.mode`): offline (default) writes the run locally, `wandb sync` uploads it later;
online needs an API key (WANDB_API_KEY or a ~/.netrc entry) and falls back to offline, with one warning,
without one; disabled writes nothing. No prompt, no hang (bounded init), and a W&B error never stops
training: the logger warns once and goes quiet, and metrics.json is written as always.
"""

from __future__ import annotations

import io
import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lightning.pytorch.loggers import WandbLogger

from harness.config import ExperimentConfig, WandbConfig, flatten, to_dict
from harness.metrics.keys import BUCKET_KEYS, BY_LENGTH
from harness.runs.layout import hypotheses_path, read_attention
from harness.runs.provenance import git_commit, versions
from harness.runs.wandb_reader import find_run_files, wait_complete

log = logging.getLogger(__name__)

SAMPLE_SENTENCES = 20  # rows of the sample-translation table
HEATMAP_SENTENCES = (0, 1, 2)  # fixed test sentences, so heatmaps compare across runs
HEATMAP_MAX_TOKENS = 50  # longer sentences are cut on the axes to stay readable
INIT_TIMEOUT_S = 30.0  # online: give up on the server after this long rather than hang the run
FLUSH_TIMEOUT_S = 30.0  # wait at most this long for wandb-core to finish writing the run's log


def run_name(cfg: ExperimentConfig) -> str:
    if cfg.tracking.wandb.name:
        return cfg.tracking.wandb.name
    return f"{cfg.model.arch}-{cfg.model.score}-s{cfg.seed}"


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


# ------------------------------------------------------------------------------------------ mode, key
def api_key_configured() -> bool:
    """Whether W&B would find credentials without prompting: $WANDB_API_KEY (or an identity token file),
    or a .netrc entry for the W&B host ($WANDB_BASE_URL, default api.wandb.ai). The key itself is never read
    into the config or logged."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC") or None).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(cfg: ExperimentConfig) -> str:
    """The mode this run uses: the configured one, except online without a key -> offline (with a warning).
    $WANDB_MODE=disabled/offline turns W&B off/offline for every run started from that shell."""
    mode = cfg.tracking.wandb.mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("disabled", "offline", "dryrun") and mode != "disabled":
        mode = "disabled" if env == "disabled" else "offline"
    if mode == "online" and not api_key_configured():
        log.warning(
            "W&B: tracking.wandb.mode=online but no API key (WANDB_API_KEY or ~/.netrc for api.wandb.ai); "
            "logging offline instead, upload later with `wandb sync`"
        )
        mode = "offline"
    return mode


def _project_entity(w: WandbConfig) -> tuple[str, str | None]:
    """tracking.wandb.project/entity when set away from the default, else $WANDB_PROJECT/$WANDB_ENTITY."""
    default = WandbConfig()
    project = w.project if w.project != default.project else os.environ.get("WANDB_PROJECT") or w.project
    entity = w.entity or os.environ.get("WANDB_ENTITY") or None
    return project, entity


def run_config(cfg: ExperimentConfig, data, params: int, trial_info: dict | None = None) -> dict[str, Any]:
    """The W&B run config: everything needed to filter and group runs in the dashboard."""
    config = flatten(to_dict(cfg))
    config.update(flatten({"versions": versions()}))
    config["git_commit"] = git_commit()
    config.update({f"data.sizes.{k}": v for k, v in data.sizes().items()})
    config["params"] = params
    if trial_info:
        config.update(trial_config(trial_info))
    return config


def trial_config(trial_info: dict) -> dict[str, Any]:
    """A sweep trial's `trial.number`, `trial.study` and sampled values `trial.params.<key>`, from the
    sweep's flat form {"trial": n, "study": s, "model.score": ..., "seed": ...} or {"number", "params"}."""
    info = dict(trial_info)
    number = info.pop("trial", info.pop("number", None))
    study = info.pop("study", None)
    params = info.pop("params", None) or {}
    params = {**info, **params}
    out: dict[str, Any] = {"trial.number": number, "trial.study": study}
    out.update({f"trial.params.{k}": v for k, v in flatten(params).items()})
    return out


# ------------------------------------------------------------------------------------------ the logger
class SafeWandbLogger(WandbLogger):
    """WandbLogger whose calls from the trainer cannot raise: the first W&B error is logged once, then the
    logger does nothing, so a full disk or a dead service never ends a training run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failed = False
        self.closed = False

    def _guarded(self, what: str, fn, *args, **kwargs):
        if self.failed:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            self.failed = True
            log.warning("W&B stopped logging this run (%s failed: %s); training goes on", what, _one_line(e))
            return None

    def __getstate__(self) -> dict:
        # pickled for ddp_spawn ranks, which attach to this run; Lightning's own version also calls
        # wandb.require("service"), a no-op in wandb 0.31 that prints a warning
        state = self.__dict__.copy()
        if self._experiment is not None:
            state["_id"] = getattr(self._experiment, "id", None)
            state["_attach_id"] = getattr(self._experiment, "_attach_id", None)
            state["_name"] = self._experiment.name
        state["_experiment"] = None
        return state

    def log_metrics(self, metrics, step=None) -> None:
        self._guarded("log", super().log_metrics, metrics, step)

    def log_hyperparams(self, params) -> None:
        self._guarded("config update", super().log_hyperparams, params)

    def after_save_checkpoint(self, checkpoint_callback) -> None:
        self._guarded("checkpoint hook", super().after_save_checkpoint, checkpoint_callback)

    def finalize(self, status: str) -> None:
        self._guarded("finalize", super().finalize, status)
        if status != "success":  # training ended by an error: close the run now, finish_tracking will not
            self.close(exit_code=1)

    def close(self, exit_code: int = 0) -> None:
        """Finish the run and wait until wandb-core has flushed its log, so the run directory is complete
        when it is renamed from RUN_DIR.partial (run.finish() returns before the file is written)."""
        run = self._experiment
        if run is None or self.closed:
            return
        # the finished run stays attached: a stray log raises (and is caught) instead of starting a new run
        self.closed = True
        try:
            log_file = run.settings.sync_file
            run.finish(exit_code=exit_code)
            if log_file and not wait_complete(log_file, FLUSH_TIMEOUT_S):
                raise TimeoutError(f"{log_file} not complete after {FLUSH_TIMEOUT_S:.0f} s")
        except Exception as e:
            if not self.failed:
                log.warning("W&B run not closed cleanly: %s", _one_line(e))
            self.failed = True


def previous_run_id(run_dir: Path) -> str | None:
    """The W&B id of the latest run under RUN_DIR/wandb (its log file is `*run-*/run-<id>.wandb`): a resumed
    training continues that run instead of starting another."""
    files = find_run_files(run_dir) if (Path(run_dir) / "wandb").is_dir() else []
    return files[-1].stem.removeprefix("run-") if files else None


def _init_run(
    cfg: ExperimentConfig, run_dir: Path, mode: str, config: dict, trial_info: dict | None, run_id: str | None = None
):
    import wandb

    w = cfg.tracking.wandb
    project, entity = _project_entity(w)
    group = w.group or (str(trial_info["study"]) if trial_info and trial_info.get("study") else None)
    job_type = "trial" if trial_info and w.job_type == WandbConfig().job_type else w.job_type
    settings = wandb.Settings(
        silent=True,  # no banner, no prompt
        console="off",  # leave stdout/stderr (and Lightning's progress bar) alone
        init_timeout=INIT_TIMEOUT_S,
        disable_git=True,  # the commit is in the config already (git_commit)
        save_code=False,
        disable_job_creation=True,
    )
    return wandb.init(
        dir=str(run_dir),
        mode=mode,
        project=project,
        entity=entity,
        name=run_name(cfg),
        group=group,
        job_type=job_type,
        config=config,
        settings=settings,
        reinit="create_new",  # sweep trials in one process each get their own run
        **({"id": run_id, "resume": "allow"} if run_id else {}),
    )


def make_wandb_logger(
    cfg: ExperimentConfig,
    run_dir: Path,
    data,
    params: int,
    trial_info: dict | None = None,
    resume: bool = False,
):
    """A WandbLogger writing under RUN_DIR/wandb, or None when disabled or when W&B cannot start.
    resume: continue the run dir's previous W&B run (same id, resume="allow"; offline, a second
    offline-run folder with the same id, which `wandb sync` appends to the same run)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:  # multi-process DDP: one W&B run, from rank 0 (Lightning logs only there)
        return None
    mode = wandb_mode(cfg)
    if mode == "disabled":
        return None
    try:
        config = run_config(cfg, data, params, trial_info)
        run_id = previous_run_id(run_dir) if resume else None
        try:
            run = _init_run(cfg, run_dir, mode, config, trial_info, run_id)
        except Exception as e:
            if mode != "online":
                raise
            log.warning("W&B online start failed (%s); logging offline instead", _one_line(e))
            run = _init_run(cfg, run_dir, "offline", config, trial_info, run_id)
        logger = SafeWandbLogger(experiment=run, save_dir=str(run_dir), name=run_name(cfg), project=run.project)
        # Lightning sets this x axis only for runs it starts itself; step_sync fills it in for later logs
        run.define_metric("trainer/global_step")
        run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
        return logger
    except Exception as e:  # W&B must never kill training
        log.warning("W&B disabled for this run: %s", _one_line(e))
        return None


# ------------------------------------------------------------------------------------------ end of run
def summary_values(metrics: dict) -> dict[str, Any]:
    """metrics.json as W&B summary values: scalars and strings as they are, nested dicts flattened
    (`splits.val.bleu`); lists (by_length) are logged as tables instead."""
    out = {}
    for k, v in flatten(metrics).items():
        if v is None or isinstance(v, bool | int | float | str):
            out[k] = v
    return out


def by_length_table(rows: list[dict]):
    import wandb

    columns = list(BUCKET_KEYS)
    return wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])


def by_length_plot(rows: list[dict]):
    """BLEU against source length (x = the bucket's shortest source length); empty buckets are left out."""
    import wandb

    points = [[r["lo"], r["bleu"], r["bucket"]] for r in rows if r.get("bleu") is not None]
    table = wandb.Table(columns=["source_length", "bleu", "bucket"], data=points)
    return wandb.plot.line(table, "source_length", "bleu", title="BLEU by source length")


def samples_table(run_dir: Path, data, n: int = SAMPLE_SENTENCES):
    import wandb

    hyp_file = hypotheses_path(run_dir)
    if not hyp_file.is_file():
        return None
    hyps = hyp_file.read_text(encoding="utf-8").splitlines()[:n]
    raw = data.splits[data.corpus.test_split].raw
    rows = [[i, raw.src[i], raw.tgt[i], h] for i, h in enumerate(hyps)]
    return wandb.Table(columns=["id", "source", "reference", "hypothesis"], data=rows)


def attention_figure(src: list[str], tgt: list[str], weights, title: str):
    """Heatmap of one sentence's attention: rows are decoder steps (target words, then </s>), columns source
    words. A bare matplotlib Figure on the Agg canvas: no pyplot global state, safe in worker threads."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = list(tgt) + ["</s>"]
    src, rows = list(src)[:HEATMAP_MAX_TOKENS], rows[:HEATMAP_MAX_TOKENS]
    weights = weights[: len(rows), : len(src)]
    fig = Figure(figsize=(max(3.0, 0.35 * len(src) + 1.5), max(2.5, 0.3 * len(rows) + 1.2)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src)), src, rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("hypothesis")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def attention_images(run_dir: Path, indices=HEATMAP_SENTENCES) -> list[tuple[int, Any]]:
    """(test sentence index, wandb.Image of its attention heatmap) for the fixed sentences that exist."""
    import wandb
    from PIL import Image

    z = read_attention(run_dir)
    if z is None:  # models without attention
        return []
    images = []
    with z:
        count = int(z["count"])
        for i in indices:
            if i >= count or f"attn_{i}" not in z:
                continue
            fig = attention_figure(z[f"src_{i}"].tolist(), z[f"tgt_{i}"].tolist(), z[f"attn_{i}"], f"test sentence {i}")
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            buffer.seek(0)
            images.append((i, wandb.Image(Image.open(buffer).convert("RGB"), caption=f"test sentence {i}")))
    return images


def finish_tracking(logger, metrics: dict, data, run_dir: Path) -> None:
    """Write metrics.json, tables and heatmaps to the run's summary and close it (never raises)."""
    if logger is None:
        return
    if not getattr(logger, "failed", False):
        try:
            run = logger.experiment
            media: dict[str, Any] = {}
            rows = metrics.get(BY_LENGTH) or []
            if rows:
                media[BY_LENGTH] = by_length_table(rows)
                media["by_length_bleu"] = by_length_plot(rows)
            samples = samples_table(run_dir, data)
            if samples is not None:
                media["samples"] = samples
            for i, image in attention_images(run_dir):  # one key each: sizes differ with sentence length
                media[f"attention/test_{i}"] = image
            if media:
                run.log(media)
            run.summary.update(summary_values(metrics))
        except Exception as e:
            log.warning("W&B summary not written: %s", _one_line(e))
    if isinstance(logger, SafeWandbLogger):
        logger.close()
    else:
        try:
            logger.experiment.finish()
        except Exception as e:
            log.warning("W&B run not closed cleanly: %s", _one_line(e))

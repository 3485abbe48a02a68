"""Report figures as PNG bytes (matplotlib Agg): learning curves, BLEU by source length, AER, BLEU vs
size/speed, Optuna plots, attention heatmaps. Every function returns None when there is nothing to draw."""

from __future__ import annotations

import io
import warnings

import matplotlib

from harness.metrics.keys import PARAMS, TRAIN_SPEED, VAL_AER, VAL_BLEU, VAL_LOSS, VAL_PPL

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 90


def plain(text) -> str:
    """Matplotlib text that is shown as written: `$` would start mathtext."""
    return str(text).replace("$", r"\$")


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def draw_attention(
    ax, attn: np.ndarray, src: list[str], tgt: list[str], title: str | None = None, colorbar: bool = False
) -> None:
    """Heatmap of one sentence's attention: source words on x, target words (+ </s>) on y.

    `attn` has shape (len(tgt)+1, len(src)); row t is the step that predicts target word t.
    """
    ylabels = [*tgt, "</s>"][: attn.shape[0]]
    im = ax.imshow(attn, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(src)))
    ax.set_xticklabels([plain(w) for w in src], rotation=90, fontsize=8)
    ax.set_yticks(range(len(ylabels)))
    ax.set_yticklabels([plain(w) for w in ylabels], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(plain(title), fontsize=9, pad=30 if len(src) else 6)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def attention_figure(attn: np.ndarray, src: list[str], tgt: list[str], title: str | None = None) -> bytes:
    h = max(3.0, 0.32 * attn.shape[0] + 1.5)
    w = max(3.5, 0.32 * attn.shape[1] + 2.0)
    fig, ax = plt.subplots(figsize=(w, h))
    draw_attention(ax, attn, src, tgt, title, colorbar=True)
    return to_png(fig)


def attention_grid(panels: list[tuple[str, np.ndarray, list[str], list[str]]], per_row: int = 3) -> bytes | None:
    """The same test sentence's attention, one panel per configuration (title, attn, src, tgt)."""
    if not panels:
        return None
    rows = (len(panels) + per_row - 1) // per_row
    cols = min(per_row, len(panels))
    src_len = max(p[1].shape[1] for p in panels)
    tgt_len = max(p[1].shape[0] for p in panels)
    w = max(3.2, 0.3 * src_len + 1.8)
    h = max(3.0, 0.3 * tgt_len + 2.0)
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    for ax, (title, attn, src, tgt) in zip(axes.flat, panels):
        draw_attention(ax, attn, src, tgt, title)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    return to_png(fig)


def bleu_by_length(by_len: pd.DataFrame, order: list[str]) -> bytes | None:
    """BLEU per source-length bucket, a line per configuration, band ± 1 std over seeds (Bahdanau Fig. 2)."""
    df = by_len.dropna(subset=["bleu"])
    df = df[df["n"] > 0]
    if df.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    buckets = df.drop_duplicates("bucket").sort_values("lo")[["bucket", "lo"]]
    xpos = {b: i for i, b in enumerate(buckets["bucket"])}
    for label in order:
        g = df[df["configuration"] == label]
        if g.empty:
            continue
        stats = (
            g.groupby("bucket")["bleu"].agg(["mean", "std", "count"]).reindex(buckets["bucket"]).dropna(subset=["mean"])
        )
        x = np.array([xpos[b] for b in stats.index])
        mean = stats["mean"].to_numpy()
        std = stats["std"].fillna(0.0).to_numpy()
        (line,) = ax.plot(x, mean, marker="o", label=plain(label))
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.18, linewidth=0)
    ax.set_xticks(range(len(xpos)))
    ax.set_xticklabels(list(xpos))
    ax.set_xlabel("source sentence length (words)")
    ax.set_ylabel("BLEU (bucket, corpus)")
    ax.set_title("BLEU by source length (band: ± 1 std over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return to_png(fig)


def metric_bars(
    lb: pd.DataFrame,
    key: str,
    label: str,
    lower_is_better: bool,
    unconverged: set[str] = frozenset(),
    baselines: list[tuple[str, float]] = (),
) -> bytes | None:
    """Mean per configuration with ± std error bars (e.g. AER); unconverged configurations hatched and labelled,
    each baseline (name, value) a dashed vertical line (e.g. the positional AER baseline)."""
    d = lb.dropna(subset=[f"{key}_mean"])
    if d.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(d) + 1.5))
    y = np.arange(len(d))
    bad = [c in unconverged for c in d["configuration"]]
    bars = ax.barh(y, d[f"{key}_mean"], xerr=d[f"{key}_std"].fillna(0.0), color="#4c72b0", alpha=0.85, capsize=3)
    for bar, b in zip(bars, bad):
        if b:
            bar.set_hatch("//")
            bar.set_alpha(0.45)
    ax.set_yticks(y)
    ax.set_yticklabels(
        [plain(c) + (" (unconverged)" if b else "") for c, b in zip(d["configuration"], bad)], fontsize=8
    )
    ax.invert_yaxis()
    for (name, value), color in zip(baselines, ("#c44e52", "#dd8452", "#8172b3", "#937860")):
        ax.axvline(value, color=color, linestyle="--", linewidth=1.4, label=plain(f"{name}: {value:.3f}"))
    if baselines:
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel(f"{label} ({'lower' if lower_is_better else 'higher'} is better; bars: ± 1 std over seeds)")
    ax.grid(axis="x", alpha=0.3)
    return to_png(fig)


CURVE_TITLES = {
    VAL_PPL: "validation perplexity",
    VAL_BLEU: "validation BLEU (greedy)",
    VAL_AER: "validation AER (gold dev sentences)",
    VAL_LOSS: "validation loss",
}


def learning_curve(
    stats: pd.DataFrame, metric: str, order: list[str], unconverged: set[str], notes: dict[str, str]
) -> bytes | None:
    """One metric against the training step: a line per configuration, the mean over its seeds with a ± 1 std
    band (stats from tables.curve_stats). Unconverged configurations are dashed and say so in the legend;
    `notes[configuration]` is appended to its legend entry (e.g. which seeds the line is over)."""
    if stats[stats["metric"] == metric].empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    draw_learning_curve(ax, stats, metric, order, unconverged, notes)
    return to_png(fig)


def draw_learning_curve(
    ax, stats: pd.DataFrame, metric: str, order: list[str], unconverged: set[str], notes: dict[str, str]
) -> None:
    """learning_curve's lines and bands on `ax` (solid: a ranked configuration; dashed: an unconverged one)."""
    d = stats[stats["metric"] == metric]
    for label in order:
        g = d[d["configuration"] == label].sort_values("step")
        if g.empty:
            continue
        x, mean, std = g["step"].to_numpy(), g["mean"].to_numpy(), g["std"].fillna(0.0).to_numpy()
        bad = label in unconverged
        text = label + (" (unconverged)" if bad else "") + (f" ({notes[label]})" if notes.get(label) else "")
        (line,) = ax.plot(
            x, mean, linestyle="--" if bad else "-", marker="." if len(x) < 30 else None, label=plain(text)
        )
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.18, linewidth=0)
    if metric == VAL_PPL and (d["mean"] > 0).all() and d["mean"].max() / max(d["mean"].min(), 1e-9) > 20:
        ax.set_yscale("log")  # perplexity falls by orders of magnitude early on
    ax.set_xlabel("training step")
    ax.set_ylabel(CURVE_TITLES.get(metric, metric))
    ax.set_title(
        f"{CURVE_TITLES.get(metric, metric)}: mean over seeds, band ± 1 std; dashed = unconverged", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def bleu_vs_cost(lb: pd.DataFrame) -> bytes | None:
    """BLEU against parameters and against training throughput, one point per configuration (± std)."""
    d = lb.dropna(subset=["bleu_mean"])
    if d.empty:
        return None
    panels = [
        (k, t) for k, t in ((PARAMS, "parameters"), (TRAIN_SPEED, "train tokens/s")) if d[f"{k}_mean"].notna().any()
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    for ax, (key, title) in zip(axes.flat, panels):
        for _, row in d.iterrows():
            if np.isnan(row[f"{key}_mean"]):
                continue
            ax.errorbar(
                row[f"{key}_mean"],
                row["bleu_mean"],
                yerr=np.nan_to_num(row["bleu_std"]),
                xerr=np.nan_to_num(row[f"{key}_std"]),
                fmt="o",
                capsize=3,
                label=plain(row["configuration"]),
            )
        ax.set_xlabel(title)
        ax.set_ylabel("BLEU")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return to_png(fig)


def optuna_plots(study) -> dict[str, bytes]:
    """Optuna's own matplotlib plots (optimization history, hyperparameter importances) where they apply."""
    import optuna

    out: dict[str, bytes] = {}
    if study is None:
        return out
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or len(study.directions) != 1 or any(t.value is None for t in complete):
        return out
    from optuna.visualization import matplotlib as ovm

    # rc_context: Optuna's plots switch matplotlib to the ggplot style globally; undo that afterwards
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")  # ExperimentalWarning
        for name, fn in (
            ("optimization history", ovm.plot_optimization_history),
            ("parameter importances", _importances),
        ):
            try:
                ax = fn(study)
                fig = ax.figure if hasattr(ax, "figure") else np.ravel(ax)[0].figure
                fig.set_size_inches(7.5, 4.2)
                out[name] = to_png(fig)
            except Exception:  # too few distinct parameters, a single value, ... : leave the plot out
                plt.close("all")
    return out


def _importances(study):
    """Optuna's hyperparameter importances: fANOVA (Optuna's default) when scikit-learn is installed, else
    PED-ANOVA (Watanabe et al. 2023), which Optuna implements without extra packages."""
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as ovm

    try:
        import sklearn  # noqa: F401

        return ovm.plot_param_importances(study)
    except ImportError:
        return ovm.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator())

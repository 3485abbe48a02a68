"""Render a Report to OUTPUT/: index.html (one self-contained page, images as data URIs), README.md (the same
tables in Markdown, the learning curves as learning_curve_<metric>.png beside it), leaderboard.csv,
unconverged.csv, diagonal.csv, runs.csv, significance.csv, by_length.csv, learning_curves.csv.

Every piece of text that comes from data or configs (sentences, config values, run names, paths) goes through
`html.escape` (HTML) or `md()` (Markdown) before it reaches the page.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.io import atomic_write_bytes, atomic_write_text
from harness.metrics.keys import (
    AER,
    VAL_AER,
    VAL_BLEU,
    VAL_PPL,
)
from harness.report.build import Report, source_description
from harness.report.plots import CURVE_TITLES
from harness.report.rows import (
    CURVE_NOTE,
    UNCONVERGED_NOTE,
    Cell,
    config_rows,
    configurations_rows,
    convergence_line,
    diagonal_note,
    esc,
    leaderboard_rows,
    ours_rows,
    papers_rows,
    papers_source_rows,
    runs_rows,
    significance_rows,
    unconverged_rows,
)
from harness.report.tables import (
    BETTER,
    DIAGONAL_LABEL,
    LABELS,
)
from harness.runs.layout import read_attention, read_hypotheses

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1250px;
color:#222;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;border-bottom:1px solid #ddd;padding-bottom:3px;
margin-top:34px}h3{font-size:15px;margin-bottom:6px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px}
th,td{border:1px solid #d4d4d4;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
td.best{font-weight:bold;background:#eaf5ea}#leaderboard td,#significance td,#runs td{white-space:nowrap}
#papers{font-size:12px}
.note{color:#555;font-size:12.5px;max-width:1100px}.muted{color:#888}
.sig{color:#1a7f37;font-weight:bold}.nsig{color:#888}
.asreported{border:2px dashed #c77;padding:6px 10px;border-radius:6px;background:#fffafa}
.ours{border:2px solid #7a7;padding:6px 10px;border-radius:6px;background:#fafffa}
.side{display:flex;gap:18px;align-items:flex-start;flex-wrap:wrap}
img{max-width:100%;border:1px solid #eee}code{background:#f5f5f5;padding:1px 3px;font-size:12px}
.mono{font-family:ui-monospace,Menlo,monospace;font-size:12px}
"""


def md(x: Any) -> str:
    """A Markdown table cell: <, >, & escaped (Markdown passes raw HTML through) and pipes escaped."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return html.escape(str(x), quote=False).replace("|", "\\|").replace("\n", " ")


def table_html(headers: list[str], rows: list[list[Any]], left: set[int] = frozenset(), id_: str = "") -> str:
    ths = "".join(f'<th class="l">{esc(h)}</th>' if i in left else f"<th>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            if not isinstance(c, Cell):
                c = Cell(c, "l" if i in left else "")
            elif i in left and "l" not in c.cls.split():
                c = Cell(c.text, (c.cls + " l").strip(), c.raw)
            cells.append(c.html())
        body.append("<tr>" + "".join(cells) + "</tr>")
    idattr = f' id="{esc(id_)}"' if id_ else ""
    return f"<table{idattr}><thead><tr>{ths}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def table_md(headers: list[str], rows: list[list[Any]]) -> str:
    df = pd.DataFrame(
        [[md(c.text if isinstance(c, Cell) else c) for c in r] for r in rows],
        columns=[md(h) for h in headers],
    )
    if df.empty:
        return "_(none)_"
    return df.to_markdown(index=False, disable_numparse=True)


def img(data: bytes | None, mime: str = "image/png", alt: str = "") -> str:
    if not data:
        return ""
    return f'<img alt="{esc(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}">'


# ------------------------------------------------------------------------------------------ figures
def _first_run(report: Report, label: str):
    """The configuration's first seed with a run directory, among the runs its numbers are over."""
    counted = report.counted.get(label)
    runs = [r for r in report.groups[label] if counted is None or r.name in counted]
    return next((r for r in runs if r.run_dir is not None), None)


def example_rows(report: Report, index: int) -> tuple[list[str], list[list[Any]], str | None, str | None]:
    """Source, reference and each configuration's hypothesis (its first seed) for test sentence `index`."""
    rows, src_text, ref_text = [], None, None
    for label in report.configurations:
        run = _first_run(report, label)
        if run is None:
            continue
        hyps = read_hypotheses(run.run_dir) or []
        if src_text is None:
            try:
                srcs = report.references.sources(run.run_dir)
                refs, _, _ = report.references.get(run.run_dir)
                if index < len(srcs):
                    src_text, ref_text = srcs[index], refs[index]
            except Exception:
                z = read_attention(run.run_dir)
                if z is not None and f"src_{index}" in z.files:
                    src_text = " ".join(str(w) for w in z[f"src_{index}"])
        rows.append([label, f"{run.name} (seed {run.seed})", hyps[index] if index < len(hyps) else "–"])
    return ["configuration", "run", "hypothesis"], rows, src_text, ref_text


def attention_panels(report: Report, index: int) -> list:
    panels = []
    for label in report.configurations:
        run = _first_run(report, label)
        z = read_attention(run.run_dir) if run is not None else None
        if z is None or f"attn_{index}" not in z.files:
            continue
        panels.append(
            (
                label,
                np.asarray(z[f"attn_{index}"]),
                [str(w) for w in z[f"src_{index}"]],
                [str(w) for w in z[f"tgt_{index}"]],
            )
        )
    return panels


def animation_for(report: Report, index: int) -> tuple[bytes | None, str]:
    """GIF of the best configuration with attention decoding sentence `index` (its first seed)."""
    from harness.errors import HarnessError
    from harness.report.animate import animate

    for label in report.configurations:
        run = _first_run(report, label)
        if run is None:
            continue
        z = read_attention(run.run_dir)
        if z is None or f"attn_{index}" not in z.files or z[f"tgt_{index}"].size == 0:
            continue
        try:
            return animate(run.run_dir, index, title=f"{label} (seed {run.seed})"), f"{label}, {run.name}"
        except HarnessError:
            continue
    return None, ""


CURVE_METRICS = (VAL_PPL, VAL_BLEU, VAL_AER)  # learning-curve plots, each where any run logged the metric


def curve_file(metric: str) -> str:
    return f"learning_curve_{metric}.png"


def learning_curve_figures(report: Report) -> tuple[dict[str, bytes], list[str]]:
    """metric -> PNG of its learning curves (tables.curve_stats), and notes on curves left out."""
    from harness.report import plots

    stats, notes = report.curve_stats()
    unconverged = set(report.unconverged.get("configuration", []))
    legend = {}
    for _, r in report.leaderboard.iterrows():
        if r["n_converged"] < r["n_runs"]:
            legend[r["configuration"]] = f"converged seeds {r['seeds']} of {r['n_runs']}"
    out = {}
    for metric in CURVE_METRICS:
        png = plots.learning_curve(stats, metric, report.configurations, unconverged, legend)
        if png:
            out[metric] = png
    return out, notes


def _all_configurations(report: Report) -> pd.DataFrame:
    tables = [t for t in (report.leaderboard, report.unconverged) if len(t)]
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else (tables or [report.leaderboard])[0]


def figures(report: Report, index: int, with_animation: bool = True) -> dict[str, Any]:
    from harness.report import plots

    order = report.configurations
    diag = report.diagonal
    golds, tables = diag["gold"].nunique() > 1, diag["table"].nunique() > 1
    if not golds and len({round(float(v), 9) for v in diag["aer_mean"]}) == 1:  # one gold set, one value
        diag, tables = diag.iloc[:1], False
    baselines = []
    for _, d in diag.iterrows():
        where = ([f"{d['table']} runs"] if tables else []) + ([f"gold {d['gold']}"] if golds else [])
        name = DIAGONAL_LABEL + (f" ({', '.join(where)})" if where else "")
        baselines.append((name, float(d["aer_mean"])))
    curves, curve_notes = learning_curve_figures(report)
    counted = {n for names in report.counted.values() for n in names}
    unconverged = set(report.unconverged.get("configuration", []))
    figs: dict[str, Any] = {
        "curves": curves,
        "curve_notes": curve_notes,
        "length": plots.bleu_by_length(report.by_length[report.by_length["run"].isin(counted)], order),
        "aer": plots.metric_bars(_all_configurations(report), AER, "AER", True, unconverged, baselines),
        "cost": plots.bleu_vs_cost(report.leaderboard),
        "attention": plots.attention_grid(attention_panels(report, index)),
        "optuna": plots.optuna_plots(report.source.study),
    }
    figs["gif"], figs["gif_run"] = animation_for(report, index) if with_animation else (None, "")
    return figs


# ------------------------------------------------------------------------------------------ page
def _section(title: str, *parts: str, id_: str = "") -> str:
    idattr = f' id="{esc(id_)}"' if id_ else ""
    return f"<section{idattr}><h2>{esc(title)}</h2>{''.join(parts)}</section>"


def _objective_text(report: Report) -> str:
    return ", then ".join(f"{o['metric']} ({o['direction']})" for o in report.objective)


def render_html(report: Report, figs: dict[str, Any], index: int) -> str:
    H, R = leaderboard_rows(report, "★")
    parts = [
        f"<h1>{esc(report.title)}</h1>",
        f'<p class="note">{esc(source_description(report))}. Generated '
        f"{esc(dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC'))} by <code>harness report</code>.</p>",
    ]
    lb_note = (
        f"One row per converged configuration (runs grouped by every config key that varies except the seed, and "
        f"except a budget that ended no two runs at different values: {', '.join(report.group_keys) or 'none'}), "
        f"its numbers over its converged seeds only. Values are mean "
        f"± sample standard deviation over seeds (ddof = 1; no ± when n = 1). ★ marks the best mean per column "
        f"(↑ higher is better, ↓ lower). Sorted by the study objective: {_objective_text(report)}. BLEU/chrF are "
        f"sacreBLEU on detokenized test hypotheses; AER/precision/recall from forced-decoding attention against "
        f"gold alignments (argmax links; AER (threshold): every link above eval.align_threshold). "
        f"{diagonal_note(report)} Length drop = BLEU of the shortest minus the longest well-filled length bucket."
    )
    lb_parts = [f'<p class="note"><b>{esc(convergence_line(report))}</b></p>', f'<p class="note">{esc(lb_note)}</p>']
    if report.leaderboard.empty:
        lb_parts.append('<p class="muted">No configuration converged: nothing is ranked (see the next table).</p>')
    lb_parts.append(table_html(H, R, {1, 2, 3}, "leaderboard"))
    parts.append(_section("Leaderboard (converged configurations)", *lb_parts, id_="leaderboard-section"))
    if len(report.unconverged):
        H, R = unconverged_rows(report)
        parts.append(
            _section(
                "Not ranked: configurations without a converged run",
                f'<p class="note">{esc(UNCONVERGED_NOTE)}</p>',
                table_html(H, R, {0, 1, 2, 3}, "unconverged"),
                id_="unconverged-section",
            )
        )
    curve_parts = [
        f"<h3>{esc(CURVE_TITLES[m])}</h3>" + img(figs["curves"][m], alt=f"learning curve {m}")
        for m in CURVE_METRICS
        if figs.get("curves", {}).get(m)
    ]
    if curve_parts:
        curve_parts.insert(0, f'<p class="note">{esc(CURVE_NOTE)}</p>')
        curve_parts += [f'<p class="note">{esc(n)}</p>' for n in figs.get("curve_notes", [])]
    parts.append(
        _section(
            "Learning curves",
            *(curve_parts or ['<p class="muted">no validation logs (logs/metrics.csv) in these runs</p>']),
            id_="curves-section",
        )
    )
    H, R = significance_rows(report)
    sig = [f'<p class="note">{esc(report.bootstrap_note)}</p>']
    sig.append(table_html(H, R, {0, 1, 2, 9, 10}, "significance") if R else '<p class="muted">no comparisons</p>')
    parts.append(_section("Significance (paired bootstrap)", *sig, id_="significance-section"))
    Ho, Ro = ours_rows(report)
    Hp, Rp = papers_rows(report)
    anchors = (
        '<div class="side">'
        f'<div class="ours"><h3>Ours (this report, sacreBLEU)</h3>{table_html(Ho, Ro, {0})}</div>'
        '<div class="asreported"><h3>As reported in the papers (not comparable: paper-scale data, '
        "models and training; see the BLEU convention below)</h3>"
        f"{table_html(Hp, Rp, {0, 1, 2, 4, 5}, 'papers')}</div></div>"
        f"<h3>Sources of the anchors</h3>{table_html(*papers_source_rows(report), {0, 1, 2, 3, 4})}"
        '<p class="note">Numbers marked "verify" are quoted from memory in harness/report/papers.yaml and '
        "should be checked against the paper before they are cited. Tokenized multi-bleu.perl scores are "
        "typically higher than sacreBLEU on the same output.</p>"
    )
    parts.append(_section("Paper anchors (as reported)", anchors, id_="papers-section"))
    plot_parts = []
    if figs.get("length"):
        plot_parts.append(
            "<h3>BLEU by source sentence length (cf. Bahdanau et al. 2015, Fig. 2)</h3>"
            + img(figs["length"], alt="BLEU by source length")
        )
    if figs.get("aer"):
        plot_parts.append(
            "<h3>Alignment error rate by configuration (dashed line: positional baseline)</h3>"
            + img(figs["aer"], alt="AER")
        )
    if figs.get("cost"):
        plot_parts.append(
            "<h3>BLEU against size and speed (converged configurations)</h3>" + img(figs["cost"], alt="BLEU vs cost")
        )
    for name, data in (figs.get("optuna") or {}).items():
        plot_parts.append(f"<h3>Optuna: {esc(name)}</h3>" + img(data, alt=name))
    parts.append(_section("Plots", *(plot_parts or ['<p class="muted">nothing to plot</p>']), id_="plots-section"))
    He, Re, src_text, ref_text = example_rows(report, index)
    ex = [
        f'<p>Test sentence {index}. <b>Source:</b> <span class="mono">{esc(src_text)}</span><br>'
        f'<b>Reference:</b> <span class="mono">{esc(ref_text)}</span></p>',
        table_html(He, Re, {0, 1, 2}),
    ]
    if figs.get("attention"):
        ex.append(
            "<h3>Attention of each configuration on this sentence (decoded hypothesis; source on x, output "
            "on y; darker = more weight)</h3>" + img(figs["attention"], alt="attention heatmaps")
        )
    if figs.get("gif"):
        ex.append(
            f"<h3>Decoding step by step: {esc(figs['gif_run'])}</h3>"
            '<p class="note">One frame per output word: the attention weights over the source words, the '
            "context vector as their weighted sum of encoder states, the word emitted and the output so far "
            '(after "Attn: Illustrated Attention", Karim 2019).</p>' + img(figs["gif"], "image/gif", "animation")
        )
    parts.append(_section("One sentence across configurations", *ex, id_="example-section"))
    Hc, Rc = configurations_rows(report)
    Hs, Rs = config_rows(report)
    sigs = "".join(f"<li>{esc(k)}: <code>{esc(s)}</code></li>" for k, v in report.signatures.items() for s in v)
    cfg = [
        f"<h3>Configurations</h3>{table_html(Hc, Rc, set(range(len(Hc))))}",
        f"<h3>sacreBLEU signatures</h3><ul>{sigs or '<li>none recorded</li>'}</ul>",
        f"<details><summary>Shared config ({len(Rs)} keys with one value in every run)</summary>"
        f"{table_html(Hs, Rs, {0, 1}, 'shared-config')}</details>",
    ]
    if report.source.study is not None:
        attrs = report.source.study.user_attrs
        cfg.append(
            "<h3>Study attributes</h3>"
            + table_html(["attribute", "value"], [[k, v] for k, v in sorted(attrs.items())], {0, 1})
        )
    parts.append(_section("Config and signatures", *cfg, id_="config-section"))
    Hr, Rr = runs_rows(report)
    parts.append(_section("Runs", table_html(Hr, Rr, {0, 1, len(Hr) - 1}, "runs"), id_="runs-section"))
    if report.notes:
        parts.append(_section("Notes", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in report.notes) + "</ul>"))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(report.title)}</title><style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>\n"
    )


def render_markdown(report: Report, index: int, curves: list[str] = ()) -> str:
    """README.md of the report; `curves`: the metrics whose learning-curve PNG (curve_file) sits beside it."""
    out = [f"# {md(report.title)}", "", md(source_description(report)) + ".", ""]
    H, R = leaderboard_rows(report, "**(best)**")
    out += [
        "## Leaderboard (converged configurations)",
        "",
        f"**{md(convergence_line(report))}**",
        "",
        f"Mean ± sample std over the converged seeds; (best) marks the best mean per column; sorted by "
        f"{md(_objective_text(report))}. {md(diagonal_note(report))}",
        "",
        table_md(H, R) if len(report.leaderboard) else "_No configuration converged: nothing is ranked._",
        "",
    ]
    if len(report.unconverged):
        H, R = unconverged_rows(report)
        out += ["## Not ranked: configurations without a converged run", "", md(UNCONVERGED_NOTE), ""]
        out += [table_md(H, R), ""]
    if curves:
        out += ["## Learning curves", "", md(CURVE_NOTE), ""]
        out += [f"![{md(CURVE_TITLES[m])}]({curve_file(m)})\n" for m in CURVE_METRICS if m in curves]
    H, R = significance_rows(report)
    out += ["## Significance (paired bootstrap)", "", md(report.bootstrap_note), "", table_md(H, R), ""]
    H, R = ours_rows(report)
    out += ["## Paper anchors", "", "### Ours (this report, sacreBLEU)", "", table_md(H, R), ""]
    H, R = papers_rows(report)
    out += ["### As reported in the papers (not comparable; see BLEU convention)", "", table_md(H, R), ""]
    H, R = papers_source_rows(report)
    out += ["### Sources of the anchors", "", table_md(H, R), ""]
    H, R, src_text, ref_text = example_rows(report, index)
    out += [
        f"## Test sentence {index}",
        "",
        f"Source: {md(src_text)}",
        "",
        f"Reference: {md(ref_text)}",
        "",
        table_md(H, R),
        "",
    ]
    out += ["## sacreBLEU signatures", ""]
    out += [f"- {md(k)}: `{s}`" for k, v in report.signatures.items() for s in v] + [""]
    H, R = runs_rows(report)
    out += ["## Runs", "", table_md(H, R), ""]
    if report.notes:
        out += ["## Notes", ""] + [f"- {md(n)}" for n in report.notes] + [""]
    out += ["The other plots, attention heatmaps and the decoding animation are in index.html.", ""]
    return "\n".join(out)


_GENERATED = re.compile(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC")


def _unchanged_but_for_the_time(path: Path, page: str) -> bool:
    if not path.is_file():
        return False
    return _GENERATED.sub("Generated", path.read_text(encoding="utf-8")) == _GENERATED.sub("Generated", page)


def render(report: Report, output_dir: str | Path, index: int = 0, with_animation: bool = True) -> Path:
    """Write index.html, README.md, the learning-curve PNGs and the CSVs to `output_dir`; returns the path of
    index.html."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = figures(report, index, with_animation)
    for metric in CURVE_METRICS:
        if metric in figs["curves"]:
            atomic_write_bytes(out / curve_file(metric), figs["curves"][metric])
        else:
            (out / curve_file(metric)).unlink(missing_ok=True)  # left by an earlier report in this folder
    page = render_html(report, figs, index)
    # the same report again (results build over unchanged targets): the file keeps its generation time
    if not _unchanged_but_for_the_time(out / "index.html", page):
        atomic_write_text(out / "index.html", page)
    atomic_write_text(out / "README.md", render_markdown(report, index, list(figs["curves"])))
    atomic_write_text(out / "leaderboard.csv", report.leaderboard.to_csv(index=False))
    atomic_write_text(out / "unconverged.csv", report.unconverged.to_csv(index=False))
    atomic_write_text(out / "diagonal.csv", report.diagonal.to_csv(index=False))
    atomic_write_text(out / "learning_curves.csv", report.learning_curves.to_csv(index=False))
    atomic_write_text(out / "runs.csv", report.runs.to_csv(index=False))
    atomic_write_text(out / "significance.csv", report.significance.to_csv(index=False))
    atomic_write_text(out / "by_length.csv", report.by_length.to_csv(index=False))
    if figs.get("gif"):
        atomic_write_bytes(out / "animation.gif", figs["gif"])
    return out / "index.html"


__all__ = ["render", "render_html", "render_markdown", "esc", "md", "BETTER", "LABELS"]

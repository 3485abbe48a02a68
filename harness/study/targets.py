"""The reproduction targets as data: harness/study/targets.yaml (the specs, configs, data and rows of each target),
with every paper number a row shows read from its anchor in harness/report/papers.yaml, the one place paper
numbers are written down. TARGETS is built once when this module is imported; a row whose anchor is not in
papers.yaml fails there, naming the target, the row and the anchor."""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError
from harness.paths import PROJECT_ROOT

TARGETS_FILE = Path(__file__).with_name("targets.yaml")
PAPERS_FILE = Path(__file__).parents[1] / "report" / "papers.yaml"  # read as data: the report shows them too
SCALES = ("tiny", "small", "paper")
# held-out length test set (the `length` target), per scale: training pairs, pool of held-out lines after
# them, test pairs per source-length bucket, validation pairs
LENGTH_SIZES = {"tiny": (1000, 6000, 12, 30), "small": (50000, 60000, 100, 300)}
LENGTH_BUCKETS = [(1, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, 60), (61, 80)]


@dataclass
class Row:
    """One configuration of a target: which runs belong to it (flattened config values) and the paper's
    number for it, as reported (None where the paper has none)."""

    name: str
    match: dict[str, Any]
    paper: str | None = None
    paper_unk: str | None = None  # BLEU after unknown-word replacement, as reported


@dataclass
class Target:
    name: str
    title: str
    specs: list[str]  # sweep specs: experiments/<scale>/<spec>.yaml
    paper_configs: list[str]  # experiments/paper/<name>.yaml for --scale paper
    source: str  # where the paper's numbers come from
    rows: list[Row] = field(default_factory=list)
    data: list[str] = field(default_factory=list)  # shared data folders it needs
    unk_replace: bool = False
    aligner: bool = False
    length_data: bool = False
    paper_note: str = ""
    # how our BLEU is computed, where it is not sacreBLEU on detokenized text (a corpus distributed tokenized)
    bleu_text: str = "sacreBLEU on detokenized text"
    aligner_note: str = ""  # the paper's alignment numbers, under the statistical aligner baseline
    # the alignment target: (data.name, label, [(src, tgt), ...]) and (variant name, match), crossed into its rows
    alignment_data: list[tuple[str, str, list[tuple[str, str]]]] = field(default_factory=list)
    variants: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def paper_anchors(path: Path = PAPERS_FILE) -> dict[str, dict]:
    """Every anchor of papers.yaml by "<short> / <model>"."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {f"{p['short']} / {a['model']}": a for p in doc.get("papers", []) for a in p.get("anchors", [])}


def quote(spec: dict | None, anchors: dict[str, dict], where: str) -> str | None:
    """A row's paper number as it shows it: `show` formatted with its anchor's fields ({value}, {std}, ...), or
    with several named anchors ({a.value}); `paper_text` as it is; None without either."""
    if spec is None:
        return None
    if "paper_text" in spec:
        return str(spec["paper_text"])

    def anchor(ref: str) -> dict:
        if ref not in anchors:
            raise HarnessError(f"{where}: anchor {ref!r} is not in the paper anchors (harness/report/papers.yaml)")
        return anchors[ref]

    if "anchors" in spec:
        named = {k: types.SimpleNamespace(**anchor(ref)) for k, ref in spec["anchors"].items()}
        return spec["show"].format(**named)
    return spec["show"].format(**anchor(spec["anchor"]))


def _text(raw: str | dict, anchors: dict[str, dict], where: str) -> str:
    """A target's text field: as it is, or quoting anchors like a row's paper number."""
    return raw if isinstance(raw, str) else quote(raw, anchors, where) or ""


def note(raw: str | dict, anchors: dict[str, dict], where: str) -> str:
    """A target's paper note: text, or `show` formatted with the range (min, max) of the BLEU gains of unknown-word
    replacement (after_unk - value) over the anchors of the papers.yaml entry `unk_gain`."""
    if isinstance(raw, str):
        return raw
    prefix = f"{raw['unk_gain']} / "
    gains = [a["after_unk"] - a["value"] for k, a in anchors.items() if k.startswith(prefix) and a.get("after_unk")]
    if not gains:
        raise HarnessError(f"{where}: paper_note: no anchor of {raw['unk_gain']!r} with after_unk in papers.yaml")
    return raw["show"].format(min=min(gains), max=max(gains))


def _row(name: str, match: dict, raw: dict, anchors: dict[str, dict], where: str) -> Row:
    paper = raw.get("paper") if "paper_text" not in raw else {"paper_text": raw["paper_text"]}
    return Row(name, dict(match), quote(paper, anchors, where), quote(raw.get("paper_unk"), anchors, where))


def _alignment_rows(raw: dict, anchors: dict[str, dict], where: str) -> list[Row]:
    rows = []
    on = raw.get("paper_on") or {}
    for data in raw["alignment_data"]:
        for src, tgt in data["directions"]:
            pick = {"data.name": data["data"], "data.src_lang": src, "data.tgt_lang": tgt}
            for variant in raw["variants"]:
                name = f"{data['label']} {src}->{tgt}: {variant['name']}"
                shown = variant if all(pick.get(k) == v for k, v in on.items()) else {}
                rows.append(_row(name, {**pick, **variant["match"]}, shown, anchors, f"{where}: {name}"))
    return rows


def load_targets(path: Path = TARGETS_FILE, papers: Path = PAPERS_FILE) -> dict[str, Target]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    anchors = paper_anchors(papers)
    out = {}
    for name, raw in doc.items():
        if "variants" in raw:
            rows = _alignment_rows(raw, anchors, f"{path}: {name}")
        else:
            where = f"{path}: {name}"
            rows = [_row(r["name"], r.get("match") or {}, r, anchors, f"{where}: {r['name']}") for r in raw["rows"]]
        out[name] = Target(
            name=name,
            title=raw["title"],
            specs=list(raw["specs"]),
            paper_configs=list(raw.get("paper_configs") or []),
            source=_text(raw["source"], anchors, f"{path}: {name}: source"),
            rows=rows,
            data=list(raw.get("data") or []),
            unk_replace=bool(raw.get("unk_replace", False)),
            aligner=bool(raw.get("aligner", False)),
            length_data=bool(raw.get("length_data", False)),
            paper_note=note(raw.get("paper_note", ""), anchors, f"{path}: {name}"),
            bleu_text=str(raw.get("bleu_text") or Target.bleu_text),
            aligner_note=_text(raw.get("aligner_note", ""), anchors, f"{path}: {name}: aligner_note"),
            alignment_data=[
                (d["data"], d["label"], [tuple(x) for x in d["directions"]]) for d in raw.get("alignment_data", [])
            ],
            variants=[(v["name"], dict(v["match"])) for v in raw.get("variants", [])],
        )
    return out


TARGETS: dict[str, Target] = load_targets()


def spec_path(scale: str, spec: str) -> Path:
    return PROJECT_ROOT / "experiments" / scale / f"{spec}.yaml"


def matches(flat: dict, match: dict) -> bool:
    """Whether a run's flattened config has every value of a row's `match`."""
    return all(flat.get(k) == v for k, v in match.items())


def row_of(target: Target, flat: dict) -> Row | None:
    """The first row of a target whose `match` a run's flattened config has, or None."""
    return next((r for r in target.rows if matches(flat, r.match)), None)


def study_name(paper: str, scale: str, spec: Path) -> str:
    """The Optuna study (and runs/ folder) `harness reproduce` gives one spec of a target."""
    return f"{paper}-{scale}-{spec.stem}" if spec.stem != paper else f"{paper}-{scale}"

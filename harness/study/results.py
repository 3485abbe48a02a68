"""The measured results in the repository: `harness results collect` copies the light artifacts of the reproduction
studies into results/<target>/, `harness results build` (`make results`) writes RESULTS.md from results/ alone, and
`harness results restore TARGET` seeds reports/reproduce-TARGET/ from results/ so that a study resumes on a new
machine without retraining its finished trials.

results/<target>/
  <study>/study.journal                 the Optuna study (journal file: plain text, resumable)
  <study>/trials/<n>/config.yaml, metrics.json, test.hyp, test.align, logs/metrics.csv, unk_replace.json
  aligner/*.json, *.align; symmetrised/*.json, *.align; data/buckets.json   the target's extra measurements
  claims.json                           paired-bootstrap p-values of the claims (computed where the data is)
  reproduction.json, reproduction.md     the last full `harness reproduce` summary, where one finished
  report/                               the comparison report of the copied runs (learning curves, by length)
Never checkpoints or attention matrices: a fresh clone can rebuild every table, and nothing finished is lost when
a machine goes away. Unfinished trials (trials/<n>.partial) are not copied; their study journals are.
"""

from __future__ import annotations

import json
import math
import operator
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.errors import HarnessError
from harness.io import atomic_write_bytes, atomic_write_text, write_json
from harness.metrics.alignment import aer_paired_bootstrap, diagonal_links
from harness.metrics.keys import AER, AER_DIAGONAL, BLEU_SIGNATURE, BY_LENGTH, CONVERGED, STOP_REASON, TRAIN_TIME
from harness.paths import PROJECT_ROOT
from harness.report.load import continued_rows
from harness.study.summary import expected_time, render_markdown, run_dirs_of, run_flat_config, summarize
from harness.study.targets import LENGTH_BUCKETS, TARGETS, row_of, spec_path

RESULTS = PROJECT_ROOT / "results"
CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
TRIAL_FILES = (
    "config.yaml",
    "metrics.json",
    "test.hyp",
    "test.align",
    "unk_replace.json",
    "extends.json",
    "logs/metrics.csv",
)
EXTRA_GLOBS = ("aligner/*.json", "aligner/*.align", "symmetrised/*.json", "symmetrised/*.align", "data/buckets.json")
SUMMARY_FILES = ("reproduction.json", "reproduction.md")


def _target_of(output: Path) -> str:
    """reports/reproduce-<target> (small scale) -> <target>."""

    name = output.name.removeprefix("reproduce-")
    if name not in TARGETS:
        raise HarnessError(f"results collect: {output} is not a small-scale reproduction folder (reproduce-<target>)")
    return name


def _copy(src: Path, dst: Path, keep: bool = False) -> bool:
    """Copy src over dst unless they are equal (or, with `keep`, unless dst exists at all); True if copied."""
    if not src.is_file():
        return False
    if dst.exists() if keep else (dst.is_file() and dst.read_bytes() == src.read_bytes()):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return True


def collect(output: Path, into: Path = RESULTS) -> dict:
    """Copy one reproduction folder's light artifacts into results/<target>/; returns what was copied."""
    output = Path(output)
    target = _target_of(output)
    dest = into / target
    copied, trials = 0, 0
    for study in sorted(p for p in (output / "runs").glob("*") if p.is_dir()):
        copied += _copy(study / "study.journal", dest / study.name / "study.journal")
        for trial in run_dirs_of(study, superseded=True):
            trials += 1
            for name in TRIAL_FILES:
                copied += _copy(trial / name, dest / study.name / "trials" / trial.name / name)
    for pattern in EXTRA_GLOBS:
        for f in output.glob(pattern):
            copied += _copy(f, dest / f.relative_to(output))
    for name in SUMMARY_FILES:
        copied += _copy(output / name, dest / name)
    claims = claim_significance(target, dest)
    write_json(dest / "claims.json", claims)
    if target == "bahdanau2015":
        _attention_animation(output, dest)
    return {"target": target, "trials": trials, "files_copied": copied}


def restore(target: str, output: Path, into: Path = RESULTS) -> dict:
    """The reverse of collect: seed a reproduction folder from results/<target>/, so that `harness reproduce` on a
    new machine (or a fresh clone) resumes the study instead of retraining its finished trials.

    The study journals are append-only: one is copied only where the folder has none or has an earlier state of
    the same journal (a prefix of it); a folder whose journal is ahead is kept, and two journals that differ
    otherwise are refused. Trial files are copied only where missing, never over what the folder has. The
    unknown-word-replacement effects recorded in reproduction.json go back into each trial's unk_replace.json
    (that measurement needs a checkpoint, which results/ never holds).
    """
    if target not in TARGETS:
        raise HarnessError(f"results restore: unknown target {target!r} (expected one of {', '.join(TARGETS)})")
    src = Path(into) / target
    studies = sorted(p for p in src.glob("*") if (p / "study.journal").is_file()) if src.is_dir() else []
    if not studies:
        raise HarnessError(f"results restore: {src} holds no study (expected <study>/study.journal)")
    output = Path(output)
    for study in studies:  # check every journal before writing anything
        _check_journal(study / "study.journal", output / "runs" / study.name / "study.journal")
    copied, trials = 0, 0
    for study in studies:
        dst = output / "runs" / study.name
        journal, here = study / "study.journal", dst / "study.journal"
        if not here.is_file() or here.stat().st_size < journal.stat().st_size:  # checked: here is a prefix
            atomic_write_bytes(here, journal.read_bytes())
            copied += 1
        for trial in run_dirs_of(study, superseded=True):
            trials += 1
            for name in TRIAL_FILES:
                copied += _copy(trial / name, dst / "trials" / trial.name / name, keep=True)
    for pattern in EXTRA_GLOBS:
        for f in src.glob(pattern):
            copied += _copy(f, output / f.relative_to(src), keep=True)
    copied += _restore_unk_effects(src, output)
    return {"target": target, "trials": trials, "files_copied": copied, "output": str(output)}


def _check_journal(journal: Path, here: Path) -> None:
    if not here.is_file():
        return
    a, b = journal.read_bytes(), here.read_bytes()
    if not (a.startswith(b) or b.startswith(a)):
        raise HarnessError(
            f"results restore: {here} and {journal} are different studies (neither journal extends the other); "
            "move one away first"
        )


def _restore_unk_effects(src: Path, output: Path) -> int:
    """reproduction.json's unk_replace entries, keyed by the run path it was measured at, back into
    <output>/runs/<study>/trials/<n>/unk_replace.json where the trial is there and has none."""
    doc = src / "reproduction.json"
    if not doc.is_file():
        return 0
    n = 0
    for where, effect in (json.loads(doc.read_text()).get("unk_replace") or {}).items():
        parts = Path(where).parts
        if effect is None or "runs" not in parts:
            continue
        trial = output.joinpath(*parts[len(parts) - parts[::-1].index("runs") - 1 :])
        cache = trial / "unk_replace.json"
        if (trial / "metrics.json").is_file() and not cache.exists():
            write_json(cache, effect)
            n += 1
    return n


def _attention_animation(output: Path, dest: Path) -> None:
    """One attention animation of a real Multi30k test sentence, from the best converged RNNsearch run (it needs
    the checkpoint, so it is made here, where the run is)."""

    gif = dest / "attention.gif"
    if gif.is_file():
        return
    rnnsearch = TARGETS["bahdanau2015"].rows[0].match
    best = None
    for study in (output / "runs").glob("*"):
        for trial in run_dirs_of(study):
            m = json.loads((trial / "metrics.json").read_text())
            flat = run_flat_config(trial)
            if m.get(CONVERGED) and all(flat.get(k) == v for k, v in rnnsearch.items()):
                if best is None or m["bleu"] > best[0]:
                    best = (m["bleu"], trial)
    if best is None or not (best[1] / "checkpoints" / "best.ckpt").is_file():
        return
    from harness.report.animate import animate

    gif.write_bytes(animate(best[1], index=3, title=f"RNNsearch, Multi30k test sentence 3 ({best[1].name})"))


# ------------------------------------------------------------------------------------------ claims
def load_claims() -> dict[str, list[dict]]:
    return yaml.safe_load(CLAIMS_FILE.read_text(encoding="utf-8")) or {}


def target_runs(dest: Path) -> list[Path]:
    return [t for study in sorted(p for p in dest.glob("*") if (p / "trials").is_dir()) for t in run_dirs_of(study)]


def _rows_runs(target: str, runs: list[Path]) -> dict[str, list[Path]]:

    out: dict[str, list[Path]] = {r.name: [] for r in TARGETS[target].rows}
    for run in runs:
        flat = run_flat_config(run)
        row = row_of(TARGETS[target], flat)
        if row is not None:
            out[row.name].append(run)
    return out


def claim_significance(target: str, dest: Path) -> list[dict]:
    """Paired bootstrap (1,000 resamples of the test sentences, seeds pooled) behind the claims whose rows have
    converged runs only: sacreBLEU's for every BLEU `greater` or `not_worse` claim; the same statistic on corpus
    AER (harness/metrics/alignment.py aer_paired_bootstrap, over the runs' test.align and the gold) for every AER
    `less` claim, and for each row of a `below_diagonal` claim against the positional baseline. Needs the test
    references and gold (the shared data), so it runs at collect time."""
    from harness.report.significance import paired_bootstrap

    rows = _rows_runs(target, target_runs(dest))
    out = []
    for claim in load_claims().get(target, []):
        kind, metric = claim["kind"], claim.get("metric")
        if kind == "below_diagonal":
            per_row = {}
            for name in claim["rows"]:
                runs = rows.get(name, [])
                if runs and all(_metrics(r).get(CONVERGED) for r in runs):
                    pick = sorted(runs, key=_seed)
                    sentences = [pair for r in pick for pair in _gold_pairs(r)]
                    system = [links for r in pick for links in _test_links(r)]
                    diagonal = [diagonal_links(len(s), len(t)) for s, t, _ in sentences]
                    result = aer_paired_bootstrap(system, diagonal, [g for _, _, g in sentences])
                    per_row[name] = {"seeds": [_seed(r) for r in pick], **result}
            if per_row:
                out.append({"claim": claim["claim"], "rows": per_row})
            continue
        if not ((kind in ("greater", "not_worse") and metric == "bleu") or (kind == "less" and metric == AER)):
            continue
        pick_a, pick_b, seeds = _paired(rows.get(claim["a"], []), rows.get(claim["b"], []))
        if not seeds:
            continue
        if metric == AER:
            gold = [g for r in pick_a for _, _, g in _gold_pairs(r)]
            links_a = [links for r in pick_a for links in _test_links(r)]
            links_b = [links for r in pick_b for links in _test_links(r)]
            result = aer_paired_bootstrap(links_a, links_b, gold)
            out.append(
                {
                    "claim": claim["claim"],
                    "seeds": seeds,
                    "aer_a": result["aer"],
                    "aer_b": result["baseline_aer"],
                    "p_value": result["p_value"],
                    "sentences": result["sentences"],
                }
            )
            continue
        hyp_a = [h for r in pick_a for h in _lines(r / "test.hyp")]
        hyp_b = [h for r in pick_b for h in _lines(r / "test.hyp")]
        ref_lines, lower = _references(pick_a[0])
        result = paired_bootstrap(hyp_b, hyp_a, ref_lines * len(seeds), lowercase=lower)
        out.append(
            {
                "claim": claim["claim"],
                "seeds": seeds,
                "bleu_a": result.system_bleu,
                "bleu_b": result.baseline_bleu,
                "p_value": result.p_value,
                "signature": result.signature,
            }
        )
    return out


def _paired(a: list[Path], b: list[Path]) -> tuple[list[Path], list[Path], list]:
    """The runs of two rows paired on the seeds they share (none unless every run of both converged)."""
    if not a or not b or not all(_metrics(r).get(CONVERGED) for r in a + b):
        return [], [], []
    seeds = sorted({_seed(r) for r in a} & {_seed(r) for r in b})
    return (
        [r for r in sorted(a, key=_seed) if _seed(r) in seeds],
        [r for r in sorted(b, key=_seed) if _seed(r) in seeds],
        seeds,
    )


_TEST_SPLITS: dict[str, object] = {}  # data config -> its corpus' test split (one load per data set and collect)


def _test_split(run: Path):
    from harness.data.corpora import load_corpus
    from harness.runs.provenance import load_run_config

    cfg = load_run_config(run)
    key = repr(cfg.data)
    if key not in _TEST_SPLITS:
        corpus = load_corpus(cfg.data)
        _TEST_SPLITS[key] = (corpus.splits[corpus.test_split], cfg.data.lowercase)
    return _TEST_SPLITS[key]


def _references(run: Path) -> tuple[list[str], bool]:
    """The test references of a run's data set (from the shared data) and whether its BLEU is lower-cased."""
    split, lower = _test_split(run)
    return split.tgt, lower


def _gold_pairs(run: Path) -> list[tuple[list[str], list[str], object]]:
    """(source words, target words, gold alignment) of every test sentence of a run's data set."""
    split, _ = _test_split(run)
    if split.gold is None:
        raise HarnessError(f"{run}: its data set's test split has no gold alignments to score test.align on")
    return [(s.split(), t.split(), g) for s, t, g in zip(split.src, split.tgt, split.gold)]


def _test_links(run: Path) -> list[set]:
    """The attention's word links of a run's test sentences (test.align: Pharaoh, source first)."""
    from harness.data.alignments import read_alignments

    pairs = _gold_pairs(run)
    lengths = [len(s) for s, _, _ in pairs], [len(t) for _, t, _ in pairs]
    return [a.possible for a in read_alignments(run / "test.align", "pharaoh", True, *lengths)]


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _seed(run: Path):
    return _metrics(run).get("seed")


@dataclass
class Verdict:
    claim: str
    verdict: str  # reproduced | not reproduced | not testable at this scale | too few seeds yet | not run yet
    why: str


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


MIN_SEEDS = 2  # never fewer than 2 seeds behind a verdict (a claim may say `min_seeds` where its study has one)
# the pairwise claim kinds: does row a's mean stand to row b's as the claim says (before significance)
COMPARES = {"greater": operator.gt, "less": operator.lt, "not_worse": operator.ge}


def verdicts(target: str, rows: dict[str, list[Path]], significance: list[dict], symmetrised=None) -> list[Verdict]:
    """Each claim of the target judged on converged runs only (harness/study/claims.yaml says how)."""
    out = []
    sig = {s["claim"]: s for s in significance}
    for claim in load_claims().get(target, []):
        names = claim.get("rows") or [claim["a"]] + ([claim["b"]] if "b" in claim else [])
        runs = {n: rows.get(n, []) for n in names}
        missing = [n for n, r in runs.items() if not r]
        if missing:
            out.append(Verdict(claim["claim"], "not run yet", f"no finished runs of {missing[0]}"))
            continue
        budget = [(n, _metrics(r)) for n, rs in runs.items() for r in rs if not _metrics(r).get(CONVERGED)]
        if budget:
            n, m = budget[0]
            reason = m.get(STOP_REASON) or "before the stopping rule"
            why = f"{len(budget)} run(s) stopped by their budget, e.g. {n} seed {m.get('seed')} ({reason})"
            out.append(Verdict(claim["claim"], "not testable at this scale", why))
            continue
        need = int(claim.get("min_seeds", MIN_SEEDS))
        seeds = {n: len({_seed(r) for r in rs}) for n, rs in runs.items()}
        few = [(n, k) for n, k in seeds.items() if k < need]
        if few:
            n, k = few[0]
            why = f"{n} has {k} seed(s) finished; a verdict waits for {need} seeds per row"
            out.append(Verdict(claim["claim"], "too few seeds yet", why))
            continue
        mean = {n: _mean([_metrics(r).get(claim.get("metric", "bleu")) for r in rs]) for n, rs in runs.items()}
        kind = claim["kind"]
        if kind in COMPARES:
            a, b = mean[claim["a"]], mean[claim["b"]]
            holds = COMPARES[kind](a, b)
            why = f"{claim['metric']} {a:.3f} vs {b:.3f}" if claim["metric"] == AER else f"BLEU {a:.2f} vs {b:.2f}"
            if claim["claim"] in sig:
                p = sig[claim["claim"]]["p_value"]
                why += f", paired bootstrap p = {p:.3f}"
                if kind == "not_worse":
                    holds = holds or p >= 0.05  # below, but not significantly
                    if not holds:
                        why += f" ({claim['b']} significantly better)"
                else:
                    holds = holds and p < 0.05
            out.append(Verdict(claim["claim"], "reproduced" if holds else "not reproduced", why))
        elif kind == "below_diagonal":
            worse, tested = [], sig.get(claim["claim"], {}).get("rows", {})
            for n, rs in runs.items():
                aer, diag = (
                    _mean([_metrics(r).get(AER) for r in rs]),
                    _mean([_metrics(r).get(AER_DIAGONAL) for r in rs]),
                )
                p = tested.get(n, {}).get("p_value")
                if aer is None or diag is None or aer >= diag:
                    worse.append(f"{n} {aer:.3f} vs {diag:.3f}" if aer is not None and diag is not None else n)
                elif p is not None and p >= 0.05:
                    worse.append(f"{n} {aer:.3f} vs {diag:.3f}, paired bootstrap p = {p:.3f} (not significant)")
            why = "every row below its diagonal AER" if not worse else "not below the diagonal: " + "; ".join(worse)
            if not worse and tested and set(tested) == set(runs):
                why += f" (paired bootstrap, largest p = {max(t['p_value'] for t in tested.values()):.3f})"
            out.append(Verdict(claim["claim"], "not reproduced" if worse else "reproduced", why))
        elif kind == "order":
            order = sorted(names, key=lambda n: -mean[n])
            holds = order == names
            why = "ours: " + " > ".join(f"{n} {mean[n]:.2f}" for n in order)
            out.append(Verdict(claim["claim"], "reproduced" if holds else "not reproduced", why))
        elif kind == "flat":
            buckets: dict[str, list[float]] = {}
            for r in runs[claim["a"]]:
                for b in _metrics(r).get(BY_LENGTH) or []:
                    if b.get("bleu") is not None:
                        buckets.setdefault(b["bucket"], []).append(b["bleu"])
            upto = {k: _mean(v) for k, v in buckets.items() if _bucket_end(k) <= claim["up_to"]}
            best = max(upto.values()) if upto else None
            low = {k: v for k, v in upto.items() if best is not None and v < claim["keep"] * best}
            why = ", ".join(f"{k}: {v:.1f}" for k, v in upto.items())
            out.append(
                Verdict(claim["claim"], "not reproduced" if low or not upto else "reproduced", why or "no buckets")
            )
        else:
            raise HarnessError(
                f"{CLAIMS_FILE}: claim kind {kind!r} is not one of "
                "greater, not_worse, less, below_diagonal, order, flat"
            )
    return out


def _bucket_end(label: str) -> float:
    import re

    nums = re.findall(r"[0-9]+", str(label))
    return float(nums[-1]) if nums and "-" in str(label) else float("inf")


# ------------------------------------------------------------------------------------------ RESULTS.md
def _meta(runs: list[Path]) -> dict:
    commits, versions = set(), set()
    for run in runs:
        doc = yaml.safe_load((run / "config.yaml").read_text()) or {}
        meta = doc.get("_meta") or {}
        commits.add(str(meta.get("git_commit")))
        torch_version = (meta.get("versions") or {}).get("torch")
        if torch_version:
            versions.add(torch_version)
    return {"commits": sorted(commits), "torch": sorted(versions)}


def build(into: Path = RESULTS, out: Path | None = None, report: bool = True) -> Path:
    """RESULTS.md from results/ alone: per target the table (mean ± std, n, converged), the claims with a verdict,
    the papers' numbers as reported, commit, hardware, time, signatures, and the report's plots."""

    out = out or into.parent / "RESULTS.md"
    lines = [
        "# Results",
        "",
        "Generated by `make results` (`harness results build`) from `results/` alone: every number below comes "
        "from a run whose light artifacts are committed there (never typed by hand). Paper numbers are as "
        "reported, with their own data and BLEU convention; ours are sacreBLEU at CPU scale, on detokenized text "
        "except where a section says otherwise. "
        "Only converged runs (ended by their stopping rule) are judged; budget-stopped runs are marked.",
        "",
    ]
    index = []
    for target in TARGETS:
        dest = into / target
        runs = target_runs(dest)
        index.append(f"- [{TARGETS[target].title}](#{target}): {len(runs)} finished runs")
    lines += index + [""]
    for target, spec in TARGETS.items():
        dest = into / target
        runs = target_runs(dest)
        lines += [f'<a id="{target}"></a>', f"## {spec.title}", ""]
        if not runs:
            lines += ["Not run yet: no finished runs in `results/" + target + "/`.", ""]
            continue
        extras = _extras(dest, runs)
        summary = summarize(spec, runs, extras)
        meta = _meta(runs)
        studies = [p.name for p in sorted(dest.glob("*")) if (p / "trials").is_dir()]
        repro = json.loads((dest / "reproduction.json").read_text()) if (dest / "reproduction.json").is_file() else {}
        wall = repro.get("meta", {}).get("wall_s")
        # CPU time = wall time x torch threads (a run trained on 2 threads holds 2 cores)
        train_hours = sum((_metrics(r).get(TRAIN_TIME) or 0) * _threads(r) for r in runs) / 3600
        md = render_markdown(
            spec,
            "small",
            summary,
            extras,
            {
                "specs": [f"experiments/small/{s}.yaml" for s in spec.specs],
                "expected_time": "; ".join(_expected(s) for s in spec.specs),
                "wall_s": wall or 0.0,
                "n_runs": len(runs),
            },
        )
        body = md.split("\n", 2)[2]  # drop its title line
        body = body.replace("- wall time of this invocation: 0 s\n", "")
        lines += [body.strip(), ""]
        sig = json.loads((dest / "claims.json").read_text()) if (dest / "claims.json").is_file() else []
        lines += ["### Claims", "", "| claim | verdict | why |", "|---|---|---|"]
        for v in verdicts(target, _rows_runs(target, runs), sig):
            lines.append(f"| {v.claim} | **{v.verdict}** | {v.why} |")
        lines += [""]
        sigs = sorted({_metrics(r).get(BLEU_SIGNATURE) for r in runs} - {None})
        hardware = sorted({_hardware(r) for r in runs})
        lines += [
            f"- command: `harness reproduce {target} --scale small` (studies {', '.join(studies)}; rerun to resume)",
            f"- commit(s): {', '.join(meta['commits'])}; torch {', '.join(meta['torch'])}",
            f"- hardware: {'; '.join(hardware)}",
            f"- training time: {train_hours:.1f} CPU-hours (wall time × torch threads) over {len(runs)} runs"
            + (f"; last full invocation {wall / 3600:.1f} h wall" if wall else ""),
            f"- sacreBLEU: `{'`, `'.join(sigs)}`",
            "",
        ]
        if report:
            lines += _report_section(target, dest, runs)
        if spec.length_data:
            lines += [f"(length buckets: {', '.join(f'{lo}-{hi}' for lo, hi in LENGTH_BUCKETS)} words)", ""]
        if (dest / "attention.gif").is_file():
            lines += [f"![attention of RNNsearch on a Multi30k test sentence](results/{target}/attention.gif)", ""]
    atomic_write_text(out, "\n".join(lines))
    return out


def _expected(spec: str) -> str:

    return f"{spec}: {expected_time(spec_path('small', spec))}"


def _threads(run: Path) -> int:
    return int(run_flat_config(run).get("train.threads") or 1)


def _hardware(run: Path) -> str:
    m = _metrics(run)
    return str(m.get("hardware") or "not recorded (runs before hardware was recorded)")


def _extras(dest: Path, runs: list[Path]) -> dict:
    extras: dict = {"unk": {}, "aligner": [], "symmetrised": []}
    for run in runs:
        if (run / "unk_replace.json").is_file():
            extras["unk"][str(run)] = json.loads((run / "unk_replace.json").read_text())
    for f in sorted((dest / "aligner").glob("*.json")):
        extras["aligner"].append(json.loads(f.read_text()))
    for f in sorted((dest / "symmetrised").glob("*.json")):
        extras["symmetrised"].append(json.loads(f.read_text()))
    if (dest / "data" / "buckets.json").is_file():
        extras["length_counts"] = json.loads((dest / "data" / "buckets.json").read_text())["test_per_bucket"]
    for study in sorted(p for p in dest.glob("*") if (p / "trials").is_dir()):
        if continued := continued_rows(study, run_dirs_of(study, superseded=True)):
            extras.setdefault("continued", []).extend(continued)
    return extras


def _report_section(target: str, dest: Path, runs: list[Path]) -> list[str]:
    """The comparison report of the copied runs (learning curves, by-length plot) into results/<target>/report/;
    RESULTS.md shows its PNGs."""
    from harness.report import load, render

    folder = dest / "report"
    try:
        render(load([str(r) for r in runs], title=f"Results: {target}", n_bootstrap=200), folder, with_animation=False)
    except HarnessError as e:
        return [f"(report not built: {e})", ""]
    pngs = sorted(p.name for p in folder.glob("*.png") if "curve" in p.name or "length" in p.name)
    return [f"![{p}](results/{target}/report/{p})" for p in pngs] + ["", f"Full report: `results/{target}/report/`", ""]

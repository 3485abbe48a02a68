"""Comparison reports: leaderboard numbers against the run directories, paired bootstrap, escaping, outputs,
the attention heatmap and the decoding animation.

Fast tests use hand-made run directories (config.yaml, metrics.json, test.hyp, attention/test.npz) over a
tiny parallel corpus written to tmp; the slow tests train real tiny runs once per session and report an
Optuna study built from them.
"""

from __future__ import annotations

import io
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.cli import main
from harness.config import dump_yaml, to_dict
from harness.errors import HarnessError
from harness.experiment import load_config
from harness.report import load, render, render_runs
from harness.report.animate import animation_frames, gif_bytes
from harness.report.significance import paired_bootstrap

XSS = "<script>alert(1)</script>"

TEST_SRC = [
    f"das {XSS} haus ist klein",
    "der hund läuft schnell nach hause",
    "ich sehe das rote auto",
    "wir gehen heute in die stadt und kaufen brot",
    "sie liest ein buch",
    "das wetter ist gut",
]
TEST_TGT = [
    "the house is small",
    "the dog runs home quickly",
    "i see the red car",
    "we go to the city today and buy bread",
    "she reads a book",
    "the weather is good",
]


def write_corpus(root: Path) -> Path:
    """A tiny parallel corpus (data.name=parallel) whose first test source sentence holds a <script> tag."""
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        (root / f"{split}.de").write_text("\n".join(TEST_SRC) + "\n", encoding="utf-8")
        (root / f"{split}.en").write_text("\n".join(TEST_TGT) + "\n", encoding="utf-8")
    return root


def degrade(sentence: str, k: int) -> str:
    """Drop the last k words (a worse hypothesis, still non-empty)."""
    words = sentence.split()
    return " ".join(words[: max(1, len(words) - k)])


# how a run that its stopping rule ended says so in metrics.json (harness.metrics.convergence.summary)
CONVERGED = {
    "converged": True,
    "stop_reason": "early_stopping",
    "val_metric": "val_ppl",
    "val_metric_best": 5.0,
    "best_step": 200,
    "val_metric_slope": 0.01,
    "val_slope_validations": 5,
    "validations": 8,
    "steps": 320,
}


def unconverged(reason: str, slope: float = -0.5, steps: int = 400) -> dict:
    """metrics.json keys of a run a budget stopped, its monitored val_ppl still falling by `slope` per 1k steps."""
    return {**CONVERGED, "converged": False, "stop_reason": reason, "val_metric_slope": slope, "steps": steps}


def write_curve(run: Path, curve: list[dict]) -> None:
    """logs/metrics.csv as Lightning's CSVLogger writes it: a training row every 10 steps, and each validation
    (`{"step": training step, "val_ppl": ..., ...}`) on its own row at CSV step = training step - 1."""
    import csv

    keys = ["epoch", "step", "train_loss", "val_aer", "val_bleu", "val_loss", "val_ppl"]
    (run / "logs").mkdir(exist_ok=True)
    with open(run / "logs" / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, restval="")
        w.writeheader()
        for v in curve:
            w.writerow({"epoch": 0, "step": v["step"] - 1, "train_loss": 3.0})
            w.writerow({"epoch": 0, **{k: x for k, x in v.items() if k != "step"}, "step": v["step"] - 1})


def make_run(
    root: Path,
    corpus: Path,
    name: str,
    arch: str,
    score: str,
    seed: int,
    metrics: dict,
    hyps: list[str],
    extra: dict | None = None,
    attention: bool = True,
    convergence: dict | None = CONVERGED,
    curve: list[dict] | None = None,
) -> Path:
    """A finished-looking run directory, as `harness train` writes it. `convergence`: the metrics.json keys of
    how training ended (None: a run from before the stopping rule, without them); `curve`: its validations."""
    run = root / name
    (run / "attention").mkdir(parents=True)
    overrides = {
        "model.arch": arch,
        "model.score": score,
        "seed": seed,
        "data.name": "parallel",
        "data.src_lang": "de",
        "data.tgt_lang": "en",
        "tracking.wandb.mode": "disabled",
        "train.early_stopping": 3,
        "train.early_stopping_metric": "val_ppl",
        **{f"data.{s}_prefix": str(corpus / s) for s in ("train", "val", "test")},
        **(extra or {}),
    }
    cfg = load_config(None, overrides)
    (run / "config.yaml").write_text(dump_yaml({**to_dict(cfg), "_meta": {"seed": seed}}), encoding="utf-8")
    full = {
        "split": "test",
        "sacrebleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.5.1",
        "chrf_signature": "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.5.1",
        "seed": seed,
        "arch": arch,
        "score": score,
        "by_length": [
            {"bucket": "1-10", "lo": 1, "hi": 10, "n": 6, "bleu": metrics["bleu"], "chrf": 50.0, "few": True},
            {"bucket": "11-20", "lo": 11, "hi": 20, "n": 0, "bleu": None, "chrf": None, "few": True},
        ],
        **(convergence or {}),
        **metrics,
    }
    (run / "metrics.json").write_text(json.dumps(full), encoding="utf-8")
    if curve is not None:
        write_curve(run, curve)
    (run / "test.hyp").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    rng = np.random.default_rng(seed)
    arrays = {"count": np.array(len(hyps))}
    for i, (s, h) in enumerate(zip(TEST_SRC, hyps)):
        arrays[f"src_{i}"] = np.array(s.split(), dtype=str)
        arrays[f"tgt_{i}"] = np.array(h.split(), dtype=str)
        if attention:
            e = rng.normal(size=(len(h.split()) + 1, len(s.split())))
            arrays[f"attn_{i}"] = (np.exp(e) / np.exp(e).sum(1, keepdims=True)).astype(np.float32)
    np.savez_compressed(run / "attention" / "test.npz", **arrays)
    return run


METRICS_A = [
    {
        "bleu": 40.0,
        "chrf": 60.0,
        "aer": 0.30,
        "alignment_precision": 0.7,
        "alignment_recall": 0.7,
        "length_drop": 1.0,
        "attention_entropy": 1.1,
        "params": 1000,
        "train_tokens_per_sec": 500.0,
        "decode_sentences_per_sec": 90.0,
    },
    {
        "bleu": 44.0,
        "chrf": 63.0,
        "aer": 0.26,
        "alignment_precision": 0.74,
        "alignment_recall": 0.72,
        "length_drop": 2.0,
        "attention_entropy": 1.0,
        "params": 1000,
        "train_tokens_per_sec": 520.0,
        "decode_sentences_per_sec": 95.0,
    },
]
METRICS_B = [
    {
        "bleu": 20.0,
        "chrf": 45.0,
        "aer": None,
        "alignment_precision": None,
        "alignment_recall": None,
        "length_drop": 5.0,
        "attention_entropy": None,
        "params": 800,
        "train_tokens_per_sec": 900.0,
        "decode_sentences_per_sec": 200.0,
    },
    {
        "bleu": 23.0,
        "chrf": 47.0,
        "aer": None,
        "alignment_precision": None,
        "alignment_recall": None,
        "length_drop": 4.0,
        "attention_entropy": None,
        "params": 800,
        "train_tokens_per_sec": 950.0,
        "decode_sentences_per_sec": 210.0,
    },
]


def fake_runs(tmp: Path) -> list[Path]:
    """2 configurations x 2 seeds: attention (near-perfect output, an XSS config value) and the control."""
    corpus = write_corpus(tmp / "data")
    runs = []
    for k, (seed, m) in enumerate(zip((1, 2), METRICS_A)):
        hyps = [degrade(t, k) if i % 2 else t for i, t in enumerate(TEST_TGT)]
        hyps[0] = "<b>bold</b> house is small"
        runs.append(
            make_run(
                tmp / "runs",
                corpus,
                f"attn-s{seed}",
                "bahdanau",
                "additive",
                seed,
                m,
                hyps,
                {"data.hub_config": XSS},
                curve=[{"step": 100 * i, "val_ppl": 20 / i + seed, "val_bleu": 10 * i + k} for i in (1, 2, 3)],
            )
        )
    for seed, m in zip((1, 2), METRICS_B):
        hyps = [degrade(t, 2 + seed % 2) for t in TEST_TGT]
        curve = [{"step": 100 * i, "val_ppl": 30 / i + seed, "val_bleu": 5 * i} for i in (1, 2, 3)]
        runs.append(
            make_run(
                tmp / "runs", corpus, f"ctrl-s{seed}", "seq2seq", "none", seed, m, hyps, attention=False, curve=curve
            )
        )
    return runs


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    return fake_runs(tmp_path)


# ------------------------------------------------------------------------------------------ leaderboard
def _recompute(run_dirs: list[Path], key: str) -> dict[str, tuple[float, float]]:
    """mean and sample std per (arch, score), straight from metrics.json."""
    groups: dict[str, list[float]] = {}
    for d in run_dirs:
        m = json.loads((d / "metrics.json").read_text())
        if m.get(key) is not None:
            groups.setdefault(f"{m['arch']}/{m['score']}", []).append(float(m[key]))
    return {g: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else math.nan) for g, v in groups.items()}


def check_leaderboard(report, run_dirs: list[Path]) -> None:
    lb = report.leaderboard
    for key in ("bleu", "chrf", "aer", "length_drop", "train_tokens_per_sec", "decode_sentences_per_sec"):
        for group, (mean, std) in _recompute(run_dirs, key).items():
            arch, score = group.split("/")
            row = lb[(lb["model.arch"] == arch) & (lb["model.score"] == score)]
            assert len(row) == 1, group
            assert row[f"{key}_mean"].iloc[0] == pytest.approx(mean), (group, key)
            if math.isnan(std):
                assert math.isnan(row[f"{key}_std"].iloc[0])
            else:
                assert row[f"{key}_std"].iloc[0] == pytest.approx(std), (group, key)


def test_leaderboard_matches_run_directories(runs):
    report = load(runs, significance=False)
    assert len(report.runs) == 4
    assert {"bleu", "chrf", "model.arch", "model.score", "seed", "run_dir"} <= set(report.runs.columns)
    lb = report.leaderboard
    assert len(lb) == 2
    check_leaderboard(report, runs)
    # hand-checked: BLEU 40, 44 -> 42 ± 2.828 (sample std); sorted by BLEU, best first
    assert lb.loc[0, "bleu_mean"] == pytest.approx(42.0)
    assert lb.loc[0, "bleu_std"] == pytest.approx(math.sqrt(8))
    assert list(lb["model.arch"]) == ["bahdanau", "seq2seq"]
    assert list(lb["n"]) == [2, 2]
    assert lb.loc[1, "aer_n"] == 0 and math.isnan(lb.loc[1, "aer_mean"])
    # the grouping keys: arch and score first, the other varying key (hub_config) after; never the seed
    assert report.group_keys[:2] == ["model.arch", "model.score"] and "seed" not in report.group_keys


def test_leaderboard_single_seed_has_no_std(tmp_path):
    corpus = write_corpus(tmp_path / "data")
    run = make_run(tmp_path / "runs", corpus, "one", "bahdanau", "additive", 1, METRICS_A[0], TEST_TGT)
    report = load([run], significance=False)
    assert report.leaderboard.loc[0, "n"] == 1
    assert math.isnan(report.leaderboard.loc[0, "bleu_std"])


# ------------------------------------------------------------------------------------------ significance
def test_paired_bootstrap_self_is_not_significant():
    refs = TEST_TGT * 5
    hyps = [degrade(r, 1) for r in refs]
    r = paired_bootstrap(hyps, list(hyps), refs, n_samples=200, seed=1)
    assert r.p_value == 1.0
    assert r.baseline_bleu == r.system_bleu
    assert "bs:200" in r.signature and "seed:1" in r.signature


def test_paired_bootstrap_detects_a_clear_difference():
    refs = [f"sentence number {i} has some words in it" for i in range(60)]
    good, bad = list(refs), [" ".join(r.split()[:2]) for r in refs]
    r = paired_bootstrap(bad, good, refs, n_samples=300, seed=3)
    assert r.system_bleu > r.baseline_bleu and r.p_value < 0.05
    # fixed seed: the same p-value twice
    assert paired_bootstrap(bad, good, refs, n_samples=300, seed=3).p_value == r.p_value


def test_significance_table(runs):
    report = load(runs, n_bootstrap=200)
    sig = report.significance
    best = report.leaderboard.loc[0, "configuration"]
    self_row = sig[(sig["vs"] == "best") & (sig["configuration"] == best)]
    assert self_row["p_value"].iloc[0] == 1.0 and not self_row["significant"].iloc[0]
    assert set(sig["vs"]) == {"best", "no-attention control"}
    # pooled over seeds: 6 test sentences x 2 seeds
    assert set(sig["sentences"]) == {12}
    ctrl = sig[(sig["vs"] == "no-attention control") & (sig["configuration"] == best)]
    assert ctrl["delta"].iloc[0] > 0
    assert any("bs:200" in s for s in report.signatures["bootstrap"])


# ------------------------------------------------------------------------------------------ rendering
def test_render_outputs_and_escaping(runs, tmp_path):
    out = tmp_path / "report"
    page = render_runs(runs, out, title=f"demo {XSS}")
    assert page == out / "index.html"
    for name in ("index.html", "README.md", "leaderboard.csv", "runs.csv", "significance.csv"):
        assert (out / name).is_file(), name
    text = page.read_text(encoding="utf-8")
    # a source sentence, a config value, a hypothesis and the title all carry markup: all escaped
    assert "<script>" not in text and "<b>bold</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "das &lt;script&gt;alert(1)&lt;/script&gt; haus ist klein" in text
    assert "&lt;b&gt;bold&lt;/b&gt; house is small" in text
    assert 'id="leaderboard"' in text and "As reported" in text and "data:image/gif;base64," in text
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "<script>" not in readme and "| rank" in readme
    lb = pd.read_csv(out / "leaderboard.csv")
    assert len(lb) == 2 and lb.loc[0, "bleu_mean"] == pytest.approx(42.0)
    assert len(pd.read_csv(out / "runs.csv")) == 4


def test_papers_table_has_the_anchors():
    from harness.report.tables import papers_table

    p = papers_table()
    value = dict(zip(p["model"], p["value"]))
    assert value["RNNsearch-50 (additive attention, sentences <= 50), 1000 units"] == 26.75
    assert value["RNNencdec-50 (no attention, sentences <= 50), 1000 units"] == 17.82
    assert 38.95 in set(p["value"]) and 24.61 in set(p["value"]) and 22.47 in set(p["value"])
    assert set(p["metric"]) == {"bleu", "aer"}
    assert p["BLEU convention"].notna().all()


def test_cli_report_run_dirs_and_errors(runs, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["report", *map(str, runs), "--output", str(out), "--bootstrap", "50", "--no-animation"]) == 0
    assert (out / "index.html").is_file()
    # a folder of run directories stands for all of them
    assert (
        main(
            [
                "report",
                str(runs[0].parent),
                "--output",
                str(tmp_path / "cli2"),
                "--no-significance",
                "--no-animation",
            ]
        )
        == 0
    )
    assert "4 runs" in capsys.readouterr().out
    assert main(["report", "no_such_study", "--storage", f"sqlite:///{tmp_path}/missing.db"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["report", str(runs[0]), str(tmp_path / "nope"), "--output", str(out)]) == 2


# ------------------------------------------------------------------------------------------ study input
def make_study(tmp_path: Path, run_dirs: list[Path], name: str = "toy", storage: str | None = None) -> str:
    import optuna
    from optuna.distributions import CategoricalDistribution

    from harness.config import flatten
    from harness.report.load import read_run_config
    from harness.storage import open_storage

    storage = storage or f"sqlite:///{tmp_path}/study.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=open_storage(storage), direction="maximize")
    study.set_user_attr("objective", [{"metric": "bleu", "direction": "maximize"}])
    dists = {
        "model.score": CategoricalDistribution(["additive", "none"]),
        "seed": CategoricalDistribution([1, 2]),
    }
    for d in run_dirs:
        m = json.loads((d / "metrics.json").read_text())
        cfg = read_run_config(d)
        study.add_trial(
            optuna.trial.create_trial(
                params={"model.score": cfg["model.score"], "seed": cfg["seed"]},
                distributions=dists,
                value=m["bleu"],
                user_attrs={"metrics": m, "run_dir": str(d), "config": flatten(cfg), "seed": cfg["seed"]},
            )
        )
    return storage


def test_report_from_study(runs, tmp_path):
    storage = make_study(tmp_path, runs)
    report = load("toy", storage, n_bootstrap=50)
    assert report.objective == [{"metric": "bleu", "direction": "maximize"}]
    assert len(report.runs) == 4 and set(report.runs["trial"]) == {0, 1, 2, 3}
    check_leaderboard(report, runs)
    out = tmp_path / "study_report"
    assert main(["report", "toy", "--storage", storage, "--output", str(out), "--bootstrap", "50"]) == 0
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "Optuna: optimization history" in text and "Optuna: parameter importances" in text


def test_report_from_a_journal_study(runs, tmp_path):
    """Reproductions keep their study in an Optuna journal file: `harness report --storage journal:///…` reads it
    the way the sweep wrote it; a journal that does not exist is an error, not a new empty study."""
    journal = tmp_path / "j" / "study.journal"
    storage = make_study(tmp_path, runs, "jt", storage=f"journal://{journal}")
    assert len(load("jt", storage, n_bootstrap=50).runs) == 4
    missing = tmp_path / "none" / "study.journal"
    with pytest.raises(HarnessError, match="not found"):
        load("jt", f"journal://{missing}")
    assert not missing.parent.exists()


def test_objective_minimize_sorts_ascending(runs, tmp_path):
    import optuna

    storage = make_study(tmp_path, runs, "mini")
    optuna.load_study(study_name="mini", storage=storage).set_user_attr(
        "objective", [{"metric": "length_drop", "direction": "minimize"}]
    )
    lb = load("mini", storage, significance=False).leaderboard
    assert list(lb["length_drop_mean"]) == sorted(lb["length_drop_mean"])


# ----------------------------------------------------------------------------------------- animation, heatmap
def test_animation_one_frame_per_output_word(runs, tmp_path):
    attn = np.full((4, 5), 0.2, dtype=np.float32)
    frames = animation_frames(attn, ["a", "b", "$c$", "d", "e"], ["x", "y", "z"], "t")
    assert len(frames) == 3
    gif = Image.open(io.BytesIO(gif_bytes(frames)))
    assert gif.format == "GIF" and gif.n_frames == 3
    out = tmp_path / "s.gif"
    assert main(["animate", str(runs[0]), "--index", "2", "--output", str(out)]) == 0
    words = (runs[0] / "test.hyp").read_text().splitlines()[2].split()
    assert Image.open(out).n_frames == len(words)
    with pytest.raises(HarnessError):
        animation_frames(np.zeros((2, 2)), ["a"], ["x"])


def test_plot_attention_cli(runs, capsys):
    assert main(["plot-attention", str(runs[0]), "--index", "1"]) == 0
    png = runs[0] / "attention" / "test-1.png"
    assert Image.open(png).size[0] > 100
    assert main(["plot-attention", str(runs[2]), "--index", "0"]) == 2  # control: no attention
    assert "no attention" in capsys.readouterr().err
    assert main(["plot-attention", str(runs[0]), "--index", "99"]) == 2


# ------------------------------------------------------------------------------------------ convergence
def _m(bleu: float, aer: float | None = None, threshold: float | None = None, diagonal: float | None = 0.5) -> dict:
    return {
        "bleu": bleu,
        "chrf": bleu + 20,
        "aer": aer,
        "aer_threshold": threshold,
        "aer_diagonal": diagonal,
        "aer_diagonal_precision": 0.45,
        "aer_diagonal_recall": 0.55,
        "gold_alignments": "synthetic" if diagonal is not None else None,
        "params": 1000,
    }


def _curve(steps: list[int], ppl: list[float], bleu: list[float], aer: list[float] | None = None) -> list[dict]:
    out = [{"step": s, "val_ppl": p, "val_bleu": b, "val_loss": math.log(p)} for s, p, b in zip(steps, ppl, bleu)]
    for row, a in zip(out, aer or []):
        row["val_aer"] = a
    return out


A, B, C, D, E = (
    "bahdanau · additive",
    "luong · general",
    "bahdanau · dot",
    "seq2seq · none",
    "luong · dot",
)


def convergence_runs(tmp: Path) -> dict[str, Path]:
    """Five configurations whose numbers are checkable by hand:
    A bahdanau/additive: seeds 1, 2 converged (BLEU 30, 34; AER 0.30, 0.26 < diagonal 0.5)
    B luong/general: seeds 1, 2 converged (BLEU 40, 42; AER 0.60, 0.62 > diagonal), seed 3 max_epochs (BLEU 10)
    C bahdanau/dot: seeds 1, 2 stopped by max_steps (BLEU 50, 52: the highest, never ranked; slopes -0.8, -0.4)
    D seq2seq/none: seed 1 converged, the no-attention control (no AER; its diagonal 0.55)
    E luong/dot: seed 1 from before the stopping rule (no convergence keys)"""
    corpus = write_corpus(tmp / "data")
    root = tmp / "runs"
    hyps = [degrade(t, 1) for t in TEST_TGT]
    spec = [
        (
            "a1",
            "bahdanau",
            "additive",
            1,
            _m(30, 0.30, 0.35),
            {**CONVERGED, "steps": 300},
            _curve([100, 200, 300], [10, 6, 5], [5, 10, 12], [0.6, 0.4, 0.3]),
        ),
        (
            "a2",
            "bahdanau",
            "additive",
            2,
            _m(34, 0.26, 0.33),
            {**CONVERGED, "steps": 400},
            _curve([100, 200, 300, 400], [12, 8, 6, 5.5], [4, 9, 11, 13], [0.7, 0.5, 0.35, 0.3]),
        ),
        ("b1", "luong", "general", 1, _m(40, 0.60, 0.70), CONVERGED, _curve([100, 200], [9, 7], [6, 8])),
        ("b2", "luong", "general", 2, _m(42, 0.62, 0.71), CONVERGED, _curve([100, 200], [11, 9], [7, 9])),
        (
            "b3",
            "luong",
            "general",
            3,
            _m(10, 0.90, 0.95, 0.9),
            unconverged("max_epochs"),
            _curve([100, 200], [40, 30], [1, 2]),
        ),
        ("c1", "bahdanau", "dot", 1, _m(50, 0.40), unconverged("max_steps", -0.8), _curve([100, 200], [8, 6], [9, 11])),
        ("c2", "bahdanau", "dot", 2, _m(52, 0.42), unconverged("max_steps", -0.4), _curve([100, 200], [9, 5], [8, 12])),
        ("d1", "seq2seq", "none", 1, _m(20, diagonal=0.55), CONVERGED, None),
        ("e1", "luong", "dot", 1, _m(45), None, None),
    ]
    return {
        name: make_run(
            root, corpus, name, arch, score, seed, m, hyps, attention=arch != "seq2seq", convergence=conv, curve=curve
        )
        for name, arch, score, seed, m, conv, curve in spec
    }


@pytest.fixture
def conv_runs(tmp_path) -> dict[str, Path]:
    return convergence_runs(tmp_path)


def test_leaderboard_ranks_converged_configurations_only(conv_runs):
    report = load(list(conv_runs.values()), significance=False)
    lb = report.leaderboard.set_index("configuration")
    # C (BLEU 51) and E (45) would lead; neither has a converged run. B counts seeds 1, 2 only: 41, not 30.67
    assert list(report.leaderboard["configuration"]) == [B, A, D]
    assert list(report.leaderboard["rank"]) == [1, 2, 3]
    assert lb.loc[B, "bleu_mean"] == pytest.approx(41.0) and lb.loc[B, "bleu_std"] == pytest.approx(math.sqrt(2))
    assert (lb.loc[B, "n"], lb.loc[B, "n_runs"], lb.loc[B, "n_converged"]) == (2, 3, 2)
    assert lb.loc[B, "seeds"] == "1, 2" and not lb.loc[B, "converged"]
    assert lb.loc[B, "convergence"] == "2/3 converged; unconverged: seed 3 max_epochs; ranked on seeds 1, 2"
    assert lb.loc[A, "convergence"] == "2/2 converged" and lb.loc[A, "converged"]
    assert lb.loc[A, "bleu_mean"] == pytest.approx(32.0)
    # "best" is among the converged ones: B's BLEU, A's AER (0.28 against B's 0.61)
    from harness.report.tables import best_configurations

    best = best_configurations(report.leaderboard)
    assert best["bleu"] == {B} and best["aer"] == {A}
    runs = report.runs.set_index("run")
    assert runs["converged"].to_dict() == {
        "a1": True,
        "a2": True,
        "b1": True,
        "b2": True,
        "b3": False,
        "c1": False,
        "c2": False,
        "d1": True,
        "e1": False,
    }
    assert runs.loc["b3", "stop_reason"] == "max_epochs" and runs.loc["c1", "stop_reason"] == "max_steps"


def test_unconverged_configurations_listed_apart(conv_runs):
    from harness.report.rows import unconverged_rows

    report = load(list(conv_runs.values()), significance=False)
    un = report.unconverged.set_index("configuration")
    assert list(report.unconverged["configuration"]) == [C, E]  # sorted by BLEU: 51, 45
    assert "rank" not in report.unconverged
    assert un.loc[C, "stop_reasons"] == "seed 1 max_steps, seed 2 max_steps"
    assert un.loc[C, "convergence"] == "0/2 converged; unconverged: seed 1 max_steps, seed 2 max_steps"
    assert un.loc[C, "val_metric_slope_mean"] == pytest.approx(-0.6)
    assert un.loc[C, "val_metric_slope_std"] == pytest.approx(math.sqrt(0.08))
    assert un.loc[C, "bleu_mean"] == pytest.approx(51.0) and un.loc[C, "n"] == 2
    H, R = unconverged_rows(report)
    row = next(r for r in R if r[0] == C)
    assert row[H.index("stopped by")] == "seed 1 max_steps, seed 2 max_steps"
    assert row[H.index("slope of the monitored metric (last validations)")] == "-0.600 ± 0.283 val_ppl/1k steps"


def test_runs_without_convergence_keys_are_unconverged(conv_runs, tmp_path):
    from harness.report.load import LEGACY_STOP_REASON

    report = load(list(conv_runs.values()), significance=False)
    e1 = report.runs.set_index("run").loc["e1"]
    assert not e1["converged"] and e1["stop_reason"] == LEGACY_STOP_REASON
    assert report.unconverged.set_index("configuration").loc[E, "stop_reasons"] == f"seed 1 {LEGACY_STOP_REASON}"
    # a report of old runs only: nothing ranked, everything listed apart, the page and the CLI still work
    old = fake_runs(tmp_path / "old")
    for d in old:
        m = json.loads((d / "metrics.json").read_text())
        for k in CONVERGED:
            m.pop(k)
        (d / "metrics.json").write_text(json.dumps(m))
    legacy = load(old, significance=False)
    assert legacy.leaderboard.empty and len(legacy.unconverged) == 2
    assert set(legacy.runs["stop_reason"]) == {LEGACY_STOP_REASON}
    out = tmp_path / "old_report"
    render(legacy, out, with_animation=False)
    assert 'id="unconverged"' in (out / "index.html").read_text(encoding="utf-8")
    assert main(["report", *map(str, old), "-o", str(out), "--no-significance", "--no-animation"]) == 0


def test_significance_against_the_best_converged_configuration(conv_runs):
    report = load(list(conv_runs.values()), n_bootstrap=50)
    sig = report.significance
    best = sig[sig["vs"] == "best"]
    assert set(best["baseline"]) == {B}  # not C, whose BLEU is higher but which never converged
    rows = best.set_index("configuration")
    assert set(rows.index) == {A, B, C, D, E}  # the unconverged are compared, never the baseline
    assert rows.loc[B, "sentences"] == 12  # 6 test sentences x B's 2 converged seeds (seed 3 left out)
    assert rows.loc[B, "p_value"] == 1.0
    assert (rows.loc[B, "converged"], rows.loc[A, "converged"], rows.loc[C, "converged"]) == ("2/3", "yes", "no")
    assert set(sig.loc[sig["vs"] == "no-attention control", "baseline"]) == {D}


def test_diagonal_baseline_row_and_below_diagonal_column(conv_runs):
    from harness.report.rows import leaderboard_rows, ours_rows
    from harness.report.tables import DIAGONAL_LABEL

    report = load(list(conv_runs.values()), significance=False)
    diag = report.diagonal.set_index("table")
    # over the leaderboard's runs: a1, a2, b1, b2 at 0.5 and d1 at 0.55 (b3, not counted, is left out). One gold
    # set gives every run the same diagonal AER; d1's differs here only so that the mean is checkable
    assert diag.loc["leaderboard", "aer_mean"] == pytest.approx(0.51)
    assert diag.loc["leaderboard", "aer_n"] == 5 and diag.loc["leaderboard", "gold"] == "synthetic"
    assert diag.loc["unconverged", "aer_mean"] == pytest.approx(0.5) and diag.loc["unconverged", "aer_n"] == 3
    lb = report.leaderboard.set_index("configuration")
    assert lb.loc[A, "aer_mean"] == pytest.approx(0.28) and lb.loc[A, "below_diagonal"] is True
    assert lb.loc[B, "aer_mean"] == pytest.approx(0.61) and lb.loc[B, "below_diagonal"] is False
    assert lb.loc[D, "below_diagonal"] is None  # no attention, no AER
    assert report.unconverged.set_index("configuration").loc[C, "below_diagonal"] is True  # 0.41 < 0.5
    H, R = leaderboard_rows(report, "*")
    assert H[H.index("AER ↓") + 1] == "AER (threshold) ↓" and H[H.index("AER ↓") + 2] == "AER below diagonal"
    rows = {r[1]: r for r in R}
    assert rows[A][H.index("AER below diagonal")] == "yes" and rows[B][H.index("AER below diagonal")] == "no"
    assert rows[D][H.index("AER below diagonal")] == "–"
    assert rows[A][H.index("AER (threshold) ↓")].text.startswith("0.340 ± 0.014")
    assert rows[DIAGONAL_LABEL][H.index("AER ↓")] == "0.510 ± 0.022"
    assert rows[DIAGONAL_LABEL][H.index("precision ↑")] == "0.450"
    Ho, Ro = ours_rows(report)
    assert any(r[0].startswith(DIAGONAL_LABEL) for r in Ro)
    assert {r[0]: r[Ho.index("AER below diagonal")] for r in Ro}[A] == "yes"


def test_diagonal_baseline_per_gold_set():
    from harness.report.tables import add_below_diagonal, diagonal_table, gold_of

    # a gold set is its name plus the data keys that vary between the report's runs: two synthetic tasks differ
    synthetic = {"gold_alignments": "synthetic"}
    assert (
        gold_of(synthetic, {"data.synthetic.test_size": 40}, ["data.synthetic.test_size"]) == "synthetic (test_size=40)"
    )
    assert gold_of(synthetic, {"data.synthetic.test_size": 40}, []) == "synthetic"
    assert gold_of({"gold_alignments": None}, {"data.name": "europarl_deen"}, []) == "europarl_deen"

    runs = pd.DataFrame(
        {
            "run": ["r1", "r2", "r3"],
            "gold": ["rwth", "rwth", "hansards"],
            "aer_diagonal": [0.6, 0.7, 0.2],
            "aer_diagonal_precision": [0.4, 0.4, 0.8],
            "aer_diagonal_recall": [0.4, 0.4, 0.8],
        }
    )
    d = diagonal_table(runs, "leaderboard").set_index("gold")
    assert d.loc["rwth", "aer_mean"] == pytest.approx(0.65) and d.loc["hansards", "aer_mean"] == pytest.approx(0.2)
    lb = pd.DataFrame({"configuration": ["x", "y"], "gold": ["rwth", "hansards"], "aer_mean": [0.5, 0.3]})
    out = add_below_diagonal(lb, d.reset_index())
    assert list(out["below_diagonal"]) == [True, False]  # 0.5 < 0.65; 0.3 > 0.2 on its own gold set


def test_validation_log_steps(tmp_path):
    """CSV step + 1 = the training step of a validation during fit; the final validation after fit is logged at
    the global step itself (capped at metrics.json `steps`); training rows are not validations."""
    from harness.report.load import read_validation_log

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "metrics.csv").write_text(
        "epoch,step,train_loss,val_bleu,val_ppl\n"
        "0,99,3.0,,\n0,99,,1.5,20.0\n0,199,,2.5,10.0\n1,249,2.0,,\n1,250,,3.0,nan\n"
    )
    log = read_validation_log(tmp_path, final_step=250)
    assert log == [
        {"step": 100, "val_bleu": 1.5, "val_ppl": 20.0},
        {"step": 200, "val_bleu": 2.5, "val_ppl": 10.0},
        {"step": 250, "val_bleu": 3.0},
    ]
    assert read_validation_log(tmp_path / "nope") == []


def test_learning_curves_mean_and_std_by_hand(conv_runs):
    report = load(list(conv_runs.values()), significance=False)
    lc = report.learning_curves
    assert list(lc.columns) == ["configuration", "run", "seed", "converged", "step", "metric", "value"]
    a2 = lc[(lc["run"] == "a2") & (lc["metric"] == "val_ppl")]
    assert list(a2["step"]) == [100, 200, 300, 400] and list(a2["value"]) == [12, 8, 6, 5.5]
    stats, notes = report.curve_stats()
    s = stats.set_index(["configuration", "metric", "step"])
    # A: seeds aligned on the steps both logged (a2's step 400 is left out); at 200: ppl 6, 8 -> 7 ± sqrt(2)
    assert sorted(stats[(stats["configuration"] == A) & (stats["metric"] == "val_ppl")]["step"]) == [100, 200, 300]
    assert s.loc[(A, "val_ppl", 200), "mean"] == pytest.approx(7.0)
    assert s.loc[(A, "val_ppl", 200), "std"] == pytest.approx(math.sqrt(2))
    assert s.loc[(A, "val_aer", 300), "mean"] == pytest.approx(0.325)
    # B's line is over its converged seeds: at 100, ppl 9 and 11 (seed 3's 40 left out)
    assert s.loc[(B, "val_ppl", 100), "mean"] == pytest.approx(10.0) and s.loc[(B, "val_ppl", 100), "n"] == 2
    assert s.loc[(C, "val_bleu", 200), "mean"] == pytest.approx(11.5)
    assert s.loc[(C, "val_bleu", 200), "std"] == pytest.approx(statistics.stdev([11, 12]))
    assert notes == []


def test_learning_curve_plots(conv_runs, tmp_path):
    import matplotlib.pyplot as plt

    from harness.report.plots import draw_learning_curve

    report = load(list(conv_runs.values()), significance=False)
    out = tmp_path / "report"
    render(report, out, with_animation=False)
    readme = (out / "README.md").read_text(encoding="utf-8")
    page = (out / "index.html").read_text(encoding="utf-8")
    for metric in ("val_ppl", "val_bleu", "val_aer"):
        png = out / f"learning_curve_{metric}.png"
        assert png.stat().st_size > 1000 and Image.open(png).size[0] > 300
        assert f"(learning_curve_{metric}.png)" in readme
        assert f'alt="learning curve {metric}"' in page
    line = (
        "Converged = training was ended by its stopping rule (3 validations in a row without an improvement of val_ppl)"
    )
    assert line in readme and "are not converged and not ranked" in readme
    assert "Converged = training was ended by its stopping rule" in page
    assert len(pd.read_csv(out / "learning_curves.csv")) == len(report.learning_curves)
    # the unconverged configuration is dashed and says so; a mixed one says which seeds its line is over
    fig, ax = plt.subplots()
    stats, _ = report.curve_stats()
    draw_learning_curve(ax, stats, "val_ppl", report.configurations, {C}, {B: "converged seeds 1, 2 of 3"})
    style = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
    plt.close(fig)
    assert style[f"{C} (unconverged)"] == "--" and style[A] == "-"
    assert style[f"{B} (converged seeds 1, 2 of 3)"] == "-"


# ------------------------------------------------------------------------------------------ real runs (slow)
@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> list[Path]:
    """2 configurations x 2 seeds of real tiny training runs, trained once per session. Each is ended by its
    stopping rule (no improvement of val_ppl by 1e6 in 1 validation: the second validation, step 20), so each
    converged and all are ranked."""
    from harness.runs.run import train

    root = tmp_path_factory.mktemp("report_runs")
    base = {
        "train.max_steps": 30,
        "train.val_every": 10,
        "train.early_stopping": 1,
        "train.early_stopping_metric": "val_ppl",
        "train.early_stopping_min_delta": 1e6,
        "data.synthetic.train_size": 200,
        "data.synthetic.val_size": 20,
        "data.synthetic.test_size": 40,
        "data.synthetic.max_len": 10,
        "model.hidden_size": 16,
        "model.emb_size": 16,
        "tracking.wandb.mode": "disabled",
        "eval.min_bucket_n": 5,
    }
    out = []
    for arch, score in (("bahdanau", "additive"), ("seq2seq", "none")):
        for seed in (1, 2):
            cfg = load_config(None, {**base, "model.arch": arch, "model.score": score, "seed": seed})
            out.append(train(cfg, root / f"{arch}-{score}-s{seed}", progress=False).run_dir)
    return out


@pytest.mark.slow
def test_report_of_trained_study(trained_runs, tmp_path):
    storage = make_study(tmp_path, trained_runs, "real")
    report = load("real", storage, n_bootstrap=100)
    assert report.unconverged.empty and set(report.runs["stop_reason"]) == {"early_stopping"}
    check_leaderboard(report, trained_runs)
    lc = report.learning_curves
    assert set(lc["step"]) == {10, 20} and set(lc["metric"]) >= {"val_ppl", "val_bleu", "val_loss"}
    sig = report.significance
    best = report.leaderboard.loc[0, "configuration"]
    assert sig[(sig["vs"] == "best") & (sig["configuration"] == best)]["p_value"].iloc[0] == 1.0
    # pooled test hypotheses: 40 test sentences x 2 seeds
    assert set(sig["sentences"]) == {80}
    out = tmp_path / "real_report"
    render(report, out)
    assert (out / "index.html").stat().st_size > 10_000
    attn_run = next(d for d in trained_runs if "bahdanau" in d.name)
    assert main(["animate", str(attn_run), "--index", "0"]) == 0
    words = (attn_run / "test.hyp").read_text().splitlines()[0].split()
    gif = attn_run / "attention" / "test-0.gif"
    if words:
        assert Image.open(gif).n_frames == len(words)
    assert main(["plot-attention", str(attn_run), "--index", "0", "--forced"]) == 0
    assert (attn_run / "attention" / "test.forced-0.png").is_file()


def test_reproduction_mean_std_has_no_spread_for_one_run():
    from harness.study.summary import _fmt, _mean_std

    assert _mean_std([7.0]) == (7.0, None) and _fmt(*_mean_std([7.0])) == "7.00"
    mean, std = _mean_std([1.0, 3.0, None, float("nan")])
    assert (mean, round(std, 6)) == (2.0, round(2**0.5, 6)) and _fmt(mean, std) == "2.00 ± 1.41"
    assert _fmt(*_mean_std([2.0, 2.0])) == "2.00 ± 0.00"  # two equal runs: a real zero spread
    assert _mean_std([None]) == (None, None) and _fmt(None, None) == "-"


def test_a_budget_tells_configurations_apart_only_where_it_ended_runs_at_different_values():
    """A cap raised while a study ran does not split a configuration (the rule ended both runs, or the cap ended
    one), while runs that different caps stopped (a sweep over the budget) stay apart."""
    from harness.report.load import RunRecord
    from harness.report.tables import group_keys

    def rec(name, cap, reason):
        config = {"model.arch": "bahdanau", "model.score": "general", "train.max_epochs": cap, "seed": 1}
        return RunRecord(name, None, config, {"bleu": 1.0, "stop_reason": reason, "converged": reason == "early"})

    ruled = [rec("a", 25, "early_stopping"), rec("b", 60, "early_stopping")]
    assert group_keys(ruled) == ["model.arch", "model.score"]
    assert group_keys([*ruled, rec("c", 25, "max_epochs")]) == ["model.arch", "model.score"]
    capped = [rec("c", 25, "max_epochs"), rec("d", 60, "max_epochs")]
    assert group_keys(ruled + capped) == ["model.arch", "model.score", "train.max_epochs"]
    assert group_keys([rec("e", 10, "max_steps"), rec("f", 20, "max_epochs")]) == ["model.arch", "model.score"]
    legacy = [
        RunRecord(n, None, {**r.config, "train.max_epochs": c}, {"bleu": 1.0})
        for n, c, r in (("g", 2, ruled[0]), ("h", 4, ruled[0]))
    ]
    assert group_keys(legacy)[-1] == "train.max_epochs"  # trained before the rule: the budget ended them


def test_a_key_added_since_a_run_counts_at_its_default_and_does_not_split_its_configuration(tmp_path):
    """britz2017's report had shown general-128 as two rows (`malloc_mmap_threshold=-` and `=0`): a run from before
    a key existed lacks it in config.yaml, and ran as the key's default does (DIGEST_NEUTRAL_AT_DEFAULT). A key set
    away from its default tells runs apart, except glibc's malloc settings, which change no result."""
    from harness.config import DIGEST_NEUTRAL_AT_DEFAULT, neutral_defaults
    from harness.report.load import RunRecord, read_run_config
    from harness.report.tables import config_label, group_keys

    doc = to_dict(load_config("experiments/bahdanau2015_synthetic.yaml"))
    dirs = {}
    for name, change in (("old", None), ("new", 0), ("set", 256)):
        d = tmp_path / name
        d.mkdir()
        run = json.loads(json.dumps(doc))
        if change is None:  # written before these keys existed
            for dotted in DIGEST_NEUTRAL_AT_DEFAULT:
                section, key = dotted.split(".")
                del run[section][key]
        else:
            run["train"]["loss_chunk_rows"] = change
        (d / "config.yaml").write_text(dump_yaml(run))
        dirs[name] = read_run_config(d)
    assert dirs["old"] == dirs["new"]  # every added key at the default it ran with
    assert {k: dirs["old"][k] for k in DIGEST_NEUTRAL_AT_DEFAULT} == neutral_defaults()
    rec = {n: RunRecord(n, None, c, {"bleu": 1.0}) for n, c in dirs.items()}
    assert group_keys([rec["old"], rec["new"]]) == ["model.arch", "model.score"]
    keys = group_keys(list(rec.values()))  # a key set away from its default still tells runs apart
    assert keys == ["model.arch", "model.score", "train.loss_chunk_rows"]
    assert config_label(dirs["old"], keys) == config_label(dirs["new"], keys) != config_label(dirs["set"], keys)
    # glibc's malloc settings never tell runs apart: a study that turns one on midway stays one configuration
    keep = RunRecord("keep", None, {**dirs["new"], "train.malloc_keep_freed": True}, {"bleu": 1.0})
    mapped = RunRecord("mapped", None, {**dirs["new"], "train.malloc_mmap_threshold": 65536}, {"bleu": 1.0})
    assert group_keys([rec["old"], keep, mapped]) == ["model.arch", "model.score"]


def test_a_report_rebuilt_from_the_same_runs_keeps_its_page(runs, tmp_path):
    """Rebuilding an unchanged report (harness results build over every target) leaves index.html byte for byte,
    its generation time included; a report whose runs changed is written anew."""
    import re

    out = tmp_path / "report"
    page = render_runs(runs, out, title="same")
    older = re.sub(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "Generated 2001-01-01 00:00 UTC", page.read_text())
    assert older != page.read_text()
    page.write_text(older)
    render_runs(runs, out, title="same")
    assert page.read_text() == older
    render_runs(runs[:-1], out, title="same")
    assert "Generated 2001-01-01" not in page.read_text()


def test_reports_show_paths_inside_the_project_relative_to_it(tmp_path):
    """A report committed under results/ names its run directories the same from every clone."""
    from harness.paths import PROJECT_ROOT
    from harness.report.load import shown_path

    assert shown_path(PROJECT_ROOT / "results" / "b" / "trials" / "0") == "results/b/trials/0"
    assert shown_path(tmp_path / "trials" / "0") == str(tmp_path / "trials" / "0")

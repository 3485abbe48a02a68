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
from harness.config import dump_yaml, load_config, to_dict
from harness.errors import HarnessError
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
) -> Path:
    """A finished-looking run directory, as `harness train` writes it."""
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
        **metrics,
    }
    (run / "metrics.json").write_text(json.dumps(full), encoding="utf-8")
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
            )
        )
    for seed, m in zip((1, 2), METRICS_B):
        hyps = [degrade(t, 2 + seed % 2) for t in TEST_TGT]
        runs.append(make_run(tmp / "runs", corpus, f"ctrl-s{seed}", "seq2seq", "none", seed, m, hyps, attention=False))
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
def make_study(tmp_path: Path, run_dirs: list[Path], name: str = "toy") -> str:
    import optuna
    from optuna.distributions import CategoricalDistribution

    from harness.config import flatten
    from harness.report.load import read_run_config

    storage = f"sqlite:///{tmp_path}/study.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
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


# ------------------------------------------------------------------------------------------ real runs (slow)
@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> list[Path]:
    """2 configurations x 2 seeds of real tiny training runs, trained once per session."""
    from harness.run import train

    root = tmp_path_factory.mktemp("report_runs")
    base = {
        "train.max_steps": 30,
        "train.val_every": 30,
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
    check_leaderboard(report, trained_runs)
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
    from harness.reproduce import _fmt, _mean_std

    assert _mean_std([7.0]) == (7.0, None) and _fmt(*_mean_std([7.0])) == "7.00"
    mean, std = _mean_std([1.0, 3.0, None, float("nan")])
    assert (mean, round(std, 6)) == (2.0, round(2**0.5, 6)) and _fmt(mean, std) == "2.00 ± 1.41"
    assert _fmt(*_mean_std([2.0, 2.0])) == "2.00 ± 0.00"  # two equal runs: a real zero spread
    assert _mean_std([None]) == (None, None) and _fmt(None, None) == "-"

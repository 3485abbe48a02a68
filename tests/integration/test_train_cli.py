"""`harness train / evaluate / translate` end to end on tiny configs."""

import json

import numpy as np
import pytest
import yaml

from ..conftest import TINY, needs_data, run_cli


def test_train_writes_a_complete_run_directory(tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", "experiments/bahdanau2015_synthetic.yaml", *TINY, "--output", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    for f in [
        "config.yaml",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "test.hyp",
        "metrics.json",
        "attention/test.npz",
        "attention/test.forced.npz",
    ]:
        assert (out / f).is_file(), f
    assert not (tmp_path / "run.partial").exists() and not (out / "INCOMPLETE").exists()
    m = json.loads((out / "metrics.json").read_text())
    for key in [
        "bleu",
        "chrf",
        "sacrebleu_signature",
        "val_ppl",
        "params",
        "train_tokens_per_sec",
        "decode_sentences_per_sec",
        "train_time_s",
        "steps",
        "epochs",
        "aer",
        "alignment_precision",
        "alignment_recall",
        "by_length",
        "length_drop",
        "attention_entropy",
    ]:
        assert key in m, key
    assert 0 <= m["bleu"] <= 100 and m["steps"] == 20 and m["params"] > 1000
    assert m["sacrebleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert 0 < m["aer"] < 1 and m["gold_alignments"] == "synthetic"
    assert len((out / "test.hyp").read_text().splitlines()) == 40
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model"]["arch"] == "bahdanau" and cfg["_meta"]["seed"] == 1 and "torch" in cfg["_meta"]["versions"]
    z = np.load(out / "attention" / "test.npz", allow_pickle=False)
    assert int(z["count"]) == 40 and z["attn_0"].shape == (len(z["tgt_0"]) + 1, len(z["src_0"]))

    # refuses to overwrite; evaluate recomputes; translate reads stdin
    again = run_cli("train", "experiments/bahdanau2015_synthetic.yaml", *TINY, "--output", str(out), "--quiet")
    assert again.returncode == 2 and "not empty" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    ev = run_cli("evaluate", str(out), "--beam", "3", "--quiet")
    assert ev.returncode == 0, ev.stderr
    assert json.loads((out / "metrics.json").read_text())["beam"] == 3
    nb = run_cli("evaluate", str(out), "--beam", "3", "--n-best", "3", "--quiet")
    assert nb.returncode == 0, nb.stderr
    rows = [line.split(" ||| ") for line in (out / "test.nbest").read_text().splitlines()]
    assert len(rows) == 3 * 40 and all(len(r) == 3 for r in rows)
    first = [float(r[2]) for r in rows if r[0] == "0"]
    assert first == sorted(first, reverse=True)  # best first
    tr = run_cli("translate", str(out), stdin="s1 s2 s3\ns4\n")
    assert tr.returncode == 0, tr.stderr
    assert len(tr.stdout.splitlines()) == 2


def test_resume_continues_from_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    first = run_cli("train", "experiments/seq2seq_synthetic.yaml", *TINY, "--output", str(out), "--quiet")
    assert first.returncode == 0, first.stderr
    more = run_cli(
        "train",
        "experiments/seq2seq_synthetic.yaml",
        *TINY,
        "train.max_steps=30",
        "--output",
        str(out),
        "--resume",
        "--quiet",
    )
    assert more.returncode == 0, more.stderr
    assert json.loads((out / "metrics.json").read_text())["steps"] == 30


def test_same_seed_same_metrics(tmp_path):
    ms = []
    for name in ("a", "b"):
        r = run_cli(
            "train", "experiments/seq2seq_attn_synthetic.yaml", *TINY, "--output", str(tmp_path / name), "--quiet"
        )
        assert r.returncode == 0, r.stderr
        ms.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert ms[0]["bleu"] == ms[1]["bleu"] and ms[0]["val_ppl"] == ms[1]["val_ppl"] and ms[0]["aer"] == ms[1]["aer"]


@needs_data("multi30k")
def test_multi30k_few_hundred_sentences(tmp_path):
    out = tmp_path / "m30k"
    r = run_cli(
        "train",
        "experiments/bahdanau2015_multi30k.yaml",
        "data.train_limit=300",
        "data.test_limit=50",
        "data.val_limit=30",
        "model.emb_size=16",
        "model.enc_hidden_size=16",
        "model.hidden_size=32",
        "model.maxout_size=16",
        "train.max_steps=15",
        "train.max_epochs=-1",
        "train.val_every=15",
        "train.batch_size=32",
        "tracking.wandb.mode=disabled",
        "--output",
        str(out),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["split"] == "test_2016_flickr" and m["aer"] is None and m["gold_alignments"] is None
    assert "case:lc" in m["sacrebleu_signature"]
    assert len((out / "test.hyp").read_text().splitlines()) == 50


def test_sentencepiece_run_merges_subword_attention_to_words(tmp_path):
    """data.tokenizer=sentencepiece: pieces trained on the training side (cached by content hash), BLEU on
    detokenized text, and AER computed after merging piece attention back to the gold's words."""
    from harness.experiment import load_config
    from harness.runs.run import train

    cfg = load_config(
        "experiments/seq2seq_attn_synthetic.yaml",
        TINY + ["data.tokenizer=sentencepiece", "data.sp_vocab_size=40", "data.sp_type=unigram"],
    )
    result = train(cfg, tmp_path / "sp", progress=False)
    m = result.metrics
    assert m["gold_alignments"] == "synthetic" and 0 <= m["aer"] <= 1
    z = np.load(result.run_dir / "attention" / "test.forced.npz")
    assert any(str(t).startswith("▁") for t in z["src_0"])  # the attention file is over pieces
    hyps = (result.run_dir / "test.hyp").read_text().splitlines()
    assert len(hyps) == 40 and not any("▁" in h for h in hyps)


def test_overrides_may_follow_options(capsys):
    """argparse alone stops filling `overrides` once an option comes between; the CLI takes key=value anywhere."""
    from harness.cli import build_parser, parse_args

    argv = ["reproduce", "bahdanau2015", "train.threads=1", "--scale", "tiny", "--dry-run", "seed=3"]
    assert parse_args(build_parser(), argv).overrides == ["train.threads=1", "seed=3"]
    argv = ["sweep", "sweeps/score_functions.yaml", "--workers", "2", "train.max_steps=8"]
    assert parse_args(build_parser(), argv).overrides == ["train.max_steps=8"]
    with pytest.raises(SystemExit):
        parse_args(build_parser(), ["reproduce", "bahdanau2015", "--bogus", "x=1"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_val_bleu_best_counts_the_final_validation(tmp_path):
    """max_steps not a multiple of val_every: the last validation runs after fit, outside the checkpoint
    callback; val_bleu_best (and best.ckpt) must still be the best of all validations."""
    import csv

    out = tmp_path / "run"
    over = [*TINY, "train.max_steps=45", "train.val_every=20", "train.lr=0.01", "eval.forced_alignment=false"]
    r = run_cli("train", "experiments/luong2015_synthetic.yaml", *over, "--output", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    with open(out / "logs" / "metrics.csv") as f:
        vals = {int(row["step"]): float(row["val_bleu"]) for row in csv.DictReader(f) if row.get("val_bleu")}
    assert sorted(vals) == [19, 39, 45]  # steps 20, 40 (0-based in the log) and the final one
    m = json.loads((out / "metrics.json").read_text())
    assert m["val_bleu_best"] == pytest.approx(max(vals.values()))

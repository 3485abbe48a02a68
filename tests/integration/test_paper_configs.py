"""Paper-scale configs (experiments/paper/*.yaml) load, build at FULL paper size and take one training step.

Their data (WMT'14 through the hub) needs the network, so the data is swapped for the local newstest2014
files (4 training sentences; the step trains on the shortest); everything else — architecture, sizes,
optimizer, schedule — is the paper's.
"""

from __future__ import annotations

import math

import pytest
import torch

from harness.experiment import load_config
from harness.paths import PROJECT_ROOT, data_root

PAPER = sorted((PROJECT_ROOT / "experiments" / "paper").glob("*.yaml"))
WMT14 = data_root() / "wmt14"
needs_wmt14 = pytest.mark.skipif(not WMT14.is_dir(), reason=f"shared data not found: {WMT14} (set HARNESS_DATA_DIR)")


def test_every_paper_config_is_present_and_commented():
    names = {p.stem for p in PAPER}
    for need in (
        "sutskever2014_wmt14_enfr",
        "bahdanau2015_rnnenc50",
        "bahdanau2015_rnnsearch50",
        "luong2015_global_location",
        "luong2015_global_dot",
        "luong2015_global_general",
        "luong2015_localm_general",
        "luong2015_localp_general",
        "gnmt2016_wmt14_enfr",
    ):
        assert need in names
    for p in PAPER:
        text = p.read_text()
        assert "deviates" in text, f"{p.name}: says where the harness deviates from the paper"
        assert "§" in text or "Table" in text, f"{p.name}: cites the paper's sections/tables"


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_config_values(path):
    cfg = load_config(path)
    assert cfg.data.name == "hf:wmt14" and cfg.data.hub_config in ("fr-en", "de-en")
    m, t, d = cfg.model, cfg.train, cfg.decode
    if path.stem.startswith("sutskever"):
        assert (m.arch, m.enc_layers, m.hidden_size, m.emb_size, m.reverse_source) == (
            "seq2seq",
            4,
            1000,
            1000,
            True,
        )
        assert (t.optimizer, t.lr, t.lr_decay_start, t.batch_size, t.grad_clip, d.beam) == (
            "sgd",
            0.7,
            5,
            128,
            5.0,
            12,
        )
        assert t.loss_normalization == "sentences"  # §3.4: lr 0.7 and the clip of 5 assume per-sentence averages
    elif path.stem.startswith("bahdanau"):
        assert (m.arch, m.hidden_size, m.enc_hidden_size, m.emb_size, m.maxout_size) == (
            "bahdanau",
            1000,
            1000,
            620,
            500,
        )
        assert m.score == ("none" if "rnnenc" in path.stem else "additive")
        assert (t.optimizer, t.batch_size, cfg.data.vocab_max_size, cfg.data.max_len, d.beam) == (
            "adadelta",
            80,
            30000,
            50,
            12,
        )
    elif path.stem.startswith("luong"):
        assert (m.arch, m.enc_layers, m.dec_layers, m.hidden_size, m.emb_size) == ("luong", 4, 4, 1000, 1000)
        assert (m.input_feeding, m.dropout, m.window, cfg.data.vocab_max_size, cfg.data.max_len) == (
            True,
            0.2,
            10,
            50000,
            50,
        )
        assert (t.optimizer, t.lr, t.batch_size, t.grad_clip, t.lr_schedule) == (
            "sgd",
            1.0,
            128,
            5.0,
            "halving",
        )
        att, score = path.stem.removeprefix("luong2015_").split("_")
        assert m.attention_type == {"global": "global", "localm": "local-m", "localp": "local-p"}[att]
        assert m.score == score
        assert t.loss_normalization == "sentences"  # §4.1: lr 1 and the clip of 5 assume per-sentence averages
    else:
        assert (m.arch, m.enc_layers, m.dec_layers, m.hidden_size, m.residual_from) == ("gnmt", 8, 8, 1024, 3)
        assert (cfg.data.tokenizer, cfg.data.sp_vocab_size, d.beam) == ("sentencepiece", 32000, 10)
        assert (d.length_penalty_alpha, d.coverage_penalty_beta, d.penalty_mode) == (0.2, 0.2, "gnmt")


def _local(path):
    """The paper config, its data swapped for 4 local newstest2014 sentences (model, optimizer unchanged)."""
    cfg = load_config(path)
    pair = "fren" if cfg.data.hub_config == "fr-en" else "deen"
    prefix = str(WMT14 / f"newstest2014-{pair}")
    over = {
        "data.name": "parallel",
        "data.train_prefix": prefix,
        "data.val_prefix": prefix,
        "data.test_prefix": prefix,
        "data.train_limit": 4,
        "data.val_limit": 4,
        "data.test_limit": 4,
        "data.max_len": 200,  # keep all 8 sentences (the paper's filter would drop some long news sentences)
        "data.vocab_max_size": cfg.data.vocab_max_size,
    }
    if cfg.data.tokenizer == "sentencepiece":
        over["data.sp_vocab_size"] = 200  # a 32k-piece model cannot be trained on 8 sentences
    return load_config(path, over)


@pytest.mark.slow
@needs_wmt14
@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_config_builds_at_full_size_and_trains_one_step(path, tmp_path, monkeypatch):
    from harness.data.datamodule import eval_batches, prepare
    from harness.train.module import TranslationModule

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    cfg = _local(path)
    data = prepare(cfg)
    module = TranslationModule.build(cfg, data.src_vocab.itos, data.tgt_vocab.itos)
    m = cfg.model
    # the paper's sizes: every LSTM/GRU layer has the paper's width
    rnn_sizes = {
        mod.hidden_size for mod in module.model.modules() if isinstance(mod, torch.nn.RNNBase | torch.nn.RNNCellBase)
    }
    enc_width = m.enc_hidden_size or m.hidden_size
    assert rnn_sizes <= {m.hidden_size, enc_width} and max(rnn_sizes) == max(m.hidden_size, enc_width)
    assert module.model.encoder.embedding.embedding_dim == m.emb_size
    optim = module.configure_optimizers()
    opt = optim["optimizer"] if isinstance(optim, dict) else optim
    assert type(opt).__name__.lower() == cfg.train.optimizer
    batch = eval_batches(data.splits["train"], 1)[0]  # one step on the shortest sentence: the sizes are the point
    before = [p.detach().clone() for p in module.parameters()]
    module.train()
    loss, n_tokens = module.loss(batch)
    assert n_tokens > 0 and math.isfinite(float(loss.detach()))
    loss.backward()
    if cfg.train.grad_clip:
        torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.train.grad_clip)
    opt.step()
    changed = sum(not torch.equal(a, p.detach()) for a, p in zip(before, module.parameters()))
    assert changed > 0, "one optimizer step changed no parameter"

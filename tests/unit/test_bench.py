"""harness bench / bench-peers: the FLOP model (by hand and against torch's FLOP counter), table rendering,
JSON writing, log parsing. No timing assertions: speed is never a unit-test assertion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.bench.flops import Matmul, flops_per_target_token, model_matmuls, rnn_terms, score_terms
from harness.bench.limit import compute_limit, time_matmul
from harness.bench.peers.configs import HARNESS_PRESET, harness_overrides, joeynmt_config, opennmt_config
from harness.bench.peers.table import render_peers_table
from harness.bench.peers.toolkits import (
    JOEY_PARAMS,
    JOEY_STEP,
    JOEY_TIME,
    ONMT_PARAMS,
    ONMT_STEP,
    ONMT_TIME,
    after_warmup,
    last_float,
    window_rates,
)
from harness.bench.throughput import bench_device, render_bench_table, write_bench
from harness.config import ModelConfig
from harness.data.batch import Batch
from harness.models.seq2seq import ARCHS, build_model, count_parameters


# ------------------------------------------------------------------------------------------ FLOP model
def test_rnn_terms_by_hand():
    # GRU, input 4, hidden 2: W_ih 4 -> 6 (3 gates) = 2·4·6 = 48 FLOPs, W_hh 2 -> 6 = 24
    gru = rnn_terms("enc", "encoder", "src", "gru", 4, 2)
    assert [t.flops(0) for t in gru] == [48, 24]
    # LSTM has 4 gates; a bidirectional layer counts twice
    lstm = rnn_terms("enc", "encoder", "src", "lstm", 4, 2, dirs=2)
    assert [t.flops(0) for t in lstm] == [2 * 2 * 4 * 8, 2 * 2 * 2 * 8]
    assert lstm[0].rows == "BS" and lstm[1].rows == "B"  # input projection over the sequence, recurrence per step


def test_attention_terms_scale_with_source_length():
    terms = score_terms("additive", query_size=6, key_size=6)
    per_tgt = {t.name: t.flops(5) for t in terms if t.per == "tgt"}
    assert per_tgt == {"attention W q": 72, "attention vᵀ tanh(·)": 60, "attention context Σ a h̄": 60}
    assert [t.flops(5) for t in terms if t.per == "src"] == [72]  # U h̄_s, once per source token
    assert score_terms("none", 6, 6) == []
    dot = score_terms("dot", 6, 6)
    assert sum(t.flops(10) for t in dot) == 2 * 6 * 10 * 2  # score + context


def test_bahdanau_flops_by_hand():
    # E=4, H=6, encoder 3/direction (key 6), maxout 2, V=10; S=5 source tokens, T=4 target tokens (+</s>)
    m = ModelConfig(arch="bahdanau", score="additive", emb_size=4, hidden_size=6, enc_hidden_size=3, maxout_size=2)
    f = flops_per_target_token(model_matmuls(m, 10), avg_src=5, avg_tgt=4)
    src = 2 * (2 * 4 * 9 + 2 * 3 * 9) + 2 * 6 * 6  # biGRU + U h̄ = 324 per source token
    tgt = (
        72
        + 60
        + 60  # attention: W q, vᵀ tanh over 5 positions, context
        + 2 * 10 * 18
        + 2 * 6 * 18  # GRUCell: input [E y; c] = 10, hidden 6
        + 2 * 6 * 4
        + 2 * 4 * 4
        + 2 * 6 * 4  # maxout U_o, V_o, C_o (2 × 2 units)
        + 2 * 2 * 10
    )  # generator
    assert f["forward"] == pytest.approx(tgt + src * 5 / 4)
    assert f["train"] == pytest.approx(3 * f["forward"])
    assert sum(f["by_part"].values()) == pytest.approx(f["forward"])


@pytest.mark.parametrize(
    "arch,score,extra,bridge",
    [
        ("bahdanau", "additive", {}, 2 * 3 * 6),  # s_0 = tanh(W_s h̄_1^←): once per sentence, not in the model
        ("seq2seq_attn", "general", {}, 0),
        ("seq2seq_attn", "dot", {}, 0),
        ("gnmt", "additive", {"enc_layers": 3, "dec_layers": 3}, 0),
        ("cgru", "additive", {}, 2 * 6 * 6),  # s_0 = tanh(W_init mean_i h_i): once per sentence
        ("cgru", "general", {}, 2 * 6 * 6),
        ("luong", "additive", {"rnn_cell": "gru", "enc_bidirectional": True}, 0),  # OpenNMT-py's RNN, no bridge
        ("luong", "general", {"rnn_cell": "gru", "enc_bidirectional": True, "input_feeding": False}, 0),
    ],
)
def test_flop_model_matches_torch_flop_counter(arch, score, extra, bridge):
    """The formula agrees with torch's own count of the matmuls the model runs (one sentence, no padding).
    torch does not see inside nn.LSTM's fused kernel, so encoder LSTM layers are left out of that check."""
    torch.manual_seed(0)
    m = ModelConfig(arch=arch, score=score, emb_size=4, hidden_size=6, maxout_size=2, **extra)
    model = build_model(m, 11, 10).eval()
    S, T = 5, 4
    src = torch.randint(4, 11, (1, S))
    tgt = torch.randint(4, 10, (1, T))
    batch = Batch(src, torch.tensor([S]), tgt, tgt, torch.zeros(1, dtype=torch.long))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(batch)
    terms = model_matmuls(m, 10)
    invisible = [t for t in terms if t.part == "encoder" and "lstm" in str(model.encoder.cell)]
    visible = [t for t in terms if t not in invisible]
    expected = flops_per_target_token(visible, S, T)["forward"] * T + bridge
    assert counter.get_total_flops() == pytest.approx(expected)


@pytest.mark.parametrize("preset_arch", sorted(ARCHS))
def test_every_arch_has_a_flop_model(preset_arch):
    """Every registered architecture (harness list), so a new one cannot reach `harness bench` without one."""
    m = ModelConfig(
        arch=preset_arch,
        score="none" if preset_arch == "seq2seq" else "general",
        emb_size=8,
        hidden_size=8,
        enc_layers=2,
        dec_layers=2,
    )
    f = flops_per_target_token(model_matmuls(m, 20), 7, 8)
    assert f["forward"] > 0 and set(f["by_part"]) <= {"encoder", "attention", "decoder", "output"}


def test_compute_limit_runs_at_tiny_shapes():
    terms = [
        Matmul("generator", "output", "tgt", 4, 8, "BT"),
        Matmul("ctx", "attention", "tgt", "S", 4, batched=True),
    ]
    out = compute_limit(terms, B=2, avg_src=3, avg_tgt=2, min_time=0.001)
    assert out["tokens_per_sec"] > 0
    assert [s["shape"] for s in out["shapes"]] == ["(4×4)·(4×8)", "(2×3)·(3×4) bmm"]
    assert time_matmul(2, 3, 4, min_time=0.001) > 0


# ------------------------------------------------------------------------------------------ rendering / JSON
def _fake_doc():
    result = {
        "preset": "bahdanau2015",
        "params": 1234567,
        "train": {"tokens_per_sec_median": 1000.0, "tokens_per_sec_min": 900.0, "tokens_per_sec_max": 1100.0},
        "flops": {"train": 4.0e7, "forward": 4.0e7 / 3, "by_part": {}},
        "compute_limit_tokens_per_sec": 4000.0,
        "peak_rss_mb_train": 812.4,
        "decode": {
            "greedy": {"sentences_per_sec": 150.0, "length_ratio": 0.97, "bleu": 12.3},
            "beam5": {"sentences_per_sec": 40.0, "length_ratio": 0.95, "bleu": 13.0},
        },
    }
    return {
        "machine": {
            "cpu": "test cpu",
            "threads": 2,
            "torch": "2.13.0",
            "load_start": "0.1",
            "load_end": "0.2",
        },
        "settings": {
            "warmup": 5,
            "repeats": 3,
            "steps": 30,
            "decode_sentences": 500,
            "decode_split": "test_2016_flickr",
            "batch_size": 64,
        },
        "results": [result, {"preset": "gnmt2016", "error": "worker exited with status 1"}],
    }


def test_render_bench_table():
    md = render_bench_table(_fake_doc())
    row = next(line for line in md.splitlines() if line.startswith("| bahdanau2015"))
    assert "1,234,567" in row and "1,000 [900–1,100]" in row and "25.0%" in row  # 1000 / 4000
    assert "0.0400" in row and "150.0" in row and "40.0" in row and "0.97" in row
    assert "| gnmt2016 | error: worker exited with status 1" in md
    assert "95 training steps" in md  # 5 + 3 × 30


def test_render_bench_table_gpu_row():
    doc = _fake_doc()
    doc["results"][0].update(device="NVIDIA H100 80GB HBM3", precision="bf16-mixed", peak_gpu_mb=321.0)
    md = render_bench_table(doc)
    assert "Device: NVIDIA H100 80GB HBM3 (bf16-mixed)." in md
    assert "812 (GPU 321)" in md


def test_bench_device_follows_the_train_keys():
    from harness.errors import HarnessError
    from harness.experiment import load_config
    from harness.paths import PROJECT_ROOT

    path = PROJECT_ROOT / "experiments" / "bahdanau2015_multi30k.yaml"
    device, amp = bench_device(load_config(path, ["train.accelerator=cpu", "train.precision=bf16-mixed"]))
    assert (device.type, amp) == ("cpu", torch.bfloat16)
    assert bench_device(load_config(path, ["train.accelerator=cpu"])) == (torch.device("cpu"), None)
    with pytest.raises(HarnessError, match="16-mixed"):
        bench_device(load_config(path, ["train.accelerator=cpu", "train.precision=16-mixed"]))
    if not torch.cuda.is_available():
        with pytest.raises(HarnessError, match="no CUDA device"):
            bench_device(load_config(path, ["train.accelerator=gpu"]))


def test_write_bench(tmp_path):
    doc = _fake_doc()
    write_bench(doc, tmp_path / "bench")
    assert json.loads((tmp_path / "bench" / "bench.json").read_text()) == doc
    assert (tmp_path / "bench" / "bench.md").read_text() == render_bench_table(doc)
    assert not [p for p in (tmp_path / "bench").iterdir() if p.name.startswith(".")]  # no temp files left


def test_render_peers_table_ratios():
    def res(tps, rss, g, b, bleu):
        return {
            "train_tokens_per_sec": tps,
            "peak_rss_mb": rss,
            "params": 100,
            "train_wall_s": 10.0,
            "greedy": {"sentences_per_sec": g, "bleu": bleu},
            "beam5": {"sentences_per_sec": b, "bleu": bleu},
        }

    doc = {
        "machine": {},
        "settings": {"steps": 200, "differences": "none"},
        "reference": "",
        "results": {
            "harness": res(1000, 800, 100, 30, 20),
            "opennmt": res(2000, 1600, 200, 60, 25),
            "joeynmt": {"error": "joeynmt train failed"},
        },
    }
    md = render_peers_table(doc)
    row = next(line for line in md.splitlines() if line.startswith("| train target tok/s"))
    assert row == "| train target tok/s | 1,000 | 2,000 | – | 0.50× | – |"
    assert "| BLEU greedy | 20.00 | 25.00 | – | 0.80× | – |" in md
    assert "joeynmt: error: joeynmt train failed" in md


def test_render_peers_table_says_which_network_ran_and_compares_the_same_network():
    def res(tps, network=None):
        r = {"train_tokens_per_sec": tps, "params": 100, "greedy": {}, "beam5": {}}
        return r | ({"network": network} if network else {})

    doc = {
        "machine": {},
        "settings": {"steps": 200, "differences": "none"},
        "reference": "",
        "results": {
            "harness": res(1000, "RNNsearch"),
            "harness-onmt": res(1500, "OpenNMT-py's RNN"),
            "opennmt": res(1000),
            "joeynmt": res(500),
        },
    }
    lines = render_peers_table(doc).splitlines()
    head = next(line for line in lines if line.startswith("| metric"))
    assert head == (
        "| metric | harness | harness-onmt | opennmt | joeynmt | harness/opennmt | harness-onmt/opennmt "
        "| harness/joeynmt |"
    )
    network = next(line for line in lines if line.startswith("| network"))
    assert network.startswith("| network | RNNsearch | OpenNMT-py's RNN | its default RNN") and network.count("|") == 9
    assert "| train target tok/s | 1,000 | 1,500 | 1,000 | 500 | 1.00× | 1.50× | 2.00× |" in lines


def test_harness_onmt_is_opennmt_pys_network_to_the_parameter():
    """`harness-onmt` counted against OpenNMT-py 3.5.1's RNN at opennmt_config's sizes, written out from its modules:
    embeddings, a bidirectional nn.GRU encoder, a StackedGRU decoder cell on [E y; h̃] (input feeding),
    GlobalAttention "mlp" (linear_context without bias, linear_query with, v without, linear_out with a bias for
    mlp), and the generator. The one difference is linear_out's bias (our W_c has none)."""
    from harness.experiment import load_config

    onmt = opennmt_config(Path("d"), Path("w"), 10)
    E, H = onmt["word_vec_size"], onmt["hidden_size"]
    h = H // 2  # per direction
    Vs, Vt = 101, 97

    def gru(inp: int, hid: int) -> int:
        return 3 * hid * (inp + hid) + 2 * 3 * hid

    opennmt = (
        Vs * E + Vt * E + 2 * gru(E, h) + gru(E + H, H) + (H * H) + (H * H + H) + H + (2 * H * H + H) + (H * Vt + Vt)
    )
    cfg = load_config(HARNESS_PRESET, harness_overrides(10, "harness-onmt"))
    ours = count_parameters(build_model(cfg.model, Vs, Vt))
    assert ours == opennmt - H and abs(ours - opennmt) / opennmt < 0.01
    m = cfg.model
    assert (m.arch, m.rnn_cell, m.enc_bidirectional, m.score, m.input_feeding) == (
        "luong",
        "gru",
        True,
        "additive",
        True,
    )


def test_harness_joey_is_joeynmts_network_to_the_parameter():
    """`harness-joey` counted against JoeyNMT 2.3.0's recurrent model at joeynmt_config's sizes, written out from
    its modules (joeynmt/encoders.py, decoders.py, attention.py): embeddings, a bidirectional GRU encoder, a GRU
    decoder on [E y; att vector] (input feeding), BahdanauAttention (key, query and energy layers without bias),
    att_vector_layer with a bias, the bridge tanh(W h̄ + b), and an output layer without bias. The one difference is
    that bias: the harness's generator has one."""
    from harness.experiment import load_config

    joey = joeynmt_config(Path("d"), Path("w"), 10)["model"]
    E, H = joey["decoder"]["embeddings"]["embedding_dim"], joey["decoder"]["hidden_size"]
    h = joey["encoder"]["hidden_size"]  # per direction
    assert joey["decoder"]["init_hidden"] == "bridge" and joey["decoder"]["input_feeding"] and 2 * h == H
    Vs, Vt = 101, 97

    def gru(inp: int, hid: int) -> int:
        return 3 * hid * (inp + hid) + 2 * 3 * hid

    attention = (2 * h * H) + (H * H) + H  # key_layer, query_layer, energy_layer
    joeynmt = Vs * E + Vt * E + 2 * gru(E, h) + gru(E + H, H) + attention + (H + 2 * h) * H + H + (2 * h * H + H)
    joeynmt += H * Vt  # output_layer
    cfg = load_config(HARNESS_PRESET, harness_overrides(10, "harness-joey"))
    ours = count_parameters(build_model(cfg.model, Vs, Vt))
    assert ours == joeynmt + Vt
    assert (
        cfg.model.bridge == "tanh"
        and load_config(HARNESS_PRESET, harness_overrides(10, "harness-onmt")).model.bridge == "auto"
    )


# ------------------------------------------------------------------------------------- peers: logs, configs
def test_parse_toolkit_logs():
    onmt = [
        "[2026-11-26 10:50:01,000 INFO] * number of parameters: 12345678",
        "[2026-11-26 10:50:10,000 INFO] Step 50/  200; acc: 10.1; ppl: 400.2; xent: 6.0; lr: 0.00100; "
        "sents:    3200; bsz:   13/  14/ 1; 1623/1834 tok/s;     25 sec;",
        "[...] Step 100/  200; acc: 20.1; ppl: 100.2; xent: 4.6; lr: 0.00100; sents: 3200; bsz: 13/ 14/ 1; "
        "1700/2000 tok/s;     50 sec;",
        "[...] Total translation time (s): 3.4",
    ]
    assert window_rates(onmt, ONMT_STEP, 3) == [1834.0, 2000.0]
    assert after_warmup(window_rates(onmt, ONMT_STEP, 3)) == 2000.0  # the first window is warm-up
    assert last_float(onmt, ONMT_TIME) == 3.4 and last_float(onmt, ONMT_PARAMS) == 12345678
    joey = [
        "2026-11-26 10:50:00,000 - INFO - joeynmt.training - Total params: 9876543",
        "... Epoch   1, Step:       50, Batch Loss:   123.4, Batch Acc: 0.12, Tokens per Sec:     1160, Lr: 0.001000",
        "... Generation took 0.0123[sec].",
        "... Generation took 14.2500[sec].",
    ]
    assert window_rates(joey, JOEY_STEP, 2) == [1160.0]
    assert after_warmup([1160.0]) == 1160.0 and after_warmup([]) is None
    assert last_float(joey, JOEY_TIME) == 14.25 and last_float(joey, JOEY_PARAMS) == 9876543


def test_peer_configs_share_the_configuration(tmp_path):
    onmt = opennmt_config(tmp_path / "data", tmp_path / "work", 200)
    joey = joeynmt_config(tmp_path / "data", tmp_path / "work", 200, beam=5)
    assert onmt["train_steps"] == joey["training"]["updates"] == 200
    assert onmt["batch_size"] == joey["training"]["batch_size"] == 64
    assert onmt["word_vec_size"] == joey["model"]["encoder"]["embeddings"]["embedding_dim"] == 256
    assert onmt["hidden_size"] // 2 == joey["model"]["encoder"]["hidden_size"] == 256  # per direction
    assert onmt["hidden_size"] == joey["model"]["decoder"]["hidden_size"] == 512
    assert onmt["global_attention"] == "mlp" and joey["model"]["decoder"]["attention"] == "bahdanau"
    assert onmt["max_grad_norm"] == joey["training"]["clip_grad_norm"] == 5.0
    assert onmt["learning_rate"] == joey["training"]["learning_rate"] == 0.001
    # constant rate: plateau breaks on torch 2.13
    assert joey["training"]["scheduling"] == "exponential" and joey["training"]["decrease_factor"] == 1.0
    assert onmt["valid_steps"] > 200 and joey["training"]["validation_freq"] > 200  # no validation
    assert joey["training"]["validation_freq"] % joey["training"]["logging_freq"] == 0  # JoeyNMT requires it
    assert joey["testing"]["beam_size"] == 5


def test_harness_onmt_lowmem_is_harness_onmt_with_the_memory_flags_only():
    """The bench-peers row that measures the memory-for-speed flags runs OpenNMT-py's network unchanged otherwise."""
    import dataclasses

    from harness.bench import TOOLKIT_NAMES
    from harness.bench.peers.table import OURS
    from harness.experiment import load_config

    plain = load_config(HARNESS_PRESET, harness_overrides(10, "harness-onmt"))
    lowmem = load_config(HARNESS_PRESET, harness_overrides(10, "harness-onmt-lowmem"))
    assert (lowmem.model.recompute_attention, lowmem.train.loss_chunk_rows) == (True, 256)
    assert (plain.model.recompute_attention, plain.train.loss_chunk_rows) == (False, 0)
    unflagged = dataclasses.replace(
        lowmem,
        model=dataclasses.replace(lowmem.model, recompute_attention=False),
        train=dataclasses.replace(lowmem.train, loss_chunk_rows=0),
    )
    assert unflagged == plain
    assert "harness-onmt-lowmem" in OURS and "harness-onmt-lowmem" in TOOLKIT_NAMES

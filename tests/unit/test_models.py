"""Architectures: every arch × applicable score builds, trains and decodes; parameter counts match the papers'
structure written out by hand; padding never changes an encoding; the teacher-forced forward (fused, or the
loop that embeds all steps at once) equals decoding step by step."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.config import ModelConfig
from harness.data.batch import collate
from harness.decode.search import beam_search, greedy
from harness.errors import HarnessError
from harness.models.encoders import RNNEncoder, reverse_padded
from harness.models.registry import check_model_config, key_size
from harness.models.scores import SCORES, score_names
from harness.models.seq2seq import ARCHS, build_model, count_parameters

V_SRC, V_TGT, E, H = 11, 13, 6, 8
LAYERS = {
    "seq2seq": (2, 2),
    "seq2seq_attn": (1, 1),
    "bahdanau": (1, 1),
    "cgru": (1, 1),
    "luong": (2, 2),
    "gnmt": (3, 3),
}


def combos() -> list[tuple[str, str, str]]:
    """(arch, score, attention_type) for every architecture and every score function that applies to it."""
    out = []
    for arch, spec in ARCHS.items():
        for score in spec.scores or score_names():
            for attention_type in spec.attention_types if score != "none" else ("global",):
                out.append((arch, score, attention_type))
    return out


COMBOS = combos()
COMBO_IDS = ["-".join(c) for c in COMBOS]


def make_cfg(arch: str, score: str, attention_type: str = "global", **kw) -> ModelConfig:
    enc_layers, dec_layers = LAYERS[arch]
    values = dict(
        arch=arch,
        score=score,
        attention_type=attention_type,
        emb_size=E,
        hidden_size=H,
        enc_layers=enc_layers,
        dec_layers=dec_layers,
        window=2,
        max_positions=16,
        reverse_source=arch == "seq2seq",
    )
    values.update(kw)
    cfg = ModelConfig(**values)
    check_model_config(cfg)
    return cfg


def make_model(cfg: ModelConfig, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(cfg, V_SRC, V_TGT)


def tiny_batch():
    # ids 4.. are words (0-3: <pad> <unk> <s> </s>); mixed lengths so that padding is exercised
    return collate(
        [
            (0, [4, 5, 6, 7, 8], [5, 6, 7, 8, 9, 10]),
            (1, [9, 10], [11, 12]),
            (2, [6, 4, 5], [7, 4, 5]),
            (3, [10], [12]),
        ]
    )


def test_every_architecture_has_combos():
    assert set(ARCHS) == {"seq2seq", "seq2seq_attn", "bahdanau", "cgru", "luong", "gnmt"}
    assert ("seq2seq", "none", "global") in COMBOS
    assert ("luong", "location", "local-p") in COMBOS
    assert ("cgru", "dot", "global") in COMBOS
    assert len(COMBOS) == 1 + 7 + 7 + 7 + (7 + 6 * 2) + 7


# ------------------------------------------------------------------------------------------- config checks


def test_check_model_config_rejects_what_does_not_apply():
    with pytest.raises(HarnessError, match="did you mean 'bahdanau'"):
        check_model_config(ModelConfig(arch="bahdanu"))
    with pytest.raises(HarnessError, match="did you mean 'dot'"):
        check_model_config(ModelConfig(arch="luong", score="dott"))
    with pytest.raises(HarnessError, match="does not apply"):
        check_model_config(ModelConfig(arch="seq2seq", score="general"))
    with pytest.raises(HarnessError, match="attention_type 'local-m' does not apply"):
        check_model_config(ModelConfig(arch="bahdanau", attention_type="local-m"))
    with pytest.raises(HarnessError, match="model.rnn_cell applies to model.arch 'luong' only"):
        check_model_config(ModelConfig(arch="bahdanau", rnn_cell="lstm"))
    with pytest.raises(HarnessError, match="model.enc_bidirectional applies to model.arch 'luong' only"):
        check_model_config(ModelConfig(arch="gnmt", enc_bidirectional=True))
    with pytest.raises(HarnessError, match="model.bridge applies to model.arch 'luong' only"):
        check_model_config(ModelConfig(arch="cgru", bridge="tanh"))
    # a bidirectional luong encoder gives hidden_size / 2 per direction: dot products still apply
    check_model_config(ModelConfig(arch="luong", score="dot", enc_bidirectional=True, hidden_size=8))
    # GNMT with one encoder layer: the bidirectional layer gives 2H-sized keys, so dot products do not apply
    with pytest.raises(HarnessError, match="same size"):
        check_model_config(ModelConfig(arch="gnmt", score="dot", hidden_size=8, enc_layers=1))
    check_model_config(ModelConfig(arch="gnmt", score="dot", hidden_size=8, enc_layers=1, enc_hidden_size=4))
    check_model_config(ModelConfig(arch="luong", score="concat"))


@pytest.mark.parametrize("arch,score,attention_type", COMBOS, ids=COMBO_IDS)
def test_key_size_matches_the_built_encoder(arch, score, attention_type):
    cfg = make_cfg(arch, score, attention_type)
    model = make_model(cfg)
    assert key_size(cfg) == model.encoder.output_size
    assert model.has_attention == (score != "none")


# ------------------------------------------------------------------------------------- build, train, decode


@pytest.mark.parametrize("arch,score,attention_type", COMBOS, ids=COMBO_IDS)
def test_build_train_and_decode(arch, score, attention_type):
    cfg = make_cfg(arch, score, attention_type)
    model = make_model(cfg)
    batch = tiny_batch()
    B, T = batch.tgt_out.shape
    logits, weights = model(batch)
    assert logits.shape == (B, T, V_TGT)
    if score == "none":
        assert weights is None
    else:
        assert weights.shape == (B, T, batch.src.size(1))
        assert bool((weights[~batch.src_mask.unsqueeze(1).expand_as(weights)] == 0).all())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(3):
        logits, _ = model(batch)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V_TGT), batch.tgt_out.reshape(-1), ignore_index=0)
        optimizer.zero_grad()
        loss.backward()
        # every parameter takes part in the loss
        unused = [n for n, p in model.named_parameters() if p.grad is None]
        assert not unused, unused
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    model.eval()
    limits = dict(max_len_ratio=1.0, max_len_add=2)  # untrained: most hypotheses run to the limit
    for hyps in (greedy(model, batch, **limits), [h[0] for h in beam_search(model, batch, beam=3, **limits)]):
        assert len(hyps) == B
        for b, hyp in enumerate(hyps):
            assert all(0 <= tok < V_TGT and tok != 3 for tok in hyp.tokens)
            if score == "none":
                assert hyp.attention is None
            else:
                assert hyp.attention.shape == (len(hyp.tokens) + 1, int(batch.src_lengths[b]))


# ------------------------------------------------------------------------------------------ parameter counts


def rnn(gates: int, inp: int, hidden: int) -> int:
    """One RNN layer (one direction): gates·H weights for the input and for the state, two bias vectors."""
    return gates * hidden * (inp + hidden) + 2 * gates * hidden


def linear(inp: int, out: int, bias: bool = True) -> int:
    return inp * out + (out if bias else 0)


def attention_params(cfg: ModelConfig, Hk: int) -> int:
    Hq, P = cfg.hidden_size, cfg.max_positions
    n = {
        "none": 0,
        "dot": 0,
        "scaled_dot": 0,
        "general": Hk * Hq,  # W_a
        "additive": Hq * Hq + (Hk * Hq + Hq) + Hq,  # W, U (+ bias), v; attention size = H
        "location": Hq * P + P,  # W_a (+ bias) over P positions
        "cosine": 0 if cfg.cosine_sharpening else 1,  # learned key strength β
    }[cfg.score]
    if cfg.attention_type == "local-p":
        n += Hq * Hq + Hq  # W_p, v_p
    return n


def expected_parameters(cfg: ModelConfig) -> int:
    Le, Ld, Hd = cfg.enc_layers, cfg.dec_layers, cfg.hidden_size
    emb = V_SRC * E + V_TGT * E
    if cfg.arch == "seq2seq":  # LSTM encoder (uni), LSTM decoder, bridges h and c if the sizes differ
        He = cfg.enc_hidden_size or Hd
        enc = rnn(4, E, He) + (Le - 1) * rnn(4, He, He)
        dec = rnn(4, E, Hd) + (Ld - 1) * rnn(4, Hd, Hd)
        bridges = 0 if He == Hd else 2 * Ld * linear(He, Hd)
        return emb + enc + dec + bridges + linear(Hd, V_TGT)
    if cfg.arch == "seq2seq_attn":  # GRU encoder, GRU decoder, W_c [c; h] -> h̃, generator
        He = cfg.enc_hidden_size or Hd
        enc = rnn(3, E, He) + (Le - 1) * rnn(3, He, He)
        dec = rnn(3, E, Hd) + (Ld - 1) * rnn(3, Hd, Hd)
        bridges = 0 if He == Hd else Ld * linear(He, Hd)
        W_c = linear(He + Hd, Hd, bias=False)
        return emb + enc + dec + bridges + attention_params(cfg, He) + W_c + linear(Hd, V_TGT)
    if cfg.arch == "bahdanau":  # BiGRU encoder; GRU cell on [E y; c]; s_0 = tanh(W_s h̄_1^←); deep output, maxout
        He = cfg.enc_hidden_size or Hd // 2
        Hk = 2 * He
        M = cfg.maxout_size or Hd // 2
        enc = 2 * rnn(3, E, He) + (Le - 1) * 2 * rnn(3, Hk, He)
        cell = rnn(3, E + Hk, Hd)
        W_s = linear(He, Hd)
        deep_output = linear(Hd, 2 * M) + linear(E, 2 * M, bias=False) + linear(Hk, 2 * M, bias=False)
        return emb + enc + cell + W_s + attention_params(cfg, Hk) + deep_output + linear(M, V_TGT)
    if cfg.arch == "cgru":  # BiGRU encoder; GRU_1 on E y, GRU_2 on c; s_0 = tanh(W_init mean h); deep output
        He = cfg.enc_hidden_size or Hd // 2
        Hk = 2 * He
        M = cfg.maxout_size or Hd // 2
        enc = 2 * rnn(3, E, He) + (Le - 1) * 2 * rnn(3, Hk, He)
        cells = rnn(3, E, Hd) + rnn(3, Hk, Hd)
        W_init = linear(Hk, Hd)
        deep_output = linear(Hd, 2 * M) + linear(E, 2 * M, bias=False) + linear(Hk, 2 * M, bias=False)
        return emb + enc + cells + W_init + attention_params(cfg, Hk) + deep_output + linear(M, V_TGT)
    if cfg.arch == "luong":  # LSTM (or GRU) encoder, uni (or bi); decoder with input feeding [E y; h̃]; W_c
        g, dirs = (3 if cfg.rnn_cell == "gru" else 4), (2 if cfg.enc_bidirectional else 1)
        He = cfg.enc_hidden_size or (Hd // dirs)
        Hk = dirs * He
        enc = dirs * rnn(g, E, He) + (Le - 1) * dirs * rnn(g, Hk, He)
        dec = rnn(g, E + (Hd if cfg.input_feeding else 0), Hd) + (Ld - 1) * rnn(g, Hd, Hd)
        bridges = 0 if Hk == Hd else (2 if g == 4 else 1) * Ld * linear(Hk, Hd)
        W_c = linear(Hk + Hd, Hd, bias=False)
        return emb + enc + dec + bridges + attention_params(cfg, Hk) + W_c + linear(Hd, V_TGT)
    if cfg.arch == "gnmt":  # bi LSTM bottom layer, uni layers above; every decoder layer reads [x; context]
        He = cfg.enc_hidden_size or Hd
        Hk = 2 * He if Le == 1 else He
        enc = 2 * rnn(4, E, He) + (rnn(4, 2 * He, He) if Le > 1 else 0) + max(0, Le - 2) * rnn(4, He, He)
        dec = rnn(4, E + Hk, Hd) + (Ld - 1) * rnn(4, Hd + Hk, Hd)
        return emb + enc + dec + attention_params(cfg, Hk) + linear(Hd, V_TGT)
    raise AssertionError(cfg.arch)


@pytest.mark.parametrize("arch,score,attention_type", COMBOS, ids=COMBO_IDS)
def test_parameter_count_matches_the_formula(arch, score, attention_type):
    cfg = make_cfg(arch, score, attention_type)
    assert count_parameters(build_model(cfg, V_SRC, V_TGT)) == expected_parameters(cfg)


@pytest.mark.parametrize(
    "arch,score,extra",
    [
        ("seq2seq", "none", dict(enc_hidden_size=5, dec_layers=3)),
        ("seq2seq_attn", "general", dict(enc_hidden_size=5)),
        ("seq2seq_attn", "none", dict(enc_layers=2, dec_layers=2)),
        ("bahdanau", "additive", dict(enc_hidden_size=5, maxout_size=3)),
        ("bahdanau", "location", dict(enc_layers=2, max_positions=7)),
        ("cgru", "dot", dict(enc_hidden_size=4, maxout_size=3)),
        ("luong", "additive", dict(enc_hidden_size=5, input_feeding=False)),
        ("luong", "cosine", dict(cosine_sharpening=2.0, attention_type="local-p")),
        ("luong", "additive", dict(rnn_cell="gru", enc_bidirectional=True)),  # OpenNMT-py's default RNN
        ("luong", "general", dict(enc_bidirectional=True, enc_hidden_size=3)),  # bi LSTM, bridged 6 -> 8
        ("luong", "dot", dict(rnn_cell="gru", enc_layers=1, dec_layers=1)),
        ("gnmt", "general", dict(enc_layers=1, dec_layers=2, enc_hidden_size=5)),
        ("gnmt", "dot", dict(enc_layers=2, dec_layers=1)),
    ],
)
def test_parameter_count_other_sizes(arch, score, extra):
    cfg = make_cfg(arch, score, **extra)
    model = build_model(cfg, V_SRC, V_TGT)
    assert count_parameters(model) == expected_parameters(cfg)
    assert key_size(cfg) == model.encoder.output_size
    model(tiny_batch())  # and it runs


def test_parameter_count_by_hand_bahdanau():
    """One count written out in full numbers: RNNsearch with E = 6, H = 8 (encoder 4 per direction), M = 4."""
    cfg = make_cfg("bahdanau", "additive")
    total = (
        11 * 6
        + 13 * 6  # embeddings
        + 2 * (3 * 4 * (6 + 4) + 2 * 3 * 4)  # BiGRU: 2 × (120 + 24) = 288
        + 3 * 8 * (6 + 8 + 8)
        + 2 * 3 * 8  # GRU cell on [E y; c] (c: 8): 528 + 48
        + 4 * 8
        + 8  # W_s from h̄_1^← (4) to s_0 (8)
        + 8 * 8
        + (8 * 8 + 8)
        + 8  # additive attention: W, U + bias, v
        + (8 * 8 + 8)
        + 6 * 8
        + 8 * 8  # deep output U_o (+bias), V_o, C_o to 2M = 8
        + 4 * 13
        + 13  # W_o: maxout (4) -> vocabulary
    )
    assert total == 1441
    assert count_parameters(build_model(cfg, V_SRC, V_TGT)) == total


# ---------------------------------------------------------------------------------------------------- masking

ENCODERS = {
    "gru-uni": dict(cell="gru", bidirectional="none"),
    "gru-bi": dict(cell="gru", bidirectional="all"),
    "lstm-2-layers": dict(cell="lstm", bidirectional="none", layers=2),
    "lstm-bottom-bi-residual": dict(cell="lstm", bidirectional="bottom", layers=3, residual_from=3),
    "lstm-reversed": dict(cell="lstm", bidirectional="none", layers=2, reverse_source=True),
    "gru-bi-reversed": dict(cell="gru", bidirectional="all", reverse_source=True),
}


@pytest.mark.parametrize("name", list(ENCODERS))
def test_padding_does_not_change_encoder_outputs(name):
    torch.manual_seed(0)
    encoder = RNNEncoder(V_SRC, E, 5, **ENCODERS[name]).eval()
    sentences = [[4, 5, 6, 7, 8, 9], [9, 10], [6, 4, 5], [10]]
    batch = collate([(i, s, [4]) for i, s in enumerate(sentences)])
    with torch.no_grad():
        out = encoder(batch.src, batch.src_lengths)
        for b, sentence in enumerate(sentences):
            alone = collate([(0, sentence, [4])])
            one = encoder(alone.src, alone.src_lengths)
            n = len(sentence)
            torch.testing.assert_close(out.states[b, :n], one.states[0], atol=1e-6, rtol=1e-5)
            assert bool((out.states[b, n:] == 0).all())
            for layer in range(len(out.final_h)):
                torch.testing.assert_close(out.final_h[layer][b], one.final_h[layer][0], atol=1e-6, rtol=1e-5)
                if out.final_c is not None:
                    torch.testing.assert_close(out.final_c[layer][b], one.final_c[layer][0], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(out.summary[b], one.summary[0], atol=1e-6, rtol=1e-5)
    assert out.src_mask.tolist() == batch.src_mask.tolist()


def test_reverse_padded_reverses_within_the_real_length():
    x = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0], [6, 7, 8, 9, 10], [11, 0, 0, 0, 0]])
    lengths = torch.tensor([3, 2, 5, 1])
    assert reverse_padded(x, lengths).tolist() == [
        [3, 2, 1, 0, 0],
        [5, 4, 0, 0, 0],
        [10, 9, 8, 7, 6],
        [11, 0, 0, 0, 0],
    ]
    features = torch.arange(20.0).view(1, 5, 4)
    back = reverse_padded(reverse_padded(features, torch.tensor([4])), torch.tensor([4]))
    assert torch.equal(back, features)
    assert torch.equal(reverse_padded(features, torch.tensor([4]))[0, 4], features[0, 4])  # padding stays


def test_reverse_source_encodes_the_reversed_sentence_in_source_order():
    """Sutskever §3.3: the encoder reads x_n … x_1; state s is still the state at source word s."""
    torch.manual_seed(0)
    reversed_encoder = RNNEncoder(V_SRC, E, 5, layers=2, cell="lstm", reverse_source=True).eval()
    plain = RNNEncoder(V_SRC, E, 5, layers=2, cell="lstm").eval()
    plain.load_state_dict(reversed_encoder.state_dict())
    sentences = [[4, 5, 6, 7], [9, 10], [8]]
    batch = collate([(i, s, [4]) for i, s in enumerate(sentences)])
    flipped = collate([(i, s[::-1], [4]) for i, s in enumerate(sentences)])
    with torch.no_grad():
        out = reversed_encoder(batch.src, batch.src_lengths)
        ref = plain(flipped.src, flipped.src_lengths)
    torch.testing.assert_close(out.states, reverse_padded(ref.states, batch.src_lengths))
    torch.testing.assert_close(out.summary, ref.summary)  # the final state has read x_1 last
    assert bool((out.states[1, 2:] == 0).all())


# ------------------------------------------------------------------------ fused teacher forcing == stepping

FUSED = [
    ("seq2seq", "none", "global", {}),
    ("seq2seq_attn", "general", "global", {}),
    ("seq2seq_attn", "location", "global", {}),
    ("seq2seq_attn", "none", "global", {}),
    ("luong", "additive", "global", dict(input_feeding=False)),
    ("luong", "dot", "local-m", dict(input_feeding=False)),
    ("luong", "general", "local-p", dict(input_feeding=False)),
    ("luong", "general", "global", dict(input_feeding=False, rnn_cell="gru", enc_bidirectional=True)),
    ("bahdanau", "additive", "global", {}),
    ("bahdanau", "location", "global", {}),
    ("bahdanau", "none", "global", {}),
    ("cgru", "additive", "global", {}),
    ("cgru", "general", "global", {}),
    ("cgru", "none", "global", {}),
]


# no fused path: the teacher-forced loop embeds all steps at once and hands each step its embedding
STEPPED = [
    ("luong", "general", "global", dict(input_feeding=True)),
    ("luong", "dot", "local-p", dict(input_feeding=True)),
    ("luong", "additive", "global", dict(input_feeding=True, rnn_cell="gru", enc_bidirectional=True)),
    ("gnmt", "additive", "global", {}),
    ("gnmt", "none", "global", {}),
]


@pytest.mark.parametrize(
    "arch,score,attention_type,extra", FUSED + STEPPED, ids=["-".join(f[:3]) for f in FUSED + STEPPED]
)
def test_fused_teacher_forcing_equals_step_by_step(arch, score, attention_type, extra):
    model = make_model(make_cfg(arch, score, attention_type, **extra)).eval()
    batch = tiny_batch()
    with torch.no_grad():
        fused = model.decoder.forward(batch.tgt_in, *model.start(batch.src, batch.src_lengths))
        assert (fused is not None) == ((arch, score, attention_type, extra) in FUSED)
        logits, weights = model(batch)
        memory, state = model.start(batch.src, batch.src_lengths)
        step_logp, step_w = [], []
        for t in range(batch.tgt_in.size(1)):
            logp, state, w = model.step(batch.tgt_in[:, t], state, memory, t)
            step_logp.append(logp)
            step_w.append(w)
    torch.testing.assert_close(logits.log_softmax(-1), torch.stack(step_logp, 1), atol=1e-5, rtol=1e-5)
    if weights is None:
        assert step_w[0] is None
    else:
        torch.testing.assert_close(weights, torch.stack(step_w, 1), atol=1e-6, rtol=1e-5)


def test_scores_registry_is_complete():
    assert set(SCORES) == {"dot", "scaled_dot", "general", "additive", "location", "cosine"}


@pytest.mark.parametrize("arch, score", [("luong", "general"), ("gnmt", "additive"), ("seq2seq", "none")])
def test_init_uniform_bounds_every_parameter_and_keeps_padding_rows_zero(arch, score):
    from harness.data.tokenize import PAD_ID

    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, score=score, init_uniform=0.05)
    model = build_model(cfg, 20, 21)
    default = build_model(ModelConfig(arch=arch, score=cfg.score), 20, 21)
    assert all(p.abs().max() <= 0.05 for p in model.parameters())
    assert any(p.abs().max() > 0.05 for p in default.parameters())  # PyTorch's defaults are wider somewhere
    embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    assert embeddings and all(float(m.weight[PAD_ID].abs().sum()) == 0.0 for m in embeddings)


def test_bridge_tanh_starts_the_decoder_from_a_layer_at_every_size():
    """model.bridge=tanh (JoeyNMT's init_hidden "bridge"): s_0 = tanh(W h̄_final + b) even where the sizes match;
    "auto" passes matching sizes through unchanged (OpenNMT-py's, and the papers' where they match)."""
    from harness.models.encoders import EncoderOutput

    cfg = ModelConfig(arch="luong", rnn_cell="gru", enc_bidirectional=True, score="additive", emb_size=8,
                      hidden_size=12, enc_layers=1, dec_layers=1)  # fmt: skip
    torch.manual_seed(0)
    plain, bridged = build_model(cfg, 11, 13), build_model(dataclasses.replace(cfg, bridge="tanh"), 11, 13)
    final = torch.randn(2, 12)
    enc = EncoderOutput(torch.randn(2, 3, 12), torch.ones(2, 3, dtype=torch.bool), [final], None, final)
    assert torch.equal(plain.decoder.init_state(enc)[0][:, 0], final)
    proj = bridged.decoder.bridge_h.proj[0]
    assert torch.allclose(bridged.decoder.init_state(enc)[0][:, 0], torch.tanh(proj(final)))
    assert count_parameters(bridged) - count_parameters(plain) == 12 * 12 + 12


ADDITIVE = [c for c in COMBOS if c[1] == "additive"]


@pytest.mark.parametrize("arch,score,attention_type", ADDITIVE, ids=["-".join(c) for c in ADDITIVE])
def test_recompute_attention_trains_the_same_model(arch, score, attention_type):
    """model.recompute_attention (memory for speed) changes what autograd keeps, not what is computed: the same
    logits and attention, and the same loss and gradients up to float rounding, for every architecture."""
    batch = tiny_batch()
    results = []
    for recompute in (False, True):
        model = make_model(make_cfg(arch, score, attention_type, recompute_attention=recompute))
        logits, weights = model(batch)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V_TGT), batch.tgt_out.reshape(-1), ignore_index=0)
        loss.backward()
        results.append((logits.detach(), weights.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (logits_a, weights_a, grads_a), (logits_b, weights_b, grads_b) = results
    torch.testing.assert_close(logits_a, logits_b, rtol=0, atol=0)
    torch.testing.assert_close(weights_a, weights_b, rtol=0, atol=0)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], msg=name)

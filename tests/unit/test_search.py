"""Decoding (harness/decode/search.py): a sentence decodes the same alone and inside a padded batch, and leaves the
batch when it ends; beam K=1 is greedy; beam attention is the hypothesis' own (= teacher-forced on it); GNMT
penalties; n-best; length limits; and a tiny RNNsearch overfits 8 synthetic pairs to BLEU > 90."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from harness.config import ModelConfig, SyntheticConfig
from harness.data.batch import collate
from harness.data.synthetic import generate
from harness.data.tokenize import EOS_ID, PAD_ID, Vocab
from harness.decode.search import (
    beam_search,
    coverage_penalty,
    forced_attention,
    greedy,
    length_penalty,
    max_lengths,
)
from harness.metrics.bleu import corpus_scores
from harness.models.registry import check_model_config
from harness.models.seq2seq import build_model

V_SRC, V_TGT = 12, 14


# every architecture, with attention (every score function at least once, every attention type) and without
MODELS = [
    ("seq2seq", "none", "global"),
    ("seq2seq_attn", "general", "global"),
    ("seq2seq_attn", "none", "global"),
    ("bahdanau", "additive", "global"),
    ("bahdanau", "location", "global"),
    ("bahdanau", "none", "global"),
    ("luong", "general", "global"),
    ("luong", "dot", "local-m"),
    ("luong", "scaled_dot", "local-p"),
    ("luong", "cosine", "global"),
    ("luong", "none", "global"),
    ("gnmt", "additive", "global"),
    ("gnmt", "none", "global"),
    ("cgru", "additive", "global"),
    ("cgru", "none", "global"),
]
MODEL_IDS = ["-".join(m) for m in MODELS]
LAYERS = {
    "seq2seq": (2, 2),
    "seq2seq_attn": (1, 1),
    "bahdanau": (1, 1),
    "cgru": (1, 1),
    "luong": (2, 2),
    "gnmt": (3, 3),
}

SOURCES = [[4, 5, 6, 7, 8, 9, 10], [11, 4, 6], [5], [8, 9, 10, 11, 7], [6, 6, 4, 9]]


def _training_batch():
    """A toy task (target word = source word + 3, mod 8) of mixed lengths, to give the decoders some shape."""
    g = torch.Generator().manual_seed(1)
    items = []
    for i in range(24):
        n = int(torch.randint(1, 9, (1,), generator=g))
        src = torch.randint(4, V_SRC, (n,), generator=g).tolist()
        items.append((i, src, [(w - 4 + 3) % 8 + 4 for w in src]))
    return collate(items)


@functools.cache
def _trained_state(arch: str, score: str, attention_type: str) -> dict:
    torch.manual_seed(0)
    model = build_model(_cfg(arch, score, attention_type), V_SRC, V_TGT)
    batch = _training_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(25):
        logits, _ = model(batch)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V_TGT), batch.tgt_out.reshape(-1), ignore_index=PAD_ID
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _cfg(arch: str, score: str, attention_type: str) -> ModelConfig:
    enc_layers, dec_layers = LAYERS[arch]
    cfg = ModelConfig(
        arch=arch,
        score=score,
        attention_type=attention_type,
        emb_size=8,
        hidden_size=12,
        enc_layers=enc_layers,
        dec_layers=dec_layers,
        window=2,
        max_positions=16,
        reverse_source=arch == "seq2seq",
    )
    check_model_config(cfg)
    return cfg


def make_model(arch: str, score: str, attention_type: str):
    """Fixed weights (seeded; a few training steps on a toy task so that hypotheses differ in words and
    length, which untrained models do not do: they repeat one word up to the length limit)."""
    model = build_model(_cfg(arch, score, attention_type), V_SRC, V_TGT)
    model.load_state_dict(_trained_state(arch, score, attention_type))
    return model.eval()


def batch_of(sources, targets=None):
    targets = targets or [[4]] * len(sources)
    return collate([(i, s, t) for i, (s, t) in enumerate(zip(sources, targets))])


def teacher_forced_logprob(model, source, tokens) -> float:
    """log P(y_1 … y_n </s> | x) by teacher forcing."""
    batch = batch_of([source], [tokens])
    with torch.no_grad():
        logits, _ = model(batch)
    logp = logits.float().log_softmax(-1)[0]
    return float(logp.gather(1, batch.tgt_out[0].unsqueeze(1)).sum())


def _same_attention(a, b):
    if a is None or b is None:
        assert a is None and b is None
    else:
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------- alone == batched


@pytest.mark.parametrize("arch,score,attention_type", MODELS, ids=MODEL_IDS)
def test_greedy_alone_equals_batched(arch, score, attention_type):
    model = make_model(arch, score, attention_type)
    batched = greedy(model, batch_of(SOURCES))
    for source, hyp in zip(SOURCES, batched):
        (alone,) = greedy(model, batch_of([source]))
        assert alone.tokens == hyp.tokens
        _same_attention(alone.attention, hyp.attention)
        if hyp.attention is not None:
            assert hyp.attention.shape == (len(hyp.tokens) + 1, len(source))
            if attention_type == "global":
                np.testing.assert_allclose(hyp.attention.sum(1), 1.0, atol=1e-5)
    assert len({len(h.tokens) for h in batched}) > 1  # hypotheses of several lengths were in the batch


@pytest.mark.parametrize("arch,score,attention_type", MODELS, ids=MODEL_IDS)
def test_beam_alone_equals_batched(arch, score, attention_type):
    model = make_model(arch, score, attention_type)
    batched = beam_search(model, batch_of(SOURCES), beam=3, n_best=3, alpha=0.6, beta=0.2 * model.has_attention)
    for source, nbest in zip(SOURCES, batched):
        (alone,) = beam_search(model, batch_of([source]), beam=3, n_best=3, alpha=0.6, beta=0.2 * model.has_attention)
        assert [h.tokens for h in alone] == [h.tokens for h in nbest]
        assert [h.score for h in alone] == pytest.approx([h.score for h in nbest], abs=1e-4)
        for a, b in zip(alone, nbest):
            _same_attention(a.attention, b.attention)


def _recording_rows(model) -> list[int]:
    """Make model.step_logits (what the searches call) record the batch rows it computes at each step."""
    rows, step = [], model.step_logits

    def recorded(y, state, memory, t):
        rows.append(y.size(0))
        return step(y, state, memory, t)

    model.step_logits = recorded
    return rows


@pytest.mark.parametrize("arch,score,attention_type", [MODELS[0], MODELS[3], MODELS[7]], ids=str)
def test_finished_sentences_leave_the_batch(arch, score, attention_type):
    model = make_model(arch, score, attention_type)
    rows = _recording_rows(model)
    hyps = greedy(model, batch_of(SOURCES))
    # a hypothesis of n words is computed at steps 0..n (step n emits </s>), then leaves the batch
    assert rows == [sum(len(h.tokens) >= t for h in hyps) for t in range(len(rows))]
    assert rows[-1] < rows[0] == len(SOURCES)
    rows.clear()
    beam_search(model, batch_of(SOURCES), beam=3)
    assert rows[0] == len(SOURCES)  # step 0: one row per sentence (its K beams are identical)
    rows = rows[1:]
    assert all(r % 3 == 0 for r in rows) and rows == sorted(rows, reverse=True)
    assert rows[-1] < rows[0] == 3 * len(SOURCES)


def test_beam_early_stop_finds_the_same_n_best_in_fewer_steps():
    fewer = 0
    for arch, score, attention_type in MODELS:
        model = make_model(arch, score, attention_type)
        rows = _recording_rows(model)
        full = beam_search(model, batch_of(SOURCES), beam=4, n_best=2, early_stop=False)
        full_rows, rows[:] = list(rows), []
        early = beam_search(model, batch_of(SOURCES), beam=4, n_best=2)
        for a, b in zip(full, early):
            assert [h.tokens for h in a] == [h.tokens for h in b]
            assert [h.score for h in a] == [h.score for h in b]
            for x, y in zip(a, b):
                _same_attention(x.attention, y.attention)
        assert sum(rows) <= sum(full_rows)
        fewer += sum(rows) < sum(full_rows)
    assert fewer >= len(MODELS) // 2  # the bound does stop sentences early on most models


@pytest.mark.parametrize("arch,score,attention_type", MODELS, ids=MODEL_IDS)
def test_an_empty_source_decodes_like_alone_and_without_nan(arch, score, attention_type):
    """Empty source lines are kept at test time: they decode to a finite hypothesis, batch undisturbed."""
    model = make_model(arch, score, attention_type)
    sources = [SOURCES[0], [], SOURCES[1]]
    batch = batch_of(sources, [[4, 5], [6], [7]])
    with torch.no_grad():
        logits, _ = model(batch)
    assert bool(torch.isfinite(logits).all())
    (alone,) = greedy(model, batch_of([[]]))
    assert greedy(model, batch_of(sources))[1].tokens == alone.tokens
    assert PAD_ID not in alone.tokens
    beams = beam_search(model, batch_of(sources), beam=3)
    (beam_alone,) = beam_search(model, batch_of([[]]), beam=3)
    assert beams[1][0].tokens == beam_alone[0].tokens and math.isfinite(beams[1][0].score)
    if model.has_attention:
        assert alone.attention.shape == (len(alone.tokens) + 1, 0)


# ------------------------------------------------------------------------------------------- beam vs greedy


@pytest.mark.parametrize("arch,score,attention_type", MODELS, ids=MODEL_IDS)
def test_beam_of_one_is_greedy(arch, score, attention_type):
    model = make_model(arch, score, attention_type)
    batch = batch_of(SOURCES)
    for source, g, (b,) in zip(SOURCES, greedy(model, batch), beam_search(model, batch, beam=1)):
        assert b.tokens == g.tokens
        _same_attention(b.attention, g.attention)
        assert b.score == pytest.approx(teacher_forced_logprob(model, source, g.tokens), abs=1e-4)
        assert g.score == pytest.approx(b.score, abs=1e-4)  # greedy's score is its log-probability too


# ------------------------------------------------------------------------------------------ beam attention


@pytest.mark.parametrize(
    "arch,score,attention_type",
    [m for m in MODELS if m[1] != "none"],
    ids=[i for m, i in zip(MODELS, MODEL_IDS) if m[1] != "none"],
)
def test_beam_attention_is_the_hypothesis_own_attention(arch, score, attention_type):
    model = make_model(arch, score, attention_type)
    results = beam_search(model, batch_of(SOURCES), beam=3, n_best=3)
    # teacher-force every n-best hypothesis of every sentence, all in one padded batch
    pairs = [(source, h) for source, nbest in zip(SOURCES, results) for h in nbest]
    forced = forced_attention(model, batch_of([s for s, _ in pairs], [h.tokens for _, h in pairs]))
    for (source, hyp), expected in zip(pairs, forced):
        assert hyp.attention.shape == (len(hyp.tokens) + 1, len(source))  # one row per token + the </s> step
        np.testing.assert_allclose(hyp.attention, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "arch,score,attention_type",
    [MODELS[1], MODELS[3], MODELS[7]],
    ids=[MODEL_IDS[1], MODEL_IDS[3], MODEL_IDS[7]],
)
def test_greedy_attention_equals_forced_attention(arch, score, attention_type):
    model = make_model(arch, score, attention_type)
    hyps = greedy(model, batch_of(SOURCES))
    forced = forced_attention(model, batch_of(SOURCES, [h.tokens for h in hyps]))
    for hyp, expected in zip(hyps, forced):
        np.testing.assert_allclose(hyp.attention, expected, atol=1e-5, rtol=1e-4)


def test_forced_attention_is_none_without_attention():
    model = make_model("seq2seq", "none", "global")
    assert forced_attention(model, batch_of(SOURCES[:2], [[4, 5], [6]])) == [None, None]


# ------------------------------------------------------------------------------------------------ penalties


def test_length_penalty_formula():
    # Wu et al. 2016 eq. (14): lp(Y) = (5 + |Y|)^α / (5 + 1)^α
    assert length_penalty(3, 0.6) == pytest.approx((8 / 6) ** 0.6)
    assert length_penalty(3, 0.6) == pytest.approx(1.188401, abs=1e-6)
    assert length_penalty(10, 1.0) == pytest.approx(15 / 6)
    assert length_penalty(1, 0.7) == pytest.approx(1.0)
    assert length_penalty(25, 0.0) == 1.0


def test_coverage_penalty_formula():
    # cp = β Σ_i log(min(Σ_j p_ij, 1)): column sums 1.25, 0.75, 0.7 -> log 1 + log 0.75 + log 0.7
    attention = np.array([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5], [0.5, 0.0, 0.2]])
    assert coverage_penalty(attention, 0.5) == pytest.approx(0.5 * (math.log(0.75) + math.log(0.7)))
    assert coverage_penalty(attention, 0.5) == pytest.approx(-0.322179, abs=1e-6)
    assert coverage_penalty(np.ones((2, 3)), 0.4) == 0.0  # fully covered: no penalty
    assert coverage_penalty(attention, 0.0) == 0.0
    assert coverage_penalty(None, 0.3) == 0.0


@pytest.mark.parametrize("alpha,beta", [(0.0, 0.0), (0.6, 0.0), (1.0, 0.4), (0.2, 1.0)])
def test_beam_scores_are_normalised_log_probabilities(alpha, beta):
    """s(Y, X) = log P(Y|X) / lp(Y) + cp(X; Y), |Y| counting </s>, checked against teacher forcing."""
    model = make_model("luong", "general", "global")
    for source, nbest in zip(SOURCES, beam_search(model, batch_of(SOURCES), beam=3, n_best=3, alpha=alpha, beta=beta)):
        for hyp in nbest:
            logp = teacher_forced_logprob(model, source, hyp.tokens)
            lp = ((5 + len(hyp.tokens) + 1) ** alpha) / (6**alpha)
            cov = np.minimum(hyp.attention.sum(0), 1.0)
            cp = beta * np.log(cov).sum()
            assert hyp.score == pytest.approx(logp / lp + cp, abs=1e-4)


# ------------------------------------------------------------------------------------------- n-best, limits


@pytest.mark.parametrize(
    "arch,score,attention_type",
    [MODELS[0], MODELS[3], MODELS[8], MODELS[12]],
    ids=[MODEL_IDS[0], MODEL_IDS[3], MODEL_IDS[8], MODEL_IDS[12]],
)
def test_n_best_returns_n_sorted_distinct_hypotheses(arch, score, attention_type):
    model = make_model(arch, score, attention_type)
    results = beam_search(model, batch_of(SOURCES), beam=4, n_best=3, alpha=0.6)
    for nbest in results:
        assert len(nbest) == 3
        scores = [h.score for h in nbest]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in nbest}) == 3
    best = beam_search(model, batch_of(SOURCES), beam=4, n_best=1, alpha=0.6)
    assert [r[0].tokens for r in best] == [r[0].tokens for r in results]


def test_max_lengths():
    assert max_lengths(torch.tensor([7, 3, 1, 0]), 1.5, 2).tolist() == [
        10 + 2 + 1,
        4 + 2 + 1,
        1 + 2 + 1,
        0 + 2 + 1,
    ]


@pytest.mark.parametrize(
    "arch,score,attention_type",
    [MODELS[0], MODELS[4], MODELS[7]],
    ids=[MODEL_IDS[0], MODEL_IDS[4], MODEL_IDS[7]],
)
def test_max_length_ratio_is_respected(arch, score, attention_type):
    """A model that never wants </s> stops at ⌊ratio·|x|⌋ + add tokens (then </s>), per sentence."""
    model = make_model(arch, score, attention_type)
    with torch.no_grad():
        model.generator.bias[EOS_ID] = -1e4
    batch = batch_of(SOURCES)
    expected = [math.floor(1.5 * len(s)) + 2 for s in SOURCES]
    hyps = greedy(model, batch, max_len_ratio=1.5, max_len_add=2)
    assert [len(h.tokens) for h in hyps] == expected
    assert all(EOS_ID not in h.tokens for h in hyps)
    for nbest in beam_search(model, batch, beam=3, n_best=3, max_len_ratio=1.5, max_len_add=2):
        for h in nbest:
            assert len(h.tokens) <= math.floor(1.5 * len(SOURCES[0])) + 2
    for source, nbest in zip(SOURCES, beam_search(model, batch, beam=3, max_len_ratio=1.5, max_len_add=2)):
        assert len(nbest[0].tokens) == math.floor(1.5 * len(source)) + 2
        assert math.isfinite(nbest[0].score)
    short = greedy(model, batch, max_len_ratio=0.5, max_len_add=0)
    assert [len(h.tokens) for h in short] == [len(s) // 2 for s in SOURCES]


# --------------------------------------------------------------------------------------------------- overfit


def test_bahdanau_overfits_eight_synthetic_pairs():
    pairs = generate(SyntheticConfig(vocab_size=20, min_len=6, max_len=12, train_size=8, val_size=1, test_size=1))
    train = pairs["train"]
    src_vocab = Vocab.build([p.src for p in train])
    tgt_vocab = Vocab.build([p.tgt for p in train])
    items = [(i, src_vocab.encode(p.src), tgt_vocab.encode(p.tgt)) for i, p in enumerate(train)]
    batch = collate(items)
    cfg = ModelConfig(arch="bahdanau", score="additive", emb_size=32, hidden_size=32)
    check_model_config(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, len(src_vocab), len(tgt_vocab))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(120):  # memorised after ~50 steps with every seed tried (0-3); 120 leaves a margin
        logits, _ = model(batch)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), batch.tgt_out.reshape(-1), ignore_index=PAD_ID
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    hyps = [" ".join(tgt_vocab.decode(h.tokens)) for h in greedy(model, batch)]
    refs = [" ".join(p.tgt) for p in train]
    bleu = corpus_scores(hyps, refs).bleu
    assert bleu > 90, list(zip(hyps, refs))


# ------------------------------------------------------------------------------------------- penalty modes


@pytest.mark.parametrize("arch,score,attention_type", [MODELS[3], MODELS[6], MODELS[11]], ids=str)
def test_gnmt_penalty_mode_agrees_with_fairseq_at_alpha_beta_zero(arch, score, attention_type):
    """At α = β = 0 the normalised score is the log-probability, so both modes rank alike; they stop differently
    (fairseq once K hypotheses have finished, GNMT once every slot holds a finished one), and where the 1-best
    differs it is because fairseq stopped while a more probable hypothesis was still alive: GNMT's is then
    strictly better, never worse."""
    model = make_model(arch, score, attention_type)
    same = 0
    for k in (2, 3, 5):
        fairseq = beam_search(model, batch_of(SOURCES), beam=k)
        gnmt = beam_search(model, batch_of(SOURCES), beam=k, penalty_mode="gnmt")
        for (f,), (g,) in zip(fairseq, gnmt):
            if f.tokens == g.tokens:
                same += 1
                assert f.score == pytest.approx(g.score, abs=1e-6)
                _same_attention(f.attention, g.attention)
            else:
                assert g.score > f.score
    assert same >= 3 * len(SOURCES) - 2


def test_gnmt_penalty_mode_searches_differently_with_penalties():
    """With penalties GNMT's mode ranks every step's candidates (and the finished hypotheses still in the beam)
    by the normalised score, so it reaches hypotheses fairseq's mode does not, and every one it returns is
    still scored by s(Y, X) = log P / lp + cp."""
    model = make_model("luong", "general", "global")
    sources = SOURCES + [[7, 7, 7, 7, 7, 7, 7, 7], [4, 11, 10, 9, 8, 7, 6, 5, 4]]
    differ = 0
    for alpha, beta in ((1.5, 0.0), (0.0, 1.0), (1.0, 2.0)):
        fairseq = beam_search(model, batch_of(sources), beam=3, alpha=alpha, beta=beta)
        gnmt = beam_search(model, batch_of(sources), beam=3, alpha=alpha, beta=beta, penalty_mode="gnmt")
        differ += sum(f[0].tokens != g[0].tokens for f, g in zip(fairseq, gnmt))
        for source, (g,) in zip(sources, gnmt):
            lp = ((5 + len(g.tokens) + 1) ** alpha) / (6**alpha)
            cp = beta * np.log(np.minimum(g.attention.sum(0), 1.0)).sum()
            assert g.score == pytest.approx(teacher_forced_logprob(model, source, g.tokens) / lp + cp, abs=1e-4)
    assert differ > 0


def test_gnmt_penalty_mode_alone_equals_batched():
    model = make_model("bahdanau", "additive", "global")
    batched = beam_search(model, batch_of(SOURCES), beam=3, n_best=2, alpha=0.6, beta=0.4, penalty_mode="gnmt")
    for source, nbest in zip(SOURCES, batched):
        alone = beam_search(model, batch_of([source]), beam=3, n_best=2, alpha=0.6, beta=0.4, penalty_mode="gnmt")[0]
        assert [h.tokens for h in alone] == [h.tokens for h in nbest]
        assert [h.score for h in alone] == pytest.approx([h.score for h in nbest], abs=1e-5)


def test_forced_attention_extra_step_is_the_step_fed_eos():
    """The extra forced row is the attention of one more step fed </s>: equal to stepping the decoder by hand."""
    model = make_model("bahdanau", "additive", "global")
    sources, targets = [[4, 5, 6], [7, 8]], [[5, 6, 7, 8], [9]]
    batch = batch_of(sources, targets)
    plain, extra = forced_attention(model, batch), forced_attention(model, batch, extra_steps=1)
    for b, (p, e) in enumerate(zip(plain, extra)):
        assert e.shape == (len(targets[b]) + 2, len(sources[b]))
        np.testing.assert_allclose(e[:-1], p, atol=1e-6)
        with torch.no_grad():
            one = batch_of([sources[b]], [targets[b]])
            memory, state = model.start(one.src, one.src_lengths)
            for t, y in enumerate([2, *targets[b], EOS_ID]):  # <s>, the words, </s>
                _, state, w = model.step(torch.tensor([y]), state, memory, t)
        np.testing.assert_allclose(e[-1], w[0].numpy(), atol=1e-6)


def _assert_identical_n_best(a: list[list], b: list[list], rtol: float = 0.0, atol: float = 0.0) -> None:
    """Per sentence the same n-best: tokens; scores and attention bit for bit, or to `rtol` (attention also `atol`)."""
    for x_best, y_best in zip(a, b):
        assert [h.tokens for h in x_best] == [h.tokens for h in y_best]
        np.testing.assert_allclose(
            [h.score for h in x_best], [h.score for h in y_best], rtol=rtol, atol=0, equal_nan=False
        )
        for x, y in zip(x_best, y_best):
            assert (x.attention is None) == (y.attention is None)
            if x.attention is not None:
                np.testing.assert_allclose(x.attention, y.attention, rtol=rtol, atol=atol, equal_nan=False)


@pytest.mark.parametrize("arch,score,attention_type", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("penalty_mode", ["fairseq", "gnmt"])
def test_beam_first_step_once_per_sentence_is_exact(arch, score, attention_type, penalty_mode):
    """The K identical rows of step 0 computed once per sentence: the same tokens, and the same scores and attention
    to float rounding, as computing all K (with penalties, so that coverage takes step 0's attention too). Bit for
    bit on the Intel Xeon machines this was written on; on an AMD EPYC, MKL multiplies a matrix of B rows and one of
    K·B rows with kernels that round differently (scores 1e-7 apart), so the last bits are not a property of ours."""
    model = make_model(arch, score, attention_type)
    rows = _recording_rows(model)
    kw = dict(beam=4, n_best=4, alpha=0.6, beta=0.2 * model.has_attention, penalty_mode=penalty_mode)
    once = beam_search(model, batch_of(SOURCES), **kw)
    assert rows[0] == len(SOURCES) and rows[1] == 4 * len(SOURCES)
    every = beam_search(model, batch_of(SOURCES), **kw, first_step_once=False)
    _assert_identical_n_best(once, every, rtol=1e-6, atol=1e-7)


def _decode_both(model, tables: bool):
    model.decoder.use_tables = tables
    try:
        return greedy(model, batch_of(SOURCES)), beam_search(model, batch_of(SOURCES), beam=4, n_best=4, alpha=0.6)
    finally:
        model.decoder.use_tables = True


def _assert_same_hypotheses(a: list, b: list) -> None:
    """Same tokens; scores and attention equal to float rounding (a table row and the product it replaces are
    the same sums, added in another order)."""
    assert [h.tokens for h in a] == [h.tokens for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5, atol=1e-5)
    for x, y in zip(a, b):
        assert (x.attention is None) == (y.attention is None)
        if x.attention is not None:
            np.testing.assert_allclose(x.attention, y.attention, atol=1e-5)


ONMT = ModelConfig(  # OpenNMT-py's RNN as bench-peers' harness-onmt runs it: bi-GRU encoder, GRU input feeding
    arch="luong", rnn_cell="gru", enc_bidirectional=True, score="additive", emb_size=8, hidden_size=12, enc_layers=1,
    dec_layers=1,
)  # fmt: skip


@pytest.mark.parametrize("arch,score,attention_type", [*MODELS, ("onmt", "additive", "global")], ids=str)
def test_embedding_tables_decode_the_same_hypotheses(arch, score, attention_type):
    """Decoding looks the embedding's share of each step's matmuls up in per-word tables (decoder.tables()):
    the same hypotheses (tokens; scores and attention to float rounding) as multiplying at every step, greedy and
    beam; the tables are rebuilt when the weights change, and never used while training."""
    if arch == "onmt":
        torch.manual_seed(0)
        model = build_model(ONMT, V_SRC, V_TGT).eval()
    else:
        model = make_model(arch, score, attention_type)
    looked_up, multiplied = _decode_both(model, True), _decode_both(model, False)
    with torch.no_grad():
        assert model.decoder.tables()  # every decoder has tables
    for a, b in zip(looked_up[0], multiplied[0]):
        _assert_same_hypotheses([a], [b])
    for a, b in zip(looked_up[1], multiplied[1]):
        _assert_same_hypotheses(a, b)
    with torch.no_grad():  # new weights (as after an optimizer step, or another checkpoint): the tables follow
        for p in model.parameters():
            p.mul_(1.5)
    after, fresh = _decode_both(model, True), _decode_both(model, False)
    for a, b in zip(after[1], fresh[1]):
        _assert_same_hypotheses(a, b)
    model.train()
    assert model.decoder.tables() is None  # training multiplies (the embedding's gradient flows through it)
    # fused Adam changes the weights without bumping their version counters: the switch to eval rebuilds the tables
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05, fused=True)
    logits, _ = model(batch_of(SOURCES, [[5, 6]] * len(SOURCES)))
    logits.logsumexp(-1).sum().backward()
    versions = [p._version for p in model.parameters()]
    optimizer.step()
    assert versions == [p._version for p in model.parameters()]  # (why the version counters are not enough)
    model.eval()
    stepped, fresh = _decode_both(model, True), _decode_both(model, False)
    for a, b in zip(stepped[1], fresh[1]):
        _assert_same_hypotheses(a, b)
    with torch.enable_grad():
        assert model.decoder.tables() is None


@pytest.mark.parametrize("arch,score,attention_type", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("penalty_mode", ["fairseq", "gnmt"])
def test_beam_ranks_only_each_beams_best_words_exactly(arch, score, attention_type, penalty_mode):
    """A step ranks its beams' 2K best words each, not all K·V candidates: the same tokens, scores and attention,
    bit for bit (a beam adds one number to all its words' log-probabilities, so its candidates rank as its
    logits do), with penalties (coverage adds one number per beam too) and with a vocabulary smaller than 2K."""
    model = make_model(arch, score, attention_type)
    for beam in (4, 9):  # 2 * 9 > V_TGT = 14: every word of every beam
        kw = dict(beam=beam, n_best=beam, alpha=0.6, beta=0.2 * model.has_attention, penalty_mode=penalty_mode)
        top = beam_search(model, batch_of(SOURCES), **kw)
        every = beam_search(model, batch_of(SOURCES), **kw, per_beam_top=False)
        _assert_identical_n_best(top, every)

"""Attention modules: global-attention invariants for every score function; Luong local-m / local-p."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.config import ModelConfig
from harness.models.attention import Attention, LocalAttention, NoAttention, build_attention
from harness.models.scores import SCORES, Dot, Location

SCORE_VARIANTS = [(name, 0.0) for name in SCORES] + [("cosine", 1.5)]
IDS = [f"{n}-{s}" for n, s in SCORE_VARIANTS]
H = 4


def _attention(name: str, sharpening: float = 0.0, attention_type: str = "global", window: int = 2):
    cfg = ModelConfig(max_positions=16, cosine_sharpening=sharpening, window=window)
    return build_attention(name, attention_type, H, H, cfg)


def _inputs(lengths: list[int], S: int, seed: int = 0):
    """Random query/keys/values; padded positions hold large garbage, which must never matter."""
    g = torch.Generator().manual_seed(seed)
    B = len(lengths)
    query = torch.randn(B, H, generator=g)
    keys = torch.randn(B, S, H, generator=g)
    values = torch.randn(B, S, H, generator=g)
    src_mask = torch.arange(S).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    keys = torch.where(src_mask.unsqueeze(-1), keys, 100.0 * torch.randn(B, S, H, generator=g))
    values = torch.where(src_mask.unsqueeze(-1), values, 100.0 * torch.randn(B, S, H, generator=g))
    return query, keys, values, src_mask


def _run(attention, query, keys, values, src_mask, step=0):
    with torch.no_grad():
        return attention(query, attention.precompute(keys), values, src_mask, step)


@pytest.mark.parametrize("name,sharpening", SCORE_VARIANTS, ids=IDS)
def test_global_weights_sum_to_one_and_padding_gets_zero(name, sharpening):
    torch.manual_seed(0)
    attention = _attention(name, sharpening)
    query, keys, values, src_mask = _inputs([5, 3, 1], 5)
    context, weights = _run(attention, query, keys, values, src_mask)
    assert weights.shape == (3, 5) and context.shape == (3, H)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert bool((weights[~src_mask] == 0).all())  # exactly 0, not just small
    assert bool((weights[src_mask] > 0).all())
    assert weights[2, 0].item() == pytest.approx(1.0)  # a one-word sentence attends to its word
    # the context is the weighted sum of the real states
    expected = torch.einsum("bs,bsh->bh", weights, values.masked_fill(~src_mask.unsqueeze(-1), 0))
    torch.testing.assert_close(context, expected)


@pytest.mark.parametrize("name,sharpening", SCORE_VARIANTS, ids=IDS)
def test_global_results_do_not_change_when_padding_is_appended(name, sharpening):
    torch.manual_seed(0)
    attention = _attention(name, sharpening)
    lengths = [4, 2]
    query, keys, values, src_mask = _inputs(lengths, 4)
    context, weights = _run(attention, query, keys, values, src_mask)
    pad = 3
    g = torch.Generator().manual_seed(7)
    keys_p = torch.cat([keys, 50.0 * torch.randn(2, pad, H, generator=g)], 1)
    values_p = torch.cat([values, 50.0 * torch.randn(2, pad, H, generator=g)], 1)
    mask_p = torch.cat([src_mask, torch.zeros(2, pad, dtype=torch.bool)], 1)
    context_p, weights_p = _run(attention, query, keys_p, values_p, mask_p)
    torch.testing.assert_close(context_p, context, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights_p[:, :4], weights, atol=1e-7, rtol=1e-5)
    assert bool((weights_p[:, 4:] == 0).all())
    # each sentence alone (no padding at all) gives the same as inside the batch
    for b, n in enumerate(lengths):
        c1, w1 = _run(attention, query[b : b + 1], keys[b : b + 1, :n], values[b : b + 1, :n], src_mask[b : b + 1, :n])
        torch.testing.assert_close(w1[0], weights[b, :n], atol=1e-7, rtol=1e-5)
        torch.testing.assert_close(c1[0], context[b], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("attention_type", ["global", "local-m", "local-p"])
@pytest.mark.parametrize("name,sharpening", SCORE_VARIANTS, ids=IDS)
def test_an_empty_source_attends_to_nothing(name, sharpening, attention_type):
    """An empty source line (kept at test time) has no real position: weights 0, context 0, no NaN."""
    torch.manual_seed(0)
    attention = _attention(name, sharpening, attention_type)
    query, keys, values, src_mask = _inputs([3, 0], 3)
    query.requires_grad_(True)
    context, weights = attention(query, attention.precompute(keys), values, src_mask, 1)
    assert bool(torch.isfinite(context).all()) and bool(torch.isfinite(weights).all())
    assert bool((weights[1] == 0).all()) and bool((context[1] == 0).all())
    assert bool((weights[0] > 0).any())
    (context.sum() + weights.sum()).backward()
    grads = [query.grad] + [p.grad for p in attention.parameters() if p.grad is not None]
    assert all(bool(torch.isfinite(g).all()) for g in grads)


def test_no_attention_returns_the_summary():
    attention = build_attention("none", "global", H, H, ModelConfig())
    assert isinstance(attention, NoAttention) and not attention.has_weights
    summary = torch.randn(2, H)
    context, weights = attention(torch.randn(2, H), None, None, None, 0, summary)
    assert weights is None and torch.equal(context, summary)


# ------------------------------------------------------------------------------------------- local attention


def test_build_local_attention_types():
    assert type(_attention("general", attention_type="global")) is Attention
    local_m = _attention("general", attention_type="local-m", window=3)
    local_p = _attention("general", attention_type="local-p", window=3)
    assert isinstance(local_m, LocalAttention) and not local_m.predictive and local_m.window == 3
    assert isinstance(local_p, LocalAttention) and local_p.predictive
    assert not hasattr(local_m, "W_p") and local_p.W_p.weight.shape == (H, H) and local_p.v_p.weight.shape == (1, H)


@pytest.mark.parametrize("name", list(SCORES))
def test_local_m_window_is_centred_at_t(name):
    """Luong §3.2 local-m: p_t = t; a_t is the softmax of the scores over [p_t − D, p_t + D], 0 elsewhere."""
    torch.manual_seed(0)
    D = 2
    attention = _attention(name, attention_type="local-m", window=D)
    lengths = [12, 6]
    query, keys, values, src_mask = _inputs(lengths, 12)
    global_attention = Attention(attention.score)
    for t in [0, 1, 5, 9, 11, 14]:
        context, weights = _run(attention, query, keys, values, src_mask, step=t)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2))
        for b, n in enumerate(lengths):
            p = min(t, n - 1)  # past the sentence end the window stays on its last word
            assert attention.last_position[b].item() == p
            window = [s for s in range(12) if abs(s - p) <= D and s < n]
            outside = [s for s in range(12) if s not in window]
            assert bool((weights[b, outside] == 0).all()), (t, b)
            assert bool((weights[b, window] > 0).all())
            # inside the window: the score function's softmax restricted to the window
            window_mask = torch.zeros(1, 12, dtype=torch.bool)
            window_mask[0, window] = True
            _, w_ref = _run(global_attention, query[b : b + 1], keys[b : b + 1], values[b : b + 1], window_mask)
            torch.testing.assert_close(weights[b], w_ref[0], atol=1e-6, rtol=1e-5)
            expected_context = (weights[b].unsqueeze(1) * values[b]).sum(0)
            torch.testing.assert_close(context[b], expected_context, atol=1e-5, rtol=1e-5)


class _Uniform(Dot):
    """All energies equal: the local-p weights are then the Gaussian alone (divided by the window size)."""

    def forward(self, query, pre):
        return pre.new_zeros(pre.shape[:2])


def _local_p(D: int, shift: float) -> LocalAttention:
    """local-p with W_p = I, v_p = [shift, 0, ...]: p_t = S · sigmoid(shift · tanh(h_t[0]))."""
    attention = LocalAttention(_Uniform(H, H), window=D, predictive=True, query_size=H)
    with torch.no_grad():
        attention.W_p.weight.copy_(torch.eye(H))
        attention.v_p.weight.zero_()
        attention.v_p.weight[0, 0] = shift
    return attention


def test_local_p_position_follows_W_p_v_p_and_the_gaussian_moves_with_it():
    """Luong eq. (9)-(10): p_t = S · sigmoid(v_pᵀ tanh(W_p h_t));
    a_t(s) = align(h_t, h̄_s) exp(−(s − p_t)²/2σ²)."""
    D, S = 3, 20
    attention = _local_p(D, shift=4.0)
    _, keys, values, src_mask = _inputs([S], S)
    centres = []
    for x in [-1.0, -0.2, 0.0, 0.3, 1.0]:
        query = torch.zeros(1, H)
        query[0, 0] = x
        _, weights = _run(attention, query, keys, values, src_mask)
        p = S / (1 + math.exp(-4.0 * math.tanh(x)))
        assert attention.last_position.item() == pytest.approx(p, rel=1e-5)
        w = weights[0].numpy()
        inside = np.abs(np.arange(S) - p) <= D
        assert (w[~inside] == 0).all()  # exactly 0 outside [p_t − D, p_t + D]
        assert (w[inside] > 0).all()
        assert int(w.argmax()) == int(np.argmin(np.abs(np.arange(S) - p)))  # the peak is the word nearest p_t
        centres.append(float((w * np.arange(S)).sum() / w.sum()))
    assert centres == sorted(centres) and centres[-1] - centres[0] > 10  # the centre moves with p_t


def test_local_p_gaussian_has_sigma_D_over_2():
    D, S = 4, 16
    attention = _local_p(D, shift=1.0)
    _, keys, values, src_mask = _inputs([S], S)
    query = torch.zeros(1, H)
    query[0, 0] = 0.25
    context, weights = _run(attention, query, keys, values, src_mask)
    p = S / (1 + math.exp(-math.tanh(0.25)))  # ≈ 9.98
    s = np.arange(S)
    inside = np.abs(s - p) <= D
    sigma = D / 2
    align = inside / inside.sum()  # uniform scores: softmax over the window
    expected = align * np.exp(-((s - p) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(weights[0].numpy(), expected, rtol=1e-5, atol=1e-7)
    # not renormalised (as in the paper): the weights sum to less than 1
    assert weights.sum().item() < 1.0
    torch.testing.assert_close(context[0], torch.from_numpy(expected).float() @ values[0], atol=1e-5, rtol=1e-5)


def test_local_p_uses_each_sentences_own_length():
    D = 2
    attention = _local_p(D, shift=2.0)
    lengths = [10, 4]
    query, keys, values, src_mask = _inputs(lengths, 10)
    query[:, 0] = 0.5
    _, weights = _run(attention, query, keys, values, src_mask)
    frac = 1 / (1 + math.exp(-2.0 * math.tanh(query[0, 0].item())))
    expected = [n * frac for n in lengths]
    np.testing.assert_allclose(attention.last_position.numpy(), expected, rtol=1e-5)
    assert bool((weights[~src_mask] == 0).all())
    # alone (no padding) the short sentence gets the same weights
    _, w1 = _run(attention, query[1:], keys[1:, :4], values[1:, :4], src_mask[1:, :4])
    torch.testing.assert_close(w1[0], weights[1, :4])


def test_local_attention_on_location_score_masks_padding():
    torch.manual_seed(0)
    attention = LocalAttention(Location(H, H, max_positions=8), window=1, predictive=False, query_size=H)
    query, keys, values, src_mask = _inputs([6, 3], 6)
    _, weights = _run(attention, query, keys, values, src_mask, step=4)
    assert bool((weights[~src_mask] == 0).all())
    assert weights[1, 2].item() > 0 and weights[1, :1].sum().item() == 0  # p_t = 2 for the 3-word sentence
    assert bool((weights[0, [0, 1, 2]] == 0).all()) and bool((weights[0, [3, 4, 5]] > 0).all())

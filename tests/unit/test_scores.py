"""Score functions: hand-checked numbers for every form, and gradcheck through the attention module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.config import ModelConfig
from harness.models.attention import Attention, build_attention
from harness.models.scores import (
    SCORES,
    Additive,
    Cosine,
    Dot,
    General,
    Location,
    ScaledDot,
    build_score,
    canonical_score,
    score_names,
)

# "Attn: Illustrated Attention" (Karim 2019): one decoder state, four encoder states.
QUERY = [10.0, 5.0, 10.0]
KEYS = [[0.0, 1.0, 1.0], [5.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 5.0, 1.0]]


def _example():
    query = torch.tensor([QUERY])  # (1, 3)
    keys = torch.tensor([KEYS])  # (1, 4, 3)
    mask = torch.ones(1, 4, dtype=torch.bool)
    return query, keys, mask


def _np_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def test_illustrated_attention_dot_example():
    query, keys, mask = _example()
    attention = Attention(Dot(3, 3))
    energies = attention.score(query, attention.precompute(keys))
    assert energies.tolist() == [[15.0, 60.0, 15.0, 35.0]]
    context, weights = attention(query, attention.precompute(keys), keys, mask)
    assert weights[0].tolist() == pytest.approx([0.0, 1.0, 0.0, 0.0], abs=1e-10)
    assert context[0].tolist() == pytest.approx([5.0, 0.0, 1.0], abs=1e-9)


def test_scaled_dot_divides_by_sqrt_key_size():
    query, keys, mask = _example()
    attention = Attention(ScaledDot(3, 3))
    energies = attention.score(query, attention.precompute(keys))
    expected = np.array([15.0, 60.0, 15.0, 35.0]) / math.sqrt(3)
    np.testing.assert_allclose(energies[0].numpy(), expected, rtol=1e-6)
    _, weights = attention(query, attention.precompute(keys), keys, mask)
    np.testing.assert_allclose(weights[0].numpy(), _np_softmax(expected), rtol=1e-5, atol=1e-7)


def test_general_uses_query_W_key():
    # score(h_t, h̄_s) = h_tᵀ W_a h̄_s with h_t = [1, 2] and W_a = [[1, 0, 1], [0, 1, 0]]:
    # h̄ = [1,1,1] -> W h̄ = [2, 1] -> 2 + 2 = 4; [0,2,0] -> [0, 2] -> 4; [3,0,-1] -> [2, 0] -> 2
    score = General(2, 3)
    with torch.no_grad():
        score.W.weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    keys = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 2.0, 0.0], [3.0, 0.0, -1.0]]])
    energies = score(torch.tensor([[1.0, 2.0]]), score.precompute(keys))
    assert energies.tolist() == [[4.0, 4.0, 2.0]]


def test_additive_is_v_tanh_W_query_plus_U_key():
    # e_s = vᵀ tanh(W q + U h̄_s + b)
    score = Additive(2, 3, attn_size=2)
    W = np.array([[1.0, 0.0], [0.5, -1.0]])  # (A, Hq)
    U = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])  # (A, Hk)
    b = np.array([0.1, -0.2])
    v = np.array([2.0, -1.0])
    with torch.no_grad():
        score.W.weight.copy_(torch.tensor(W))
        score.U.weight.copy_(torch.tensor(U))
        score.U.bias.copy_(torch.tensor(b))
        score.v.weight.copy_(torch.tensor(v).unsqueeze(0))
    q = np.array([0.3, -0.7])
    keys = np.array([[1.0, 1.0, 1.0], [0.0, 0.5, 0.0], [-1.0, 0.0, 2.0]])
    expected = [v @ np.tanh(W @ q + U @ k + b) for k in keys]
    keys_t = torch.tensor(keys[None], dtype=torch.float32)  # (1, S, Hk)
    energies = score(torch.tensor(q[None], dtype=torch.float32), score.precompute(keys_t))
    np.testing.assert_allclose(energies[0].detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert score.precompute(keys_t).shape == (1, 3, 2)  # U h̄_s, once per sentence


def test_concat_is_an_alias_of_additive():
    assert canonical_score("concat") == "additive"
    assert isinstance(build_score("concat", 4, 6), Additive)
    assert "none" in score_names()


def test_location_uses_the_query_only():
    # a_t = softmax(W_a h_t): energies for positions 0..P-1, cut to the batch's S
    score = Location(2, 3, max_positions=5)
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0], [0.0, 0.0]])
    b = np.array([0.0, 0.5, 0.0, -0.5, 1.0])
    with torch.no_grad():
        score.W.weight.copy_(torch.tensor(W))
        score.W.bias.copy_(torch.tensor(b))
    q = np.array([1.0, 2.0])
    full = W @ q + b  # [1, 2.5, 3, -0.5, 1]
    keys = torch.randn(1, 3, 3)
    energies = score(torch.tensor(q[None], dtype=torch.float32), score.precompute(keys))
    np.testing.assert_allclose(energies[0].detach().numpy(), full[:3], rtol=1e-6)
    # the keys do not matter
    other = score(torch.tensor(q[None], dtype=torch.float32), score.precompute(torch.randn(1, 3, 3)))
    assert torch.equal(energies, other)
    # longer than max_positions: the last position's energy is reused
    long = score(torch.tensor(q[None], dtype=torch.float32), score.precompute(torch.randn(1, 7, 3)))
    np.testing.assert_allclose(long[0].detach().numpy(), list(full) + [full[-1]] * 2, rtol=1e-6)


def test_cosine_fixed_sharpening():
    # e_s = β cos(q, h̄_s); q = [1, 0]: cos = 1, 0, 1/√2, -1 -> β = 2: 2, 0, √2, -2
    score = Cosine(2, 2, sharpening=2.0)
    assert list(score.parameters()) == []
    keys = torch.tensor([[[3.0, 0.0], [0.0, 0.5], [1.0, 1.0], [-2.0, 0.0]]])
    energies = score(torch.tensor([[4.0, 0.0]]), score.precompute(keys))
    np.testing.assert_allclose(energies[0].numpy(), [2.0, 0.0, math.sqrt(2), -2.0], rtol=1e-6, atol=1e-7)


def test_cosine_learned_sharpening():
    score = Cosine(2, 2)
    assert float(score.strength().detach()) == pytest.approx(5.0)  # softplus(b) + 1 = 5 at start
    with torch.no_grad():
        score.beta.fill_(math.log(math.e**2 - 1))  # softplus = 2 -> β = 3
    keys = torch.tensor([[[3.0, 0.0], [0.0, 0.5], [1.0, 1.0]]])
    energies = score(torch.tensor([[0.0, 1.0]]), score.precompute(keys))
    np.testing.assert_allclose(energies[0].detach().numpy(), [0.0, 3.0, 3.0 / math.sqrt(2)], rtol=1e-6, atol=1e-7)
    energies.sum().backward()
    assert score.beta.grad is not None and float(score.beta.grad) != 0.0


# ------------------------------------------------------------------------------------------------ gradcheck

SCORE_VARIANTS = [(name, 0.0) for name in SCORES] + [("cosine", 1.5)]  # cosine: learned and fixed β


def _attention(name: str, sharpening: float, Hq: int, Hk: int):
    cfg = ModelConfig(max_positions=6, cosine_sharpening=sharpening)
    return build_attention(name, "global", Hq, Hk, cfg)


class _Full(torch.nn.Module):
    """precompute + forward as one call, so gradients flow from the keys through the precomputation."""

    def __init__(self, attention):
        super().__init__()
        self.attention = attention

    def forward(self, query, keys, values, src_mask):
        return self.attention(query, self.attention.precompute(keys), values, src_mask)


@pytest.mark.parametrize("name,sharpening", SCORE_VARIANTS, ids=[f"{n}-{s}" for n, s in SCORE_VARIANTS])
def test_gradcheck_through_attention(name, sharpening):
    torch.manual_seed(0)
    H = 3
    full = _Full(_attention(name, sharpening, H, H)).double()
    names = [n for n, _ in full.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in full.named_parameters())
    query = torch.randn(2, H, dtype=torch.double, requires_grad=True)
    keys = torch.randn(2, 4, H, dtype=torch.double, requires_grad=True)
    values = torch.randn(2, 4, H, dtype=torch.double, requires_grad=True)
    src_mask = torch.tensor([[True, True, True, True], [True, True, True, False]])

    def f(q, k, v, *ps):
        return torch.func.functional_call(full, dict(zip(names, ps)), (q, k, v, src_mask))

    assert torch.autograd.gradcheck(f, (query, keys, values, *params), eps=1e-6, atol=1e-5)
    if name in ("general", "additive", "location") or (name == "cosine" and not sharpening):
        assert params, f"{name} should have parameters"


def test_recomputed_additive_energy_has_autograds_gradients():
    """model.recompute_attention: AdditiveEnergy's hand-written backward (the tanh recomputed) passes gradcheck
    and gives the energies and parameter gradients of the plain additive score."""
    from harness.models.scores import AdditiveEnergy

    torch.manual_seed(0)
    args = (torch.randn(3, 5, 4), torch.randn(3, 4), torch.randn(1, 4))
    args = tuple(a.double().requires_grad_() for a in args)
    assert torch.autograd.gradcheck(AdditiveEnergy.apply, args)
    plain, recomputed = Additive(6, 7), Additive(6, 7, recompute=True)
    recomputed.load_state_dict(plain.state_dict())
    keys, query, upstream = torch.randn(2, 9, 7), torch.randn(2, 6, requires_grad=True), torch.randn(2, 9)
    results = []
    for score in (plain, recomputed):
        query.grad = None
        energies = score(query, score.precompute(keys))
        (energies * upstream).sum().backward()
        results.append((energies.detach(), query.grad.clone(), [p.grad.clone() for p in score.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    torch.testing.assert_close(results[0][1], results[1][1])
    for a, b in zip(results[0][2], results[1][2]):
        torch.testing.assert_close(a, b)


def _saved_bytes(score: Additive, query, pre, steps: int) -> int:
    """Bytes autograd keeps for backward over `steps` decoder steps that share the precomputed keys `pre`
    (each storage counted once)."""
    kept: dict[int, int] = {}

    def pack(t):
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        for _ in range(steps):
            score(query, pre)
    return sum(kept.values())


def test_recomputing_the_additive_tanh_keeps_no_batch_x_source_x_attention_tensor_per_step():
    """What the flag is for: the plain score keeps the (B, S, A) tanh of every decoder step for backward; the
    recomputed one keeps only its inputs: the precomputed keys, shared by every step, and (B, A)-sized ones."""
    B, S, A, T = 4, 30, 16, 6
    plain, recomputed = Additive(A, A), Additive(A, A, recompute=True)
    query, pre = torch.randn(B, A, requires_grad=True), torch.randn(B, S, A, requires_grad=True)
    one = B * S * A * 4
    assert _saved_bytes(plain, query, pre, T) >= T * one
    assert _saved_bytes(recomputed, query, pre, T) < one + T * (2 * B * A * 4) + 2 * A * A * 4

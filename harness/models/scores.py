"""Score functions: unnormalised alignment energies e[b, s] between one decoder query and every source position.

One small class per paper form, registered by name (`model.score`). Each has two halves:
`precompute(keys)` does the work that does not depend on the decoder step once per sentence
(e.g. U h̄_s for additive, W h̄_s for general), and `forward(query, pre)` is the per-step part.
Masking and the softmax live in one place: `harness.models.attention`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SCORES: dict[str, type[Score]] = {}
ALIASES = {"concat": "additive", "bahdanau": "additive", "mlp": "additive"}


def register_score(name: str):
    def deco(cls):
        cls.name = name
        SCORES[name] = cls
        return cls

    return deco


def score_names() -> list[str]:
    return list(SCORES) + ["none"]


def canonical_score(name: str) -> str:
    return ALIASES.get(name, name)


class Score(nn.Module):
    """Base class. `needs_same_size`: query and keys must have the same size (dot-product forms)."""

    name = "?"
    needs_same_size = False

    def __init__(self, query_size: int, key_size: int, **kwargs):
        super().__init__()
        self.query_size, self.key_size = query_size, key_size

    def precompute(self, keys: Tensor) -> Tensor:  # (B, S, Hk) -> (B, S, ·)
        return keys

    def forward(self, query: Tensor, pre: Tensor) -> Tensor:  # (B, Hq), (B, S, ·) -> (B, S)
        raise NotImplementedError


@register_score("dot")
class Dot(Score):
    """Luong et al. 2015, eq. (8) "dot": score(h_t, h̄_s) = h_tᵀ h̄_s."""

    needs_same_size = True

    def forward(self, query, pre):
        return torch.bmm(pre, query.unsqueeze(2)).squeeze(2)  # (B, S)


@register_score("scaled_dot")
class ScaledDot(Score):
    """Vaswani et al. 2017, eq. (1): score(s, h) = sᵀh / √d (d = key size), so energies do not grow with d."""

    needs_same_size = True

    def forward(self, query, pre):
        return torch.bmm(pre, query.unsqueeze(2)).squeeze(2) / math.sqrt(self.key_size)


@register_score("general")
class General(Score):
    """Luong et al. 2015, eq. (8) "general": score(h_t, h̄_s) = h_tᵀ W_a h̄_s (W_a h̄_s precomputed)."""

    def __init__(self, query_size, key_size, **kwargs):
        super().__init__(query_size, key_size)
        self.W = nn.Linear(key_size, query_size, bias=False)

    def precompute(self, keys):
        return self.W(keys)  # (B, S, Hq)

    def forward(self, query, pre):
        return torch.bmm(pre, query.unsqueeze(2)).squeeze(2)


class AdditiveEnergy(torch.autograd.Function):
    """e = v · tanh(pre + q) over (B, S, A), keeping only its inputs for backward: the tanh, one (B, S, A) tensor
    per decoder step, is recomputed there (model.recompute_attention). Same gradients as autograd's own:
    de/dv = Σ g t, dpre = (g v) ⊙ (1 − t²), dq = Σ_s dpre."""

    @staticmethod
    def forward(ctx, pre: Tensor, q: Tensor, v: Tensor) -> Tensor:  # (B, S, A), (B, A), (1, A) -> (B, S)
        ctx.save_for_backward(pre, q, v)
        return nn.functional.linear((pre + q.unsqueeze(1)).tanh_(), v).squeeze(2)

    @staticmethod
    def backward(ctx, grad: Tensor):
        pre, q, v = ctx.saved_tensors
        t = (pre + q.unsqueeze(1)).tanh_()
        g = grad.unsqueeze(2)  # (B, S, 1)
        grad_v = torch.mm(g.reshape(1, -1), t.reshape(-1, t.size(2)))  # (1, A)
        d = t.mul_(t).neg_().add_(1).mul_(g * v)  # (1 − t²) ⊙ g v, in t's buffer
        return d, d.sum(1), grad_v


@register_score("additive")
class Additive(Score):
    """Bahdanau et al. 2015, eq. (6) / App. A.1.2: e_ij = vᵀ tanh(W s_{i-1} + U h_j) (U h_j precomputed).

    Luong's "concat" form vᵀ tanh(W_a[h_t; h̄_s]) is the same function with W_a = [W U]; alias `concat`.
    """

    def __init__(self, query_size, key_size, attn_size: int | None = None, recompute: bool = False, **kwargs):
        super().__init__(query_size, key_size)
        attn_size = attn_size or query_size
        self.W = nn.Linear(query_size, attn_size, bias=False)
        self.U = nn.Linear(key_size, attn_size, bias=True)
        self.v = nn.Linear(attn_size, 1, bias=False)
        self.recompute = recompute

    def precompute(self, keys):
        return self.U(keys)  # (B, S, A)

    def forward(self, query, pre):
        if self.recompute and torch.is_grad_enabled():
            return AdditiveEnergy.apply(pre, self.W(query), self.v.weight)
        # tanh in place on the sum (a fresh tensor; autograd keeps the tanh output): one (B, S, A) buffer less
        return self.v((pre + self.W(query).unsqueeze(1)).tanh_()).squeeze(2)


@register_score("location")
class Location(Score):
    """Luong et al. 2015, eq. (9) "location": a_t = softmax(W_a h_t), from the decoder state alone.

    W_a predicts energies for `max_positions` source positions; they are cut to each batch's source length
    and masked to each sentence's real length by the attention module. Positions beyond `max_positions`
    reuse the last position's energy (deviation: the paper fixes one maximum length).
    """

    def __init__(self, query_size, key_size, max_positions: int = 128, **kwargs):
        super().__init__(query_size, key_size)
        self.max_positions = max_positions
        self.W = nn.Linear(query_size, max_positions)

    def precompute(self, keys):
        return keys

    def forward(self, query, pre):
        S = pre.size(1)
        energies = self.W(query)  # (B, P)
        if S <= self.max_positions:
            return energies[:, :S]
        return torch.cat([energies, energies[:, -1:].expand(-1, S - self.max_positions)], dim=1)


@register_score("cosine")
class Cosine(Score):
    """Content-based (cosine), Graves et al. 2014 (Neural Turing Machines), eq. (5)-(6): e_s = β · cos(k, h_s).

    β is the key strength: learned (softplus(b) + 1) unless fixed by `model.cosine_sharpening`."""

    needs_same_size = True

    def __init__(self, query_size, key_size, sharpening: float = 0.0, **kwargs):
        super().__init__(query_size, key_size)
        self.fixed = float(sharpening)
        if not self.fixed:
            self.beta = nn.Parameter(torch.tensor(math.log(math.e**4 - 1)))  # softplus(b) + 1 = 5 at start

    def precompute(self, keys):
        return keys / keys.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    def strength(self) -> Tensor:
        if self.fixed:
            return torch.tensor(self.fixed)
        return nn.functional.softplus(self.beta) + 1.0

    def forward(self, query, pre):
        q = query / query.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        scale = self.fixed or self.strength().to(q.dtype)  # a fixed strength stays a Python float (any device)
        return scale * torch.bmm(pre, q.unsqueeze(2)).squeeze(2)


def build_score(name: str, query_size: int, key_size: int, **kwargs) -> Score:
    cls = SCORES[canonical_score(name)]
    return cls(query_size, key_size, **kwargs)

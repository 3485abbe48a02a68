"""Attention built on a score function: global, local-m, local-p (Luong et al. 2015 §3.1-3.2), and the
no-attention control. The mask and the softmax are applied here, once, for every score function."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.models.scores import Score, build_score


class Attention(nn.Module):
    """Global attention: a_t = softmax(score(h_t, h̄_s)) over real source positions; c_t = Σ_s a_t(s) h̄_s."""

    has_weights = True

    def __init__(self, score: Score):
        super().__init__()
        self.score = score

    def precompute(self, keys: Tensor) -> Tensor:
        return self.score.precompute(keys)

    def energies(self, query: Tensor, pre: Tensor, src_mask: Tensor) -> Tensor:  # (B, S)
        return self.score(query, pre).masked_fill(~src_mask, float("-inf"))

    def forward(self, query: Tensor, pre: Tensor, values: Tensor, src_mask: Tensor, step: int = 0, summary=None):
        # masked_fill after the softmax: a sentence with no real token (an empty source line, kept at test
        # time) has an all -inf row whose softmax is NaN; it attends to nothing (weights 0, context 0)
        weights = self.energies(query, pre, src_mask).softmax(-1).masked_fill(~src_mask, 0.0)  # (B, S)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (B, Hv)
        return context, weights


class LocalAttention(Attention):
    """Luong et al. 2015 §3.2 local attention over the window [p_t − D, p_t + D].

    local-m (monotonic): p_t = t, clamped to the last source position: p_t = min(t, |x| − 1). The paper sets
    p_t = t and says nothing of targets longer than their source; the clamp keeps the window on real words
    there (without it, the steps t > |x| − 1 + D would have no source word in their window at all).
    local-p (predictive): p_t = S · sigmoid(v_pᵀ tanh(W_p h_t)) (eq. 9), S = the sentence's source length,
    and a_t(s) = align(h_t, h̄_s) · exp(−(s − p_t)² / 2σ²), σ = D/2 (eq. 10); as in the paper the Gaussian
    factor is not renormalised, so a local-p row sums to less than 1 (the context vector is scaled down with
    it). harness.metrics.alignment.attention_entropy normalises rows before comparing entropies; argmax links
    do not depend on the scale. Weights outside the window are exactly 0.
    """

    def __init__(self, score: Score, window: int, predictive: bool, query_size: int):
        super().__init__(score)
        self.window, self.predictive = window, predictive
        if predictive:
            self.W_p = nn.Linear(query_size, query_size, bias=False)
            self.v_p = nn.Linear(query_size, 1, bias=False)
        self.last_position: Tensor | None = None  # p_t of the last step, for inspection and tests

    def position(self, query: Tensor, src_mask: Tensor, step: int) -> Tensor:  # (B,)
        lengths = src_mask.sum(1).to(query.dtype)
        if self.predictive:
            return lengths * torch.sigmoid(self.v_p(torch.tanh(self.W_p(query))).squeeze(1))
        return torch.minimum(torch.full_like(lengths, float(step)), (lengths - 1).clamp_min(0))

    def forward(self, query, pre, values, src_mask, step=0, summary=None):
        S = src_mask.size(1)
        p = self.position(query, src_mask, step)  # (B,)
        self.last_position = p.detach()
        positions = torch.arange(S, device=query.device, dtype=query.dtype).unsqueeze(0)  # (1, S)
        distance = positions - p.unsqueeze(1)  # (B, S)
        if self.predictive:
            in_window = distance.abs() <= self.window
        else:  # integer centre: the window is exactly 2D+1 positions
            in_window = distance.round().abs() <= self.window
        mask = src_mask & in_window
        # p_t can fall just outside a short sentence's window of real tokens: keep the nearest real token
        empty = ~mask.any(1) & src_mask.any(1)
        if empty.any():
            nearest = (distance.abs().masked_fill(~src_mask, float("inf"))).argmin(1)
            mask = mask.clone()
            mask[empty, nearest[empty]] = True
        weights = self.energies(query, pre, mask).softmax(-1).masked_fill(~mask, 0.0)  # empty source: all 0
        if self.predictive:
            sigma = max(self.window / 2.0, 1e-3)
            weights = weights * torch.exp(-(distance**2) / (2 * sigma**2))
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)
        return context, weights


class NoAttention(nn.Module):
    """The control: no attention. The "context" is the encoder's fixed summary vector at every step
    (Cho et al. 2014 feed c to every step; Sutskever et al. 2014 use it only as the initial state)."""

    has_weights = False

    def precompute(self, keys: Tensor) -> Tensor:
        return keys[:, :0]

    def forward(self, query, pre, values, src_mask, step=0, summary=None):
        return summary, None


def build_attention(score: str, attention_type: str, query_size: int, key_size: int, model_cfg) -> nn.Module:
    if score == "none":
        return NoAttention()
    kwargs = {
        "max_positions": model_cfg.max_positions,
        "sharpening": model_cfg.cosine_sharpening,
        "recompute": model_cfg.recompute_attention,
    }
    fn = build_score(score, query_size, key_size, **kwargs)
    if attention_type == "global":
        return Attention(fn)
    return LocalAttention(fn, model_cfg.window, attention_type == "local-p", query_size)

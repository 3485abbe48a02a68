"""Decoding as plain functions: batched greedy, batched beam search with GNMT penalties, forced decoding.

All functions decode every sentence of a batch together and give each sentence exactly the output it
would get alone: per-sentence maximum lengths, masks, and independent beams (tests check it).

The exported attention of a hypothesis is its own step-by-step attention, rows t = 0..|Y| (the last
row is the step that emitted </s>), columns = real source positions; for beam search it is the attention
of the final best hypothesis, recovered through the back-pointers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from harness.data.datamodule import Batch
from harness.data.tokenize import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Hypothesis:
    tokens: list[int]  # without </s>
    score: float  # log-probability, or the GNMT-normalised score for beam search with penalties
    attention: np.ndarray | None  # (len(tokens) + 1, S_real)


def max_lengths(src_lengths: torch.Tensor, ratio: float, add: int) -> torch.Tensor:
    """Per-sentence output limit: ratio · |x| + add tokens (including </s>)."""
    return (src_lengths.float() * ratio).floor().long() + add + 1


@torch.no_grad()
def greedy(model, batch: Batch, max_len_ratio: float = 2.0, max_len_add: int = 10) -> list[Hypothesis]:
    memory, state = model.start(batch.src, batch.src_lengths)
    B = batch.src.size(0)
    limits = max_lengths(batch.src_lengths, max_len_ratio, max_len_add).to(batch.src.device)
    y = torch.full((B,), BOS_ID, dtype=torch.long, device=batch.src.device)
    finished = torch.zeros(B, dtype=torch.bool, device=y.device)
    logprob = torch.zeros(B, device=y.device)  # log P(y_1 … y_t | x) of each hypothesis
    tokens, weights = [], []
    for t in range(int(limits.max())):
        logp, state, w = model.step(y, state, memory, t)
        force_end = (t + 1) >= limits
        logp = torch.where(force_end.unsqueeze(1) & ~finished.unsqueeze(1), _only_eos(logp), logp)
        y = logp.argmax(-1).masked_fill(finished, PAD_ID)
        logprob += logp.gather(1, y.unsqueeze(1)).squeeze(1).masked_fill(finished, 0.0)
        tokens.append(y)
        weights.append(w)
        finished = finished | (y == EOS_ID)
        if bool(finished.all()):
            break
    toks = torch.stack(tokens, 1).tolist()
    attn = torch.stack(weights, 1).float().cpu().numpy() if weights[0] is not None else None
    out = []
    for b in range(B):
        seq = toks[b]
        n = seq.index(EOS_ID) if EOS_ID in seq else len(seq)
        a = attn[b, : n + 1, : int(batch.src_lengths[b])] if attn is not None else None
        out.append(Hypothesis(seq[:n], float(logprob[b]), a))
    return out


def _only_eos(logp: torch.Tensor) -> torch.Tensor:
    """At the length limit only </s> may follow; it keeps its own log-probability, so the score of a
    hypothesis ended by the limit is still log P(y_1 … y_n </s> | x), like one that ended by itself."""
    forced = torch.full_like(logp, float("-inf"))
    forced[:, EOS_ID] = logp[:, EOS_ID]
    return forced


def length_penalty(length: int, alpha: float) -> float:
    """Wu et al. 2016, eq. (14): lp(Y) = (5 + |Y|)^α / (5 + 1)^α."""
    return ((5.0 + length) ** alpha) / (6.0**alpha) if alpha else 1.0


def coverage_penalty(attention: np.ndarray | None, beta: float) -> float:
    """Wu et al. 2016, eq. (14): cp(X; Y) = β Σ_i log(min(Σ_j p_{i,j}, 1.0)), i over source words."""
    if not beta or attention is None:
        return 0.0
    cov = np.minimum(attention.sum(0), 1.0)
    return beta * float(np.log(np.maximum(cov, 1e-9)).sum())


@torch.no_grad()
def beam_search(
    model,
    batch: Batch,
    beam: int = 5,
    max_len_ratio: float = 2.0,
    max_len_add: int = 10,
    alpha: float = 0.0,
    beta: float = 0.0,
    n_best: int = 1,
) -> list[list[Hypothesis]]:
    """Batched beam search: B sentences × K beams decode as one (B·K) batch.

    Alive beams are ranked by log-probability; a hypothesis that emits </s> within the top K candidates
    is finalised with s(Y, X) = log P(Y|X) / lp(Y) + cp(X; Y) (Wu et al. 2016, eq. 14; |Y| counts </s>).
    A sentence is done when it has K finished hypotheses or reaches its length limit (the remaining beams
    are then forced to end). Returns the n_best finished hypotheses per sentence, best first.
    """
    K = beam
    device = batch.src.device
    B = batch.src.size(0)
    memory, state = model.start(batch.src, batch.src_lengths)
    rep = torch.arange(B, device=device).repeat_interleave(K)
    memory = memory.select(rep)
    state = tuple(s.index_select(0, rep) for s in state)
    limits = max_lengths(batch.src_lengths, max_len_ratio, max_len_add).to(device)  # (B,)
    limit_list = limits.tolist()
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0
    y = torch.full((B * K,), BOS_ID, dtype=torch.long, device=device)
    done = [False] * B
    finished: list[list[tuple[float, int, int, float]]] = [[] for _ in range(B)]  # (score, step, beam, logp)
    back_tokens, back_parents, back_attn = [], [], []
    V = None
    for t in range(int(limits.max())):
        logp, state, w = model.step(y, state, memory, t)  # (B·K, V)
        V = logp.size(1)
        logp = logp.view(B, K, V)
        force_end = ((t + 1) >= limits).view(B, 1, 1)
        logp = torch.where(force_end, _only_eos(logp.view(B * K, V)).view(B, K, V), logp)
        cand = (scores.unsqueeze(2) + logp).view(B, K * V)
        top_scores, top_ids = cand.topk(min(2 * K, K * V), dim=1)  # (B, 2K)
        parents, tokens = top_ids // V, top_ids % V
        is_eos = tokens == EOS_ID
        # finalise </s> candidates ranked within the top K
        rank = torch.arange(top_ids.size(1), device=device).unsqueeze(0)
        final = is_eos & (rank < K) & torch.isfinite(top_scores)
        # alive: the first K non-</s> candidates
        order = (rank + is_eos.long() * 4 * K).argsort(1)[:, :K]
        next_scores = top_scores.gather(1, order)
        next_tokens = tokens.gather(1, order)
        next_parents = parents.gather(1, order)
        next_scores = next_scores.masked_fill(next_tokens == EOS_ID, float("-inf"))
        back_tokens.append(next_tokens)
        back_parents.append(next_parents)
        back_attn.append(w.view(B, K, -1) if w is not None else None)
        if bool(final.any()):  # one transfer per step, not one per element (measured ~10% of beam time)
            final_scores, final_parents = top_scores.tolist(), parents.tolist()
            for b, j in final.nonzero().tolist():
                if not done[b]:
                    finished[b].append((final_scores[b][j], t, final_parents[b][j], final_scores[b][j]))
        for b in range(B):
            if not done[b] and (len(finished[b]) >= K or t + 1 >= limit_list[b]):
                done[b] = True
        if all(done):
            break
        flat_parent = (next_parents + torch.arange(B, device=device).unsqueeze(1) * K).view(-1)
        state = tuple(s.index_select(0, flat_parent) for s in state)
        done_mask = torch.tensor(done, device=device).unsqueeze(1)  # (B, 1)
        scores = next_scores.masked_fill(done_mask, float("-inf"))
        y = next_tokens.view(-1).masked_fill(scores.view(-1) == float("-inf"), PAD_ID)
    # reconstruct finished hypotheses through the back-pointers
    results: list[list[Hypothesis]] = []
    src_len = batch.src_lengths.tolist()
    # back-pointers as Python lists and attention as one numpy array: no per-element tensor indexing below
    tok_back = [x.tolist() for x in back_tokens]
    par_back = [x.tolist() for x in back_parents]
    attn_back = torch.stack(back_attn).float().cpu().numpy() if back_attn[0] is not None else None  # (T, B, K, S)
    for b in range(B):
        hyps = []
        for logprob, t_end, k_end, _ in finished[b]:
            toks, rows = [], []
            k = k_end
            # </s> was emitted at step t_end from beam k_end (its parent); its attention row is that step's
            if attn_back is not None:
                rows.append(attn_back[t_end, b, k, : src_len[b]])
            for s in range(t_end - 1, -1, -1):
                toks.append(tok_back[s][b][k])
                k = par_back[s][b][k]
                if attn_back is not None:
                    rows.append(attn_back[s, b, k, : src_len[b]])
            toks.reverse()
            rows.reverse()
            attn = np.stack(rows) if rows else None
            length = len(toks) + 1
            score = logprob / length_penalty(length, alpha) + coverage_penalty(attn, beta)
            hyps.append(Hypothesis(toks, score, attn))
        hyps.sort(key=lambda h: -h.score)
        results.append(hyps[:n_best] if hyps else [Hypothesis([], -math.inf, None)])
    return results


@torch.no_grad()
def forced_attention(model, batch: Batch) -> list[np.ndarray | None]:
    """Teacher-forced decoding of the references; per sentence the attention (|y| + 1, |x|) (Luong 2015, Table 6)."""
    _, weights = model(batch)
    if weights is None:
        return [None] * batch.src.size(0)
    tgt_len = (batch.tgt_out != PAD_ID).sum(1).tolist()  # includes </s>
    w = weights.float().cpu().numpy()
    return [w[b, : tgt_len[b], : int(batch.src_lengths[b])] for b in range(batch.src.size(0))]

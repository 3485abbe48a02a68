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

from harness.data.batch import Batch
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
    """Batched greedy decoding. A sentence that has emitted </s> leaves the batch (its rows of the decoder
    state and the memory are dropped), so the last steps of a batch only compute the sentences still going."""
    memory, state = model.start(batch.src, batch.src_lengths)
    B, S = batch.src.size(0), batch.src.size(1)
    device = batch.src.device
    limits = max_lengths(batch.src_lengths, max_len_ratio, max_len_add).to(device)
    T = int(limits.max())
    alive = torch.arange(B, device=device)  # original index of every row still decoded
    y = torch.full((B,), BOS_ID, dtype=torch.long, device=device)
    tokens = torch.full((B, T), PAD_ID, dtype=torch.long, device=device)
    logprob = torch.zeros(B, device=device)  # log P(y_1 … y_t | x) of each hypothesis
    attn = None
    for t in range(T):
        # the argmax of the logits is that of the log-probabilities; only the chosen word's is computed
        logits, state, w = model.step_logits(y, state, memory, t)
        lse = logits.logsumexp(-1)
        force_end = (t + 1) >= limits
        if bool(force_end.any()):
            logits = torch.where(force_end.unsqueeze(1), _only_eos(logits), logits)
        y = logits.argmax(-1)
        logprob.index_add_(0, alive, logits.gather(1, y.unsqueeze(1)).squeeze(1) - lse)
        tokens[alive, t] = y
        if w is not None:
            if attn is None:
                attn = w.new_zeros(B, T, S)
            attn[alive, t] = w
        ended = y == EOS_ID
        if bool(ended.any()):
            keep = (~ended).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            alive, y, limits = alive[keep], y[keep], limits[keep]
            state = tuple(s.index_select(0, keep) for s in state)
            memory = memory.select(keep)
    toks = tokens.tolist()
    attn = attn.float().cpu().numpy() if attn is not None else None
    out = []
    for b in range(B):
        seq = toks[b]
        n = seq.index(EOS_ID) if EOS_ID in seq else len(seq)
        a = attn[b, : n + 1, : int(batch.src_lengths[b])] if attn is not None else None
        out.append(Hypothesis(seq[:n], float(logprob[b]), a))
    return out


def _only_eos(logp: torch.Tensor) -> torch.Tensor:
    """At the length limit only </s> may follow; it keeps its own log-probability (its logit, normalised by the
    unforced row's logsumexp), so the score of a hypothesis ended by the limit is still
    log P(y_1 … y_n </s> | x), like one that ended by itself."""
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
    early_stop: bool = True,
    penalty_mode: str = "fairseq",
    first_step_once: bool = True,
    per_beam_top: bool = True,
) -> list[list[Hypothesis]]:
    """Batched beam search: B sentences × K beams decode as one (B·K) batch.

    A hypothesis that emits </s> is finalised with s(Y, X) = log P(Y|X) / lp(Y) + cp(X; Y) (Wu et al. 2016,
    eq. 14; |Y| counts </s>). How candidates are ranked while searching (`penalty_mode`):
    * `fairseq`: the K alive beams are the best non-</s> candidates by log-probability; a </s> candidate ranked
      within the top K is finalised and leaves the beam (another alive candidate takes its slot). A sentence is
      done when it has K finished hypotheses or reaches its length limit (the remaining beams are then forced
      to end), and, with `early_stop` and no penalties (α = β = 0), as soon as none of its alive hypotheses can
      still enter its n best: the same n best, found in fewer steps.
    * `gnmt` (Wu et al. 2016 §7; tf/nmt's beam search): every step ranks all candidates by the normalised score
      s = log P / lp(t + 1) + cp, with the coverage of the attention so far, and finished hypotheses keep their
      slot in the beam while they rank within its K best: a short finished hypothesis competes with longer
      alive ones by normalised score, so α and β act on the search itself. A sentence is done when all K slots
      hold finished hypotheses or it reaches its length limit. At α = β = 0 the normalised score is the
      log-probability and both modes rank alike; the 1-best can still differ where `fairseq` stopped at K
      finished hypotheses while a more probable one was alive (`gnmt` then finds it; tests check it is never
      worse).
    The first step runs one row per sentence (`first_step_once`; False computes the K identical rows, for the test
    that both give the same output). Each step ranks only its beams' 2K best words each (`per_beam_top`; False
    ranks all K·V candidates, for the test that both give the same output).
    Returns the n_best finished hypotheses per sentence, best first.
    """
    if penalty_mode not in ("fairseq", "gnmt"):
        raise ValueError(f"penalty_mode {penalty_mode!r}: expected 'fairseq' or 'gnmt'")
    gnmt = penalty_mode == "gnmt"
    K = beam
    bound = early_stop and not alpha and not beta and not gnmt
    device = batch.src.device
    B, S = batch.src.size(0), batch.src.size(1)
    memory_1, state_1 = model.start(batch.src, batch.src_lengths)  # one row per sentence
    rep = torch.arange(B, device=device).repeat_interleave(K)
    memory = memory_1.select(rep)
    state = tuple(s.index_select(0, rep) for s in state_1)
    limits = max_lengths(batch.src_lengths, max_len_ratio, max_len_add).to(device)  # (B,)
    limit_list = limits.tolist()
    # Sentences that are done leave the batch: `alive` holds the original index of each sentence still
    # decoded (its K rows are contiguous in the state and the memory); the back-pointers are kept full-size.
    alive = torch.arange(B, device=device)
    alive_list = list(range(B))
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0
    y = torch.full((B * K,), BOS_ID, dtype=torch.long, device=device)
    finished: list[list[tuple[float, int, int, float]]] = [[] for _ in range(B)]  # (score, step, beam, logp)
    back_tokens, back_parents, back_attn = [], [], []
    beam_offsets = torch.arange(K, device=device)
    coverage = batch.src.new_zeros(B * K, S, dtype=torch.float) if gnmt and beta else None  # Σ attention so far
    in_beam = torch.full((B, K), float("-inf"), device=device)  # gnmt: normalised scores of finished slots
    for t in range(int(limits.max())):
        if t == 0 and first_step_once:
            # before the first step the K beams of a sentence are one hypothesis (same state, same <s>): compute
            # one row per sentence and copy it K times (exact: the same row, computed once)
            logits, state, w = model.step_logits(y[::K], state_1, memory_1, t)
            logits = logits.repeat_interleave(K, 0)
            w = w.repeat_interleave(K, 0) if w is not None else None
            state = tuple(s.repeat_interleave(K, 0) for s in state)
        else:
            logits, state, w = model.step_logits(y, state, memory, t)  # (Ba·K, V)
        Ba, V = alive.numel(), logits.size(1)
        lse = logits.logsumexp(-1, keepdim=True)  # (Ba·K, 1)
        force_end = ((t + 1) >= limits[alive]).repeat_interleave(K).unsqueeze(1)
        if bool(force_end.any()):
            logits = torch.where(force_end, _only_eos(logits), logits)
        # Every score below adds one number per beam to a word's log-probability, so a beam's candidates rank
        # as its logits do: the sentence's 2K best of K·V candidates are among its beams' 2K best words each.
        # Only those R words per beam are normalised and ranked (the same candidates, without a log-softmax and a
        # top-k over the whole vocabulary per beam).
        R = min(2 * K, V) if per_beam_top else V
        row_logits, row_words = logits.topk(R, dim=1)  # (Ba·K, R)
        cand = (row_logits - lse).view(Ba, K, R).add_(scores.unsqueeze(2)).view(Ba, K * R)
        if gnmt:  # rank by s = log P / lp(t + 1) + cp(attention so far, this step's row included)
            ranked = cand / length_penalty(t + 1, alpha)
            if coverage is not None and w is not None:
                coverage = coverage + w.float()
                cov = coverage.clamp(max=1.0).clamp_min(1e-9).log().masked_fill(~memory.src_mask, 0.0)
                ranked = (ranked.view(Ba, K, R) + beta * cov.sum(1).view(Ba, K, 1)).view(Ba, K * R)
            top_ranked, top_ids = ranked.topk(min(2 * K, K * R), dim=1)  # (Ba, 2K)
            top_scores = cand.gather(1, top_ids)
        else:
            top_scores, top_ids = cand.topk(min(2 * K, K * R), dim=1)  # (Ba, 2K)
        parents, tokens = top_ids // R, row_words.view(Ba, K * R).gather(1, top_ids)
        is_eos = tokens == EOS_ID
        rank = torch.arange(top_ids.size(1), device=device).unsqueeze(0)
        if gnmt:
            # the beam's K slots: the best of this step's candidates and the finished hypotheses still in it
            pool = torch.cat([top_ranked, in_beam[alive]], 1)  # (Ba, 3K)
            slot_rank = pool.argsort(dim=1, descending=True, stable=True).argsort(dim=1, stable=True)  # rank
            in_top = slot_rank < K
            finished_kept = in_top[:, top_ids.size(1) :]
            final = is_eos & in_top[:, : top_ids.size(1)] & torch.isfinite(top_scores)
            alive_cand = ~is_eos & in_top[:, : top_ids.size(1)]
            kept_old = in_beam[alive].masked_fill(~finished_kept, float("-inf"))
            new_final = top_ranked.masked_fill(~final, float("-inf"))
            in_beam[alive] = torch.cat([kept_old, new_final], 1).topk(K, dim=1).values
            order = (rank + (~alive_cand).long() * 4 * K).argsort(1)[:, :K]
        else:
            # finalise </s> candidates ranked within the top K; alive: the first K non-</s> candidates
            final = is_eos & (rank < K) & torch.isfinite(top_scores)
            order = (rank + is_eos.long() * 4 * K).argsort(1)[:, :K]
        next_scores = top_scores.gather(1, order)
        next_tokens = tokens.gather(1, order)
        next_parents = parents.gather(1, order)
        dead = next_tokens == EOS_ID
        if gnmt:  # fewer than K alive candidates made the beam: the other slots hold finished hypotheses
            dead |= ~alive_cand.gather(1, order)
        next_scores = next_scores.masked_fill(dead, float("-inf"))
        back_tokens.append(next_tokens.new_zeros(B, K).index_copy_(0, alive, next_tokens))
        back_parents.append(next_parents.new_zeros(B, K).index_copy_(0, alive, next_parents))
        if w is not None:
            back_attn.append(w.new_zeros(B, K, S).index_copy_(0, alive, w.view(Ba, K, S)))
        if bool(final.any()):  # one transfer per step, not one per element (measured ~10% of beam time)
            final_scores, final_parents = top_scores.tolist(), parents.tolist()
            for i, j in final.nonzero().tolist():
                finished[alive_list[i]].append((final_scores[i][j], t, final_parents[i][j], final_scores[i][j]))
        if gnmt:  # done when every slot of the beam holds a finished hypothesis
            live = torch.isfinite(next_scores).any(1).tolist()
            keep = [i for i, b in enumerate(alive_list) if live[i] and t + 1 < limit_list[b]]
        else:
            keep = [i for i, b in enumerate(alive_list) if len(finished[b]) < K and t + 1 < limit_list[b]]
        if bound and keep:
            best_alive = next_scores.max(1).values.tolist()
            keep = [i for i in keep if not _settled(finished[alive_list[i]], n_best, best_alive[i])]
        if not keep:
            break
        flat_parent = next_parents + torch.arange(Ba, device=device).unsqueeze(1) * K  # (Ba, K) rows
        scores, y = next_scores, next_tokens
        if len(keep) < Ba:  # drop the sentences that are done
            kept = torch.tensor(keep, device=device)
            alive_list = [alive_list[i] for i in keep]
            alive, scores, y, flat_parent = alive[kept], scores[kept], y[kept], flat_parent[kept]
            memory = memory.select((kept.unsqueeze(1) * K + beam_offsets).view(-1))
        state = tuple(s.index_select(0, flat_parent.view(-1)) for s in state)
        if coverage is not None:  # like the state: each new beam continues its parent's coverage
            coverage = coverage.index_select(0, flat_parent.view(-1))
        y = y.reshape(-1).masked_fill(scores.reshape(-1) == float("-inf"), PAD_ID)
    # reconstruct finished hypotheses through the back-pointers
    results: list[list[Hypothesis]] = []
    src_len = batch.src_lengths.tolist()
    # back-pointers as Python lists and attention as one numpy array: no per-element tensor indexing below
    tok_back = [x.tolist() for x in back_tokens]
    par_back = [x.tolist() for x in back_parents]
    attn_back = torch.stack(back_attn).float().cpu().numpy() if back_attn else None  # (T, B, K, S)
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


def _settled(finished: list[tuple[float, int, int, float]], n: int, best_alive: float) -> bool:
    """True when no alive hypothesis can enter the n best finished ones any more. Without penalties a score is
    a log-probability, which only falls as a hypothesis grows: an alive hypothesis can end at most at its current
    score. A later hypothesis that ties sorts after the earlier ones (stable sort), so `>=` is safe."""
    if len(finished) < n:
        return False
    return sorted((f[0] for f in finished), reverse=True)[n - 1] >= best_alive


@torch.no_grad()
def forced_attention(model, batch: Batch, extra_steps: int = 0) -> list[np.ndarray | None]:
    """Teacher-forced decoding of the references; per sentence the attention (|y| + 1 + extra_steps, |x|)
    (Luong 2015, Table 6). `extra_steps` = 1 runs one more step fed </s>, whose attention query has read the
    last word when the query lags two words behind (RNNsearch, GNMT: shift-att with lag 2)."""
    tgt_len = (batch.tgt_out != PAD_ID).sum(1)  # includes </s>
    if extra_steps:
        B = batch.src.size(0)
        pad = batch.tgt_in.new_full((B, extra_steps), PAD_ID)
        tgt_in = torch.cat([batch.tgt_in, pad], 1)
        rows = torch.arange(B, device=tgt_in.device)
        for k in range(extra_steps):  # </s> fed after the last word (tgt_in[b, len] is its last real token)
            tgt_in[rows, tgt_len + k] = EOS_ID
        batch = Batch(batch.src, batch.src_lengths, tgt_in, torch.cat([batch.tgt_out, pad], 1), batch.index)
    _, weights = model(batch)
    if weights is None:
        return [None] * batch.src.size(0)
    w = weights.float().cpu().numpy()
    lengths = (tgt_len + extra_steps).tolist()
    return [w[b, : lengths[b], : int(batch.src_lengths[b])] for b in range(batch.src.size(0))]

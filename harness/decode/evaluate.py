"""Evaluate a trained model on a split: decode (greedy or beam), BLEU/chrF with signatures, BLEU by source
length, forced-decoding attention -> AER/precision/recall against gold, attention entropy, speed.
Returns the flat metrics dict that goes into metrics.json with the hypotheses and attention behind it; the run
directory keeps them as files (harness/runs/layout.py write_evaluation)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from harness.config import ExperimentConfig
from harness.data.datamodule import EncodedSplit, eval_batches
from harness.data.tokenize import UNK
from harness.decode.search import beam_search, forced_attention, greedy
from harness.metrics import keys
from harness.metrics.alignment import (
    alignment_scores,
    attention_entropy,
    diagonal_links,
    links_from_attention,
    merge_subwords,
)
from harness.metrics.bleu import corpus_scores
from harness.metrics.length import by_length, length_drop
from harness.models.seq2seq import ARCHS


@dataclass
class Decoded:
    tokens: list[list[str]]  # per sentence, target tokens (after unk replacement)
    texts: list[str]  # detokenized hypotheses, split order
    attention: list[np.ndarray | None]  # per sentence (|y| + 1, |x|)
    seconds: float
    nbest: dict[int, list[tuple[str, float]]] = field(default_factory=dict)  # with decode.n_best > 1


def decode_split(
    module, split: EncodedSplit, cfg: ExperimentConfig, detokenize, beam: int | None = None, progress: bool = True
) -> Decoded:
    model = module.model
    model.eval()
    device = next(model.parameters()).device
    beam = beam or cfg.decode.beam
    d = cfg.decode
    n = len(split.src_ids)
    tokens: list[list[str]] = [[] for _ in range(n)]
    attention: list[np.ndarray | None] = [None] * n
    nbest: dict[int, list[tuple[str, float]]] = {}
    batches = eval_batches(split, d.batch_size if beam == 1 else max(1, d.batch_size // beam))
    t0 = time.perf_counter()
    bar = tqdm(total=n, desc=f"decode {split.name} (beam {beam})", unit="sent", disable=not progress, leave=False)
    for batch in batches:
        batch = batch.to(device)
        if beam == 1:
            nbests = [[h] for h in greedy(model, batch, d.max_len_ratio, d.max_len_add)]
        else:
            nbests = beam_search(
                model,
                batch,
                beam,
                d.max_len_ratio,
                d.max_len_add,
                d.length_penalty_alpha,
                d.coverage_penalty_beta,
                min(d.n_best, beam),
                penalty_mode=d.penalty_mode,
            )
        for i, nb in zip(batch.index.tolist(), nbests):
            h = nb[0]
            toks = module.tgt_vocab.decode(h.tokens)
            if d.unk_replace and h.attention is not None:
                toks = replace_unknowns(toks, h.attention, split.src_tokens[i])
            tokens[i] = toks
            attention[i] = h.attention
            if len(nb) > 1:
                nbest[i] = [(detokenize(module.tgt_vocab.decode(x.tokens)), x.score) for x in nb]
        bar.update(len(batch))
    bar.close()
    seconds = time.perf_counter() - t0
    return Decoded(tokens, [detokenize(t) for t in tokens], attention, seconds, nbest)


def replace_unknowns(tokens: list[str], attention: np.ndarray, src_tokens: list[str]) -> list[str]:
    """Luong et al. 2015 §4 (after Luong et al. 2015b): an <unk> becomes the source word it attends to most."""
    out = list(tokens)
    for j, tok in enumerate(tokens):
        if tok == UNK and j < attention.shape[0] and attention.shape[1]:
            out[j] = src_tokens[int(attention[j].argmax())]
    return out


def forced_split_attention(model, split: EncodedSplit, batch_size: int, extra_steps: int = 0) -> list:
    """Forced decoding of a split's references: per sentence its attention (|y| + 1 + extra_steps, |x|)."""
    device = next(model.parameters()).device
    forced: list[np.ndarray | None] = [None] * len(split.src_ids)
    for batch in eval_batches(split, batch_size):
        for i, a in zip(batch.index.tolist(), forced_attention(model, batch.to(device), extra_steps)):
            forced[i] = a
    return forced


def attention_links(
    forced: list, split: EncodedSplit, cfg: ExperimentConfig, tokenizers, threshold: float | None = None
) -> list[set]:
    """Word links of every sentence from its forced attention, by eval.align_method (and the architecture's
    query lag for shift-att); subword pieces are merged into the words the gold is over."""
    method, lag = cfg.eval.align_method, ARCHS[cfg.model.arch].query_lag
    src_tok, tgt_tok = tokenizers
    out = []
    for i, a in enumerate(forced):
        if a is None or a.size == 0:
            out.append(set())
            continue
        src_w = src_tok.word_of_piece(split.src_tokens[i])
        tgt_w = tgt_tok.word_of_piece(split.tgt_tokens[i])
        if src_w and (src_w[-1] + 1 != len(src_w) or tgt_w and tgt_w[-1] + 1 != len(tgt_w)):
            extra = a.shape[0] - len(tgt_w) - 1  # rows of forced steps after </s> (shift-att with lag 2)
            a = merge_subwords(a, src_w, tgt_w, extra)  # subword pieces -> words (gold is over words)
        words = (tgt_w[-1] + 1) if tgt_w else 0
        out.append(links_from_attention(a, method, lag, threshold, target_words=words))
    return out


def diagonal_baseline(split: EncodedSplit, tokenizers) -> list[set]:
    """The positional baseline's links for every sentence of a split (over the words the gold is over)."""
    src_tok, tgt_tok = tokenizers
    out = []
    for i in range(len(split.src_tokens)):
        src_w, tgt_w = src_tok.word_of_piece(split.src_tokens[i]), tgt_tok.word_of_piece(split.tgt_tokens[i])
        out.append(diagonal_links(src_w[-1] + 1 if src_w else 0, tgt_w[-1] + 1 if tgt_w else 0))
    return out


def alignment_metrics(module, split: EncodedSplit, cfg: ExperimentConfig, tokenizers) -> tuple[dict, list]:
    """Forced decoding of the references (Luong et al. 2015, Table 6) and AER against the split's gold: the
    attention's links (eval.align_method; threshold extraction beside it), and the positional baseline's on the
    same sentences (aer_diagonal), also for a model without attention."""
    gold = split.raw.gold
    out: dict = dict.fromkeys(keys.ALIGNMENT) | {keys.GOLD_ALIGNMENTS: split.raw.gold_name}
    if gold is not None:
        diag = alignment_scores(diagonal_baseline(split, tokenizers), gold)
        out |= {keys.AER_DIAGONAL: diag["aer"], keys.AER_DIAGONAL_PRECISION: diag["precision"]}
        out[keys.AER_DIAGONAL_RECALL] = diag["recall"]
    if not module.model.has_attention:
        return out, []
    lag = ARCHS[cfg.model.arch].query_lag
    extra = lag - 1 if cfg.eval.align_method == "shift-att" else 0
    forced = forced_split_attention(module.model, split, cfg.decode.batch_size, extra)
    if gold is None:
        return out, [a[: a.shape[0] - extra] if a is not None else None for a in forced]
    links = attention_links(forced, split, cfg, tokenizers)
    out["links"] = links  # Evaluation.links (written as <split>.align), not a metric
    scores = alignment_scores(links, gold)
    out |= {keys.AER: scores["aer"], keys.ALIGNMENT_PRECISION: scores["precision"]}
    out[keys.ALIGNMENT_RECALL] = scores["recall"]
    th = alignment_scores(attention_links(forced, split, cfg, tokenizers, cfg.eval.align_threshold), gold)
    out |= {keys.AER_THRESHOLD: th["aer"], keys.AER_THRESHOLD_PRECISION: th["precision"]}
    out[keys.AER_THRESHOLD_RECALL] = th["recall"]
    return out, [a[: a.shape[0] - extra] if a is not None else None for a in forced]


def split_aer(model, split: EncodedSplit, cfg: ExperimentConfig, tokenizers) -> float | None:
    """Forced-decoding AER of `model` on a split with gold alignments (val_aer at every validation)."""
    if not model.has_attention or split.raw.gold is None:
        return None
    was_training = model.training
    model.eval()
    lag = ARCHS[cfg.model.arch].query_lag
    extra = lag - 1 if cfg.eval.align_method == "shift-att" else 0
    with torch.no_grad():
        forced = forced_split_attention(model, split, cfg.decode.batch_size, extra)
    model.train(was_training)
    return alignment_scores(attention_links(forced, split, cfg, tokenizers), split.raw.gold)["aer"]


@dataclass
class Evaluation:
    """A split decoded and scored: the metrics (metrics.json keys) and what the run directory keeps of it
    (harness/runs/layout.py write_evaluation: <split>.hyp, .nbest, .align, attention/<split>[.forced].npz)."""

    metrics: dict
    decoded: Decoded
    links: list[set] | None  # the attention's word links (eval.align_method) where the split has gold
    forced_attention: list  # forced decoding of the references, per sentence (empty without it)


def evaluate_split(
    module,
    data,
    split_name: str,
    cfg: ExperimentConfig,
    beam: int | None = None,
    progress: bool = True,
    forced: bool | None = None,
) -> Evaluation:
    split = data.splits[split_name]
    detok = data.tgt_tok.decode
    decoded = decode_split(module, split, cfg, detok, beam, progress)
    refs = split.raw.tgt
    lower = cfg.data.lowercase
    scores = corpus_scores(decoded.texts, refs, lower)
    src_lengths = [len(s.split()) for s in split.raw.src]  # words of the source text
    buckets = by_length(src_lengths, decoded.texts, refs, cfg.eval.length_buckets, cfg.eval.min_bucket_n, lower)
    metrics = {
        keys.SPLIT: split_name,
        keys.BLEU: scores.bleu,
        keys.CHRF: scores.chrf,
        keys.BLEU_SIGNATURE: scores.bleu_signature,
        keys.CHRF_SIGNATURE: scores.chrf_signature,
        keys.BEAM: beam or cfg.decode.beam,
        keys.DECODE_SPEED: len(refs) / decoded.seconds if decoded.seconds > 0 else None,
        keys.BY_LENGTH: buckets,
        keys.LENGTH_DROP: length_drop(buckets, cfg.eval.min_bucket_n),
    }
    forced = cfg.eval.forced_alignment if forced is None else forced
    align, forced_attn = (
        alignment_metrics(module, split, cfg, (data.src_tok, data.tgt_tok))
        if forced
        else (dict.fromkeys(keys.ALIGNMENT) | {keys.GOLD_ALIGNMENTS: split.raw.gold_name}, [])
    )
    links = align.pop("links", None)
    metrics.update(align)
    rows = [a for a in (forced_attn or decoded.attention) if a is not None and a.size]
    metrics[keys.ATTENTION_ENTROPY] = attention_entropy(rows) if rows else None
    return Evaluation(metrics, decoded, links, forced_attn)

"""Evaluate a trained model on a split: decode (greedy or beam), BLEU/chrF with signatures, BLEU by source
length, forced-decoding attention -> AER/precision/recall against gold, attention entropy, speed.
Writes <split>.hyp, attention/<split>.npz and returns the flat metrics dict that goes into metrics.json."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from harness.config import ExperimentConfig
from harness.data.datamodule import EncodedSplit, eval_batches
from harness.data.tokenize import UNK
from harness.io import atomic_write_bytes, atomic_write_text
from harness.metrics.alignment import alignment_scores, attention_entropy, links_from_attention, merge_subwords
from harness.metrics.bleu import corpus_scores
from harness.metrics.length import by_length, length_drop
from harness.search import beam_search, forced_attention, greedy


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


def alignment_metrics(module, split: EncodedSplit, cfg: ExperimentConfig, tokenizers) -> tuple[dict, list]:
    """Forced decoding of the references (Luong et al. 2015, Table 6) and AER against the split's gold."""
    gold = split.raw.gold
    empty = {"aer": None, "alignment_precision": None, "alignment_recall": None, "gold_alignments": None}
    if not module.model.has_attention:
        return empty | {"gold_alignments": split.raw.gold_name}, []
    model = module.model
    device = next(model.parameters()).device
    n = len(split.src_ids)
    forced: list[np.ndarray | None] = [None] * n
    for batch in eval_batches(split, cfg.decode.batch_size):
        for i, a in zip(batch.index.tolist(), forced_attention(model, batch.to(device))):
            forced[i] = a
    if gold is None:
        return empty, forced
    src_tok, tgt_tok = tokenizers
    hyp_links = []
    for i in range(n):
        a = forced[i]
        if a is None or a.size == 0:
            hyp_links.append(set())
            continue
        src_w = src_tok.word_of_piece(split.src_tokens[i])
        tgt_w = tgt_tok.word_of_piece(split.tgt_tokens[i])
        if src_w and (src_w[-1] + 1 != len(src_w) or tgt_w and tgt_w[-1] + 1 != len(tgt_w)):
            a = merge_subwords(a, src_w, tgt_w)  # subword pieces -> words (gold is over words)
        hyp_links.append(links_from_attention(a, cfg.eval.align_method))
    scores = alignment_scores(hyp_links, gold)
    return {
        "aer": scores["aer"],
        "alignment_precision": scores["precision"],
        "alignment_recall": scores["recall"],
        "gold_alignments": split.raw.gold_name,
    }, forced


def save_attention(path: Path, split: EncodedSplit, tokens: list[list[str]], attention: list) -> None:
    """attention/<split>.npz, loadable with numpy alone (allow_pickle=False):
    `attn_<i>` float32 (|y|+1, |x|) per sentence i with attention; `src_<i>`, `tgt_<i>` token arrays (str);
    `count` = number of sentences. Sentences without attention (no-attention models) have no `attn_<i>`."""
    arrays: dict[str, np.ndarray] = {"count": np.array(len(tokens))}
    for i, (toks, a) in enumerate(zip(tokens, attention)):
        arrays[f"src_{i}"] = np.array(split.src_tokens[i], dtype=str)
        arrays[f"tgt_{i}"] = np.array(toks, dtype=str)
        if a is not None:
            arrays[f"attn_{i}"] = a.astype(np.float32)
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def evaluate_split(
    module,
    data,
    split_name: str,
    cfg: ExperimentConfig,
    out_dir: Path,
    beam: int | None = None,
    progress: bool = True,
    forced: bool | None = None,
) -> dict:
    split = data.splits[split_name]
    detok = data.tgt_tok.decode
    decoded = decode_split(module, split, cfg, detok, beam, progress)
    refs = split.raw.tgt
    lower = cfg.data.lowercase
    scores = corpus_scores(decoded.texts, refs, lower)
    src_lengths = [len(s.split()) for s in split.raw.src]  # words of the source text
    buckets = by_length(src_lengths, decoded.texts, refs, cfg.eval.length_buckets, cfg.eval.min_bucket_n, lower)
    metrics = {
        "split": split_name,
        "bleu": scores.bleu,
        "chrf": scores.chrf,
        "sacrebleu_signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "beam": beam or cfg.decode.beam,
        "decode_sentences_per_sec": len(refs) / decoded.seconds if decoded.seconds > 0 else None,
        "by_length": buckets,
        "length_drop": length_drop(buckets, cfg.eval.min_bucket_n),
    }
    forced = cfg.eval.forced_alignment if forced is None else forced
    align, forced_attn = (
        alignment_metrics(module, split, cfg, (data.src_tok, data.tgt_tok))
        if forced
        else (
            {
                "aer": None,
                "alignment_precision": None,
                "alignment_recall": None,
                "gold_alignments": split.raw.gold_name,
            },
            [],
        )
    )
    metrics.update(align)
    rows = [a for a in (forced_attn or decoded.attention) if a is not None and a.size]
    metrics["attention_entropy"] = attention_entropy(rows) if rows else None
    out_dir = Path(out_dir)
    stem = "test" if split_name == data.corpus.test_split else split_name  # the test split is always test.*
    atomic_write_text(out_dir / f"{stem}.hyp", "".join(t + "\n" for t in decoded.texts))
    save_attention(out_dir / "attention" / f"{stem}.npz", split, decoded.tokens, decoded.attention)
    if decoded.nbest:  # Moses n-best format: sentence index ||| hypothesis ||| score (best first)
        lines = [f"{i} ||| {text} ||| {score:.4f}\n" for i in sorted(decoded.nbest) for text, score in decoded.nbest[i]]
        atomic_write_text(out_dir / f"{stem}.nbest", "".join(lines))
    if forced_attn:
        save_attention(
            out_dir / "attention" / f"{stem}.forced.npz",
            split,
            [split.tgt_tokens[i] for i in range(len(forced_attn))],
            forced_attn,
        )
    return metrics


def model_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

"""Seq2Seq = encoder + decoder + generator, and the architecture registry (`model.arch`).

Each architecture is a builder function registered by name; it composes an encoder and a decoder from
harness.models.encoders / decoders and declares which score functions and attention types apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from harness.config import ModelConfig
from harness.data.batch import Batch
from harness.models.attention import build_attention
from harness.models.decoders import BahdanauDecoder, ConditionalGRUDecoder, GNMTDecoder, LuongDecoder, Memory
from harness.models.encoders import RNNEncoder


@dataclass
class ArchSpec:
    name: str
    build: Callable
    paper: str
    scores: list[str] | None  # None = every score function
    attention_types: tuple[str, ...] = ("global",)
    # how many words the attention query lags behind the target: 1 = the query of the step predicting y_t has
    # read y_{t-1} (Luong's h_t, the cgru's first GRU); 2 = it is the previous state, which has read only
    # y_{t-2} (RNNsearch's s_{i-1}, GNMT's bottom layer). shift-att alignment reads row t + query_lag.
    query_lag: int = 1


ARCHS: dict[str, ArchSpec] = {}


def register_arch(name: str, paper: str, scores=None, attention_types=("global",), query_lag: int = 1):
    def deco(fn):
        ARCHS[name] = ArchSpec(name, fn, paper, scores, attention_types, query_lag)
        return fn

    return deco


class Seq2Seq(nn.Module):
    def __init__(self, encoder: RNNEncoder, decoder: nn.Module, tgt_vocab_size: int):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.generator = nn.Linear(decoder.output_size, tgt_vocab_size)

    @property
    def has_attention(self) -> bool:
        return getattr(self.decoder.attention, "has_weights", False) if self.decoder.attention is not None else False

    def start(self, src: Tensor, src_lengths: Tensor) -> tuple[Memory, tuple]:
        enc = self.encoder(src, src_lengths)
        return self.decoder.prepare(enc), self.decoder.init_state(enc)

    def step(self, y_prev: Tensor, state, memory: Memory, t: int):
        """One decoder step: log-probabilities (B, V), new state, attention weights (B, S) or None."""
        logits, state, weights = self.step_logits(y_prev, state, memory, t)
        return torch.log_softmax(logits, dim=-1), state, weights

    def step_logits(self, y_prev: Tensor, state, memory: Memory, t: int):
        """`step` before the softmax: float logits (B, V). The searches take a word's log-probability as
        logit − logsumexp(logits) for the few words they keep, instead of normalising the whole vocabulary."""
        out, state, weights = self.decoder.step(y_prev, state, memory, t)
        return self.generator(out).float(), state, weights

    def forward(
        self, batch: Batch, teacher_forcing: float = 1.0, generator: torch.Generator | None = None, project=True
    ):
        """Teacher-forced logits (B, T, V) and attention (B, T, S) or None; with project=False the generator's
        input (B, T, D) instead of the logits (harness.train.loss applies it a chunk of tokens at a time).

        The output layer runs once over all time steps (one big matmul instead of T small ones).
        `teacher_forcing` < 1 feeds the model's own greedy prediction with probability 1 − p (scheduled
        sampling, Bengio et al. 2015) and always runs step by step.
        """
        memory, state = self.start(batch.src, batch.src_lengths)
        if teacher_forcing >= 1.0:
            fused = self.decoder.forward(batch.tgt_in, memory, state)
            if fused is not None:
                outs, weights = fused
                return (self.generator(outs) if project else outs), weights
        T = batch.tgt_in.size(1)
        outs, ws = [], []
        y = batch.tgt_in[:, 0]
        # teacher forcing: embed every step at once (one embedding backward instead of a dense (V, E) one per step)
        embs = self.decoder.embed(batch.tgt_in).unbind(1) if teacher_forcing >= 1.0 else None
        for t in range(T):
            out, state, w = self.decoder.step(y, state, memory, t, embs[t] if embs is not None else None)
            outs.append(out)
            ws.append(w)
            if t + 1 < T:
                y = batch.tgt_in[:, t + 1]
                if teacher_forcing < 1.0:
                    with torch.no_grad():
                        pred = self.generator(out).argmax(-1)
                    use_ref = torch.rand(y.shape, generator=generator, device=y.device) < teacher_forcing
                    y = torch.where(use_ref | (y == 0), y, pred)
        outs = torch.stack(outs, 1)
        weights = torch.stack(ws, 1) if ws[0] is not None else None
        return (self.generator(outs) if project else outs), weights


def _enc_hidden(cfg: ModelConfig, bidirectional: bool) -> int:
    if cfg.enc_hidden_size:
        return cfg.enc_hidden_size
    return cfg.hidden_size // 2 if bidirectional else cfg.hidden_size


def _uni_encoder(cfg: ModelConfig, src_vocab: int, cell: str) -> RNNEncoder:
    """The unidirectional stacked encoder of Sutskever, Cho-style and Luong models."""
    return RNNEncoder(
        src_vocab,
        cfg.emb_size,
        _enc_hidden(cfg, False),
        cfg.enc_layers,
        cell,
        "none",
        cfg.dropout,
        reverse_source=cfg.reverse_source,
    )


def _luong_decoder(cfg: ModelConfig, tgt_vocab: int, enc: RNNEncoder, cell: str, attn, input_feeding: bool):
    """The stacked decoder (LuongDecoder) of the Sutskever, Cho-style and Luong models, sized from the config
    and the encoder."""
    return LuongDecoder(
        tgt_vocab,
        cfg.emb_size,
        cfg.hidden_size,
        cfg.dec_layers,
        cell,
        attn,
        enc.output_size,
        enc.layer_sizes,
        cell,
        input_feeding=input_feeding,
        dropout=cfg.dropout,
        bridge=cfg.bridge,
    )


@register_arch("seq2seq", "Sutskever et al. 2014 (deep LSTM, no attention, reversed source)", scores=["none"])
def build_seq2seq(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    enc = _uni_encoder(cfg, src_vocab, "lstm")
    dec = _luong_decoder(cfg, tgt_vocab, enc, "lstm", None, input_feeding=False)
    return Seq2Seq(enc, dec, tgt_vocab)


@register_arch("seq2seq_attn", "Cho et al. 2014 GRU encoder-decoder + attention (any score function)")
def build_seq2seq_attn(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    enc = _uni_encoder(cfg, src_vocab, "gru")
    attn = build_attention(cfg.score, "global", cfg.hidden_size, enc.output_size, cfg)
    dec = _luong_decoder(cfg, tgt_vocab, enc, "gru", attn, input_feeding=False)
    return Seq2Seq(enc, dec, tgt_vocab)


def _bi_encoder(cfg: ModelConfig, src_vocab: int, cell: str = "gru") -> RNNEncoder:
    """RNNsearch's bidirectional GRU encoder (Bahdanau et al. 2015 App. A.2.1), also the cgru's (and, with
    model.enc_bidirectional, luong's)."""
    return RNNEncoder(
        src_vocab,
        cfg.emb_size,
        _enc_hidden(cfg, True),
        cfg.enc_layers,
        cell,
        "all",
        cfg.dropout,
        reverse_source=cfg.reverse_source,
    )


@register_arch(
    "bahdanau", "Bahdanau et al. 2015 RNNsearch (BiGRU, additive attention from s_{i-1}, maxout)", query_lag=2
)
def build_bahdanau(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    enc = _bi_encoder(cfg, src_vocab)
    attn = build_attention(cfg.score, "global", cfg.hidden_size, enc.output_size, cfg)
    maxout = cfg.maxout_size or cfg.hidden_size // 2
    dec = BahdanauDecoder(tgt_vocab, cfg.emb_size, cfg.hidden_size, attn, enc.output_size, maxout, cfg.dropout)
    return Seq2Seq(enc, dec, tgt_vocab)


@register_arch("cgru", "Sennrich et al. 2017 Nematus conditional GRU (BiGRU, attention after a first GRU read y_{j-1})")
def build_cgru(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    enc = _bi_encoder(cfg, src_vocab)
    attn = build_attention(cfg.score, "global", cfg.hidden_size, enc.output_size, cfg)
    maxout = cfg.maxout_size or cfg.hidden_size // 2
    dec = ConditionalGRUDecoder(tgt_vocab, cfg.emb_size, cfg.hidden_size, attn, enc.output_size, maxout, cfg.dropout)
    return Seq2Seq(enc, dec, tgt_vocab)


@register_arch(
    "luong",
    "Luong et al. 2015 (stacked LSTM, global/local attention, input feeding)",
    attention_types=("global", "local-m", "local-p"),
)
def build_luong(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    cell = cfg.rnn_cell or "lstm"  # model.rnn_cell / enc_bidirectional: OpenNMT-py's RNN (not Luong 2015)
    enc = _bi_encoder(cfg, src_vocab, cell) if cfg.enc_bidirectional else _uni_encoder(cfg, src_vocab, cell)
    attn = build_attention(cfg.score, cfg.attention_type, cfg.hidden_size, enc.output_size, cfg)
    dec = _luong_decoder(cfg, tgt_vocab, enc, cell, attn, cfg.input_feeding)
    return Seq2Seq(enc, dec, tgt_vocab)


@register_arch("gnmt", "Wu et al. 2016 GNMT (bi bottom encoder layer, residual stack, additive attention)", query_lag=2)
def build_gnmt(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    enc = RNNEncoder(
        src_vocab,
        cfg.emb_size,
        _enc_hidden(cfg, False),
        cfg.enc_layers,
        "lstm",
        "bottom",
        cfg.dropout,
        residual_from=cfg.residual_from,
        reverse_source=cfg.reverse_source,
    )
    # the bottom layer is bidirectional with H per direction (2H out), the next layer maps 2H -> H
    attn = build_attention(cfg.score, "global", cfg.hidden_size, enc.output_size, cfg)
    dec = GNMTDecoder(
        tgt_vocab, cfg.emb_size, cfg.hidden_size, cfg.dec_layers, attn, enc.output_size, cfg.residual_from, cfg.dropout
    )
    return Seq2Seq(enc, dec, tgt_vocab)


def build_model(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    model = ARCHS[cfg.arch].build(cfg, src_vocab, tgt_vocab)
    if cfg.init_uniform > 0:  # the papers' U(-r, r) for every parameter (config comment cites them)
        with torch.no_grad():
            for p in model.parameters():
                p.uniform_(-cfg.init_uniform, cfg.init_uniform)
            for m in model.modules():  # padding rows stay zero, as nn.Embedding makes them
                if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

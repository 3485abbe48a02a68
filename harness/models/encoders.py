"""RNN encoders as composable parts: GRU/LSTM, uni/bi, stacked, bidirectional bottom layer, residual, dropout.

Padding never reaches the recurrence: sequences are packed (pack_padded_sequence), so a sentence encodes
to the same states alone and inside a padded batch, and the backward direction starts at the real end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from harness.data.tokenize import PAD_ID


@dataclass
class EncoderOutput:
    states: Tensor  # (B, S, H_out) top-layer states h̄_s, in source order
    src_mask: Tensor  # (B, S) True on real tokens
    final_h: list[Tensor]  # per layer: (B, H_layer) final hidden state (bi: [fwd; bwd])
    final_c: list[Tensor] | None  # LSTM cells, same layout
    summary: Tensor  # (B, H_out) the single summary vector (top layer: last fwd state [; first bwd state])


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence within its real length (padding stays at the end). x: (B, S, ...)."""
    B, S = x.shape[:2]
    ar = torch.arange(S, device=x.device).unsqueeze(0).expand(B, S)
    idx = (lengths.unsqueeze(1) - 1 - ar).clamp_min(0)
    idx = torch.where(ar < lengths.unsqueeze(1), idx, ar)
    return x.gather(1, idx.view(B, S, *([1] * (x.dim() - 2))).expand_as(x))


def run_rnn(rnn: nn.RNNBase, x: Tensor, lengths: Tensor, hx=None):
    """Packed run of a (possibly multi-layer, bi) RNN; returns padded outputs and final states."""
    packed = pack_padded_sequence(x, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
    out, state = rnn(packed, hx)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    return out, state


class RNNEncoder(nn.Module):
    """Stack of RNN layers. `bidirectional`: "all", "bottom" (GNMT) or "none". Residual connections are added
    from layer `residual_from` (1-based) up where input and output sizes agree (Wu et al. 2016 §3.1)."""

    def __init__(
        self,
        vocab_size: int,
        emb_size: int,
        hidden_size: int,
        layers: int = 1,
        cell: str = "gru",
        bidirectional: str = "none",
        dropout: float = 0.0,
        residual_from: int = 0,
        reverse_source: bool = False,
    ):
        super().__init__()
        self.cell, self.layers, self.reverse_source = cell, layers, reverse_source
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.residual_from = residual_from
        # Uniform stacks run as one cuDNN/oneDNN multi-layer RNN (faster); mixed stacks layer by layer.
        self.fused = bidirectional in ("all", "none") and not residual_from
        dirs = 2 if bidirectional == "all" else 1
        if self.fused:
            self.rnn = rnn_cls(
                emb_size,
                hidden_size,
                num_layers=layers,
                batch_first=True,
                bidirectional=dirs == 2,
                dropout=dropout if layers > 1 else 0.0,
            )
            self.layer_sizes = [hidden_size * dirs] * layers
        else:
            self.rnns = nn.ModuleList()
            self.layer_sizes = []
            size = emb_size
            for i in range(layers):
                bi = bidirectional == "all" or (bidirectional == "bottom" and i == 0)
                self.rnns.append(rnn_cls(size, hidden_size, batch_first=True, bidirectional=bi))
                size = hidden_size * (2 if bi else 1)
                self.layer_sizes.append(size)
        self.bidirectional = bidirectional
        self.output_size = self.layer_sizes[-1]

    def _split_final(self, h: Tensor, n_layers: int, dirs: int) -> list[Tensor]:
        h = h.view(n_layers, dirs, h.size(-2), h.size(-1))  # (L, dirs, B, H)
        return [torch.cat(list(h[i]), dim=-1) for i in range(n_layers)]  # (B, dirs*H) per layer

    def forward(self, src: Tensor, src_lengths: Tensor) -> EncoderOutput:
        src_mask = src != PAD_ID
        if self.reverse_source:  # Sutskever et al. 2014 §3.3: reversing the source makes short-term dependencies
            src = reverse_padded(src, src_lengths)
        x = self.dropout(self.embedding(src))  # (B, S, E)
        final_h: list[Tensor] = []
        final_c: list[Tensor] | None = [] if self.cell == "lstm" else None
        if self.fused:
            x, state = run_rnn(self.rnn, x, src_lengths)
            dirs = 2 if self.bidirectional == "all" else 1
            h, c = state if self.cell == "lstm" else (state, None)
            final_h = self._split_final(h, self.layers, dirs)
            if c is not None:
                final_c = self._split_final(c, self.layers, dirs)
        else:
            for i, rnn in enumerate(self.rnns):
                inp = x
                out, state = run_rnn(rnn, inp, src_lengths)
                if self.residual_from and i + 1 >= self.residual_from and out.shape == inp.shape:
                    out = out + inp
                x = self.dropout(out) if i < len(self.rnns) - 1 else out
                dirs = 2 if rnn.bidirectional else 1
                h, c = state if self.cell == "lstm" else (state, None)
                final_h += self._split_final(h, 1, dirs)
                if c is not None:
                    final_c += self._split_final(c, 1, dirs)
        x = self.dropout(x)
        if self.reverse_source:  # back to source order, so attention position s is source word s
            x = reverse_padded(x, src_lengths)
        x = x.masked_fill(~src_mask.unsqueeze(-1), 0.0)
        return EncoderOutput(x, src_mask, final_h, final_c, final_h[-1])

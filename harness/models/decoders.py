"""Decoders: Luong (stacked RNN, attentional vector, input feeding; also the Sutskever and Cho-style GRU
decoders as special cases), Bahdanau (RNNsearch), the conditional GRU (Nematus), GNMT.

Every decoder exposes the same step interface, used by training, greedy and beam search alike:
  memory = decoder.prepare(enc)               once per sentence (precomputed keys, values, mask, summary)
  e      = decoder.embed(tokens)              target embeddings, dropout applied
  state  = decoder.init_state(enc)            tuple of batch-first tensors (so beam search can reorder them)
  out, state, weights = decoder.step(y_prev, state, memory, t, emb=None)
`out` (B, H_out) goes through the model's generator; `weights` (B, S) is the attention, or None; `emb` is
`decoder.embed(y_prev)` when the caller has embedded all steps at once (teacher forcing).
`decoder.forward(tgt_in, memory, state)` runs teacher-forced over all steps (a fused path where the
recurrence does not depend on attention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from harness.data.tokenize import PAD_ID
from harness.models.encoders import EncoderOutput


@dataclass
class Memory:
    keys: Tensor  # (B, S, ·) score-specific precomputation of the encoder states
    values: Tensor  # (B, S, Hv) encoder states h̄_s
    src_mask: Tensor  # (B, S)
    summary: Tensor  # (B, Hv)

    def select(self, idx: Tensor) -> Memory:
        return Memory(*(t.index_select(0, idx) for t in (self.keys, self.values, self.src_mask, self.summary)))


def stack_states(states: list[Tensor]) -> Tensor:  # per-layer (B, H) -> (B, L, H)
    return torch.stack(states, dim=1)


class Bridge(nn.Module):
    """Initial decoder state from the encoder's final states: layer k from encoder layer k (or the top one),
    through tanh(W ·) when the sizes differ (Bahdanau's s_0 = tanh(W_s h̄_1^←) is this with the backward half)."""

    def __init__(self, enc_sizes: list[int], dec_size: int, dec_layers: int, always: bool = False):
        super().__init__()
        self.dec_layers = dec_layers
        self.src = [min(k, len(enc_sizes) - 1) for k in range(dec_layers)]
        # always: tanh(W · + b) at every size (JoeyNMT's init_hidden "bridge", model.bridge=tanh)
        self.needs_tanh = [always or enc_sizes[s] != dec_size for s in self.src]
        self.proj = nn.ModuleList(
            [nn.Linear(enc_sizes[s], dec_size) if t else nn.Identity() for s, t in zip(self.src, self.needs_tanh)]
        )

    def forward(self, finals: list[Tensor]) -> Tensor:  # -> (B, L, H)
        out = []
        for k in range(self.dec_layers):
            h = self.proj[k](finals[self.src[k]])
            out.append(torch.tanh(h) if self.needs_tanh[k] else h)
        return stack_states(out)


class Decoder(nn.Module):
    """What every decoder shares: the memory it attends over, and how it embeds target tokens (subclasses set
    `attention`, `embedding` and `dropout`)."""

    def prepare(self, enc: EncoderOutput) -> Memory:
        keys = self.attention.precompute(enc.states) if self.attention is not None else enc.states[:, :0]
        return Memory(keys, enc.states, enc.src_mask, enc.summary)

    def embed(self, tokens: Tensor) -> Tensor:  # (B,) or (B, T) -> (B, E) or (B, T, E), dropout applied
        return self.dropout(self.embedding(tokens))

    use_tables = True  # decoding reads the embedding's share of the step's matmuls from per-word tables

    def _embedding_tables(self) -> dict[str, Tensor]:  # subclasses: {name: (V, ·) table}
        return {}

    def train(self, mode: bool = True):
        # the tables are rebuilt after every switch between training and evaluation: fused Adam updates the
        # weights without bumping their version counters, so the key below alone would not see its steps
        self._tables_key = None
        return super().train(mode)

    def tables(self) -> dict[str, Tensor] | None:
        """Decoding only (eval mode, no autograd): every matmul of a step whose input is E y_{t-1} alone, applied
        once to the whole embedding matrix, so a step looks its row up instead of multiplying (the same
        equations, fewer FLOPs per step; the values agree with the multiplication to float rounding). Rebuilt
        whenever a weight changes in place (another checkpoint, another device) and after every train()/eval()
        switch (the optimizer steps in between)."""
        if self.training or torch.is_grad_enabled() or not self.use_tables:
            return None
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in self.parameters())
        if getattr(self, "_tables_key", None) != key:
            self._tables = self._embedding_tables()
            self._tables_key = key
        return self._tables or None


def lstm_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step from its summed input and hidden projections (B, 4H), as torch.lstm_cell computes it:
    i, f, g, o = σ, σ, tanh, σ of the four chunks; c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c')."""
    i, f, g, o = gates.chunk(4, 1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c2), c2


def gru_update(gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """One GRU step from its precomputed input and hidden projections (B, 3H) each, as nn.GRUCell computes it:
    r, z = σ(gi_r + gh_r), σ(gi_z + gh_z); n = tanh(gi_n + r ⊙ gh_n); h' = (1 − z) ⊙ n + z ⊙ h."""
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n)  # = (1 - z) n + z h  (PyTorch GRU convention)


class LuongDecoder(Decoder):
    """Luong et al. 2015 §3: stacked RNN; attention on the top state h_t; h̃_t = tanh(W_c[c_t; h_t]) (eq. 5);
    p(y_t) = softmax(W_s h̃_t) (eq. 6); input feeding (§3.3): [emb(y_{t-1}); h̃_{t-1}] is the next input.

    With `attention=None` it is the Sutskever et al. 2014 decoder (no context, output = h_t); with a GRU
    cell and no input feeding it is the Cho-style decoder of `seq2seq_attn`.
    """

    def __init__(
        self,
        vocab_size,
        emb_size,
        hidden_size,
        layers,
        cell,
        attention,
        key_size,
        enc_sizes,
        enc_cell,
        input_feeding=True,
        dropout=0.0,
        bridge="auto",
    ):
        super().__init__()
        self.cell, self.layers, self.hidden_size = cell, layers, hidden_size
        self.attention = attention
        self.input_feeding = input_feeding and attention is not None
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        in_size = emb_size + (hidden_size if self.input_feeding else 0)
        self.rnn = rnn_cls(
            in_size, hidden_size, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        always = bridge == "tanh"
        self.bridge_h = Bridge(enc_sizes, hidden_size, layers, always)
        self.bridge_c = (
            Bridge(enc_sizes, hidden_size, layers, always) if cell == "lstm" and enc_cell == "lstm" else None
        )
        if attention is not None:
            self.W_c = nn.Linear(key_size + hidden_size, hidden_size, bias=False)
        self.output_size = hidden_size

    def init_state(self, enc: EncoderOutput) -> tuple[Tensor, ...]:
        h = self.bridge_h(enc.final_h)  # (B, L, H)
        c = self.bridge_c(enc.final_c) if self.bridge_c is not None else torch.zeros_like(h)
        feed = h.new_zeros(h.size(0), self.hidden_size)
        return (h, c, feed)

    def _rnn(self, x: Tensor, h: Tensor, c: Tensor):  # x (B, T, I); h, c (B, L, H)
        hx = h.transpose(0, 1).contiguous()
        if self.cell == "lstm":
            out, (h2, c2) = self.rnn(x, (hx, c.transpose(0, 1).contiguous()))
            return out, h2.transpose(0, 1), c2.transpose(0, 1)
        out, h2 = self.rnn(x, hx)
        return out, h2.transpose(0, 1), c

    def _attend(self, h_top: Tensor, memory: Memory, t: int):
        if self.attention is None:
            return h_top, None
        context, weights = self.attention(h_top, memory.keys, memory.values, memory.src_mask, t, memory.summary)
        attentional = torch.tanh(self.W_c(torch.cat([context, h_top], dim=-1)))  # h̃_t, eq. (5)
        return self.dropout(attentional), weights

    def _embedding_tables(self) -> dict[str, Tensor]:
        E = self.embedding.embedding_dim  # the bottom layer's input projection, embedding columns, and its bias
        w, b = self.rnn.weight_ih_l0, self.rnn.bias_ih_l0  # the rest of its columns, contiguous: h̃_{t-1}'s
        return {"gi": nn.functional.linear(self.embedding.weight, w[:, :E], b), "w_rest": w[:, E:].contiguous()}

    def _rnn_step(self, x: Tensor | None, h: Tensor, c: Tensor, tables: dict | None = None, y_prev=None):
        """The same stacked RNN (same weights) as `_rnn`, one step at a time through the cell kernels:
        about 2x faster per step on CPU than calling nn.LSTM on a length-1 sequence (measured). x (B, I); h, c
        (B, L, H). With `tables` (decoding), the bottom layer's input projection of the embedding is the table row
        of `y_prev`, and x is the rest of that layer's input (h̃_{t-1}, or None)."""
        hs, cs = [], []
        for k in range(self.layers):
            w = [getattr(self.rnn, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if k == 0 and tables is not None:
                gi = tables["gi"].index_select(0, y_prev)
                gi = gi if x is None else gi + nn.functional.linear(x, tables["w_rest"])
                gh = nn.functional.linear(h[:, k], w[1], w[3])
                if self.cell == "lstm":
                    hk, ck = lstm_update(gi + gh, c[:, k])
                    cs.append(ck)
                else:
                    hk = gru_update(gi, gh, h[:, k])
            elif self.cell == "lstm":
                hk, ck = torch.lstm_cell(x, (h[:, k], c[:, k]), *w)
                cs.append(ck)
            else:
                hk = torch.gru_cell(x, h[:, k], *w)
            hs.append(hk)
            # nn.LSTM/GRU apply dropout to every layer's output but the last
            x = nn.functional.dropout(hk, self.rnn.dropout, self.training) if k < self.layers - 1 else hk
        return x, torch.stack(hs, 1), (torch.stack(cs, 1) if cs else c)

    def step(self, y_prev: Tensor, state, memory: Memory, t: int, emb: Tensor | None = None):
        h, c, feed = state
        tables = self.tables() if emb is None else None
        if tables is not None:  # decoding: the embedding's share of the bottom layer's input is a table row
            out, h, c = self._rnn_step(feed if self.input_feeding else None, h, c, tables, y_prev)
        else:
            x = self.embed(y_prev) if emb is None else emb  # (B, E)
            if self.input_feeding:
                x = torch.cat([x, feed], dim=-1)
            out, h, c = self._rnn_step(x, h, c)
        attentional, weights = self._attend(self.dropout(out), memory, t)
        return attentional, (h, c, attentional), weights

    def forward(self, tgt_in: Tensor, memory: Memory, state):
        if self.input_feeding:
            return None  # the step loop is required (h̃_{t-1} feeds step t)
        h, c, _ = state
        out, _, _ = self._rnn(self.embed(tgt_in), h, c)  # (B, T, H), one fused call
        out = self.dropout(out)
        if self.attention is None:
            return out, None
        B, T, H = out.shape
        if getattr(self.attention, "window", None) is not None:  # local attention depends on t: per step
            outs, ws = zip(*(self._attend(out[:, t], memory, t) for t in range(T)))
            return torch.stack(outs, 1), torch.stack(ws, 1)
        # global attention for all T queries at once: (B*T) rows against the sentence's keys
        flat_q = out.reshape(B * T, H)
        rep = torch.arange(B, device=out.device).repeat_interleave(T)
        attentional, weights = self._attend(flat_q, memory.select(rep), 0)
        weights = weights.view(B, T, -1) if weights is not None else None  # score none: no weights
        return attentional.view(B, T, -1), weights


class BahdanauDecoder(Decoder):
    """Bahdanau et al. 2015, App. A.2.2 (RNNsearch): c_i from the previous state s_{i-1} (eq. 5-6);
    s_i = GRU([E y_{i-1}; c_i], s_{i-1}) (eq. 4); deep output t̃_i = U_o s_{i-1} + V_o E y_{i-1} + C_o c_i,
    maxout over pairs (t_i = max(t̃_{i,2j-1}, t̃_{i,2j})), p(y_i) = softmax(W_o t_i); s_0 = tanh(W_s h̄_1^←).
    With attention=None the context is the fixed summary vector (RNNenc, Cho et al. 2014)."""

    def __init__(self, vocab_size, emb_size, hidden_size, attention, key_size, maxout_size, dropout=0.0):
        super().__init__()
        self.attention = attention
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.cell = nn.GRUCell(emb_size + key_size, hidden_size)
        self.W_s = nn.Linear(key_size // 2 if key_size % 2 == 0 else key_size, hidden_size)
        self.key_size = key_size
        self.maxout_size = maxout_size
        self.U_o = nn.Linear(hidden_size, 2 * maxout_size)
        self.V_o = nn.Linear(emb_size, 2 * maxout_size, bias=False)
        self.C_o = nn.Linear(key_size, 2 * maxout_size, bias=False)
        self.output_size = maxout_size

    def init_state(self, enc: EncoderOutput):
        backward_first = enc.summary[:, self.key_size // 2 :]  # h̄_1^← : the backward half of the summary
        return (torch.tanh(self.W_s(backward_first)),)

    def _embedding_tables(self) -> dict[str, Tensor]:
        E, emb = self.embedding.embedding_dim, self.embedding.weight
        return {  # the GRU's input projection (embedding columns, with its bias) and the deep output's V_o E y
            "gi": nn.functional.linear(emb, self.cell.weight_ih[:, :E], self.cell.bias_ih),
            "vo": self.V_o(emb),
            "w_ic": self.cell.weight_ih[:, E:].contiguous(),  # the context's columns
        }

    def step(self, y_prev, state, memory: Memory, t: int, emb: Tensor | None = None):
        (s_prev,) = state
        tables = self.tables() if emb is None else None
        if self.attention is None:
            context, weights = memory.summary, None
        else:
            context, weights = self.attention(s_prev, memory.keys, memory.values, memory.src_mask, t, memory.summary)
        if tables is not None:  # decoding: the embedding's shares are table rows (the equations of `forward`)
            gi = tables["gi"].index_select(0, y_prev) + nn.functional.linear(context, tables["w_ic"])
            s = gru_update(gi, nn.functional.linear(s_prev, self.cell.weight_hh, self.cell.bias_hh), s_prev)
            t_tilde = self.U_o(s_prev) + tables["vo"].index_select(0, y_prev) + self.C_o(context)
        else:
            e = self.embed(y_prev) if emb is None else emb
            s = self.cell(torch.cat([e, context], dim=-1), s_prev)
            t_tilde = self.U_o(s_prev) + self.V_o(e) + self.C_o(context)  # (B, 2M)
        t_out = t_tilde.view(-1, self.maxout_size, 2).max(-1).values  # maxout
        return self.dropout(t_out), (s,), weights

    def forward(self, tgt_in, memory, state):
        """Teacher-forced steps with the same equations as `step`, restructured for speed: the embedding's
        share of the GRU input projection and the whole deep-output layer run once over all T steps;
        only the attention and the recurrence stay in the per-step loop."""
        (s,) = state
        E = self.embedding.embedding_dim
        e = self.embed(tgt_in)  # (B, T, E)
        w_ih = self.cell.weight_ih  # (3H, E + K): [embedding | context] columns
        gi_emb = nn.functional.linear(e, w_ih[:, :E], self.cell.bias_ih)  # (B, T, 3H)
        w_ic = w_ih[:, E:]
        gi_steps = gi_emb.unbind(1)  # one backward for all steps (slicing per step allocates a full-size grad each)
        prev_states, contexts, weights = [], [], []
        for t in range(tgt_in.size(1)):
            if self.attention is None:
                context, w = memory.summary, None
            else:
                context, w = self.attention(s, memory.keys, memory.values, memory.src_mask, t, memory.summary)
            gi = gi_steps[t] + nn.functional.linear(context, w_ic)
            gh = nn.functional.linear(s, self.cell.weight_hh, self.cell.bias_hh)
            prev_states.append(s)
            contexts.append(context)
            weights.append(w)
            s = gru_update(gi, gh, s)
        s_prev, ctx = torch.stack(prev_states, 1), torch.stack(contexts, 1)  # (B, T, H), (B, T, K)
        t_tilde = self.U_o(s_prev) + self.V_o(e) + self.C_o(ctx)  # (B, T, 2M)
        t_out = t_tilde.view(*t_tilde.shape[:2], self.maxout_size, 2).max(-1).values
        attn = torch.stack(weights, 1) if weights[0] is not None else None
        return self.dropout(t_out), attn


class ConditionalGRUDecoder(Decoder):
    """The conditional GRU of Nematus / dl4mt (Sennrich et al. 2017, "Nematus: a Toolkit for NMT", §2.2):
      s'_j = GRU_1(E y_{j−1}, s_{j−1})                      (a first GRU reads the previous word)
      c_j  = ATT(C, s'_j) = Σ_i α_ij h_i                    (attention from s'_j, which has read y_{j−1})
      s_j  = GRU_2(c_j, s'_j)                               (a second GRU reads the context)
      t̃_j = U_o s_j + V_o E y_{j−1} + C_o c_j, maxout over pairs, p(y_j) = softmax(W_o t_j)
      s_0  = tanh(W_init · mean_i h_i)                      (§2.1)
    Deviation: Nematus' deep output is tanh(·); we keep RNNsearch's maxout (Bahdanau et al. 2015 App. A.2.2) so
    that the cgru row differs from RNNsearch only in where the attention query comes from. Unlike RNNsearch's
    s_{i−1}, the query s'_j has read y_{j−1}: the attention can move on to the next source word at the step
    that predicts it (query lag 1). With attention=None the context is the fixed summary vector."""

    def __init__(self, vocab_size, emb_size, hidden_size, attention, key_size, maxout_size, dropout=0.0):
        super().__init__()
        self.attention = attention
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.gru_1 = nn.GRUCell(emb_size, hidden_size)
        self.gru_2 = nn.GRUCell(key_size, hidden_size)
        self.W_init = nn.Linear(key_size, hidden_size)
        self.maxout_size = maxout_size
        self.U_o = nn.Linear(hidden_size, 2 * maxout_size)
        self.V_o = nn.Linear(emb_size, 2 * maxout_size, bias=False)
        self.C_o = nn.Linear(key_size, 2 * maxout_size, bias=False)
        self.output_size = maxout_size

    def init_state(self, enc: EncoderOutput):
        mask = enc.src_mask.unsqueeze(-1).to(enc.states.dtype)  # (B, S, 1)
        mean = (enc.states * mask).sum(1) / mask.sum(1).clamp_min(1.0)  # (B, K); an empty source gives 0
        return (torch.tanh(self.W_init(mean)),)

    def _context(self, query: Tensor, memory: Memory, t: int):
        if self.attention is None:
            return memory.summary, None
        return self.attention(query, memory.keys, memory.values, memory.src_mask, t, memory.summary)

    def _output(self, s: Tensor, ve: Tensor, context: Tensor) -> Tensor:  # ve = V_o E y (.., 2M) -> (.., M)
        t_tilde = self.U_o(s) + ve + self.C_o(context)  # (.., 2M)
        return self.dropout(t_tilde.view(*t_tilde.shape[:-1], self.maxout_size, 2).max(-1).values)

    def _embedding_tables(self) -> dict[str, Tensor]:
        emb = self.embedding.weight  # GRU_1's input projection (with its bias) and the deep output's V_o E y
        return {"gi_1": nn.functional.linear(emb, self.gru_1.weight_ih, self.gru_1.bias_ih), "vo": self.V_o(emb)}

    def step(self, y_prev, state, memory: Memory, t: int, emb: Tensor | None = None):
        (s_prev,) = state
        tables = self.tables() if emb is None else None
        if tables is not None:  # decoding: GRU_1's input and V_o E y are table rows (the equations of `forward`)
            gh_1 = nn.functional.linear(s_prev, self.gru_1.weight_hh, self.gru_1.bias_hh)
            s_1 = gru_update(tables["gi_1"].index_select(0, y_prev), gh_1, s_prev)
            ve = tables["vo"].index_select(0, y_prev)
        else:
            e = self.embed(y_prev) if emb is None else emb
            s_1, ve = self.gru_1(e, s_prev), self.V_o(e)  # s'_j
        context, weights = self._context(s_1, memory, t)
        s = self.gru_2(context, s_1)
        return self._output(s, ve, context), (s,), weights

    def forward(self, tgt_in, memory, state):
        """Teacher-forced steps with the same equations as `step`: GRU_1's input projection of every embedding
        and the deep output run once over all T steps; attention and the two recurrences stay in the loop."""
        (s,) = state
        e = self.embed(tgt_in)  # (B, T, E)
        gi_1 = nn.functional.linear(e, self.gru_1.weight_ih, self.gru_1.bias_ih).unbind(1)  # T x (B, 3H)
        states, contexts, weights = [], [], []
        for t in range(tgt_in.size(1)):
            s_1 = gru_update(gi_1[t], nn.functional.linear(s, self.gru_1.weight_hh, self.gru_1.bias_hh), s)
            context, w = self._context(s_1, memory, t)
            s = self.gru_2(context, s_1)
            states.append(s)
            contexts.append(context)
            weights.append(w)
        out = self._output(torch.stack(states, 1), self.V_o(e), torch.stack(contexts, 1))  # (B, T, M)
        return out, torch.stack(weights, 1) if weights[0] is not None else None


class GNMTDecoder(Decoder):
    """Wu et al. 2016 §3 (Fig. 1): N LSTM layers; the attention context a_i is computed from the bottom
    layer's output of the previous step, y^1_{i-1}, and fed as extra input to every layer; residual
    connections from layer `residual_from` up; softmax on the top layer. Initial states are zero."""

    def __init__(self, vocab_size, emb_size, hidden_size, layers, attention, key_size, residual_from=3, dropout=0.0):
        super().__init__()
        self.attention, self.layers, self.hidden_size = attention, layers, hidden_size
        self.residual_from = residual_from
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        sizes = [emb_size] + [hidden_size] * (layers - 1)
        self.cells = nn.ModuleList([nn.LSTMCell(s + key_size, hidden_size) for s in sizes])
        self.output_size = hidden_size

    def init_state(self, enc: EncoderOutput):
        B = enc.states.size(0)
        z = enc.states.new_zeros(B, self.layers, self.hidden_size)
        return (z, z.clone())

    def _embedding_tables(self) -> dict[str, Tensor]:
        E, cell = self.embedding.embedding_dim, self.cells[0]
        return {
            "gi": nn.functional.linear(self.embedding.weight, cell.weight_ih[:, :E], cell.bias_ih),
            "w_ic": cell.weight_ih[:, E:].contiguous(),  # the context's columns
        }

    def step(self, y_prev, state, memory: Memory, t: int, emb: Tensor | None = None):
        h, c = state  # (B, L, H)
        query = h[:, 0]  # y^1_{i-1}: the bottom layer's previous output
        if self.attention is None:
            context, weights = memory.summary, None
        else:
            context, weights = self.attention(query, memory.keys, memory.values, memory.src_mask, t, memory.summary)
        x = self.embed(y_prev) if emb is None else emb
        tables = self.tables() if emb is None else None
        hs, cs = [], []
        for k, cell in enumerate(self.cells):
            if k == 0 and tables is not None:  # decoding: the bottom layer's embedding share is a table row
                gi = tables["gi"].index_select(0, y_prev) + nn.functional.linear(context, tables["w_ic"])
                hk, ck = lstm_update(gi + nn.functional.linear(h[:, 0], cell.weight_hh, cell.bias_hh), c[:, 0])
            else:
                hk, ck = cell(torch.cat([x, context], dim=-1), (h[:, k], c[:, k]))
            hs.append(hk)
            cs.append(ck)
            out = hk + x if (k + 1 >= self.residual_from and hk.shape == x.shape) else hk
            x = self.dropout(out)
        return x, (torch.stack(hs, 1), torch.stack(cs, 1)), weights

    def forward(self, tgt_in, memory, state):
        return None

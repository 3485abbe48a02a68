"""The matmul FLOPs of every architecture per target token (`harness bench`'s "GFLOP/tok" and the shapes its
matmul limit times: harness/bench/limit.py).

The FLOP model counts the embedding-free matmuls only (2·k·n FLOPs per row of a k→n projection):
encoder RNN (per source token), decoder RNN, attention (query projection, score and context ∝ S) and the
output layers (attentional vector / maxout, softmax projection). Per target token:
  forward = Σ_tgt terms + (S̄ / T̄) · Σ_src terms,  training ≈ 3 × forward (backward = 2 matmuls per matmul)
with S̄, T̄ the average source and target (+ </s>) lengths of the training data. Element-wise work (gates,
tanh, softmax), the optimizer and bridges (once per sentence) are left out: the limit is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError


@dataclass(frozen=True)
class Matmul:
    """One projection of the model: k inputs → n outputs, 2·k·n FLOPs per row.

    `per`: "src" (once per source token) or "tgt" (once per target token). `rows`: how many rows one call
    has as the code runs it — "B" (one decoder step), "BS" / "BT" (all positions of the batch at once); it
    only matters for timing. `batched`: a torch.bmm of B sentences, (1 × k)·(k × n) each (attention against
    the sentence's own encoder states). k or n = "S" stands for the average source length. `count`: copies
    (2 for the two directions of a bidirectional layer).
    """

    name: str
    part: str  # encoder | attention | decoder | output
    per: str
    k: int | str
    n: int | str
    rows: str = "B"
    batched: bool = False
    count: int = 1

    def size(self, S: float) -> tuple[float, float]:
        return (S if self.k == "S" else float(self.k)), (S if self.n == "S" else float(self.n))

    def flops(self, S: float) -> float:
        """Forward FLOPs per source token (per="src") or per target token (per="tgt")."""
        k, n = self.size(S)
        return 2.0 * k * n * self.count


def rnn_terms(
    name: str, part: str, per: str, cell: str, input_size: int, hidden: int, dirs: int = 1, fused: bool = True
) -> list[Matmul]:
    """A GRU (3 gates) or LSTM (4 gates) layer: W_ih x_t (precomputed over the sequence when `fused`) and
    W_hh h_{t-1} (one call per step)."""
    gates = {"gru": 3, "lstm": 4}[cell]
    seq_rows = "BS" if per == "src" else "BT"
    return [
        Matmul(f"{name} W_ih", part, per, input_size, gates * hidden, seq_rows if fused else "B", count=dirs),
        Matmul(f"{name} W_hh", part, per, hidden, gates * hidden, "B", count=dirs),
    ]


def score_terms(
    score: str,
    query_size: int,
    key_size: int,
    step_rows: str = "B",
    max_positions: int = 128,
    attention_type: str = "global",
) -> list[Matmul]:
    """Attention matmuls of one score function (harness/models/scores.py) plus the context vector."""
    if score == "none":
        return []
    from harness.models.scores import canonical_score  # (torch: imported when a FLOP model is built)

    score = canonical_score(score)
    q, k = query_size, key_size
    out: list[Matmul] = []
    if score == "additive":  # e = vᵀ tanh(W q + U h̄_s), U h̄_s precomputed per sentence
        out += [
            Matmul("attention U h̄ (precomputed)", "attention", "src", k, q, "BS"),
            Matmul("attention W q", "attention", "tgt", q, q, step_rows),
            Matmul("attention vᵀ tanh(·)", "attention", "tgt", q, "S", batched=True),
        ]
    elif score == "general":  # e = qᵀ (W h̄_s), W h̄_s precomputed
        out += [
            Matmul("attention W h̄ (precomputed)", "attention", "src", k, q, "BS"),
            Matmul("attention score qᵀ(W h̄)", "attention", "tgt", q, "S", batched=True),
        ]
    elif score == "location":
        out += [Matmul("attention W_a q", "attention", "tgt", q, max_positions, step_rows)]
    else:  # dot, scaled_dot, cosine
        out += [Matmul("attention score qᵀh̄", "attention", "tgt", q, "S", batched=True)]
    if attention_type == "local-p":  # p_t = S · sigmoid(v_pᵀ tanh(W_p h_t))
        out += [
            Matmul("attention W_p q", "attention", "tgt", q, q, step_rows),
            Matmul("attention v_p", "attention", "tgt", q, 1, step_rows),
        ]
    out.append(Matmul("attention context Σ a h̄", "attention", "tgt", "S", k, batched=True))
    return out


def model_matmuls(m, tgt_vocab: int) -> list[Matmul]:
    """The matmuls of one architecture (`m`: ModelConfig), mirroring harness/models/seq2seq.py builders."""
    E, H, V = m.emb_size, m.hidden_size, tgt_vocab
    terms: list[Matmul] = []

    def encoder(cell: str, hidden: int, bidirectional: str) -> int:
        size = E
        for layer in range(m.enc_layers):
            bi = bidirectional == "all" or (bidirectional == "bottom" and layer == 0)
            terms.extend(rnn_terms(f"encoder L{layer + 1}", "encoder", "src", cell, size, hidden, 2 if bi else 1))
            size = hidden * (2 if bi else 1)
        return size  # key size: the top layer's output

    def decoder_stack(cell: str, first_input: int, fused: bool) -> None:
        size = first_input
        for layer in range(m.dec_layers):
            terms.extend(rnn_terms(f"decoder L{layer + 1}", "decoder", "tgt", cell, size, H, fused=fused))
            size = H

    arch = m.arch
    if arch == "seq2seq":
        encoder("lstm", m.enc_hidden_size or H, "none")
        decoder_stack("lstm", E, fused=True)
        terms.append(Matmul("generator", "output", "tgt", H, V, "BT"))
    elif arch == "seq2seq_attn":
        key = encoder("gru", m.enc_hidden_size or H, "none")
        decoder_stack("gru", E, fused=True)
        terms += score_terms(m.score, H, key, "BT", m.max_positions)
        if m.score != "none":
            terms.append(Matmul("W_c [c; h]", "output", "tgt", key + H, H, "BT"))
        terms.append(Matmul("generator", "output", "tgt", H, V, "BT"))
    elif arch == "bahdanau":
        key = encoder("gru", m.enc_hidden_size or H // 2, "all")
        M = m.maxout_size or H // 2
        terms += score_terms(m.score, H, key, "B", m.max_positions)
        terms += rnn_terms("decoder GRUCell", "decoder", "tgt", "gru", E + key, H, fused=False)
        terms += [
            Matmul("maxout U_o s", "output", "tgt", H, 2 * M),
            Matmul("maxout V_o Ey", "output", "tgt", E, 2 * M),
            Matmul("maxout C_o c", "output", "tgt", key, 2 * M),
            Matmul("generator", "output", "tgt", M, V, "BT"),
        ]
    elif arch == "cgru":  # ConditionalGRUDecoder: GRU_1 reads E y, attention from its state, GRU_2 reads c
        key = encoder("gru", m.enc_hidden_size or H // 2, "all")
        M = m.maxout_size or H // 2
        terms += rnn_terms("decoder GRU_1", "decoder", "tgt", "gru", E, H, fused=True)  # W_ih E y: all steps at once
        terms += score_terms(m.score, H, key, "B", m.max_positions)
        terms += rnn_terms("decoder GRU_2", "decoder", "tgt", "gru", key, H, fused=False)
        terms += [
            Matmul("maxout U_o s", "output", "tgt", H, 2 * M, "BT"),
            Matmul("maxout V_o Ey", "output", "tgt", E, 2 * M, "BT"),
            Matmul("maxout C_o c", "output", "tgt", key, 2 * M, "BT"),
            Matmul("generator", "output", "tgt", M, V, "BT"),
        ]
    elif arch == "luong":
        cell = m.rnn_cell or "lstm"
        bi = m.enc_bidirectional
        key = encoder(cell, m.enc_hidden_size or (H // 2 if bi else H), "all" if bi else "none")
        feed = m.input_feeding and m.score != "none"
        rows = "B" if feed or m.attention_type != "global" else "BT"
        decoder_stack(cell, E + (H if feed else 0), fused=not feed)
        terms += score_terms(m.score, H, key, rows, m.max_positions, m.attention_type)
        if m.score != "none":
            terms.append(Matmul("W_c [c; h]", "output", "tgt", key + H, H, rows))
        terms.append(Matmul("generator", "output", "tgt", H, V, "BT"))
    elif arch == "gnmt":
        key = encoder("lstm", m.enc_hidden_size or H, "bottom")
        terms += score_terms(m.score, H, key, "B", m.max_positions)
        size = E
        for layer in range(m.dec_layers):
            terms += rnn_terms(f"decoder LSTMCell L{layer + 1}", "decoder", "tgt", "lstm", size + key, H, fused=False)
            size = H
        terms.append(Matmul("generator", "output", "tgt", H, V, "BT"))
    else:
        raise HarnessError(f"model.arch: no FLOP model for '{arch}' (harness/bench/flops.py model_matmuls)")
    return terms


def flops_per_target_token(terms: list[Matmul], avg_src: float, avg_tgt: float) -> dict:
    """Forward FLOPs per target token by part, the forward total and the training estimate (3×)."""
    by_part: dict[str, float] = {}
    for t in terms:
        f = t.flops(avg_src) * (avg_src / avg_tgt if t.per == "src" else 1.0)
        by_part[t.part] = by_part.get(t.part, 0.0) + f
    forward = sum(by_part.values())
    return {"by_part": by_part, "forward": forward, "train": 3.0 * forward}


def rows_of(term: Matmul, B: int, S: float, T: float) -> int:
    return max(1, round({"B": B, "BS": B * S, "BT": B * T}[term.rows]))

"""`harness bench` and `harness bench-peers`: training/decoding throughput, memory and the compute limit.

`harness bench` measures every architecture preset on Multi30k de→en (experiments/<preset>_multi30k.yaml),
each in a fresh subprocess so that its peak resident memory is its own:

  train   real optimizer steps of TranslationModule (loss → backward → gradient clipping → fused Adam) on real
          length-bucketed Multi30k batches; after `warmup` steps, `repeats` windows of `steps` steps each;
          target tokens/s (</s> included, padding excluded) per window → median [min, max]
  decode  greedy and beam-5 sentences/s on test_2016_flickr with the weights just trained (so hypotheses
          have realistic lengths; the hypothesis/reference length ratio is reported beside them)
  memory  ru_maxrss of the subprocess (data + model + training; and after decoding)
  limit   a matmul FLOP count per target token (below) and torch.mm / torch.bmm timed at the model's own
          shapes on this machine → the tokens/s the matmuls alone would allow; "% of limit" = measured / that.

The FLOP model counts the embedding-free matmuls only (2·k·n FLOPs per row of a k→n projection):
encoder RNN (per source token), decoder RNN, attention (query projection, score and context ∝ S) and the
output layers (attentional vector / maxout, softmax projection). Per target token:
  forward = Σ_tgt terms + (S̄ / T̄) · Σ_src terms,  training ≈ 3 × forward (backward = 2 matmuls per matmul)
with S̄, T̄ the average source and target (+ </s>) lengths of the training data. Element-wise work (gates,
tanh, softmax), the optimizer and bridges (once per sentence) are left out: the limit is an upper bound.

`harness bench-peers` trains OpenNMT-py and JoeyNMT beside this harness at one configuration; see
harness/bench/peers/__init__.py.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_text, write_json
from harness.paths import PROJECT_ROOT

PRESETS = ["seq2seq", "seq2seq_attn", "bahdanau2015", "luong2015", "gnmt2016"]


# ------------------------------------------------------------------------------------------ FLOP model
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
    score = {"concat": "additive", "bahdanau": "additive", "mlp": "additive"}.get(score, score)
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
    elif arch == "luong":
        key = encoder("lstm", m.enc_hidden_size or H, "none")
        feed = m.input_feeding and m.score != "none"
        rows = "B" if feed or m.attention_type != "global" else "BT"
        decoder_stack("lstm", E + (H if feed else 0), fused=not feed)
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
        raise HarnessError(f"model.arch: no FLOP model for '{arch}' (harness/bench/throughput.py model_matmuls)")
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


def _synchronizer(device):
    """torch.cuda.synchronize on a CUDA device (a timing must wait for the queued kernels), else a no-op."""
    import torch

    return torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)


def time_matmul(
    m: int, k: int, n: int, batched: bool = False, min_time: float = 0.03, device: str = "cpu", dtype=None
) -> float:
    """Best-of-3 GFLOP/s of torch.mm (m × k)·(k × n), or torch.bmm of m sentences (1 × k)·(k × n), on `device`
    in `dtype` (default float32; bfloat16 where training runs under bf16 autocast)."""
    import torch

    k, n = max(1, int(round(k))), max(1, int(round(n)))
    dtype = dtype or torch.float32
    sync = _synchronizer(device)
    with torch.no_grad():
        opts = {"device": device, "dtype": dtype}
        if batched:
            a, b = torch.randn(m, 1, k, **opts), torch.randn(m, k, n, **opts)
            fn = lambda: torch.bmm(a, b)  # noqa: E731
        else:
            a, b = torch.randn(m, k, **opts), torch.randn(k, n, **opts)
            fn = lambda: torch.mm(a, b)  # noqa: E731
        for _ in range(3):
            fn()
        sync()
        best = math.inf
        for _ in range(3):
            reps, t0 = 0, time.perf_counter()
            while True:
                fn()
                reps += 1
                sync()
                elapsed = time.perf_counter() - t0
                if elapsed >= min_time and reps >= 3:
                    break
            best = min(best, elapsed / reps)
    return 2.0 * m * k * n / best / 1e9


def compute_limit(
    terms: list[Matmul], B: int, avg_src: float, avg_tgt: float, min_time: float = 0.03, device: str = "cpu", dtype=None
) -> dict:
    """Time every matmul at its own shape: the training tokens/s the matmuls alone allow (3 × forward)."""
    seconds = 0.0  # forward matmul seconds per target token
    shapes = []
    cache: dict[tuple, float] = {}
    for t in terms:
        m = rows_of(t, B, avg_src, avg_tgt) if not t.batched else B
        k, n = t.size(avg_src)
        key = (m, round(k), round(n), t.batched)
        if key not in cache:
            cache[key] = time_matmul(m, k, n, t.batched, min_time, device, dtype)
        gflops = cache[key]
        per_tgt = t.flops(avg_src) * (avg_src / avg_tgt if t.per == "src" else 1.0)
        seconds += per_tgt / (gflops * 1e9)
        shapes.append(
            {
                "name": t.name,
                "part": t.part,
                "shape": f"({m}×{round(k)})·({round(k)}×{round(n)})" + (" bmm" if t.batched else ""),
                "count": t.count,
                "gflops": round(gflops, 2),
                "mflop_per_tgt_token": round(per_tgt / 1e6, 4),
            }
        )
    limit = 1.0 / (3.0 * seconds) if seconds > 0 else None
    return {"tokens_per_sec": limit, "shapes": shapes}


# ------------------------------------------------------------------------------------------ rendering
def _fmt(x, digits: int = 0, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}{unit}"


def render_bench_table(doc: dict) -> str:
    """The Markdown page of reports/bench/bench.md from bench.json."""
    s, mach = doc["settings"], doc["machine"]
    total_steps = max(s["warmup"] + s["repeats"] * s["steps"], s.get("decode_after", 0))
    devices = sorted({f"{r['device']} ({r.get('precision', '32')})" for r in doc["results"] if r.get("device")})
    lines = [
        "# harness bench: Multi30k de→en",
        "",
        *([f"Device: {', '.join(devices)}."] if devices and devices != ["cpu (32)"] else []),
        f"Machine: {mach.get('cpu', '?')}, {mach.get('threads', '?')} torch threads, "
        f"torch {mach.get('torch', '?')}; "
        f"load average at start {mach.get('load_start', '?')}, at end {mach.get('load_end', '?')}; "
        f"{mach.get('date', '')}.",
        f"Training: {s['warmup']} warm-up steps, then {s['repeats']} × {s['steps']} steps "
        f"(median [min–max] of the windows), batch {s.get('batch_size', '?')} sentences; decoding: "
        f"{s['decode_sentences'] or 'all'} sentences of {s['decode_split']} with the weights after {total_steps} "
        "training steps.",
        "",
        "| preset | params | train tok/s (median [min–max]) | GFLOP/tok (train) | matmul limit tok/s "
        "| % of limit | peak RSS train (MB) | greedy sent/s | beam-5 sent/s | hyp/ref length | BLEU greedy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        if r.get("error"):
            lines.append(f"| {r['preset']} | error: {r['error']} |||||||||| ")
            continue
        t, greedy, beam = r["train"], r["decode"]["greedy"], r["decode"]["beam5"]
        lim = r["compute_limit_tokens_per_sec"]
        pct = 100.0 * t["tokens_per_sec_median"] / lim if lim else None
        cells = [
            r["preset"],
            _fmt(r["params"]),
            f"{_fmt(t['tokens_per_sec_median'])} [{_fmt(t['tokens_per_sec_min'])}–{_fmt(t['tokens_per_sec_max'])}]",
            _fmt(r["flops"]["train"] / 1e9, 4),
            _fmt(lim),
            _fmt(pct, 1, "%"),
            _fmt(r["peak_rss_mb_train"]) + (f" (GPU {_fmt(r['peak_gpu_mb'])})" if r.get("peak_gpu_mb") else ""),
            _fmt(greedy["sentences_per_sec"], 1),
            _fmt(beam["sentences_per_sec"], 1),
            _fmt(greedy["length_ratio"], 2),
            _fmt(greedy["bleu"], 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "GFLOP/tok: matmul FLOPs per target token for one training step, 3 × forward (embedding-free: RNN, "
        "attention, output layers; element-wise work excluded). Matmul limit: the tokens/s these matmuls "
        "alone allow at the throughput torch.mm/torch.bmm reaches on this machine at the model's own shapes. "
        "Decoding runs as `harness evaluate` does: greedy in batches of decode.batch_size (64) sentences, "
        "beam 5 in batches of 64 // 5 = 12 sentences (60 hypotheses), with each preset's own length/coverage "
        "penalties (gnmt2016: α = β = 0.2). hyp/ref length: greedy output tokens / reference tokens. "
        "BLEU after so few steps only shows the models produce sentences, not their quality.",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- one preset (worker)
def bench_device(cfg):
    """The device and autocast dtype a preset is measured with, from the same keys `harness train` reads:
    train.accelerator (auto = CUDA when one is visible) and train.precision (32 or bf16-mixed)."""
    import torch

    acc = cfg.train.accelerator
    if acc in ("gpu", "cuda") and not torch.cuda.is_available():
        raise HarnessError(f"train.accelerator={acc}: no CUDA device is visible to torch {torch.__version__}")
    if cfg.train.precision == "16-mixed":
        raise HarnessError("train.precision=16-mixed: harness bench measures 32 or bf16-mixed (no loss scaling)")
    device = torch.device("cuda" if acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()) else "cpu")
    return device, (torch.bfloat16 if cfg.train.precision == "bf16-mixed" else None)


def _log(prefix: str, msg: str) -> None:
    print(f"[{prefix}] {msg}", file=sys.stderr, flush=True)


def _subset(split, n: int):
    from harness.data.datamodule import EncodedSplit

    if not n or n >= len(split.src_ids):
        return split
    return EncodedSplit(
        split.name,
        split.src_tokens[:n],
        split.tgt_tokens[:n],
        split.src_ids[:n],
        split.tgt_ids[:n],
        split.raw,
    )


def bench_preset(
    preset: str,
    steps: int,
    repeats: int,
    warmup: int,
    decode_sentences: int,
    data_file: str | None,
    overrides: list[str],
    min_time: float = 0.03,
    decode_after: int = 0,
) -> dict:
    """Measure one preset in this process (call it in a fresh subprocess for per-model peak memory).

    After the timed windows, training goes on untimed up to `decode_after` steps in all, so that decoding
    runs on weights whose outputs have realistic lengths (the hypothesis/reference length ratio is reported)."""
    import pickle

    import torch

    from harness.data.datamodule import TranslationDataModule, prepare
    from harness.decode.evaluate import decode_split
    from harness.experiment import load_config
    from harness.metrics.bleu import corpus_scores
    from harness.train.callbacks import peak_rss_mb
    from harness.train.module import TranslationModule

    path = PROJECT_ROOT / "experiments" / f"{preset}_multi30k.yaml"
    cfg = load_config(path, list(overrides) + ["tracking.wandb.mode=disabled"])
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    if data_file:
        with open(data_file, "rb") as f:
            data = pickle.load(f)
    else:
        data = prepare(cfg)
    _log(preset, f"data ready in {time.perf_counter() - t0:.1f}s")
    rss_data = peak_rss_mb()
    train_split = data.splits["train"]
    avg_src = statistics.fmean(len(s) for s in train_split.src_ids)
    avg_tgt = statistics.fmean(len(t) + 1 for t in train_split.tgt_ids)

    device, amp = bench_device(cfg)
    _log(preset, f"device {device}" + (f", {amp} autocast" if amp else ""))
    autocast = functools.partial(torch.autocast, device.type, dtype=amp or torch.float32, enabled=amp is not None)
    sync = _synchronizer(device)
    module = TranslationModule.build(cfg, data.src_vocab.itos, data.tgt_vocab.itos).to(device)
    module.train()
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    params = [p for p in module.parameters() if p.requires_grad]
    loader = TranslationDataModule(cfg, data).train_dataloader()
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epoch after epoch, reshuffled

    def train_step():
        """One optimizer step on the next batch (a timed step includes fetching and moving the batch)."""
        with autocast():
            loss, n_tokens = module.loss(next(batches).to(device), cfg.train.teacher_forcing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
        opt.step()
        return loss, n_tokens

    total = warmup + repeats * steps
    windows: list[dict] = []
    tokens = seconds = 0.0
    for step in range(total):
        sync()
        t_start = time.perf_counter()
        loss, n_tokens = train_step()
        sync()
        elapsed = time.perf_counter() - t_start
        if step < warmup:
            continue
        tokens += n_tokens
        seconds += elapsed
        if (step - warmup + 1) % steps == 0:
            windows.append({"tokens": int(tokens), "seconds": seconds, "tokens_per_sec": tokens / seconds})
            _log(
                preset,
                f"train window {len(windows)}/{repeats}: {tokens / seconds:,.0f} target tok/s "
                f"(loss {loss.detach().item():.2f}, step {step + 1}/{total})",
            )
            tokens = seconds = 0.0
    done = total
    while done < decode_after:  # untimed: only so that the decoded outputs have realistic lengths
        loss, _ = train_step()
        done += 1
        if done % 50 == 0 or done == decode_after:
            _log(
                preset, f"training on to {decode_after} steps before decoding: {done} (loss {loss.detach().item():.2f})"
            )
    rss_train = peak_rss_mb()
    rates = [w["tokens_per_sec"] for w in windows]

    module.eval()
    split_name = data.corpus.test_split
    split = _subset(data.splits[split_name], decode_sentences)
    refs = split.raw.tgt[: len(split.src_ids)]
    ref_len = sum(len(t) for t in split.tgt_tokens)
    decode = {}
    for label, beam in (("greedy", 1), ("beam5", 5)):
        with autocast():
            decode_split(module, _subset(split, 8), cfg, data.tgt_tok.decode, beam=beam, progress=False)  # warm-up
            sync()
            out = decode_split(module, split, cfg, data.tgt_tok.decode, beam=beam, progress=False)
        hyp_len = sum(len(t) for t in out.tokens)
        bleu = corpus_scores(out.texts, refs, cfg.data.lowercase).bleu
        decode[label] = {
            "beam": beam,
            "sentences": len(split.src_ids),
            "seconds": out.seconds,
            "sentences_per_sec": len(split.src_ids) / out.seconds,
            "length_ratio": hyp_len / max(1, ref_len),
            "bleu": bleu,
            "batch_sentences": cfg.decode.batch_size if beam == 1 else max(1, cfg.decode.batch_size // beam),
            "length_penalty_alpha": cfg.decode.length_penalty_alpha if beam > 1 else 0.0,
            "coverage_penalty_beta": cfg.decode.coverage_penalty_beta if beam > 1 else 0.0,
        }
        _log(
            preset,
            f"decode {label}: {decode[label]['sentences_per_sec']:.1f} sent/s "
            f"(hyp/ref length {decode[label]['length_ratio']:.2f}, BLEU {bleu:.1f})",
        )
    rss_end = peak_rss_mb()

    terms = model_matmuls(cfg.model, len(data.tgt_vocab))
    flops = flops_per_target_token(terms, avg_src, avg_tgt)
    limit = compute_limit(terms, cfg.train.batch_size, avg_src, avg_tgt, min_time, str(device), amp)
    gpu_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    _log(preset, f"matmul limit {limit['tokens_per_sec']:,.0f} tok/s at {flops['train'] / 1e6:.1f} MFLOP/token")
    return {
        "preset": preset,
        "config": str(path.relative_to(PROJECT_ROOT)),
        "arch": cfg.model.arch,
        "score": cfg.model.score,
        "params": module.params,
        "src_vocab": len(data.src_vocab),
        "tgt_vocab": len(data.tgt_vocab),
        "avg_src_len": avg_src,
        "avg_tgt_len": avg_tgt,
        "train": {
            "steps_timed": total,
            "steps_total": done,
            "windows": windows,
            "tokens_per_sec_median": statistics.median(rates) if rates else None,
            "tokens_per_sec_min": min(rates) if rates else None,
            "tokens_per_sec_max": max(rates) if rates else None,
            "final_loss": loss.detach().item(),
        },
        "peak_rss_mb_data": rss_data,
        "peak_rss_mb_train": rss_train,
        "peak_rss_mb_end": rss_end,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "precision": cfg.train.precision,
        "peak_gpu_mb": gpu_mb,
        "decode": decode,
        "flops": flops,
        "compute_limit_tokens_per_sec": limit["tokens_per_sec"],
        "matmul_shapes": limit["shapes"],
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------------------ profile
MATMUL_OPS = {
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::addmv",
    "aten::mv",
    "aten::dot",
    "aten::addbmm",
    "aten::mkldnn_rnn_layer",
    "aten::mkldnn_rnn_layer_backward",
    "aten::_mkldnn_linear",
}
ELEMENTWISE_OPS = {
    "add",
    "add_",
    "mul",
    "mul_",
    "sub",
    "rsub",
    "div",
    "div_",
    "tanh",
    "tanh_",
    "sigmoid",
    "sigmoid_",
    "tanh_backward",
    "sigmoid_backward",
    "masked_fill",
    "masked_fill_",
    "where",
    "_softmax",
    "_softmax_backward_data",
    "_log_softmax",
    "_log_softmax_backward_data",
    "max",
    "clamp",
    "clamp_min",
    "exp",
    "log",
    "neg",
    "addcmul_",
    "addcdiv_",
    "sqrt",
    "fill_",
    "zero_",
    "threshold_backward",
    "native_dropout",
    "native_dropout_backward",
    "bernoulli_",
    "eq",
    "ne",
    "lt",
    "gt",
    "ge",
    "le",
    "sum",
    "norm",
    "linalg_vector_norm",
    "_foreach_mul_",
    "_foreach_norm",
    "mean",
    "argmax",
    "topk",
    "logical_or",
    "bitwise_or",
    "gather",
    "scatter",
    "scatter_add_",
    "masked_fill_backward",
    "nll_loss_forward",
    "nll_loss_backward",
    "mul_backward",
    "_fused_adam_",
    "max_pool2d_with_indices_backward",
    "index_add_",
    "embedding_dense_backward",
}
LAYOUT_OPS = {
    "copy_",
    "cat",
    "stack",
    "index_select",
    "embedding",
    "contiguous",
    "clone",
    "_to_copy",
    "to",
    "empty",
    "empty_like",
    "zeros",
    "zeros_like",
    "full",
    "new_zeros",
    "new_full",
    "resize_",
    "as_strided",
    "view",
    "reshape",
    "transpose",
    "t",
    "permute",
    "unsqueeze",
    "squeeze",
    "select",
    "slice",
    "split",
    "unbind",
    "narrow",
    "expand",
    "_pack_padded_sequence",
    "_pad_packed_sequence",
    "index",
    "index_put_",
    "repeat_interleave",
    "arange",
    "set_",
    "detach",
    "_unsafe_view",
    "alias",
    "empty_strided",
}


def op_category(name: str) -> str:
    """matmul / elementwise (incl. reductions, softmax, the fused Adam kernel) / layout (copies, cat, index)
    / other aten ops. Composite ops (aten::linear, aten::gru_cell, ...) have little self time of their own."""
    if name in MATMUL_OPS:
        return "matmul"
    short = name.removeprefix("aten::")
    if short in ELEMENTWISE_OPS:
        return "elementwise"
    if short in LAYOUT_OPS:
        return "layout"
    return "other ops"


def summarize_profile(events, wall_s: float, top: int = 15) -> dict:
    """Self CPU time per op and per category; what is left of the wall time is Python, autograd engine and
    dispatcher overhead outside any aten op."""
    rows = []
    for e in events:
        if not e.key.startswith("aten::"):
            continue  # profiler annotations (ProfilerStep, Optimizer.step#...) nest aten ops: no self work
        rows.append({"op": e.key, "self_ms": e.self_cpu_time_total / 1000.0, "calls": e.count})
    rows.sort(key=lambda r: -r["self_ms"])
    total_ms = wall_s * 1000.0
    cats: dict[str, float] = {}
    for r in rows:
        cats[op_category(r["op"])] = cats.get(op_category(r["op"]), 0.0) + r["self_ms"]
    in_ops = sum(cats.values())
    cats["python/autograd/dispatch overhead"] = max(0.0, total_ms - in_ops)
    return {
        "wall_ms": total_ms,
        "categories": {
            k: {"ms": v, "percent": 100.0 * v / total_ms} for k, v in sorted(cats.items(), key=lambda kv: -kv[1])
        },
        "top_ops": [{**r, "percent": 100.0 * r["self_ms"] / total_ms} for r in rows[:top]],
        "aten_calls": sum(r["calls"] for r in rows),
    }


def profile_preset(preset: str, steps: int, overrides: list[str], data=None) -> dict:
    """torch.profiler over `steps` training steps (after 5 warm-up steps), greedy decoding of 2 × 64 test
    sentences and beam-5 decoding of 2 × 12 sentences (the harness defaults: 64 / beam per batch)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from harness.data.datamodule import TranslationDataModule, eval_batches, prepare
    from harness.decode.search import beam_search, greedy
    from harness.experiment import load_config
    from harness.train.module import TranslationModule

    cfg = load_config(
        PROJECT_ROOT / "experiments" / f"{preset}_multi30k.yaml",
        list(overrides) + ["tracking.wandb.mode=disabled"],
    )
    torch.manual_seed(cfg.seed)
    data = data or prepare(cfg)
    module = TranslationModule.build(cfg, data.src_vocab.itos, data.tgt_vocab.itos)
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    params = [p for p in module.parameters() if p.requires_grad]
    batches = iter(TranslationDataModule(cfg, data).train_dataloader())

    def train_step():
        batch = next(batches)
        loss, n = module.loss(batch, cfg.train.teacher_forcing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
        opt.step()
        return n

    module.train()
    for _ in range(5):
        train_step()
    out = {"preset": preset, "threads": torch.get_num_threads()}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        tokens = sum(train_step() for _ in range(steps))
        wall = time.perf_counter() - t0
    out["train"] = summarize_profile(prof.key_averages(), wall) | {
        "steps": steps,
        "tokens": tokens,
        "tokens_per_sec_profiled": tokens / wall,
    }
    _log(preset, f"profiled {steps} training steps")
    module.eval()
    split = data.splits[data.corpus.test_split]
    d = cfg.decode
    for label, beam, per_batch in (("greedy", 1, d.batch_size), ("beam5", 5, max(1, d.batch_size // 5))):
        todo = eval_batches(split, per_batch)
        todo = [todo[len(todo) // 2 - 1], todo[len(todo) // 2]]  # two batches of typical length

        def decode(b, beam=beam):
            if beam == 1:
                return greedy(module.model, b, d.max_len_ratio, d.max_len_add)
            return beam_search(module.model, b, beam, d.max_len_ratio, d.max_len_add)

        decode(todo[0])  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for b in todo:
                decode(b)
            wall = time.perf_counter() - t0
        n = sum(len(b) for b in todo)
        out[label] = summarize_profile(prof.key_averages(), wall) | {
            "sentences": n,
            "sentences_per_sec_profiled": n / wall,
        }
        _log(preset, f"profiled {label} decoding of {n} sentences")
    return out


def render_profile(docs: list[dict]) -> str:
    lines = ["# harness bench --profile: where the time goes (torch.profiler, CPU)", ""]
    for doc in docs:
        for phase in ("train", "greedy", "beam5"):
            p = doc[phase]
            what = (
                f"{p['steps']} training steps, {p['tokens_per_sec_profiled']:,.0f} tok/s under the profiler"
                if phase == "train"
                else f"{p['sentences']} sentences, {p['sentences_per_sec_profiled']:.1f} sent/s under the profiler"
            )
            lines += [
                f"## {doc['preset']}: {phase} ({what}; {p['aten_calls']:,} aten calls)",
                "",
                "| category | ms | % of wall |",
                "|---|---:|---:|",
            ]
            lines += [f"| {k} | {v['ms']:,.0f} | {v['percent']:.1f}% |" for k, v in p["categories"].items()]
            lines += ["", "| top op (self CPU) | calls | ms | % of wall |", "|---|---:|---:|---:|"]
            lines += [
                f"| {r['op']} | {r['calls']:,} | {r['self_ms']:,.1f} | {r['percent']:.1f}% |" for r in p["top_ops"]
            ]
            lines.append("")
    lines.append(
        "Categories: matmul = mm/addmm/bmm (the GEMMs); elementwise = pointwise ops, reductions, "
        "softmax, dropout, the fused Adam kernel; layout = copies, cat/stack, indexing, embedding "
        "lookups, views; overhead = wall time outside any aten op (Python, autograd engine, dispatcher)."
    )
    return "\n".join(lines) + "\n"


def run_profile(presets: list[str], steps: int, output: Path, overrides: list[str]) -> list[dict]:
    docs = [profile_preset(p, steps, overrides) for p in presets]
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "profile.json", docs)
    atomic_write_text(output / "profile.md", render_profile(docs))
    return docs


# ------------------------------------------------------------------------------------------ driver
def machine_info() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_start": _load(),
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    from harness.runs.provenance import git_commit

    return git_commit()


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _prepare_data_file(presets: list[str], overrides: list[str], tmp: Path) -> str | None:
    """Tokenize Multi30k once for all presets (they share one data section) and pickle it for the workers."""
    import pickle

    from harness.config import to_dict
    from harness.data.datamodule import prepare
    from harness.experiment import load_config

    cfgs = [load_config(PROJECT_ROOT / "experiments" / f"{p}_multi30k.yaml", overrides) for p in presets]
    if any(to_dict(c)["data"] != to_dict(cfgs[0])["data"] for c in cfgs):
        return None  # different data sections: every worker prepares its own
    print("bench: tokenizing Multi30k once for all presets ...", file=sys.stderr, flush=True)
    data = prepare(cfgs[0])
    path = tmp / "data.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    return str(path)


def run_bench(
    presets: list[str],
    steps: int,
    repeats: int,
    warmup: int,
    decode_sentences: int,
    output: Path,
    overrides: list[str],
    decode_after: int = 0,
) -> dict:
    for p in presets:
        if not (PROJECT_ROOT / "experiments" / f"{p}_multi30k.yaml").is_file():
            raise HarnessError(f"--archs: no preset experiments/{p}_multi30k.yaml (choose from {', '.join(PRESETS)})")
    doc = {
        "machine": machine_info(),
        "settings": {
            "presets": presets,
            "steps": steps,
            "repeats": repeats,
            "warmup": warmup,
            "decode_sentences": decode_sentences,
            "decode_after": decode_after,
            "decode_split": "test_2016_flickr",
            "overrides": overrides,
        },
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        data_file = _prepare_data_file(presets, overrides, Path(tmp))
        for i, preset in enumerate(presets):
            print(f"bench: [{i + 1}/{len(presets)}] {preset} (fresh process)", file=sys.stderr, flush=True)
            out = Path(tmp) / f"{preset}.json"
            job = {
                "preset": preset,
                "steps": steps,
                "repeats": repeats,
                "warmup": warmup,
                "decode_sentences": decode_sentences,
                "decode_after": decode_after,
                "data_file": data_file,
                "overrides": overrides,
            }
            r = subprocess.run(
                [sys.executable, "-m", "harness.bench.throughput", "worker", json.dumps(job), str(out)],
                cwd=PROJECT_ROOT,
            )
            if r.returncode != 0 or not out.is_file():
                doc["results"].append({"preset": preset, "error": f"worker exited with status {r.returncode}"})
                continue
            doc["results"].append(json.loads(out.read_text()))
    doc["machine"]["load_end"] = _load()
    if doc["results"] and "batch_size" not in doc["settings"]:
        from harness.experiment import load_config

        cfg = load_config(PROJECT_ROOT / "experiments" / f"{presets[0]}_multi30k.yaml", overrides)
        doc["settings"]["batch_size"] = cfg.train.batch_size
    write_bench(doc, output)
    return doc


def write_bench(doc: dict, output: Path) -> None:
    """reports/bench/bench.json (everything measured) and bench.md (the table), each written atomically."""
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "bench.json", doc)
    atomic_write_text(output / "bench.md", render_bench_table(doc))


def cmd_bench(args) -> int:
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        raise HarnessError("--steps and --repeats must be >= 1, --warmup >= 0")
    presets = [a.removesuffix("_multi30k") for a in args.archs]
    if args.profile:
        if args.archs == PRESETS:
            presets = ["bahdanau2015"]
        run_profile(presets, args.steps, Path(args.output), args.overrides)
        print((Path(args.output) / "profile.md").read_text())
        print(f"written: {Path(args.output) / 'profile.json'}, {Path(args.output) / 'profile.md'}")
        return 0
    doc = run_bench(
        presets,
        args.steps,
        args.repeats,
        args.warmup,
        args.decode_sentences,
        Path(args.output),
        args.overrides,
        args.decode_after,
    )
    print(render_bench_table(doc))
    print(f"written: {Path(args.output) / 'bench.json'}, {Path(args.output) / 'bench.md'}")
    return 0 if all(not r.get("error") for r in doc["results"]) else 1


def cmd_bench_peers(args) -> int:
    from harness.bench.peers import run_peers

    return run_peers(args)


def register(sub) -> None:
    s = sub.add_parser("bench", help="training/decoding speed, memory and the matmul limit of every preset")
    s.add_argument(
        "--archs",
        nargs="+",
        default=PRESETS,
        metavar="PRESET",
        help=f"presets on Multi30k (default: {' '.join(PRESETS)})",
    )
    s.add_argument("--steps", type=int, default=30, help="training steps per timed window (default 30)")
    s.add_argument("--repeats", type=int, default=3, help="timed windows; the median is reported (default 3)")
    s.add_argument("--warmup", type=int, default=5, help="untimed training steps first (default 5)")
    s.add_argument(
        "--decode-sentences",
        type=int,
        default=500,
        help="test_2016_flickr sentences to decode (0 = all 1000; default 500)",
    )
    s.add_argument(
        "--decode-after",
        type=int,
        default=300,
        help="train on (untimed) to this many steps before decoding, so outputs have realistic lengths (default 300)",
    )
    s.add_argument("--output", default="reports/bench", help="folder for bench.json and bench.md")
    s.add_argument(
        "--profile",
        action="store_true",
        help="instead: torch.profiler of --steps training steps and of decoding (default preset "
        "bahdanau2015) -> profile.json, profile.md",
    )
    s.add_argument("overrides", nargs="*", help="key=value overrides for every preset, e.g. train.batch_size=32")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("bench-peers", help="train OpenNMT-py, JoeyNMT and this harness at one configuration")
    s.add_argument("--steps", type=int, default=880, help="training steps for every toolkit (default 880 ≈ 2 epochs)")
    s.add_argument(
        "--toolkits",
        nargs="+",
        default=["harness", "opennmt", "joeynmt"],
        choices=["harness", "opennmt", "joeynmt"],
    )
    s.add_argument(
        "--cache",
        default=None,
        help="where the virtualenvs, data and runs go (default ~/.cache/attention-harness/peers)",
    )
    s.add_argument("--decode-sentences", type=int, default=0, help="test sentences to decode (0 = all)")
    s.add_argument("--skip-install", action="store_true", help="use the virtualenvs as they are")
    s.add_argument("--output", default="reports/bench", help="folder for peers.json and peers.md")
    s.set_defaults(func=cmd_bench_peers)


def _worker_main(argv: list[str]) -> int:
    job, out = json.loads(argv[0]), argv[1]
    from harness.cli import _quiet_libraries

    _quiet_libraries()
    result = bench_preset(
        job["preset"],
        job["steps"],
        job["repeats"],
        job["warmup"],
        job["decode_sentences"],
        job["data_file"],
        job["overrides"],
        decode_after=job.get("decode_after", 0),
    )
    write_json(out, result)
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "worker":
        sys.exit(_worker_main(sys.argv[2:]))
    print(
        "usage: harness bench ... (this module's own entry point is for its worker subprocesses)",
        file=sys.stderr,
    )
    sys.exit(2)

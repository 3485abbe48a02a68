"""peers.md: the three toolkits side by side, with how each figure is measured and what still differs."""

from __future__ import annotations

from harness.bench import HARNESS_NETWORKS, PEER_TOOLKITS

REFERENCE = (  # quoted in the issue: a 2-core machine, this configuration, 880 steps
    "OpenNMT-py ≈ 1,900 target tok/s training, 2.5 GB peak, 286 sent/s greedy, 95 sent/s beam 5, 26.7 BLEU; "
    "JoeyNMT ≈ 1,160 tok/s, 1.3 GB, 70 sent/s greedy, 33 sent/s beam 5; "
    "matmul FLOP limit at these shapes ≈ 3,300–3,600 tok/s"
)


ROWS = [
    ("train target tok/s", lambda r: r.get("train_tokens_per_sec"), 0, "higher"),
    ("peak RSS training, largest process (MB)", lambda r: r.get("peak_rss_mb"), 0, "lower"),
    ("peak RSS training, process tree (MB)", lambda r: r.get("peak_tree_rss_mb"), 0, "lower"),
    ("greedy sent/s", lambda r: r.get("greedy", {}).get("sentences_per_sec"), 1, "higher"),
    ("beam-5 sent/s", lambda r: r.get("beam5", {}).get("sentences_per_sec"), 1, "higher"),
    ("BLEU greedy", lambda r: r.get("greedy", {}).get("bleu"), 2, "higher"),
    ("BLEU beam 5", lambda r: r.get("beam5", {}).get("bleu"), 2, "higher"),
    ("parameters", lambda r: r.get("params"), 0, ""),
    ("training process wall (s)", lambda r: r.get("train_wall_s"), 0, "lower"),
]


OURS, PEERS = HARNESS_NETWORKS, PEER_TOOLKITS
# the ratio columns: each harness network against each peer; `harness-onmt` is OpenNMT-py's own network
RATIOS = [
    ("harness", "opennmt"),
    ("harness-onmt", "opennmt"),
    ("harness-onmt-lowmem", "opennmt"),
    ("harness", "joeynmt"),
    ("harness-joey", "joeynmt"),
]
OWN_NETWORK = {
    "opennmt": "its default RNN (bi-GRU 2×256, GRU 512, input feeding, MLP attention)",
    "joeynmt": "its recurrent model (bi-GRU 2×256, GRU 512, input feeding, Bahdanau attention, bridge)",
}


def render_peers_table(doc: dict) -> str:
    names = [n for n in (*OURS, *PEERS) if n in doc["results"]]
    ratios = [(a, b) for a, b in RATIOS if a in names and b in names]
    head = ["metric"] + names + [f"{a}/{b}" for a, b in ratios]
    lines = [
        f"# harness bench-peers: {doc['settings']['steps']} steps, Multi30k de→en",
        "",
        f"Machine: {doc['machine'].get('cpu', '?')}, {doc['machine'].get('cores', '?')} cores; "
        "load average at start "
        f"{doc['machine'].get('load_start', '?')}, at end {doc['machine'].get('load_end', '?')}; "
        f"{doc['machine'].get('date', '')}; harness commit {str(doc['machine'].get('git_commit') or '?')[:12]}. "
        f"torch {doc['machine'].get('torch', '?')} in every toolkit.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
        "| network | "
        + " | ".join(doc["results"][n].get("network") or OWN_NETWORK.get(n, "–") for n in names)
        + " |" * (len(ratios) + 1),
    ]
    for label, get, digits, _ in ROWS:
        vals = {n: (get(doc["results"][n]) if not doc["results"][n].get("error") else None) for n in names}
        cells = [label] + [("–" if vals[n] is None else f"{vals[n]:,.{digits}f}") for n in names]
        for a, b in ratios:
            cells.append(f"{vals[a] / vals[b]:.2f}×" if vals[a] is not None and vals[b] else "–")
        lines.append("| " + " | ".join(cells) + " |")
    for n in names:
        if doc["results"][n].get("error"):
            lines.append(f"\n{n}: error: {doc['results'][n]['error'].splitlines()[0]}")
    ref = doc.get("reference", "")
    lines += [
        "",
        f"Reference figures from the issue (2-core machine, this configuration, 880 steps): {ref}.",
        "",
        "How each figure is measured: training target tokens/s is each toolkit's own log (OpenNMT-py "
        "`tok/s` target side, JoeyNMT `Tokens per Sec`, the harness ThroughputMeter), averaged after the "
        "first window, no validation during training; peak RSS: the training process's ru_maxrss (its "
        "largest single process) and the summed RSS of its process tree sampled every 0.25 s (counts "
        "OpenNMT-py's DataLoader workers; shared pages count once per process); the harness process also "
        "evaluates the test set at the end; decoding is each toolkit's own "
        "decoding time for the test set, 64 sentences a batch, no length penalty, model loading excluded "
        "(OpenNMT-py reports it to 0.1 s). BLEU: every output detokenized by the same Moses detokenizer and "
        "scored by one sacrebleu call (lowercased, 13a) against the raw references.",
        "",
        "Differences that remain: " + doc["settings"]["differences"],
        "",
    ]
    return "\n".join(lines)


DIFFERENCES = (
    "`harness-onmt` is OpenNMT-py's network (same parameters to OpenNMT-py's 512 linear_out biases, same matmuls); "
    "`harness-onmt-lowmem` is `harness-onmt` with the two memory-for-speed flags (model.recompute_attention, "
    "train.loss_chunk_rows=256; same function and gradients); "
    "`harness-joey` is JoeyNMT's (the same with its bridge, s_0 = tanh(W [h̄_fwd; h̄_bwd] + b); same parameters to "
    "the bias of the harness's output layer, which JoeyNMT's lacks; same matmuls). `harness` is "
    "experiments/bahdanau2015_multi30k.yaml, the paper's RNNsearch decoder "
    "(attention from s_{i-1}, the context fed into the GRU, a 256-unit maxout deep output, s_0 = tanh(W_s h̄_1^←)), "
    "while OpenNMT-py and JoeyNMT run a Luong-style input-feeding decoder (GRU first, MLP attention on the "
    "new state, h̃ = tanh(W[c; s]) fed to the next step, softmax over W_o h̃ with 512 inputs); parameter "
    "initialisation is each toolkit's default (OpenNMT-py uniform ±0.1, JoeyNMT Xavier, the harness "
    "PyTorch defaults); the batches differ in order and bucketing; OpenNMT-py loads data in 2 DataLoader "
    "worker processes (its default), the others in the training process; decoding stops at 100 tokens "
    "for the peers and at 2·|x| + 10 for the harness."
)

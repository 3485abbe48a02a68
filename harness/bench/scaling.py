"""`harness bench --scaling`: how training and decoding cost grow with the work, beside the FLOP model.

One preset (default bahdanau2015) is measured at points along four axes, one axis at a time, the others at their
base values: source length (sentences of exactly that many tokens, targets as long), batch size (sentences),
target vocabulary, and hidden size (the preset's encoder and maxout sizes scaled in proportion, embeddings kept).
The data are random token ids of exactly those shapes, because cost depends on shapes, not on words; every point
runs in a fresh process, so its peak memory is its own. Per point:
- training: target tokens/s over `steps` optimizer steps (after `warmup`), the preset's optimizer and clipping;
- decoding: greedy and beam-5 sentences/s with </s> masked, so that every sentence decodes exactly |x| + 1
  steps (the search's own length limit at ratio 1): the points differ only in the work asked for;
- peak RSS of the process;
- the FLOP model's prediction (harness/bench/flops.py): forward and training FLOPs per target token, and the
  matmul limit (harness/bench/limit.py: the model's own matmul shapes timed on this machine) as the training
  tokens/s the matmuls alone allow.
Writes scaling.json (everything), scaling.md (a table per axis) and scaling.png (measured vs predicted).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.bench.flops import flops_per_target_token, model_matmuls
from harness.bench.limit import compute_limit
from harness.bench.machine import load_average, log, machine_info
from harness.bench.throughput import optimizer_step, preset_path
from harness.errors import HarnessError
from harness.io import atomic_write_bytes, atomic_write_text, write_json
from harness.paths import PROJECT_ROOT

AXES = {  # the ranges: source length 10…80, batch 16…256, target vocabulary 2k…32k, hidden 128…1024
    "src_len": [10, 20, 40, 60, 80],
    "batch": [16, 32, 64, 128, 256],
    "vocab": [2000, 4000, 8000, 16000, 32000],
    "hidden": [128, 256, 512, 1024],
}
BASE = {"src_len": 20, "batch": 64, "vocab": 8000, "hidden": 0}  # hidden 0 = the preset's own
LABELS = {
    "src_len": "source length (tokens)",
    "batch": "batch size (sentences)",
    "vocab": "target vocabulary",
    "hidden": "hidden size",
}
BEAM = 5
MIN_VOCAB = 8


def split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """Items of `--scaling`/`--scaling-base` that are config overrides (a dotted key: `model.emb_size=8`, which
    the command line gives to the option before them) apart from the axis items."""
    over = [i for i in items if "." in i.partition("=")[0]]
    return [i for i in items if i not in over], over


def parse_values(items: list[str], what: str, single: bool = False) -> dict[str, list[int]]:
    """`AXIS` or `AXIS=V1,V2,...` items (`single`: exactly `AXIS=V`) -> {axis: values}; one clear line for
    anything else."""
    out: dict[str, list[int]] = {}
    for item in items:
        name, _, vals = item.partition("=")
        if name not in AXES:
            form = "=V" if single else " (optionally =V1,V2,...)"
            raise HarnessError(f"{what} {item!r}: expected one of {', '.join(AXES)}{form}")
        if single and (not vals or "," in vals):
            raise HarnessError(f"{what} {item!r}: expected one value, e.g. {name}=32")
        try:
            values = [int(v) for v in vals.split(",")] if vals else list(AXES[name])
        except ValueError:
            raise HarnessError(f"{what} {item!r}: values must be integers, e.g. {name}=16,32") from None
        if not values or min(values) < 1:
            raise HarnessError(f"{what} {item!r}: values must be integers >= 1")
        out[name] = values
    return out


def _point_config(preset: str, point: dict, overrides: list[str]):
    from harness.experiment import load_config

    path = preset_path(preset)
    cfg = load_config(path, list(overrides) + ["tracking.wandb.mode=disabled"])
    m = cfg.model
    H = point["hidden"] or m.hidden_size
    scale = H / m.hidden_size
    sized = [
        f"model.hidden_size={H}",
        f"model.enc_hidden_size={max(1, round(m.enc_hidden_size * scale)) if m.enc_hidden_size else 0}",
        f"model.maxout_size={max(1, round(m.maxout_size * scale)) if m.maxout_size else 0}",
        "model.dropout=0.0",  # a random batch: dropout would only add noise to the timing
    ]
    return load_config(path, list(overrides) + ["tracking.wandb.mode=disabled", *sized])


def measure_point(preset: str, point: dict, steps: int, warmup: int, overrides: list[str]) -> dict:
    """Measure one point in this process (run it in a fresh subprocess for its own peak memory)."""
    import torch

    from harness.data.batch import Batch
    from harness.data.tokenize import BOS_ID, EOS_ID
    from harness.train.callbacks import peak_rss_mb
    from harness.train.module import TranslationModule

    cfg = _point_config(preset, point, overrides)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.seed)
    B, S, V = point["batch"], point["src_len"], point["vocab"]
    itos = [f"w{i}" for i in range(V)]
    module = TranslationModule.build(cfg, itos, itos)
    module.train()
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    params = [p for p in module.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(cfg.seed)
    words = torch.randint(4, V, (B, S), generator=gen)
    ys = torch.randint(4, V, (B, S), generator=gen)
    bos = torch.full((B, 1), BOS_ID, dtype=torch.long)
    eos = torch.full((B, 1), EOS_ID, dtype=torch.long)
    batch = Batch(words, torch.full((B,), S), torch.cat([bos, ys], 1), torch.cat([ys, eos], 1), torch.arange(B))
    seconds, tokens = 0.0, 0
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        _, n_tokens = optimizer_step(module, opt, params, batch, cfg)
        if step >= warmup:
            seconds += time.perf_counter() - t0
            tokens += n_tokens
    rss_train = peak_rss_mb()
    model = module.model.eval()
    with torch.no_grad():  # </s> never wins: every sentence decodes to its length limit, |x| + 1 steps
        model.generator.bias[EOS_ID] = -1e9
    decode = {}
    for label, beam in (("greedy", 1), ("beam5", BEAM)):
        per = B if beam == 1 else max(1, B // beam)  # about B decoder rows per step either way
        chunks = [_rows(batch, k, k + per) for k in range(0, B, per)]
        _decode(model, chunks[0], beam)  # warm-up
        t0 = time.perf_counter()
        lengths = [n for c in chunks for n in _decode(model, c, beam)]
        elapsed = time.perf_counter() - t0
        decode[label] = {
            "sentences_per_sec": B / elapsed,
            "seconds": elapsed,
            "batch_sentences": per,
            "mean_output_length": statistics.fmean(lengths),
        }
    terms = model_matmuls(cfg.model, V)
    flops = flops_per_target_token(terms, S, S + 1)
    limit = compute_limit(terms, B, S, S + 1)
    return {
        "point": point,
        "hidden_size": cfg.model.hidden_size,
        "params": module.params,
        "train_tokens_per_sec": tokens / seconds if seconds else None,
        "train_steps_timed": steps,
        "decode": decode,
        "peak_rss_mb_train": rss_train,
        "peak_rss_mb": peak_rss_mb(),
        "flops_per_token_forward": flops["forward"],
        "flops_per_token_train": flops["train"],
        "matmul_limit_tokens_per_sec": limit["tokens_per_sec"],
        "threads": torch.get_num_threads(),
    }


def _rows(batch, a: int, b: int):
    from harness.data.batch import Batch

    return Batch(*(t[a:b] for t in (batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out, batch.index)))


def _decode(model, batch, beam: int) -> list[int]:
    """Decode at length ratio 1 (limit |x| + 1 tokens with </s>); the output length of every sentence."""
    from harness.decode.search import beam_search, greedy

    if beam == 1:
        return [len(h.tokens) for h in greedy(model, batch, 1.0, 0)]
    return [len(h[0].tokens) for h in beam_search(model, batch, beam, 1.0, 0, early_stop=False)]


def run_scaling(
    preset: str,
    axes: dict[str, list[int]],
    base: dict[str, int],
    steps: int,
    warmup: int,
    output: Path,
    overrides: list[str],
) -> dict:
    preset_path(preset)
    base = {**BASE, **base}
    vocabs = [base["vocab"], *axes.get("vocab", [])]
    if min(vocabs) < MIN_VOCAB:  # before any worker starts: a one-line error, not a failed subprocess
        raise HarnessError(f"vocab {min(vocabs)}: expected at least {MIN_VOCAB} (4 special tokens and some words)")
    doc = {
        "machine": machine_info(),
        "settings": {
            "preset": preset,
            "base": base,
            "axes": axes,
            "steps": steps,
            "warmup": warmup,
            "overrides": overrides,
            "beam": BEAM,
        },
        "axes": {},
    }
    measured: dict[tuple, dict] = {}  # the base point is shared by every axis: measured once
    with tempfile.TemporaryDirectory(prefix="harness-scaling-") as tmp:
        for axis, values in axes.items():
            rows = []
            for v in values:
                point = {**base, axis: v}
                key = tuple(sorted(point.items()))
                if key not in measured:
                    others = ", ".join(f"{k}={x or 'preset'}" for k, x in point.items() if k != axis)
                    log("scaling", f"{axis}={v} ({others})")
                    out = Path(tmp) / f"{len(measured)}.json"
                    job = {"preset": preset, "point": point, "steps": steps, "warmup": warmup, "overrides": overrides}
                    r = subprocess.run(
                        [sys.executable, "-m", "harness.bench.scaling", "worker", json.dumps(job), str(out)],
                        cwd=PROJECT_ROOT,
                    )
                    measured[key] = (
                        json.loads(out.read_text())
                        if r.returncode == 0 and out.is_file()
                        else {"point": point, "error": f"worker exited with status {r.returncode}"}
                    )
                rows.append({"value": v, **measured[key]})
            doc["axes"][axis] = rows
    doc["machine"]["load_end"] = load_average()
    write_scaling(doc, output)
    return doc


def _fmt(x, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def render_scaling_table(doc: dict) -> str:
    s, mach = doc["settings"], doc["machine"]
    base = ", ".join(f"{k} {v if v else 'preset'}" for k, v in s["base"].items())
    lines = [
        f"# harness bench --scaling: {s['preset']}",
        "",
        f"Machine: {mach.get('cpu', '?')}, {mach.get('threads', '?')} torch threads, torch {mach.get('torch', '?')}; "
        f"load average at start {mach.get('load_start', '?')}, at end {mach.get('load_end', '?')}; "
        f"{mach.get('date', '')}; commit {str(mach.get('git_commit') or '?')[:12]}.",
        "",
        f"One axis at a time, the others at their base values ({base}); random token ids of exactly those shapes; "
        f"training over {s['steps']} steps after {s['warmup']} untimed; decoding with </s> masked, so every "
        "sentence decodes |x| + 1 steps. Matmul limit: the model's matmul shapes timed alone (an upper bound).",
    ]
    for axis, rows in doc["axes"].items():
        lines += [
            "",
            f"## {LABELS[axis]}",
            "",
            "| value | params | train tok/s | matmul limit tok/s | % of limit | train MFLOP/tok | greedy sent/s "
            "| beam-5 sent/s | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            if r.get("error"):
                lines.append(f"| {r['value']} | {r['error']} |||||||")
                continue
            tps, lim = r["train_tokens_per_sec"], r["matmul_limit_tokens_per_sec"]
            pct = 100 * tps / lim if tps and lim else None
            lines.append(
                f"| {r['value']} | {r['params']:,} | {_fmt(tps)} | {_fmt(lim)} | {_fmt(pct, 1)} "
                f"| {r['flops_per_token_train'] / 1e6:,.1f} | {_fmt(r['decode']['greedy']['sentences_per_sec'], 1)} "
                f"| {_fmt(r['decode']['beam5']['sentences_per_sec'], 1)} | {_fmt(r['peak_rss_mb'])} |"
            )
    return "\n".join(lines) + "\n"


def scaling_png(doc: dict) -> bytes:
    """One column per axis; rows: training tokens/s (measured, matmul limit), decoding sentences/s (greedy,
    beam 5), peak memory; log-log where the axis spans a factor of 4 or more."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = list(doc["axes"])
    fig, grid = plt.subplots(3, len(axes), figsize=(3.6 * len(axes), 8.4), squeeze=False)
    for j, axis in enumerate(axes):
        rows = [r for r in doc["axes"][axis] if not r.get("error")]
        x = [r["value"] for r in rows]
        series = [
            (0, "train tok/s", [r["train_tokens_per_sec"] for r in rows], "o-"),
            (0, "matmul limit", [r["matmul_limit_tokens_per_sec"] for r in rows], "s--"),
            (1, "greedy sent/s", [r["decode"]["greedy"]["sentences_per_sec"] for r in rows], "o-"),
            (1, "beam-5 sent/s", [r["decode"]["beam5"]["sentences_per_sec"] for r in rows], "^-"),
            (2, "peak RSS MB", [r["peak_rss_mb"] for r in rows], "o-"),
        ]
        for i, label, y, style in series:
            grid[i][j].plot(x, y, style, label=label)
        for i in range(3):
            ax = grid[i][j]
            if x and max(x) >= 4 * min(x):
                ax.set_xscale("log", base=2)
            if i < 2:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        grid[2][j].set_xlabel(LABELS[axis])
    grid[0][0].set_ylabel("training")
    grid[1][0].set_ylabel("decoding")
    grid[2][0].set_ylabel("memory")
    fig.suptitle(f"harness bench --scaling: {doc['settings']['preset']} ({doc['machine'].get('cpu', '?')})", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def write_scaling(doc: dict, output: Path) -> None:
    """scaling.json, scaling.md and scaling.png in `output`, each written atomically."""
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "scaling.json", doc)
    atomic_write_text(output / "scaling.md", render_scaling_table(doc))
    atomic_write_bytes(output / "scaling.png", scaling_png(doc))


def _worker_main(argv: list[str]) -> int:
    job, out = json.loads(argv[0]), argv[1]
    from harness.console import quiet_libraries

    quiet_libraries()
    write_json(out, measure_point(job["preset"], job["point"], job["steps"], job["warmup"], job["overrides"]))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "worker":
        sys.exit(_worker_main(sys.argv[2:]))
    print(
        "usage: harness bench --scaling ... (this module's own entry point is for its worker subprocesses)",
        file=sys.stderr,
    )
    sys.exit(2)

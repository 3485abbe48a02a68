"""`harness bench` and `harness bench-peers`: training/decoding throughput, memory and the compute limit.

`harness bench` measures every architecture preset on Multi30k de→en (experiments/<preset>_multi30k.yaml),
each in a fresh subprocess so that its peak resident memory is its own:

  train   real optimizer steps of TranslationModule (loss → backward → gradient clipping → fused Adam) on real
          length-bucketed Multi30k batches; after `warmup` steps, `repeats` windows of `steps` steps each;
          target tokens/s (</s> included, padding excluded) per window → median [min, max]
  decode  greedy and beam-5 sentences/s on test_2016_flickr with the weights just trained (so hypotheses
          have realistic lengths; the hypothesis/reference length ratio is reported beside them)
  memory  ru_maxrss of the subprocess (data + model + training; and after decoding)
  limit   a matmul FLOP count per target token (flops.py) and torch.mm / torch.bmm timed at the model's own
          shapes on this machine → the tokens/s the matmuls alone would allow; "% of limit" = measured / that.

The FLOP model is harness/bench/flops.py, the limit harness/bench/limit.py, `--profile` harness/bench/profile.py;
`harness bench-peers` trains OpenNMT-py and JoeyNMT beside this harness at one configuration (harness/bench/peers/).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.bench.flops import flops_per_target_token, model_matmuls
from harness.bench.limit import compute_limit, synchronizer
from harness.bench.machine import load_average, log, machine_info
from harness.errors import HarnessError
from harness.io import atomic_write_text, write_json
from harness.paths import PROJECT_ROOT

PRESETS = ["seq2seq", "seq2seq_attn", "bahdanau2015", "cgru", "luong2015", "gnmt2016"]


def preset_path(preset: str) -> Path:
    """experiments/<preset>_multi30k.yaml, or a one-line error naming the presets there are."""
    path = PROJECT_ROOT / "experiments" / f"{preset}_multi30k.yaml"
    if not path.is_file():
        raise HarnessError(f"--archs: no preset experiments/{preset}_multi30k.yaml (choose from {', '.join(PRESETS)})")
    return path


def optimizer_step(module, opt, params, batch, cfg, autocast=contextlib.nullcontext):
    """One training step as `harness train` takes it: the loss (under `autocast`), backward, the config's gradient
    clipping, the optimizer step. Returns the loss and the batch's target tokens."""
    import torch

    with autocast():
        loss, n_tokens = module.loss(batch, cfg.train.teacher_forcing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.train.grad_clip:
        torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
    opt.step()
    return loss, n_tokens


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
    log(preset, f"data ready in {time.perf_counter() - t0:.1f}s")
    rss_data = peak_rss_mb()
    train_split = data.splits["train"]
    avg_src = statistics.fmean(len(s) for s in train_split.src_ids)
    avg_tgt = statistics.fmean(len(t) + 1 for t in train_split.tgt_ids)

    device, amp = bench_device(cfg)
    log(preset, f"device {device}" + (f", {amp} autocast" if amp else ""))
    autocast = functools.partial(torch.autocast, device.type, dtype=amp or torch.float32, enabled=amp is not None)
    sync = synchronizer(device)
    module = TranslationModule.build(cfg, data.src_vocab.itos, data.tgt_vocab.itos).to(device)
    module.train()
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    params = [p for p in module.parameters() if p.requires_grad]
    loader = TranslationDataModule(cfg, data).train_dataloader()
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epoch after epoch, reshuffled

    def train_step():
        """One optimizer step on the next batch (a timed step includes fetching and moving the batch)."""
        return optimizer_step(module, opt, params, next(batches).to(device), cfg, autocast)

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
            log(
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
            log(
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
        log(
            preset,
            f"decode {label}: {decode[label]['sentences_per_sec']:.1f} sent/s "
            f"(hyp/ref length {decode[label]['length_ratio']:.2f}, BLEU {bleu:.1f})",
        )
    rss_end = peak_rss_mb()

    terms = model_matmuls(cfg.model, len(data.tgt_vocab))
    flops = flops_per_target_token(terms, avg_src, avg_tgt)
    limit = compute_limit(terms, cfg.train.batch_size, avg_src, avg_tgt, min_time, str(device), amp)
    gpu_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    log(preset, f"matmul limit {limit['tokens_per_sec']:,.0f} tok/s at {flops['train'] / 1e6:.1f} MFLOP/token")
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
        preset_path(p)
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
    doc["machine"]["load_end"] = load_average()
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


def _worker_main(argv: list[str]) -> int:
    job, out = json.loads(argv[0]), argv[1]
    from harness.console import quiet_libraries

    quiet_libraries()
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

"""`harness bench --profile`: where the time of training and decoding goes, from torch.profiler's self CPU time per
aten op, grouped into matmul / elementwise / layout / other ops and the Python/autograd/dispatch overhead left."""

from __future__ import annotations

import time
from pathlib import Path

from harness.bench.machine import log
from harness.io import atomic_write_text, write_json
from harness.paths import PROJECT_ROOT

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
    log(preset, f"profiled {steps} training steps")
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
        log(preset, f"profiled {label} decoding of {n} sentences")
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

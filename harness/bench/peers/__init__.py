"""`harness bench-peers`: OpenNMT-py 3.5.1, JoeyNMT 2.3.0 and this harness trained one after the other at
one configuration (harness/bench/peers/configs.py), same data, same number of steps; the harness three times, as
its own RNNsearch preset and as each peer's network (`harness-onmt`, `harness-joey`: same parameters and matmuls);
training target
tokens/s, peak resident memory, greedy and beam-5 decoding speed on test_2016_flickr, and test BLEU, every toolkit's
output scored by the same sacrebleu call against the same raw references.

Everything the peers need lives under a cache folder (default ~/.cache/attention-harness/bench/peers/): one
virtualenv per toolkit (torch pinned to this project's version in each: OpenNMT-py 3.5.1 pins torch<2.3,
so it is installed with --no-deps and then its other requirements), the tokenized data, configs, logs,
checkpoints and hypotheses. Both peers load their own checkpoints with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
(torch >= 2.6 defaults to weights_only loading, which their pickled checkpoints do not pass).

Measurements, the same way for all three: each training runs in its own process and its peak memory is
that process's ru_maxrss (os.wait4; the largest single process) and the peak of the summed RSS of its
process tree (sampled from /proc every 0.25 s: OpenNMT-py loads data in worker processes); training
tokens/s is each toolkit's own logged target tokens/s
(validation excluded: none runs during training) averaged over the log windows after the first; decoding
sentences/s is the toolkit's own decoding time (model loading excluded) for the test set, 64 sentences a
batch, beam 5 with no length penalty.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.bench import TOOLKIT_NAMES
from harness.bench.machine import load_average, machine_info
from harness.bench.peers.configs import HARNESS_PRESET
from harness.bench.peers.install import TOOLKITS, install, venv_python
from harness.bench.peers.measure import say
from harness.bench.peers.table import DIFFERENCES, REFERENCE, render_peers_table
from harness.bench.peers.toolkits import prepare_data, run_harness, run_joeynmt, run_opennmt
from harness.errors import HarnessError
from harness.io import atomic_write_text, write_json
from harness.paths import cache_dir


def run_peers(
    steps: int = 880,
    toolkits: list[str] | tuple[str, ...] = TOOLKIT_NAMES,
    cache: str | Path | None = None,
    decode_sentences: int = 0,
    skip_install: bool = False,
    output: str | Path = "reports/bench",
) -> int:
    """`harness bench-peers`: install, train and decode every toolkit, write peers.json and peers.md."""
    root = Path(cache) if cache else cache_dir() / "peers"
    root.mkdir(parents=True, exist_ok=True)
    if steps < 1:
        raise HarnessError("--steps must be >= 1")
    pythons = {}
    for name in toolkits:
        if name in TOOLKITS:
            tk = TOOLKITS[name]
            pythons[name] = venv_python(root, name) if skip_install else install(tk, root)
            if not pythons[name].is_file():
                raise HarnessError(f"{pythons[name]}: missing (run without --skip-install)")
    cfg, data, dpath = prepare_data(root)
    refs = data.splits[data.corpus.test_split].raw.tgt
    if decode_sentences:
        raise HarnessError("--decode-sentences: the peers always decode the whole test set; leave it at 0")
    doc = {
        "machine": machine_info(),
        "settings": {
            "steps": steps,
            "toolkits": toolkits,
            "cache": str(root),
            "harness_preset": HARNESS_PRESET,
            "test_split": data.corpus.test_split,
            "test_sentences": len(refs),
            "train_pairs": len(data.splits["train"].src_ids),
            "harness_vocab": {"src": len(data.src_vocab), "tgt": len(data.tgt_vocab)},
            "differences": DIFFERENCES,
        },
        "reference": REFERENCE,
        "results": {},
    }
    runners = {
        "harness": lambda: run_harness(root, steps, data, refs),
        "harness-onmt": lambda: run_harness(root, steps, data, refs, "harness-onmt"),
        "harness-joey": lambda: run_harness(root, steps, data, refs, "harness-joey"),
        "harness-onmt-lowmem": lambda: run_harness(root, steps, data, refs, "harness-onmt-lowmem"),
        "opennmt": lambda: run_opennmt(pythons["opennmt"], root, dpath, steps, data, refs),
        "joeynmt": lambda: run_joeynmt(pythons["joeynmt"], root, dpath, steps, data, refs),
    }
    failed = False
    for name in toolkits:
        t0 = time.perf_counter()
        try:
            doc["results"][name] = runners[name]()
        except HarnessError as e:
            failed = True
            say(f"{name}: {e}")
            doc["results"][name] = {"error": str(e)}
        r = doc["results"][name]
        if not r.get("error"):
            say(
                f"{name} done in {time.perf_counter() - t0:.0f}s: "
                f"{r['train_tokens_per_sec'] or 0:,.0f} tok/s, "
                f"{r['peak_rss_mb']:,.0f} MB, greedy {r['greedy']['sentences_per_sec'] or 0:.1f} sent/s "
                f"(BLEU {r['greedy']['bleu']:.2f}), beam 5 {r['beam5']['sentences_per_sec'] or 0:.1f} sent/s "
                f"(BLEU {r['beam5']['bleu']:.2f})"
            )
    doc["machine"]["load_end"] = load_average()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "peers.json", doc)
    atomic_write_text(out / "peers.md", render_peers_table(doc))
    print(render_peers_table(doc))
    print(f"written: {out / 'peers.json'}, {out / 'peers.md'}")
    return 1 if failed else 0

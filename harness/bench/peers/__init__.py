"""`harness bench-peers`: OpenNMT-py 3.5.1, JoeyNMT 2.3.0 and this harness trained one after the other at
one configuration (harness/bench/peers/configs.py), same data, same number of steps; training target tokens/s,
peak resident memory, greedy and beam-5 decoding speed on test_2016_flickr, and test BLEU, every toolkit's
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

import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.bench.peers.configs import HARNESS_PRESET, harness_overrides, joeynmt_config, opennmt_config
from harness.errors import HarnessError
from harness.io import atomic_write_text, write_json
from harness.paths import PROJECT_ROOT, cache_dir

TORCH_PIN = "torch==2.13.0"


@dataclass
class Toolkit:
    name: str
    package: str  # pip requirement
    no_deps: bool  # install the package alone, then its requirements except torch
    extra: tuple[str, ...] = ()  # imported but not declared by the package


TOOLKITS = {
    "opennmt": Toolkit("opennmt", "OpenNMT-py==3.5.1", True),
    "joeynmt": Toolkit("joeynmt", "joeynmt==2.3.0", False, ("importlib_metadata",)),
}

REFERENCE = (  # quoted in the issue: a 2-core machine, this configuration, 880 steps
    "OpenNMT-py ≈ 1,900 target tok/s training, 2.5 GB peak, 286 sent/s greedy, 95 sent/s beam 5, 26.7 BLEU; "
    "JoeyNMT ≈ 1,160 tok/s, 1.3 GB, 70 sent/s greedy, 33 sent/s beam 5; "
    "matmul FLOP limit at these shapes ≈ 3,300–3,600 tok/s"
)


def say(msg: str) -> None:
    print(f"bench-peers: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ processes
@dataclass
class Measured:
    returncode: int
    wall_s: float
    peak_rss_mb: float  # ru_maxrss: the largest single process of the tree
    log: Path
    lines: list[str] = field(default_factory=list)
    peak_tree_rss_mb: float | None = None  # the sum over the process and its children, sampled


def tree_rss_mb(root_pid: int) -> float:
    """Resident memory of a process and its descendants (/proc; shared pages count once per process)."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            parent[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier += kids
    return sum(rss.get(p, 0) for p in tree) / 2**20


def run_measured(
    cmd: list[str], log: Path, env: dict | None = None, echo: re.Pattern | None = None, prefix: str = ""
) -> Measured:
    """Run a command with its output in `log`; its own peak RSS from os.wait4 (children included)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full_env,
        text=True,
        errors="replace",
        cwd=PROJECT_ROOT,
    )
    lines: list[str] = []

    def pump():
        with open(log, "w") as f:
            for line in proc.stdout:
                f.write(line)
                lines.append(line.rstrip("\n"))
                if echo is not None and echo.search(line):
                    print(f"  {prefix}{line.rstrip()[-160:]}", file=sys.stderr, flush=True)

    peak_tree = [0.0]
    done = threading.Event()

    def sample():  # every 0.25 s: the process tree's summed RSS (DataLoader workers are separate processes)
        while not done.wait(0.25):
            peak_tree[0] = max(peak_tree[0], tree_rss_mb(proc.pid))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    sampler = threading.Thread(target=sample, daemon=True) if sys.platform.startswith("linux") else None
    if sampler is not None:
        sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if sampler is not None:
        sampler.join()
    return Measured(proc.returncode, wall, usage.ru_maxrss / 1024, log, lines, peak_tree[0] or None)


def check(m: Measured, what: str) -> Measured:
    if m.returncode != 0:
        tail = "\n".join(m.lines[-15:])
        raise HarnessError(f"{what} failed (exit status {m.returncode}); see {m.log}:\n{tail}")
    return m


# ------------------------------------------------------------------------------------------ install
def venv_python(root: Path, name: str) -> Path:
    return root / name / "bin" / "python"


def install(tk: Toolkit, root: Path) -> Path:
    """One virtualenv per toolkit under `root`, torch pinned; a stamp file makes reruns instant."""
    venv = root / tk.name
    python = venv_python(root, tk.name)
    stamp = venv / ".bench-peers-installed"
    spec = " ".join([tk.package, TORCH_PIN, *tk.extra])
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == spec:
        return python
    say(f"installing {tk.package} with {TORCH_PIN} into {venv} (a few minutes) ...")
    log = root / "logs" / f"install-{tk.name}.log"
    if not python.is_file():
        check(run_measured([sys.executable, "-m", "venv", str(venv)], log), f"python -m venv {venv}")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    check(run_measured(pip + [TORCH_PIN], log.with_suffix(".torch.log")), f"pip install {TORCH_PIN}")
    if tk.no_deps:
        check(run_measured(pip + ["--no-deps", tk.package], log), f"pip install --no-deps {tk.package}")
        dist = tk.package.split("==")[0]
        # its declared requirements, less torch (already pinned) and optional extras
        code = (
            "import importlib.metadata as m, re\n"
            f"reqs = m.requires({dist!r}) or []\n"
            "name = lambda r: re.split(r'[<>=!~; \\[]', r)[0].strip().lower()\n"
            "print('\\n'.join(r for r in reqs if 'extra ==' not in r and name(r) != 'torch'))"
        )
        reqs = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
        reqs = [r.split(";")[0].strip() for r in reqs if r.strip()]
        check(
            run_measured(pip + [TORCH_PIN, *reqs, *tk.extra], log.with_suffix(".deps.log")),
            f"pip install {' '.join(reqs)}",
        )
    else:
        check(run_measured(pip + [tk.package, TORCH_PIN, *tk.extra], log), f"pip install {tk.package}")
    version = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    if not version.startswith(TORCH_PIN.split("==")[1]):
        raise HarnessError(f"{venv}: torch {version or '?'} installed, expected {TORCH_PIN}")
    atomic_write_text(stamp, spec + "\n")
    return python


# ------------------------------------------------------------------------------------------ data
def prepare_data(root: Path):
    """Tokenize Multi30k exactly as the harness preset does and write plain token files for the peers."""
    from harness.data.datamodule import prepare
    from harness.experiment import load_config

    cfg = load_config(PROJECT_ROOT / HARNESS_PRESET, ["tracking.wandb.mode=disabled"])
    say("tokenizing Multi30k (lowercase, Moses) ...")
    data = prepare(cfg)
    out = root / "data"
    test_name = data.corpus.test_split
    for name, split in (("train", "train"), ("val", "val"), ("test", test_name)):
        enc = data.splits[split]
        atomic_write_text(out / f"{name}.de", "".join(" ".join(t) + "\n" for t in enc.src_tokens))
        atomic_write_text(out / f"{name}.en", "".join(" ".join(t) + "\n" for t in enc.tgt_tokens))
    atomic_write_text(out / "test.ref.en", "".join(r + "\n" for r in data.splits[test_name].raw.tgt))
    val = data.splits["val"]  # a 2-sentence dev set for JoeyNMT's test mode (it decodes dev before test)
    atomic_write_text(out / "tiny.de", "".join(" ".join(t) + "\n" for t in val.src_tokens[:2]))
    atomic_write_text(out / "tiny.en", "".join(" ".join(t) + "\n" for t in val.tgt_tokens[:2]))
    return cfg, data, out


# ------------------------------------------------------------------------------------------ parsing logs
ONMT_STEP = re.compile(r"Step\s+(\d+)/\s*\d+;.*?(\d+)/\s*(\d+) tok/s")
ONMT_TIME = re.compile(r"Total translation time \(s\):\s*([\d.]+)")
ONMT_PARAMS = re.compile(r"\* number of parameters:\s*(\d+)")
JOEY_STEP = re.compile(r"Step:\s+(\d+),.*Tokens per Sec:\s+(\d+)")
JOEY_TIME = re.compile(r"Generation took\s+([\d.]+)\s*\[sec\]")
JOEY_PARAMS = re.compile(r"Total params:\s*(\d+)")


def window_rates(lines: list[str], pattern: re.Pattern, group: int) -> list[float]:
    return [float(m.group(group)) for line in lines if (m := pattern.search(line))]


def after_warmup(rates: list[float]) -> float | None:
    """Mean of the logged windows after the first (the first holds start-up and allocator warm-up)."""
    rest = rates[1:] if len(rates) > 1 else rates
    return statistics.fmean(rest) if rest else None


def last_float(lines: list[str], pattern: re.Pattern) -> float | None:
    hits = [float(m.group(1)) for line in lines if (m := pattern.search(line))]
    return hits[-1] if hits else None


# ------------------------------------------------------------------------------------------ the three runs
def detok_lines(path: Path, data, n: int) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")[:n]
    lines += [""] * (n - len(lines))
    return [data.tgt_tok.decode(line.split()) for line in lines]


PEER_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONUNBUFFERED": "1"}


def training_summary(tr, step_pattern, group: int, params_pattern, ckpt: Path) -> dict:
    """The training half of a peer's result: tokens/s after warm-up (from its log), memory, time, parameters."""
    rates = window_rates(tr.lines, step_pattern, group)
    return {
        "train_tokens_per_sec": after_warmup(rates),
        "train_windows_tokens_per_sec": rates,
        "peak_rss_mb": tr.peak_rss_mb,
        "peak_tree_rss_mb": tr.peak_tree_rss_mb,
        "train_wall_s": tr.wall_s,
        "params": int(last_float(tr.lines, params_pattern) or 0) or None,
        "checkpoint": str(ckpt),
    }


def run_opennmt(python: Path, root: Path, dpath: Path, steps: int, data, refs: list[str]) -> dict:
    work = root / "runs" / "opennmt"
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "config.yaml"
    atomic_write_text(cfg_path, yaml.safe_dump(opennmt_config(dpath, work, steps), sort_keys=False))
    bindir = python.parent
    say("opennmt: building the vocabulary ...")
    check(
        run_measured(
            [str(bindir / "onmt_build_vocab"), "-config", str(cfg_path), "-n_sample", "-1"],
            work / "build_vocab.log",
            PEER_ENV,
        ),
        "onmt_build_vocab",
    )
    say(f"opennmt: training {steps} steps ...")
    tr = check(
        run_measured(
            [str(bindir / "onmt_train"), "-config", str(cfg_path)],
            work / "train.log",
            PEER_ENV,
            re.compile(r"Step \d+/"),
            "opennmt ",
        ),
        "onmt_train",
    )
    ckpt = work / f"model_step_{steps}.pt"
    if not ckpt.is_file():
        raise HarnessError(f"onmt_train: no checkpoint {ckpt}; see {tr.log}")
    result = training_summary(tr, ONMT_STEP, 3, ONMT_PARAMS, ckpt)
    n = len(refs)
    for label, beam in (("greedy", 1), ("beam5", 5)):
        say(f"opennmt: decoding test ({label}) ...")
        hyp = work / f"test.{label}.hyp"
        m = check(
            run_measured(
                [
                    str(bindir / "onmt_translate"),
                    "-model",
                    str(ckpt),
                    "-src",
                    str(dpath / "test.de"),
                    "-output",
                    str(hyp),
                    "-beam_size",
                    str(beam),
                    "-batch_size",
                    "64",
                    "-batch_type",
                    "sents",
                    "-max_length",
                    "100",
                    "-report_time",
                    "-gpu",
                    "-1",
                ],
                work / f"translate.{label}.log",
                PEER_ENV,
            ),
            "onmt_translate",
        )
        seconds = last_float(m.lines, ONMT_TIME)
        result[label] = _decoded(hyp, data, refs, n, seconds, m)
    return result


def run_joeynmt(python: Path, root: Path, dpath: Path, steps: int, data, refs: list[str]) -> dict:
    work = root / "runs" / "joeynmt"
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "config.yaml"
    atomic_write_text(cfg_path, yaml.safe_dump(joeynmt_config(dpath, work, steps), sort_keys=False))
    say(f"joeynmt: training {steps} steps ...")
    tr = check(
        run_measured(
            [str(python), "-m", "joeynmt", "train", str(cfg_path), "--skip-test"],
            work / "train.log",
            PEER_ENV,
            JOEY_STEP,
            "joeynmt ",
        ),
        "joeynmt train",
    )
    ckpt = work / "model" / f"{steps}.ckpt"
    if not ckpt.is_file():
        raise HarnessError(f"joeynmt train: no checkpoint {ckpt}; see {tr.log}")
    # JoeyNMT logs its progress to model_dir/<mode>.log (not to stdout); a fresh model_dir each training
    tr.lines = (work / "model" / "train.log").read_text(errors="replace").splitlines()
    result = training_summary(tr, JOEY_STEP, 2, JOEY_PARAMS, ckpt)
    n = len(refs)
    for label, beam in (("greedy", 1), ("beam5", 5)):
        say(f"joeynmt: decoding test ({label}) ...")
        test_cfg = work / f"test.{label}.yaml"
        atomic_write_text(
            test_cfg,
            yaml.safe_dump(
                joeynmt_config(dpath, work, steps, beam=beam, load_model=ckpt, dev=dpath / "tiny"),
                sort_keys=False,
            ),
        )
        out = work / f"out.{label}"
        test_log = work / "model" / "test.log"  # appended to by every test run: read what this one adds
        start = test_log.stat().st_size if test_log.is_file() else 0
        m = check(
            run_measured(
                [str(python), "-m", "joeynmt", "test", str(test_cfg), "-o", str(out)],
                work / f"test.{label}.log",
                PEER_ENV,
            ),
            "joeynmt test",
        )
        hyp = Path(f"{out}.test")
        if test_log.is_file():
            with open(test_log, errors="replace") as f:
                f.seek(start)
                m.lines += f.read().splitlines()
        seconds = last_float(m.lines, JOEY_TIME)  # dev (2 sentences) first, then test
        result[label] = _decoded(hyp, data, refs, n, seconds, m)
    return result


def _decoded(hyp: Path, data, refs: list[str], n: int, seconds: float | None, m: Measured) -> dict:
    from harness.metrics.bleu import corpus_scores

    if not hyp.is_file():
        raise HarnessError(f"no hypotheses {hyp}; see {m.log}")
    texts = detok_lines(hyp, data, n)
    scores = corpus_scores(texts, refs, lowercase=True)
    return {
        "sentences": n,
        "seconds": seconds,
        "process_wall_s": m.wall_s,
        "sentences_per_sec": n / seconds if seconds else None,
        "bleu": scores.bleu,
        "chrf": scores.chrf,
        "bleu_signature": scores.bleu_signature,
        "hyp": str(hyp),
    }


def run_harness(root: Path, steps: int, data, refs: list[str]) -> dict:
    import json

    from harness.config import replace
    from harness.decode.evaluate import decode_split
    from harness.runs.layout import load_module

    work = root / "runs" / "harness"
    say(f"harness: training {steps} steps ({HARNESS_PRESET}) ...")
    tr = check(
        run_measured(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "train",
                HARNESS_PRESET,
                *harness_overrides(steps),
                "--output",
                str(work),
                "--overwrite",
                "--quiet",
            ],
            root / "runs" / "harness-train.log",
        ),
        "harness train",
    )
    metrics = json.loads((work / "metrics.json").read_text())
    result = {
        "train_tokens_per_sec": metrics.get("train_tokens_per_sec"),
        "peak_rss_mb": tr.peak_rss_mb,
        "peak_tree_rss_mb": tr.peak_tree_rss_mb,
        "train_wall_s": tr.wall_s,
        "params": metrics.get("params"),
        "checkpoint": str(work / "checkpoints"),
    }
    say(f"harness: {result['train_tokens_per_sec'] or 0:,.0f} target tok/s")
    module = load_module(work, "last")  # the weights after exactly `steps` steps, like the peers
    cfg = module.cfg
    split = data.splits[data.corpus.test_split]
    if module.tgt_vocab.itos != data.tgt_vocab.itos or module.src_vocab.itos != data.src_vocab.itos:
        raise HarnessError(f"{work}: its vocabulary differs from the one just built; rerun bench-peers")
    n = len(refs)
    for label, beam in (("greedy", 1), ("beam5", 5)):
        say(f"harness: decoding test ({label}) ...")
        # 64 sentences a batch, as for the peers, and no length or coverage penalty
        changes = {"decode.batch_size": 64 * beam, "decode.length_penalty_alpha": 0.0}
        cfg = replace(cfg, changes | {"decode.coverage_penalty_beta": 0.0})
        out = decode_split(module, split, cfg, data.tgt_tok.decode, beam=beam, progress=False)
        hyp = work / f"test.{label}.hyp"
        atomic_write_text(hyp, "".join(" ".join(t) + "\n" for t in out.tokens))
        m = Measured(0, out.seconds, 0.0, hyp)
        result[label] = _decoded(hyp, data, refs, n, out.seconds, m)
    return result


# ------------------------------------------------------------------------------------------ report
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


def render_peers_table(doc: dict) -> str:
    names = [n for n in ("harness", "opennmt", "joeynmt") if n in doc["results"]]
    peers = [n for n in names if n != "harness"]
    head = ["metric"] + names + [f"ours/{p}" for p in peers if "harness" in names]
    lines = [
        f"# harness bench-peers: {doc['settings']['steps']} steps, Multi30k de→en",
        "",
        f"Machine: {doc['machine'].get('cpu', '?')}, {doc['machine'].get('cores', '?')} cores; "
        "load average at start "
        f"{doc['machine'].get('load_start', '?')}, at end {doc['machine'].get('load_end', '?')}; "
        f"{doc['machine'].get('date', '')}. torch {doc['machine'].get('torch', '?')} in every toolkit.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for label, get, digits, _ in ROWS:
        vals = {n: (get(doc["results"][n]) if not doc["results"][n].get("error") else None) for n in names}
        cells = [label] + [("–" if vals[n] is None else f"{vals[n]:,.{digits}f}") for n in names]
        if "harness" in names:
            for p in peers:
                a, b = vals["harness"], vals[p]
                cells.append(f"{a / b:.2f}×" if a is not None and b else "–")
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
    "the harness side is experiments/bahdanau2015_multi30k.yaml, the paper's RNNsearch decoder (attention "
    "from s_{i-1}, the context fed into the GRU, a 256-unit maxout deep output, s_0 = tanh(W_s h̄_1^←)), "
    "while OpenNMT-py and JoeyNMT run a Luong-style input-feeding decoder (GRU first, MLP attention on the "
    "new state, h̃ = tanh(W[c; s]) fed to the next step, softmax over W_o h̃ with 512 inputs); parameter "
    "initialisation is each toolkit's default (OpenNMT-py uniform ±0.1, JoeyNMT Xavier, the harness "
    "PyTorch defaults); the batches differ in order and bucketing; OpenNMT-py loads data in 2 DataLoader "
    "worker processes (its default), the others in the training process; decoding stops at 100 tokens "
    "for the peers and at 2·|x| + 10 for the harness."
)


def run_peers(args) -> int:
    from harness.bench.throughput import _load, machine_info

    root = Path(args.cache) if args.cache else cache_dir() / "peers"
    root.mkdir(parents=True, exist_ok=True)
    if args.steps < 1:
        raise HarnessError("--steps must be >= 1")
    pythons = {}
    for name in args.toolkits:
        if name in TOOLKITS:
            tk = TOOLKITS[name]
            pythons[name] = venv_python(root, name) if args.skip_install else install(tk, root)
            if not pythons[name].is_file():
                raise HarnessError(f"{pythons[name]}: missing (run without --skip-install)")
    cfg, data, dpath = prepare_data(root)
    refs = data.splits[data.corpus.test_split].raw.tgt
    if args.decode_sentences:
        raise HarnessError("--decode-sentences: the peers always decode the whole test set; leave it at 0")
    doc = {
        "machine": machine_info(),
        "settings": {
            "steps": args.steps,
            "toolkits": args.toolkits,
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
        "harness": lambda: run_harness(root, args.steps, data, refs),
        "opennmt": lambda: run_opennmt(pythons["opennmt"], root, dpath, args.steps, data, refs),
        "joeynmt": lambda: run_joeynmt(pythons["joeynmt"], root, dpath, args.steps, data, refs),
    }
    failed = False
    for name in args.toolkits:
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
    doc["machine"]["load_end"] = _load()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "peers.json", doc)
    atomic_write_text(out / "peers.md", render_peers_table(doc))
    print(render_peers_table(doc))
    print(f"written: {out / 'peers.json'}, {out / 'peers.md'}")
    return 1 if failed else 0

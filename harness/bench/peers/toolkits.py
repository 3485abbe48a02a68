"""The three trainings of bench-peers, one after the other at one configuration (configs.py): OpenNMT-py, JoeyNMT
and this harness, each then decoding the test set greedily and with beam 5; every output scored by the same
sacrebleu call against the same raw references. Training tokens/s, decoding time and parameters come from each
toolkit's own log."""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

import yaml

from harness.bench.peers.configs import HARNESS_PRESET, NETWORKS, harness_overrides, joeynmt_config, opennmt_config
from harness.bench.peers.measure import Measured, check, run_measured, say
from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.paths import PROJECT_ROOT


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


def run_harness(root: Path, steps: int, data, refs: list[str], network: str = "harness") -> dict:
    import json

    from harness.config import replace
    from harness.decode.evaluate import decode_split
    from harness.runs.layout import load_module

    work = root / "runs" / network
    say(f"{network}: training {steps} steps ({HARNESS_PRESET} as {NETWORKS[network][0]}) ...")
    tr = check(
        run_measured(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "train",
                HARNESS_PRESET,
                *harness_overrides(steps, network),
                "--output",
                str(work),
                "--overwrite",
                "--quiet",
            ],
            root / "runs" / f"{network}-train.log",
        ),
        "harness train",
    )
    metrics = json.loads((work / "metrics.json").read_text())
    result = {
        "network": NETWORKS[network][0],
        "train_tokens_per_sec": metrics.get("train_tokens_per_sec"),
        "peak_rss_mb": tr.peak_rss_mb,
        "peak_tree_rss_mb": tr.peak_tree_rss_mb,
        "train_wall_s": tr.wall_s,
        "params": metrics.get("params"),
        "checkpoint": str(work / "checkpoints"),
    }
    say(f"{network}: {result['train_tokens_per_sec'] or 0:,.0f} target tok/s")
    module = load_module(work, "last")  # the weights after exactly `steps` steps, like the peers
    cfg = module.cfg
    split = data.splits[data.corpus.test_split]
    if module.tgt_vocab.itos != data.tgt_vocab.itos or module.src_vocab.itos != data.src_vocab.itos:
        raise HarnessError(f"{work}: its vocabulary differs from the one just built; rerun bench-peers")
    n = len(refs)
    for label, beam in (("greedy", 1), ("beam5", 5)):
        say(f"{network}: decoding test ({label}) ...")
        # 64 sentences a batch, as for the peers, and no length or coverage penalty
        changes = {"decode.batch_size": 64 * beam, "decode.length_penalty_alpha": 0.0}
        cfg = replace(cfg, changes | {"decode.coverage_penalty_beta": 0.0})
        out = decode_split(module, split, cfg, data.tgt_tok.decode, beam=beam, progress=False)
        hyp = work / f"test.{label}.hyp"
        atomic_write_text(hyp, "".join(" ".join(t) + "\n" for t in out.tokens))
        m = Measured(0, out.seconds, 0.0, hyp)
        result[label] = _decoded(hyp, data, refs, n, out.seconds, m)
    return result

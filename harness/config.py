"""Typed experiment configs: YAML files in experiments/ + dotted key=value overrides, validated up front.

One config system for the whole project: every key is a field of a frozen dataclass below, with its default and
its range. An unknown key, a wrong type or an out-of-range value fails before any work with one line naming the
file, the key and what was expected. The names the model section refers to (architectures, score functions) are
checked against the registries by harness.experiment.load_config, the loader every entry point uses: this module
knows nothing of models/, so data/ and models/ can read these dataclasses.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.errors import HarnessError


def _meta(*, lo: float | None = None, hi: float | None = None, lo_open=False, hi_open=False, choices=None):
    return {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "choices": choices}


def _f(default, **meta):
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata=_meta(**meta))
    return field(default=default, metadata=_meta(**meta))


@dataclass(frozen=True)
class SyntheticConfig:
    """The built-in generated task (harness/data/synthetic.py)."""

    vocab_size: int = _f(40, lo=8)
    min_len: int = _f(3, lo=1)
    max_len: int = _f(40, lo=1)
    train_size: int = _f(4000, lo=1)
    val_size: int = _f(200, lo=1)
    test_size: int = _f(400, lo=1)
    seed: int = 1234  # the task itself is fixed by this seed, independently of the training seed
    reorder: bool = True  # adjective-noun pairs swap (local reordering)
    one_to_many: float = _f(0.1, lo=0, hi=1)  # share of source words translated by two target words
    many_to_one: float = _f(0.05, lo=0, hi=1)  # share of source words (particles) merged into the next word


@dataclass(frozen=True)
class DataConfig:
    name: str = "synthetic"  # synthetic | multi30k | parallel | <hub id>, see harness/data/corpora.py
    src_lang: str = "de"
    tgt_lang: str = "en"
    hub_config: str = ""  # config name for a Hugging Face hub id, e.g. "fr-en" for wmt14
    test_split: str = ""  # empty: the source's default (multi30k: test_2016_flickr)
    # generic parallel text: file prefixes per split; the file is <prefix>.<lang>[.gz]
    train_prefix: str = ""
    val_prefix: str = ""
    test_prefix: str = ""
    gold_alignment: str = ""  # gold file for the test split (pharaoh 0-indexed or talp 1-indexed)
    gold_format: str = _f("pharaoh", choices=["pharaoh", "talp"])
    gold_src_first: bool = True  # whether the first index of a link is the source side
    train_limit: int = _f(0, lo=0)  # keep only the first N training pairs (0 = all)
    val_limit: int = _f(0, lo=0)
    test_limit: int = _f(0, lo=0)
    tokenizer: str = _f("word", choices=["word", "sentencepiece"])
    lowercase: bool = False
    moses: bool = False  # Moses punctuation splitting (sacremoses) for raw text
    sp_type: str = _f("bpe", choices=["bpe", "unigram"])
    sp_vocab_size: int = _f(8000, lo=16)
    vocab_min_freq: int = _f(1, lo=1)
    vocab_max_size: int = _f(0, lo=0)  # 0 = no limit
    max_len: int = _f(100, lo=1)  # training pairs longer than this (either side, in tokens) are filtered
    batch_by: str = _f("sentences", choices=["sentences", "tokens"])
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "bahdanau"  # harness list shows the registry
    score: str = "additive"
    emb_size: int = _f(64, lo=1)
    hidden_size: int = _f(64, lo=1)  # decoder hidden size (and encoder total output size for bi encoders)
    enc_hidden_size: int = _f(0, lo=0)  # per direction; 0 = derived from hidden_size by the architecture
    enc_layers: int = _f(1, lo=1)
    dec_layers: int = _f(1, lo=1)
    dropout: float = _f(0.0, lo=0, hi=1, hi_open=True)
    reverse_source: bool = False  # Sutskever et al. 2014 §3.3
    input_feeding: bool = True  # Luong et al. 2015 §3.3
    attention_type: str = _f("global", choices=["global", "local-m", "local-p"])
    window: int = _f(10, lo=0)  # Luong local attention half-width D
    maxout_size: int = _f(0, lo=0)  # Bahdanau deep output maxout units (0 = hidden_size // 2)
    max_positions: int = _f(128, lo=1)  # location score: number of source positions W_a predicts
    cosine_sharpening: float = _f(0.0, lo=0)  # NTM β; 0 = learned
    residual_from: int = _f(3, lo=1)  # GNMT: residual connections from this (1-based) layer up
    # luong only, to express OpenNMT-py's default RNN (`harness bench-peers`, same network) rather than Luong 2015:
    # the cell of encoder and decoder ("" = LSTM, the paper's) and a bidirectional encoder (hidden_size / 2 per
    # direction unless enc_hidden_size; its final states, both directions concatenated, start the decoder)
    rnn_cell: str = _f("", choices=["", "lstm", "gru"])
    enc_bidirectional: bool = False
    # luong only, for JoeyNMT's RNN (its init_hidden "bridge"): "tanh" starts every decoder layer from
    # tanh(W h̄_final + b) even where the sizes match; "auto" (the papers') projects only where they differ
    bridge: str = _f("auto", choices=["auto", "tanh"])
    # every parameter ~ U(-r, r); 0 = PyTorch's per-layer defaults. The papers: Sutskever et al. 2014 §3.4
    # 0.08; Luong et al. 2015 §4.1 0.1; Wu et al. 2016 §8.1 0.04 (Bahdanau et al. 2015 App. B.1 uses
    # orthogonal/Gaussian initializations, not implemented: its presets keep PyTorch's defaults)
    init_uniform: float = _f(0.0, lo=0)
    # memory for speed (off by default; the same function and gradients): the additive score's
    # tanh(W s + U h̄) of every decoder step, (batch, source length, attention size), is not kept for the
    # backward pass but recomputed there (scores.AdditiveEnergy). Measured in results/bench/memory.md
    recompute_attention: bool = False


@dataclass(frozen=True)
class GuidedAlignmentConfig:
    """Guided alignment training (Chen et al. 2016, "Guided Alignment Training for Topic-Aware NMT"; Marian's
    --guided-alignment): loss += weight x cross-entropy between each target word's attention row and its
    reference links (normalised to sum to 1; words without links are not guided)."""

    weight: float = _f(0.0, lo=0)  # 0 = off: the training step is exactly the unguided one
    # where the reference links of the training pairs come from: a Pharaoh file (one line per training pair of
    # the corpus, before length filtering; `i-j` = source i, target j, 0-based), `eflomal` (harness/data/aligners.py
    # on the training text, grow-diag-final-and, cached by content hash), or `gold` (the synthetic task's exact
    # alignments: an oracle upper bound)
    links: str = ""


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = _f("adam", choices=["adam", "sgd", "adadelta"])
    lr: float = _f(1e-3, lo=0, lo_open=True)
    lr_schedule: str = _f("constant", choices=["constant", "halving", "plateau"])
    lr_decay_start: int = _f(5, lo=0)  # halving: halve after this epoch, then every epoch (Luong 2015 §4.1)
    max_steps: int = _f(1000, lo=-1)  # -1 = no step limit
    max_epochs: int = _f(-1, lo=-1)
    max_time: float = _f(0.0, lo=0)  # seconds; 0 = no limit
    batch_size: int = _f(32, lo=1)  # sentences, or target tokens when data.batch_by=tokens
    grad_clip: float = _f(5.0, lo=0)
    label_smoothing: float = _f(0.0, lo=0, hi=1, hi_open=True)
    teacher_forcing: float = _f(1.0, lo=0, hi=1)  # probability of feeding the reference token
    val_every: int = _f(200, lo=1)  # validation (loss + greedy BLEU) every N steps
    val_bleu_limit: int = _f(500, lo=0)  # decode at most this many val sentences for val BLEU (0 = all)
    # the stopping rule: stop when `early_stopping_metric` has not improved by more than `early_stopping_min_delta`
    # for `early_stopping` validations in a row (patience; 0 = off); best.ckpt is the best validation by the same
    # metric. max_steps / max_epochs / max_time stay hard caps; metrics.json says which one ended training
    # (stop_reason) and whether the rule did (converged)
    early_stopping: int = _f(0, lo=0)
    early_stopping_metric: str = _f("val_bleu", choices=["val_bleu", "val_ppl"])  # keys of metrics/keys.py MODE
    early_stopping_min_delta: float = _f(0.0, lo=0)
    # the training loss is summed over target tokens and divided by the batch's target tokens (`tokens`), or by
    # its sentences (`sentences`: Sutskever et al. 2014 §3.4, Luong et al. 2015 §4.1, whose SGD learning rates
    # and gradient-norm clip of 5 assume a per-sentence average; ~25x larger gradients on Multi30k)
    loss_normalization: str = _f("tokens", choices=["tokens", "sentences"])
    guided_alignment: GuidedAlignmentConfig = field(default_factory=GuidedAlignmentConfig)
    accelerator: str = _f("auto", choices=["auto", "cpu", "gpu", "cuda"])
    devices: int = _f(1, lo=1)
    strategy: str = _f("auto", choices=["auto", "ddp", "ddp_spawn"])
    precision: str = _f("32", choices=["32", "bf16-mixed", "16-mixed"])
    threads: int = _f(0, lo=0)  # torch intra-op threads; 0 = leave torch's default
    log_every: int = _f(10, lo=1)
    # memory for speed (off by default): glibc's malloc serves every allocation of at least this many bytes with
    # its own mmap and returns it to the system when freed (mallopt M_MMAP_THRESHOLD, which also stops glibc
    # raising the threshold as large blocks are freed, the source of a freed-but-kept heap). Lowers peak RSS, costs
    # page faults on every large tensor: measured in results/bench/memory.md. 0 = glibc's default; no effect
    # where the C library is not glibc. At most 32 MiB (glibc's limit on 64-bit)
    malloc_mmap_threshold: int = _f(0, lo=0, hi=32 * 1024 * 1024)
    # speed for memory, the other way (off by default; the same results): glibc serves large blocks from its heap
    # too and never returns the heap's free top to the system (mallopt M_MMAP_MAX 0, M_TRIM_THRESHOLD at its
    # maximum), so each step's fresh (tokens x vocabulary) tensors reuse pages the last step touched instead of
    # faulting new zeroed ones in. Measured in results/bench/memory.md. No effect where the C library is not glibc;
    # not with train.malloc_mmap_threshold
    malloc_keep_freed: bool = False
    # memory for speed (off by default; the same loss and gradients): the output layer and its cross-entropy run
    # this many target tokens at a time, so the (tokens x vocabulary) logits of a batch, their log-softmax and
    # their gradient are never held whole (harness/train/loss.py). 0 = the whole batch at once. Measured in
    # results/bench/memory.md
    loss_chunk_rows: int = _f(0, lo=0)


@dataclass(frozen=True)
class DecodeConfig:
    beam: int = _f(1, lo=1)  # 1 = greedy
    max_len_ratio: float = _f(2.0, lo=0, lo_open=True)
    max_len_add: int = _f(10, lo=0)
    length_penalty_alpha: float = _f(0.0, lo=0)  # GNMT eq. 14; 0 = off
    coverage_penalty_beta: float = _f(0.0, lo=0)
    n_best: int = _f(1, lo=1)
    batch_size: int = _f(64, lo=1)
    unk_replace: bool = False  # Luong 2015 §4: copy the source word an <unk> attends to
    # how beam search applies the length/coverage penalties: `fairseq` ranks the alive hypotheses by their
    # log-probability and normalises only when finished hypotheses are ranked; `gnmt` (Wu et al. 2016 §7, tf/nmt)
    # ranks every step's candidates by the normalised score s(Y, X) = log P / lp(Y) + cp(X; Y). Equal at α = β = 0
    penalty_mode: str = _f("fairseq", choices=["fairseq", "gnmt"])


@dataclass(frozen=True)
class EvalConfig:
    length_buckets: list = _f([10, 20, 30, 40, 50])  # upper edges; a final open bucket follows
    min_bucket_n: int = _f(30, lo=1)  # buckets with fewer sentences are flagged (and skipped by length_drop)
    align_method: str = _f("argmax", choices=["argmax", "shift-att"])
    # threshold extraction beside the one-link-per-word argmax (Marian's --alignment p): every source word whose
    # weight in the method's row exceeds p; metrics.json aer_threshold
    align_threshold: float = _f(0.5, lo=0, hi=1, lo_open=True, hi_open=True)
    forced_alignment: bool = True


@dataclass(frozen=True)
class WandbConfig:
    mode: str = _f("offline", choices=["offline", "online", "disabled"])
    project: str = "attention-harness"
    entity: str = ""
    name: str = ""  # empty: derived from the config, e.g. bahdanau-additive-s1
    group: str = ""
    job_type: str = "train"


@dataclass(frozen=True)
class TrackingConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass(frozen=True)
class ExperimentConfig:
    seed: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# ----------------------------------------------------------------------------------------------------------


def _keys(cls, prefix="") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else _resolve(cls, f)):
            out += _keys(_resolve(cls, f), name + ".")
        else:
            out.append(name)
    return out


def _resolve(cls, f):
    return typing.get_type_hints(cls)[f.name]


@functools.cache
def _all_keys() -> tuple[str, ...]:
    return tuple(_keys(ExperimentConfig))


def all_keys() -> list[str]:
    """Every dotted config key (cached: the dataclasses do not change at run time)."""
    return list(_all_keys())


def _suggest(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if not close:  # try the last component, e.g. "model.scor" -> "model.score"
        tail = {c.rsplit(".", 1)[-1]: c for c in candidates}
        hit = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(tail), n=1, cutoff=0.6)
        close = [tail[hit[0]]] if hit else []
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(value: Any, typ, where: str) -> Any:
    origin = typing.get_origin(typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise HarnessError(f"{where}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise HarnessError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise HarnessError(f"{where}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, bool):
            raise HarnessError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise HarnessError(f"{where}: expected a number, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise HarnessError(f"{where}: expected a string, got {value!r}")
    if typ is list or origin is list:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, list):
            raise HarnessError(f"{where}: expected a list, got {value!r}")
        return value
    if origin is Literal:
        return value
    if isinstance(typ, types.UnionType):
        return value
    raise HarnessError(f"{where}: unsupported config type {typ}")


def _check_range(value, meta: dict, where: str) -> None:
    if meta.get("choices") and value not in meta["choices"]:
        opts = ", ".join(meta["choices"])
        raise HarnessError(f"{where}: {value!r} is not one of {opts}{_suggest(str(value), meta['choices'])}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        rng = f"{op} {lo}" + (f" and {'<' if meta.get('hi_open') else '<='} {hi}" if hi is not None else "")
        raise HarnessError(f"{where}: expected a value {rng}, got {value!r}")
    if hi is not None and (value > hi or (meta.get("hi_open") and value == hi)):
        op = "<" if meta.get("hi_open") else "<="
        raise HarnessError(f"{where}: expected a value {op} {hi}, got {value!r}")


def _build(cls, data: dict, source: str, prefix: str = ""):
    if not isinstance(data, dict):
        raise HarnessError(f"{source}: '{prefix.rstrip('.') or '(top level)'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = prefix + str(key)
        if key not in names:
            raise HarnessError(f"{source}: unknown config key '{full}'{_suggest(full, all_keys())}")
        typ = hints[key]
        where = f"{source}: {full}"
        if dataclasses.is_dataclass(typ):
            kwargs[key] = _build(typ, value if value is not None else {}, source, full + ".")
        else:
            v = _coerce(value, typ, where)
            _check_range(v, names[key].metadata, where)
            kwargs[key] = v
    return cls(**kwargs)


def _nest(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise HarnessError(f"override {key}: '{p}' is not a section")
        node[parts[-1]] = value
    return out


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` strings -> {dotted key: YAML-parsed value}."""
    flat: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise HarnessError(f"override '{item}': expected key=value, e.g. model.score=dot")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        flat[key] = value
    return flat


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"config {path}: file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise HarnessError(f"config {path}: not UTF-8 (byte offset {e.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise HarnessError(f"config {path}:{line}: YAML syntax error: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise HarnessError(f"config {path}: expected a mapping of config keys at the top level")
    return data


def parse_config(
    path: str | Path | None = None,
    overrides: list[str] | dict | None = None,
    validate: Callable[[ExperimentConfig, str], None] | None = None,
) -> ExperimentConfig:
    """A config file (or the defaults) with dotted overrides applied, every key type- and range-checked, then
    `validate(cfg, source)` (default: `check`, the cross-key rules of this file). harness.experiment.load_config
    passes the rules that also need the registries; an error is blamed on the file or on the command line."""
    validate = validate or check
    data = read_yaml(path) if path is not None else {}
    source = f"config {path}" if path is not None else "config"
    cfg = build(data, source)
    if not overrides:
        validate(cfg, source)
        return cfg
    flat = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides)
    for key in flat:
        if key not in all_keys() and not any(k.startswith(key + ".") for k in all_keys()):
            raise HarnessError(f"override {key}: unknown config key{_suggest(key, all_keys())}")
    merged = build(_merge(to_dict(cfg), _nest(flat)), "override")
    try:
        validate(merged, source)
    except HarnessError as error:
        # blame the command line when the file alone is valid (an override may also repair a file)
        try:
            validate(cfg, source)
        except HarnessError:
            raise error from None
        validate(merged, "override")
        raise
    return merged


def build(data: dict, source: str = "config") -> ExperimentConfig:
    """An ExperimentConfig from a nested mapping, every key type- and range-checked (no cross-key rules)."""
    return _build(ExperimentConfig, data, source)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


# Keys added after sweeps began to fingerprint their base config's resolved content (harness/study/spec.py): at
# their default they leave the model as it was before they existed, so a config that leaves them there keeps the
# digest it had, and a study created before they existed resumes. A new key with that property goes here.
DIGEST_NEUTRAL_AT_DEFAULT = (
    "model.rnn_cell",
    "model.enc_bidirectional",
    "model.bridge",
    "train.malloc_mmap_threshold",
    "model.recompute_attention",
    "train.loss_chunk_rows",
    "train.malloc_keep_freed",
)


@functools.cache
def neutral_defaults() -> Mapping[str, Any]:
    """{dotted key: default} of the DIGEST_NEUTRAL_AT_DEFAULT keys: the value a run from before such a key existed
    had (its config.yaml lacks the key). Read-only: computed once."""
    defaults = ExperimentConfig()
    out = {}
    for dotted in DIGEST_NEUTRAL_AT_DEFAULT:
        section, _, key = dotted.partition(".")
        out[dotted] = getattr(getattr(defaults, section), key)
    return types.MappingProxyType(out)


def content_for_digest(cfg) -> dict:
    """to_dict(cfg) without the DIGEST_NEUTRAL_AT_DEFAULT keys that are at their defaults."""
    doc = to_dict(cfg)
    for dotted, default in neutral_defaults().items():
        section, _, key = dotted.partition(".")
        if doc[section][key] == default:
            del doc[section][key]
    return doc


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check(cfg: ExperimentConfig, source: str = "config") -> None:
    """The cross-key rules of the config itself (the model section against the registries: harness.experiment)."""
    s = cfg.data.synthetic
    if s.min_len > s.max_len:
        raise HarnessError(
            f"{source}: data.synthetic.min_len ({s.min_len}) must be <= data.synthetic.max_len ({s.max_len})"
        )
    if cfg.decode.n_best > cfg.decode.beam:
        raise HarnessError(f"{source}: decode.n_best ({cfg.decode.n_best}) must be <= decode.beam ({cfg.decode.beam})")
    if cfg.train.malloc_keep_freed and cfg.train.malloc_mmap_threshold:
        raise HarnessError(
            f"{source}: train.malloc_keep_freed keeps large blocks in the heap and train.malloc_mmap_threshold "
            f"({cfg.train.malloc_mmap_threshold}) maps them apart: set one of them, not both"
        )
    buckets = cfg.eval.length_buckets
    if not buckets or any(not isinstance(b, int) or b < 1 for b in buckets) or sorted(set(buckets)) != buckets:
        raise HarnessError(f"{source}: eval.length_buckets must be increasing positive integers, got {buckets!r}")


def replace(cfg: ExperimentConfig, changes: dict[str, Any]) -> ExperimentConfig:
    """A copy of a validated (frozen) config with dotted keys changed, e.g. {"decode.n_best": 5}; nothing is
    re-validated: the caller changes keys whose values it has checked."""
    nested: dict[str, dict] = {}
    top: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            top[head] = value
    for head, sub in nested.items():
        top[head] = replace(getattr(cfg, head), sub)
    return dataclasses.replace(cfg, **top)


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

"""What applies where: architecture and score-function names, checked before any work."""

from __future__ import annotations

import difflib

from harness.errors import HarnessError
from harness.models.scores import SCORES, canonical_score, score_names
from harness.models.seq2seq import ARCHS


def key_size(cfg) -> int:
    """Size of the encoder states the attention reads, by architecture (mirrors the builders)."""
    bi_all = cfg.arch in ("bahdanau", "cgru") or (cfg.arch == "luong" and cfg.enc_bidirectional)
    bi = bi_all or (cfg.arch == "gnmt" and cfg.enc_layers == 1)
    per_dir = cfg.enc_hidden_size or (cfg.hidden_size // 2 if bi_all else cfg.hidden_size)
    return per_dir * (2 if bi else 1)


def _unknown(kind: str, value: str, valid: list[str], source: str) -> HarnessError:
    close = difflib.get_close_matches(value, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return HarnessError(
        f"{source}: model.{kind} '{value}' is not {'an architecture' if kind == 'arch' else 'a score function'}"
        f"{hint}; valid: {', '.join(valid)}"
    )


def check_model_config(cfg, source: str = "config") -> None:
    if cfg.arch not in ARCHS:
        raise _unknown("arch", cfg.arch, list(ARCHS), source)
    score = canonical_score(cfg.score)
    if score not in SCORES and score != "none":
        raise _unknown("score", cfg.score, score_names() + ["concat"], source)
    spec = ARCHS[cfg.arch]
    luong_only = (
        ("rnn_cell", cfg.rnn_cell),
        ("enc_bidirectional", cfg.enc_bidirectional),
        ("bridge", cfg.bridge != "auto"),
    )
    for key, value in luong_only:
        if value and cfg.arch != "luong":
            raise HarnessError(
                f"{source}: model.{key} applies to model.arch 'luong' only (the '{cfg.arch}' cells and encoder "
                "are its paper's)"
            )
    if spec.scores is not None and score not in spec.scores:
        raise HarnessError(
            f"{source}: model.score '{cfg.score}' does not apply to model.arch '{cfg.arch}' "
            f"(valid: {', '.join(spec.scores)})"
        )
    if cfg.attention_type not in spec.attention_types:
        raise HarnessError(
            f"{source}: model.attention_type '{cfg.attention_type}' does not apply to model.arch "
            f"'{cfg.arch}' (valid: {', '.join(spec.attention_types)})"
        )
    if score != "none" and SCORES[score].needs_same_size and key_size(cfg) != cfg.hidden_size:
        raise HarnessError(
            f"{source}: model.score '{cfg.score}' needs the decoder state and the encoder states to "
            f"have the same size, but model.arch '{cfg.arch}' gives {cfg.hidden_size} vs "
            f"{key_size(cfg)} (set model.enc_hidden_size, or use general/additive)"
        )
    if cfg.arch == "bahdanau" and key_size(cfg) % 2:
        raise HarnessError(f"{source}: model.enc_hidden_size must give an even encoder output for bahdanau")
    if cfg.arch in ("bahdanau", "cgru") and (cfg.maxout_size or cfg.hidden_size // 2) < 1:
        raise HarnessError(f"{source}: model.maxout_size must be >= 1")

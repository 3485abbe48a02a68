"""`harness translate`: source sentences on stdin -> translations on stdout.

Inputs longer than the model's maximum length (data.max_len tokens) are translated by a documented rule:
the sentence is cut into consecutive chunks of at most data.max_len tokens, each chunk is translated,
and the translations are joined with a space; a warning names the line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.data.corpora import Split, load_corpus
from harness.data.datamodule import encode_split, make_tokenizers
from harness.decode.evaluate import decode_split
from harness.runs.layout import load_module, save_attention


def translate_stream(
    run_dir: str | Path, fin, fout, beam: int | None = None, attention_file: str | None = None
) -> None:
    module = load_module(Path(run_dir), "best")
    cfg = module.cfg
    corpus = load_corpus(cfg.data)
    src_tok, tgt_tok = make_tokenizers(cfg.data, corpus)
    lines = [" ".join(line.split()) for line in fin.read().replace("\r\n", "\n").split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    limit = cfg.data.max_len
    chunks: list[str] = []
    owner: list[int] = []
    for n, line in enumerate(lines):
        toks = src_tok.encode(line) if line else []
        if len(toks) > limit:
            print(
                f"warning: stdin line {n + 1}: {len(toks)} tokens > data.max_len={limit}; translated in chunks "
                f"of {limit} tokens",
                file=sys.stderr,
            )
            words = line.split()
            step = max(1, limit // 2) if len(words) < len(toks) else limit
            parts = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
        else:
            parts = [line]
        chunks += parts
        owner += [n] * len(parts)
    split = Split("stdin", chunks, [""] * len(chunks))
    enc = encode_split(split, src_tok, tgt_tok, module.src_vocab, module.tgt_vocab)
    decoded = decode_split(module, enc, cfg, tgt_tok.decode, beam, progress=False)
    out: list[list[str]] = [[] for _ in lines]
    for text, n in zip(decoded.texts, owner):
        out[n].append(text)
    for parts in out:
        fout.write(" ".join(p for p in parts if p) + "\n")
    fout.flush()
    if attention_file:
        save_attention(Path(attention_file), enc, decoded.tokens, decoded.attention)

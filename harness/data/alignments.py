"""Gold word alignment readers: Pharaoh (0-indexed) and talp (1-indexed), sure/possible links.

Och & Ney (2003), "A Systematic Comparison of Various Statistical Alignment Models": annotators mark
sure (S) links and possible (P) links, with S ⊆ P. Every link here is (source_index, target_index),
0-indexed, whatever the order and base of the file it came from.

Formats (see shared/data/README.md, "Alignment-file vocabulary"):

* ``pharaoh``: 0-indexed, ``i-j`` sure, ``i?j`` possible (``*.0idx.align``);
* ``talp``:    1-indexed, ``i-j`` sure, ``ipj`` possible (RWTH ``gold.talp``, WPT'03 ``test.gold.talp``).

The format has no default and, when sentence lengths are given, every index is range-checked, so a
1-indexed file cannot be read as 0-indexed (or the reverse) without an error.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

Link = tuple[int, int]  # (source_index, target_index), 0-indexed

# fmt -> (regex of one link, index base, possible-link separator)
_FORMATS = {
    "pharaoh": (re.compile(r"([0-9]+)([-?])([0-9]+)"), 0, "?"),
    "talp": (re.compile(r"([0-9]+)([-p])([0-9]+)"), 1, "p"),
}


@dataclass
class Alignment:
    """Gold links of one sentence pair; ``possible`` always includes ``sure`` (P ⊇ S, Och & Ney 2003)."""

    sure: set[Link]
    possible: set[Link]

    def __post_init__(self):
        self.possible = self.possible | self.sure


def _format(fmt: str) -> tuple[re.Pattern, int, str]:
    if fmt not in _FORMATS:
        raise HarnessError(f"alignment format {fmt!r} is not one of {', '.join(_FORMATS)}")
    return _FORMATS[fmt]


def _as_written(link: Link, fmt: str, src_first: bool, possible_only: bool) -> str:
    """A (src, tgt) link spelled back the way the file wrote it, for error messages."""
    _, base, possible_sep = _format(fmt)
    first, second = link if src_first else link[::-1]
    return f"{first + base}{possible_sep if possible_only else '-'}{second + base}"


def parse_links(line: str, fmt: str, src_first: bool, where: str) -> Alignment:
    """Parse one line of space-separated links into (src, tgt) 0-indexed sure/possible sets.

    ``src_first`` says whether the first index of each link is the source side. ``where`` (e.g.
    ``"gold.talp line 12"``) starts every error message.
    """
    pattern, base, possible_sep = _format(fmt)
    sure: set[Link] = set()
    possible: set[Link] = set()
    for token in line.split():
        match = pattern.fullmatch(token)
        if match is None:
            expected = f"'i-j' (sure) or 'i{possible_sep}j' (possible) with {base}-indexed integers"
            hint = ""
            other = "talp" if fmt == "pharaoh" else "pharaoh"
            if _FORMATS[other][0].fullmatch(token):
                hint = f" (the file looks like format {other})"
            raise HarnessError(f"{where}: link {token!r} is not {fmt}: expected {expected}{hint}")
        first, second = int(match[1]), int(match[3])
        if base == 1 and 0 in (first, second):
            raise HarnessError(
                f"{where}: link {token!r} has index 0 but talp is 1-indexed; "
                "the file looks 0-indexed (use format pharaoh)"
            )
        link = (first - base, second - base) if src_first else (second - base, first - base)
        (sure if match[2] == "-" else possible).add(link)
    return Alignment(sure=sure, possible=possible)


def _read_lines(path: Path, name: str) -> list[str]:
    """Lines of a UTF-8 file (BOM and CRLF accepted); a final newline does not start a new line."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # universal newlines: CRLF -> LF
    except FileNotFoundError:
        raise HarnessError(f"{name}: no such alignment file") from None
    except UnicodeDecodeError as error:
        raise HarnessError(f"{name}: not UTF-8 text (byte {error.start})") from None
    if text == "":
        return []
    return text.removesuffix("\n").split("\n")


def _check_ranges(
    alignments: list[Alignment],
    fmt: str,
    src_first: bool,
    src_lengths: list[int] | None,
    tgt_lengths: list[int] | None,
    name: str,
) -> None:
    """Every index inside its sentence; an index equal to the length in a 0-indexed file with no
    index 0 anywhere means the file is really 1-indexed."""
    base = _FORMATS[fmt][1]
    has_zero = any(0 in link for alignment in alignments for link in alignment.possible)
    for number, alignment in enumerate(alignments, start=1):
        for link in sorted(alignment.possible):
            for side, lengths in ((0, src_lengths), (1, tgt_lengths)):
                if lengths is None or link[side] < lengths[number - 1]:
                    continue
                length, index = lengths[number - 1], link[side]
                token = _as_written(link, fmt, src_first, link not in alignment.sure)
                side_name = "source" if side == 0 else "target"
                message = (
                    f"{name} line {number}: link {token!r} has {side_name} index {index + base} "
                    f"but the {side_name} sentence has {length} words"
                )
                if base == 0 and index == length and not has_zero:
                    raise HarnessError(
                        f"{message}, and no index 0 appears in the file: the file looks 1-indexed (use format talp)"
                    )
                raise HarnessError(f"{message} ({fmt} is {base}-indexed: valid {base}..{length - 1 + base})")


def read_alignments(
    path: str | os.PathLike,
    fmt: str,
    src_first: bool,
    src_lengths: list[int] | None = None,
    tgt_lengths: list[int] | None = None,
    name: str | None = None,
) -> list[Alignment]:
    """Read one alignment line per sentence pair; links come back as (src, tgt), 0-indexed.

    Give ``src_lengths``/``tgt_lengths`` (words per sentence) whenever you have them: they check the
    line count and every index, which is what makes a wrong ``fmt`` fail loudly. An empty line is a
    sentence with no links. ``name`` (default: the path) names the file in error messages.
    """
    path = Path(path)
    name = name or str(path)
    _format(fmt)
    if src_lengths is not None and tgt_lengths is not None and len(src_lengths) != len(tgt_lengths):
        raise ValueError(f"{len(src_lengths)} source lengths but {len(tgt_lengths)} target lengths")
    lines = _read_lines(path, name)
    expected = src_lengths if src_lengths is not None else tgt_lengths
    if expected is not None and len(lines) != len(expected):
        raise HarnessError(f"{name}: has {len(lines)} lines, expected {len(expected)} (one per sentence pair)")
    alignments = [
        parse_links(line, fmt, src_first, where=f"{name} line {number}") for number, line in enumerate(lines, start=1)
    ]
    _check_ranges(alignments, fmt, src_first, src_lengths, tgt_lengths, name)
    return alignments


def write_pharaoh(alignments: list[Alignment], path: str | os.PathLike) -> None:
    """Write 0-indexed ``s-t`` (sure) and ``s?t`` (possible-only) links, one line per sentence, atomically."""
    lines = []
    for alignment in alignments:
        tokens = [f"{s}{'-' if (s, t) in alignment.sure else '?'}{t}" for s, t in sorted(alignment.possible)]
        lines.append(" ".join(tokens) + "\n")
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.writelines(lines)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise

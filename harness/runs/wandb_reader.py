"""Read a W&B offline run back from disk: config, history and summary, without the network.

wandb 0.31 keeps an offline run's config, history and summary only in its transaction log
`RUN_DIR/wandb/offline-run-<time>-<id>/run-<id>.wandb` (media files sit beside it under `files/media/`),
and ships no Python reader for it (the old `wandb.sdk.internal.datastore` is gone; wandb-core is Go).
The log is the LevelDB log format (https://github.com/google/leveldb/blob/main/doc/log_format.md):

    file   := header block*            header := ':W&B' (4 bytes) magic uint16 0xBEE1 (LE) version uint8
    block  := record* trailer?         32 KiB, counted from the start of the file (the header is in block 0)
    record := crc uint32 (LE) length uint16 (LE) type uint8 data[length]
              crc = zlib.crc32(type byte + data); type FULL=1, FIRST=2, MIDDLE=3, LAST=4
    trailer:= < 7 zero bytes that do not fit a record header; the next record starts at the next block

A FULL record, or a FIRST, MIDDLE*, LAST chain, holds one serialized `wandb_internal_pb2.Record`.

    python -m harness.wandb_reader RUN_DIR        # prints config / history / summary as JSON
"""

from __future__ import annotations

import json
import re
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

MAGIC = b":W&B"
HEADER = struct.Struct("<4sHB")  # ident, magic 0xBEE1, version
RECORD_HEADER = struct.Struct("<IHB")  # crc, length, type
BLOCK_SIZE = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class WandbRun:
    """What an offline run recorded. `history` rows: dicts of the keys logged at one step (with `_step`)."""

    path: Path  # the .wandb file
    run_id: str = ""
    name: str = ""
    project: str = ""
    entity: str = ""
    group: str = ""
    job_type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None  # None: the run never finished (crash, or still running)

    @property
    def files_dir(self) -> Path:
        return self.path.parent / "files"

    def media(self, pattern: str = "**/*") -> list[Path]:
        """Media files (tables, images, plots) under files/media/."""
        return sorted(p for p in (self.files_dir / "media").glob(pattern) if p.is_file())

    def series(self, key: str) -> list[tuple[int, Any]]:
        """(step, value) of `key` over the history rows that have it."""
        return [(row.get("_step", i), row[key]) for i, row in enumerate(self.history) if key in row]


# ------------------------------------------------------------------------------------------ finding runs
def find_run_files(path: str | Path) -> list[Path]:
    """The .wandb files under a RUN_DIR, a RUN_DIR/wandb folder or one offline-run folder, oldest first."""
    path = Path(path)
    if path.is_file():
        return [path]
    for folder in (path / "wandb", path):
        files = sorted(folder.glob("*run-*/run-*.wandb"), key=_started)
        if files:
            return files
    return sorted(path.glob("run-*.wandb"))


def _started(file: Path) -> tuple[str, float]:
    """Sort key: the start time in the folder name (offline-run-YYYYMMDD_HHMMSS-ID), then the mtime."""
    stamp = re.search(r"\d{8}_\d{6}", file.parent.name)
    return (stamp.group(0) if stamp else "", file.stat().st_mtime)


def latest_run_file(path: str | Path) -> Path:
    files = find_run_files(path)
    if not files:
        raise HarnessError(
            f"W&B run {path}: no run-*.wandb file found (was it trained with tracking.wandb.mode=disabled?)"
        )
    return files[-1]


# ------------------------------------------------------------------------------------------ log format
def iter_log_records(data: bytes, source: str = "W&B log") -> Iterator[bytes]:
    """The payload of each logical record (FULL, or FIRST+MIDDLE*+LAST joined); a cut-off tail is ignored."""
    if len(data) < HEADER.size:
        raise HarnessError(f"{source}: too short to be a W&B transaction log")
    ident, magic, version = HEADER.unpack_from(data)
    if ident != MAGIC or magic != 0xBEE1:
        raise HarnessError(f"{source}: not a W&B transaction log (expected header ':W&B', got {data[:7]!r})")
    pos, pending = HEADER.size, None
    while True:
        left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
        if left_in_block < RECORD_HEADER.size:  # trailer: zero padding up to the next block
            pos += left_in_block
            continue
        if pos + RECORD_HEADER.size > len(data):
            return
        crc, length, kind = RECORD_HEADER.unpack_from(data, pos)
        start, end = pos + RECORD_HEADER.size, pos + RECORD_HEADER.size + length
        if kind == 0 and length == 0:  # zero-filled space (pre-allocated or padded); skip to the next block
            pos += left_in_block
            continue
        if end > len(data):
            return  # the writer was interrupted mid-record
        payload = data[start:end]
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
            raise HarnessError(f"{source}: checksum mismatch in the record at byte {pos} (file corrupt)")
        pos = end
        if kind == FULL:
            pending = None
            yield payload
        elif kind == FIRST:
            pending = [payload]
        elif kind == MIDDLE and pending is not None:
            pending.append(payload)
        elif kind == LAST and pending is not None:
            pending.append(payload)
            yield b"".join(pending)
            pending = None
        else:
            raise HarnessError(f"{source}: unexpected record type {kind} at byte {pos - length - RECORD_HEADER.size}")


def iter_records(path: str | Path):
    """Decoded `wandb_internal_pb2.Record` messages of one .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    for payload in iter_log_records(path.read_bytes(), f"W&B log {path}"):
        record = pb.Record()
        record.ParseFromString(payload)
        yield record


def is_complete(path: str | Path) -> bool:
    """Whether a .wandb file ends with the run's exit record. `run.finish()` returns before wandb-core has
    flushed and closed the file, so a writer waits for this before treating the run as written."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    try:
        last = None
        for payload in iter_log_records(path.read_bytes(), f"W&B log {path}"):
            last = payload
    except (OSError, HarnessError):
        return False
    if last is None:
        return False
    record = pb.Record()
    record.ParseFromString(last)
    return record.WhichOneof("record_type") == "exit"


def wait_complete(path: str | Path, timeout_s: float = 30.0, poll_s: float = 0.05) -> bool:
    """Wait (bounded) until `is_complete(path)`; False when it did not happen in time."""
    deadline = time.monotonic() + timeout_s
    while not is_complete(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


# ------------------------------------------------------------------------------------------ decoding
def _value(value_json: str) -> Any:
    try:
        return json.loads(value_json)  # json accepts NaN / Infinity, which W&B writes for such floats
    except ValueError:
        return value_json


def _item_path(item) -> list[str]:
    return [item.key] if item.key else list(item.nested_key)


def _apply_items(target: dict, items) -> None:
    """Set each item's value; a nested key (W&B uses them for media: by_length -> {_type, path, ...}) makes
    nested dicts."""
    for item in items:
        *parents, last = _item_path(item)
        node = target
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = _value(item.value_json)


def _remove_items(target: dict, items) -> None:
    for item in items:
        *parents, last = _item_path(item)
        node = target
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)


def read_run(path: str | Path) -> WandbRun:
    """Config, history and summary of the latest W&B run under `path` (see `find_run_files`)."""
    file = latest_run_file(path)
    run = WandbRun(path=file)
    for record in iter_records(file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.name, run.project = r.run_id, r.display_name, r.project
            run.entity, run.group, run.job_type = r.entity, r.run_group, r.job_type
            _apply_items(run.config, r.config.update)
            _apply_items(run.summary, r.summary.update)
        elif kind == "config":
            _apply_items(run.config, record.config.update)
            _remove_items(run.config, record.config.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply_items(row, record.history.item)
            if record.history.HasField("step"):
                row.setdefault("_step", record.history.step.num)
            run.history.append(row)
        elif kind == "summary":
            _apply_items(run.summary, record.summary.update)
            _remove_items(run.summary, record.summary.remove)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    run.config = {k: v for k, v in run.config.items() if not k.startswith("_wandb")}
    return run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.wandb_reader RUN_DIR|WANDB_RUN_DIR|FILE.wandb", file=sys.stderr)
        return 2
    try:
        run = read_run(argv[0])
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    doc = {
        "file": str(run.path),
        "run_id": run.run_id,
        "name": run.name,
        "project": run.project,
        "group": run.group,
        "job_type": run.job_type,
        "exit_code": run.exit_code,
        "config": run.config,
        "summary": run.summary,
        "history": run.history,
    }
    print(json.dumps(doc, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How bench-peers measures a toolkit's process: its output into a log, its own peak RSS (os.wait4, the largest
single process) and the peak of its process tree's summed RSS (sampled from /proc every 0.25 s)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.paths import PROJECT_ROOT


def say(msg: str) -> None:
    print(f"bench-peers: {msg}", file=sys.stderr, flush=True)


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

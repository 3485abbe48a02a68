"""train.malloc_mmap_threshold and train.malloc_keep_freed (harness/train/memory.py). With the threshold glibc
serves large blocks with their own mmap (returned to the system when freed) instead of the heap it grows into once
large blocks have been freed; with keep_freed it serves them from the heap and keeps what is freed there. Neither
changes a run's results."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.config import parse_config
from harness.errors import HarnessError
from harness.train.memory import _libc

from ..conftest import ROOT, TINY

pytestmark = pytest.mark.skipif(_libc() is None, reason="not glibc: the train.malloc_* settings have no effect")

LIBC = """
import ctypes, sys, threading
from harness.train.memory import keep_freed_memory, set_malloc_mmap_threshold
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype, libc.malloc.restype, libc.free.argtypes = MallInfo2, ctypes.c_void_p, [ctypes.c_void_p]
libc.malloc.argtypes, libc.memset.argtypes = [ctypes.c_size_t], [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
"""  # glibc's malloc statistics (mallinfo2) and its malloc/free, for the probes below

PROBE = (
    LIBC
    + """
if sys.argv[1] != "0":
    assert set_malloc_mmap_threshold(int(sys.argv[1]))
libc.free(libc.malloc(4 << 20))  # glibc's default: freeing this mmapped block raises the threshold to 4 MiB
before = libc.mallinfo2().hblks
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblks - before)  # 1: the 1 MiB block has its own mapping; 0: it came from the heap
"""
)


def _mapped_blocks(threshold: int) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, str(threshold)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_a_fixed_threshold_keeps_large_blocks_out_of_the_heap():
    assert _mapped_blocks(0) == 0
    assert _mapped_blocks(64 * 1024) == 1


KEEP_PROBE = (
    LIBC
    + """
if sys.argv[1] == "keep":
    assert keep_freed_memory()
before = libc.mallinfo2().hblks
block = libc.malloc(48 << 20)  # above the 32 MiB glibc's own threshold can reach
libc.memset(block, 1, 48 << 20)
mapped = libc.mallinfo2().hblks - before  # 1: the block has its own mapping
libc.free(block)
kept = libc.mallinfo2().fordblks >= 48 << 20  # freed, it stays in the heap for the next request
served = []
worker = threading.Thread(target=lambda: served.append(bool(libc.malloc(200 << 20))))  # past a thread heap's 64 MiB
worker.start()
worker.join()
print(mapped, int(kept), int(served[0]))
"""
)


def _keep_probe(mode: str) -> tuple[int, ...]:
    out = subprocess.run([sys.executable, "-c", KEEP_PROBE, mode], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return tuple(int(x) for x in out.stdout.split())


def test_keeping_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them_there():
    assert _keep_probe("default") == (1, 0, 1)  # glibc: mapped apart, unmapped when freed
    assert _keep_probe("keep") == (0, 1, 1)  # the heap holds it and keeps it; a thread's large request still served


def test_keep_freed_and_a_threshold_are_refused_together():
    with pytest.raises(HarnessError, match=r"train\.malloc_keep_freed .* train\.malloc_mmap_threshold \(65536\)"):
        parse_config(
            "experiments/bahdanau2015_synthetic.yaml",
            ["train.malloc_keep_freed=true", "train.malloc_mmap_threshold=65536"],
        )


SETTINGS = {"default": [], "threshold": ["train.malloc_mmap_threshold=65536"], "keep": ["train.malloc_keep_freed=true"]}


def test_a_run_with_either_malloc_setting_gives_the_same_results(tmp_path):
    metrics = []
    for name, extra in SETTINGS.items():
        out = tmp_path / f"run-{name}"
        argv = ["train", "experiments/bahdanau2015_synthetic.yaml", *TINY, *extra]
        done = subprocess.run(
            [sys.executable, "-m", "harness.cli", *argv, "--output", str(out), "--quiet"],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        metrics.append(json.loads((out / "metrics.json").read_text()))
    for other, name in zip(metrics[1:], list(SETTINGS)[1:]):
        for key in ("bleu", "val_ppl", "best_step"):
            assert other[key] == metrics[0][key], (name, key)
        hyp = (tmp_path / f"run-{name}" / "test.hyp").read_text()
        assert hyp == (tmp_path / "run-default" / "test.hyp").read_text(), name

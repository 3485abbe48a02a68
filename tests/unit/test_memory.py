"""train.malloc_mmap_threshold (harness/train/memory.py): glibc then serves large blocks with their own mmap
(returned to the system when freed) instead of the heap it grows into once large blocks have been freed; the
run's results do not change."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.train.memory import _libc

from ..conftest import ROOT, TINY

pytestmark = pytest.mark.skipif(_libc() is None, reason="not glibc: train.malloc_mmap_threshold has no effect")

PROBE = """
import ctypes, sys
from harness.train.memory import set_malloc_mmap_threshold
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype, libc.malloc.restype, libc.free.argtypes = MallInfo2, ctypes.c_void_p, [ctypes.c_void_p]
if sys.argv[1] != "0":
    assert set_malloc_mmap_threshold(int(sys.argv[1]))
libc.free(libc.malloc(4 << 20))  # glibc's default: freeing this mmapped block raises the threshold to 4 MiB
before = libc.mallinfo2().hblks
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblks - before)  # 1: the 1 MiB block has its own mapping; 0: it came from the heap
"""


def _mapped_blocks(threshold: int) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, str(threshold)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_a_fixed_threshold_keeps_large_blocks_out_of_the_heap():
    assert _mapped_blocks(0) == 0
    assert _mapped_blocks(64 * 1024) == 1


def test_a_run_with_the_threshold_gives_the_same_results(tmp_path):
    metrics = []
    for threshold in (0, 64 * 1024):
        out = tmp_path / f"run-{threshold}"
        argv = ["train", "experiments/bahdanau2015_synthetic.yaml", *TINY, f"train.malloc_mmap_threshold={threshold}"]
        done = subprocess.run(
            [sys.executable, "-m", "harness.cli", *argv, "--output", str(out), "--quiet"],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        metrics.append(json.loads((out / "metrics.json").read_text()))
    for key in ("bleu", "val_ppl", "best_step"):
        assert metrics[0][key] == metrics[1][key], key
    assert (tmp_path / "run-0" / "test.hyp").read_text() == (tmp_path / "run-65536" / "test.hyp").read_text()

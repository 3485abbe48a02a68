"""glibc malloc settings that trade speed for memory (train.malloc_mmap_threshold) or memory for speed
(train.malloc_keep_freed)."""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4  # glibc's <malloc.h>
TRIM_NEVER = 2**31 - 1  # mallopt takes an int: a free heap top of 2 GiB is still returned


def _libc():
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None
    except OSError:
        return None


def set_malloc_mmap_threshold(nbytes: int) -> bool:
    """Serve every allocation of at least `nbytes` with its own mmap, returned to the system when freed, and keep
    the threshold fixed (glibc otherwise raises it up to 32 MiB as mmapped blocks are freed, after which large
    tensors come from a heap that keeps freed memory). False where the C library is not glibc or refuses."""
    libc = _libc()
    return bool(libc and libc.mallopt(M_MMAP_THRESHOLD, int(nbytes)) == 1)


def keep_freed_memory() -> bool:
    """Serve large blocks from the heap as well (no mmap of its own per block: M_MMAP_MAX 0) and keep the heap's
    free top instead of returning it to the system (M_TRIM_THRESHOLD 2 GiB), so that a training step's large
    temporaries reuse the pages the step before touched instead of faulting in new zeroed ones. glibc still maps
    memory where a heap cannot grow (a thread's arena past its 64 MiB heaps). False where the C library is not
    glibc or refuses."""
    libc = _libc()
    return bool(libc and libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_NEVER) == 1)

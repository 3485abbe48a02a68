"""glibc malloc settings that trade speed for memory (train.malloc_mmap_threshold)."""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>


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

"""The compute limit of a model on this machine: torch.mm / torch.bmm timed at the model's own matmul shapes
(harness/bench/flops.py) -> the training tokens/s the matmuls alone would allow ("% of limit" in `harness bench`)."""

from __future__ import annotations

import math
import time

from harness.bench.flops import Matmul, rows_of


def synchronizer(device):
    """torch.cuda.synchronize on a CUDA device (a timing must wait for the queued kernels), else a no-op."""
    import torch

    return torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)


def time_matmul(
    m: int, k: int, n: int, batched: bool = False, min_time: float = 0.03, device: str = "cpu", dtype=None
) -> float:
    """Best-of-3 GFLOP/s of torch.mm (m × k)·(k × n), or torch.bmm of m sentences (1 × k)·(k × n), on `device`
    in `dtype` (default float32; bfloat16 where training runs under bf16 autocast)."""
    import torch

    k, n = max(1, int(round(k))), max(1, int(round(n)))
    dtype = dtype or torch.float32
    sync = synchronizer(device)
    with torch.no_grad():
        opts = {"device": device, "dtype": dtype}
        if batched:
            a, b = torch.randn(m, 1, k, **opts), torch.randn(m, k, n, **opts)
            fn = lambda: torch.bmm(a, b)  # noqa: E731
        else:
            a, b = torch.randn(m, k, **opts), torch.randn(k, n, **opts)
            fn = lambda: torch.mm(a, b)  # noqa: E731
        for _ in range(3):
            fn()
        sync()
        best = math.inf
        for _ in range(3):
            reps, t0 = 0, time.perf_counter()
            while True:
                fn()
                reps += 1
                sync()
                elapsed = time.perf_counter() - t0
                if elapsed >= min_time and reps >= 3:
                    break
            best = min(best, elapsed / reps)
    return 2.0 * m * k * n / best / 1e9


def compute_limit(
    terms: list[Matmul], B: int, avg_src: float, avg_tgt: float, min_time: float = 0.03, device: str = "cpu", dtype=None
) -> dict:
    """Time every matmul at its own shape: the training tokens/s the matmuls alone allow (3 × forward)."""
    seconds = 0.0  # forward matmul seconds per target token
    shapes = []
    cache: dict[tuple, float] = {}
    for t in terms:
        m = rows_of(t, B, avg_src, avg_tgt) if not t.batched else B
        k, n = t.size(avg_src)
        key = (m, round(k), round(n), t.batched)
        if key not in cache:
            cache[key] = time_matmul(m, k, n, t.batched, min_time, device, dtype)
        gflops = cache[key]
        per_tgt = t.flops(avg_src) * (avg_src / avg_tgt if t.per == "src" else 1.0)
        seconds += per_tgt / (gflops * 1e9)
        shapes.append(
            {
                "name": t.name,
                "part": t.part,
                "shape": f"({m}×{round(k)})·({round(k)}×{round(n)})" + (" bmm" if t.batched else ""),
                "count": t.count,
                "gflops": round(gflops, 2),
                "mflop_per_tgt_token": round(per_tgt / 1e6, 4),
            }
        )
    limit = 1.0 / (3.0 * seconds) if seconds > 0 else None
    return {"tokens_per_sec": limit, "shapes": shapes}

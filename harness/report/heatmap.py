"""`harness plot-attention RUN_DIR --index N`: one attention heatmap, source words on x, output words on y.

Reads the run's attention/<split>.npz (decoded hypotheses) or, with --forced, attention/<split>.forced.npz
(teacher-forced decoding of the reference: the attention AER is computed from).
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError


def plot_attention(
    run_dir: str | Path,
    index: int = 0,
    split: str = "test",
    forced: bool = False,
    output: str | Path | None = None,
) -> Path:
    """Write the heatmap PNG of sentence `index`; returns its path."""
    from harness.io import atomic_write_bytes
    from harness.report.animate import sentence_attention
    from harness.report.plots import attention_figure

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"run directory {run_dir}: not found")
    attn, src, tgt = sentence_attention(run_dir, index, split, forced)
    kind = "forced decoding of the reference" if forced else "decoded hypothesis"
    png = attention_figure(attn, src, tgt, f"{run_dir.name}: {split} sentence {index} ({kind})")
    out = Path(output) if output else run_dir / "attention" / f"{split}{'.forced' if forced else ''}-{index}.png"
    atomic_write_bytes(out, png)
    return out

"""An animated GIF of the model decoding one test sentence, one frame per output word, in the manner of the
step-by-step animations of "Attn: Illustrated Attention" (R. Karim, 2019).

Frame t shows: the attention weights α_t over the source words (bars, and the words shaded by weight), the
context vector as the weighted sum it is, c_t = Σ_s α_ts h_s (its largest terms), the word emitted at step t,
and the output so far. The attention comes from the run's `attention/<split>.npz` (decoded hypotheses): row t
is the decoder step that predicts output word t. The final </s> step is not a word and gets no frame.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.report.plots import plain, plt
from harness.runs.layout import read_attention

FRAME_MS = 1000


def sentence_attention(run_dir: Path, index: int, split: str = "test", forced: bool = False):
    """(attn, src tokens, tgt tokens) of sentence `index`; HarnessError when the run has none."""
    run_dir = Path(run_dir)
    name = f"{split}{'.forced' if forced else ''}.npz"
    z = read_attention(run_dir, split, forced)
    if z is None:
        raise HarnessError(
            f"attention file {run_dir / 'attention' / name}: not found "
            "(no-attention models and runs without test decoding have none)"
        )
    count = int(z["count"])
    if not 0 <= index < count:
        raise HarnessError(f"--index {index}: {run_dir / 'attention' / name} has sentences 0..{count - 1}")
    if f"attn_{index}" not in z.files:
        raise HarnessError(
            f"attention file {run_dir / 'attention' / name}: sentence {index} has no attention "
            "(a model without attention)"
        )
    return (
        np.asarray(z[f"attn_{index}"], dtype=np.float32),
        [str(w) for w in z[f"src_{index}"]],
        [str(w) for w in z[f"tgt_{index}"]],
    )


class _Animator:
    """One matplotlib figure, updated in place per step (re-drawing a new figure per frame is ~3x slower)."""

    def __init__(self, attn: np.ndarray, src: list[str], tgt: list[str], title: str):
        self.attn, self.src, self.tgt, self.title = attn, src, tgt, title
        S = len(src)
        self.cmap = plt.get_cmap("Blues")
        self.fig = fig = plt.figure(figsize=(max(8.0, 0.55 * S + 3.6), 4.4))
        grid = fig.add_gridspec(2, 2, width_ratios=[3, 1.2], height_ratios=[2.2, 1.0], wspace=0.25, hspace=0.45)
        # attention weights over the source words: bars shaded by weight, the weight written above
        ax = self.ax = fig.add_subplot(grid[0, 0])
        self.bars = ax.bar(range(S), np.zeros(S), edgecolor="#333")
        ax.set_ylim(0, 1.12)
        ax.set_xticks(range(S))
        ax.set_xticklabels([plain(w) for w in src], rotation=45 if S > 8 else 0, fontsize=9)
        self.values = [ax.text(s, 0, "", ha="center", fontsize=7) for s in range(S)]
        self.ylabel = ax.set_ylabel("")
        self.head = ax.set_title("", fontsize=9)
        # the attention matrix filled in up to the current step
        axm = fig.add_subplot(grid[:, 1])
        self.matrix = axm.imshow(
            np.ma.masked_all((len(tgt), S)),
            cmap="Greys",
            vmin=0,
            vmax=1.0,
            aspect="auto",
            interpolation="nearest",
        )
        axm.set_xticks(range(S))
        axm.set_xticklabels([plain(w) for w in src], rotation=90, fontsize=6)
        axm.set_yticks(range(len(tgt)))
        axm.set_yticklabels([plain(w) for w in tgt], fontsize=6)
        axm.xaxis.tick_top()
        self.cursor = axm.axhline(0, color="#d62728", linewidth=0.8, alpha=0.6)
        # the context vector as the weighted sum it is, the word emitted, the output so far
        axt = fig.add_subplot(grid[1, 0])
        axt.axis("off")
        self.context = axt.text(0.0, 1.0, "", fontsize=8.5, family="monospace", va="top", linespacing=1.4)
        self.emits = axt.text(0.0, 0.42, "", fontsize=11, weight="bold", color="#d62728", va="top")
        self.output = axt.text(0.0, 0.1, "", fontsize=8.5, family="monospace", va="top")

    def frame(self, t: int):
        from PIL import Image

        weights, src, tgt = self.attn[t], self.src, self.tgt
        for s, (bar, w) in enumerate(zip(self.bars, weights)):
            bar.set_height(float(w))
            bar.set_color(self.cmap(0.25 + 0.75 * float(w)))
            bar.set_edgecolor("#333")
            self.values[s].set_position((s, float(w) + 0.02))
            self.values[s].set_text(f"{w:.2f}" if w >= 0.1 else "")
        self.ylabel.set_text(f"α(t={t + 1}, s)")
        self.head.set_text(plain(f"{self.title} · step {t + 1}/{len(tgt)}: attention over the source"))
        shown = np.ma.masked_all((len(tgt), len(src)))
        shown[: t + 1] = self.attn[: t + 1]
        self.matrix.set_data(shown)
        self.cursor.set_ydata([t, t])
        top = np.argsort(-weights, kind="stable")[:3]
        terms = " + ".join(f"{weights[s]:.2f}·h{s + 1}({_short(src[s])})" for s in top if weights[s] > 0)
        rest = " + …" if len(src) > 3 else ""
        self.context.set_text(plain(f"context  c{t + 1} = Σ_s α(t={t + 1},s)·h_s\n         ≈ {terms}{rest}"))
        self.emits.set_text(plain(f"emits    y{t + 1} = {tgt[t]}"))
        so_far = " ".join(tgt[: t + 1])
        if len(so_far) > 90:
            so_far = "… " + so_far[-88:]
        self.output.set_text(plain(f"output   {so_far}"))
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=72)
        buf.seek(0)
        return Image.open(buf).convert("RGB")

    def close(self) -> None:
        plt.close(self.fig)


def _short(word: str, n: int = 12) -> str:
    return word if len(word) <= n else word[: n - 1] + "…"


def animation_frames(attn: np.ndarray, src: list[str], tgt: list[str], title: str = "") -> list:
    """One PIL frame per output word."""
    if attn.shape != (len(tgt) + 1, len(src)):
        raise HarnessError(f"attention shape {attn.shape} does not match {len(tgt)} output and {len(src)} source words")
    animator = _Animator(attn, src, tgt, title)
    try:
        return [animator.frame(t) for t in range(len(tgt))]
    finally:
        animator.close()


def gif_bytes(frames: list, frame_ms: int = FRAME_MS) -> bytes:
    """Frames -> animated GIF (Pillow), looping forever; the last frame is held longer."""
    if not frames:
        raise HarnessError("animation: the hypothesis is empty, there is no output word to animate")
    size = frames[0].size
    pal = [f.resize(size).quantize(colors=128, method=2, dither=0) for f in frames]  # 2 = FASTOCTREE
    durations = [frame_ms] * len(pal)
    durations[-1] = frame_ms * 3
    buf = io.BytesIO()
    pal[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=pal[1:],
        duration=durations,
        loop=0,
        optimize=False,
        disposal=1,
    )
    return buf.getvalue()


def animate(run_dir: str | Path, index: int = 0, split: str = "test", title: str | None = None) -> bytes:
    """GIF bytes of run `run_dir` decoding sentence `index` of `split`."""
    run_dir = Path(run_dir)
    attn, src, tgt = sentence_attention(run_dir, index, split)
    return gif_bytes(animation_frames(attn, src, tgt, title or f"{run_dir.name} · sentence {index}"))

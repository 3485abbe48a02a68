"""attention-harness: benchmark and ablation harness for attention in RNN encoder-decoder NMT."""

__version__ = "0.1.0"

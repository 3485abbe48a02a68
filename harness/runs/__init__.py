"""Run directories: their layout and the attention .npz format (layout.py), what a run records about where it
came from (provenance.py), W&B tracking and its offline reader (tracking.py, wandb_reader.py), and the commands
that make or read one: `harness train` / `evaluate` (run.py), `translate` (translate.py), `align` (align.py)."""

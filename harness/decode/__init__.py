"""Decoding and scoring a trained model on encoded data: greedy, beam and forced decoding (search.py), and a split's
hypotheses, attention and metrics (evaluate.py). Plain functions of a model and batches: no run directories."""

"""Training: the LightningModule every architecture trains through (it receives its model, module.py), the
harness's callbacks (callbacks.py), the Trainer and its checkpoints (trainer.py, checkpoints.py). Nothing here
knows where a run directory keeps its files: harness/runs/ passes the paths in."""

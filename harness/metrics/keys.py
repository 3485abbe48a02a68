"""Every metric key, named once: the names Lightning logs (logs/metrics.csv, W&B), the stopping rule and the
sweep objective monitor, and the report reads. They are the names users already have in their studies and W&B
projects; changing one breaks those, so they only ever get added to."""

from __future__ import annotations

# logged at every validation (TranslationModule)
VAL_LOSS = "val_loss"
VAL_PPL = "val_ppl"
VAL_BLEU = "val_bleu"
VAL_AER = "val_aer"  # forced-decoding AER on the data set's gold dev sentences, where it has them
VALIDATION = (VAL_LOSS, VAL_PPL, VAL_BLEU, VAL_AER)

# which way is better, for every validation metric a stopping rule or a checkpoint may monitor
MODE = {VAL_LOSS: "min", VAL_PPL: "min", VAL_BLEU: "max", VAL_AER: "min"}

# metrics.json: how training ended (harness.metrics.convergence)
STOP_REASONS = ("early_stopping", "max_steps", "max_epochs", "max_time", "non_finite_metric")

"""Every metric key, named once: the names Lightning logs (logs/metrics.csv, W&B), the keys of metrics.json (README
documents each), the ones the stopping rule, the checkpoint and the sweep objective monitor, and the ones the
report and the reproductions read. They are the names users already have in their studies, W&B projects and
results/; changing one breaks those, so they only ever get added to."""

from __future__ import annotations

# logged at every validation (TranslationModule)
VAL_LOSS = "val_loss"
VAL_PPL = "val_ppl"
VAL_BLEU = "val_bleu"
VAL_AER = "val_aer"  # forced-decoding AER on the data set's gold dev sentences, where it has them
VALIDATION = (VAL_LOSS, VAL_PPL, VAL_BLEU, VAL_AER)

# which way is better, for every validation metric a stopping rule or a checkpoint may monitor
MODE = {VAL_LOSS: "min", VAL_PPL: "min", VAL_BLEU: "max", VAL_AER: "min"}

# metrics.json: the test split (harness/decode/evaluate.py)
SPLIT = "split"
BLEU = "bleu"
CHRF = "chrf"
BLEU_SIGNATURE = "sacrebleu_signature"
CHRF_SIGNATURE = "chrf_signature"
BEAM = "beam"
DECODE_SPEED = "decode_sentences_per_sec"
BY_LENGTH = "by_length"  # rows of BUCKET_KEYS (harness/metrics/length.py)
LENGTH_DROP = "length_drop"
ATTENTION_ENTROPY = "attention_entropy"
GOLD_ALIGNMENTS = "gold_alignments"  # the gold set's name, or None
AER = "aer"  # the attention's links (eval.align_method) against the gold
ALIGNMENT_PRECISION = "alignment_precision"
ALIGNMENT_RECALL = "alignment_recall"
AER_THRESHOLD = "aer_threshold"  # every source word above eval.align_threshold
AER_THRESHOLD_PRECISION = "aer_threshold_precision"
AER_THRESHOLD_RECALL = "aer_threshold_recall"
AER_DIAGONAL = "aer_diagonal"  # the positional baseline on the same gold
AER_DIAGONAL_PRECISION = "aer_diagonal_precision"
AER_DIAGONAL_RECALL = "aer_diagonal_recall"
ALIGNMENT = (
    AER,
    ALIGNMENT_PRECISION,
    ALIGNMENT_RECALL,
    AER_THRESHOLD,
    AER_THRESHOLD_PRECISION,
    AER_THRESHOLD_RECALL,
    AER_DIAGONAL,
    AER_DIAGONAL_PRECISION,
    AER_DIAGONAL_RECALL,
)
BUCKET_KEYS = ("bucket", "lo", "hi", "n", BLEU, CHRF, "few")  # one row of by_length

# metrics.json: how training ended (harness/metrics/convergence.py)
CONVERGED = "converged"
STOP_REASON = "stop_reason"
STOP_REASONS = ("early_stopping", "max_steps", "max_epochs", "max_time", "non_finite_metric")
# the stop reasons that are a budget running out -> the config key of that budget
BUDGET_KEYS = {"max_epochs": "train.max_epochs", "max_steps": "train.max_steps", "max_time": "train.max_time"}
VAL_METRIC = "val_metric"  # the monitored validation metric (train.early_stopping_metric)
VAL_METRIC_BEST = "val_metric_best"
BEST_STEP = "best_step"
VAL_METRIC_SLOPE = "val_metric_slope"
VAL_SLOPE_VALIDATIONS = "val_slope_validations"
VALIDATIONS = "validations"
VAL_BLEU_BEST = "val_bleu_best"

# metrics.json: the run (harness/runs/run.py)
PARAMS = "params"
TRAIN_SPEED = "train_tokens_per_sec"
TRAIN_TIME = "train_time_s"
STEPS = "steps"
EPOCHS = "epochs"
PEAK_RSS = "peak_rss_mb"
HARDWARE = "hardware"
SEED = "seed"
ARCH = "arch"
SCORE = "score"
DATA = "data"
TRAIN_PAIRS = "train_pairs"
FILTERED_TRAIN_PAIRS = "filtered_train_pairs"
DROPPED_EMPTY_PAIRS = "dropped_empty_pairs"
SPLITS = "splits"  # `harness evaluate --split NAME` of another split: its metrics under splits.NAME

# the numeric metrics.json keys a sweep objective may name (sweeps/*.yaml `objective.metric`)
OBJECTIVES = (
    BLEU,
    CHRF,
    LENGTH_DROP,
    AER,
    ALIGNMENT_PRECISION,
    ALIGNMENT_RECALL,
    ATTENTION_ENTROPY,
    VAL_PPL,
    VAL_BLEU_BEST,
    PARAMS,
    TRAIN_SPEED,
    TRAIN_TIME,
    STEPS,
    EPOCHS,
    PEAK_RSS,
    DECODE_SPEED,
)

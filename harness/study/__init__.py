"""Studies: Optuna sweeps over a search space of config keys (spec.py, storage.py, study.py, objective.py,
workers.py, slurm.py, sweep.py) and the paper reproductions built on them (reproduce.py, with its targets and
claims as YAML data beside it)."""

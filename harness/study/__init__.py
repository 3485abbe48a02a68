"""Studies: Optuna sweeps over a search space of config keys (spec.py, storage.py, study.py, objective.py,
workers.py, slurm.py, sweep.py) and the paper reproductions built on them (reproduce.py, measurements.py,
summary.py, with their targets and claims as YAML data beside them: targets.yaml, claims.yaml), and the measured
results in the repository (results.py: results/ and RESULTS.md). The reproductions render reports of their runs,
so this layer sits above harness/report/."""

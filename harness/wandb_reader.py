"""`python -m harness.wandb_reader RUN_DIR` (README): prints a W&B offline run as JSON. The reader itself is
harness/runs/wandb_reader.py; this module only keeps the documented command."""

import sys

from harness.runs.wandb_reader import main

if __name__ == "__main__":
    sys.exit(main())

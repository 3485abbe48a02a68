"""`harness sweep --slurm` options: one-line errors naming option, value and expectation before anything runs, and
the sbatch script `--dry-run` prints (tests/integration/test_slurm.py checks it is what a real cluster gets)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import build_parser, main

BASE = "experiments/bahdanau2015_synthetic.yaml"


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "space": {"model.score": ["dot", "general"]}, "seeds": [1]}))
    return path


def sweep(spec: Path, *args: str) -> int:
    return main(["sweep", str(spec), "--reports", str(spec.parent / "reports"), *args])


def sbatch_flags(script: str) -> dict[str, str | bool]:
    out: dict[str, str | bool] = {}
    for key, _, value in re.findall(r"^#SBATCH --([\w-]+)(=(.*))?$", script, flags=re.MULTILINE):
        out[key] = value if _ else True
    return out


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--slurm-time", "2h"], "--slurm-time: expected minutes, an integer >= 1, got '2h'"),
        (["--slurm-time", "0"], "--slurm-time: expected minutes, an integer >= 1, got '0'"),
        (["--slurm-cpus-per-task", "0"], "--slurm-cpus-per-task: expected an integer >= 1, got '0'"),
        (["--slurm-gpus-per-node", "-1"], "--slurm-gpus-per-node: expected an integer >= 0, got '-1'"),
        (
            ["--slurm-mem", "8 GiB"],
            "--slurm-mem: expected a size such as 8G, 500M or 0 (all of the node's), got '8 GiB'",
        ),
        (["--slurm-partition", "gpu a100"], "--slurm-partition: expected a SLURM name (letters, digits, _.,:+-), got"),
        (["--slurm-account", ""], "--slurm-account: expected a SLURM name"),
        (["--slurm-arg", "qos"], "--slurm-arg: expected KEY=VALUE with an sbatch option as KEY (qos=high), got 'qos'"),
        (["--slurm-arg", "qos="], "--slurm-arg: expected KEY=VALUE"),
        (["--slurm-arg", "Bad Key=1"], "--slurm-arg: expected KEY=VALUE"),
        (["--slurm-arg", "time=30"], "--slurm-arg: time cannot be set here (use --slurm-time), got 'time=30'"),
        (["--slurm-arg=--mem=8G"], "--slurm-arg: mem cannot be set here (use --slurm-mem)"),
        (["--slurm-arg", "output=x.log"], "--slurm-arg: output cannot be set here (set by the harness: the logs go to"),
        (["--slurm-arg", "qos=a", "--slurm-arg", "qos=b"], "--slurm-arg: qos given twice, got 'qos=b'"),
    ],
)
def test_slurm_option_errors(spec, capsys, args, expect):
    assert sweep(spec, "--slurm", "--dry-run", *args) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"error: {expect}"), captured.err
    assert captured.out == "" and not (spec.parent / "reports").exists()


@pytest.mark.parametrize("option", ["--slurm-partition=gpu", "--slurm-time=30", "--slurm-arg=qos=high", "--dry-run"])
def test_slurm_options_need_slurm(spec, capsys, option):
    assert sweep(spec, option) == 2
    err = capsys.readouterr().err
    assert err == f"error: {option.split('=')[0]}: only with --slurm (it sets the SLURM worker jobs)\n"


def test_slurm_arg_values_are_not_overrides():
    """`--slurm-arg qos=high` keeps its value, however the key=value overrides are interleaved with options."""
    args = build_parser().parse_args(
        ["sweep", "x.yaml", "model.dropout=0.1", "--slurm", "--slurm-arg", "qos=high", "data.name=multi30k"]
        + ["--slurm-arg", "constraint=a100"]
    )
    assert args.slurm_arg == ["qos=high", "constraint=a100"]
    assert args.overrides == ["model.dropout=0.1", "data.name=multi30k"]


def test_dry_run_prints_the_sbatch_script_and_submits_nothing(spec, capsys):
    options = ["--slurm-partition", "gpu", "--slurm-time", "90", "--slurm-cpus-per-task", "4", "--slurm-mem", "16G"]
    options += ["--slurm-account", "nlp", "--slurm-arg", "qos=high", "--slurm-arg", "mail_type=END"]
    assert sweep(spec, "--slurm", "--dry-run", "--workers", "3", "--gpus-per-trial", "2", *options) == 0
    captured = capsys.readouterr()
    folder = spec.parent / "reports" / "s" / "slurm"
    assert (
        captured.err
        == f"dry run: 3 jobs with this script would be submitted (logs in {folder}); nothing was submitted\n"
    )
    assert sbatch_flags(captured.out) == {
        "job-name": "sweep-s",
        "partition": "gpu",
        "time": "90",
        "nodes": "1",
        "ntasks-per-node": "1",
        "cpus-per-task": "4",
        "gpus-per-node": "2",  # --gpus-per-trial
        "mem": "16G",
        "account": "nlp",
        "qos": "high",
        "mail-type": "END",
        "output": f"{folder}/%j_0_log.out",
        "error": f"{folder}/%j_0_log.err",
        "open-mode": "append",
        "signal": "USR2@90",
        "wckey": "submitit",
    }
    # each job runs submitit's entry point on its pickle in the folder, with this Python
    command = captured.out.strip().splitlines()[-1]
    assert command.startswith("srun --unbuffered --output ")
    assert command.endswith(f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {folder}")
    assert not (spec.parent / "reports").exists()  # no study, no folder


def test_dry_run_defaults_and_a_cpu_partition(spec, capsys):
    assert sweep(spec, "--slurm", "--dry-run") == 0
    flags = sbatch_flags(capsys.readouterr().out)
    assert flags["time"] == "1440" and flags["gpus-per-node"] == "1" and flags["job-name"] == "sweep-s"
    assert not {"partition", "cpus-per-task", "mem", "account"} & set(flags)
    assert sweep(spec, "--slurm", "--dry-run", "--gpus-per-trial", "2", "--slurm-gpus-per-node", "0") == 0
    assert "gpus-per-node" not in sbatch_flags(capsys.readouterr().out)  # 0: no GPU request at all

"""Untrusted files: checkpoints are loaded as plain data only, YAML with a safe loader only, and secrets (the
W&B API key, a database password in a storage URL) never reach a file of a run directory or a message.

A checkpoint is a pickle; `torch.load(weights_only=True)` (harness/train/checkpoints.py load_checkpoint, used by
evaluate, translate, load_module and - before Lightning reads it - `train --resume`) refuses any object other
than tensors and plain containers, so a crafted file cannot run code. YAML goes through yaml.safe_load
(harness/config.py read_yaml), which has no constructor for `!!python/...` tags.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.errors import HarnessError
from harness.experiment import load_config
from harness.runs.provenance import load_run_config
from harness.train.checkpoints import load_checkpoint

from ..conftest import TINY
from ..postgres_server import PASSWORD

PRESET = "experiments/bahdanau2015_synthetic.yaml"
WANDB_KEY = "secret123" + "0" * 31  # 40 characters, the shape of a W&B API key


class RunsCode:
    """Unpickling this runs a shell command (the classic pickle exploit)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"harness": {"config": {}}, "state_dict": {}, "payload": RunsCode(marker)}, path)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_the_crafted_pickle_really_runs_code_without_weights_only(tmp_path):
    """The exploit is real: plain unpickling creates the marker (so the tests below mean something)."""
    marker = tmp_path / "pwned"
    path = _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_checkpoint_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(HarnessError, match="refused, it contains objects other than plain data") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["evaluate", "translate"])
def test_cli_refuses_a_malicious_best_checkpoint(tmp_path, capsys, monkeypatch, command):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    _evil_checkpoint(run / "checkpoints" / "best.ckpt", marker)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("s1 s2\n"))
    assert main([command, str(run)]) == 2
    line = _one_error_line(capsys)
    assert f"checkpoint {run / 'checkpoints' / 'best.ckpt'}: refused" in line
    assert not marker.exists()


def test_resume_refuses_a_malicious_last_checkpoint_before_lightning_reads_it(tmp_path, capsys):
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    _evil_checkpoint(tmp_path / "run.partial" / "checkpoints" / "last.ckpt", marker)
    argv = ["train", PRESET, *TINY, "--output", str(out), "--resume", "--quiet"]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert "last.ckpt: refused" in line
    assert not marker.exists() and not out.exists()


def test_a_checkpoint_that_is_not_a_harness_checkpoint_is_refused(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(HarnessError, match="not a harness checkpoint"):
        load_checkpoint(path)
    (tmp_path / "garbage.ckpt").write_bytes(b"\x80\x04 not a checkpoint at all")
    with pytest.raises(HarnessError, match="cannot be read"):
        load_checkpoint(tmp_path / "garbage.ckpt")


EVIL_YAML = "seed: !!python/object/apply:os.system ['touch {marker}']\n"


def test_config_yaml_is_read_with_a_safe_loader(tmp_path, capsys):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(EVIL_YAML.format(marker=marker))
    with pytest.raises(HarnessError, match="YAML syntax error: could not determine a constructor"):
        load_config(cfg)
    assert main(["train", str(cfg), *TINY, "--output", str(tmp_path / "out"), "--quiet"]) == 2
    assert f"config {cfg}" in _one_error_line(capsys)
    # a run directory's config.yaml and a sweep spec go through the same reader
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(EVIL_YAML.format(marker=marker))
    with pytest.raises(HarnessError, match="YAML syntax error"):
        load_run_config(run)
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: " + EVIL_YAML.split(": ", 1)[1])
    assert main(["sweep", str(spec), "--reports", str(tmp_path / "reports"), "--quiet"]) == 2
    assert f"sweep {spec}" in _one_error_line(capsys)
    assert not marker.exists() and not (tmp_path / "out").exists() and not (tmp_path / "reports").exists()


def _grep(folder: Path, secret: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow
def test_wandb_api_key_never_written_to_the_run_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    out = tmp_path / "run"
    argv = [
        "train",
        PRESET,
        *TINY,
        "train.max_steps=4",
        "train.val_every=4",
        "data.synthetic.test_size=8",
        "tracking.wandb.mode=offline",
        "--output",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    for name in ("config.yaml", "metrics.json", "logs/metrics.csv"):
        assert (out / name).is_file(), name
    assert (out / "wandb").is_dir()
    assert _grep(out, WANDB_KEY) == [] and _grep(out, "secret123") == []
    assert "secret123" not in captured.out + captured.err


@pytest.mark.slow
def test_storage_password_never_written_to_trials_or_printed(tmp_path, capsys, postgres_url):
    password = PASSWORD
    assert f":{password}@" in postgres_url
    spec = tmp_path / "spec.yaml"
    base = Path(__file__).parents[2] / PRESET
    overrides = ", ".join(f"{k}: {v}" for k, v in (a.split("=", 1) for a in TINY))
    spec.write_text(
        f"base: {base}\noverrides: {{{overrides}, train.max_steps: 4, train.val_every: 4, "
        "data.synthetic.test_size: 8}\nspace: {model.score: [additive]}\nsampler: grid\n"
        "objective: {metric: bleu, direction: maximize}\nseeds: [1]\n"
    )
    reports = tmp_path / "reports"
    assert main(["sweep", str(spec), "--study", "secrets", "--storage", postgres_url, "--reports", str(reports)]) == 0
    captured = capsys.readouterr()
    assert password not in captured.out + captured.err
    trials = list((reports / "secrets" / "trials").glob("*/metrics.json"))
    assert trials, list(reports.rglob("*"))
    assert _grep(reports, password) == []

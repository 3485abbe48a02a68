"""Harness checkpoints are plain data: Lightning's loop, optimizer and callback state, the weights, and the
`harness` entry TranslationModule.on_save_checkpoint writes (the config as a dict, both vocabularies). They are
read with torch.load(weights_only=True), which refuses anything that would execute code, so a checkpoint from
any source can be opened safely and one saved by an earlier version loads as long as its keys do."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from harness.config import read_yaml
from harness.errors import HarnessError
from harness.train.module import TranslationModule


def load_checkpoint(path: Path) -> dict:
    """Checkpoints are plain data: torch.load(weights_only=True) refuses anything that would execute code."""
    if not path.is_file():
        raise HarnessError(f"checkpoint {path}: not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, foreign pickle, ...
        text = str(e)
        called = re.search(r"GLOBAL (\S+)", text) or re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if called or "Unsupported global" in text:
            what = f" ({called[1]})" if called else ""
            raise HarnessError(
                f"checkpoint {path}: refused, it contains objects other than plain data{what}, "
                "a pickle that could run code; expected a harness checkpoint"
            ) from None
        # torch's weights-only message wraps the cause in advice lines: keep the cause
        lines = [
            x.strip()
            for x in text.splitlines()
            if x.strip()
            and not x.startswith(("Weights only load failed", "Please file an issue", "Check the documentation"))
        ]
        msg = (lines[0] if lines else type(e).__name__).removeprefix("WeightsUnpickler error:").strip()
        raise HarnessError(f"checkpoint {path}: cannot be read ({msg[:160]}); expected a harness checkpoint") from None
    if not isinstance(ckpt, dict) or "harness" not in ckpt or "state_dict" not in ckpt:
        raise HarnessError(f"checkpoint {path}: not a harness checkpoint (no 'harness' config entry)")
    return ckpt


def best_score_in(path: Path) -> float | None:
    """The best value of the monitored validation metric in best.ckpt's ModelCheckpoint state (None without one)."""
    if not path.is_file():
        return None
    for key, state in load_checkpoint(path).get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            return float(state["best_model_score"])
    return None


def check_same_model(ckpt: dict, config_path: Path, ckpt_path: Path) -> None:
    """A checkpoint copied in from another run (another architecture, score, size) is refused: its model config
    must be the one the run directory's config.yaml (`config_path`) records."""
    cfg_path = config_path
    theirs = (ckpt["harness"].get("config") or {}).get("model") if isinstance(ckpt["harness"], dict) else None
    if not cfg_path.is_file() or not isinstance(theirs, dict):
        return
    ours = read_yaml(cfg_path).get("model") or {}
    for key, value in ours.items():
        if theirs.get(key) != value:
            raise HarnessError(
                f"checkpoint {ckpt_path}: was trained with model.{key}={theirs.get(key)!r} but "
                f"{cfg_path} has model.{key}={value!r} (a checkpoint from another run?)"
            )


def load_trained(ckpt_path: Path, config_path: Path) -> TranslationModule:
    """The module a checkpoint holds, after checking it against the run's config.yaml (check_same_model)."""
    ckpt = load_checkpoint(ckpt_path)
    check_same_model(ckpt, config_path, ckpt_path)
    try:
        return TranslationModule.from_checkpoint_dict(ckpt)
    except RuntimeError as e:
        raise HarnessError(
            f"checkpoint {ckpt_path}: weights do not match its config ({str(e).splitlines()[0][:160]})"
        ) from None

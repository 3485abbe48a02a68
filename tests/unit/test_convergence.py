"""How a run ended (harness/metrics/convergence.py): slope, best step, converged only by the stopping rule."""

from __future__ import annotations

import pytest

from harness.metrics.convergence import SLOPE_VALIDATIONS, best_entry, slope_per_1k_steps, summary


def test_slope_is_the_least_squares_slope_per_1000_steps():
    assert slope_per_1k_steps([0, 1000, 2000], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    # y = 0.002 x + noise-free offsets: 2 per 1,000 steps
    assert slope_per_1k_steps([100, 300, 600, 700], [1.2, 1.6, 2.2, 2.4]) == pytest.approx(2.0)
    assert slope_per_1k_steps([500], [1.0]) is None
    assert slope_per_1k_steps([500, 500], [1.0, 2.0]) is None  # one distinct step
    assert slope_per_1k_steps([0, 10, 20], [1.0, float("nan"), 3.0]) == pytest.approx(100.0)  # NaN skipped


HISTORY = [
    {"step": 100, "val_ppl": 30.0, "val_bleu": 5.0},
    {"step": 200, "val_ppl": 20.0, "val_bleu": 9.0},
    {"step": 300, "val_ppl": 15.0, "val_bleu": 8.5},
    {"step": 400, "val_ppl": 15.0, "val_bleu": 9.0},
    {"step": 500, "val_ppl": 16.0, "val_bleu": 8.0},
    {"step": 600, "val_ppl": 17.0, "val_bleu": 7.0},
]


def test_best_entry_follows_the_metric_direction_and_keeps_the_first_of_equals():
    assert best_entry(HISTORY, "val_ppl")["step"] == 300  # lower is better; 400 ties and comes later
    assert best_entry(HISTORY, "val_bleu")["step"] == 200
    assert best_entry([], "val_ppl") is None


def test_summary_is_converged_only_when_the_stopping_rule_ended_training():
    done = summary(HISTORY, "val_ppl", "early_stopping")
    assert done["converged"] is True and done["stop_reason"] == "early_stopping"
    assert done["best_step"] == 300 and done["val_metric_best"] == 15.0 and done["val_metric"] == "val_ppl"
    assert done["val_bleu_best"] == 9.0 and done["validations"] == 6
    assert done["val_slope_validations"] == SLOPE_VALIDATIONS == 5
    # the last five validations: steps 200..600, ppl 20, 15, 15, 16, 17 -> slope -5.0 per 1,000 steps
    # (Σ (s - 400)(v - 16.6) = -500 over Σ (s - 400)² = 100,000)
    assert done["val_metric_slope"] == pytest.approx(-5.0)
    for budget in ("max_steps", "max_epochs", "max_time"):
        assert summary(HISTORY, "val_ppl", budget)["converged"] is False
    empty = summary([], "val_bleu", "max_steps")
    assert empty["best_step"] is None and empty["val_metric_slope"] is None and empty["converged"] is False


def test_best_checkpoint_state_follows_a_moved_run_directory(tmp_path):
    """A study resumes a killed trial in the directory it renames (trials/0.partial -> trials/1.partial): the best
    score comes back with the state, so a worse validation after the move does not replace best.ckpt (Lightning's
    ModelCheckpoint drops the score when the dirpath differs, and would)."""
    from types import SimpleNamespace

    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from harness.train.callbacks import RunCheckpoint

    def checkpoint(cls, folder):
        return cls(dirpath=tmp_path / folder, filename="best", monitor="val_ppl", mode="min", save_top_k=1)

    before = checkpoint(RunCheckpoint, "0.partial")
    best = str(tmp_path / "0.partial" / "best.ckpt")
    before.best_model_score, before.best_model_path = torch.tensor(12.0), best
    before.best_k_models, before.kth_best_model_path, before.kth_value = {best: torch.tensor(12.0)}, best, 12.0
    state = before.state_dict()
    assert before.state_key == checkpoint(ModelCheckpoint, "0.partial").state_key  # checkpoints of old runs resume

    trainer = SimpleNamespace(strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, **_: decision))
    moved, plain = checkpoint(RunCheckpoint, "1.partial"), checkpoint(ModelCheckpoint, "1.partial")
    moved.load_state_dict(dict(state))
    with pytest.warns(UserWarning, match="dirpath has changed"):
        plain.load_state_dict(dict(state))
    assert float(moved.best_model_score) == 12.0
    assert moved.best_model_path == str(tmp_path / "1.partial" / "best.ckpt") == moved.kth_best_model_path
    assert list(moved.best_k_models) == [moved.best_model_path]
    assert not moved.check_monitor_top_k(trainer, torch.tensor(13.0))  # worse: best.ckpt is kept
    assert moved.check_monitor_top_k(trainer, torch.tensor(11.0))
    assert plain.check_monitor_top_k(trainer, torch.tensor(13.0))  # what Lightning alone would have done

"""Training to a stopping rule (converged / stop_reason in metrics.json, val_aer at every validation), the
per-sentence loss normalisation, and guided alignment on tiny synthetic runs."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from harness.data.datamodule import TranslationDataModule, prepare
from harness.experiment import load_config
from harness.runs.run import train
from harness.train.checkpoints import load_checkpoint
from harness.train.module import TranslationModule

from ..conftest import ROOT, TINY

PRESET = ROOT / "experiments" / "bahdanau2015_synthetic.yaml"


def _validations(run_dir) -> list[dict]:
    with open(run_dir / "logs" / "metrics.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("val_ppl")]


def test_the_stopping_rule_ends_training_and_says_so(tmp_path):
    # min_delta larger than any possible gain: the rule's patience (2 validations) runs out at the 3rd validation
    over = TINY + [
        "train.max_steps=500",
        "train.early_stopping=2",
        "train.early_stopping_metric=val_ppl",
        "train.early_stopping_min_delta=1000",
    ]
    m = train(load_config(PRESET, over), tmp_path / "run", progress=False).metrics
    assert m["converged"] is True and m["stop_reason"] == "early_stopping"
    assert m["steps"] == 30 and m["validations"] == 3  # validations at steps 10, 20, 30 (val_every 10)
    rows = _validations(tmp_path / "run")
    assert len(rows) == 3 and all(r["val_aer"] for r in rows)  # synthetic: AER at every validation
    ppl = {int(r["step"]) + 1: float(r["val_ppl"]) for r in rows}
    assert m["val_metric"] == "val_ppl" and m["val_metric_best"] == pytest.approx(min(ppl.values()))
    assert m["best_step"] == min(ppl, key=ppl.get)
    # best.ckpt is the validation the rule's metric liked best
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt")["global_step"] == m["best_step"]
    assert m["val_slope_validations"] == 3 and m["val_metric_slope"] is not None


def test_a_budget_stop_is_not_converged(tmp_path):
    m = train(load_config(PRESET, TINY + ["train.early_stopping=50"]), tmp_path / "run", progress=False).metrics
    assert m["converged"] is False and m["stop_reason"] == "max_steps" and m["steps"] == 20
    assert m["val_metric"] == "val_bleu" and m["val_bleu_best"] == m["val_metric_best"]
    epochs = train(
        load_config(PRESET, TINY + ["train.max_steps=-1", "train.max_epochs=1"]), tmp_path / "e", progress=False
    )
    assert epochs.metrics["stop_reason"] == "max_epochs" and epochs.metrics["converged"] is False
    assert m["aer_diagonal"] is not None and 0 < m["aer_diagonal"] < 1  # the positional baseline beside the AER


def test_sentence_normalisation_scales_the_objective_by_tokens_per_sentence():
    """Sutskever §3.4 / Luong §4.1: the summed log-likelihood over the batch's sentences, not its tokens."""
    cfgs = {n: load_config(PRESET, TINY + [f"train.loss_normalization={n}"]) for n in ("tokens", "sentences")}
    data = prepare(cfgs["tokens"])
    batch = next(iter(TranslationDataModule(cfgs["tokens"], data).train_dataloader()))
    grads, objectives = {}, {}
    for name, cfg in cfgs.items():
        torch.manual_seed(0)
        module = TranslationModule.build(cfg, data.src_vocab.itos, data.tgt_vocab.itos)
        out = module.losses(batch)
        out.objective.backward()
        objectives[name], grads[name] = out, module.model.generator.weight.grad.clone()
    tokens, sentences = objectives["tokens"], objectives["sentences"]
    ratio = tokens.n_tokens / len(batch)
    assert ratio > 2
    torch.testing.assert_close(sentences.objective, tokens.objective * ratio)
    torch.testing.assert_close(sentences.token_nll, tokens.token_nll)  # what train_loss logs is unchanged
    torch.testing.assert_close(grads["sentences"], grads["tokens"] * ratio)


def test_guided_alignment_weight_zero_is_bit_exact_and_the_oracle_lowers_aer(tmp_path):
    steps = ["train.max_steps=300", "train.val_every=150"]
    plain = train(load_config(PRESET, TINY + steps), tmp_path / "plain", progress=False)
    off = ["train.guided_alignment.weight=0", "train.guided_alignment.links=gold"]
    zero = train(load_config(PRESET, TINY + steps + off), tmp_path / "zero", progress=False)
    a = load_checkpoint(plain.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    b = load_checkpoint(zero.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    on = ["train.guided_alignment.weight=1", "train.guided_alignment.links=gold"]
    guided = train(load_config(PRESET, TINY + steps + on), tmp_path / "guided", progress=False)
    assert guided.metrics["aer"] < plain.metrics["aer"] - 0.1, (guided.metrics["aer"], plain.metrics["aer"])
    assert json.loads((guided.run_dir / "metrics.json").read_text())["steps"] == 300


def test_guided_alignment_needs_links_that_exist(tmp_path):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="train.guided_alignment.links: required"):
        train(load_config(PRESET, TINY + ["train.guided_alignment.weight=1"]), tmp_path / "a", progress=False)
    with pytest.raises(HarnessError, match="not a file, and not 'eflomal' or 'gold'"):
        over = ["train.guided_alignment.weight=1", f"train.guided_alignment.links={tmp_path / 'none.align'}"]
        train(load_config(PRESET, TINY + over), tmp_path / "b", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b.partial").exists()

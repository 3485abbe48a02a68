"""TranslationModule: the one LightningModule every architecture trains through (loss, optimizers,
schedules, validation loss/perplexity, greedy BLEU and AER, logging). It receives its model (an nn.Module built
by the registry) and its evaluation helpers; it never branches on the architecture."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.config import ExperimentConfig, to_dict
from harness.data.batch import Batch
from harness.data.tokenize import PAD_ID, Vocab
from harness.decode.search import greedy
from harness.experiment import from_dict
from harness.metrics.bleu import corpus_scores
from harness.metrics.keys import VAL_AER, VAL_BLEU, VAL_LOSS, VAL_PPL
from harness.models.seq2seq import Seq2Seq, build_model, count_parameters
from harness.train.loss import linear_cross_entropy


@dataclass
class Validation:
    """What a validation scores beyond the loss: greedy BLEU against the raw references, and (where the data
    set has gold dev alignments) forced-decoding AER."""

    refs: list[str]  # raw references of the validation split
    detokenize: Callable[[list[str]], str]  # target tokens -> text
    aer: Callable[[Seq2Seq], float | None] | None = None  # model -> AER on the gold dev sentences


@dataclass
class Losses:
    objective: Tensor  # what backward() minimises
    token_nll: Tensor  # cross-entropy per target token (train_loss, val_loss)
    n_tokens: int


def guided_alignment_loss(weights: Tensor, target: Tensor) -> Tensor:
    """Chen et al. 2016 §3 (Marian's guided-alignment "ce"): −Σ_s A_ts log α_ts, averaged over the target words
    that have reference links. `weights` α (B, T+1, S) is the model's attention, row t the step predicting word
    t; `target` A (B, T+1, S) the reference links, each row normalised to sum to 1 (all-zero rows: no links)."""
    guided = target.sum(-1) > 0  # (B, T+1)
    if not bool(guided.any()):
        return weights.new_zeros(())
    log_alpha = torch.log(weights.float().clamp_min(1e-9))
    return -(target * log_alpha).sum(-1)[guided].mean()


class TranslationModule(pl.LightningModule):
    def __init__(
        self,
        cfg: ExperimentConfig,
        model: Seq2Seq,
        src_itos: list[str],
        tgt_itos: list[str],
        validation: Validation | None = None,
        guide: Callable[[Batch], Tensor] | None = None,
    ):
        """`guide(batch)` gives the guided-alignment targets (B, T+1, S) of a training batch
        (harness.data.guidance); it is used only when train.guided_alignment.weight > 0."""
        super().__init__()
        self.cfg = cfg
        self.src_vocab, self.tgt_vocab = Vocab(src_itos), Vocab(tgt_itos)
        self.model = model
        self.validation = validation
        self.guide = guide if cfg.train.guided_alignment.weight > 0 else None
        self.lowercase_bleu = cfg.data.lowercase
        self._tf_generator = torch.Generator().manual_seed(cfg.seed)
        self._t0 = None
        self._tokens = 0
        self._val_hyps: dict[int, str] = {}
        self._val_loss = [0.0, 0]
        self.nonfinite_step: int | None = None

    # ------------------------------------------------------------------------------------------ checkpoint
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # plain data only, so checkpoints load with torch.load(weights_only=True) and describe themselves
        checkpoint["harness"] = {
            "config": to_dict(self.cfg),
            "src_itos": self.src_vocab.itos,
            "tgt_itos": self.tgt_vocab.itos,
        }

    @classmethod
    def build(cls, cfg: ExperimentConfig, src_itos: list[str], tgt_itos: list[str], **helpers) -> TranslationModule:
        """The module with a freshly built model for these vocabularies (models.seq2seq.build_model)."""
        return cls(cfg, build_model(cfg.model, len(src_itos), len(tgt_itos)), src_itos, tgt_itos, **helpers)

    @classmethod
    def from_checkpoint_dict(cls, ckpt: dict) -> TranslationModule:
        meta = ckpt["harness"]
        module = cls.build(from_dict(meta["config"], "checkpoint"), meta["src_itos"], meta["tgt_itos"])
        module.load_state_dict(ckpt["state_dict"])
        return module

    @property
    def params(self) -> int:
        return count_parameters(self.model)

    # ------------------------------------------------------------------------------------------ training
    def losses(self, batch: Batch, teacher_forcing: float = 1.0) -> Losses:
        chunk = self.cfg.train.loss_chunk_rows
        out, weights = self.model(batch, teacher_forcing, self._tf_generator, project=not chunk)
        n_tokens = int((batch.tgt_out != PAD_ID).sum())
        out, targets = out.reshape(-1, out.size(-1)), batch.tgt_out.reshape(-1)
        smoothing = self.cfg.train.label_smoothing
        if chunk:  # memory for speed: the (N, V) logits a chunk of tokens at a time (harness.train.loss)
            nll = linear_cross_entropy(out, self.model.generator, targets, PAD_ID, smoothing, chunk)
        else:
            nll = F.cross_entropy(out.float(), targets, ignore_index=PAD_ID, reduction="sum", label_smoothing=smoothing)
        token_nll = nll / max(1, n_tokens)
        if self.cfg.train.loss_normalization == "tokens":
            objective = token_nll
        else:  # Sutskever §3.4 / Luong §4.1: the summed log-likelihood averaged over the batch's sentences
            objective = nll / len(batch)
        if self.guide is not None and self.training:
            objective = objective + self.cfg.train.guided_alignment.weight * guided_alignment_loss(
                weights, self.guide(batch).to(weights.device)
            )
        return Losses(objective, token_nll, n_tokens)

    def loss(self, batch: Batch, teacher_forcing: float = 1.0) -> tuple[torch.Tensor, int]:
        """The training objective of one batch and its number of target tokens."""
        out = self.losses(batch, teacher_forcing)
        return out.objective, out.n_tokens

    def training_step(self, batch: Batch, batch_idx: int):
        if self._t0 is None:
            self._t0 = time.perf_counter()
        out = self.losses(batch, self.cfg.train.teacher_forcing)
        if not torch.isfinite(out.objective):
            self.nonfinite_step = self.global_step
            raise FloatingPointError(f"non-finite loss ({float(out.objective)}) at step {self.global_step}")
        self._tokens += out.n_tokens
        elapsed = time.perf_counter() - self._t0
        self.log("train_loss", out.token_nll, prog_bar=True, batch_size=len(batch))
        if elapsed > 0:
            self.log("tokens_per_sec", self._tokens / elapsed, prog_bar=True, batch_size=len(batch))
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=len(batch))
        return out.objective

    def on_before_optimizer_step(self, optimizer) -> None:
        if (self.global_step + 1) % self.cfg.train.log_every == 0:  # the step Lightning flushes logs at
            norms = [p.grad.detach().norm(2) for p in self.parameters() if p.grad is not None]
            if norms:
                self.log("grad_norm", torch.stack(norms).norm(2))

    # ------------------------------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val_hyps = {}
        self._val_loss = [0.0, 0]

    def validation_step(self, batch: Batch, batch_idx: int):
        out = self.losses(batch)
        self._val_loss[0] += float(out.token_nll) * out.n_tokens
        self._val_loss[1] += out.n_tokens
        limit = self.cfg.train.val_bleu_limit
        keep = batch.index < limit if limit else torch.ones_like(batch.index, dtype=torch.bool)
        if self.validation is not None and bool(keep.any()):
            hyps = greedy(self.model, batch, self.cfg.decode.max_len_ratio, self.cfg.decode.max_len_add)
            for i, h in zip(batch.index.tolist(), hyps):
                if not limit or i < limit:
                    self._val_hyps[i] = self.validation.detokenize(self.tgt_vocab.decode(h.tokens))

    def on_validation_epoch_end(self) -> None:
        total, n = self._val_loss
        val_loss = total / max(1, n)
        self.log(VAL_LOSS, val_loss, prog_bar=True, sync_dist=True)
        self.log(VAL_PPL, math.exp(min(val_loss, 50.0)), sync_dist=True)
        refs = self.validation.refs if self.validation is not None else []
        if self._val_hyps and refs:
            idx = sorted(self._val_hyps)
            bleu = corpus_scores([self._val_hyps[i] for i in idx], [refs[i] for i in idx], self.lowercase_bleu).bleu
        else:
            bleu = 0.0
        self.log(VAL_BLEU, bleu, prog_bar=True, sync_dist=True)
        if self.validation is not None and self.validation.aer is not None:
            aer = self.validation.aer(self.model)
            if aer is not None:
                self.log(VAL_AER, aer, sync_dist=True)

    # ------------------------------------------------------------------------------------------ optimizers
    def configure_optimizers(self):
        t = self.cfg.train
        if t.optimizer == "adam":
            # fused Adam: one kernel per step instead of ~6 per parameter tensor (measurable on CPU)
            opt = torch.optim.Adam(self.parameters(), lr=t.lr, fused=True)
        elif t.optimizer == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=t.lr)
        else:  # Bahdanau et al. 2015 §4.2: Adadelta (ε = 1e-6, ρ = 0.95)
            opt = torch.optim.Adadelta(self.parameters(), lr=t.lr, rho=0.95, eps=1e-6)
        if t.lr_schedule == "halving":
            # Luong et al. 2015 §4.1: after epoch `lr_decay_start`, halve the learning rate every epoch
            start = t.lr_decay_start
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda e: 0.5 ** max(0, e - start + 1) if e >= start else 1.0
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if t.lr_schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
            return {
                "optimizer": opt,
                "lr_scheduler": {
                    "scheduler": sched,
                    "monitor": VAL_BLEU,
                    "interval": "step",
                    "frequency": t.val_every,
                },
            }
        return opt

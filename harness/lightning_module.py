"""TranslationModule: the one LightningModule every architecture trains through (loss, optimizers,
schedules, validation loss/perplexity and greedy BLEU, logging). The architecture is a plain nn.Module
built from the config by the registry; this class never branches on it."""

from __future__ import annotations

import math
import time

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from harness.config import ExperimentConfig, from_dict, to_dict
from harness.data.datamodule import Batch
from harness.data.tokenize import PAD_ID, Vocab
from harness.metrics.bleu import corpus_scores
from harness.models.seq2seq import build_model, count_parameters
from harness.search import greedy


class TranslationModule(pl.LightningModule):
    def __init__(self, cfg: ExperimentConfig, src_itos: list[str], tgt_itos: list[str]):
        super().__init__()
        self.cfg = cfg
        self.src_vocab, self.tgt_vocab = Vocab(src_itos), Vocab(tgt_itos)
        self.model = build_model(cfg.model, len(src_itos), len(tgt_itos))
        self.val_refs: list[str] = []  # raw references of the validation split (set by the trainer wiring)
        self.detokenize = None  # tokens -> text, set by the trainer wiring
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
    def from_checkpoint_dict(cls, ckpt: dict) -> TranslationModule:
        meta = ckpt["harness"]
        module = cls(from_dict(meta["config"], "checkpoint"), meta["src_itos"], meta["tgt_itos"])
        module.load_state_dict(ckpt["state_dict"])
        return module

    @property
    def params(self) -> int:
        return count_parameters(self.model)

    # ------------------------------------------------------------------------------------------ training
    def loss(self, batch: Batch, teacher_forcing: float = 1.0) -> tuple[torch.Tensor, int]:
        logits, _ = self.model(batch, teacher_forcing, self._tf_generator)
        n_tokens = int((batch.tgt_out != PAD_ID).sum())
        loss = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(),
            batch.tgt_out.reshape(-1),
            ignore_index=PAD_ID,
            reduction="sum",
            label_smoothing=self.cfg.train.label_smoothing,
        )
        return loss / max(1, n_tokens), n_tokens

    def training_step(self, batch: Batch, batch_idx: int):
        if self._t0 is None:
            self._t0 = time.perf_counter()
        loss, n_tokens = self.loss(batch, self.cfg.train.teacher_forcing)
        if not torch.isfinite(loss):
            self.nonfinite_step = self.global_step
            raise FloatingPointError(f"non-finite loss ({float(loss)}) at step {self.global_step}")
        self._tokens += n_tokens
        elapsed = time.perf_counter() - self._t0
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch))
        if elapsed > 0:
            self.log("tokens_per_sec", self._tokens / elapsed, prog_bar=True, batch_size=len(batch))
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=len(batch))
        return loss

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
        loss, n_tokens = self.loss(batch)
        self._val_loss[0] += float(loss) * n_tokens
        self._val_loss[1] += n_tokens
        limit = self.cfg.train.val_bleu_limit
        keep = batch.index < limit if limit else torch.ones_like(batch.index, dtype=torch.bool)
        if self.detokenize is not None and bool(keep.any()):
            hyps = greedy(self.model, batch, self.cfg.decode.max_len_ratio, self.cfg.decode.max_len_add)
            for i, h in zip(batch.index.tolist(), hyps):
                if not limit or i < limit:
                    self._val_hyps[i] = self.detokenize(self.tgt_vocab.decode(h.tokens))

    def on_validation_epoch_end(self) -> None:
        total, n = self._val_loss
        val_loss = total / max(1, n)
        self.log("val_loss", val_loss, prog_bar=True, sync_dist=True)
        self.log("val_ppl", math.exp(min(val_loss, 50.0)), sync_dist=True)
        if self._val_hyps and self.val_refs:
            idx = sorted(self._val_hyps)
            scores = corpus_scores(
                [self._val_hyps[i] for i in idx], [self.val_refs[i] for i in idx], self.lowercase_bleu
            )
            bleu = scores.bleu
        else:
            bleu = 0.0
        self.log("val_bleu", bleu, prog_bar=True, sync_dist=True)

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
                    "monitor": "val_bleu",
                    "interval": "step",
                    "frequency": t.val_every,
                },
            }
        return opt

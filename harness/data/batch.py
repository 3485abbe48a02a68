"""A batch of sentence pairs as the models read it: padded id tensors and the source lengths (config-free, no
Lightning), and `collate`, which builds one from (index, source ids, target ids) items."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.data.tokenize import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    src: torch.Tensor  # (B, S) token ids, PAD_ID after each sentence's length
    src_lengths: torch.Tensor  # (B,)
    tgt_in: torch.Tensor  # (B, T+1) <s> y_1 … y_T (padded)
    tgt_out: torch.Tensor  # (B, T+1) y_1 … y_T </s> (padded)
    index: torch.Tensor  # (B,) position of each sentence in its split

    @property
    def src_mask(self) -> torch.Tensor:  # (B, S) True on real tokens
        return self.src != PAD_ID

    def to(self, device, non_blocking: bool = False) -> Batch:
        tensors = (self.src, self.src_lengths, self.tgt_in, self.tgt_out, self.index)
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in tensors))

    def __len__(self) -> int:
        return self.src.size(0)


def collate(items: list[tuple[int, list[int], list[int]]]) -> Batch:
    B = len(items)
    S = max(1, max(len(s) for _, s, _ in items))
    T = max(len(t) for _, _, t in items) + 1
    src = torch.full((B, S), PAD_ID, dtype=torch.long)
    tgt_in = torch.full((B, T), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((B, T), PAD_ID, dtype=torch.long)
    lengths = torch.zeros(B, dtype=torch.long)
    for b, (_, s, t) in enumerate(items):
        if s:
            src[b, : len(s)] = torch.tensor(s)
        lengths[b] = len(s)
        tgt_in[b, 0] = BOS_ID
        if t:
            tgt_in[b, 1 : len(t) + 1] = torch.tensor(t)
            tgt_out[b, : len(t)] = torch.tensor(t)
        tgt_out[b, len(t)] = EOS_ID
    index = torch.tensor([i for i, _, _ in items], dtype=torch.long)
    return Batch(src, lengths, tgt_in, tgt_out, index)

"""The output layer and its cross-entropy, a chunk of target tokens at a time (train.loss_chunk_rows: memory for
speed, off by default). The plain path materialises the logits of every target token of a batch, (N, V), keeps
their log-softmax for backward and builds an (N, V) gradient there: the largest tensors of a training step. Here
each chunk's logits are made, turned into that chunk's loss and its gradients with respect to the output layer's
input, weight and bias at once, and freed; backward only scales the kept gradients. Same loss and gradients as
F.cross_entropy(h Wᵀ + b, reduction="sum", ignore_index, label_smoothing) up to float rounding."""

from __future__ import annotations

import torch
from torch import Tensor


class LinearCrossEntropy(torch.autograd.Function):
    """Σ over non-ignored rows of (1 − ε)(lse − z_y) + ε (lse − mean(z)), z = h Wᵀ + b, lse = logsumexp(z) (PyTorch's
    label smoothing); its gradient with respect to z is softmax(z) − (1 − ε) onehot(y) − ε / V."""

    @staticmethod
    def forward(ctx, h, weight, bias, target, ignore_index: int, smoothing: float, chunk: int):
        V = weight.size(0)
        grads = any(ctx.needs_input_grad[:3])
        total = torch.zeros((), dtype=h.dtype, device=h.device)
        dh = torch.empty_like(h) if grads else None
        dw = torch.zeros_like(weight) if grads else None
        db = torch.zeros_like(bias) if grads else None
        for start in range(0, h.size(0), chunk):
            hc, tc = h[start : start + chunk], target[start : start + chunk]
            z = torch.addmm(bias, hc, weight.t())  # (c, V), in the weights' dtype (linear_cross_entropy)
            lse = z.logsumexp(1)
            valid = tc != ignore_index
            safe = tc.masked_fill(~valid, 0).unsqueeze(1)
            row = (1 - smoothing) * (lse - z.gather(1, safe).squeeze(1))
            if smoothing:
                row = row + smoothing * (lse - z.mean(1))
            total += row.masked_fill(~valid, 0.0).sum()
            if grads:
                g = z.sub_(lse.unsqueeze(1)).exp_()  # softmax, in z's buffer
                g.scatter_add_(1, safe, torch.full_like(safe, -(1 - smoothing), dtype=g.dtype))
                if smoothing:
                    g.sub_(smoothing / V)
                g.masked_fill_(~valid.unsqueeze(1), 0.0)
                torch.mm(g, weight, out=dh[start : start + chunk])
                dw.addmm_(g.t(), hc)
                db.add_(g.sum(0))
        ctx.save_for_backward(dh, dw, db)
        return total

    @staticmethod
    def backward(ctx, grad):
        dh, dw, db = ctx.saved_tensors
        return dh * grad, dw * grad, db * grad, None, None, None, None


def linear_cross_entropy(
    h: Tensor, linear: torch.nn.Linear, target: Tensor, ignore_index: int, smoothing: float, chunk: int
) -> Tensor:
    """The summed cross-entropy of softmax(linear(h)) against `target` (h (N, D), target (N,)), `chunk` rows at a
    time."""
    with torch.autocast(h.device.type, enabled=False):  # mixed precision: the chunks in the weights' dtype
        h = h.to(linear.weight.dtype)
        return LinearCrossEntropy.apply(h, linear.weight, linear.bias, target, ignore_index, smoothing, chunk)

"""train.loss_chunk_rows (harness/train/loss.py): the output layer's cross-entropy a chunk of target tokens at a
time gives autograd's loss and gradients, and keeps no (tokens x vocabulary) tensor for backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.train.loss import linear_cross_entropy

N, D, V, PAD = 23, 6, 11, 0


def _case(seed: int = 0):
    torch.manual_seed(seed)
    linear = torch.nn.Linear(D, V)
    h = torch.randn(N, D, requires_grad=True)
    target = torch.randint(0, V, (N,))
    target[[2, 7, 8]] = PAD  # padding rows count for nothing
    return linear, h, target


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [1, 5, N, 64])
def test_chunked_cross_entropy_has_autograds_loss_and_gradients(smoothing, chunk):
    results = []
    for chunked in (False, True):
        linear, h, target = _case()
        if chunked:
            loss = linear_cross_entropy(h, linear, target, PAD, smoothing, chunk)
        else:
            loss = F.cross_entropy(linear(h), target, ignore_index=PAD, reduction="sum", label_smoothing=smoothing)
        (2.5 * loss).backward()  # an upstream gradient other than 1
        results.append((loss.detach(), h.grad, linear.weight.grad, linear.bias.grad))
    for plain, chunked in zip(*results):
        torch.testing.assert_close(plain, chunked)


def test_gradcheck():
    linear, h, target = _case(1)
    args = (h.detach().double().requires_grad_(), linear.weight.detach().double().requires_grad_())
    bias = linear.bias.detach().double().requires_grad_()
    from harness.train.loss import LinearCrossEntropy

    assert torch.autograd.gradcheck(
        lambda x, w, b: LinearCrossEntropy.apply(x, w, b, target, PAD, 0.1, 4), (*args, bias)
    )


def test_no_tokens_x_vocabulary_tensor_is_kept_for_backward():
    kept = []

    def pack(t):
        kept.append(tuple(t.shape))
        return t

    linear, h, target = _case()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.cross_entropy(linear(h), target, ignore_index=PAD, reduction="sum")
    assert (N, V) in kept  # the plain path keeps the log-softmax of every token
    kept.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        linear_cross_entropy(h, linear, target, PAD, 0.0, 5)
    assert sorted(kept) == sorted([(N, D), (V, D), (V,)])  # the gradients of h, W, b: nothing of size N x V


def test_a_run_with_both_memory_flags_gives_the_same_results(tmp_path):
    """train.loss_chunk_rows and model.recompute_attention (the memory-for-speed flags) on a real run: the same
    validation curve, best step and test hypotheses as the run without them."""
    import json
    import subprocess
    import sys

    from ..conftest import ROOT, TINY

    runs = {}
    for name, flags in (("plain", []), ("flags", ["train.loss_chunk_rows=7", "model.recompute_attention=true"])):
        out = tmp_path / name
        argv = ["train", "experiments/bahdanau2015_synthetic.yaml", *TINY, *flags, "--output", str(out), "--quiet"]
        done = subprocess.run([sys.executable, "-m", "harness.cli", *argv], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        runs[name] = (json.loads((out / "metrics.json").read_text()), (out / "test.hyp").read_text())
    (plain, plain_hyp), (flags, flags_hyp) = runs["plain"], runs["flags"]
    assert flags["best_step"] == plain["best_step"] and flags["bleu"] == plain["bleu"]
    assert flags["val_ppl"] == pytest.approx(plain["val_ppl"], rel=1e-5)
    assert flags_hyp == plain_hyp

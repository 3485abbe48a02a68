"""Guided alignment (harness/data/guidance.py, TranslationModule.losses): targets from links, the loss by hand."""

from __future__ import annotations

import math

import pytest
import torch

from harness.data.batch import collate
from harness.data.guidance import GuideTargets
from harness.train.module import guided_alignment_loss


def test_guide_targets_spread_each_words_links_over_its_pieces():
    # pair 0: words only (pieces = words); source word 1 and 2 both link to target word 0; target word 1 unlinked
    # pair 1: source "a b@@ c" = words [0, 1, 1], target "x y" = words [0, 1]; link (1, 1): both pieces of word 1
    guide = GuideTargets([{(1, 0), (2, 0)}, {(1, 1), (0, 0)}], [[0, 1, 2], [0, 1, 1]], [[0, 1], [0, 1]])
    batch = collate([(0, [4, 5, 6], [7, 8]), (1, [4, 5, 6], [7, 8])])
    target = guide(batch)  # (B, T+1, S) = (2, 3, 3)
    assert target.shape == (2, 3, 3)
    torch.testing.assert_close(target[0], torch.tensor([[0.0, 0.5, 0.5], [0, 0, 0], [0, 0, 0]]))
    torch.testing.assert_close(target[1], torch.tensor([[1.0, 0, 0], [0, 0.5, 0.5], [0, 0, 0]]))


def test_guided_alignment_loss_by_hand():
    weights = torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]]])  # (1, 3, 3)
    target = torch.tensor([[[1.0, 0, 0], [0, 0.5, 0.5], [0, 0, 0]]])  # row 2 (</s>) unguided
    expected = -(math.log(0.5) + 0.5 * math.log(0.1) + 0.5 * math.log(0.8)) / 2
    assert float(guided_alignment_loss(weights, target)) == pytest.approx(expected)
    assert float(guided_alignment_loss(weights, torch.zeros_like(target))) == 0.0  # nothing to guide
    perfect = torch.tensor([[[1.0, 0, 0], [0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]]])
    # the minimum over attention rows is the target itself: its entropy (0 for a one-hot row, ln 2 for 2 links)
    assert float(guided_alignment_loss(perfect, target)) == pytest.approx(math.log(2) / 2, abs=1e-6)

"""mmtumor.losses on tensors whose answers are known."""

from __future__ import annotations

import pytest
import torch

from mmtumor.losses import (batch_class_weights, bce_loss, deep_supervision_loss, dice_bce, downsample_target,
                            soft_dice_loss)


def _target() -> torch.Tensor:
    t = torch.zeros(2, 3, 8, 8, 8)
    t[:, 0, 2:6, 2:6, 2:6] = 1
    t[:, 1, 3:5, 3:5, 3:5] = 1
    t[:, 2, 4, 4, 4] = 1
    return t


def test_soft_dice_is_zero_for_a_perfect_prediction_and_one_for_the_opposite():
    t = _target()
    assert soft_dice_loss((t * 2 - 1) * 50, t).item() == pytest.approx(0.0, abs=1e-4)
    assert soft_dice_loss((1 - 2 * t) * 50, t).item() == pytest.approx(1.0, abs=1e-3)


def test_batch_dice_pools_the_batch():
    """A few false-positive voxels in a tumour-free sample: per-sample Dice calls that sample a total miss, the
    pooled (nnU-Net) Dice weighs them against the whole batch's tumour."""
    t = _target()
    t[1] = 0
    logits = (t * 2 - 1) * 50
    logits[1, :, 0, 0, 0] = 50  # one false voxel per region in the empty sample
    pooled = soft_dice_loss(logits, t, batch_dice=True).item()
    per_sample = soft_dice_loss(logits, t, batch_dice=False).item()
    assert pooled < 0.2 and per_sample > 0.45


def test_bce_matches_its_definition_and_weights_positives():
    t = _target()
    logits = torch.randn_like(t)
    p = torch.sigmoid(logits)
    manual = -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
    assert bce_loss(logits, t).item() == pytest.approx(manual.item(), rel=1e-5)
    w = torch.tensor([1.0, 2.0, 4.0])
    assert bce_loss(logits, t, w).item() > bce_loss(logits, t).item()
    assert dice_bce(logits, t).item() == pytest.approx(soft_dice_loss(logits, t).item() + manual.item(), rel=1e-5)


def test_class_weights_are_negatives_over_positives_clamped():
    t = _target()
    w = batch_class_weights(t, max_weight=50.0)
    n = t[:, :1].numel()
    assert w[0].item() == pytest.approx((n - 2 * 64) / (2 * 64))
    assert w[2].item() == 50.0  # two positive voxels in 1024: clamped


def test_downsampled_target_keeps_a_one_voxel_region():
    t = _target()
    small = downsample_target(t, (2, 2, 2))
    assert small.shape == (2, 3, 2, 2, 2) and small[:, 2].sum().item() >= 2  # the single ET voxel survives


def test_deep_supervision_weights_halve_and_sum_to_one():
    t = _target()
    good = [(t * 2 - 1) * 50, (downsample_target(t, (4, 4, 4)) * 2 - 1) * 50]
    bad = [torch.zeros_like(good[0]), torch.zeros_like(good[1])]
    full_bad = dice_bce(bad[0], t).item()
    low_bad = dice_bce(bad[1], downsample_target(t, (4, 4, 4))).item()
    mixed = deep_supervision_loss([bad[0], good[1]], t).item()
    assert mixed == pytest.approx(full_bad * 2 / 3 + dice_bce(good[1], downsample_target(t, (4, 4, 4))).item() / 3,
                                  rel=1e-4)
    assert deep_supervision_loss(bad, t).item() == pytest.approx(full_bad * 2 / 3 + low_bad / 3, rel=1e-4)

"""Losses shared by every method: soft Dice + BCE on the three nested regions (WT, TC, ET), deep supervision.

Models predict regions with a sigmoid, so the paper's "Dice + CE" is Dice + binary cross-entropy per region.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5, batch_dice: bool = True) -> torch.Tensor:
    """1 - mean soft Dice over channels. ``batch_dice`` pools the batch (nnU-Net style) for stable small targets."""
    prob = torch.sigmoid(logits.float())
    target = target.float()
    dims = tuple(range(2, prob.ndim))
    if batch_dice:
        dims = (0, *dims)
    inter = (prob * target).sum(dims)
    denom = prob.sum(dims) + target.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return 1 - dice.mean()


def bce_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    if pos_weight is not None:
        pos_weight = pos_weight.view(1, -1, *([1] * (logits.ndim - 2)))
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), pos_weight=pos_weight)


def dice_bce(logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """The default segmentation loss: soft Dice + BCE."""
    return soft_dice_loss(logits, target) + bce_loss(logits, target, pos_weight)


def batch_class_weights(target: torch.Tensor, max_weight: float = 50.0) -> torch.Tensor:
    """Per-region positive weights from the batch (negatives / positives), as in class-weighted CE."""
    dims = (0, *range(2, target.ndim))
    pos = target.float().sum(dims)
    neg = target[:, :1].numel() - pos
    return (neg / pos.clamp_min(1.0)).clamp(1.0, max_weight)


def downsample_target(target: torch.Tensor, size) -> torch.Tensor:
    """Region targets at a coarser scale for deep supervision (any-voxel max pooling keeps small regions)."""
    if tuple(target.shape[2:]) == tuple(size):
        return target
    return F.adaptive_max_pool3d(target.float(), size) if target.ndim == 5 else F.adaptive_max_pool2d(target.float(), size)


def deep_supervision_loss(logits_list: list[torch.Tensor], target: torch.Tensor, weights: list[float] | None = None) -> torch.Tensor:
    """nnU-Net-style: weights halve per level (1, 1/2, 1/4, ...) and are normalised to sum to 1."""
    if weights is None:
        weights = [0.5**i for i in range(len(logits_list))]
    total = sum(weights)
    loss = logits_list[0].new_zeros((), dtype=torch.float32)
    for w, lg in zip(weights, logits_list, strict=False):
        loss = loss + (w / total) * dice_bce(lg, downsample_target(target, lg.shape[2:]))
    return loss

"""Several trained models run as one: their region probabilities averaged.

Why: the bundled CPU models are small and briefly trained, so two runs of the same recipe disagree on a thin
enhancing rim more than they disagree with the truth; the mean of their probabilities is a better estimate than
either (nnU-Net ensembles its folds for the same reason). The ensemble has the ``FusionModel`` forward contract, so
the sliding window, test-time flips and the enhancing-tumour second pass run it unchanged. It is for inference
only: it has no loss and cannot initialise training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_EPS = 1e-6  # keeps logit(mean probability) finite where every member is certain


class Ensemble(nn.Module):
    """Mean of the members' sigmoid probabilities, returned as logits (so ``sigmoid(logits)`` is that mean)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        mean = torch.stack([torch.sigmoid(m(x, present)["logits"].float()) for m in self.members]).mean(0)
        return {"logits": torch.logit(mean.clamp(_EPS, 1 - _EPS))}

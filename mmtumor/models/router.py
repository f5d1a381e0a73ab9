"""A base model for every input, and specialists for the modality subsets they were trained for.

Why: one network trained on all 15 subsets gives each of them a fifteenth of its steps. A model trained only on the
inputs a protocol gives (``train --subsets``, e.g. T1c + FLAIR and T1c alone, the inputs of the default's
enhancing-tumour pass) can be better there; the router sends exactly those inputs to it, for the regions it is
trusted with, and everything else to the base. An input that is not routed runs the base only; a routed one runs
the specialist, and the base too unless the route covers all three regions. It has the ``FusionModel`` forward contract, so the sliding window, test-time flips and the
enhancing-tumour second pass run it unchanged. Inference only: no loss, and it cannot initialise training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..labels import REGIONS
from .blocks import present_rows, scatter_rows, take_rows


def routes_from_config(routes: Sequence[dict]) -> list[tuple[list[tuple[bool, ...]], list[int]]]:
    """Stored routes (``{"subsets": ["0101", ...], "regions": ["ET", ...]}``, the weights JSON's ``config.routes``)
    -> the ``SubsetRouter`` form (subset masks, region indices). Raises ValueError/KeyError on anything else."""
    from ..modalities import subset_from_code

    return [([subset_from_code(c).mask for c in r["subsets"]], [REGIONS.index(x) for x in r["regions"]])
            for r in routes]


class SubsetRouter(nn.Module):
    """``routes[i]`` = (subset masks, region indices): a sample whose ``present`` equals one of the masks takes those
    regions from ``specialists[i]``, the others from ``base``."""

    def __init__(self, base: nn.Module, specialists: Sequence[nn.Module],
                 routes: Sequence[tuple[Sequence[Sequence[bool]], Sequence[int]]]) -> None:
        super().__init__()
        if not specialists or len(specialists) != len(routes):
            raise ValueError("a router needs one route per specialist, and at least one specialist")
        masks = [tuple(tuple(bool(b) for b in m) for m in subsets) for subsets, _ in routes]
        flat = [m for ms in masks for m in ms]
        if len(set(flat)) < len(flat):
            raise ValueError("a modality subset is routed twice")
        self.base = base
        self.specialists = nn.ModuleList(specialists)
        for i, subsets in enumerate(masks):  # not in the state dict: the routes live in the weights' config
            self.register_buffer(f"_masks{i}", torch.tensor(subsets, dtype=torch.bool), persistent=False)
        self.regions = [tuple(sorted({int(r) for r in regions})) for _, regions in routes]
        if any(not r or not set(r) <= {0, 1, 2} for r in self.regions):
            raise ValueError("route regions must be a non-empty subset of 0 (WT), 1 (TC), 2 (ET)")

    def _route(self, present: torch.Tensor) -> torch.Tensor:
        """Per sample: the index of the specialist whose subsets hold its ``present`` exactly, or -1."""
        chosen = torch.full((present.shape[0],), -1, dtype=torch.long, device=present.device)
        for i in range(len(self.specialists)):
            table = getattr(self, f"_masks{i}")
            hit = (present[:, None, :] == table[None]).all(-1).any(-1)
            chosen = torch.where(hit, torch.full_like(chosen, i), chosen)
        return chosen

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        present = present.bool()
        batch = x.shape[0]
        chosen = self._route(present)
        need_base = chosen < 0
        for i, regions in enumerate(self.regions):
            if len(regions) < len(REGIONS):
                need_base = need_base | (chosen == i)
        logits = None
        if bool(need_base.any()):
            rows = present_rows(need_base)
            out = self.base(take_rows(x, rows), take_rows(present, rows))["logits"].float()
            logits = scatter_rows(out, rows, batch)
        for i, regions in enumerate(self.regions):
            hit = chosen == i
            if not bool(hit.any()):
                continue
            rows = present_rows(hit)
            spec = scatter_rows(self.specialists[i](take_rows(x, rows), take_rows(present, rows))["logits"].float(),
                                rows, batch)
            channel = torch.zeros(len(REGIONS), dtype=torch.bool, device=x.device)
            channel[list(regions)] = True
            take = hit.view(batch, 1, *([1] * (spec.ndim - 2))) & channel.view(1, -1, *([1] * (spec.ndim - 2)))
            logits = torch.where(take, spec, logits if logits is not None else torch.zeros_like(spec))
        return {"logits": logits}

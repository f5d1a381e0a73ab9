"""Widen a trained network into a wider copy of itself that computes the same function (Net2Net-style growth).

Why: on a CPU budget a wider model trained from scratch cannot catch up with a narrow one that has had several
stages; grown from it, the wider model starts where the narrow one is and spends its steps on the extra capacity.

Rule, for every parameter the two networks share by name: the narrow values go into the leading channels; weights
from a *new input* channel are zero (so nothing new reaches an old output), weights into a new output channel keep
the wide network's own initialisation (so the new channels carry signal and learn as soon as the zero weights
leading out of them receive gradient). Instance norms and biases of new channels keep their initialisation too.
Layers that read a concatenation (a U-Net decoder stage reads ``[up, skip]``; A2FSeg's attention reads
``[F_bar; F_m]``) map each part to its own leading channels. A2FSeg's single attention map per modality grown
into one map per channel (``attention_maps`` "single" -> "channel") is copied into every channel.
"""

from __future__ import annotations

import dataclasses
import re

import torch
from torch import nn

from ..errors import InputError
from ..modalities import MODALITIES

#: parameters whose input channels are two equal concatenated parts
_CONCAT_INPUTS = (re.compile(r"(^|\.)decoder\.stages\.\d+\.0\.0\.weight$"), re.compile(r"(^|\.)attention\.\d+\.weight$"))
#: A2FSeg's fusion attention: one weight map per modality ("single") may grow into one per channel ("channel")
_ATTENTION = re.compile(r"(^|\.)attention\.\d+\.(weight|bias)$")


def _input_index(name: str, n_narrow: int, n_wide: int) -> torch.Tensor:
    """Where each narrow input channel sits in the wide layer."""
    if any(p.search(name) for p in _CONCAT_INPUTS) and n_narrow % 2 == 0 and n_wide % 2 == 0:
        half, wide_half = n_narrow // 2, n_wide // 2
        return torch.cat([torch.arange(half), wide_half + torch.arange(half)])
    return torch.arange(n_narrow)


def widen_into(narrow: nn.Module, wide: nn.Module) -> None:
    """Copy ``narrow``'s weights into ``wide`` (same architecture, at least as many channels everywhere), in place.

    Afterwards ``wide`` gives ``narrow``'s outputs (up to float rounding). Raises InputError when the two are not
    the same architecture or ``wide`` is narrower somewhere.
    """
    n_state = narrow.state_dict()
    w_params = dict(wide.named_parameters())
    transposed = {f"{mname}.weight" for mname, m in wide.named_modules()
                  if isinstance(m, (nn.ConvTranspose2d, nn.ConvTranspose3d))}
    missing = sorted(set(n_state) - set(wide.state_dict()))
    if missing:
        raise InputError(f"cannot widen: the wider network has no '{missing[0]}' (not the same architecture)")
    with torch.no_grad():
        for name, value in n_state.items():
            if name not in w_params:  # buffers (none in these networks) copy as they are
                wide.state_dict()[name].copy_(value)
                continue
            target = w_params[name]
            if target.ndim != value.ndim or any(w < n for w, n in zip(target.shape, value.shape)):
                raise InputError(f"cannot widen '{name}': {tuple(value.shape)} does not fit in {tuple(target.shape)}")
            if target.shape == value.shape:
                target.copy_(value)
                continue
            if _ATTENTION.search(name) and value.shape[0] == 1:
                # a single map becomes the same map for every channel: each channel's modality weights start equal
                # to the single map's (softmax per channel over the modalities) and may then specialise
                value = value.expand(target.shape[0], *value.shape[1:])
            if value.ndim == 1:  # bias or norm scale/shift of the leading channels
                target[: value.shape[0]].copy_(value)
                continue
            out_dim, in_dim = (1, 0) if name in transposed else (0, 1)
            in_idx = _input_index(name, value.shape[in_dim], target.shape[in_dim])
            new_inputs = torch.ones(target.shape[in_dim], dtype=torch.bool)
            new_inputs[in_idx] = False
            target.index_fill_(in_dim, new_inputs.nonzero(as_tuple=True)[0], 0.0)
            target.narrow(out_dim, 0, value.shape[out_dim]).index_copy_(in_dim, in_idx, value)


def grown(model: torch.nn.Module, method: str, overrides: dict) -> torch.nn.Module:
    """``train --init-from`` weights with a wider config (``model_overrides``): the same function, wider."""
    from .registry import build_model

    try:
        config = dataclasses.replace(model.config, **overrides)
    except TypeError as err:
        raise InputError(f"model_overrides do not fit the '{method}' config: {err}") from None
    if config == model.config:
        return model
    wide = build_model(method, config=config)
    widen_into(model, wide)
    _check_same_function(model, wide, method)
    return wide.train()


def _check_same_function(narrow: torch.nn.Module, wide: torch.nn.Module, method: str) -> None:
    """Growth must not change what the network computes; a method whose layers ``widen_into`` does not know fails."""
    n_levels = int(getattr(narrow.config, "n_levels", 4))
    side = 2 ** max(4, n_levels)
    g = torch.Generator().manual_seed(0)
    dims = int(getattr(narrow.config, "spatial_dims", 3))
    x = torch.randn(1, len(MODALITIES), *([side] * dims), generator=g)
    present = torch.ones(1, len(MODALITIES), dtype=torch.bool)
    with torch.no_grad():
        a, b = narrow.eval()(x, present)["logits"], wide.eval()(x, present)["logits"]
    if not torch.allclose(a, b, atol=1e-4 * (1 + float(a.abs().max()))):
        raise InputError(f"cannot widen '{method}' weights: the wider network does not reproduce them "
                         "(growth is supported for networks built from the shared U-Net blocks)")

"""Method registry: a name -> (config dataclass, builder, description, size presets).

Contract for every registered model (``FusionModel``):
- ``forward(x, present)``: ``x`` [B, 4, D, H, W] in the order T1, T1c, T2, FLAIR; ``present`` [B, 4] bool with at
  least one True per row. Returns a dict with ``"logits"`` [B, 3, D, H, W] (WT, TC, ET; apply sigmoid) plus the
  auxiliary outputs the method's loss needs. A missing channel's content never changes any output.
  Backbones with per-modality latent features also return ``"modality_features"`` [B, 4, C, d, h, w] (absent
  modalities zero) so the MedMAP alignment add-on can use them.
- ``loss(outputs, target, present)``: ``target`` float [B, 3, D, H, W] region masks; returns a dict of named scalar
  terms including ``"total"`` (the weighted sum the paper trains on).
- ``config``: the dataclass instance it was built from (JSON-serialisable via ``dataclasses.asdict``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import torch
from torch import nn

from ..errors import InputError


class FusionModel(nn.Module):
    """Base class: documents the interface and provides ``check_inputs``."""

    method: str = ""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config

    @staticmethod
    def check_inputs(x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        if x.ndim < 4 or x.shape[1] != 4:
            raise InputError(f"expected x of shape [B, 4, ...], got {tuple(x.shape)}")
        present = present.to(device=x.device, dtype=torch.bool)
        if present.shape != (x.shape[0], 4):
            raise InputError(f"expected present of shape [{x.shape[0]}, 4], got {tuple(present.shape)}")
        if not bool(present.any(dim=1).all()):
            raise InputError("every sample needs at least one present modality")
        return present

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def loss(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


@dataclass
class MethodSpec:
    name: str
    config_cls: type
    builder: Callable[[Any], FusionModel]
    description: str
    paper: str = ""
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


_REGISTRY: dict[str, MethodSpec] = {}


def register(name: str, config_cls: type, description: str, paper: str = "", presets: dict[str, dict] | None = None):
    """Decorator for a builder ``fn(config) -> FusionModel``."""

    def deco(fn: Callable[[Any], FusionModel]):
        _REGISTRY[name] = MethodSpec(name, config_cls, fn, description, paper, presets or {})
        return fn

    return deco


def _load_all() -> None:
    import importlib

    from ..methods import METHODS

    for mod in sorted({m.module for m in METHODS.values()}):  # the torch-free registry names the modules
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:  # a method module not written yet
            if exc.name != f"{__package__}.{mod}":
                raise


def methods() -> list[MethodSpec]:
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_spec(name: str) -> MethodSpec:
    from ..methods import get_method

    get_method(name)  # unknown names: the registry's one message
    _load_all()
    return _REGISTRY[name]


def make_config(name: str, preset: str = "tiny", **overrides):  # tiny: methods.PRESETS[0], the CPU size
    """Config dataclass for ``name`` from a preset plus free overrides (unknown keys are an error)."""
    spec = get_spec(name)
    if preset not in spec.presets and preset != "default":
        raise InputError(f"method '{name}' has no preset '{preset}' (available: {', '.join(spec.presets)})")
    values = dict(spec.presets.get(preset, {}))
    known = {f.name for f in dataclasses.fields(spec.config_cls)}
    bad = set(overrides) - known
    if bad:
        raise InputError(f"unknown option(s) for {name}: {', '.join(sorted(bad))}")
    values.update(overrides)
    return spec.config_cls(**values)


def build_model(name: str, preset: str = "tiny", config=None, **overrides) -> FusionModel:
    """Build a model by method name from a preset (or a ready config)."""
    spec = get_spec(name)
    cfg = config if config is not None else make_config(name, preset, **overrides)
    model = spec.builder(cfg)
    model.method = name
    return model


def config_from_dict(name: str, values: dict) -> Any:
    spec = get_spec(name)
    known = {f.name for f in dataclasses.fields(spec.config_cls)}
    return spec.config_cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in known})


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

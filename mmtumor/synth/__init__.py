"""Phantom generator: BraTS-like multi-modal MRI cases with ground truth (see docs/synth.md).

Heavy imports (nilearn, scipy) happen when the submodules are used, not on ``import mmtumor.synth``.
"""

from __future__ import annotations

__all__ = ["generate_case", "write_dataset", "SynthCase"]


def __getattr__(name: str):
    if name in __all__:
        from . import generate

        return getattr(generate, name)
    raise AttributeError(name)

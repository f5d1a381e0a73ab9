"""Atomic checkpoints of everything a resume needs: model, optimizer, scaler, epoch, RNG states, config.

Our own files, loaded with ``torch.load(weights_only=True)``: only tensors and plain containers, never pickled
objects. Downloaded weights use safetensors (see ``mmtumor.weights``).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from ..io.atomic import atomic_target
import torch


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": repr(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    s = state["numpy"]
    np.random.set_state((s[0], s[1].numpy().astype(np.uint32), s[2], s[3], s[4]))
    import ast

    py = ast.literal_eval(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


def save_checkpoint(path: Path, payload: dict) -> Path:
    """Write to a temp file in the same folder, then rename: a crash never leaves a half-written checkpoint."""
    with atomic_target(path, ".pt") as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: Path) -> dict:
    """Our own checkpoint, tensors only; one clear line (ReadError) for a truncated, pickled or foreign file."""
    from ..weights import read_checkpoint

    return read_checkpoint(path)

"""The one torch-free registry of methods: names, the module that builds each, the paper's training defaults, the
missing-modality schedule and the size presets. The CLI's choices, ``train``'s defaults and the model registry all
read this table (TotalSegmentator's ``registry.py`` is the model), so a method is added in one place.

The architectures behind each preset live with the networks (``models/<module>.py``, registered with
``models.registry.register``); a contract test checks that every method here is registered there and the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

#: size presets every method has: ``tiny`` for CPUs and tests, ``paper`` as published
PRESETS = ("tiny", "paper")
DEFAULT_METHOD = "a2fseg"


@dataclass(frozen=True)
class Method:
    """A segmentation method as ``train`` and the CLI know it (no torch needed)."""

    name: str
    module: str  # mmtumor.models.<module> builds and registers it
    optimizer: str  # the paper's optimiser, initial learning rate, patch and batch
    lr: float
    patch: tuple[int, int, int]
    batch: int
    dropout_schedule: str  # train.schedules: which modality subsets a training sample shows
    weight_decay: float = 0.0
    extra_presets: tuple[str, ...] = ()  # beyond PRESETS (e.g. the 2D variant a paper also describes)

    @property
    def presets(self) -> tuple[str, ...]:
        return PRESETS + self.extra_presets

    def training_defaults(self) -> dict:
        """Values for ``train.config.TrainConfig`` (epochs and iterations are ours, not the paper's)."""
        return {"optimizer": self.optimizer, "lr": self.lr, "patch": self.patch, "batch": self.batch,
                "weight_decay": self.weight_decay}


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("a2fseg", "a2fseg", "adam", 1e-2, (128, 128, 128), 2, "a2fseg"),
    Method("a2fseg-avg", "a2fseg", "adam", 1e-2, (128, 128, 128), 2, "a2fseg"),
    Method("robustseg", "robustseg", "adam", 1e-4, (80, 80, 80), 1, "bernoulli"),
    Method("mmformer", "mmformer", "adam", 2e-4, (128, 128, 128), 1, "uniform", weight_decay=1e-4),
    Method("hemis", "hemis", "adam", 1e-3, (128, 128, 128), 2, "uniform"),
    Method("unet", "unet", "sgd", 1e-2, (128, 128, 128), 2, "uniform"),
    Method("master-assistant", "master_assistant", "adam", 1e-3, (128, 128, 128), 2, "uniform",
           extra_presets=("paper2d",)),
)}


def method_names() -> list[str]:
    return sorted(METHODS)


def get_method(name: str) -> Method:
    """The method called ``name``; one clear line naming the choices when there is none."""
    try:
        return METHODS[name]
    except KeyError:
        raise InputError(f"unknown method '{name}' (available: {', '.join(method_names())})") from None


def default_preset(on_gpu: bool) -> str:
    """``paper`` on a GPU, ``tiny`` on a CPU: the one place that decides it."""
    return "paper" if on_gpu else "tiny"

"""Training configuration: per-method defaults from the papers, every value overridable, saved with the run."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..methods import get_method

AUGMENTATIONS = ("standard", "clinical", "none")  # train --augment; sampling.augment_batch does them

@dataclass
class TrainConfig:
    method: str
    data_dir: str
    run_dir: str
    preset: str = "tiny"  # api.train picks methods.default_preset (paper on a GPU) when none is given
    model_overrides: dict = field(default_factory=dict)
    epochs: int = 100
    iters_per_epoch: int = 250
    patch: tuple[int, ...] = (128, 128, 128)
    batch: int = 2
    lr: float = 1e-2
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.99
    poly_power: float = 0.9
    amp: bool = True
    device: str = "auto"
    workers: int = 2
    align: str | None = None
    align_weight: float = 0.1
    dropout_schedule: str | None = None
    subsets: str | None = None  # train only on these modality subsets ("T1c+FLAIR,T1c" or codes); replaces the schedule
    seed: int = 0
    split_seed: int = 0
    split_file: str | None = None  # JSON of fixed train/val/test case ids (io.dataset.read_split_file)
    val_every: int = 1
    val_max_cases: int = 10
    grad_clip: float = 12.0
    fg_fraction: float = 1 / 3
    augment: str = "standard"  # standard | clinical (adds elastic, bias field, thick slices) | none; old configs: bool
    cache_dir: str | None = None
    mix_data: str | None = None  # a second labelled folder (e.g. phantoms) whose cases all train, none validate
    mix_fraction: float = 0.25  # with mix_data: the share of patches drawn from it
    target_spacing: float | None = None  # resample training data to this isotropic spacing (mm); None = as is
    soft_labels: bool = False  # with target_spacing: train on each coarse voxel's region fraction, not a 0.5 threshold
    max_bad_steps: int = 10
    stop_after: int | None = None  # stop this invocation after N epochs (time-boxed jobs); continue with --resume
    time_limit: float | None = None  # minutes: stop when the next epoch would not fit; the poly schedule ends there
    init_from: str | None = None  # fine-tune from these weights (bundled name, folder, hf://, or a run folder / .pt)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["patch"] = list(self.patch)
        return d


def resolve_config(method: str, data_dir: str | Path, run_dir: str | Path, config_file: str | Path | None = None,
                   **overrides) -> TrainConfig:
    """Paper defaults for ``method`` <- values from ``config_file`` (JSON) <- explicit overrides (non-None)."""
    values: dict = {"method": method, "data_dir": str(data_dir), "run_dir": str(run_dir)}
    values.update(get_method(method).training_defaults())
    if config_file is not None:
        try:
            values.update(json.loads(Path(config_file).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read config file {config_file}: {exc}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    # the folders named on this call always win over a saved config: --resume -o NEW continues into NEW
    values.update({"data_dir": str(data_dir), "run_dir": str(run_dir)})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = set(values) - known
    if bad:
        raise InputError(f"unknown training option(s): {', '.join(sorted(bad))}")
    values["patch"] = tuple(int(p) for p in values["patch"])
    if isinstance(values.get("augment"), bool):  # configs saved before the clinical option
        values["augment"] = "standard" if values["augment"] else "none"
    cfg = TrainConfig(**values)
    if cfg.optimizer not in ("adam", "sgd"):
        raise InputError(f"unknown optimizer '{cfg.optimizer}' (adam or sgd)")
    if cfg.epochs < 1 or cfg.iters_per_epoch < 1 or cfg.batch < 1:
        raise InputError("epochs, iters-per-epoch and batch must be >= 1")
    if cfg.time_limit is not None and not cfg.time_limit > 0:
        raise InputError(f"--time-limit must be a positive number of minutes, not {cfg.time_limit}")
    if not 0.0 <= cfg.mix_fraction <= 1.0:
        raise InputError(f"--mix-fraction must be between 0 and 1, not {cfg.mix_fraction}")
    if cfg.mix_data and Path(cfg.mix_data).resolve() == Path(cfg.data_dir).resolve():
        raise InputError("--mix-data names the training folder itself; give a second folder (e.g. phantoms)")
    if cfg.augment not in AUGMENTATIONS:
        raise InputError(f"unknown augmentation '{cfg.augment}' ({', '.join(AUGMENTATIONS)})")
    if cfg.subsets is not None:
        from ..modalities import parse_subsets

        cfg.subsets = ",".join(s.code for s in parse_subsets(cfg.subsets))  # one-line error on a bad spec
    if any(p < 8 for p in cfg.patch):
        raise InputError(f"patch {cfg.patch} is too small (each side >= 8)")
    return cfg

"""Shared fixtures: tiny NIfTI cases in both BraTS namings, and the path of ../shared when present."""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL = SHARED / "data" / "real"


def write_img(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def tiny_label(shape=(12, 10, 8), scheme: str = "brats2021") -> np.ndarray:
    lab = np.zeros(shape, dtype=np.uint8)
    lab[2:9, 2:8, 2:6] = 2
    lab[3:7, 3:7, 3:5] = 1
    lab[4:6, 4:6, 3:5] = 4 if scheme == "brats2021" else 3
    return lab


def make_case(root: Path, case_id: str, naming: str = "brats2020", modalities=("t1", "t1ce", "t2", "flair"),
              label: bool = True, ext: str = ".nii.gz", shape=(12, 10, 8), affine=None) -> Path:
    sep = "_" if naming == "brats2020" else "-"
    folder = root / case_id
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))  # stable across processes, unlike hash()
    for m in modalities:
        write_img(folder / f"{case_id}{sep}{m}{ext}", rng.random(shape).astype(np.float32), affine)
    if label:
        write_img(folder / f"{case_id}{sep}seg{ext}", tiny_label(shape, "brats2021" if naming == "brats2020" else "brats2023"), affine)
    return folder


@pytest.fixture
def brats2020_dir(tmp_path: Path) -> Path:
    for i in range(5):
        make_case(tmp_path, f"BraTS20_Training_{i:03d}")
    return tmp_path


@pytest.fixture
def real_dir() -> Path:
    if not REAL.exists():
        pytest.skip("../shared/data/real is not available")
    return REAL


#: shape of the small phantoms the pipeline tests segment (6 mm voxels over a head-sized field of view)
SHAPE = (40, 40, 26)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    from mmtumor.models.registry import build_model
    from mmtumor.train.checkpoint import save_checkpoint
    from mmtumor.weights import export_run

    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("w")
    m = build_model("unet", "tiny")
    save_checkpoint(root / "run" / "best.pt", {"model": m.state_dict(), "method": "unet", "config": dataclasses.asdict(m.config),
                                              "train_config": json.dumps({"patch": [32, 32, 32], "target_spacing": 4.0})})
    return export_run(root / "run", root / "out", "tinyunet").weights_path


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    from mmtumor.synth import write_dataset

    root = tmp_path_factory.mktemp("ph")
    write_dataset(root, 2, seed=11, shape=SHAPE)
    return root

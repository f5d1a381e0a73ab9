"""Shared fixtures: tiny NIfTI cases in both BraTS namings, and the path of ../shared when present."""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on the 2-core machine: one torch thread each, or they oversubscribe the cores
    import torch

    torch.set_num_threads(1)

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


def small_brain_case(root: Path, i: int, spacing: float = 1.0) -> Path:
    """A skull-stripped-looking case of the smallest brain the pipeline accepts (an ellipsoid of about 0.5 L in a
    116 x 116 x 90 mm field of view) with a tumour (edema, enhancing ring, necrosis). At 1 mm it is co-registered on
    one grid, so preprocessing takes BraTS's lossless path; at other spacings the raw path (registration, 1 mm
    working grid). Either way an eighth of a 240 x 240 x 155 phantom's cost. Named like phantoms (Synth_*)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(1000 + i)
    shape = tuple(int(round(n / spacing)) for n in (116, 116, 90))
    g = np.stack(np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * spacing for n in shape], indexing="ij"))
    brain = (g[0] / 54) ** 2 + (g[1] / 54) ** 2 + (g[2] / 42) ** 2 <= 1
    c = np.array([12.0 - 8 * i, -6.0 + 5 * i, 4.0])
    r = np.sqrt(((g - c[:, None, None, None]) ** 2).sum(0))
    label = np.zeros(shape, np.uint8)
    label[brain & (r <= 16)] = 2
    label[brain & (r <= 10)] = 4
    label[brain & (r <= 6)] = 1
    folder = root / f"Synth_{i:05d}"
    folder.mkdir(parents=True)
    aff = np.diag([-spacing, -spacing, spacing, 1.0])
    for k, name in enumerate(("t1", "t1ce", "t2", "flair")):
        tissue = 400 + 200 * gaussian_filter(rng.standard_normal(shape), 3 / spacing)
        tissue += np.choose(label, [0, 150 * (k - 1.5), 300 * (k >= 2), 0, 500 * (k == 1)])
        img = np.where(brain, tissue + 20 * rng.standard_normal(shape), 0).astype(np.float32)
        nib.save(nib.Nifti1Image(img, aff), str(folder / f"Synth_{i:05d}_{name}.nii.gz"))
    nib.save(nib.Nifti1Image(label, aff), str(folder / f"Synth_{i:05d}_seg.nii.gz"))
    return folder


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


TRAIN_PHANTOM_SHAPE = (48, 48, 32)


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory) -> Path:
    """Eight small labelled phantoms in the BraTS layout: the training tests' data (1 mm, 48 x 48 x 32)."""
    from mmtumor.synth import write_dataset

    root = tmp_path_factory.mktemp("phantoms")
    write_dataset(root, 8, seed=7, shape=TRAIN_PHANTOM_SHAPE)
    return root


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """Two small raw-path patients (1.5 mm, so segment registers and resamples as for a clinical scan)."""
    root = tmp_path_factory.mktemp("ph")
    for i in range(2):
        small_brain_case(root, i, spacing=1.5)
    return root


def rotation(axis: int, degrees: float) -> np.ndarray:
    """3x3 rotation about voxel/world axis ``axis``."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    r = np.eye(3)
    i, j = [a for a in range(3) if a != axis]
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def grid_affine(spacing=(1.0, 1.0, 1.0), oblique_degrees: float = 0.0, origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    """A voxel -> RAS affine with the given spacing, tilted about the x axis by ``oblique_degrees``."""
    a = np.eye(4)
    a[:3, :3] = rotation(0, oblique_degrees) @ np.diag(np.asarray(spacing, float))
    a[:3, 3] = origin
    return a


def ellipsoid(shape, spacing, semi_axes_mm, inplane_degrees: float = 0.0, centre=None) -> np.ndarray:
    """Voxels inside an ellipsoid defined in the grid's own frame (mm along the voxel axes, orthogonal grids):
    semi-axes (a, b) in the plane of axes 0-1, rotated by ``inplane_degrees``, and c along axis 2. Its analytic
    RANO diameters on the central slice are 2a x 2b whatever the grid's tilt in the scanner."""
    sp = np.asarray(spacing, float)
    centre = np.asarray(centre if centre is not None else [(s - 1) / 2 for s in shape], float)
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(float)
    g = (idx - centre) * sp
    uv = g[..., :2] @ rotation(2, inplane_degrees)[:2, :2]
    a, b, c = semi_axes_mm
    return (uv[..., 0] / a) ** 2 + (uv[..., 1] / b) ** 2 + (g[..., 2] / c) ** 2 <= 1

"""One-time preprocessing cache per dataset: crop to the brain, normalise each modality, labels -> regions.

Each case becomes ``<id>.image.npy`` (float16 [4, D, H, W], absent modalities zero), ``<id>.regions.npy``
(uint8 [3, D, H, W]) and ``<id>.json`` (present mask, crop box, original affine). Arrays are opened memory-mapped
so DataLoader workers share the page cache instead of copying volumes.

Regions are binary (0/1) unless the cache is built with ``soft_labels`` and a ``target_spacing``: then each coarse
voxel keeps the fraction of it inside the region (0..255 = 0..1, ``label_scale`` 255), so a thin enhancing rim that
covers 30 % of a 2 mm voxel still teaches the model something instead of vanishing at a 0.5 threshold.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ..io.atomic import atomic_target, write_json_atomic

from ..errors import InputError
from ..io.dataset import Case, load_case
from ..labels import labels_to_regions
from ..voxels import bbox_of, resample_to_spacing

CACHE_VERSION = 1


def normalise_case(image: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every present modality normalised as inference does (``infer.core.normalise``) inside the brain mask of the
    skull-stripped training images; returns (image, brain mask)."""
    from ..infer.core import normalise
    from ..preprocess.normalize import brain_mask_from_image

    mask = brain_mask_from_image([image[i] for i in np.flatnonzero(present)])
    return normalise(image, present, mask), mask


def _save_npy_atomic(path: Path, arr: np.ndarray) -> None:
    with atomic_target(path, ".npy") as tmp:
        np.save(tmp, arr)


def label_scale(target_spacing: float | None, soft_labels: bool) -> int:
    """Stored value of a fully inside voxel: 255 for soft regions (only on a resampled grid), 1 for binary ones."""
    return 255 if soft_labels and target_spacing else 1


def dataset_key(cases: list[Case], target_spacing: float | None = None, soft_labels: bool = False) -> str:
    """Cache folder name: hash of the case files (paths, sizes, mtimes) and the cache version, so a changed dataset
    gets a new cache, then the training grid (``-2mm``) and ``-soft`` for soft regions, which need their own."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for c in sorted(cases, key=lambda c: c.case_id):
        for p in c.files:
            st = p.stat()
            h.update(f"{c.case_id}|{p}|{st.st_size}|{int(st.st_mtime)}".encode())
    key = h.hexdigest()[:16] + (f"-{target_spacing:g}mm" if target_spacing else "")
    return key + ("-soft" if label_scale(target_spacing, soft_labels) > 1 else "")


def _inside(regions: np.ndarray, scale: int) -> np.ndarray:
    """Bool: more than half of the voxel inside the region (the binary truth of binary and soft regions alike)."""
    return np.asarray(regions, dtype=np.int16) * 2 > scale


@dataclass
class CachedCase:
    case_id: str
    image: np.ndarray  # memory-mapped float16 [4, D, H, W]
    regions: np.ndarray  # memory-mapped uint8 [3, D, H, W]; region fraction = value / label_scale
    present: np.ndarray  # bool [4]
    fg_index: np.ndarray  # int32 [N, 3] sample of tumour voxel coordinates (for oversampling)
    label_scale: int = 1  # 1: binary regions; 255: soft (partial-volume) regions

    def regions_float(self, index=...) -> np.ndarray:
        """Region fractions in [0, 1] (float32) of ``regions[index]``."""
        return np.asarray(self.regions[index], dtype=np.float32) / self.label_scale

    def regions_binary(self) -> np.ndarray:
        """Bool regions: more than half of each voxel inside (the binary truth for validation and sampling)."""
        return _inside(self.regions, self.label_scale)


def build_cache(cases: list[Case], cache_dir: Path, progress=None, target_spacing: float | None = None,
                soft_labels: bool = False) -> list[CachedCase]:
    """Preprocess every case once (skipping those already cached) and open them memory-mapped.

    ``target_spacing`` (mm) resamples every case to isotropic voxels of that size (e.g. 2 mm CPU models);
    ``soft_labels`` then keeps the region fraction of each coarse voxel instead of thresholding it at 0.5.
    """
    scale = label_scale(target_spacing, soft_labels)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for case in cases:
        meta_path = cache_dir / f"{case.case_id}.json"
        if not meta_path.exists():
            if case.label is None:
                raise InputError(f"case {case.case_id} has no label file; training needs labels")
            loaded = load_case(case)
            image, mask = normalise_case(loaded.image, loaded.present)
            regions = labels_to_regions(loaded.label).astype(np.float32)
            if target_spacing:
                from ..io.nifti import voxel_spacing

                sp = voxel_spacing(loaded.affine)
                image = resample_to_spacing(image, sp, target_spacing, order=1)
                regions = resample_to_spacing(regions, sp, target_spacing, order=1)
                mask = resample_to_spacing(mask[None].astype(np.float32), sp, target_spacing, order=1)[0] > 0.5
                image *= mask[None]
            box = bbox_of(mask)
            regions = regions[(slice(None), *box)]
            regions = (np.rint(np.clip(regions, 0, 1) * scale) if scale > 1 else regions > 0.5).astype(np.uint8)
            _save_npy_atomic(cache_dir / f"{case.case_id}.image.npy", image[(slice(None), *box)].astype(np.float16))
            _save_npy_atomic(cache_dir / f"{case.case_id}.regions.npy", regions)
            fg = np.argwhere(_inside(regions[0], scale)).astype(np.int32)
            if len(fg) > 20000:
                fg = fg[np.random.default_rng(0).choice(len(fg), 20000, replace=False)]
            _save_npy_atomic(cache_dir / f"{case.case_id}.fg.npy", fg)
            meta = {"case_id": case.case_id, "present": loaded.present.tolist(), "box": [[s.start, s.stop] for s in box],
                    "affine": loaded.affine.tolist(), "version": CACHE_VERSION,
                    "label_scale": scale}
            write_json_atomic(meta_path, meta, indent=None)
        meta = json.loads(meta_path.read_text())
        if int(meta.get("label_scale", 1)) != scale:
            raise InputError(f"cache {cache_dir} holds {'binary' if scale > 1 else 'soft'} labels for {case.case_id}; "
                             "use another --cache-dir (soft and binary labels need their own caches)")
        out.append(CachedCase(
            case.case_id,
            np.load(cache_dir / f"{case.case_id}.image.npy", mmap_mode="r"),
            np.load(cache_dir / f"{case.case_id}.regions.npy", mmap_mode="r"),
            np.array(meta["present"], dtype=bool),
            np.load(cache_dir / f"{case.case_id}.fg.npy"),
            scale,
        ))
        if progress is not None:
            progress()
    return out

"""The segment pipeline for one patient: preprocess -> normalise -> sliding window -> labels -> native space -> files.

``Predictor`` loads the weights once and is reused across patients (batch mode). Every output is written to a
temporary name and renamed, so a failed case never leaves half-written files behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.nifti import read_nifti, write_nifti
from ..labels import ET, from_internal, parse_scheme, regions_to_labels
from ..metrics import DEFAULT_MIN_ET_VOXELS, check_component_fraction, check_min_et_voxels
from ..modalities import MODALITIES, subset_from_modalities
from .inputs import PatientInput


@dataclass
class SegmentOptions:
    device: str = "auto"
    tta: bool = False  # 8 mirrorings, ~4.5x the inference time; no gain for the current default on real scans (docs/segment.md)
    fast: bool = False
    overlap: float = 0.5
    sw_batch: int = 2
    threads: int | None = None
    label_scheme: str = "brats2021"
    save_probabilities: bool = False
    preview: bool = True
    output_type: str = "nifti"  # nifti | dicom-seg
    skull_strip: str | bool = "auto"
    n4: bool = False
    min_et_voxels: int = DEFAULT_MIN_ET_VOXELS  # ET smaller than this (in total) becomes NCR; 0 = off (metrics.py: why)
    # tumour components below this fraction of the largest are removed (metrics.drop_small_components); 0 = off.
    # On the six real validation cases it removes false-positive islands: Dice +0.04 / +0.08 / +0.05 (docs/segment.md)
    min_component_fraction: float = 0.2
    amp: bool = True

    def applied(self) -> SegmentOptions:
        """The options as inference uses them: ``fast`` means 25 % overlap and no TTA (the report shows these)."""
        return replace(self, overlap=0.25, tta=False) if self.fast else self


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


class Predictor:
    """A loaded model plus the options to run it; ``segment`` handles one patient."""

    def __init__(self, weights: str | Path | None = None, options: SegmentOptions | None = None) -> None:
        import torch

        from ..train.trainer import pick_device
        from ..weights import load_model, resolve

        self.options = options or SegmentOptions()
        if self.options.threads:
            torch.set_num_threads(int(self.options.threads))
        if self.options.output_type not in ("nifti", "dicom-seg"):
            raise InputError(f"unknown output type '{self.options.output_type}' (nifti or dicom-seg)")
        check_component_fraction(self.options.min_component_fraction)
        check_min_et_voxels(self.options.min_et_voxels)
        parse_scheme(self.options.label_scheme)
        if self.options.label_scheme == "brats2013":
            raise InputError("output label scheme must be brats2021 or brats2023")
        self.device = pick_device(self.options.device)
        t0 = time.perf_counter()
        self.resolved = resolve(weights)
        self.model, self.meta = load_model(self.resolved, device=str(self.device))
        self.load_seconds = time.perf_counter() - t0
        self.patch = tuple(self.meta.get("patch_size") or self.meta.get("patch") or (96, 96, 96))
        self.spacing = self.meta.get("spacing") or (self.meta.get("training") or {}).get("target_spacing")

    @property
    def weights_info(self) -> dict:
        from ..weights import sha256_file

        r = self.resolved
        return {"name": r.name, "method": r.method, "source": r.source, "spec": r.spec, "commit": r.commit,
                "sha256": r.files or {r.weights_path.name: sha256_file(r.weights_path)}, "verified": r.verified}

    def segment(self, patient: PatientInput, out_dir: Path | str, progress=None) -> dict:
        from ..metrics import drop_small_components, relabel_small_et, volumes_ml
        from ..preprocess import normalize_intensity, preprocess_case, to_native
        from ..weights import expected_dice
        from .sliding import sliding_window_regions

        opts = self.options.applied()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        timings: dict[str, float] = {}
        warnings = list(patient.warnings)

        def step(name):
            timings[name] = round(time.perf_counter() - t, 3)
            if progress:
                progress(name)

        t = time.perf_counter()
        pre = preprocess_case(patient.images, skull_strip=opts.skull_strip, n4=opts.n4)
        warnings += pre.warnings
        step("preprocess")
        t = time.perf_counter()

        def normalised(mask):
            image = np.zeros_like(pre.data, dtype=np.float32)
            for i in np.flatnonzero(pre.present):
                image[i] = normalize_intensity(pre.data[i], mask)
            return image

        def infer(image, mask):
            model_input = image
            if self.spacing and not np.allclose(pre.spacing, self.spacing, rtol=0.02):
                # the model works at its own voxel size (e.g. 2 mm CPU models): resample in, predict, resample back
                from ..train.cache import resample_to_spacing

                model_input = resample_to_spacing(image, pre.spacing, self.spacing, order=1)
                note = (f"model grid: {self.spacing:g} mm ({'x'.join(map(str, model_input.shape[1:]))}), "
                        f"probabilities resampled back to the {'x'.join(map(str, image.shape[1:]))} working grid")
                if note not in pre.steps:
                    pre.steps.append(note)
            probs = sliding_window_regions(self.model, model_input, pre.present.tolist(), self.patch, overlap=opts.overlap,
                                           sw_batch=opts.sw_batch, device=self.device, amp=opts.amp, tta=opts.tta)
            if probs.shape[1:] != image.shape[1:]:
                from ..train.cache import resize

                probs = resize(probs, image.shape[1:], order=1)
            return probs * mask[None]

        def islands_removed(probs):
            labels = regions_to_labels(probs > 0.5)
            before = int(np.count_nonzero(labels))
            if opts.min_component_fraction > 0:
                labels = drop_small_components(labels, opts.min_component_fraction)
            return labels, before - int(np.count_nonzero(labels))

        image = normalised(pre.brain_mask)
        step("normalise")
        t = time.perf_counter()
        probs = infer(image, pre.brain_mask)
        # what post-processing changed, in working-grid voxels (report.json "postprocessing")
        postprocessing = {"island_voxels_removed": 0, "et_voxels_relabelled_ncr": 0}
        labels, postprocessing["island_voxels_removed"] = islands_removed(probs)
        if pre.refined_mask is not None:
            # skull-on scan: a second pass on the refined brain mask, tumour-safe (mmtumor.preprocess.brainmask)
            from ..preprocess.brainmask import consensus_filter, tumour_safe_mask

            step("inference (atlas mask)")
            t = time.perf_counter()
            mask2, allowed = tumour_safe_mask(labels > 0, pre.refined_mask, pre.brain_mask, pre.spacing)
            outside = int(np.count_nonzero((labels > 0) & ~allowed))
            postprocessing["first_pass_voxels_outside_brain"] = outside
            if outside:
                warnings.append(f"skull-on scan: {outside * float(np.prod(pre.spacing)) / 1000.0:.1f} mL of tumour that the first "
                                "pass (atlas brain mask) found lay mostly outside the refined brain mask (orbit, scalp, neck?) "
                                "and was not kept; check the preview if the tumour may extend beyond the brain")
            probs = infer(normalised(mask2), mask2)
            labels, postprocessing["island_voxels_removed"] = islands_removed(probs)
            labels, postprocessing["second_pass_only_voxels_removed"] = consensus_filter(labels, allowed)
            ml = float(np.prod(pre.spacing)) / 1000.0
            pre.steps.append(f"second pass on the refined brain mask plus {mask2.sum() - (mask2 & pre.refined_mask).sum()} "
                             f"voxels around first-pass tumour ({mask2.sum() * ml:.0f} mL); tumour kept only where the "
                             f"first pass (atlas mask) also found it: {postprocessing['second_pass_only_voxels_removed']} voxels "
                             "dropped")
            step("inference (refined mask)")
        else:
            step("inference")
        t = time.perf_counter()
        if opts.min_et_voxels > 0:
            et_before = int(np.count_nonzero(labels == ET))
            labels = relabel_small_et(labels, opts.min_et_voxels)
            postprocessing["et_voxels_relabelled_ncr"] = et_before - int(np.count_nonzero(labels == ET))
            if postprocessing["et_voxels_relabelled_ncr"]:
                warnings.append(_et_relabel_warning(postprocessing["et_voxels_relabelled_ncr"], pre.spacing,
                                                    opts.min_et_voxels))
        native = to_native(labels, pre, order=0).astype(np.uint8)
        ref = read_nifti(patient.images[pre.reference], dtype=None)
        if native.shape != ref.data.shape:
            raise InputError(f"internal error: native result {native.shape} differs from the reference {ref.data.shape}")
        outputs: dict[str, str] = {}
        seg_path = write_nifti(out_dir / "segmentation.nii.gz", from_internal(native, opts.label_scheme), ref.affine)
        outputs["segmentation"] = str(seg_path)
        if opts.save_probabilities:
            native_probs = np.stack([to_native(p, pre, order=1) for p in probs], axis=-1).astype(np.float32)
            outputs["probabilities"] = str(write_nifti(out_dir / "probabilities.nii.gz", native_probs, ref.affine))
        volumes = volumes_ml(native, ref.affine)
        _atomic_text(out_dir / "volumes.json", json.dumps(volumes, indent=2))
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["region", "volume_ml"])
        for k, v in volumes.items():
            w.writerow([k, f"{v:.3f}"])
        _atomic_text(out_dir / "volumes.csv", buf.getvalue())
        outputs["volumes"] = str(out_dir / "volumes.json")
        step("write")
        if opts.preview:
            t = time.perf_counter()
            from .preview import write_preview

            imgs = {}
            for m in MODALITIES:
                if m not in patient.images:
                    continue
                if m == pre.reference:
                    imgs[m.value] = ref.data.astype(np.float32)
                else:  # the co-registered modality, brought to the reference's native grid for display
                    imgs[m.value] = to_native(pre.data[m.index], pre, order=1)
            outputs["preview"] = str(write_preview(out_dir / "preview.png", imgs, native, ref.affine,
                                                   title=f"{patient.name}: WT {volumes['WT']:.1f} mL, TC {volumes['TC']:.1f} mL, ET {volumes['ET']:.1f} mL"))
            step("preview")
        if opts.output_type == "dicom-seg":
            t = time.perf_counter()
            from .dicomseg import write_dicom_seg

            outputs["dicom_seg"] = str(write_dicom_seg(out_dir / "segmentation.dcm", native, patient, pre.reference))
            step("dicom-seg")
        subset = subset_from_modalities(m for m in patient.images)
        report = {
            "mmtumor_version": _version(),
            "patient": patient.name,
            "input": {"source": patient.source, "images": {m.value: str(p) for m, p in patient.images.items()},
                      "warnings": list(patient.warnings)},
            "detections": patient.detections,
            "modality_subset": {"code": subset.code, "name": subset.name},
            "preprocessing": {"steps": pre.steps, "reference": pre.reference.value, "brats_preprocessed": pre.brats_preprocessed,
                              "timings": pre.timings, "normalisation": "mmtumor.preprocess.normalize_intensity"},
            "weights": self.weights_info,
            "expected_dice": expected_dice(self.meta, subset),
            "expected_dice_note": "from the model card: mean Dice on held-out phantoms for this modality subset; real scans may differ",
            "device": str(self.device),
            "options": dict(opts.__dict__),  # as applied (--fast: overlap 0.25, no TTA)
            "label_scheme": opts.label_scheme,
            "labels": ({"1": "NCR/NET", "2": "ED", "4": "ET"} if opts.label_scheme == "brats2021" else {"1": "NETC", "2": "SNFH", "3": "ET"}),
            "volumes_ml": volumes,
            "postprocessing": postprocessing,
            "timings_s": timings,
            "warnings": warnings,
            "outputs": outputs,
            "environment": {"python": platform.python_version(), "platform": platform.platform()},
        }
        _atomic_text(out_dir / "report.json", json.dumps(report, indent=2, default=str))
        report["outputs"]["report"] = str(out_dir / "report.json")
        return report


def _et_relabel_warning(voxels: int, spacing: tuple[float, float, float], min_et_voxels: int) -> str:
    """Say so when the small-ET rule changed the answer: a clinician must know that a tiny enhancing focus was seen."""
    ml = voxels * float(np.prod(spacing)) / 1000.0  # spacing: the working grid's (x, y, z) voxel size in mm
    return (f"enhancing tumour of {voxels} voxels ({ml:.2f} mL) was below --min-et-voxels {min_et_voxels} "
            f"and was relabelled as necrosis/non-enhancing core (tumour core unchanged); --min-et-voxels 0 keeps it")


def _version() -> str:
    from .. import __version__

    return __version__

"""The segment pipeline for one patient: preprocess -> inference core (``core.predict``) -> native space -> writers.

``Predictor`` loads the weights once and is reused across patients (batch mode). Every output is written to a
temporary name and renamed, so a failed case never leaves half-written files behind.
"""

from __future__ import annotations

import platform
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.atomic import write_bytes_atomic
from ..io.nifti import read_nifti
from ..labels import parse_scheme
from ..modalities import MODALITIES, subset_from_modalities
from ..postprocess import DEFAULT_MIN_ET_VOXELS, check_component_fraction, check_min_et_voxels, check_region_thresholds
from ..preprocess.spatial import PreprocessResult
from .core import InferenceSettings, Prediction, predict_case
from .inputs import PatientInput
from ..io.staging import check_output_folder, staged_folder
from .writers import (LABEL_NAMES, write_probabilities, write_report_page, write_run_report, write_segmentation,
                      write_volumes)


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
    min_et_voxels: int = DEFAULT_MIN_ET_VOXELS  # ET smaller than this (in total) becomes NCR; 0 = off (postprocess.py: why)
    # tumour components below this fraction of the largest are removed (postprocess.drop_small_components); 0 = off.
    # On the six real validation cases it removes false-positive islands: Dice +0.04 / +0.08 / +0.05 (docs/segment.md)
    min_component_fraction: float = 0.2
    amp: bool = True
    # region probability thresholds (WT, TC, ET); None: the weights' own (metadata region_thresholds), else 0.5 each
    thresholds: tuple[float, float, float] | None = None
    # modalities enhancing tumour is predicted from when T1c is present ("T1c,FLAIR", "all"); None: the weights' own
    et_modalities: str | None = None

    def applied(self) -> SegmentOptions:
        """The options as inference uses them: ``fast`` means 25 % overlap and no TTA (the report shows these)."""
        return replace(self, overlap=0.25, tta=False) if self.fast else self


class Predictor:
    """A loaded model plus the options to run it; ``segment`` handles one patient."""

    def __init__(self, weights: str | Path | None = None, options: SegmentOptions | None = None) -> None:
        import torch

        from ..device import pick_device
        from ..weights import load_model, resolve

        self.options = options or SegmentOptions()
        if self.options.threads:
            torch.set_num_threads(int(self.options.threads))
        if self.options.output_type not in ("nifti", "dicom-seg"):
            raise InputError(f"unknown output type '{self.options.output_type}' (nifti or dicom-seg)")
        check_component_fraction(self.options.min_component_fraction)
        check_min_et_voxels(self.options.min_et_voxels)
        if self.options.thresholds is not None:
            self.options = replace(self.options, thresholds=check_region_thresholds(self.options.thresholds))
        parse_scheme(self.options.label_scheme)
        if self.options.label_scheme == "brats2013":
            raise InputError("output label scheme must be brats2021 or brats2023")
        self.device = pick_device(self.options.device)
        t0 = time.perf_counter()
        self.resolved = resolve(weights)
        self.model, self.meta = load_model(self.resolved, device=str(self.device))
        self.load_seconds = time.perf_counter() - t0
        self.settings = inference_settings(self.meta, self.options)

    @property
    def weights_info(self) -> dict:
        from ..weights import sha256_file

        r = self.resolved
        return {"name": r.name, "method": r.method, "source": r.source, "spec": r.spec, "commit": r.commit,
                "sha256": r.files or {r.weights_path.name: sha256_file(r.weights_path)}, "verified": r.verified}

    @property
    def thresholds_info(self) -> dict:
        """The probability thresholds applied per region and where they came from (report.json)."""
        wt, tc, et = self.settings.region_thresholds
        source = ("--thresholds" if self.options.thresholds is not None else
                  "the weights' metadata" if self.meta.get("region_thresholds") else "default (0.5)")
        return {"WT": wt, "TC": tc, "ET": et, "source": source,
                "note": str(self.meta.get("region_thresholds_source") or "") if source == "the weights' metadata" else ""}

    @property
    def et_modalities_info(self) -> dict:
        """Which modalities enhancing tumour is predicted from when T1c is present, and why (report.json)."""
        chosen = self.settings.et_modalities
        source = ("--et-modalities" if self.options.et_modalities is not None else
                  "the weights' metadata" if self.meta.get("et_modalities") else "default (all present)")
        return {"modalities": "all present" if chosen is None else [MODALITIES[i].value for i in chosen],
                "source": source}

    def predict(self, pre: PreprocessResult) -> Prediction:
        """The inference core on a preprocessed case (the step ``benchmark`` shares)."""
        return predict_case(self.model, pre, self.settings, self.device)

    def segment(self, patient: PatientInput, out_dir: Path | str, progress=None) -> dict:
        """resolve (done: ``patient``) -> preprocess -> inference core -> native space -> write; returns the report.

        All or nothing: the outputs are written into a staging folder that replaces ``out_dir`` as a whole only when
        every one of them was written (``io.staging``); a failure or an interruption leaves ``out_dir`` as it was.
        """
        out_dir = Path(out_dir)
        opts = self.options.applied()
        if opts.output_type == "dicom-seg" and (patient.source != "dicom" or not patient.dicom):
            raise InputError("--output-type dicom-seg needs DICOM input (the SEG references the source series)")
        check_output_folder(out_dir, expected_output_bytes(patient))
        with staged_folder(out_dir) as stage, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # library warnings go to the report, not the terminal
            report = self._segment_into(patient, stage, progress)
            report["library_warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
            report["outputs"] = {k: str(out_dir / Path(v).name) for k, v in report["outputs"].items()}
            report["outputs"]["report_html"] = str(out_dir / "report.html")
            write_run_report(stage, report)
            write_report_page(stage, report)
        report["outputs"]["report"] = str(out_dir / "report.json")
        return report

    def _segment_into(self, patient: PatientInput, out_dir: Path, progress=None) -> dict:
        from ..preprocess import preprocess_case, to_native

        opts = self.options.applied()
        clock = _Clock(progress)
        with clock("preprocess"):
            pre = preprocess_case(patient.images, skull_strip=opts.skull_strip, n4=opts.n4)
        with clock("inference"):
            pred = self.predict(pre)
        native = to_native(pred.labels, pre, order=0).astype(np.uint8)
        ref = read_nifti(patient.images[pre.reference], dtype=None)
        if native.shape != ref.data.shape:
            raise InputError(f"internal error: native result {native.shape} differs from the reference {ref.data.shape}")
        with clock("write"):
            outputs, volumes = self._write_results(out_dir, native, pred, pre, ref.affine, opts)
        if patient.source == "dicom":  # the converted series lives in a temporary folder: keep the one measured on
            outputs["reference_image"] = str(write_bytes_atomic(out_dir / f"reference_{pre.reference.value}.nii.gz",
                                                                _gz_bytes(patient.images[pre.reference])))
        with clock("lesions"):
            lesions, rano, outputs_clinical = self._write_clinical(out_dir, native, pre, ref)
            outputs.update(outputs_clinical)
        if opts.preview:
            with clock("preview"):
                outputs["preview"] = str(self._write_preview(out_dir, patient, pre, ref, native, volumes))
        if opts.output_type == "dicom-seg":
            from .dicomseg import write_dicom_seg

            with clock("dicom-seg"):
                outputs["dicom_seg"] = str(write_dicom_seg(out_dir / "segmentation.dcm", native, patient, pre.reference))
        report = self._report(patient, pre, pred, opts, volumes, outputs, clock.timings)
        report["lesions"], report["rano"] = lesions, rano
        return report

    @staticmethod
    def _write_clinical(out_dir: Path, native: np.ndarray, pre: PreprocessResult, ref) -> tuple[dict, dict, dict]:
        """Lesion table and RANO measurements on the reference's native grid (the T1c's when present)."""
        from .clinical import atlas_frame, measure_case, write_lesions_csv, write_measurement_overlays

        image = np.asarray(ref.data, np.float32)
        lesions, rano, _ = measure_case(native, ref.affine, pre.reference, atlas_frame(pre, image))
        outputs = {"lesions_csv": str(write_lesions_csv(out_dir, lesions, rano))}
        outputs.update(write_measurement_overlays(out_dir, image, native, ref.affine, rano,
                                                  title=f"RANO measurements on the {rano['grid']}"))
        return lesions, rano, outputs

    def _write_results(self, out_dir: Path, native: np.ndarray, pred: Prediction, pre: PreprocessResult, affine,
                       opts: SegmentOptions) -> tuple[dict[str, str], dict[str, float]]:
        from ..metrics import volumes_ml
        from ..preprocess import to_native

        outputs = {"segmentation": str(write_segmentation(out_dir, native, affine, opts.label_scheme))}
        if opts.save_probabilities:
            native_probs = np.stack([to_native(p, pre, order=1) for p in pred.probabilities], axis=-1)
            outputs["probabilities"] = str(write_probabilities(out_dir, native_probs, affine))
        volumes = volumes_ml(native, affine)
        outputs["volumes"] = str(write_volumes(out_dir, volumes))
        return outputs, volumes

    @staticmethod
    def _write_preview(out_dir: Path, patient: PatientInput, pre: PreprocessResult, ref, native: np.ndarray,
                       volumes: dict[str, float]) -> Path:
        from ..preprocess import to_native
        from .preview import write_preview

        imgs = {}
        for m in MODALITIES:
            if m not in patient.images:
                continue
            if m == pre.reference:
                imgs[m.value] = ref.data.astype(np.float32)
            else:  # the co-registered modality, brought to the reference's native grid for display
                imgs[m.value] = to_native(pre.data[m.index], pre, order=1)
        title = f"{patient.name}: WT {volumes['WT']:.1f} mL, TC {volumes['TC']:.1f} mL, ET {volumes['ET']:.1f} mL"
        return write_preview(out_dir / "preview.png", imgs, native, ref.affine, title=title)

    def _report(self, patient: PatientInput, pre: PreprocessResult, pred: Prediction, opts: SegmentOptions,
                volumes: dict[str, float], outputs: dict[str, str], timings: dict[str, float]) -> dict:
        from ..weights import expected_dice

        subset = subset_from_modalities(m for m in patient.images)
        return {
            "mmtumor_version": _version(),
            "patient": patient.name,
            "input": {"source": patient.source, "images": {m.value: str(p) for m, p in patient.images.items()},
                      "warnings": list(patient.warnings)},
            "detections": patient.detections,
            "modality_subset": {"code": subset.code, "name": subset.name},
            "preprocessing": {"steps": [*pre.steps, *pred.notes], "reference": pre.reference.value,
                              "brats_preprocessed": pre.brats_preprocessed, "timings": pre.timings,
                              "normalisation": "mmtumor.preprocess.normalize_intensity"},
            "weights": self.weights_info,
            "expected_dice": expected_dice(self.meta, subset),
            "expected_dice_note": "from the model card, for this modality subset: "
                                  + str((self.meta.get("metrics") or {}).get("expected_dice_source") or "held-out phantoms")
                                  + "; your scans may differ",
            "device": str(self.device),
            "options": dict(opts.__dict__),  # as applied (--fast: overlap 0.25, no TTA)
            "label_scheme": opts.label_scheme,
            "labels": LABEL_NAMES[opts.label_scheme],
            "volumes_ml": volumes,
            "postprocessing": pred.postprocessing,
            "region_thresholds": self.thresholds_info,
            "et_modalities": self.et_modalities_info,
            "timings_s": timings,
            "warnings": [*patient.warnings, *pre.warnings, *pred.warnings],
            "outputs": outputs,
            "environment": {"python": platform.python_version(), "platform": platform.platform()},
        }


def expected_output_bytes(patient: PatientInput) -> int:
    """A generous estimate of what ``segment`` writes for this patient (checked against the free disk space)."""
    sizes = [Path(p).stat().st_size for p in patient.images.values() if Path(p).exists()]
    return 3 * max(sizes, default=0) + 5 * 2**20


def inference_settings(meta: dict, options: SegmentOptions) -> InferenceSettings:
    """The core's settings for these weights and these (applied) segment options."""
    opts = options.applied()
    return InferenceSettings.for_model(meta, overlap=opts.overlap, sw_batch=opts.sw_batch, tta=opts.tta, amp=opts.amp,
                                       min_component_fraction=opts.min_component_fraction,
                                       min_et_voxels=opts.min_et_voxels, region_thresholds=opts.thresholds,
                                       et_modalities=opts.et_modalities)


class _Clock:
    """Seconds per named step (report.json ``timings_s``), telling ``progress`` as each step ends."""

    def __init__(self, progress=None) -> None:
        self.timings: dict[str, float] = {}
        self.progress = progress

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t0, 3)
        if self.progress:
            self.progress(name)


def _gz_bytes(path: Path | str) -> bytes:
    """A NIfTI file's bytes, gzip-compressed if it is not already."""
    import gzip

    data = Path(path).read_bytes()
    return data if data[:2] == b"\x1f\x8b" else gzip.compress(data, compresslevel=6)


def _version() -> str:
    from ..version import __version__

    return __version__

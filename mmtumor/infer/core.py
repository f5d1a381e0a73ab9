"""The one inference core: a working-grid image in, labels, probabilities and a record of post-processing out.

Everything here works in memory and knows no files: ``segment`` wraps it with reading, preprocessing, the way back to
native space and the writers; ``benchmark`` feeds it the same preprocessing from in-memory arrays; training
validation feeds it the cache's already-normalised volumes. So every figure we publish describes what ``segment``
does, by construction (the split mirrors nnU-Net v2's prediction vs ``export_prediction``).

Steps of ``predict``: normalise each present modality inside the brain mask -> resample to the model's voxel size ->
sliding window (for a model that names its ``et_modalities``, a second one for enhancing tumour) -> back to the
working grid -> zero outside the brain -> labels -> remove small tumour islands -> (skull-on scans: a tumour-safe
second pass on the refined brain mask) -> relabel a tiny enhancing tumour as NCR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..labels import ET, regions_to_labels
from ..modalities import MODALITIES, Modality, parse_modality
from ..postprocess import (DEFAULT_MIN_ET_VOXELS, NEUTRAL_THRESHOLDS, check_region_thresholds, drop_small_components,
                           relabel_small_et)
from ..voxels import resample_to_spacing, resize

#: patch used when a weights file names none (old exports)
FALLBACK_PATCH = (96, 96, 96)


@dataclass(frozen=True)
class InferenceSettings:
    """How a model is run and its output post-processed (the options ``segment`` and ``benchmark`` share)."""

    patch: tuple[int, int, int] = FALLBACK_PATCH
    model_spacing: float | None = None  # mm; None: the model works on the working grid as it is
    overlap: float = 0.5
    sw_batch: int = 2
    tta: bool = False
    amp: bool = True
    min_component_fraction: float = 0.2  # postprocess.drop_small_components; 0 = off
    min_et_voxels: int = DEFAULT_MIN_ET_VOXELS  # postprocess.relabel_small_et; 0 = off
    # probability above which a voxel is WT, TC, ET (postprocess.region_thresholds: why a model may carry its own)
    region_thresholds: tuple[float, float, float] = NEUTRAL_THRESHOLDS
    # channels the enhancing tumour is predicted from when T1c is present (et_channels: why); None = every present one
    et_modalities: tuple[int, ...] | None = None

    @classmethod
    def for_model(cls, meta: Mapping, **options) -> InferenceSettings:
        """Patch, voxel size and region thresholds from a weights file's metadata (one place for the fallbacks), then
        ``options`` (``None`` = the model's own)."""
        from ..weights.manifest import model_window

        patch, spacing = model_window(meta)
        patch = patch or FALLBACK_PATCH
        chosen = {k: v for k, v in options.items() if v is not None}
        chosen["region_thresholds"] = check_region_thresholds(chosen.get("region_thresholds")
                                                              or meta.get("region_thresholds") or NEUTRAL_THRESHOLDS)
        chosen["et_modalities"] = parse_et_modalities(chosen["et_modalities"] if "et_modalities" in chosen
                                                      else meta.get("et_modalities"))
        return cls(patch=tuple(int(p) for p in patch), model_spacing=spacing, **chosen)


@dataclass
class Prediction:
    """Labels (internal scheme) and region probabilities [3, ...] (WT, TC, ET) on the working grid."""

    labels: np.ndarray
    probabilities: np.ndarray
    postprocessing: dict[str, int] = field(default_factory=dict)  # what each rule changed, in working-grid voxels
    notes: list[str] = field(default_factory=list)  # processing steps worth reporting
    warnings: list[str] = field(default_factory=list)


def parse_et_modalities(value) -> tuple[int, ...] | None:
    """Channel indices from modality names ("T1c,FLAIR", a list, or indices); None for None, "all" or every one.

    One-line error unless the set holds T1c: enhancing tumour is defined by contrast enhancement."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "all")):
        return None
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    channels = sorted({int(v) if isinstance(v, int) else parse_modality(str(v)).index for v in items})
    if not all(0 <= c < len(MODALITIES) for c in channels):
        raise InputError(f"enhancing-tumour modality channels must be 0-{len(MODALITIES) - 1}, not {value!r}")
    if Modality.T1C.index not in channels:
        raise InputError(f"the enhancing-tumour modalities must include T1c (e.g. T1c,FLAIR or all), not {value!r}")
    return None if len(channels) == len(MODALITIES) else tuple(channels)


def et_channels(present: Sequence[bool], et_modalities: Sequence[int] | None) -> list[bool] | None:
    """The present channels the enhancing tumour is predicted from, or None when it comes from every present one.

    Why a model may name them (metadata ``et_modalities``): inside enhancing tumour the default's adaptive fusion
    gives every modality about the same weight (docs/training.md, "Where the default's enhancing tumour goes"), so
    T1 and T2, which do not show enhancement, dilute T1c: ET Dice on the real val cases falls from 0.705 with
    T1c + FLAIR to 0.649 with all four. Only with T1c present (without it there is no enhancement to see)."""
    if et_modalities is None or not present[Modality.T1C.index]:
        return None
    chosen = [bool(p) and i in et_modalities for i, p in enumerate(present)]
    return None if chosen == [bool(p) for p in present] else chosen


def normalise(image: np.ndarray, present: Sequence[bool], brain_mask: np.ndarray) -> np.ndarray:
    """Every present modality normalised with the project's one normalisation; absent channels stay zero."""
    from ..preprocess.normalize import normalize_intensity

    out = np.zeros_like(image, dtype=np.float32)
    for i in np.flatnonzero(np.asarray(present, dtype=bool)):
        out[i] = normalize_intensity(image[i], brain_mask)
    return out


def region_probabilities(model, image: np.ndarray, present: Sequence[bool], spacing: Sequence[float],
                         brain_mask: np.ndarray, settings: InferenceSettings, device) -> tuple[np.ndarray, list[str]]:
    """Probabilities [3, ...] on the working grid, zero outside the brain, from a normalised image; and notes when
    the model worked at its own voxel size (e.g. 2 mm CPU models: resample in, predict, resample back) or took
    enhancing tumour from fewer modalities (``et_modalities``)."""
    from .sliding import sliding_window_regions

    model_input, notes = image, []
    if settings.model_spacing and not np.allclose(spacing, settings.model_spacing, rtol=0.02):
        model_input = resample_to_spacing(image, spacing, settings.model_spacing, order=1)
        notes.append(f"model grid: {settings.model_spacing:g} mm ({'x'.join(map(str, model_input.shape[1:]))}), "
                     f"probabilities resampled back to the {'x'.join(map(str, image.shape[1:]))} working grid")

    def window(volume: np.ndarray, channels: list[bool]) -> np.ndarray:
        return sliding_window_regions(model, volume, channels, settings.patch, overlap=settings.overlap,
                                      sw_batch=settings.sw_batch, device=device, amp=settings.amp, tta=settings.tta)

    probs = window(model_input, [bool(p) for p in present])
    et_from = et_channels(present, settings.et_modalities)
    if et_from is not None:  # a second pass on fewer modalities (the others absent), for enhancing tumour only
        probs[2] = window(model_input, et_from)[2]
        names = "+".join(m.value for m, used in zip(MODALITIES, et_from, strict=True) if used)
        notes.append(f"enhancing tumour predicted from {names} only (the model's et_modalities: fusing T1 or T2 "
                     "dilutes T1c there; --et-modalities all uses every given scan)")
    if probs.shape[1:] != image.shape[1:]:
        probs = resize(probs, image.shape[1:], order=1)
    return probs * brain_mask[None], notes


def labels_without_islands(probs: np.ndarray, min_component_fraction: float,
                           thresholds: Sequence[float] = NEUTRAL_THRESHOLDS) -> tuple[np.ndarray, int]:
    """Labels from probabilities (a threshold per region, nested regions) and how many voxels the island rule removed."""
    labels = regions_to_labels(probs > np.asarray(thresholds, dtype=probs.dtype).reshape(-1, *([1] * (probs.ndim - 1))))
    before = int(np.count_nonzero(labels))
    if min_component_fraction > 0:
        labels = drop_small_components(labels, min_component_fraction)
    return labels, before - int(np.count_nonzero(labels))


def predict(model, image: np.ndarray, present: Sequence[bool], spacing: Sequence[float], brain_mask: np.ndarray,
            settings: InferenceSettings, device="cpu", *, refined_mask: np.ndarray | None = None,
            normalised: bool = False) -> Prediction:
    """Labels for a co-registered image [4, ...] on one working grid (``spacing`` in mm, absent channels any value).

    ``refined_mask`` (skull-on scans, ``preprocess.brainmask``): a second, tumour-safe pass on the refined brain
    mask after the first on ``brain_mask``. ``normalised``: ``image`` is already normalised (the training cache).
    """
    brain_mask = np.asarray(brain_mask, dtype=bool)
    image_in = image if normalised else normalise(image, present, brain_mask)
    probs, notes = region_probabilities(model, image_in, present, spacing, brain_mask, settings, device)
    record = {"island_voxels_removed": 0, "et_voxels_relabelled_ncr": 0}
    pred = Prediction(labels=np.zeros(0), probabilities=probs, postprocessing=record, notes=notes)
    labels, record["island_voxels_removed"] = labels_without_islands(probs, settings.min_component_fraction,
                                                                         settings.region_thresholds)
    if refined_mask is not None:
        labels = _second_pass(model, image, present, spacing, brain_mask, refined_mask, labels, settings, device, pred,
                              normalised)
    if settings.min_et_voxels > 0:
        et_before = int(np.count_nonzero(labels == ET))
        labels = relabel_small_et(labels, settings.min_et_voxels)
        record["et_voxels_relabelled_ncr"] = et_before - int(np.count_nonzero(labels == ET))
        if record["et_voxels_relabelled_ncr"]:
            pred.warnings.append(_et_relabel_warning(record["et_voxels_relabelled_ncr"], spacing, settings.min_et_voxels))
    pred.labels = labels
    return pred


def _second_pass(model, image, present, spacing, atlas_mask, refined_mask, labels, settings, device,
                 pred: Prediction, normalised: bool = False) -> np.ndarray:
    """Skull-on scan: run again on the refined brain mask widened around first-pass tumour; keep only tumour the
    first pass (atlas mask) also found (``preprocess.brainmask``: why both passes are needed)."""
    from ..preprocess.brainmask import consensus_filter, tumour_safe_mask

    record = pred.postprocessing
    mask2, allowed = tumour_safe_mask(labels > 0, refined_mask, atlas_mask, spacing)
    outside = int(np.count_nonzero((labels > 0) & ~allowed))
    record["first_pass_voxels_outside_brain"] = outside
    ml = float(np.prod(spacing)) / 1000.0
    if outside:
        pred.warnings.append(f"skull-on scan: {outside * ml:.1f} mL of tumour that the first pass (atlas brain mask) "
                             "found lay mostly outside the refined brain mask (orbit, scalp, neck?) and was not kept; "
                             "check the preview if the tumour may extend beyond the brain")
    image2 = image if normalised else normalise(image, present, mask2)  # inside the new mask, as the first pass did
    probs, _ = region_probabilities(model, image2, present, spacing, mask2, settings, device)
    pred.probabilities = probs
    labels, record["island_voxels_removed"] = labels_without_islands(probs, settings.min_component_fraction,
                                                                         settings.region_thresholds)
    labels, record["second_pass_only_voxels_removed"] = consensus_filter(labels, allowed)
    pred.notes.append(f"second pass on the refined brain mask plus {mask2.sum() - (mask2 & refined_mask).sum()} "
                      f"voxels around first-pass tumour ({mask2.sum() * ml:.0f} mL); tumour kept only where the first "
                      f"pass (atlas mask) also found it: {record['second_pass_only_voxels_removed']} voxels dropped")
    return labels


def _et_relabel_warning(voxels: int, spacing: Sequence[float], min_et_voxels: int) -> str:
    """Say so when the small-ET rule changed the answer: a clinician must know that a tiny enhancing focus was seen."""
    ml = voxels * float(np.prod(spacing)) / 1000.0
    return (f"enhancing tumour of {voxels} voxels ({ml:.2f} mL) was below --min-et-voxels {min_et_voxels} "
            f"and was relabelled as necrosis/non-enhancing core (tumour core unchanged); --min-et-voxels 0 keeps it")


def predict_case(model, pre, settings: InferenceSettings, device="cpu") -> Prediction:
    """``predict`` on a ``preprocess.PreprocessResult`` (working grid, brain mask, refined mask of a skull-on scan):
    the call ``segment`` and ``benchmark`` share."""
    return predict(model, pre.data, pre.present, pre.spacing, pre.brain_mask, settings, device,
                   refined_mask=pre.refined_mask)

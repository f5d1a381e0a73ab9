"""Intensity normalisation and brain masks (mmtumor.preprocess.normalize)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmtumor.errors import InputError
from mmtumor.preprocess import brain_mask_from_image, normalize_intensity
from mmtumor.preprocess.normalize import DEFAULT_METHOD, METHODS, histogram_peak

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def _phantom_brain(rng: np.random.Generator, shape=(40, 44, 36)):
    """A ball 'brain' of tissue (~100, 70% of voxels) and a bright lesion (~300), zero outside."""
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    r = np.sqrt(((grid - centre.reshape(3, 1, 1, 1)) ** 2).sum(0))
    brain = r < 15
    img = np.zeros(shape, np.float32)
    img[brain] = rng.normal(100, 5, brain.sum())
    lesion = brain & (grid[0] > centre[0] + 6)
    img[lesion] = rng.normal(300, 10, lesion.sum())
    return img, brain, lesion


def test_zscore_inside_mask_and_input_untouched():
    img, brain, _ = _phantom_brain(np.random.default_rng(0))
    before = img.copy()
    out = normalize_intensity(img, brain, method="zscore")
    np.testing.assert_array_equal(img, before)
    assert out.dtype == np.float32
    assert abs(float(out[brain].mean())) < 1e-4 and abs(float(out[brain].std()) - 1) < 1e-3
    assert not out[~brain].any()


def test_peak_anchors_normal_tissue_and_is_scale_invariant():
    img, brain, lesion = _phantom_brain(np.random.default_rng(1))
    out = normalize_intensity(img, brain, method="peak")
    normal = brain & ~lesion
    assert abs(float(np.median(out[normal])) - 1.0) < 0.05  # the main tissue peak maps to 1, not the lesion
    assert abs(float(np.median(out[lesion])) - 3.0) < 0.2
    out_scaled = normalize_intensity(img * 7.5, brain, method="peak")
    np.testing.assert_allclose(out, out_scaled, rtol=1e-4, atol=1e-4)


def test_peak_ignores_tumour_burden_zscore_does_not():
    """Why peak exists: with more lesion, z-scored normal tissue moves, peak-normalised tissue does not."""
    rng = np.random.default_rng(2)
    img, brain, lesion = _phantom_brain(rng)
    small = img.copy()
    small[lesion] = rng.normal(100, 5, lesion.sum())  # the same brain without its lesion
    normal = brain & ~lesion
    z_shift = abs(np.median(normalize_intensity(img, brain, "zscore")[normal])
                  - np.median(normalize_intensity(small, brain, "zscore")[normal]))
    p_shift = abs(np.median(normalize_intensity(img, brain, "peak")[normal])
                  - np.median(normalize_intensity(small, brain, "peak")[normal]))
    assert z_shift > 0.3 and p_shift < 0.05


def test_peak_on_already_standardised_input_is_finite():
    img, brain, _ = _phantom_brain(np.random.default_rng(3))
    z = normalize_intensity(img, brain, "zscore")
    out = normalize_intensity(z, brain, "peak")
    assert np.isfinite(out).all() and np.percentile(out[brain], 1) >= 0 and 0.2 < np.median(out[brain]) < 5


def test_histogram_peak_finds_main_mode():
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.normal(50, 3, 7000), rng.normal(200, 3, 3000)])
    assert abs(histogram_peak(values) - 50) < 3


def test_peak_ignores_a_dark_shell_in_a_loose_mask():
    """A skull-on scan's atlas mask can hold as many voxels of dark bone/CSF as of brain: the peak must stay on
    the tissue (without the dark floor it sat on the shell and scaled the image up ~25-fold on a real brain)."""
    rng = np.random.default_rng(6)
    img, brain, lesion = _phantom_brain(rng)
    grid = np.indices(img.shape).astype(float)
    r = np.sqrt(((grid - ((np.array(img.shape) - 1) / 2).reshape(3, 1, 1, 1)) ** 2).sum(0))
    loose = r < 20  # the brain (r < 15) and a shell 5 voxels thick, larger than the brain's tissue volume
    shell = loose & ~brain
    img[shell] = np.abs(rng.normal(3, 1, shell.sum()))  # cortical bone / CSF on T1: nearly black
    assert shell.sum() > (brain & ~lesion).sum()
    assert abs(histogram_peak(img[loose]) - 3) < 3  # the plain mode is the dark shell ...
    out = normalize_intensity(img, loose, "peak")
    assert abs(float(np.median(out[brain & ~lesion])) - 1.0) < 0.05  # ... the normalisation ignores it
    # the floor changes nothing when the main mode is tissue (the mask is the brain)
    assert histogram_peak(img[brain], above=0.1 * np.percentile(img[brain], 99)) == histogram_peak(img[brain])


def test_bad_method_and_shapes():
    img, brain, _ = _phantom_brain(np.random.default_rng(5))
    with pytest.raises(InputError):
        normalize_intensity(img, brain, method="minmax")
    with pytest.raises(InputError):
        normalize_intensity(img, brain[:-1])
    with pytest.raises(InputError):
        brain_mask_from_image([img, img[:-1]])
    assert DEFAULT_METHOD in METHODS


def test_brain_mask_robust_to_background_noise_and_offset():
    rng = np.random.default_rng(6)
    img, brain, _ = _phantom_brain(rng)
    noisy = img + np.abs(rng.normal(0, 0.8, img.shape)).astype(np.float32)  # faint Rician-like background
    mask = brain_mask_from_image(noisy)
    dice = 2 * (mask & brain).sum() / (mask.sum() + brain.sum())
    assert dice > 0.98
    z = np.where(brain, (img - 150) / 80, -3.6).astype(np.float32)  # z-scored file (BraTS 2013): constant background
    assert brain_mask_from_image({"a": z}).sum() == brain.sum()
    other = np.zeros_like(img)
    other[brain & (np.indices(img.shape)[0] < 20)] = 50  # union over modalities
    assert (brain_mask_from_image([img, other]) == brain).all()


def test_default_normalisation_without_mask_uses_foreground():
    img, brain, _ = _phantom_brain(np.random.default_rng(7))
    out = normalize_intensity(img)
    assert not out[~brain].any() and np.isfinite(out).all()


def test_real_scan_normalisation():
    case = REAL / "BraTS-GLI-00001-000"
    if not case.is_dir():
        pytest.skip("../shared/data/real not present")
    from mmtumor.io.nifti import read_nifti

    flair = read_nifti(case / "BraTS-GLI-00001-000-t2f.nii.gz").data
    mask = brain_mask_from_image(flair)
    assert 0.97 < mask.sum() / (flair > 0).sum() < 1.03
    for method in METHODS:
        out = normalize_intensity(flair, mask, method)
        assert np.isfinite(out).all() and not out[~mask].any()
    peak = normalize_intensity(flair, mask, "peak")
    assert 0.8 < float(np.median(peak[mask])) < 1.2

"""Atlas brain-mask refinement and the tumour-safe second pass (mmtumor.preprocess.brainmask), and `segment` on a
skull-on scan end to end."""

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from mmtumor.modalities import Modality as M
from mmtumor.preprocess.brainmask import consensus_filter, refine_brain_mask, tumour_safe_mask
from mmtumor.synth.head import wrap_in_head
from tests.test_head import _stripped_brain


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_refinement_cuts_a_loose_mask_back_to_the_brain():
    imgs, aff, _ = _stripped_brain(sp=2.0)
    out, big_aff, brain = wrap_in_head(imgs, aff, seed=4)
    data = np.zeros((4, *brain.shape), np.float32)
    data[M.T1C.index], data[M.FLAIR.index] = out[M.T1C], out[M.FLAIR]
    present = [False, True, False, True]
    loose = ndi.distance_transform_edt(~brain, sampling=2.0) <= 8.0  # an atlas mask 8 mm too large all round
    refined, why = refine_brain_mask(data, present, loose, spacing=(2.0, 2.0, 2.0))
    assert refined is not None, why
    assert _dice(loose, brain) < 0.85
    assert _dice(refined, brain) > 0.93, why
    assert refined.sum() < loose.sum()
    # nothing of the bright scalp fat survives in the refined mask
    far = ndi.distance_transform_edt(~brain, sampling=2.0) > 6.0
    assert (refined & far).sum() < 0.01 * refined.sum()


def test_refinement_gives_up_rather_than_guessing():
    imgs, aff, brain = _stripped_brain(sp=2.0)
    data = np.zeros((4, *brain.shape), np.float32)
    data[M.T1C.index] = imgs[M.T1C]
    tiny = np.zeros_like(brain)
    tiny[30:34, 30:34, 30:34] = True  # no core to take a tissue level from
    refined, why = refine_brain_mask(data, [False, True, False, False], tiny, spacing=(2.0, 2.0, 2.0))
    assert refined is None and "core" in why
    refined, why = refine_brain_mask(np.zeros_like(data), [False, True, False, False], brain, spacing=(2.0, 2.0, 2.0))
    assert refined is None  # a blank image: no tissue level, no brain-like region


def test_tumour_safe_mask_keeps_a_surface_tumour_and_hides_the_orbit():
    shape = (40, 40, 40)
    atlas = np.zeros(shape, bool)
    atlas[2:38, 2:38, 2:38] = True
    refined = np.zeros(shape, bool)
    refined[6:34, 6:34, 6:34] = True
    first = np.zeros(shape, bool)
    first[8:14, 26:36, 10:16] = True  # a tumour mostly inside the refined brain, reaching past its surface
    first[34:38, 2:6, 2:6] = True  # a "tumour" in the orbit: outside the refined brain
    mask2, allowed = tumour_safe_mask(first, refined, atlas, spacing=(1.0, 1.0, 1.0))
    assert mask2[8:14, 34:36, 10:16].all()  # the surface part of the tumour stays in view
    assert not mask2[34:38, 2:6, 2:6].any()  # the orbit is out of view
    assert (mask2 & ~atlas).sum() == 0 and (refined & ~mask2).sum() == 0
    labels = np.zeros(shape, np.uint8)
    labels[first] = 2
    labels[20:24, 20:24, 20:24] = 1  # found only by the second pass, far from the first pass's tumour
    kept, removed = consensus_filter(labels, allowed)
    assert kept[8:14, 26:36, 10:16].all() and not kept[20:24, 20:24, 20:24].any() and removed >= 4 ** 3
    nothing, removed0 = consensus_filter(np.zeros(shape, np.uint8), allowed)
    assert removed0 == 0 and not nothing.any()


@pytest.mark.slow
def test_segment_a_skull_on_scan(tmp_path):
    """A phantom brain inside a synthetic head (skull, scalp fat, face, neck): `segment` must find the brain with the
    atlas, refine the mask, run the tumour-safe second pass, and put no tumour outside the brain."""
    from typer.testing import CliRunner

    from mmtumor.cli import app
    from mmtumor.demo import dice_against_truth
    from mmtumor.synth import generate_case

    case = generate_case(31337)
    brain = case.images[M.T1C] > 0
    imgs = {m: case.images[m] for m in (M.T1C, M.FLAIR)}
    head, big_aff, in_brain = wrap_in_head(imgs, case.affine, brain=brain, seed=5)
    for m, img in head.items():
        nib.save(nib.Nifti1Image(img, big_aff), str(tmp_path / f"head_{m.value.lower()}.nii.gz"))
    r = CliRunner().invoke(app, ["segment", "--t1c", str(tmp_path / "head_t1c.nii.gz"), "--flair",
                                 str(tmp_path / "head_flair.nii.gz"), "-o", str(tmp_path / "o"), "--device", "cpu",
                                 "--fast", "--no-preview", "--weights", "a2fseg-phantom-cpu"])
    # the phantom-trained model: this tests the skull-on path on a phantom brain, whatever the real-data default has
    # learnt about phantoms (stage 1 over-segmented this 2 mL tumour; docs/bench-small-tumours.md)
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    steps = " ".join(report["preprocessing"]["steps"])
    assert "does not look skull-stripped" in steps and "brain mask refined" in steps and "second pass" in steps, steps
    # first-pass tumour left out of view is never silent: a console/report warning exactly when there was some
    warned = any("skull-on scan" in w for w in report["warnings"])
    assert warned == (report["postprocessing"]["first_pass_voxels_outside_brain"] > 0)
    assert "second_pass_only_voxels_removed" in report["postprocessing"]
    seg = nib.load(str(tmp_path / "o" / "segmentation.nii.gz"))
    assert seg.shape == in_brain.shape and np.allclose(seg.affine, big_aff, atol=1e-4)
    pred = np.asarray(seg.dataobj) > 0
    assert (pred & ~ndi.binary_dilation(in_brain, iterations=2)).sum() < 0.02 * max(pred.sum(), 1)
    truth = np.zeros(in_brain.shape, np.uint8)
    inner = tuple(slice(int(round(o)), int(round(o)) + n) for o, n in
                  zip(np.linalg.solve(big_aff, case.affine @ np.array([0, 0, 0, 1.0]))[:3], case.label.shape))
    truth[inner] = case.label
    scores = dice_against_truth(str(tmp_path / "o" / "segmentation.nii.gz"), truth, big_aff)
    assert scores["WT"] > 0.6, scores

"""The inference core (``mmtumor.infer.core``): one path for ``segment``, ``benchmark`` and training validation."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmtumor.infer.core import FALLBACK_PATCH, InferenceSettings, predict


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    from mmtumor.synth import write_dataset

    root = tmp_path_factory.mktemp("core")
    write_dataset(root, 1, seed=4242, shape=(240, 240, 155))  # BraTS-like (1 mm, skull-stripped), as benchmark data is
    return next(p for p in root.iterdir() if p.is_dir())


def test_segment_and_benchmark_give_bit_identical_labels(phantom, tmp_path):
    """The same case and modality subset through ``mmtumor segment`` (files, detection, writers) and through the
    benchmark's sweep path (in-memory arrays) give the same label map, voxel for voxel, with the bundled default.
    (On BraTS-preprocessed data, as every benchmark data set is, neither path registers the modalities.)"""
    from mmtumor import api
    from mmtumor.benchmark import predict_subset
    from mmtumor.io.dataset import find_cases, load_case
    from mmtumor.modalities import Modality, parse_subsets
    from mmtumor.weights import load_model, resolve

    (case,) = find_cases(phantom.parent, require_label=True)
    res = api.segment(None, tmp_path / "seg", t1c=case.images[Modality.T1C], flair=case.images[Modality.FLAIR],
                      device="cpu", preview=False)
    seg = np.asarray(nib.load(res.results[0]["outputs"]["segmentation"]).dataobj)
    loaded = load_case(case)
    model, meta = load_model(resolve(None), device="cpu")
    bench = predict_subset(model, meta, loaded.image, loaded.present, loaded.affine, parse_subsets("0101")[0])
    assert seg.shape == bench.shape and np.count_nonzero(bench) > 100  # a real answer, not two empty maps
    assert np.array_equal(seg, bench)
    assert any("BraTS-preprocessed input recognised" in step for step in res.results[0]["preprocessing"]["steps"])


def test_settings_come_from_the_weights_metadata_with_one_set_of_fallbacks():
    s = InferenceSettings.for_model({"patch_size": [64, 64, 64], "spacing": 2.0}, overlap=0.25, tta=None)
    assert s.patch == (64, 64, 64) and s.model_spacing == 2.0 and s.overlap == 0.25 and s.tta is False
    old = InferenceSettings.for_model({"patch": [48, 48, 48], "training": {"target_spacing": 1.5}})
    assert old.patch == (48, 48, 48) and old.model_spacing == 1.5  # older exports: training-config fallbacks
    assert InferenceSettings.for_model({}).patch == FALLBACK_PATCH and InferenceSettings.for_model({}).model_spacing is None


class _Blob:
    """A stand-in network: WT where FLAIR is bright, TC where T1c is bright, ET where T1c is very bright."""

    training = False

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def __call__(self, x, present):
        import torch

        flair, t1c = x[:, 3:4], x[:, 1:2]
        logits = torch.cat([(flair - 1.0) * 20, (t1c - 1.0) * 20, (t1c - 2.0) * 20], dim=1)
        return {"logits": logits}


def _blob_image(shape=(40, 40, 40)):
    img = np.zeros((4, *shape), np.float32)
    img[:, 4:-4, 4:-4, 4:-4] = 1.0  # brain
    img[3, 10:26, 10:26, 10:26] = 3.0  # FLAIR lesion
    img[1, 14:22, 14:22, 14:22] = 2.5  # enhancing core
    img[3, 32, 32, 32] = 3.0  # a one-voxel FLAIR island far away
    return img


def test_predict_postprocesses_and_records_what_it_changed():
    img = _blob_image()
    present = [False, True, False, True]
    brain = img[1] > 0
    settings = InferenceSettings(patch=(32, 32, 32), amp=False, min_component_fraction=0.2, min_et_voxels=0)
    pred = predict(_Blob(), img, present, (1.0, 1.0, 1.0), brain, settings, normalised=True)
    assert pred.postprocessing["island_voxels_removed"] >= 1 and pred.labels[32, 32, 32] == 0
    assert (pred.labels[16:20, 16:20, 16:20] == 4).all() and pred.probabilities.shape == (3, 40, 40, 40)
    big_et = InferenceSettings(patch=(32, 32, 32), amp=False, min_et_voxels=10_000)
    pred2 = predict(_Blob(), img, present, (1.0, 1.0, 1.0), brain, big_et, normalised=True)
    assert not (pred2.labels == 4).any() and pred2.postprocessing["et_voxels_relabelled_ncr"] > 0
    assert any("--min-et-voxels" in w for w in pred2.warnings)
    # probabilities never leave the brain mask
    small_brain = np.zeros_like(brain)
    small_brain[:20] = True
    pred3 = predict(_Blob(), img, present, (1.0, 1.0, 1.0), small_brain, settings, normalised=True)
    assert pred3.probabilities[:, 20:].max() == 0


def test_region_thresholds_come_from_the_weights_and_change_only_their_region():
    """A model may carry its own thresholds (metadata ``region_thresholds``); an explicit option overrides them; a
    lower ET threshold calls a faint enhancing focus that 0.5 misses, and leaves WT and TC alone."""
    assert InferenceSettings.for_model({}).region_thresholds == (0.5, 0.5, 0.5)
    own = InferenceSettings.for_model({"region_thresholds": [0.4, 0.45, 0.2]})
    assert own.region_thresholds == (0.4, 0.45, 0.2)
    assert InferenceSettings.for_model({"region_thresholds": [0.4, 0.45, 0.2]},
                                       region_thresholds="0.5,0.5,0.3").region_thresholds == (0.5, 0.5, 0.3)
    img = _blob_image()
    img[1, 14:22, 14:22, 14:22] = 1.95  # enhancing core only faintly brighter than core: ET probability about 0.27
    present, brain = [False, True, False, True], img[3] > 0
    base = dict(patch=(32, 32, 32), amp=False, min_component_fraction=0.0, min_et_voxels=0)
    at_half = predict(_Blob(), img, present, (1.0, 1.0, 1.0), brain, InferenceSettings(**base), normalised=True)
    low_et = predict(_Blob(), img, present, (1.0, 1.0, 1.0), brain,
                     InferenceSettings(**base, region_thresholds=(0.5, 0.5, 0.2)), normalised=True)
    assert not (at_half.labels == 4).any() and (low_et.labels[14:22, 14:22, 14:22] == 4).all()
    assert np.array_equal(at_half.labels > 0, low_et.labels > 0)  # WT unchanged
    assert np.array_equal(np.isin(at_half.labels, (1, 4)), np.isin(low_et.labels, (1, 4)))  # TC unchanged
    from mmtumor.errors import InputError

    for bad in ("0.5,0.5", "0.5,1,0.3", "a,b,c", (0.0, 0.5, 0.5)):
        with pytest.raises(InputError, match="region thresholds"):
            InferenceSettings.for_model({}, region_thresholds=bad)


class _DilutedBlob(_Blob):
    """The blob network whose enhancing tumour fades when T2 is given, as the default's does when fusion dilutes T1c."""

    def __call__(self, x, present):
        out = super().__call__(x, present)
        out["logits"][:, 2] -= 40.0 * present[:, 2].view(-1, 1, 1, 1).to(x.dtype)
        return out


def _Net(blob: _Blob, shift: float = 0.0):
    """A blob network as a torch module (ensembles and routers hold modules), its logits shifted by ``shift``."""
    import torch

    class Net(torch.nn.Module):
        def forward(self, x, present):
            return {"logits": blob(x, present)["logits"] + shift}

    return Net()


def test_enhancing_tumour_can_come_from_fewer_modalities_and_only_it_changes():
    """With ``et_modalities`` (T1c, FLAIR) and all four scans given, ET comes from a second pass without T1 and T2 and
    WT and TC from the pass on all four; without T1c, or when the given scans are already that set, nothing changes."""
    from mmtumor.errors import InputError
    from mmtumor.infer.core import et_channels, parse_et_modalities

    assert parse_et_modalities("T1c,FLAIR") == (1, 3) and parse_et_modalities(["t1ce", "flair"]) == (1, 3)
    assert parse_et_modalities("all") is None and parse_et_modalities(None) is None
    assert parse_et_modalities("T1,T1c,T2,FLAIR") is None  # every modality: the ordinary single pass
    for bad in ("T2,FLAIR", "T1c,PD"):
        with pytest.raises(InputError):
            parse_et_modalities(bad)
    with pytest.raises(InputError, match="channels must be 0-3"):
        parse_et_modalities([1, 7])
    assert et_channels([True] * 4, (1, 3)) == [False, True, False, True]
    assert et_channels([True, False, True, True], (1, 3)) is None  # no T1c: no enhancement to see, no second pass
    assert et_channels([False, True, False, True], (1, 3)) is None  # already T1c + FLAIR
    assert InferenceSettings.for_model({"et_modalities": ["T1c", "FLAIR"]}).et_modalities == (1, 3)
    assert InferenceSettings.for_model({"et_modalities": ["T1c", "FLAIR"]}, et_modalities="all").et_modalities is None
    from mmtumor.benchmark import settings_tag  # a benchmark cache never mixes the two answers

    assert settings_tag(InferenceSettings()) == "" and settings_tag(InferenceSettings(et_modalities=(1, 3))) == "-et13"

    img = _blob_image()
    img[[0, 2]] = img[[1]]  # T1 and T2 channels hold something
    brain, present = img[3] > 0, [True, True, True, True]
    base = dict(patch=(32, 32, 32), amp=False, min_component_fraction=0.0, min_et_voxels=0)
    fused = predict(_DilutedBlob(), img, present, (1.0, 1.0, 1.0), brain, InferenceSettings(**base), normalised=True)
    split = predict(_DilutedBlob(), img, present, (1.0, 1.0, 1.0), brain,
                    InferenceSettings(**base, et_modalities=(1, 3)), normalised=True)
    assert not (fused.labels == 4).any() and (split.labels[15:21, 15:21, 15:21] == 4).all()
    assert np.array_equal(fused.probabilities[:2], split.probabilities[:2])  # WT and TC from the four-scan pass
    assert any("enhancing tumour predicted from T1c+FLAIR only" in n for n in split.notes)
    assert not any("enhancing tumour predicted" in n for n in fused.notes)


def test_an_ensemble_through_the_core_is_the_mean_of_its_members_predictions():
    """Everything between the network and the probabilities (window blending, the 2 mm grid and back, the ET second
    pass, the brain mask) is linear, so averaging inside the network equals averaging the members' predictions."""
    from mmtumor.models.ensemble import Ensemble

    img = _blob_image()
    img[[0, 2]] = img[[1]]
    img[1, 14:22, 14:22, 14:22] = 1.9  # a faint core: the members disagree on it
    brain, present = img[3] > 0, [True, True, True, True]
    settings = InferenceSettings(patch=(16, 16, 16), model_spacing=2.0, amp=False, min_component_fraction=0.0,
                                 min_et_voxels=0, et_modalities=(1, 3))
    members = [_Net(_Blob(), 0.0), _Net(_DilutedBlob(), 2.0)]
    each = [predict(m, img, present, (1.0, 1.0, 1.0), brain, settings, normalised=True).probabilities for m in members]
    both = predict(Ensemble(members), img, present, (1.0, 1.0, 1.0), brain, settings, normalised=True).probabilities
    assert np.allclose(both, np.mean(each, axis=0), atol=1e-5)
    assert np.abs(each[0] - each[1]).max() > 0.2  # the members really differ, so the test can fail
    with pytest.raises(ValueError, match="at least two"):
        Ensemble(members[:1])


def test_a_router_through_the_core_takes_enhancing_tumour_from_its_specialist_in_the_et_pass():
    """With the base's ET rule (T1c + FLAIR), four given scans: WT/TC are the base's four-scan answer, ET the
    specialist's T1c + FLAIR answer, since the ET pass gives the router exactly a routed subset."""
    from mmtumor.models.router import SubsetRouter

    img = _blob_image()
    img[[0, 2]] = img[[1]]
    brain, present = img[3] > 0, [True, True, True, True]
    settings = InferenceSettings(patch=(16, 16, 16), amp=False, min_component_fraction=0.0, min_et_voxels=0,
                                 et_modalities=(1, 3))
    base, specialist = _Net(_DilutedBlob()), _Net(_Blob(), -15.0)  # a specialist that calls no ET
    router = SubsetRouter(base, [specialist], [([(False, True, False, True), (False, True, False, False)], [2])])
    routed = predict(router, img, present, (1.0, 1.0, 1.0), brain, settings, normalised=True).probabilities
    of_base = predict(base, img, present, (1.0, 1.0, 1.0), brain, settings, normalised=True).probabilities
    et_only = [False, True, False, True]
    of_spec = predict(specialist, img, et_only, (1.0, 1.0, 1.0), brain, settings, normalised=True).probabilities
    assert np.allclose(routed[:2], of_base[:2], atol=1e-6) and np.allclose(routed[2], of_spec[2], atol=1e-6)
    assert np.abs(of_base[2] - of_spec[2]).max() > 0.2  # base and specialist really differ on ET
    with pytest.raises(ValueError, match="routed twice"):
        SubsetRouter(base, [specialist, specialist], [([(False, True, False, True)], [2]),
                                                      ([(False, True, False, True)], [0])])


def test_the_model_grid_is_used_and_results_come_back_to_the_working_grid():
    img = _blob_image()
    present = [False, True, False, True]
    settings = InferenceSettings(patch=(16, 16, 16), model_spacing=2.0, amp=False)
    pred = predict(_Blob(), img, present, (1.0, 1.0, 1.0), img[1] > 0, settings, normalised=True)
    assert pred.labels.shape == (40, 40, 40) and any("model grid: 2 mm (20x20x20)" in n for n in pred.notes)
    assert (pred.labels[12:24, 12:24, 12:24] > 0).all()


def test_the_python_api_takes_in_memory_images_and_mirrors_the_cli(phantom_dir, tiny_weights, tmp_path):
    """``mmtumor.segment_images`` with nibabel images gives what the CLI gives for the same files and options."""
    import json

    from typer.testing import CliRunner

    import mmtumor
    from mmtumor.cli import app

    case = phantom_dir / "Synth_00001"
    t1c, flair = case / "Synth_00001_t1ce.nii.gz", case / "Synth_00001_flair.nii.gz"
    r = CliRunner().invoke(app, ["segment", "--t1c", str(t1c), "--flair", str(flair), "-o", str(tmp_path / "cli"),
                                 "--weights", str(tiny_weights), "--device", "cpu", "--fast", "--no-preview",
                                 "--label-scheme", "brats2023"])
    assert r.exit_code == 0, r.output
    result = mmtumor.segment_images(t1c=nib.load(str(t1c)), flair=str(flair), weights=str(tiny_weights), device="cpu",
                                    fast=True, preview=False, label_scheme="brats2023")
    cli_seg = nib.load(str(tmp_path / "cli" / "segmentation.nii.gz"))
    assert np.array_equal(np.asarray(result.labels.dataobj), np.asarray(cli_seg.dataobj))
    assert np.allclose(result.labels.affine, cli_seg.affine) and result.output_dir is None
    assert result.volumes_ml == json.loads((tmp_path / "cli" / "volumes.json").read_text())
    assert result.report["modality_subset"]["code"] == "0101" and result.report["label_scheme"] == "brats2023"
    with pytest.raises(mmtumor.MmtumorError, match="at least one"):
        mmtumor.segment_images()


def test_skull_on_second_pass_drops_and_reports_tumour_outside_the_brain():
    """First-pass tumour lying outside the refined brain mask (an orbit, the scalp) is not kept, and the user is told
    how much; tumour inside is kept (the skull-on path of segment, preprocess.brainmask)."""
    img = np.zeros((4, 48, 48, 48), np.float32)
    img[:, 2:-2, 2:-2, 2:-2] = 1.0  # the atlas mask's region, skull and scalp included
    img[3, 10:20, 10:20, 10:20] = 3.0  # lesion in the brain
    img[3, 36:45, 36:45, 36:45] = 3.0  # bright blob in the 'scalp', outside the refined brain
    present = [False, False, False, True]
    atlas = img[3] > 0
    refined = np.zeros_like(atlas)
    refined[4:32, 4:32, 4:32] = True
    settings = InferenceSettings(patch=(32, 32, 32), amp=False, min_et_voxels=0)
    pred = predict(_Blob(), img, present, (1.0, 1.0, 1.0), atlas, settings, refined_mask=refined, normalised=True)
    outside = pred.postprocessing["first_pass_voxels_outside_brain"]
    assert outside >= 9**3 * 0.9 and any("skull-on scan" in w for w in pred.warnings)
    assert (pred.labels[12:18, 12:18, 12:18] > 0).all() and not (pred.labels[36:45, 36:45, 36:45] > 0).any()
    assert any("second pass" in n for n in pred.notes)
